"""Service levels: per-operation latency percentiles, error rate, retry success, cache hits and
breaker recovery over a rolling window, each beside its target with a pass / short mark.

``SlaRecorder`` is an event listener (a spec with an ``sla:`` section gets one): every finished
call (``call.succeeded`` / ``call.failed``) and every breaker recovery (``breaker.opened`` →
``breaker.closed``) is counted into **per-minute buckets** with a **fixed latency histogram**
(``LATENCY_BOUNDS_MS``), so the figures of any window take bounded memory and can be added
across processes. ``flush()`` adds this process's counts to the state store (``incr`` on
``<service>:sla:<operation>:<minute>:<field>``, expiring after the window), so ``tether status``
in another process reads every instance's figures (SQLite or Redis store); the Integration
flushes at most once a second, after a call, and when it closes.

The figures, per operation (an endpoint, or a facade's operation such as a whole batch):

- ``p50`` / ``p95`` / ``p99``: the upper bound of the histogram bucket that holds that share of
  the calls (so "p95 ≤ 500 ms" is exact whenever the target is a bucket bound, and every target
  a spec commonly writes is one); ``pass`` when at least that share took no longer than the target;
- ``error_rate``: failed calls / calls, where rate-limit refusals (``RATE_001``, a 429 or the
  local limiter) and breaker rejections (``CIRCUIT_001``) count in neither;
- ``availability``: 1 − error rate;
- ``retry_success_rate``: calls that needed more than one attempt and then succeeded / calls
  that needed more than one attempt;
- ``cache_hit_rate``: calls answered from the cache / calls of cached endpoints (a facade's
  multi-call operation, a whole history say, has no figure of its own);
- ``breaker_recovery`` (per service): the longest time from a breaker opening to closing again
  in the window, against its target.

A figure with no calls behind it is marked ``no data``. When a target is missed over the window
(``short``) the recorder emits ``alert.fired`` (``source: "sla"``, once) and ``alert.resolved``
when it passes again; these are evaluated on this process's own counts.
"""

from __future__ import annotations

import bisect
import contextvars
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from tether import events as ev
from tether._clock import Clock, system_clock
from tether.errors import StateStoreError
from tether.events import Event, EventBus

if TYPE_CHECKING:
    from tether.state import StateStore

__all__ = ["LATENCY_BOUNDS_MS", "LatencyTargets", "SlaRecorder", "SlaTargets", "sla_rows"]

#: Upper bounds of the latency histogram's buckets, milliseconds (one more bucket holds the rest).
LATENCY_BOUNDS_MS: Final[tuple[float, ...]] = (
    1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 200, 250, 300, 400, 500, 600, 750, 800, 1000,
    1250, 1500, 2000, 2500, 3000, 4000, 5000, 7500, 10000, 15000, 20000, 30000, 60000, 120000,
)  # fmt: skip
#: Error codes that are refusals, not errors, for the error rate.
EXCLUDED_CODES: Final = frozenset({"RATE_001", "CIRCUIT_001"})
#: The operation name service-wide figures (breaker recovery) are kept under.
SERVICE_WIDE: Final = "_service"
_FIELDS: Final = ("calls", "errors", "excluded", "retried", "retried_ok", "cache_lookups", "cache_hits")
_RECOVERY_FIELDS: Final = ("recoveries", "recovery_over", "recovery_ms_max")
_QUANTILES: Final = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))
#: Seconds between flushes to the state store.
FLUSH_EVERY: Final = 1.0

_suppressed: contextvars.ContextVar[bool] = contextvars.ContextVar("tether_sla_suppressed", default=False)


@dataclass(frozen=True, slots=True)
class LatencyTargets:
    """Latency targets of one operation, seconds (``None``: none set)."""

    p50: float | None = None
    p95: float | None = None
    p99: float | None = None


@dataclass(frozen=True, slots=True)
class SlaTargets:
    """The targets a spec's ``sla:`` section (and its endpoints' ``performance:``) set."""

    latency: Mapping[str, LatencyTargets] = field(default_factory=dict)
    default_latency: LatencyTargets = LatencyTargets()
    error_rate: float | None = None
    availability: float | None = None
    retry_success_rate: float | None = None
    cache_hit_rate: float | None = None
    breaker_recovery: float | None = None
    window: float = 600.0
    #: Operations whose calls can be answered from the cache (the cache hit rate applies to them).
    cached: frozenset[str] = frozenset()

    def for_operation(self, operation: str) -> LatencyTargets:
        return self.latency.get(operation, self.default_latency)


Buckets = dict[tuple[str, int], Counter[str]]


