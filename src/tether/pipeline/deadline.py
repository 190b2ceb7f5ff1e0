"""Time limits: the call's total deadline and the per-attempt timeout.

Two policies, two slots in ``ORDER``:

- ``Deadline`` (kind ``"deadline"``) sets ``CallContext.deadline`` to ``clock.monotonic() +
  total`` (an earlier deadline the caller set is kept) and runs everything below it under that
  deadline: rate-limit queueing, bulkhead queueing, backoff sleeps and every attempt. When it
  passes, the call ends with ``TimeoutError(phase="total")`` and a ``deadline.exceeded`` event.
  The waits below it also read ``ctx.deadline`` themselves, so they refuse a wait that could not
  finish in time instead of starting it.
- ``AttemptTimeout`` (kind ``"attempt_timeout"``) bounds one attempt (send and read the body)
  and raises ``TimeoutError(phase="attempt")``, which the retry policy may retry.

Both take their number from the call's ``Timeouts`` (``ctx.timeouts.total`` / ``.attempt``) unless
the options fix one, so a per-request ``timeout=`` applies. The limit is enforced on the injected
clock (``run_within``) rather than with ``asyncio.timeout``, which reads the event loop's real
clock: the same code runs against ``SystemClock`` and, in tests, ``VirtualClock``. The guarded
code keeps running in the caller's task (a small watchdog task cancels it, as
``asyncio.timeout`` does), so context variables set below are seen above.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import httpx2

from tether import events as ev
from tether._clock import Clock, SystemClock
from tether._config import DEFAULT, Default
from tether._context import CallContext, context_of
from tether._units import Duration, parse_duration
from tether.errors import TimeoutError
from tether.pipeline._base import Handler, PolicyEnv

__all__ = ["AttemptTimeout", "AttemptTimeoutPolicy", "Deadline", "DeadlinePolicy", "run_within"]

T = TypeVar("T")


async def run_within(
    clock: Clock,
    seconds: float,
    fn: Callable[[], Awaitable[T]],
    *,
    on_expiry: Callable[[], BaseException],
) -> T:
    """Run ``fn()`` in the current task; if ``seconds`` of ``clock`` time pass first, cancel it
    and raise ``on_expiry()`` instead.

    Works with any ``Clock``: a watchdog task sleeps on ``clock.sleep`` and cancels the caller,
    counting cancellations like ``asyncio.timeout`` so nested limits (and an outside
    ``task.cancel()``) each get the right exception. ``seconds <= 0`` raises at once without
    calling ``fn``.
    """
    if seconds <= 0:
        raise on_expiry()
    task = asyncio.current_task()
    if task is None:  # pragma: no cover - always inside a task under asyncio
        raise RuntimeError("run_within must be awaited inside an asyncio task")
    baseline = task.cancelling()
    fired = False

    def fire() -> None:
        nonlocal fired
        fired = True
        task.cancel()

    stop: asyncio.TimerHandle | asyncio.Task[None]
    if isinstance(clock, SystemClock):
        # The real clock is the loop's clock: a timer handle is far cheaper than a watchdog task.
        loop = asyncio.get_running_loop()
        stop = loop.call_at(loop.time() + seconds, fire)
    else:
        until = clock.monotonic() + seconds

        async def watchdog() -> None:
            await clock.sleep(until - clock.monotonic())
            fire()

        stop = asyncio.get_running_loop().create_task(watchdog())
    try:
        result = await fn()
    except asyncio.CancelledError:
        if fired and task.uncancel() <= baseline:
            raise on_expiry() from None
        raise
    except BaseException as exc:
        if fired:  # fn turned our cancellation into another error: the time still ran out
            task.uncancel()
            raise on_expiry() from exc
        raise
    finally:
        stop.cancel()
    if fired:  # fn swallowed our cancellation and finished anyway: keep its result
        task.uncancel()
    return result


def _seconds(value: Duration | Default | None, name: str) -> float | Default | None:
    if value is None or isinstance(value, Default):
        return value
    return parse_duration(value, name=name, allow_zero=False)


# --- total deadline --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Deadline:
    """The call's total deadline: covers every wait and attempt below it.

    ``total``: seconds (or ``"30s"``, ``timedelta``); ``DEFAULT`` takes ``ctx.timeouts.total``
    of each call (the client's ``Timeouts``, default 60 s, or the request's ``timeout=``);
    ``None`` means no deadline of its own (a deadline the caller set is still enforced).
    """

    kind: ClassVar[str] = "deadline"
    DEFAULT_TOTAL: ClassVar[float] = 60.0

    total: Duration | Default | None = DEFAULT

    def __post_init__(self) -> None:
        object.__setattr__(self, "total", _seconds(self.total, "Deadline.total"))

    def build(self, env: PolicyEnv) -> DeadlinePolicy:
        return DeadlinePolicy(self, env)


class DeadlinePolicy:
    """Runtime of ``Deadline``: sets ``ctx.deadline`` and enforces it."""

    __slots__ = ("_clock", "_env", "_total")

    def __init__(self, options: Deadline, env: PolicyEnv) -> None:
        total = options.total
        self._total = _seconds(total, "Deadline.total")
        self._env = env
        self._clock = env.clock

    def _total_for(self, ctx: CallContext) -> float | None:
        return ctx.timeouts.total if isinstance(self._total, Default) else self._total

    async def __call__(self, request: httpx2.Request, next: Handler) -> httpx2.Response:
        ctx = context_of(request)
        now = self._clock.monotonic()
        total = self._total_for(ctx)
        if total is not None:
            mine = now + total
            if ctx.deadline is None or mine < ctx.deadline:
                ctx.deadline = mine
        if ctx.deadline is None:
            return await next(request)
        remaining = ctx.deadline - now

        def expired() -> TimeoutError:
            return self._expired(ctx, request, total)

        return await run_within(self._clock, remaining, lambda: next(request), on_expiry=expired)

    def _expired(self, ctx: CallContext, request: httpx2.Request, total: float | None) -> TimeoutError:
        events = self._env.events
        if events.active:
            events.emit(
                ev.DEADLINE_EXCEEDED,
                endpoint=ctx.endpoint,
                phase="total",
                timeout=total,
                attempt=ctx.attempt,
                method=request.method,
            )
        limit = f" of {total:g}s" if total is not None else ""
        return TimeoutError(
            f"the call's total deadline{limit} passed (after {max(ctx.attempt, 1)} attempt(s))",
            phase="total",
            service=ctx.service,
            endpoint=ctx.endpoint,
            request_id=ctx.request_id,
        )


# --- attempt timeout -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttemptTimeout:
    """Bounds one attempt (send the request and read the body).

    ``attempt``: seconds; ``DEFAULT`` takes ``ctx.timeouts.attempt`` of each call (off unless the
    ``Timeouts`` set one); ``None`` turns it off.
    """

    kind: ClassVar[str] = "attempt_timeout"
    DEFAULT_ATTEMPT: ClassVar[None] = None

    attempt: Duration | Default | None = DEFAULT

    def __post_init__(self) -> None:
        object.__setattr__(self, "attempt", _seconds(self.attempt, "AttemptTimeout.attempt"))

    def build(self, env: PolicyEnv) -> AttemptTimeoutPolicy:
        return AttemptTimeoutPolicy(self, env)


class AttemptTimeoutPolicy:
    """Runtime of ``AttemptTimeout``."""

    __slots__ = ("_attempt", "_clock", "_env")

    def __init__(self, options: AttemptTimeout, env: PolicyEnv) -> None:
        value = options.attempt
        self._attempt = _seconds(value, "AttemptTimeout.attempt")
        self._env = env
        self._clock = env.clock

    async def __call__(self, request: httpx2.Request, next: Handler) -> httpx2.Response:
        ctx = context_of(request)
        limit = ctx.timeouts.attempt if isinstance(self._attempt, Default) else self._attempt
        if limit is None:
            return await next(request)
        seconds: float = limit

        def expired() -> TimeoutError:
            events = self._env.events
            if events.active:
                events.emit(
                    ev.DEADLINE_EXCEEDED,
                    endpoint=ctx.endpoint,
                    phase="attempt",
                    timeout=seconds,
                    attempt=ctx.attempt,
                    method=request.method,
                )
            return TimeoutError(
                f"attempt {max(ctx.attempt, 1)} took longer than the attempt timeout of {seconds:g}s",
                phase="attempt",
                service=ctx.service,
                endpoint=ctx.endpoint,
                request_id=ctx.request_id,
            )

        return await run_within(self._clock, seconds, lambda: next(request), on_expiry=expired)
