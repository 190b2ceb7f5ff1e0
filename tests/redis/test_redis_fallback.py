"""on_state_error: a failing shared store degrades to local state (and says so) or fails loudly."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from tether import events as ev
from tether.errors import StateStoreError
from tether.events import EventBus, EventRecorder
from tether.state._fallback import FallbackStore
from tether.state._protocol import BreakerConfig, RateWindow
from tether.state.redis import RedisStore
from tether.testing import VirtualClock

pytestmark = pytest.mark.redis

DEAD = "redis://127.0.0.1:1/0"  # nothing listens on port 1: every call fails at once


def _fallback(url: str, clock: VirtualClock, recorder: EventRecorder, **kwargs: Any) -> FallbackStore:
    return FallbackStore(
        RedisStore(url, timeout=0.5, namespace="fb:"),
        events=EventBus([recorder]),
        clock=clock,
        **kwargs,
    )


async def test_fail_raises_the_state_store_error() -> None:
    """on_state_error='fail': the operation raises StateStoreError and nothing runs locally."""
    store = FallbackStore(RedisStore(DEAD, timeout=0.3), on_state_error="fail")
    with pytest.raises(StateStoreError):
        await store.rate_acquire("svc:rate", [RateWindow(1, 1.0)], now=0.0)
    assert (store.mode, store.local_operations) == ("shared", 0)
    await store.aclose()


async def test_local_keeps_answering_and_says_so_once() -> None:
    """Every operation succeeds on local state; one state.local event with the error, not one per call."""
    clock, recorder = VirtualClock(), EventRecorder()
    store = _fallback(DEAD, clock, recorder)
    window = RateWindow(2, 1.0, 2)
    grants = [await store.rate_acquire("svc:rate", [window], now=0.0) for _ in range(3)]
    assert [g.wait for g in grants] == [0.0, 0.0, pytest.approx(0.5)], "the local limiter still limits"
    assert await store.incr("svc:n", now=0.0) == 1.0
    assert await store.try_lock("svc:l", "me", ttl=5.0, now=0.0)
    assert recorder.names() == [ev.STATE_LOCAL]
    event = recorder.events[0]
    assert event.level == logging.WARNING
    assert event.fields["switches"] == 1
    assert "127.0.0.1:1" in event.fields["error"]
    assert store.mode == "local"
    await store.aclose()


async def test_no_retry_before_retry_every_then_one_probe(
    redis_server_factory: Callable[..., Any],
) -> None:
    """While local, Redis is not called until retry_every has passed; then one call switches back."""
    server = redis_server_factory()
    clock, recorder = VirtualClock(), EventRecorder()
    store = _fallback(server.url, clock, recorder, retry_every=3.0)
    try:
        assert await store.incr("svc:n", now=0.0) == 1.0  # shared
        server.kill()
        assert await store.incr("svc:n", now=0.0) == 1.0  # local, fresh
        server.start()  # back, but not retried yet
        clock.advance(2.9)
        assert await store.incr("svc:n", now=0.0) == 2.0, "still local: not due for a retry"
        assert store.mode == "local"
        clock.advance(0.1)
        assert await store.incr("svc:n", now=0.0) == 1.0, "the restarted Redis forgot everything"
        assert store.mode == "shared"
        assert recorder.names() == [ev.STATE_LOCAL, ev.STATE_SHARED]
        shared = recorder.events[1]
        assert (shared.fields["switches"], shared.fields["local_operations"]) == (2, 2)
    finally:
        await store.aclose()


async def test_a_failed_retry_stays_local_and_schedules_the_next(
    redis_server_factory: Callable[..., Any],
) -> None:
    """A retry that fails again keeps local state without a second state.local event."""
    server = redis_server_factory()
    clock, recorder = VirtualClock(), EventRecorder()
    store = _fallback(server.url, clock, recorder, retry_every=1.0)
    try:
        server.kill()
        await store.get("svc:v", now=0.0)
        clock.advance(1.0)
        await store.get("svc:v", now=0.0)  # the retry: fails, stays local
        assert (store.mode, recorder.names()) == ("local", [ev.STATE_LOCAL])
        server.start()
        await store.get("svc:v", now=0.0)
        assert store.mode == "local", "the next retry is a full retry_every after the failed one"
        clock.advance(1.0)
        await store.get("svc:v", now=0.0)
        assert recorder.names() == [ev.STATE_LOCAL, ev.STATE_SHARED]
    finally:
        await store.aclose()


async def test_breaker_permits_go_back_to_the_store_that_issued_them(
    redis_server_factory: Callable[..., Any],
) -> None:
    """A probe permit from local state, recorded after the switch back, never decides the shared circuit."""
    server = redis_server_factory()
    clock, recorder = VirtualClock(), EventRecorder()
    store = _fallback(server.url, clock, recorder, retry_every=1.0)
    config = BreakerConfig(failures=1, open_for=1.0, close_after=1)
    try:
        server.kill()
        local = await store.breaker_acquire("svc:breaker", config, now=0.0)
        assert local.granted and store.mode == "local"
        server.start()
        clock.advance(1.0)
        await store.breaker_force("svc:breaker", "isolated", config, now=1.0)  # shared again
        assert store.mode == "shared"
        update = await store.breaker_record("svc:breaker", local, "failure", config, now=1.5)
        assert update.transitions[0].reason == "failures", "recorded on the local circuit it came from"
        shared = await store.shared.breaker_status("svc:breaker", config, now=2.0)
        assert shared.state == "isolated"
    finally:
        await store.aclose()


async def test_without_listeners_a_switch_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """With no event listener bound, the switch goes to the tether.state logger as one warning."""
    store = FallbackStore(RedisStore(DEAD, timeout=0.3))
    with caplog.at_level(logging.INFO, logger="tether.state"):
        await store.get("svc:v", now=0.0)
        await store.get("svc:v", now=0.0)
    lines = [r for r in caplog.records if r.name == "tether.state"]
    assert len(lines) == 1
    assert lines[0].levelno == logging.WARNING
    assert ev.STATE_LOCAL in lines[0].getMessage()
    await store.aclose()


def test_bad_options_are_refused() -> None:
    """on_state_error and retry_every are validated, naming the bad value."""
    with pytest.raises(ValueError, match="'sometimes'"):
        FallbackStore(RedisStore(DEAD), on_state_error="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="retry_every"):
        FallbackStore(RedisStore(DEAD), retry_every=0)