def _bucket_of(elapsed: float) -> int:
    return bisect.bisect_left(LATENCY_BOUNDS_MS, elapsed * 1000.0)


def _quantile(histogram: Sequence[int], q: float) -> float | None:
    """The upper bound (seconds) of the bucket holding the ``q`` share of the samples."""
    total = sum(histogram)
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for index, count in enumerate(histogram):
        seen += count
        if seen >= rank:
            return LATENCY_BOUNDS_MS[index] / 1000.0 if index < len(LATENCY_BOUNDS_MS) else math.inf
    return math.inf  # pragma: no cover - the loop always reaches the rank


def _within(histogram: Sequence[int], target: float) -> float:
    """The share of samples in buckets whose upper bound is at most ``target`` seconds."""
    total = sum(histogram)
    limit = bisect.bisect_right(LATENCY_BOUNDS_MS, target * 1000.0 + 1e-9)
    return sum(histogram[:limit]) / total if total else 0.0


def _mark(value: float | None, target: float | None, *, higher_is_better: bool) -> str:
    if target is None:
        return "no target"
    if value is None:
        return "no data"
    ok = value >= target if higher_is_better else value <= target
    return "pass" if ok else "short"


def _figure(value: float | None, target: float | None, mark: str, unit: str) -> dict[str, Any]:
    return {"value": value, "target": target, "mark": mark, "unit": unit}


def figures(buckets: Buckets, targets: SlaTargets, operations: Iterable[str]) -> dict[str, Any]:
    """The report of ``buckets`` (already cut to the window): per operation and service-wide."""
    out: dict[str, Any] = {"window": targets.window, "operations": {}}
    for operation in operations:
        counts: Counter[str] = Counter()
        for (op, _), bucket in buckets.items():
            if op == operation:
                counts.update(bucket)
        calls = counts["calls"]
        histogram = [counts[f"h{i}"] for i in range(len(LATENCY_BOUNDS_MS) + 1)]
        entry: dict[str, Any] = {"calls": calls}
        latency = targets.for_operation(operation)
        for name, q in _QUANTILES:
            target = getattr(latency, name)
            value = _quantile(histogram, q)
            mark = "no data" if value is None else "no target" if target is None else (
                "pass" if _within(histogram, target) >= q else "short"
            )  # fmt: skip
            entry[name] = _figure(value, target, mark, "s")
        counted = calls - counts["excluded"]
        error_rate = counts["errors"] / counted if counted > 0 else None
        entry["error_rate"] = _figure(
            error_rate,
            targets.error_rate,
            _mark(error_rate, targets.error_rate, higher_is_better=False),
            "ratio",
        )
        availability = None if error_rate is None else 1.0 - error_rate
        entry["availability"] = _figure(
            availability,
            targets.availability,
            _mark(availability, targets.availability, higher_is_better=True),
            "ratio",
        )
        retried = counts["retried"]
        retry_ok = counts["retried_ok"] / retried if retried else None
        entry["retry_success_rate"] = _figure(
            retry_ok,
            targets.retry_success_rate,
            _mark(retry_ok, targets.retry_success_rate, higher_is_better=True),
            "ratio",
        )
        if operation in targets.cached:
            looked = counts["cache_lookups"]
            hit = counts["cache_hits"] / looked if looked else None
            entry["cache_hit_rate"] = _figure(
                hit,
                targets.cache_hit_rate,
                _mark(hit, targets.cache_hit_rate, higher_is_better=True),
                "ratio",
            )
        entry["excluded"] = counts["excluded"]
        out["operations"][operation] = entry
    service: Counter[str] = Counter()
    worst = 0
    for (op, _), bucket in buckets.items():
        if op == SERVICE_WIDE:
            service.update({k: v for k, v in bucket.items() if k != "recovery_ms_max"})
            worst = max(worst, bucket["recovery_ms_max"])
    recovered = service["recoveries"]
    longest = worst / 1000.0 if recovered else None
    target = targets.breaker_recovery
    mark = _mark(longest, target, higher_is_better=False)
    if recovered and target is not None and service["recovery_over"]:
        mark = "short"
    out["breaker_recovery"] = {**_figure(longest, target, mark, "s"), "recoveries": recovered}
    return out


