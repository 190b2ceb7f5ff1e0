"""The Redis store keeps the StateStore contract: each test runs on the memory store and on Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tether.errors import SpecError, StateStoreError
from tether.state import StateStore, open_store
from tether.state._fallback import FallbackStore
from tether.state._protocol import BreakerConfig, RateWindow
from tether.state.memory import MemoryStore
from tether.state.redis import RedisStore, key_tag

pytestmark = pytest.mark.redis


@pytest.fixture(params=["memory", "redis", "fallback"])
async def store(request: pytest.FixtureRequest, redis_url: str, namespace: str) -> AsyncIterator[StateStore]:
    """The same contract test on the memory store, a RedisStore, and a RedisStore behind the
    on_state_error wrapper (which must change nothing while Redis answers)."""
    made: StateStore
    if request.param == "memory":
        made = MemoryStore()
    elif request.param == "redis":
        made = RedisStore(redis_url, namespace=namespace, timeout=2.0)
    else:
        made = FallbackStore(RedisStore(redis_url, namespace=namespace, timeout=2.0), on_state_error="fail")
    try:
        yield made
    finally:
        await made.aclose()


def test_the_redis_store_implements_the_protocol(redis_url: str) -> None:
    """RedisStore has every method of StateStore (runtime-checkable protocol)."""
    assert isinstance(RedisStore(redis_url), StateStore)


async def test_counters_start_with_their_ttl_and_expire_on_the_callers_time(store: StateStore) -> None:
    """incr sets the expiry when it creates the counter; later increments keep it; expired reads 0."""
    assert await store.incr("svc:c", 2.0, ttl=10.0, now=1000.0) == 2.0
    assert await store.incr("svc:c", 1.5, ttl=99.0, now=1005.0) == 3.5
    assert await store.get_counter("svc:c", now=1009.9) == 3.5
    assert await store.get_counter("svc:c", now=1010.0) == 0.0
    assert await store.incr("svc:c", 1.0, ttl=10.0, now=1010.0) == 1.0, "an expired counter starts again"
    assert await store.get_counter("svc:missing", now=0.0) == 0.0


async def test_counter_sums_are_exact_doubles(store: StateStore) -> None:
    """0.1 + 0.2 reads back as Python's double sum, not a rounded decimal."""
    await store.incr("svc:f", 0.1, now=0.0)
    assert await store.incr("svc:f", 0.2, now=0.0) == 0.1 + 0.2


async def test_values_expire_and_are_replaced_whole(store: StateStore) -> None:
    """set replaces value and expiry; get returns None once expired; delete removes it."""
    await store.set("svc:v", b"\x00first\xff", ttl=1.0, now=0.0)
    assert await store.get("svc:v", now=0.5) == b"\x00first\xff"
    assert await store.get("svc:v", now=1.0) is None
    await store.set("svc:v", b"second", now=2.0)
    assert await store.get("svc:v", now=1e12) == b"second"
    await store.delete("svc:v")
    await store.delete("svc:v")
    assert await store.get("svc:v", now=3.0) is None


async def test_a_value_and_a_counter_of_one_name_replace_each_other(store: StateStore) -> None:
    """A counter is not a value: get on a counter is None, incr on a value starts a new counter."""
    await store.incr("svc:x", 4.0, now=0.0)
    assert await store.get("svc:x", now=0.0) is None
    await store.set("svc:x", b"text", now=0.0)
    assert await store.get_counter("svc:x", now=0.0) == 0.0
    assert await store.incr("svc:x", 1.0, now=0.0) == 1.0


async def test_locks_are_owned_reentrant_and_expire(store: StateStore) -> None:
    """A live lock refuses other owners, lets its owner refresh it, and frees after its TTL."""
    assert await store.try_lock("svc:l", "a", ttl=5.0, now=0.0)
    assert not await store.try_lock("svc:l", "b", ttl=5.0, now=1.0)
    assert await store.try_lock("svc:l", "a", ttl=5.0, now=4.0), "re-entrant refresh until 9"
    assert not await store.try_lock("svc:l", "b", ttl=5.0, now=8.9)
    assert await store.try_lock("svc:l", "b", ttl=5.0, now=9.0)
    await store.unlock("svc:l", "a")  # not the owner any more: no effect
    assert not await store.try_lock("svc:l", "a", ttl=5.0, now=10.0)
    await store.unlock("svc:l", "b")
    assert await store.try_lock("svc:l", "a", ttl=5.0, now=10.0)


