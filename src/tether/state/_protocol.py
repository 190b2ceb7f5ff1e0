"""The state store protocol and the typed records its rate and breaker operations exchange.

Implementations: memory (default), SQLite, Redis. The contract of every method, and what a SQLite
and a Redis implementation must do to keep it, is in ``docs/state-store.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

__all__ = [
    "BreakerConfig",
    "BreakerOutcome",
    "BreakerPermit",
    "BreakerSnapshot",
    "BreakerStateName",
    "BreakerTransition",
    "BreakerUpdate",
    "RateGrant",
    "RateSnapshot",
    "RateWindow",
    "RateWindowStatus",
    "StateStore",
]

BreakerStateName = Literal["closed", "open", "half_open", "isolated"]
"""``isolated`` is an open circuit forced by hand: it stays open until ``reset``."""

BreakerOutcome = Literal["success", "failure", "ignored"]
"""What one admitted call ended as. ``ignored`` frees a probe slot but counts neither way."""

BreakerMode = Literal["consecutive", "rate"]


# --- rate limiter records ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateWindow:
    """One limit: ``limit`` requests per ``period`` seconds, of which ``burst`` may go at once.

    As a GCRA, one request is admitted every ``interval = period / limit`` seconds, and up to
    ``burst`` requests may go back to back when the window has been idle. In any span of
    ``period`` seconds at most ``limit + burst - 1`` requests start (``limit`` when ``burst`` is 1).
    """

    limit: int
    period: float
    burst: int = 1
    #: Seconds between two admissions at the steady rate.
    interval: float = field(init=False, repr=False, compare=False)
    #: A stable name for this window's state inside a limiter's record (``"75/60"``).
    id: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise ValueError(f"a rate window's limit must be a whole number >= 1, got {self.limit!r}")
        period = float(self.period)
        if not math.isfinite(period) or period <= 0:
            raise ValueError(f"a rate window's period must be positive seconds, got {self.period!r}")
        object.__setattr__(self, "period", period)
        if isinstance(self.burst, bool) or not isinstance(self.burst, int) or self.burst < 1:
            raise ValueError(f"a rate window's burst must be a whole number >= 1, got {self.burst!r}")
        # Derived once: both are read on every acquire.
        object.__setattr__(self, "interval", period / self.limit)
        object.__setattr__(self, "id", f"{self.limit}/{period:g}")


@dataclass(frozen=True, slots=True)
class RateWindowStatus:
    """One window as seen at ``RateSnapshot.now``."""

    window: RateWindow
    #: Requests that may start right now without waiting (0 … burst).
    available: int
    #: Epoch seconds when the window has its whole burst back (== now when it is full).
    full_at: float
    #: Epoch seconds when one more request would be admitted by this window (ignoring a pause).
    next_at: float


@dataclass(frozen=True, slots=True)
class RateSnapshot:
    """A limiter's shared state at one instant (epoch seconds)."""

    now: float
    windows: tuple[RateWindowStatus, ...]
    #: Epoch seconds until which every caller waits (a 429 or ``Remaining: 0``); ``None`` = no pause.
    paused_until: float | None
    #: Callers holding a reservation for a future send (waiting in the queue).
    queued: int


@dataclass(frozen=True, slots=True)
class RateGrant:
    """The answer of ``rate_acquire``.

    ``granted``: a send slot was reserved; the caller sleeps ``wait`` seconds, then sends.
    Refused: nothing was reserved; ``wait`` is how long a caller would have had to wait (the
    ``retry_after`` to report), and ``reason`` says why (``"wait"``: longer than ``max_wait``;
    ``"queue_full"``: ``max_queue`` callers already wait).
    """

    granted: bool
    wait: float
    reason: Literal["wait", "queue_full"] | None
    snapshot: RateSnapshot


# --- circuit breaker records -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """The numbers a store needs to run one circuit's state machine (seconds, counts).

    ``consecutive`` mode opens after ``failures`` consecutive failures that all fall within the
    last ``window`` seconds. ``rate`` mode opens when, over the last ``window_calls`` calls (or,
    when that is ``None``, the calls of the last ``window`` seconds), at least ``min_calls`` calls
    were seen and the share of failures is ``>= failure_rate``. An open circuit turns half-open
    ``open_for`` seconds after it opened; half-open admits ``half_open_calls`` probes at a time;
    ``close_after`` consecutive probe successes close it; a probe failure re-opens it; a probe
    without an outcome for ``half_open_timeout`` seconds re-opens it.
    """

    mode: BreakerMode = "consecutive"
    failures: int = 5
    window: float = 60.0
    failure_rate: float = 0.5
    min_calls: int = 10
    window_calls: int | None = None
    open_for: float = 30.0
    half_open_calls: int = 1
    close_after: int = 2
    half_open_timeout: float = 60.0


@dataclass(frozen=True, slots=True)
class BreakerTransition:
    """One change of state, at epoch ``at``. ``reason`` names the rule that fired."""

    from_state: BreakerStateName
    to_state: BreakerStateName
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """A circuit's state after an operation (epoch seconds)."""

    state: BreakerStateName
    #: consecutive mode: failures in the current run; rate mode: failures in the window.
    failures: int
    #: rate mode: calls in the window (consecutive mode: equals ``failures``).
    calls: int
    opened_at: float | None
    #: When an open circuit admits its first probe (``None`` unless open).
    half_open_at: float | None
    #: Probes in flight (half-open only).
    probes: int
    #: Consecutive probe successes so far (half-open only).
    probe_successes: int


