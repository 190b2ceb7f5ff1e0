"""The Lua scripts are exact ports: random operation sequences give the same answers on Redis as
the pure functions in tether.state._algorithms (through the memory store)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tether.state._protocol import BreakerConfig, BreakerPermit, RateWindow, StateStore
from tether.state.memory import MemoryStore
from tether.state.redis import RedisStore

pytestmark = pytest.mark.redis

#: Epoch-sized times, so the comparison covers the precision real timestamps need.
T0 = 1_800_000_000.0

WINDOW_SETS = [
    [RateWindow(3, 1.0, 2)],
    [RateWindow(5, 2.0, 1), RateWindow(20, 60.0, 3)],
    [RateWindow(7, 0.7, 3), RateWindow(10, 1.0, 2), RateWindow(1000, 3600.0, 2)],
]

CONFIGS = [
    BreakerConfig(
        failures=2, window=5.0, open_for=2.0, half_open_calls=2, close_after=2, half_open_timeout=3.0
    ),
    BreakerConfig(mode="rate", window_calls=5, min_calls=3, failure_rate=0.5, open_for=1.5),
    BreakerConfig(
        mode="rate", window=6.0, min_calls=3, failure_rate=0.34, open_for=1.0, half_open_timeout=0.8
    ),
]

steps = st.floats(min_value=0.0, max_value=2.5, allow_nan=False)

rate_op = st.one_of(
    st.tuples(
        st.just("acquire"),
        st.one_of(steps, st.floats(0.0, 0.05)),  # a crowd arriving at once fills the queue
        st.integers(0, len(WINDOW_SETS) - 1),
        st.integers(1, 2),
        st.one_of(st.none(), st.floats(0.0, 4.0)),
        st.one_of(st.none(), st.integers(0, 4)),
    ),
    st.tuples(st.just("pause"), steps, st.floats(-1.0, 5.0)),
    st.tuples(st.just("status"), steps, st.integers(0, len(WINDOW_SETS) - 1)),
)

outcomes = st.sampled_from(["success", "success", "failure", "failure", "ignored"])

breaker_op = st.one_of(
    st.tuples(st.just("call"), steps, outcomes),
    st.tuples(st.just("call"), st.floats(0.0, 0.3), outcomes),
    st.tuples(st.just("acquire"), steps),
    st.tuples(st.just("record"), steps, st.one_of(st.just(0), st.integers(0, 50)), outcomes),
    st.tuples(st.just("force"), steps, st.sampled_from(["isolated", "closed"])),
    st.tuples(st.just("status"), steps),
)


async def _rate_answer(store: StateStore, op: tuple[Any, ...], now: float) -> Any:
    if op[0] == "acquire":
        _, _, ws, cost, max_wait, max_queue = op
        windows = WINDOW_SETS[ws]
        cost = min(cost, *(w.burst for w in windows))
        return await store.rate_acquire(
            "svc:rate", windows, now=now, cost=cost, max_wait=max_wait, max_queue=max_queue
        )
    if op[0] == "pause":
        return await store.rate_pause("svc:rate", now + op[2], now=now)
    return await store.rate_status("svc:rate", WINDOW_SETS[op[2]], now=now)


async def _run_rate(redis_url: str, ops: list[tuple[Any, ...]]) -> None:
    reference = MemoryStore()
    redis = RedisStore(redis_url, namespace=f"h-{uuid.uuid4().hex[:12]}:", timeout=5.0)
    try:
        now = T0
        for i, op in enumerate(ops):
            now += op[1]
            expected = await _rate_answer(reference, op, now)
            got = await _rate_answer(redis, op, now)
            assert got == expected, f"step {i}: {op}"
    finally:
        await redis.aclose()


async def _breaker_answer(
    store: StateStore, config: BreakerConfig, op: tuple[Any, ...], now: float, permits: list[BreakerPermit]
) -> Any:
    if op[0] == "call":  # one whole call: acquire, then its outcome at once
        permit = await store.breaker_acquire("svc:breaker", config, now=now)
        if not permit.granted:
            return permit
        return permit, await store.breaker_record("svc:breaker", permit, op[2], config, now=now)
    if op[0] == "acquire":
        permit = await store.breaker_acquire("svc:breaker", config, now=now)
        if permit.granted:
            permits.append(permit)
        return permit
    if op[0] == "record":  # the outcome of a call still in flight, newest first by default
        if not permits:
            return None
        permit = permits.pop(-1 - op[2] % len(permits))
        return await store.breaker_record("svc:breaker", permit, op[3], config, now=now)
    if op[0] == "force":
        return await store.breaker_force("svc:breaker", op[2], config, now=now)
    return await store.breaker_status("svc:breaker", config, now=now)


async def _run_breaker(redis_url: str, config: BreakerConfig, ops: list[tuple[Any, ...]]) -> None:
    reference = MemoryStore()
    redis = RedisStore(redis_url, namespace=f"h-{uuid.uuid4().hex[:12]}:", timeout=5.0)
    expected_permits: list[BreakerPermit] = []
    got_permits: list[BreakerPermit] = []
    try:
        now = T0
        for i, op in enumerate(ops):
            now += op[1]
            expected = await _breaker_answer(reference, config, op, now, expected_permits)
            got = await _breaker_answer(redis, config, op, now, got_permits)
            assert got == expected, f"step {i}: {op}"
    finally:
        await redis.aclose()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(rate_op, min_size=5, max_size=40))
def test_rate_scripts_agree_with_the_algorithms(redis_url: str, ops: list[tuple[Any, ...]]) -> None:
    """Any sequence of acquires, pauses and status reads gives identical grants and snapshots."""
    asyncio.run(_run_rate(redis_url, ops))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=st.sampled_from(CONFIGS), ops=st.lists(breaker_op, min_size=10, max_size=60))
def test_breaker_scripts_agree_with_the_algorithms(
    redis_url: str, config: BreakerConfig, ops: list[tuple[Any, ...]]
) -> None:
    """Any sequence of acquires, outcomes, forces and status reads gives identical permits and updates."""
    asyncio.run(_run_breaker(redis_url, config, ops))
