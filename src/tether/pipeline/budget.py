"""Budgets: what an integration may spend per calendar month — money and bandwidth.

::

    tether.Budget(
        monthly_limit=100.0, pricing=Pricing.per_request(0.002), hard_stop=True,   # cost
        bandwidth_limit="50GB",                                                    # bandwidth
    )

Cost (``monthly_limit`` in your currency, ``pricing``):

- ``Pricing.per_request(price)``: each request sent costs ``price``;
- ``Pricing.per_gb(price)``: each GB (10^9 bytes) of request + response bodies costs ``price``;
- ``Pricing.tiered([(1000, 0.0), (10_000, 0.001), (None, 0.0005)])``: request ``n`` of the month
  costs the price of the first tier whose bound is ``>= n`` (``None``: no bound);
- ``Pricing.subscription(49.0, included=10_000, overage=0.01)``: a flat fee, charged with the
  month's first request, plus ``overage`` per request beyond ``included``.

Bandwidth (``bandwidth_limit``, bytes or ``"50GB"``): request plus response body bytes, or only
the response's with ``bandwidth_count="response"`` (a response streamed to the caller counts its
``Content-Length``).

Alerts: ``budget.alert`` when the month's use crosses each of ``alert_at`` (default 70, 85, 95 %)
of a limit — once per threshold, kind and month, whichever worker crosses it (the "fired" marks
live in the state store). ``hard_stop=True`` rejects a call with ``BudgetExceeded`` *before it is
sent* when it would take the cost past the limit (its known price: per request, tier, or the
request body for per-GB pricing); ``bandwidth_hard_stop=True`` does the same once the bandwidth
is spent. From ``prefer_cache_at`` (default 95 %) of the bandwidth, each call carries
``ctx.extras["prefer_cache"] = True`` so the cache serves a stored (even stale) entry rather
than spend more (seed 003).

Counting: ``kind = "budget"`` sits outside fallback, cache and retry. A request's price is
reserved before it is sent (so two workers cannot both take the last of a hard-stopped budget),
then settled by what happened: a fresh cache hit or a local rejection (nothing sent) is refunded;
retries are charged as the extra requests they are (``ctx.meta["attempts"]``). Counters live in
the state store under ``"<service>:budget:<YYYY-MM>:…"`` (calendar month in UTC from the injected
clock's ``time()``), with a TTL to the month's end: they survive restarts on a durable store,
are shared by every worker on a shared one, and a new month starts from zero.

``status()`` (no I/O: what this process last saw) and ``await fetch_status()`` (from the store)
give the month and, per budget, ``used``, ``limit`` and ``ratio``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, Literal

import httpx2

from tether import events as ev
from tether._context import CallContext
from tether._units import Size, parse_size
from tether.errors import BudgetExceeded, Rejected, TetherError
from tether.pipeline._base import Handler, PolicyEnv
from tether.state.memory import MemoryStore

__all__ = ["PREFER_CACHE_KEY", "Budget", "BudgetPolicy", "Pricing", "month_bounds"]

#: ``ctx.extras`` key the cache reads: serve a stored entry (even stale) rather than call upstream.
PREFER_CACHE_KEY: Final = "prefer_cache"
#: ``ctx.extras`` key the fallback policy sets to the error it served a fallback for.
_FALLBACK_ERROR_KEY: Final = "fallback.primary_error"

PricingModel = Literal["per_request", "per_gb", "tiered", "subscription"]
PRICING_MODELS: Final = ("per_request", "per_gb", "tiered", "subscription")
_GB: Final = 1_000_000_000
_EPSILON: Final = 1e-9


def _number(value: object, where: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where} must be a finite number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{where} must be {'positive' if positive else 'zero or positive'}, got {value!r}")
    return float(value)


def month_bounds(epoch: float) -> tuple[str, float, float]:
    """The UTC calendar month of ``epoch``: (``"YYYY-MM"``, its start, the next month's start)."""
    moment = datetime.fromtimestamp(epoch, UTC)
    start = datetime(moment.year, moment.month, 1, tzinfo=UTC)
    nxt = datetime(moment.year + (moment.month == 12), moment.month % 12 + 1, 1, tzinfo=UTC)
    return f"{moment.year:04d}-{moment.month:02d}", start.timestamp(), nxt.timestamp()


# --- pricing -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pricing:
    """How a provider charges (see the module docstring); build one with the class methods."""

    model: PricingModel = "per_request"
    #: per_request: per request; per_gb: per GB; subscription: per request over ``included``.
    price: float = 0.0
    #: tiered: (highest request number of the tier or None, price per request), in order.
    tiers: tuple[tuple[int | None, float], ...] = ()
    #: subscription: the monthly fee.
    flat: float = 0.0
    #: subscription: requests the fee covers (``None``: all).
    included: int | None = None

    def __post_init__(self) -> None:
        if self.model not in PRICING_MODELS:
            raise ValueError(f"Pricing.model must be one of {', '.join(PRICING_MODELS)}, got {self.model!r}")
        object.__setattr__(self, "price", _number(self.price, "Pricing.price"))
        object.__setattr__(self, "flat", _number(self.flat, "Pricing.flat"))
        tiers: list[tuple[int | None, float]] = []
        last = 0
        for i, tier in enumerate(self.tiers):
            try:
                bound, price = tier
            except (TypeError, ValueError):
                raise ValueError(
                    f"Pricing tier {i} must be (up_to_requests | None, price), got {tier!r}"
                ) from None
            if bound is not None:
                if isinstance(bound, bool) or not isinstance(bound, int) or bound <= last:
                    raise ValueError(
                        f"Pricing tier {i} bound must be a whole number above the previous "
                        f"({last}), got {bound!r}"
                    )
                last = bound
            elif i != len(self.tiers) - 1:
                raise ValueError(f"only the last pricing tier may be unbounded (None); tier {i} is")
            tiers.append((bound, _number(price, f"Pricing tier {i} price")))
        object.__setattr__(self, "tiers", tuple(tiers))
        if self.model == "tiered" and not tiers:
            raise ValueError("tiered pricing needs at least one tier")
        if self.included is not None and (
            isinstance(self.included, bool) or not isinstance(self.included, int) or self.included < 0
        ):
            raise ValueError(f"Pricing.included must be a whole number >= 0, got {self.included!r}")

    @classmethod
    def per_request(cls, price: float) -> Pricing:
        return cls("per_request", price=price)

    @classmethod
    def per_gb(cls, price: float) -> Pricing:
        return cls("per_gb", price=price)

    @classmethod
    def tiered(cls, tiers: Iterable[tuple[int | None, float]]) -> Pricing:
        return cls("tiered", tiers=tuple(tiers))

    @classmethod
    def subscription(cls, flat: float, *, included: int | None = None, overage: float = 0.0) -> Pricing:
        return cls("subscription", flat=flat, included=included, price=overage)

    def request_cost(self, n: int) -> float:
        """What request number ``n`` (1-based) of the month costs, the subscription fee included."""
        if self.model == "per_request":
            return self.price
        if self.model == "tiered":
            for bound, price in self.tiers:
                if bound is None or n <= bound:
                    return price
            return self.tiers[-1][1]
        if self.model == "subscription":
            fee = self.flat if n == 1 else 0.0
            over = self.included is not None and n > self.included
            return fee + (self.price if over else 0.0)
        return 0.0

    def bytes_cost(self, nbytes: float) -> float:
        """What ``nbytes`` of traffic cost (per-GB pricing only)."""
        return nbytes / _GB * self.price if self.model == "per_gb" else 0.0


# --- options -----------------------------------------------------------------------------------


def _thresholds(values: Collection[float], where: str) -> tuple[float, ...]:
    if isinstance(values, str):
        raise ValueError(f"{where} takes percentages (70, 85, 95), got the string {values!r}")
    out = sorted({_number(v, where) for v in values})
    for v in out:
        if not 0 < v <= 100:
            raise ValueError(f"{where} takes percentages in (0, 100], got {v:g}")
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Budget:
    """Budget options (DESIGN 4): a monthly cost limit, a monthly bandwidth limit, or both."""

    kind: ClassVar[str] = "budget"
    DEFAULT_ALERT_AT: ClassVar[tuple[float, ...]] = (70.0, 85.0, 95.0)
    DEFAULT_PREFER_CACHE_AT: ClassVar[float] = 95.0

    monthly_limit: float | None = None
    pricing: Pricing | None = None
    alert_at: Collection[float] = DEFAULT_ALERT_AT
    hard_stop: bool = False
    bandwidth_limit: Size | None = None
    bandwidth_alert_at: Collection[float] = DEFAULT_ALERT_AT
    bandwidth_hard_stop: bool = False
    #: Which bytes the bandwidth budget counts (a spec's ``bandwidth.count``).
    bandwidth_count: Literal["response", "request_and_response"] = "request_and_response"
    #: Percent of the bandwidth from which calls prefer the cache (``None``: never).
    prefer_cache_at: float | None = DEFAULT_PREFER_CACHE_AT
    #: The counters' name in the store (default: the client's service), to share one budget.
    name: str | None = None

    def __post_init__(self) -> None:
        put = object.__setattr__
        if self.monthly_limit is None and self.bandwidth_limit is None:
            raise ValueError("Budget needs monthly_limit= (cost), bandwidth_limit= (bytes), or both")
        if self.monthly_limit is not None:
            put(self, "monthly_limit", _number(self.monthly_limit, "Budget.monthly_limit", positive=True))
            if not isinstance(self.pricing, Pricing):
                raise ValueError(
                    "Budget.monthly_limit needs pricing= (Pricing.per_request(...), ...), "
                    f"got {self.pricing!r}"
                )
        if self.bandwidth_limit is not None:
            limit = parse_size(self.bandwidth_limit, name="Budget.bandwidth_limit")
            if limit <= 0:
                raise ValueError(f"Budget.bandwidth_limit must be positive, got {self.bandwidth_limit!r}")
            put(self, "bandwidth_limit", limit)
        put(self, "alert_at", _thresholds(self.alert_at, "Budget.alert_at"))
        put(self, "bandwidth_alert_at", _thresholds(self.bandwidth_alert_at, "Budget.bandwidth_alert_at"))
        if self.bandwidth_count not in ("response", "request_and_response"):
            raise ValueError(
                "Budget.bandwidth_count must be 'response' or 'request_and_response', "
                f"got {self.bandwidth_count!r}"
            )
        if self.prefer_cache_at is not None:
            value = _number(self.prefer_cache_at, "Budget.prefer_cache_at")
            if not 0 < value <= 100:
                raise ValueError(f"Budget.prefer_cache_at takes a percentage in (0, 100], got {value:g}")
            put(self, "prefer_cache_at", value)
        if self.name is not None and (not isinstance(self.name, str) or not self.name.strip()):
            raise ValueError(f"Budget.name must be a non-empty string, got {self.name!r}")

    def build(self, env: PolicyEnv) -> BudgetPolicy:
        return BudgetPolicy(self, env)


# --- runtime ---------------------------------------------------------------------------------------


def _body_size(message: httpx2.Request | httpx2.Response) -> int:
    length = message.headers.get("content-length")
    if length is not None and length.isdigit():
        return int(length)
    try:
        return len(message.content)
    except (httpx2.RequestNotRead, httpx2.ResponseNotRead):
        return 0


@dataclass(slots=True)
class _Reservation:
    month: str
    ttl: float
    now: float
    count: int = 0
    cost: float = 0.0
    extras: list[str] = field(default_factory=list)


class BudgetPolicy:
    """Runtime of ``Budget``. Counters in the state store; per-call state in locals."""

    __slots__ = ("_alerted", "_clock", "_env", "_events", "_last", "_prefix", "_store", "options")

    def __init__(self, options: Budget, env: PolicyEnv) -> None:
        self.options = options
        self._env = env
        self._clock = env.clock
        self._events = env.events
        self._store = env.store if env.store is not None else MemoryStore()
        self._prefix = f"{options.name or env.service}:budget"
        #: (month, kind, threshold) alerts this process knows have fired (saves store round trips).
        self._alerted: set[tuple[str, str, float]] = set()
        #: budget kind → (month, used, requests) as this process last saw it (for ``status()``).
        self._last: dict[str, tuple[str, float, int | None]] = {}

    def __repr__(self) -> str:
        return (
            f"BudgetPolicy(monthly_limit={self.options.monthly_limit!r}, "
            f"bandwidth_limit={self.options.bandwidth_limit!r}, hard_stop={self.options.hard_stop})"
        )

    def _key(self, month: str, what: str) -> str:
        return f"{self._prefix}:{month}:{what}"

    # --- the call ------------------------------------------------------------------------------

    async def __call__(self, request: httpx2.Request, next: Handler) -> httpx2.Response:
        ctx = request.extensions.get("tether")
        now = self._clock.time()
        month, _, end = month_bounds(now)
        res = _Reservation(month=month, ttl=max(1.0, end - now), now=now)
        await self._before(request, ctx if isinstance(ctx, CallContext) else None, res)
        try:
            response = await next(request)
        except BaseException as exc:
            await self._settle(request, ctx, res, None, exc)
            raise
        await self._settle(request, ctx, res, response, None)
        return response

    async def _before(self, request: httpx2.Request, ctx: CallContext | None, res: _Reservation) -> None:
        opts, store = self.options, self._store
        endpoint = ctx.endpoint if ctx is not None else None
        if opts.bandwidth_limit is not None:
            limit = float(opts.bandwidth_limit)
            used = await store.get_counter(self._key(res.month, "bytes"), now=res.now)
            outgoing = _body_size(request) if opts.bandwidth_count == "request_and_response" else 0
            if opts.bandwidth_hard_stop and (used >= limit or used + outgoing > limit + _EPSILON):
                await self._alert(res, "bandwidth", 100.0, used, limit, endpoint, action="hard_stop")
                raise self._exceeded(ctx, "bandwidth", used, limit)
            prefer_at = opts.prefer_cache_at
            if ctx is not None and prefer_at is not None and used >= limit * prefer_at / 100:
                ctx.extras[PREFER_CACHE_KEY] = True
        if opts.monthly_limit is not None and opts.pricing is not None:
            count = int(await store.incr(self._key(res.month, "requests"), 1.0, ttl=res.ttl, now=res.now))
            price = opts.pricing.request_cost(count) + opts.pricing.bytes_cost(_body_size(request))
            res.count, res.cost = 1, price
            used = await store.incr(self._key(res.month, "cost"), price, ttl=res.ttl, now=res.now)
            if opts.hard_stop and used > opts.monthly_limit + _EPSILON:
                await self._refund(res)
                await self._alert(
                    res, "cost", 100.0, used - price, opts.monthly_limit, endpoint, action="hard_stop"
                )
                raise self._exceeded(ctx, "cost", used - price, opts.monthly_limit)

    async def _refund(self, res: _Reservation) -> None:
        if res.count:
            key = self._key(res.month, "requests")
            await self._store.incr(key, -float(res.count), ttl=res.ttl, now=res.now)
        if res.cost:
            await self._store.incr(self._key(res.month, "cost"), -res.cost, ttl=res.ttl, now=res.now)
        res.count, res.cost = 0, 0.0

    def _sent(self, ctx: object, error: BaseException | None) -> int:
        """How many requests of this call reached the network (see the module docstring)."""
        if not isinstance(ctx, CallContext):
            return 0 if isinstance(error, Rejected) else 1
        attempts = int(ctx.meta.get("attempts") or ctx.attempt or 0)
        primary_error = ctx.extras.get(_FALLBACK_ERROR_KEY)
        last = error if error is not None else primary_error
        if isinstance(last, Rejected) and attempts > 0 and ctx.meta.get("attempts"):
            attempts -= 1  # the retry loop counted the attempt that was refused locally
        return max(0, attempts)

    async def _settle(
        self,
        request: httpx2.Request,
        ctx: object,
        res: _Reservation,
        response: httpx2.Response | None,
        error: BaseException | None,
    ) -> None:
        opts, store = self.options, self._store
        endpoint = ctx.endpoint if isinstance(ctx, CallContext) else None
        sent = self._sent(ctx, error)
        outgoing = incoming = 0
        if sent:
            outgoing = _body_size(request) * sent
            answered = response
            if answered is None and isinstance(error, TetherError):
                answered = error.response
            if answered is not None and not _from_fallback(ctx):
                incoming = _body_size(answered)
        nbytes = outgoing + incoming
        if opts.monthly_limit is not None and opts.pricing is not None:
            pricing = opts.pricing
            if sent == 0:
                await self._refund(res)
            else:
                extra = 0.0
                for _ in range(sent - 1):
                    n = int(await store.incr(self._key(res.month, "requests"), 1.0, ttl=res.ttl, now=res.now))
                    extra += pricing.request_cost(n)
                extra += pricing.bytes_cost(nbytes) - pricing.bytes_cost(_body_size(request))
                if extra:
                    await store.incr(self._key(res.month, "cost"), extra, ttl=res.ttl, now=res.now)
            used = await store.get_counter(self._key(res.month, "cost"), now=res.now)
            requests = await store.get_counter(self._key(res.month, "requests"), now=res.now)
            self._last["cost"] = (res.month, used, int(requests))
            await self._check_alerts(res, "cost", used, opts.monthly_limit, opts.alert_at, endpoint)
        if opts.bandwidth_limit is not None:
            limit = float(opts.bandwidth_limit)
            key = self._key(res.month, "bytes")
            counted = nbytes if opts.bandwidth_count == "request_and_response" else incoming
            if counted:
                used = await store.incr(key, float(counted), ttl=res.ttl, now=res.now)
            else:
                used = await store.get_counter(key, now=res.now)
            self._last["bandwidth"] = (res.month, used, None)
            await self._check_alerts(res, "bandwidth", used, limit, opts.bandwidth_alert_at, endpoint)

    # --- alerts and errors ---------------------------------------------------------------------

    async def _check_alerts(
        self,
        res: _Reservation,
        kind: str,
        used: float,
        limit: float,
        thresholds: Collection[float],
        endpoint: str | None,
    ) -> None:
        for threshold in thresholds:
            if used + _EPSILON >= limit * threshold / 100:
                await self._alert(res, kind, threshold, used, limit, endpoint)

    async def _alert(
        self,
        res: _Reservation,
        kind: str,
        threshold: float,
        used: float,
        limit: float,
        endpoint: str | None,
        *,
        action: str = "alert",
    ) -> None:
        mark = (res.month, f"{kind}:{action}", threshold)
        if mark in self._alerted:
            return
        self._alerted.add(mark)
        key = self._key(res.month, f"alert:{kind}:{action}:{threshold:g}")
        first = await self._store.incr(key, 1.0, ttl=res.ttl, now=res.now) == 1
        if not first:
            return
        self._events.emit(
            ev.BUDGET_ALERT,
            endpoint=endpoint,
            level=logging.WARNING if threshold < 95 else logging.ERROR,
            budget=kind,
            threshold=threshold,
            action=action,
            used=round(used, 9),
            limit=limit,
            ratio=round(used / limit, 6) if limit else None,
            month=res.month,
        )

    def _exceeded(self, ctx: CallContext | None, kind: str, used: float, limit: float) -> BudgetExceeded:
        unit = "bytes" if kind == "bandwidth" else ""
        shown_used = f"{used:,.0f} {unit}".strip() if unit else f"{used:g}"
        shown_limit = f"{limit:,.0f} {unit}".strip() if unit else f"{limit:g}"
        error = BudgetExceeded(
            f"the monthly {kind} budget is spent ({shown_used} of {shown_limit}); "
            "hard stop: the call was not sent",
            service=ctx.service if ctx is not None else self._env.service,
            endpoint=ctx.endpoint if ctx is not None else None,
            request_id=ctx.request_id if ctx is not None else None,
        )
        setattr(error, "budget", kind)  # noqa: B010 - which budget refused, for callers that branch on it
        return error

    # --- status --------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """This month's use as this process last saw it (no I/O; other workers' calls show up
        after this process' next call, or through ``fetch_status``). Same shape as ``fetch_status``."""
        month, _, _ = month_bounds(self._clock.time())
        seen: dict[str, tuple[float, int | None]] = {}
        for kind, (when, used, requests) in self._last.items():
            seen[kind] = (used, requests) if when == month else (0.0, 0)
        return self._shape(month, seen)

    async def fetch_status(self) -> dict[str, Any]:
        """This month's use from the state store: ``{"month", "cost": {used, limit, ratio,
        requests, hard_stop}, "bandwidth": {used, limit, ratio, hard_stop, prefer_cache}}``."""
        now = self._clock.time()
        month, _, _ = month_bounds(now)
        seen: dict[str, tuple[float, int | None]] = {}
        if self.options.monthly_limit is not None:
            used = await self._store.get_counter(self._key(month, "cost"), now=now)
            requests = int(await self._store.get_counter(self._key(month, "requests"), now=now))
            seen["cost"] = (used, requests)
            self._last["cost"] = (month, used, requests)
        if self.options.bandwidth_limit is not None:
            used = await self._store.get_counter(self._key(month, "bytes"), now=now)
            seen["bandwidth"] = (used, None)
            self._last["bandwidth"] = (month, used, None)
        return self._shape(month, seen)

    def _shape(self, month: str, seen: dict[str, tuple[float, int | None]]) -> dict[str, Any]:
        opts = self.options
        out: dict[str, Any] = {"month": month}
        if opts.monthly_limit is not None:
            used, requests = seen.get("cost", (0.0, 0))
            out["cost"] = {
                "used": used,
                "limit": opts.monthly_limit,
                "ratio": used / opts.monthly_limit,
                "requests": requests or 0,
                "hard_stop": opts.hard_stop,
            }
        if opts.bandwidth_limit is not None:
            limit = float(opts.bandwidth_limit)
            used, _ = seen.get("bandwidth", (0.0, None))
            prefer_at = opts.prefer_cache_at
            out["bandwidth"] = {
                "used": used,
                "limit": limit,
                "ratio": used / limit,
                "hard_stop": opts.bandwidth_hard_stop,
                "prefer_cache": prefer_at is not None and used >= limit * prefer_at / 100,
            }
        return out


def _from_fallback(ctx: object) -> bool:
    """The response came from the cache or a fallback step, not from this upstream."""
    if not isinstance(ctx, CallContext):
        return False
    if ctx.meta.get("from_cache"):
        return True
    served = ctx.meta.get("served_by")
    return isinstance(served, str) and served != "primary"
