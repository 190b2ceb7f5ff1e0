"""Bulkhead: at most ``max_concurrent`` attempts in flight, a bounded FIFO queue for the rest.

A slot is held while one attempt runs below this policy (auth, attempt timeout, the transport)
and released when the attempt ends, however it ends: response, error or cancellation. When every
slot is taken, callers wait in first-in first-out order; when ``max_queue`` callers already
wait, the next one is rejected at once with ``BulkheadFull`` (``bulkhead.rejected``; nothing is
sent). A waiter gives up with ``BulkheadFull`` after ``queue_timeout``, or with
``TimeoutError(phase="total")`` when the call's deadline (``ctx.deadline``) comes first: a wait
that cannot end in time is not started.

The slots belong to one built policy (one client, one process); they are not shared through the
state store.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import ClassVar

import httpx2

from tether import events as ev
from tether._context import CallContext, context_of
from tether._units import Duration, parse_duration
from tether.errors import BulkheadFull, TimeoutError
from tether.pipeline._base import Handler, PolicyEnv
from tether.pipeline.deadline import run_within

__all__ = ["Bulkhead", "BulkheadPolicy"]


@dataclass(frozen=True, slots=True)
class Bulkhead:
    """Concurrency limit for one integration (DESIGN 4: 10 concurrent, bounded wait queue).

    ``max_concurrent``: attempts in flight at once (at least 1). ``max_queue``: callers that may
    wait for a slot (0 = reject as soon as every slot is taken). ``queue_timeout``: the longest
    a caller waits for a slot (``None``: until the call's deadline).
    """

    kind: ClassVar[str] = "bulkhead"
    DEFAULT_MAX_CONCURRENT: ClassVar[int] = 10
    DEFAULT_MAX_QUEUE: ClassVar[int] = 10
    DEFAULT_QUEUE_TIMEOUT: ClassVar[None] = None

    max_concurrent: int = DEFAULT_MAX_CONCURRENT
    max_queue: int = DEFAULT_MAX_QUEUE
    queue_timeout: Duration | None = DEFAULT_QUEUE_TIMEOUT

    def __post_init__(self) -> None:
        if isinstance(self.max_concurrent, bool) or not isinstance(self.max_concurrent, int):
            raise ValueError(f"Bulkhead.max_concurrent must be an integer, got {self.max_concurrent!r}")
        if self.max_concurrent < 1:
            raise ValueError(f"Bulkhead.max_concurrent must be at least 1, got {self.max_concurrent}")
        if isinstance(self.max_queue, bool) or not isinstance(self.max_queue, int):
            raise ValueError(f"Bulkhead.max_queue must be an integer, got {self.max_queue!r}")
        if self.max_queue < 0:
            raise ValueError(f"Bulkhead.max_queue must be zero or more, got {self.max_queue}")
        if self.queue_timeout is not None:
            seconds = parse_duration(self.queue_timeout, name="Bulkhead.queue_timeout", allow_zero=False)
            object.__setattr__(self, "queue_timeout", seconds)

    def build(self, env: PolicyEnv) -> BulkheadPolicy:
        return BulkheadPolicy(self, env)


class BulkheadPolicy:
    """Runtime of ``Bulkhead``: a counting semaphore with a bounded FIFO queue on the injected clock."""

    __slots__ = ("_env", "_in_flight", "_max_concurrent", "_max_queue", "_queue_timeout", "_waiters")

    def __init__(self, options: Bulkhead, env: PolicyEnv) -> None:
        self._env = env
        self._max_concurrent = options.max_concurrent
        self._max_queue = options.max_queue
        self._queue_timeout = (
            None
            if options.queue_timeout is None
            else parse_duration(options.queue_timeout, name="Bulkhead.queue_timeout")
        )
        self._in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    def status(self) -> dict[str, int]:
        """Attempts in flight, callers waiting, and the limits."""
        return {
            "in_flight": self._in_flight,
            "queued": len(self._waiters),
            "max_concurrent": self._max_concurrent,
            "max_queue": self._max_queue,
        }

    async def __call__(self, request: httpx2.Request, next: Handler) -> httpx2.Response:
        ctx = context_of(request)
        await self._acquire(ctx, request)
        try:
            return await next(request)
        finally:
            self._release()

    # --- slots -----------------------------------------------------------------------------

    async def _acquire(self, ctx: CallContext, request: httpx2.Request) -> None:
        if self._in_flight < self._max_concurrent and not self._waiters:
            self._in_flight += 1
            return
        if len(self._waiters) >= self._max_queue:
            raise self._reject(ctx, request, "queue_full")
        clock = self._env.clock
        limit = self._queue_timeout
        remaining = ctx.remaining(clock.monotonic())
        deadline_first = remaining is not None and (limit is None or remaining <= limit)
        wait = remaining if deadline_first else limit
        if wait is not None and wait <= 0:
            raise self._deadline_error(ctx)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        events = self._env.events
        if events.active:
            events.emit(
                ev.BULKHEAD_QUEUED,
                endpoint=ctx.endpoint,
                queued=len(self._waiters),
                in_flight=self._in_flight,
                attempt=ctx.attempt,
            )
        try:
            if wait is None:
                await waiter
            else:

                def expired() -> BaseException:
                    if deadline_first:
                        return self._deadline_error(ctx)
                    return self._reject(ctx, request, "queue_timeout")

                await run_within(clock, wait, lambda: waiter, on_expiry=expired)
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._release()  # the slot was handed to us just as we gave up: pass it on
            else:
                waiter.cancel()
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    pass
            raise

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # hand the slot over: in_flight stays the same
                return
        self._in_flight -= 1

    # --- errors ----------------------------------------------------------------------------

    def _reject(self, ctx: CallContext, request: httpx2.Request, reason: str) -> BulkheadFull:
        events = self._env.events
        if events.active:
            events.emit(
                ev.BULKHEAD_REJECTED,
                endpoint=ctx.endpoint,
                reason=reason,
                in_flight=self._in_flight,
                queued=len(self._waiters),
                method=request.method,
            )
        if reason == "queue_full":
            message = (
                f"bulkhead full: {self._in_flight} of {self._max_concurrent} attempts in flight and "
                f"{len(self._waiters)} of {self._max_queue} queue places taken; nothing was sent"
            )
        else:
            message = (
                f"bulkhead: no slot of {self._max_concurrent} became free within the queue timeout "
                f"of {self._queue_timeout:g}s; nothing was sent"
            )
        return BulkheadFull(message, service=ctx.service, endpoint=ctx.endpoint, request_id=ctx.request_id)

    def _deadline_error(self, ctx: CallContext) -> TimeoutError:
        events = self._env.events
        if events.active:
            events.emit(ev.DEADLINE_EXCEEDED, endpoint=ctx.endpoint, phase="total", waiting_for="bulkhead")
        return TimeoutError(
            "the call's deadline passed while waiting for a bulkhead slot; nothing was sent",
            phase="total",
            service=ctx.service,
            endpoint=ctx.endpoint,
            request_id=ctx.request_id,
        )

    def __repr__(self) -> str:
        return (
            f"BulkheadPolicy(in_flight={self._in_flight}/{self._max_concurrent}, "
            f"queued={len(self._waiters)}/{self._max_queue})"
        )
