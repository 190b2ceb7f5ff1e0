"""The circuit breaker: stop calling a service that keeps failing, and probe it back to health.

States (DESIGN 4, seed REQ-001 5.4)::

    closed ──(5 consecutive failures within 60 s, or failure rate >= threshold)──► open
    open ──(open_for elapsed; the next call is a probe)──► half_open
    half_open ──(close_after consecutive probe successes)──► closed
    half_open ──(a probe fails, or no outcome within half_open_timeout)──► open
    any ──isolate()──► isolated ──reset()──► closed

While open the breaker fails fast with ``CircuitOpenError`` (``retry_after`` = seconds until
half-open) and never calls the layers below: no rate-limit token, no bulkhead slot, no network.
The refusal carries the root cause: the last failure this client saw (a ``ConnectionError``,
an ``APIError`` for a 503 …) is its ``__cause__`` and is named in its message, so a caller (and
a failures file) reports what is wrong upstream, not only that the circuit is open.
Half-open admits ``half_open_calls`` probes at a time; after each successful probe the next call
is admitted as a probe (AC-007). The breaker sits below retry, so it sees every attempt.

The state machine lives in the state store (``breaker_acquire`` / ``breaker_record``, one atomic
call each), so several clients — or processes, with a shared store — can share one circuit by
giving the same ``shared`` name.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, Literal

import httpx2

from tether import events as ev
from tether._context import CONTEXT_KEY, CallContext
from tether._units import Duration, parse_duration
from tether.errors import (
    APIError,
    CircuitOpenError,
    ConnectionError,
    Rejected,
    ResponseError,
    TetherError,
    TimeoutError,
    error_for_status,
)
from tether.pipeline._base import Handler, PolicyEnv
from tether.state._protocol import (
    BreakerConfig,
    BreakerOutcome,
    BreakerPermit,
    BreakerSnapshot,
    BreakerStateName,
    BreakerTransition,
    StateStore,
)
from tether.state.memory import MemoryStore

__all__ = ["Breaker", "BreakerPolicy", "BreakerStatus", "FailurePredicate"]

#: Statuses that count as failures by default: 429 and every 5xx.
DEFAULT_COUNT_STATUSES: Final[frozenset[int]] = frozenset({429, *range(500, 600)})
#: Error kinds that count as failures by default (see ``Breaker.count_errors``).
DEFAULT_COUNT_ERRORS: Final[frozenset[str]] = frozenset({"connection", "timeout", "response"})
ERROR_KINDS: Final[frozenset[str]] = frozenset({"connection", "timeout", "response"})

FailurePredicate = Callable[[BaseException | httpx2.Response], bool | None]
"""Decides an outcome: ``True`` failure, ``False`` success, ``None`` use the data rules."""

_EVENT_FOR: Final[dict[str, str]] = {
    "open": ev.BREAKER_OPENED,
    "isolated": ev.BREAKER_OPENED,
    "half_open": ev.BREAKER_HALF_OPENED,
    "closed": ev.BREAKER_CLOSED,
}


def _positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"Breaker.{name} must be a whole number >= 1, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Breaker:
    """Circuit breaker options (``kind = "breaker"``).

    ``failures`` consecutive failures within ``window`` open the circuit (``mode="consecutive"``);
    with ``mode="rate"`` it opens when, after ``min_calls`` calls in the window (the last
    ``window_calls`` calls, or the calls of the last ``window`` seconds), the failure share is
    ``>= failure_rate``. It stays open ``open_for``, then admits ``half_open_calls`` probes at a
    time; ``close_after`` consecutive probe successes close it; a probe failure, or a probe with no
    outcome within ``half_open_timeout``, re-opens it.

    Counted as failures: responses and errors whose status is in ``count_statuses`` (429, 5xx),
    and errors of the kinds in ``count_errors`` (``connection``, ``timeout``, ``response``: a body
    that could not be read). Ignored (counted neither way): local rejections (``Rejected``: the
    call never reached the service), other 4xx statuses, cancellation and anything else.
    ``is_failure`` decides first when given. ``shared`` names a circuit in the state store that
    several clients share; without it the circuit belongs to the service.
    """

    kind: ClassVar[str] = "breaker"

    DEFAULT_FAILURES: ClassVar[int] = 5
    DEFAULT_WINDOW: ClassVar[float] = 60.0
    DEFAULT_OPEN_FOR: ClassVar[float] = 30.0
    DEFAULT_HALF_OPEN_CALLS: ClassVar[int] = 1
    DEFAULT_CLOSE_AFTER: ClassVar[int] = 2
    DEFAULT_HALF_OPEN_TIMEOUT: ClassVar[float] = 60.0

    failures: int = DEFAULT_FAILURES
    window: Duration = DEFAULT_WINDOW
    open_for: Duration = DEFAULT_OPEN_FOR
    half_open_calls: int = DEFAULT_HALF_OPEN_CALLS
    close_after: int = DEFAULT_CLOSE_AFTER
    half_open_timeout: Duration = DEFAULT_HALF_OPEN_TIMEOUT
    mode: Literal["consecutive", "rate"] = "consecutive"
    failure_rate: float = 0.5
    min_calls: int = 10
    window_calls: int | None = None
    count_statuses: Iterable[int] = DEFAULT_COUNT_STATUSES
    count_errors: Iterable[str] = DEFAULT_COUNT_ERRORS
    is_failure: FailurePredicate | None = field(default=None, compare=False)
    shared: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "count_statuses", frozenset(self.count_statuses))
        object.__setattr__(self, "count_errors", frozenset(self.count_errors))
        self.config()  # validates

    def config(self) -> BreakerConfig:
        """The numbers the state store runs the state machine with (validated)."""
        if self.mode not in ("consecutive", "rate"):
            raise ValueError(f"Breaker.mode must be 'consecutive' or 'rate', got {self.mode!r}")
        rate = float(self.failure_rate)
        if not 0.0 < rate <= 1.0:
            raise ValueError(f"Breaker.failure_rate must be in (0, 1], got {self.failure_rate!r}")
        if self.window_calls is not None:
            _positive_int("window_calls", self.window_calls)
        for status in self.count_statuses:
            if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
                raise ValueError(f"Breaker.count_statuses must hold HTTP statuses, got {status!r}")
        unknown = set(self.count_errors) - ERROR_KINDS
        if unknown:
            known = ", ".join(sorted(ERROR_KINDS))
            raise ValueError(f"Breaker.count_errors knows {known}; got {', '.join(sorted(unknown))}")
        if self.shared is not None and not self.shared.strip():
            raise ValueError("Breaker.shared must be a non-empty name, got ''")
        return BreakerConfig(
            mode=self.mode,
            failures=_positive_int("failures", self.failures),
            window=parse_duration(self.window, name="Breaker.window", allow_zero=False),
            failure_rate=rate,
            min_calls=_positive_int("min_calls", self.min_calls),
            window_calls=self.window_calls,
            open_for=parse_duration(self.open_for, name="Breaker.open_for", allow_zero=False),
            half_open_calls=_positive_int("half_open_calls", self.half_open_calls),
            close_after=_positive_int("close_after", self.close_after),
            half_open_timeout=parse_duration(
                self.half_open_timeout, name="Breaker.half_open_timeout", allow_zero=False
            ),
        )

    def build(self, env: PolicyEnv) -> BreakerPolicy:
        return BreakerPolicy(self, env)


@dataclass(frozen=True, slots=True)
class BreakerStatus:
    """A circuit at one instant: for ``status()``, dashboards and ``tether status``."""

    state: BreakerStateName
    #: consecutive mode: failures in the current run; rate mode: failures in the window.
    failures: int
    #: rate mode: calls in the window.
    calls: int
    opened_at: datetime | None
    #: When an open circuit admits its next probe (``None`` unless open).
    half_open_at: datetime | None
    #: Seconds until ``half_open_at`` (0 when due; ``None`` unless open).
    retry_after: float | None

    @property
    def failure_rate(self) -> float:
        return self.failures / self.calls if self.calls else 0.0


def _error_of(response: httpx2.Response, ctx: CallContext | None) -> TetherError:
    """The typed error a failing response stands for (the root cause of a later refusal)."""
    try:
        return error_for_status(
            response, service=ctx.service if ctx else None, endpoint=ctx.endpoint if ctx else None
        )
    except (httpx2.ResponseNotRead, httpx2.StreamError):  # a streamed body: no problem fields
        return APIError(f"HTTP {response.status_code}", status_code=response.status_code)


def _dt(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


class BreakerPolicy:
    """The runtime breaker: one per client, its circuit in the state store."""

    __slots__ = ("_cause", "_clock", "_config", "_events", "_key", "_last", "_options", "_store")

    def __init__(self, options: Breaker, env: PolicyEnv) -> None:
        self._options = options
        self._config = options.config()
        self._clock = env.clock
        self._events = env.events
        self._store: StateStore = env.store if env.store is not None else MemoryStore()
        self._key = f"breaker:{options.shared}" if options.shared else f"{env.service}:breaker"
        self._last: BreakerSnapshot | None = None
        #: The last failure recorded: the root cause a refusal carries.
        self._cause: TetherError | None = None

    def __repr__(self) -> str:
        return f"BreakerPolicy(key={self._key!r}, state={self.status().state!r})"

    @property
    def key(self) -> str:
        """The circuit's key in the state store."""
        return self._key

    async def __call__(self, request: httpx2.Request, next: Handler) -> httpx2.Response:
        ctx = request.extensions.get(CONTEXT_KEY)
        ctx = ctx if isinstance(ctx, CallContext) else None
        endpoint = ctx.endpoint if ctx else None
        permit = await self._store.breaker_acquire(self._key, self._config, now=self._clock.time())
        self._observe(permit.transitions, permit.snapshot, endpoint)
        if not permit.granted:
            raise self._reject(permit, ctx)
        try:
            response = await next(request)
        except BaseException as exc:
            outcome = self.classify(exc)
            if outcome == "failure" and isinstance(exc, TetherError):
                self._cause = exc
            await self._record(permit, outcome, endpoint)
            raise
        outcome = self.classify(response)
        if outcome == "failure":
            self._cause = _error_of(response, ctx)
        await self._record(permit, outcome, endpoint)
        return response

    @property
    def last_failure(self) -> TetherError | None:
        """The last failure this client recorded (the cause an open circuit's refusal carries)."""
        return self._cause

    def classify(self, outcome: BaseException | httpx2.Response) -> BreakerOutcome:
        """Whether a response or error counts as a success, a failure, or neither."""
        options = self._options
        if options.is_failure is not None and not isinstance(outcome, asyncio.CancelledError):
            verdict = options.is_failure(outcome)
            if verdict is not None:
                return "failure" if verdict else "success"
        statuses = options.count_statuses
        assert isinstance(statuses, frozenset)
        if isinstance(outcome, httpx2.Response):
            if outcome.status_code in statuses:
                return "failure"
            return "ignored" if outcome.status_code >= 400 else "success"
        if isinstance(outcome, Rejected) or not isinstance(outcome, Exception):
            return "ignored"  # never reached the service, or cancelled / interpreter exit
        if isinstance(outcome, TetherError) and outcome.status_code is not None:
            return "failure" if outcome.status_code in statuses else "ignored"
        kinds = options.count_errors
        if "connection" in kinds and isinstance(outcome, ConnectionError | builtins.ConnectionError):
            return "failure"
        if "timeout" in kinds and isinstance(outcome, TimeoutError | builtins.TimeoutError):
            return "failure"
        if "response" in kinds and isinstance(outcome, ResponseError):
            return "failure"
        return "ignored"

    async def _record(self, permit: BreakerPermit, outcome: BreakerOutcome, endpoint: str | None) -> None:
        update = await self._store.breaker_record(
            self._key, permit, outcome, self._config, now=self._clock.time()
        )
        self._observe(update.transitions, update.snapshot, endpoint)

    def _reject(self, permit: BreakerPermit, ctx: CallContext | None) -> CircuitOpenError:
        state = permit.snapshot.state
        retry_after = permit.retry_after
        self._events.emit(
            ev.BREAKER_REJECTED,
            endpoint=ctx.endpoint if ctx else None,
            service=ctx.service if ctx else None,
            circuit=self._key,
            state=state,
            retry_after=retry_after,
        )
        cause = self._cause if state != "isolated" else None
        if state == "isolated":
            message = "circuit isolated by hand: failing fast until reset()"
        elif state == "half_open":
            message = "circuit half-open and every probe slot is taken: failing fast"
        else:
            message = f"circuit open: failing fast for {retry_after or 0.0:.3g}s more"
        if cause is not None:
            message += f" (last failure: {cause.error_code} {cause.message})"
        error = CircuitOpenError(
            message,
            service=ctx.service if ctx else None,
            endpoint=ctx.endpoint if ctx else None,
            request_id=ctx.request_id if ctx else None,
            retry_after=retry_after,
        )
        error.__cause__ = cause
        return error

    def _observe(
        self,
        transitions: tuple[BreakerTransition, ...],
        snapshot: BreakerSnapshot,
        endpoint: str | None,
    ) -> None:
        self._last = snapshot
        for t in transitions:
            fields: dict[str, Any] = {
                "circuit": self._key,
                "from_state": t.from_state,
                "to_state": t.to_state,
                "reason": t.reason,
            }
            if t.to_state == "open":
                fields["open_for"] = self._config.open_for
            self._events.emit(_EVENT_FOR[t.to_state], endpoint=endpoint, **fields)

    # --- control and inspection --------------------------------------------------------------

    async def isolate(self) -> BreakerStatus:
        """Force the circuit open until ``reset()``: every call fails fast."""
        update = await self._store.breaker_force(self._key, "isolated", self._config, now=self._clock.time())
        self._observe(update.transitions, update.snapshot, None)
        return self.status()

    async def reset(self) -> BreakerStatus:
        """Force the circuit closed and clear its counts."""
        update = await self._store.breaker_force(self._key, "closed", self._config, now=self._clock.time())
        self._observe(update.transitions, update.snapshot, None)
        return self.status()

    async def fetch_status(self) -> BreakerStatus:
        """The circuit as the state store has it now (other clients' calls included)."""
        self._last = await self._store.breaker_status(self._key, self._config, now=self._clock.time())
        return self.status()

    def status(self) -> BreakerStatus:
        """The circuit as this client last saw it (no I/O): state, failures, opened_at, next half-open.

        An open circuit whose ``open_for`` has passed reads as ``half_open``.
        """
        snap = self._last
        if snap is None:
            return BreakerStatus("closed", 0, 0, None, None, None)
        now = self._clock.time()
        state = snap.state
        half_open_at = snap.half_open_at
        if state == "open" and half_open_at is not None and now >= half_open_at:
            state, half_open_at = "half_open", None
        retry_after = None if half_open_at is None else max(0.0, half_open_at - now)
        return BreakerStatus(
            state=state,
            failures=snap.failures,
            calls=snap.calls,
            opened_at=_dt(snap.opened_at),
            half_open_at=_dt(half_open_at),
            retry_after=retry_after,
        )
