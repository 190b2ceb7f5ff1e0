"""The memory store: the whole StateStore protocol, one atomic call per operation, on one loop."""

from __future__ import annotations

import asyncio

import pytest

from tether.state import StateStore
from tether.state._protocol import BreakerConfig, RateWindow
from tether.state.memory import MemoryStore


def test_the_memory_store_implements_the_protocol() -> None:
    """MemoryStore has every method of StateStore (runtime-checkable protocol)."""
    assert isinstance(MemoryStore(), StateStore)


async def test_counters_expire_after_their_ttl() -> None:
    """incr creates a counter with a TTL; it reads 0 once the TTL has passed."""
    store = MemoryStore()
    assert await store.incr("c", 2.0, ttl=10.0, now=0.0) == 2.0
    assert await store.incr("c", 1.0, ttl=10.0, now=5.0) == 3.0
    assert await store.get_counter("c", now=10.0) == 0.0


async def test_values_and_locks_keep_their_semantics() -> None:
    """Values expire; a lock held by one owner refuses another until it expires or is released."""
    store = MemoryStore()
    await store.set("v", b"x", ttl=1.0, now=0.0)
    assert await store.get("v", now=0.5) == b"x"
    assert await store.get("v", now=1.0) is None
    assert await store.try_lock("l", "a", ttl=5.0, now=0.0)
    assert not await store.try_lock("l", "b", ttl=5.0, now=1.0)
    await store.unlock("l", "a")
    assert await store.try_lock("l", "b", ttl=5.0, now=1.0)


async def test_concurrent_acquires_get_distinct_fifo_slots() -> None:
    """Fifty concurrent rate_acquire calls on one key get fifty distinct slots in call order."""
    store = MemoryStore()
    window = RateWindow(10, 1.0)
    grants = await asyncio.gather(*(store.rate_acquire("k", [window], now=0.0) for _ in range(50)))
    waits = [g.wait for g in grants]
    assert waits == sorted(waits)
    assert waits == pytest.approx([i * 0.1 for i in range(50)])


async def test_rate_keys_are_independent() -> None:
    """Two limiter keys in one store do not spend each other's slots."""
    store = MemoryStore()
    window = RateWindow(1, 60.0)
    await store.rate_acquire("a", [window], now=0.0)
    grant = await store.rate_acquire("b", [window], now=0.0)
    assert grant.wait == 0.0


async def test_a_pause_reaches_every_caller_of_the_key() -> None:
    """rate_pause on a key makes the next acquire on that key wait until the pause ends."""
    store = MemoryStore()
    assert await store.rate_pause("k", 30.0, now=0.0) == 30.0
    grant = await store.rate_acquire("k", [RateWindow(100, 1.0, 10)], now=10.0)
    status = await store.rate_status("k", [RateWindow(100, 1.0, 10)], now=10.0)
    assert grant.wait == pytest.approx(20.0)
    assert status.paused_until == 30.0
    assert status.queued == 1


async def test_breaker_ops_share_one_circuit_per_key() -> None:
    """Failures recorded through one key open it; another key stays closed; force and status work."""
    store = MemoryStore()
    config = BreakerConfig(failures=2)
    for t in (0.0, 1.0):
        permit = await store.breaker_acquire("x", config, now=t)
        await store.breaker_record("x", permit, "failure", config, now=t)
    assert (await store.breaker_status("x", config, now=2.0)).state == "open"
    assert (await store.breaker_status("y", config, now=2.0)).state == "closed"
    update = await store.breaker_force("y", "isolated", config, now=3.0)
    assert update.snapshot.state == "isolated"
    rejected = await store.breaker_acquire("y", config, now=1000.0)
    assert not rejected.granted
    assert rejected.retry_after is None
    await store.breaker_force("y", "closed", config, now=1001.0)
    assert (await store.breaker_acquire("y", config, now=1002.0)).granted


async def test_aclose_forgets_everything() -> None:
    """After aclose the store holds no limiter or circuit state."""
    store = MemoryStore()
    await store.rate_acquire("k", [RateWindow(1, 60.0)], now=0.0)
    await store.breaker_force("b", "isolated", BreakerConfig(), now=0.0)
    await store.aclose()
    assert (await store.rate_acquire("k", [RateWindow(1, 60.0)], now=0.0)).wait == 0.0
    assert (await store.breaker_status("b", BreakerConfig(), now=0.0)).state == "closed"
