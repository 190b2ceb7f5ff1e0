"""The Redis cache backend: shared entries, exact byte bounds with lru / lfu / ttl eviction, and
one upstream call for identical misses across real processes.

Backends talk to the session's redis-server (``redis_url``); each test uses its own namespace.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from worker_group import workers

import tether
from tether.cache import CacheEntry, RedisCache
from tether.mock import Fault, FaultServer, spawn_server

pytestmark = pytest.mark.redis

WORKER = Path(__file__).with_name("redis_cache_workers.py")


def entry(
    key: str, *, body: bytes = b"{}", expires: float = 100.0, keep_until: float | None = None
) -> CacheEntry:
    """An entry for ``key`` at https://api.test/<key>, fresh until ``expires``."""
    return CacheEntry(
        key=key,
        url=f"https://api.test/{key}",
        method="GET",
        status=200,
        headers=(("Content-Type", "application/json"),),
        body=body,
        stored_at=0.0,
        expires=expires,
        keep_until=expires if keep_until is None else keep_until,
        vary=(("accept", "application/json"),),
    )


MakeCache = Callable[..., RedisCache]


@pytest.fixture
async def make(redis_url: str, namespace: str) -> AsyncIterator[MakeCache]:
    """RedisCache instances on one namespace (each call: another instance of the same cache)."""
    made: list[RedisCache] = []

    def build(**options: Any) -> RedisCache:
        cache = RedisCache(redis_url, namespace=namespace, timeout=2.0, **options)
        made.append(cache)
        return cache

    yield build
    if made:
        await made[0].clear()
    for cache in made:
        await cache.aclose()


async def test_an_entry_round_trips_and_is_shared_by_every_instance(make: MakeCache) -> None:
    """What one instance stores, another reads back byte for byte; both agree on the totals."""
    first, second = make(), make()
    stored = entry("a", body=b'{"value": 1}\n\x00binary')
    assert await first.put(stored, now=0.0)
    got = await second.get("a", now=1.0)
    assert got == stored
    assert second.stats().entries == 1
    assert second.stats().bytes == stored.size


async def test_entries_are_not_returned_past_keep_until_by_the_callers_clock(make: MakeCache) -> None:
    """Freshness follows the caller's clock: an entry past keep_until is gone and its bytes freed."""
    cache = make()
    await cache.put(entry("old", expires=10.0, keep_until=20.0), now=0.0)
    assert await cache.get("old", now=15.0) is not None
    assert await cache.get("old", now=20.0) is None
    assert cache.stats().entries == 0 and cache.stats().bytes == 0


async def test_the_identity_key_is_one_per_cache_in_redis(make: MakeCache) -> None:
    """Two instances derive credential identities with the same random key; another cache name differs."""
    first, second, other = make(), make(), make(name="other")
    key = await first.identity_key()
    assert len(key) == 32
    assert await second.identity_key() == key
    assert await other.identity_key() != key
    await other.clear()


@pytest.mark.parametrize(
    ("eviction", "survivor", "victim"),
    [
        ("lru", "a", "b"),  # a was read after b was stored: b is the least recently used
        ("lfu", "b", "a"),  # b was read twice, a once (plus its store): a has fewer hits
        ("ttl", "a", "b"),  # b's retention ends first
    ],
)
async def test_each_eviction_policy_picks_its_victim(
    make: MakeCache, eviction: str, survivor: str, victim: str
) -> None:
    """With room for two entries, a third evicts the one the policy names; the bytes stay exact."""
    cache = make(max_entries=2, eviction=eviction)
    await cache.put(entry("a", keep_until=500.0), now=0.0)
    await cache.put(entry("b", keep_until=300.0), now=0.0)
    if eviction == "lru":
        await cache.get("a", now=1.0)
    if eviction == "lfu":
        for _ in range(2):
            await cache.get("b", now=1.0)
    await cache.put(entry("c", keep_until=400.0), now=2.0)
    assert await cache.get(survivor, now=3.0) is not None
    assert await cache.get(victim, now=3.0) is None
    assert await cache.get("c", now=3.0) is not None
    stats = cache.stats()
    assert stats.entries == 2
    assert stats.bytes == entry(survivor).size + entry("c").size


