"""The rate limiter: GCRA over several windows, queue / wait / reject, and learning from responses.

``Rate("75/minute", burst=10)`` admits 10 requests at once, then one every 0.8 s: in any 60 s
span at most ``limit + burst - 1`` = 84 requests start (85 when both ends of a closed span count).
Several windows hold at once (``Rate("10/second", "600/minute")``): a request goes at the
earliest time every window allows. Every attempt spends a slot (the limiter sits below retry).

Strategies when no slot is free now:

- ``queue`` (default): wait in FIFO order; when ``max_queue`` callers already wait, fail at once
  with ``RateLimitRejected`` (nothing is sent).
- ``wait``: wait however long it takes.
- ``reject``: fail at once with ``RateLimitRejected``.

Waiting always respects the call's deadline: when the slot is further away than the time left,
the call fails at once with ``RateLimitRejected`` carrying ``retry_after`` (no token is spent).

Learning: each response's ``Retry-After``, ``X-RateLimit-*`` (names and reset format
configurable) and IETF ``RateLimit`` / ``RateLimit-Policy`` headers are read. A 429, or a quota
with nothing remaining and a known reset, pauses every caller of this limiter until the reset
(``rate_pause`` in the state store, so a shared limiter pauses every worker).

The slot arithmetic is one atomic ``rate_acquire`` call on the state store; the policy only
sleeps (``env.clock``) until its reserved slot.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, Literal

import httpx2

from tether import events as ev
from tether._context import CONTEXT_KEY, CallContext
from tether._units import Duration, parse_duration
from tether.errors import RateLimitExceeded, RateLimitRejected, Rejected, TetherError
from tether.pipeline._base import Handler, PolicyEnv
from tether.pipeline._headers import (
    X_RATELIMIT_NAMES,
    RateLimitHeaderNames,
    RateLimitSnapshot,
    mentions_any,
    rate_limit_header_names,
    read_rate_limit,
    server_wait,
)
from tether.state._protocol import RateGrant, RateSnapshot, RateWindow, RateWindowStatus, StateStore
from tether.state.memory import MemoryStore

__all__ = ["PERIODS", "TIERS", "Rate", "RatePolicy", "RateStatus", "RateWindow", "Strategy", "parse_limit"]

Strategy = Literal["queue", "wait", "reject"]
STRATEGIES: Final[tuple[str, ...]] = ("queue", "wait", "reject")

#: Period names accepted after the slash, in seconds. A month is 30 days.
PERIODS: Final[dict[str, float]] = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "w": 604800.0,
    "week": 604800.0,
    "mo": 2_592_000.0,
    "month": 2_592_000.0,
}

#: The REQ-001 tiers: ``Rate.tier(name)``.
TIERS: Final[dict[str, dict[str, Any]]] = {
    "free": {"limits": ("5/minute",), "burst": 1},
    "premium": {"limits": ("75/minute",), "burst": 10},
    "enterprise": {"limits": ("1000/minute",), "burst": 1},
}

_LIMIT_RE: Final = re.compile(r"^\s*(\d+)\s*(?:/|\s+per\s+)\s*(.+?)\s*$", re.IGNORECASE)

LimitSpec = str | RateWindow | tuple[int, Duration] | tuple[int, Duration, int]


def _period(text: str, original: str) -> float:
    name = text.strip().lower()
    if name in PERIODS:
        return PERIODS[name]
    if name.endswith("s") and name[:-1] in PERIODS:
        return PERIODS[name[:-1]]
    try:
        return parse_duration(name, name="rate period", allow_zero=False)
    except ValueError:
        pass
    known = "second, minute, hour, day, week, month (or s, min, m, h, d) or a duration like '10s'"
    raise ValueError(f"rate limit {original!r} has an unknown period {text!r}; use {known}")


def parse_limit(spec: LimitSpec, *, burst: int | None = None) -> RateWindow:
    """One window from ``"75/minute"``, ``"10/second"``, ``"100/10s"``, ``(75, 60)``, ``(75, 60, 10)``.

    ``burst`` applies to a string or a 2-tuple; a 3-tuple or ``RateWindow`` carries its own.
    """
    if isinstance(spec, RateWindow):
        return spec
    if isinstance(spec, str):
        m = _LIMIT_RE.match(spec)
        if not m:
            raise ValueError(f"a rate limit looks like '75/minute' or '10/second', got {spec!r}")
        return RateWindow(int(m.group(1)), _period(m.group(2), spec), 1 if burst is None else burst)
    if isinstance(spec, tuple) and len(spec) in (2, 3):
        limit = spec[0]
        period = parse_duration(spec[1], name="rate period", allow_zero=False)
        own_burst = spec[2] if len(spec) == 3 else None
        chosen = own_burst if own_burst is not None else (1 if burst is None else burst)
        return RateWindow(limit, period, chosen)
    raise ValueError(
        f"a rate limit is a string, a (limit, period[, burst]) tuple or a RateWindow; got {spec!r}"
    )


def _flatten(limits: Iterable[Any]) -> list[LimitSpec]:
    out: list[LimitSpec] = []
    for item in limits:
        if isinstance(item, list):
            out.extend(_flatten(item))
        else:
            out.append(item)
    return out


@dataclass(frozen=True, slots=True, init=False)
class Rate:
    """Rate limiter options (``kind = "rate"``).

    ``Rate("75/minute", burst=10)``; several windows at once: ``Rate("10/second", "600/minute")``
    or ``Rate([(10, 1, 5), (600, 60, 10)])`` (limit, period seconds, burst). ``burst`` (default 1:
    evenly spaced) is how many requests may go back to back after an idle spell. ``strategy``:
    ``queue`` (FIFO, at most ``max_queue`` waiting), ``wait`` or ``reject``. ``shared`` names a
    limiter in the state store that several clients share. ``learn`` reads rate-limit headers;
    ``headers`` names the provider's limit / remaining / reset headers and the reset format;
    ``pause_on_429`` is the pause after a 429 that says nothing about when to come back.
    """

    kind: ClassVar[str] = "rate"

    DEFAULT_STRATEGY: ClassVar[Strategy] = "queue"
    DEFAULT_MAX_QUEUE: ClassVar[int] = 20
    DEFAULT_PAUSE_ON_429: ClassVar[float] = 1.0

    windows: tuple[RateWindow, ...]
    strategy: Strategy
    max_queue: int
    tier_name: str | None
    shared: str | None
    learn: bool
    headers: RateLimitHeaderNames
    retry_after_header: str
    pause_on_429: float = field(default=DEFAULT_PAUSE_ON_429)

    def __init__(
        self,
        *limits: LimitSpec | list[LimitSpec],
        burst: int | None = None,
        strategy: Strategy = DEFAULT_STRATEGY,
        max_queue: int = DEFAULT_MAX_QUEUE,
        tier: str | None = None,
        shared: str | None = None,
        learn: bool = True,
        headers: RateLimitHeaderNames = X_RATELIMIT_NAMES,
        retry_after_header: str = "Retry-After",
        pause_on_429: Duration = DEFAULT_PAUSE_ON_429,
    ) -> None:
        specs = _flatten(limits)
        if not specs:
            raise ValueError("Rate needs at least one limit, e.g. Rate('75/minute')")
        windows = tuple(parse_limit(s, burst=burst) for s in specs)
        ids = [w.id for w in windows]
        if len(set(ids)) != len(ids):
            raise ValueError(f"Rate got the same window twice: {', '.join(ids)}")
        if strategy not in STRATEGIES:
            raise ValueError(f"Rate.strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
        if isinstance(max_queue, bool) or not isinstance(max_queue, int) or max_queue < 0:
            raise ValueError(f"Rate.max_queue must be a whole number >= 0, got {max_queue!r}")
        if shared is not None and not shared.strip():
            raise ValueError("Rate.shared must be a non-empty name, got ''")
        if not retry_after_header.strip():
            raise ValueError("Rate.retry_after_header must be a header name, got ''")
        object.__setattr__(self, "windows", windows)
        object.__setattr__(self, "strategy", strategy)
        object.__setattr__(self, "max_queue", max_queue)
        object.__setattr__(self, "tier_name", tier)
        object.__setattr__(self, "shared", shared)
        object.__setattr__(self, "learn", bool(learn))
        object.__setattr__(self, "headers", headers)
        object.__setattr__(self, "retry_after_header", retry_after_header)
        object.__setattr__(self, "pause_on_429", parse_duration(pause_on_429, name="Rate.pause_on_429"))

    @classmethod
    def tier(cls, name: str, **overrides: Any) -> Rate:
        """A REQ-001 tier preset: ``free`` 5/min, ``premium`` 75/min + 10 burst, ``enterprise`` 1000/min."""
        key = str(getattr(name, "value", name)).lower()
        if key not in TIERS:
            raise ValueError(f"unknown rate tier {name!r}; known tiers: {', '.join(TIERS)}")
        preset = TIERS[key]
        kwargs: dict[str, Any] = {"burst": preset["burst"], "tier": key, **overrides}
        return cls(*preset["limits"], **kwargs)

    def build(self, env: PolicyEnv) -> RatePolicy:
        return RatePolicy(self, env)


@dataclass(frozen=True, slots=True)
class RateStatus:
    """The REQ-001 ``RateLimitStatus`` fields, for the window that binds first.

    ``remaining``: requests that may start now without waiting (0 while paused); ``limit`` and
    ``window_seconds``: that window's limit; ``reset_at``: when it has its whole burst back;
    ``requests_made``: slots of that window still being paid back; ``queued``: callers waiting;
    ``paused_until``: set while a 429 or ``Remaining: 0`` pause holds. ``server`` is the last
    rate-limit state a response reported (``None`` when none did).
    """

    tier: str | None
    limit: int
    window_seconds: float
    remaining: int
    reset_at: datetime
    requests_made: int
    queued: int
    paused_until: datetime | None
    server: RateLimitSnapshot | None = None

    # REQ-001 spellings.
    @property
    def requests_remaining(self) -> int:
        return self.remaining

    @property
    def reset_time(self) -> datetime:
        return self.reset_at

    @property
    def window_size_seconds(self) -> int:
        return math.ceil(self.window_seconds)


def _binding(windows: Sequence[RateWindowStatus], now: float) -> tuple[RateWindowStatus, int, int]:
    """The window with the fewest requests available at ``now``: (status, available, in use)."""
    best: tuple[RateWindowStatus, int, int] | None = None
    for w in windows:
        interval = w.window.interval
        owed = max(0.0, w.full_at - now) / interval
        available = max(0, min(w.window.burst, math.floor(w.window.burst - owed + 1e-9)))
        in_use = math.ceil(owed - 1e-9)
        if best is None or (available, -w.full_at, -w.window.period) < (
            best[1],
            -best[0].full_at,
            -best[0].window.period,
        ):
            best = (w, available, in_use)
    assert best is not None
    return best


class RatePolicy:
    """The runtime limiter: one per client, its slots in the state store."""

    __slots__ = (
        "_clock",
        "_events",
        "_header_names",
        "_key",
        "_last",
        "_options",
        "_server",
        "_store",
        "_waiting",
    )

    def __init__(self, options: Rate, env: PolicyEnv) -> None:
        self._options = options
        self._clock = env.clock
        self._events = env.events
        self._store: StateStore = env.store if env.store is not None else MemoryStore()
        self._key = f"rate:{options.shared}" if options.shared else f"{env.service}:rate"
        self._last: RateSnapshot | None = None
        self._server: RateLimitSnapshot | None = None
        self._waiting = 0
        self._header_names = rate_limit_header_names(options.headers, options.retry_after_header)

    def __repr__(self) -> str:
        windows = ", ".join(w.id for w in self._options.windows)
        return f"RatePolicy(key={self._key!r}, windows=[{windows}], strategy={self._options.strategy!r})"

    @property
    def key(self) -> str:
        """The limiter's key in the state store."""
        return self._key

    async def __call__(self, request: httpx2.Request, next: Handler) -> httpx2.Response:
        raw = request.extensions.get(CONTEXT_KEY)
        ctx = raw if isinstance(raw, CallContext) else None
        await self.acquire(ctx)
        try:
            response = await next(request)
        except TetherError as exc:
            if exc.response is not None:
                await self._learn(exc.response, ctx)
            elif isinstance(exc, RateLimitExceeded) and not isinstance(exc, Rejected):
                await self._pause(exc.retry_after or self._options.pause_on_429, "429", "error", ctx)
            raise
        await self._learn(response, ctx)
        return response

    # --- acquiring a slot --------------------------------------------------------------------

    async def acquire(self, ctx: CallContext | None = None) -> None:
        """Wait for a send slot, or raise ``RateLimitRejected`` (nothing reserved, nothing sent)."""
        options = self._options
        while True:
            remaining = ctx.remaining(self._clock.monotonic()) if ctx is not None else None
            max_wait = 0.0 if options.strategy == "reject" else remaining
            grant = await self._store.rate_acquire(
                self._key,
                options.windows,
                now=self._clock.time(),
                max_wait=max_wait,
                max_queue=options.max_queue if options.strategy == "queue" else None,
            )
            self._last = grant.snapshot
            if not grant.granted:
                raise self._reject(grant, remaining, ctx)
            if grant.wait <= 0:
                return
            self._events.emit(
                ev.LIMITER_QUEUED,
                endpoint=ctx.endpoint if ctx else None,
                limiter=self._key,
                wait=grant.wait,
                queued=grant.snapshot.queued,
            )
            self._waiting += 1
            try:
                await self._clock.sleep(grant.wait)
            finally:
                self._waiting -= 1
            # A pause that arrived while we slept outranks the slot we reserved before it.
            snapshot = await self._store.rate_status(self._key, options.windows, now=self._clock.time())
            self._last = snapshot
            if snapshot.paused_until is None:
                return

    def _reject(
        self, grant: RateGrant, remaining: float | None, ctx: CallContext | None
    ) -> RateLimitRejected:
        options = self._options
        if grant.reason == "queue_full":
            why = f"rate-limit queue full ({options.max_queue} callers waiting)"
        elif options.strategy == "reject":
            why = f"rate limit reached (strategy 'reject'); next slot in {grant.wait:.3g}s"
        else:
            left = 0.0 if remaining is None else max(0.0, remaining)
            why = f"rate-limit wait {grant.wait:.3g}s exceeds the {left:.3g}s left before the deadline"
        self._events.emit(
            ev.LIMITER_REJECTED,
            endpoint=ctx.endpoint if ctx else None,
            limiter=self._key,
            reason=grant.reason,
            retry_after=grant.wait,
            queued=grant.snapshot.queued,
        )
        return RateLimitRejected(
            why,
            service=ctx.service if ctx else None,
            endpoint=ctx.endpoint if ctx else None,
            request_id=ctx.request_id if ctx else None,
            retry_after=grant.wait,
        )

    # --- learning from responses -------------------------------------------------------------

    async def _learn(self, response: httpx2.Response, ctx: CallContext | None) -> None:
        options = self._options
        if not options.learn:
            return
        headers = response.headers
        status = response.status_code
        if status != 429 and not mentions_any(headers, self._header_names):
            return
        now = self._clock.time()
        snapshot = read_rate_limit(headers, now=now, names=options.headers)
        if snapshot is not None:
            self._server = snapshot
            self._events.emit(
                ev.LIMITER_LEARNED,
                endpoint=ctx.endpoint if ctx else None,
                limiter=self._key,
                limit=snapshot.limit,
                remaining=snapshot.remaining,
                reset_after=snapshot.reset_after,
                window=snapshot.window,
                policy=snapshot.policy,
                source=snapshot.source,
            )
        if status != 429 and (snapshot is None or not snapshot.exhausted):
            return
        wait = server_wait(
            headers,
            now=now,
            status=status,
            names=options.headers,
            retry_after_header=options.retry_after_header,
        )
        if wait is not None:
            reason = "429" if status == 429 else "remaining_exhausted"
            await self._pause(wait.seconds, reason, wait.source, ctx)
        elif status == 429:
            await self._pause(options.pause_on_429, "429", "default", ctx)

    async def _pause(self, seconds: float, reason: str, source: str, ctx: CallContext | None) -> None:
        if seconds <= 0:
            return
        now = self._clock.time()
        until = now + seconds
        in_force = await self._store.rate_pause(self._key, until, now=now)
        self._events.emit(
            ev.LIMITER_PAUSED,
            endpoint=ctx.endpoint if ctx else None,
            limiter=self._key,
            seconds=seconds,
            until=in_force,
            reason=reason,
            source=source,
        )

    # --- inspection --------------------------------------------------------------------------

    async def fetch_status(self) -> RateStatus:
        """The limiter as the state store has it now (every client sharing it included)."""
        snapshot = await self._store.rate_status(self._key, self._options.windows, now=self._clock.time())
        self._last = snapshot
        return self._status(snapshot, snapshot.queued)

    def status(self) -> RateStatus:
        """The limiter as this client last saw it (no I/O); ``queued`` counts this client's waiters."""
        return self._status(self._last, self._waiting)

    def _status(self, snapshot: RateSnapshot | None, queued: int) -> RateStatus:
        now = self._clock.time()
        if snapshot is None:
            windows = tuple(RateWindowStatus(w, w.burst, now, now) for w in self._options.windows)
            paused: float | None = None
        else:
            windows, paused = snapshot.windows, snapshot.paused_until
        binding, available, in_use = _binding(windows, now)
        paused_until = paused if paused is not None and paused > now else None
        return RateStatus(
            tier=self._options.tier_name,
            limit=binding.window.limit,
            window_seconds=binding.window.period,
            remaining=0 if paused_until is not None else available,
            reset_at=datetime.fromtimestamp(max(binding.full_at, now, paused_until or now), UTC),
            requests_made=in_use,
            queued=queued,
            paused_until=None if paused_until is None else datetime.fromtimestamp(paused_until, UTC),
            server=self._server,
        )