def sla_rows(report: Mapping[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """``(operation, figure, value, target, mark)`` rows for a table (``tether status``)."""

    def show(entry: Mapping[str, Any]) -> tuple[str, str]:
        value, target, unit = entry.get("value"), entry.get("target"), entry.get("unit")
        return _fmt(value, unit), _fmt(target, unit)

    rows: list[tuple[str, str, str, str, str]] = []
    for operation, entry in report.get("operations", {}).items():
        for name in (
            "p50",
            "p95",
            "p99",
            "error_rate",
            "availability",
            "retry_success_rate",
            "cache_hit_rate",
        ):
            if name in entry:
                value, target = show(entry[name])
                rows.append(
                    (f"{operation} ({entry['calls']} calls)", name, value, target, entry[name]["mark"])
                )
    recovery = report.get("breaker_recovery")
    if recovery is not None:
        value, target = show(recovery)
        rows.append(
            (
                f"breaker ({recovery['recoveries']} recoveries)",
                "breaker_recovery",
                value,
                target,
                recovery["mark"],
            )
        )
    return rows


def _fmt(value: Any, unit: Any) -> str:
    if value is None:
        return "—"
    if unit == "ratio":
        return f"{float(value) * 100:.2f} %"
    if value == math.inf:
        return "> 120 s"
    seconds = float(value)
    return f"{seconds * 1000:g} ms" if seconds < 1 else f"{seconds:g} s"


class SlaRecorder:
    """Counts calls into per-minute buckets; flushes them to a state store; reports against targets."""

    def __init__(
        self,
        service: str,
        targets: SlaTargets,
        *,
        operations: Iterable[str] = (),
        store: StateStore | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.service = service
        self.targets = targets
        self.operations = tuple(dict.fromkeys(operations))
        self._store = store
        self._clock = clock or system_clock
        self._local: Buckets = {}
        self._pending: Buckets = {}
        self._opened_at: float | None = None
        self._last_flush = self._clock.monotonic()
        self._firing: set[str] = set()
        self._bus: EventBus | None = None

    def bind(self, bus: EventBus) -> None:
        """The bus alert events go to (the client's)."""
        self._bus = bus

    def __repr__(self) -> str:
        return f"SlaRecorder({self.service!r}, operations={list(self.operations)!r})"

    # --- counting ------------------------------------------------------------------------------

    def _minute(self) -> int:
        return int(self._clock.time() // 60)

    def _count(self, operation: str, values: Mapping[str, int]) -> None:
        minute = self._minute()
        for table in (self._local, self._pending):
            table.setdefault((operation, minute), Counter()).update(values)
        horizon = minute - math.ceil(self.targets.window / 60)
        for key in [k for k in self._local if k[1] <= horizon]:
            del self._local[key]

    def record(
        self,
        operation: str,
        elapsed: float,
        *,
        error_code: str | None = None,
        attempts: int = 1,
        from_cache: bool | None = None,
    ) -> None:
        """Count one finished operation (``error_code`` ``None``: it succeeded; ``from_cache``
        ``None``: not one call the cache could answer, e.g. a facade's multi-call operation)."""
        values: Counter[str] = Counter({"calls": 1, f"h{_bucket_of(elapsed)}": 1})
        if error_code in EXCLUDED_CODES:
            values["excluded"] += 1
        elif error_code is not None:
            values["errors"] += 1
        if attempts > 1:
            values["retried"] += 1
            if error_code is None:
                values["retried_ok"] += 1
        if from_cache is not None:
            values["cache_lookups"] += 1
            values["cache_hits"] += int(from_cache)
        self._count(operation, values)

    @contextmanager
    def operation(self, name: str) -> Iterator[None]:
        """Count the block as one ``name`` operation, and the calls inside it not at all (a
        facade's operation made of several calls, e.g. every page of a history)."""
        started = self._clock.monotonic()
        token = _suppressed.set(True)
        code: str | None = None
        try:
            yield
        except BaseException as exc:
            code = str(getattr(exc, "error_code", "") or "ERROR")
            raise
        finally:
            _suppressed.reset(token)
            self.record(name, self._clock.monotonic() - started, error_code=code)

    def __call__(self, event: Event) -> None:
        name = event.name
        if name in (ev.CALL_SUCCEEDED, ev.CALL_FAILED):
            if _suppressed.get():
                return
            fields = event.fields
            self.record(
                event.endpoint or "-",
                float(fields.get("elapsed") or 0.0),
                error_code=None if name == ev.CALL_SUCCEEDED else str(fields.get("error_code") or "ERROR"),
                attempts=int(fields.get("attempts") or 1),
                from_cache=bool(fields.get("from_cache")),
            )
        elif name == ev.BREAKER_OPENED:
            if self._opened_at is None:
                self._opened_at = self._clock.monotonic()
        elif name == ev.BREAKER_CLOSED and self._opened_at is not None:
            took = self._clock.monotonic() - self._opened_at
            self._opened_at = None
            target = self.targets.breaker_recovery
            values = Counter({"recoveries": 1, "recovery_over": int(target is not None and took > target)})
            self._count(SERVICE_WIDE, values)
            for table in (self._local, self._pending):
                bucket = table[(SERVICE_WIDE, self._minute())]
                bucket["recovery_ms_max"] = max(bucket["recovery_ms_max"], round(took * 1000))

    # --- the store ------------------------------------------------------------------------------

    def _key(self, operation: str, minute: int, name: str) -> str:
        return f"{self.service}:sla:{operation}:{minute}:{name}"

    async def maybe_flush(self) -> None:
        """Flush when ``FLUSH_EVERY`` has passed since the last flush (cheap otherwise)."""
        if self._pending and self._clock.monotonic() - self._last_flush >= FLUSH_EVERY:
            await self.flush()

    async def flush(self) -> None:
        """Add the counts since the last flush to the state store, then evaluate the alerts."""
        self._last_flush = self._clock.monotonic()
        pending, self._pending = self._pending, {}
        store = self._store
        if store is not None:
            try:
                await self._write(store, pending)
            except StateStoreError:
                for key, counts in pending.items():  # kept for the next flush
                    self._pending.setdefault(key, Counter()).update(counts)
        self._evaluate()

    async def _write(self, store: StateStore, pending: Buckets) -> None:
        now = self._clock.time()
        keep = self.targets.window + 120.0
        for (operation, minute), counts in pending.items():
            for name, amount in counts.items():
                if not amount:
                    continue
                key = self._key(operation, minute, name)
                if name == "recovery_ms_max":  # a maximum, not a sum
                    current = await store.get_counter(key, now=now)
                    if amount > current:
                        await store.incr(key, amount - current, ttl=keep, now=now)
                else:
                    await store.incr(key, amount, ttl=keep, now=now)

    async def fetch(self) -> Buckets:
        """Every instance's buckets of the window, read from the state store."""
        store = self._store
        if store is None:
            return self._window(self._local)
        now = self._clock.time()
        minute = self._minute()
        span = math.ceil(self.targets.window / 60)
        out: Buckets = {}
        names = (*_FIELDS, *(f"h{i}" for i in range(len(LATENCY_BOUNDS_MS) + 1)))
        for operation in (*self.operations, SERVICE_WIDE):
            fields = _RECOVERY_FIELDS if operation == SERVICE_WIDE else names
            for m in range(minute - span + 1, minute + 1):
                counts: Counter[str] = Counter()
                for name in fields:
                    value = int(await store.get_counter(self._key(operation, m, name), now=now))
                    if value:
                        counts[name] = value
                if counts:
                    out[(operation, m)] = counts
        return out

    def _window(self, buckets: Buckets) -> Buckets:
        start = self._minute() - math.ceil(self.targets.window / 60)
        return {k: v for k, v in buckets.items() if k[1] > start}

    def report(self) -> dict[str, Any]:
        """This process's figures over the window, against the targets."""
        operations = self.operations or tuple(sorted({op for op, _ in self._local if op != SERVICE_WIDE}))
        return figures(self._window(self._local), self.targets, operations)

    async def fetch_report(self) -> dict[str, Any]:
        """Every instance's figures over the window (read from the state store)."""
        await self.flush()
        return figures(await self.fetch(), self.targets, self.operations)

    # --- alerts -----------------------------------------------------------------------------

    def _evaluate(self) -> None:
        report = self.report()
        marks: dict[str, tuple[str, Mapping[str, Any]]] = {}
        for operation, entry in report["operations"].items():
            for name, figure in entry.items():
                if isinstance(figure, dict) and "mark" in figure:
                    marks[f"{operation} {name}"] = (operation, figure)
        marks["breaker_recovery"] = (SERVICE_WIDE, report["breaker_recovery"])
        for condition, (operation, figure) in marks.items():
            if figure["mark"] == "short" and condition not in self._firing:
                self._firing.add(condition)
                self._emit(ev.ALERT_FIRED, operation, condition, figure)
            elif figure["mark"] == "pass" and condition in self._firing:
                self._firing.discard(condition)
                self._emit(ev.ALERT_RESOLVED, operation, condition, figure)

    @property
    def firing(self) -> list[str]:
        """The service levels missed over the window now (this process's counts)."""
        return sorted(self._firing)

    def _emit(self, name: str, operation: str, condition: str, figure: Mapping[str, Any]) -> None:
        if self._bus is not None:
            self._bus.emit(
                name,
                endpoint=None if operation == SERVICE_WIDE else operation,
                source="sla",
                condition=f"sla {condition}",
                value=figure["value"],
                target=figure["target"],
                severity="warning",
                window=self.targets.window,
            )