async def test_locks_and_values_live_in_separate_key_spaces(store: StateStore) -> None:
    """A lock named like a value neither reads as the value nor is removed by delete."""
    await store.set("svc:same", b"v", now=0.0)
    assert await store.try_lock("svc:same", "a", ttl=5.0, now=0.0)
    await store.delete("svc:same")
    assert not await store.try_lock("svc:same", "b", ttl=5.0, now=1.0)


async def test_concurrent_acquires_get_distinct_fifo_slots(store: StateStore) -> None:
    """Fifty concurrent rate_acquire calls on one key get fifty distinct slots, 0.1 s apart."""
    window = RateWindow(10, 1.0)
    grants = await asyncio.gather(*(store.rate_acquire("svc:rate", [window], now=0.0) for _ in range(50)))
    assert sorted(g.wait for g in grants) == pytest.approx([i * 0.1 for i in range(50)])
    assert max(g.snapshot.queued for g in grants) == 49


async def test_max_wait_and_max_queue_refuse_without_reserving(store: StateStore) -> None:
    """A refused grant reports its wait and reason and leaves the next caller the same slot."""
    window = RateWindow(1, 10.0)
    assert (await store.rate_acquire("svc:rate", [window], now=0.0)).wait == 0.0
    refused = await store.rate_acquire("svc:rate", [window], now=1.0, max_wait=2.0)
    assert (refused.granted, refused.reason, refused.wait) == (False, "wait", pytest.approx(9.0))
    queued = await store.rate_acquire("svc:rate", [window], now=1.0, max_queue=1)
    assert queued.granted and queued.wait == pytest.approx(9.0)
    full = await store.rate_acquire("svc:rate", [window], now=1.0, max_queue=1)
    assert (full.granted, full.reason, full.snapshot.queued) == (False, "queue_full", 1)
    later = await store.rate_acquire("svc:rate", [window], now=10.5, max_queue=1)
    assert later.granted, "the first waiter's slot has passed: a place is free again"


async def test_the_slowest_window_decides_the_slot(store: StateStore) -> None:
    """With 10/s and 2/min, the second request waits 30 s for the minute window."""
    windows = [RateWindow(10, 1.0), RateWindow(2, 60.0)]
    first = await store.rate_acquire("svc:rate", windows, now=0.0)
    second = await store.rate_acquire("svc:rate", windows, now=0.0)
    assert (first.wait, second.wait) == (0.0, pytest.approx(30.0))
    assert [w.available for w in second.snapshot.windows] == [0, 0]


async def test_a_pause_reaches_every_caller_and_only_extends(store: StateStore) -> None:
    """rate_pause holds the next slot until the pause ends; an earlier pause does not shorten it."""
    window = RateWindow(100, 1.0, 10)
    assert await store.rate_pause("svc:rate", 30.0, now=0.0) == 30.0
    assert await store.rate_pause("svc:rate", 20.0, now=1.0) == 30.0
    grant = await store.rate_acquire("svc:rate", [window], now=10.0)
    status = await store.rate_status("svc:rate", [window], now=10.0)
    assert grant.wait == pytest.approx(20.0)
    assert (status.paused_until, status.queued) == (30.0, 1)
    assert await store.rate_pause("svc:rate", 5.0, now=40.0) == 0.0, "a past pause is no pause"


async def test_rate_status_changes_nothing(store: StateStore) -> None:
    """Reading the limiter leaves its slots as they were."""
    window = RateWindow(2, 1.0, 2)
    await store.rate_acquire("svc:rate", [window], now=0.0)
    first = await store.rate_status("svc:rate", [window], now=0.0)
    again = await store.rate_status("svc:rate", [window], now=0.0)
    assert first == again
    assert first.windows[0].available == 1
    assert (await store.rate_acquire("svc:rate", [window], now=0.0)).wait == 0.0


