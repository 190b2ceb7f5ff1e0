"""The total deadline and the attempt timeout, in virtual time (plus one real-clock check)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx2
import pytest

from tether import errors
from tether._clock import system_clock
from tether._config import Timeouts
from tether._context import context_of
from tether.events import DEADLINE_EXCEEDED, EventRecorder
from tether.pipeline._base import Pipeline, PolicyEnv
from tether.pipeline.deadline import AttemptTimeout, Deadline, run_within
from tether.pipeline.retry import Retry
from tether.testing import VirtualClock


def pipeline(env: PolicyEnv, handler, *options) -> Pipeline:  # type: ignore[no-untyped-def]
    return Pipeline.build(list(options), env, handler)


# --- options ---------------------------------------------------------------------------------


def test_options_normalise_durations_and_state_the_rule() -> None:
    """Durations accept strings and timedeltas; zero or negative values are refused by name."""
    assert Deadline("30s").total == 30.0
    assert Deadline(timedelta(milliseconds=1500)).total == 1.5
    assert AttemptTimeout("250ms").attempt == 0.25
    assert Deadline.kind == "deadline"
    assert AttemptTimeout.kind == "attempt_timeout"
    with pytest.raises(ValueError, match=r"Deadline.total must be positive and finite, got 0"):
        Deadline(0)
    with pytest.raises(ValueError, match=r"AttemptTimeout.attempt must be positive"):
        AttemptTimeout(-1)


def test_timeouts_validate_attempt_not_above_total() -> None:
    """An attempt timeout longer than the total deadline is refused, naming both values."""
    with pytest.raises(ValueError, match=r"timeouts.attempt \(90s\) must not exceed timeouts.total \(60s\)"):
        Timeouts(attempt=90, total=60)


# --- total deadline --------------------------------------------------------------------------


async def test_deadline_sets_context_from_the_calls_timeouts(env, script, make_request, clock) -> None:
    """With no number of its own, the deadline is now + ctx.timeouts.total."""
    clock.advance(100)
    handler = script(200)
    request = make_request(timeouts=Timeouts(total=7))
    await Deadline().build(env)(request, handler)
    assert context_of(request).deadline == 107.0


async def test_deadline_keeps_an_earlier_caller_deadline(env, script, make_request) -> None:
    """A deadline the caller already set that is sooner than total stays in force."""
    request = make_request(deadline=3.0)
    await Deadline(60).build(env)(request, script(200))
    assert context_of(request).deadline == 3.0


async def test_deadline_tightens_a_later_caller_deadline(env, script, make_request) -> None:
    """A caller deadline later than now + total is pulled in to now + total."""
    request = make_request(deadline=500.0)
    await Deadline(60).build(env)(request, script(200))
    assert context_of(request).deadline == 60.0


async def test_call_finishing_in_time_returns_its_response(
    env, script, make_request, reply, recorder
) -> None:
    """An attempt that ends before the deadline returns normally and emits nothing."""
    response = await Deadline(10).build(env)(make_request(), script(reply(200, delay=9.5)))
    assert response.status_code == 200
    assert recorder.of(DEADLINE_EXCEEDED) == []


async def test_deadline_expiry_raises_total_timeout_at_exactly_total(
    env, script, make_request, hang, clock, recorder
) -> None:
    """A call still running at the deadline is cancelled and fails with TimeoutError(phase='total')."""
    with pytest.raises(errors.TimeoutError) as info:
        await Deadline(5).build(env)(make_request(), script(hang))
    assert info.value.phase == "total"
    assert clock.monotonic() == 5.0
    [event] = recorder.of(DEADLINE_EXCEEDED)
    assert event.fields["phase"] == "total"
    assert event.fields["timeout"] == 5.0


async def test_deadline_already_passed_fails_without_calling(env, script, make_request, clock) -> None:
    """A call whose caller deadline has already passed is not started."""
    clock.advance(10)
    handler = script(200)
    with pytest.raises(errors.TimeoutError):
        await Deadline(60).build(env)(make_request(deadline=5.0), handler)
    assert handler.calls == 0


async def test_deadline_none_still_enforces_a_caller_deadline(env, script, make_request, hang, clock) -> None:
    """Deadline(None) adds no limit of its own but still enforces ctx.deadline."""
    with pytest.raises(errors.TimeoutError):
        await Deadline(None).build(env)(make_request(deadline=2.0), script(hang))
    assert clock.monotonic() == 2.0


async def test_deadline_off_entirely_passes_through(env, script, make_request, reply) -> None:
    """With no total and no caller deadline, the call runs unbounded."""
    request = make_request(timeouts=Timeouts(total=None))
    response = await Deadline().build(env)(request, script(reply(200, delay=1000)))
    assert response.status_code == 200
    assert context_of(request).deadline is None


async def test_deadline_covers_backoff_sleeps(env, script, make_request, clock, recorder) -> None:
    """Retry stops before a backoff sleep that would pass the deadline and raises the last error."""
    handler = script(503)
    p = pipeline(env, handler, Deadline(10), Retry(jitter=False, attempts=10, budget=None))
    with pytest.raises(errors.APIError) as info:
        await p(make_request())
    assert info.value.status_code == 503
    # attempts at 0, 1, 3, 7; the next wait (8 s) would end at 15 > 10, so no sleep past 7
    assert handler.times == [0.0, 1.0, 3.0, 7.0]
    assert clock.monotonic() == 7.0
    assert recorder.of("retry.gave_up")[0].fields["reason"] == "deadline"


async def test_deadline_cuts_a_slow_retry_attempt(env, script, make_request, reply, hang, clock) -> None:
    """An attempt still running at the deadline ends the whole call with a total timeout, not retried."""
    handler = script(503, hang)
    p = pipeline(env, handler, Deadline(4), Retry(jitter=False, budget=None))
    with pytest.raises(errors.TimeoutError) as info:
        await p(make_request())
    assert info.value.phase == "total"
    assert handler.calls == 2
    assert clock.monotonic() == 4.0


# --- attempt timeout -------------------------------------------------------------------------


async def test_attempt_timeout_bounds_one_attempt(env, script, make_request, hang, clock, recorder) -> None:
    """An attempt longer than the attempt timeout fails with TimeoutError(phase='attempt')."""
    with pytest.raises(errors.TimeoutError) as info:
        await AttemptTimeout(2).build(env)(make_request(), script(hang))
    assert info.value.phase == "attempt"
    assert clock.monotonic() == 2.0
    assert recorder.of(DEADLINE_EXCEEDED)[0].fields["phase"] == "attempt"


async def test_attempt_timeout_reads_the_calls_timeouts(env, script, make_request, hang, clock) -> None:
    """AttemptTimeout() takes ctx.timeouts.attempt; off when that is None."""
    policy = AttemptTimeout().build(env)
    with pytest.raises(errors.TimeoutError):
        await policy(make_request(timeouts=Timeouts(attempt=3)), script(hang))
    assert clock.monotonic() == 3.0
    response = await policy(make_request(), script(200))
    assert response.status_code == 200


async def test_attempt_timeouts_are_retried_and_each_attempt_is_bounded(
    env, script, make_request, reply, hang, clock
) -> None:
    """A timed-out attempt is retried; each attempt gets the full attempt timeout again."""
    handler = script(hang, hang, reply(200))
    p = pipeline(env, handler, Retry(jitter=False, budget=None), AttemptTimeout(2))
    response = await p(make_request())
    assert response.status_code == 200
    # 0 → timeout at 2, sleep 1 → 3 → timeout at 5, sleep 2 → 7
    assert handler.times == [0.0, 3.0, 7.0]
    assert handler.attempts == [1, 2, 3]


async def test_nested_limits_report_the_one_that_expired(env, script, make_request, hang, clock) -> None:
    """With a total deadline shorter than the attempt timeout, the total deadline is reported."""
    p = pipeline(env, script(hang), Deadline(1), AttemptTimeout(5))
    with pytest.raises(errors.TimeoutError) as info:
        await p(make_request())
    assert info.value.phase == "total"
    assert clock.monotonic() == 1.0


# --- run_within ------------------------------------------------------------------------------


async def test_run_within_does_not_swallow_an_outside_cancellation(clock: VirtualClock) -> None:
    """Cancelling the caller from outside is a CancelledError, not a timeout."""

    async def body() -> None:
        await run_within(
            clock, 100, lambda: asyncio.Event().wait(), on_expiry=lambda: errors.TimeoutError("x")
        )

    task = asyncio.create_task(body())
    await clock.sleep(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_run_within_leaves_no_pending_cancellation(clock: VirtualClock) -> None:
    """After an expiry is turned into an error, the task can keep awaiting normally."""
    with pytest.raises(errors.TimeoutError):
        await run_within(clock, 1, lambda: clock.sleep(5), on_expiry=lambda: errors.TimeoutError("x"))
    current = asyncio.current_task()
    assert current is not None
    assert current.cancelling() == 0
    await clock.sleep(1)
    assert clock.monotonic() == 2.0


async def test_run_within_keeps_context_variables(clock: VirtualClock) -> None:
    """The guarded code runs in the caller's task, so context variables it sets are seen after."""
    import contextvars

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="before")

    async def body() -> int:
        var.set("after")
        return 1

    assert await run_within(clock, 5, body, on_expiry=lambda: errors.TimeoutError("x")) == 1
    assert var.get() == "after"