@dataclass(frozen=True, slots=True)
class BreakerPermit:
    """The answer of ``breaker_acquire``: a ticket to call (``granted``) or a rejection.

    A granted permit must be handed back to ``breaker_record`` exactly once with the call's
    outcome. ``generation`` ties it to the state it was issued in: outcomes of permits issued
    before a later transition are ignored. ``retry_after`` (refused only) is the time until the
    circuit may admit a call again (``None`` when isolated).
    """

    granted: bool
    probe: bool
    generation: int
    ticket: int
    retry_after: float | None
    transitions: tuple[BreakerTransition, ...]
    snapshot: BreakerSnapshot


@dataclass(frozen=True, slots=True)
class BreakerUpdate:
    """The answer of ``breaker_record`` and ``breaker_force``: what changed and the new state."""

    transitions: tuple[BreakerTransition, ...]
    snapshot: BreakerSnapshot


# --- the protocol ------------------------------------------------------------------------------


@runtime_checkable
class StateStore(Protocol):
    """Where policies keep state that several workers may share.

    Keys are plain strings chosen by the policies (``"<service>:<kind>:<name>"``); a store may
    prefix them (a namespace, Redis hash tags). Times are passed in by the caller (epoch seconds
    from the injected clock), so stores never read the clock themselves and tests stay in virtual
    time. Every method is one atomic operation: the memory store runs it without an ``await``,
    SQLite in one transaction, Redis in one Lua script.
    """

    # --- counters with expiry (retry budget, budgets) ---------------------------------------
    async def incr(self, key: str, amount: float = 1.0, *, ttl: float | None = None, now: float) -> float:
        """Add ``amount`` to a counter and return the new value, atomically.

        ``ttl`` (seconds) sets the counter to expire ``ttl`` after ``now`` when it is created;
        an expired counter reads as 0.
        """
        ...

    async def get_counter(self, key: str, *, now: float) -> float:
        """A counter's value (0 when missing or expired)."""
        ...

    # --- values with expiry (tokens, cache entries) -----------------------------------------
    async def get(self, key: str, *, now: float) -> bytes | None:
        """A value, or ``None`` when missing or expired."""
        ...

    async def set(self, key: str, value: bytes, *, ttl: float | None = None, now: float) -> None:
        """Store a value, expiring ``ttl`` seconds after ``now`` (``None`` = never)."""
        ...

    async def delete(self, key: str) -> None:
        """Remove a value or counter (no error when missing)."""
        ...

    # --- mutual exclusion across workers (one token refresh) --------------------------------
    async def try_lock(self, key: str, owner: str, *, ttl: float, now: float) -> bool:
        """Take the lock ``key`` for ``owner`` for ``ttl`` seconds; ``False`` if another owner holds it."""
        ...

    async def unlock(self, key: str, owner: str) -> None:
        """Release the lock if ``owner`` still holds it."""
        ...

    # --- rate limiter (GCRA over several windows) -------------------------------------------
    async def rate_acquire(
        self,
        key: str,
        windows: Sequence[RateWindow],
        *,
        now: float,
        cost: int = 1,
        max_wait: float | None = None,
        max_queue: int | None = None,
    ) -> RateGrant:
        """Reserve the earliest send slot that every window (and any pause) allows, atomically.

        The slot is at ``now + wait``. When ``wait > max_wait`` (``None`` = no bound) or, for a
        slot in the future, when ``max_queue`` callers already hold future slots, nothing is
        reserved and the grant is refused. A granted slot is spent even if the caller never sends
        (crash, cancellation), so limits hold whatever callers do. Reservations are handed out in
        call order, so waiting callers send in FIFO order at exact times.
        """
        ...

    async def rate_pause(self, key: str, until: float, *, now: float) -> float:
        """Make every caller of ``key`` wait until epoch ``until``; returns the pause in force.

        A pause only ever extends: an earlier ``until`` than the current pause changes nothing.
        """
        ...

    async def rate_status(self, key: str, windows: Sequence[RateWindow], *, now: float) -> RateSnapshot:
        """The limiter's state at ``now`` without changing it."""
        ...

    # --- circuit breaker (one state machine per key) ----------------------------------------
    async def breaker_acquire(self, key: str, config: BreakerConfig, *, now: float) -> BreakerPermit:
        """Decide whether one call may go, atomically.

        Turns an open circuit half-open when ``open_for`` has passed, re-opens a half-open circuit
        whose probe has had no outcome for ``half_open_timeout``, takes a probe slot when
        half-open, and otherwise admits (closed) or rejects (open, isolated, no free probe slot).
        """
        ...

    async def breaker_record(
        self,
        key: str,
        permit: BreakerPermit,
        outcome: BreakerOutcome,
        config: BreakerConfig,
        *,
        now: float,
    ) -> BreakerUpdate:
        """Record the outcome of a call admitted by ``permit`` and apply the transition it causes.

        Outcomes of permits from an older generation (issued before a transition) change nothing.
        """
        ...

    async def breaker_force(
        self,
        key: str,
        state: Literal["isolated", "closed"],
        config: BreakerConfig,
        *,
        now: float,
    ) -> BreakerUpdate:
        """Force the circuit ``isolated`` (open until reset) or ``closed`` (counts cleared)."""
        ...

    async def breaker_status(self, key: str, config: BreakerConfig, *, now: float) -> BreakerSnapshot:
        """The circuit's state at ``now`` without changing it (an open circuit past ``open_for``
        reads as ``half_open``)."""
        ...

    async def aclose(self) -> None:
        """Release connections and files."""
        ...