async def test_an_oversized_cost_is_a_configuration_error(store: StateStore) -> None:
    """A cost above a window's burst raises ValueError before anything is reserved."""
    with pytest.raises(ValueError, match="exceeds the burst"):
        await store.rate_acquire("svc:rate", [RateWindow(10, 1.0, 2)], now=0.0, cost=3)


async def test_breaker_opens_half_opens_and_closes_through_the_store(store: StateStore) -> None:
    """Two failures open the circuit; after open_for one probe goes; its success closes it."""
    config = BreakerConfig(failures=2, open_for=5.0, close_after=1)
    for t in (0.0, 1.0):
        permit = await store.breaker_acquire("svc:breaker", config, now=t)
        update = await store.breaker_record("svc:breaker", permit, "failure", config, now=t)
    assert [x.reason for x in update.transitions] == ["failures"]
    rejected = await store.breaker_acquire("svc:breaker", config, now=3.0)
    assert (rejected.granted, rejected.retry_after) == (False, pytest.approx(3.0))
    probe = await store.breaker_acquire("svc:breaker", config, now=6.0)
    assert probe.granted and probe.probe
    assert not (await store.breaker_acquire("svc:breaker", config, now=6.1)).granted, "one probe at a time"
    closed = await store.breaker_record("svc:breaker", probe, "success", config, now=6.2)
    assert closed.snapshot.state == "closed"
    assert [x.reason for x in closed.transitions] == ["probes_succeeded"]


async def test_outcomes_of_an_older_generation_change_nothing(store: StateStore) -> None:
    """A slow call's failure recorded after the circuit opened and closed again is ignored."""
    config = BreakerConfig(failures=1)
    slow = await store.breaker_acquire("svc:breaker", config, now=0.0)
    opener = await store.breaker_acquire("svc:breaker", config, now=0.0)
    await store.breaker_record("svc:breaker", opener, "failure", config, now=0.1)
    await store.breaker_force("svc:breaker", "closed", config, now=0.2)
    update = await store.breaker_record("svc:breaker", slow, "failure", config, now=0.3)
    assert (update.transitions, update.snapshot.state, update.snapshot.failures) == ((), "closed", 0)


async def test_isolate_holds_until_reset_and_status_reads_half_open(store: StateStore) -> None:
    """Isolated refuses with no retry_after; an open circuit past open_for reads half_open."""
    config = BreakerConfig(failures=1, open_for=10.0)
    await store.breaker_force("svc:b1", "isolated", config, now=0.0)
    refused = await store.breaker_acquire("svc:b1", config, now=1e6)
    assert (refused.granted, refused.retry_after, refused.snapshot.state) == (False, None, "isolated")
    reset = await store.breaker_force("svc:b1", "closed", config, now=1e6)
    assert [x.reason for x in reset.transitions] == ["reset"]
    permit = await store.breaker_acquire("svc:b2", config, now=0.0)
    await store.breaker_record("svc:b2", permit, "failure", config, now=0.0)
    assert (await store.breaker_status("svc:b2", config, now=10.0)).state == "half_open"
    assert (await store.breaker_status("svc:b2", config, now=9.0)).state == "open"


async def test_rate_mode_counts_failures_over_the_last_calls(store: StateStore) -> None:
    """With window_calls=4, min_calls=4 and rate 0.5, two failures among four calls open it."""
    config = BreakerConfig(mode="rate", window_calls=4, min_calls=4, failure_rate=0.5)
    outcomes = ["success", "failure", "success", "failure"]
    for i, outcome in enumerate(outcomes):
        permit = await store.breaker_acquire("svc:breaker", config, now=float(i))
        update = await store.breaker_record("svc:breaker", permit, outcome, config, now=float(i))  # type: ignore[arg-type]
    assert update.snapshot.state == "open"
    assert [x.reason for x in update.transitions] == ["failure_rate"]