async def test_the_byte_bound_holds_while_four_instances_write_at_once(
    make: MakeCache, redis_url: str, namespace: str
) -> None:
    """400 puts of 1-4 kB from four instances at once under a 20 kB bound: the total never exceeds
    it, and the bookkeeping matches what Redis really holds."""
    bound = 20_000
    caches = [make(max_bytes=bound, eviction=policy) for policy in ("lru", "lru", "lru", "lru")]
    seen: list[int] = []

    async def writer(index: int, cache: RedisCache) -> None:
        for n in range(100):
            body = bytes([65 + n % 26]) * (1000 * (1 + (n + index) % 4))
            await cache.put(entry(f"w{index}-{n}", body=body, expires=1000.0), now=float(n))
            seen.append(cache.stats().bytes)

    await asyncio.gather(*(writer(i, c) for i, c in enumerate(caches)))
    totals = await caches[0].refresh_stats()
    assert max(seen) <= bound
    assert 0 < totals.bytes <= bound
    client = aioredis.Redis.from_url(redis_url)
    try:
        base = f"{namespace}{{default}}:cache:"
        sizes = {k.decode(): int(v) for k, v in (await client.hgetall(base + "sizes")).items()}
        live = [k for k in sizes if await client.exists(base + "e:" + k)]
    finally:
        await client.aclose()
    assert sum(sizes.values()) == totals.bytes
    assert len(sizes) == totals.entries == len(live)


async def test_invalidate_and_clear_reach_every_instance(make: MakeCache) -> None:
    """Invalidating a URL prefix or clearing on one instance removes the entries for all."""
    first, second = make(), make()
    for key in ("x1", "x2", "y1"):
        await first.put(entry(key), now=0.0)
    assert await second.invalidate("https://api.test/x") == 2
    assert await first.get("x1", now=1.0) is None
    assert await first.get("y1", now=1.0) is not None
    assert await second.clear() == 1
    assert (await first.refresh_stats()).entries == 0


async def test_a_client_on_the_redis_cache_serves_stale_entries_when_the_upstream_fails(
    fault_server: FaultServer, redis_url: str, namespace: str
) -> None:
    """Another client (a new instance) answers from the shared entry, and from it stale on a 503."""
    fault_server.route("GET", "/data", Fault.ok(json={"v": 1}))
    url = f"{redis_url}?namespace={namespace}"
    options = tether.Cache(ttl=0.2, stale_if_error=60, backend=url)
    async with tether.Client(fault_server.url, cache=options, retry=None, breaker=None) as first:
        assert (await first.get("/data")).json() == {"v": 1}
    async with tether.Client(fault_server.url, cache=options, retry=None, breaker=None) as second:
        assert (await second.get("/data")).json() == {"v": 1}  # a hit from the shared entry
        assert len(fault_server.requests("GET", "/data")) == 1
        await asyncio.sleep(0.25)
        fault_server.route("GET", "/data", Fault.status(503))
        stale = await second.get("/data")
        assert stale.json() == {"v": 1}
        await second.pipeline.policy("cache").clear()


@pytest.mark.realtime
def test_four_processes_make_one_upstream_call_for_1000_identical_misses(
    redis_url: str, namespace: str
) -> None:
    """Four real processes, 250 concurrent GETs each of one cold key on one Redis cache: the
    mock's request log shows one request; every call gets the body."""
    routes = [{"method": "GET", "path": "/item", "responses": [Fault.delay(0.3, Fault.ok(json={"id": 7}))]}]
    with spawn_server(routes) as server:
        config = {
            "cache_url": f"{redis_url}?namespace={namespace}&timeout=2",
            "server_url": server.url,
            "api_key": "shared-key-0001",
            "calls": 250,
        }
        with workers([str(WORKER)], [config] * 4) as group:
            group.go(duration=0.0)
            results = group.results(timeout=180)
        requests = [r for r in server.log() if r.path == "/item"]
    print(f"\nshared cache: {[r['answers'] for r in results]}; upstream requests: {len(requests)}")
    assert [r["errors"] for r in results] == [[]] * 4
    assert sum(r["ok"] for r in results) == 1000
    assert len(requests) == 1
    fetched = [r for r in results if any(state.startswith("miss") for state in r["answers"])]
    assert len(fetched) == 1  # one process fetched; three answered from its entry (waiting, or later)
