"""The store and the DLQ on a three-node Redis Cluster: hash tags keep each script on one shard."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from tether.dlq.redis import RedisDLQ
from tether.state._protocol import BreakerConfig, RateWindow
from tether.state.redis import RedisStore

pytestmark = pytest.mark.redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dlq"))
from dlq_helpers import EPOCH, make_entry  # noqa: E402

SERVICES = [f"svc{i}" for i in range(12)]


async def test_every_operation_runs_on_a_cluster_across_its_shards(redis_cluster_url: str) -> None:
    """Limiters, circuits, counters, values and locks of twelve services work, spread over 3 nodes."""
    store = RedisStore(redis_cluster_url, cluster=True, timeout=2.0, namespace="c:")
    window = RateWindow(1, 1.0)
    config = BreakerConfig(failures=1)
    try:
        for name in SERVICES:
            await store.rate_acquire(f"rate:{name}", [window], now=0.0)
            queued = await store.rate_acquire(f"rate:{name}", [window], now=0.0)
            assert (queued.wait, queued.snapshot.queued) == (1.0, 1)
            assert await store.rate_pause(f"rate:{name}", 5.0, now=0.0) == 5.0
            permit = await store.breaker_acquire(f"{name}:breaker", config, now=0.0)
            update = await store.breaker_record(f"{name}:breaker", permit, "failure", config, now=0.0)
            assert update.snapshot.state == "open"
            assert await store.incr(f"{name}:retry", 2.0, ttl=10.0, now=0.0) == 2.0
            await store.set(f"{name}:auth:token:x", b"tok", ttl=10.0, now=0.0)
            assert await store.get(f"{name}:auth:token:x", now=1.0) == b"tok"
            await store.delete(f"{name}:auth:token:x")
            assert await store.try_lock(f"{name}:auth:token:x:lock", "me", ttl=5.0, now=0.0)
            await store.unlock(f"{name}:auth:token:x:lock", "me")
    finally:
        await store.aclose()
    cluster = RedisCluster.from_url(redis_cluster_url)
    try:
        keys = [k async for k in cluster.scan_iter(match="c:*", target_nodes=RedisCluster.ALL_NODES)]
        slots = {int(await cluster.cluster_keyslot(k)) for k in keys}
        per_node = []
        for node in cluster.get_primaries():
            client = aioredis.Redis(host=node.host, port=node.port)
            per_node.append(len(await client.keys("c:*")))
            await client.aclose()
    finally:
        await cluster.aclose()
    assert len(slots) == len(SERVICES), "one slot per service: every key of a service shares its hash tag"
    assert all(n > 0 for n in per_node), f"the services are spread over every shard: {per_node}"


async def test_the_dlq_runs_on_a_cluster(redis_cluster_url: str) -> None:
    """Add, claim, fail, list and purge work on a cluster (one hash tag per queue)."""
    dlq = RedisDLQ(redis_cluster_url, cluster=True, name="cluster-test", namespace="c:")
    try:
        first, second = make_entry(), make_entry(created_at=EPOCH + 1)
        await dlq.add(first)
        await dlq.add(second)
        claimed = await dlq.claim("w", now=EPOCH + 5, lease=10)
        assert [e.id for e in claimed] == [first.id, second.id]
        assert await dlq.fail(first.id, "w", replays=3, error_code="X", error_message="x", now=EPOCH + 6)
        assert [e.id for e in await dlq.list(status="failed")] == [first.id]
        assert await dlq.purge() == 2
    finally:
        await dlq.aclose()