def test_keys_share_a_hash_tag_per_service_or_shared_name() -> None:
    """Every key of one service, and both keys of a shared limiter, carry one Cluster hash tag."""
    assert key_tag("api.example.com:rate") == "api.example.com"
    assert key_tag("api.example.com:auth:token:ab12") == "api.example.com"
    assert key_tag("rate:demo") == key_tag("breaker:demo") == "demo"
    assert key_tag("we{ird}:rate") == "we(ird)"
    store = RedisStore("redis://127.0.0.1:1/0", namespace="ns:")
    assert store.key("rate", "rate:demo") == "ns:{demo}:rate:rate:demo"


async def test_the_redis_keys_follow_the_documented_patterns(redis_url: str, namespace: str) -> None:
    """A limiter writes its hash and queue, a circuit its JSON record, under the namespace."""
    import redis.asyncio as aioredis

    store = RedisStore(redis_url, namespace=namespace, timeout=2.0)
    raw = aioredis.Redis.from_url(redis_url)
    try:
        window = RateWindow(1, 60.0)
        await store.rate_acquire("rate:demo", [window], now=0.0)
        await store.rate_acquire("rate:demo", [window], now=0.0)
        await store.breaker_force("breaker:demo", "isolated", BreakerConfig(), now=0.0)
        keys = sorted(k.decode() for k in await raw.keys(f"{namespace}*"))
        assert keys == [
            f"{namespace}{{demo}}:breaker:breaker:demo",
            f"{namespace}{{demo}}:rate:rate:demo",
            f"{namespace}{{demo}}:rate:rate:demo:q",
        ]
        assert await raw.ttl(f"{namespace}{{demo}}:breaker:breaker:demo") == -1, "an isolated circuit stays"
        assert 0 < await raw.ttl(f"{namespace}{{demo}}:rate:rate:demo") <= 120 + 60, (
            "an idle limiter goes after its last slot"
        )
    finally:
        await raw.aclose()
        await store.aclose()


async def test_a_restarted_redis_gets_its_scripts_loaded_again(redis_url: str, namespace: str) -> None:
    """After SCRIPT FLUSH the next call reloads the script (NOSCRIPT) and succeeds."""
    import redis.asyncio as aioredis

    store = RedisStore(redis_url, namespace=namespace, timeout=2.0)
    raw = aioredis.Redis.from_url(redis_url)
    try:
        assert await store.incr("svc:n", now=0.0) == 1.0
        await raw.script_flush()
        assert await store.incr("svc:n", now=0.0) == 2.0
    finally:
        await raw.aclose()
        await store.aclose()


async def test_an_unreachable_redis_raises_state_store_error_within_the_timeout() -> None:
    """Nothing listens on the port: the call fails with StateStoreError caused by the redis error."""
    store = RedisStore("redis://127.0.0.1:1/0", timeout=0.2)
    with pytest.raises(StateStoreError, match="Redis state store") as caught:
        await store.rate_acquire("svc:rate", [RateWindow(1, 1.0)], now=0.0)
    assert caught.value.__cause__ is not None
    assert caught.value.error_code == "STATE_001"
    await store.aclose()
    with pytest.raises(StateStoreError, match="closed"):
        await store.get("svc:v", now=0.0)


async def test_passwords_never_appear_in_reprs_or_errors() -> None:
    """The URL's password is masked in the store's repr and in its errors."""
    store = RedisStore("redis://user:hunter2-secret@127.0.0.1:1/0", timeout=0.2)
    assert "hunter2" not in repr(store)
    with pytest.raises(StateStoreError) as caught:
        await store.get("svc:v", now=0.0)
    assert "hunter2" not in str(caught.value)
    await store.aclose()


async def test_open_store_builds_a_fallback_wrapped_redis_store_from_a_url(
    redis_url: str, namespace: str
) -> None:
    """state="redis://…?namespace=…&on_state_error=fail" gives a working store with those options."""
    store = open_store(f"{redis_url}?namespace={namespace}&on_state_error=fail&timeout=2")
    try:
        assert isinstance(store, FallbackStore)
        assert store.on_state_error == "fail"
        assert isinstance(store.shared, RedisStore)
        assert store.shared.key("kv", "svc:x").startswith(namespace)
        assert await store.incr("svc:x", now=0.0) == 1.0
    finally:
        await store.aclose()
    with pytest.raises(SpecError, match="on_state_error"):
        open_store(f"{redis_url}?on_state_error=maybe")