@pytest.mark.realtime
async def test_deadline_works_on_the_system_clock(make_request, script, hang) -> None:
    """The same policy enforces a small deadline on the real clock."""
    recorder = EventRecorder()
    from tether.events import EventBus

    env = PolicyEnv(service="svc", clock=system_clock, events=EventBus([recorder]))

    async def never(request: httpx2.Request) -> httpx2.Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    with pytest.raises(errors.TimeoutError) as info:
        await Deadline(0.05).build(env)(make_request(), never)
    assert info.value.phase == "total"
    assert recorder.names() == [DEADLINE_EXCEEDED]


# --- end to end ------------------------------------------------------------------------------


@pytest.mark.realtime
async def test_end_to_end_total_deadline_through_the_client(fault_server) -> None:  # type: ignore[no-untyped-def]
    """Through tether.Client on loopback, a server that never answers ends in TimeoutError(total)."""
    import tether
    from tether.mock import Fault

    fault_server.route("GET", "/stuck", Fault.hang())
    async with tether.Client(fault_server.url, policies=[Deadline(0.2)]) as client:
        with pytest.raises(errors.TimeoutError) as info:
            await client.get("/stuck")
    assert info.value.phase == "total"


@pytest.mark.realtime
async def test_end_to_end_attempt_timeout_is_retried(fault_server) -> None:  # type: ignore[no-untyped-def]
    """Through tether.Client, a hung first attempt times out and the retry gets the answer."""
    import tether
    from tether.mock import Fault

    fault_server.route("GET", "/slow-once", Fault.hang(), Fault.ok(json={"ok": True}))
    policies = [Retry(initial=0.01, max_delay=0.05), AttemptTimeout(0.2), Deadline(5)]
    async with tether.Client(fault_server.url, policies=policies) as client:
        response = await client.get("/slow-once")
    assert response.json() == {"ok": True}
    assert len(fault_server.requests("GET", "/slow-once")) == 2
