"""Alert rules evaluated over a rolling window of calls (the spec's ``monitoring.alerts``).

``AlertEvaluator`` is a listener: it keeps the outcome of every call of its client
(``call.succeeded`` / ``call.failed`` events) for ``window`` seconds and, after each call,
compares each rule's metric with its threshold. When a rule starts to hold it emits
``alert.fired`` (once), and ``alert.resolved`` when it stops holding. Ratios and percentiles wait
for ``min_calls`` calls in the window, so one early failure is not a 100 % error rate.
``alert_on_open`` turns every ``breaker.opened`` into a critical ``alert.fired`` as well.
"""

from __future__ import annotations

import math
import operator
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from tether import events as ev
from tether._clock import Clock, system_clock
from tether.events import Event, EventBus

__all__ = ["AlertEvaluator", "AlertRule"]

_OPS: Final[dict[str, Callable[[float, float], bool]]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
#: Metrics that are shares of the calls in the window; they wait for ``min_calls``.
_NEEDS_SAMPLES: Final = frozenset(
    {
        "error_rate",
        "retry_rate",
        "cache_hit_rate",
        "availability",
        "response_time",
        "response_time_p50",
        "response_time_p95",
        "response_time_p99",
    }
)
_PERCENTILES: Final = {"response_time_p50": 0.50, "response_time_p95": 0.95, "response_time_p99": 0.99}
_DEFAULT_MIN_CALLS: Final = 10


@dataclass(frozen=True, slots=True)
class AlertRule:
    """``<metric> <op> <threshold>`` over ``window`` seconds. Times are seconds, ratios fractions."""

    metric: str
    op: str
    threshold: float
    window: float = 300.0
    severity: str = "warning"
    channel: str = "log"
    description: str | None = None

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"AlertRule.op must be one of {', '.join(_OPS)}, got {self.op!r}")
        if not self.window > 0:
            raise ValueError(f"AlertRule.window must be positive seconds, got {self.window!r}")

    @property
    def condition(self) -> str:
        return f"{self.metric} {self.op} {self.threshold:g}"


@dataclass(frozen=True, slots=True)
class _Call:
    at: float
    ok: bool
    elapsed: float
    attempts: int
    from_cache: bool


class AlertEvaluator:
    """Evaluates ``rules`` after every call; emits alert events on the bus it is bound to."""

    def __init__(
        self,
        rules: Iterable[AlertRule] = (),
        *,
        clock: Clock | None = None,
        min_calls: int = _DEFAULT_MIN_CALLS,
        alert_on_open: bool = False,
    ) -> None:
        self.rules = tuple(rules)
        self._clock = clock or system_clock
        self._min_calls = min_calls
        self._alert_on_open = alert_on_open
        self._horizon = max((r.window for r in self.rules), default=0.0)
        self._calls: deque[_Call] = deque()
        self._firing: set[int] = set()
        self._ratios: dict[str, float] = {}
        self._bus: EventBus | None = None

    def bind(self, bus: EventBus) -> None:
        """The bus alert events go to (the client's)."""
        self._bus = bus

    def __repr__(self) -> str:
        return f"AlertEvaluator(rules={[r.condition for r in self.rules]!r})"

    @property
    def firing(self) -> list[str]:
        """The conditions holding now."""
        return [self.rules[i].condition for i in sorted(self._firing)]

    def __call__(self, event: Event) -> None:
        name = event.name
        if name in (ev.CALL_SUCCEEDED, ev.CALL_FAILED):
            fields = event.fields
            self._calls.append(
                _Call(
                    self._clock.monotonic(),
                    name == ev.CALL_SUCCEEDED,
                    float(fields.get("elapsed") or 0.0),
                    int(fields.get("attempts") or 1),
                    bool(fields.get("from_cache")),
                )
            )
            self._evaluate(event)
        elif name == ev.BUDGET_ALERT:
            ratio = event.fields.get("ratio")
            kind = event.fields.get("kind") or event.fields.get("budget")
            if isinstance(ratio, int | float):
                self._ratios["bandwidth_used" if kind == "bandwidth" else "budget_used"] = float(ratio)
                self._evaluate(event)
        elif name == ev.BREAKER_OPENED and self._alert_on_open:
            self._emit(ev.ALERT_FIRED, event, condition="circuit_open", severity="critical", channel="log")

    def metric(self, name: str, window: float) -> float | None:
        """The metric's value over the last ``window`` seconds (``None``: not enough calls yet)."""
        if name in self._ratios:
            return self._ratios[name]
        now = self._clock.monotonic()
        calls = [c for c in self._calls if c.at > now - window]
        if name == "request_count":
            return float(len(calls))
        if name == "throughput":
            return len(calls) / window
        if name in _NEEDS_SAMPLES and len(calls) < self._min_calls:
            return None
        if name == "error_rate":
            return sum(1 for c in calls if not c.ok) / len(calls)
        if name == "availability":
            return sum(1 for c in calls if c.ok) / len(calls)
        if name == "retry_rate":
            return sum(1 for c in calls if c.attempts > 1) / len(calls)
        if name == "cache_hit_rate":
            return sum(1 for c in calls if c.from_cache) / len(calls)
        if name == "response_time":
            return sum(c.elapsed for c in calls) / len(calls)
        if name in _PERCENTILES:
            ordered = sorted(c.elapsed for c in calls)
            return ordered[max(0, math.ceil(_PERCENTILES[name] * len(ordered)) - 1)]
        return None

    def _evaluate(self, cause: Event) -> None:
        now = self._clock.monotonic()
        while self._calls and self._calls[0].at <= now - self._horizon:
            self._calls.popleft()
        for i, rule in enumerate(self.rules):
            value = self.metric(rule.metric, rule.window)
            holds = value is not None and _OPS[rule.op](value, rule.threshold)
            if holds and i not in self._firing:
                self._firing.add(i)
                self._emit(ev.ALERT_FIRED, cause, value=value, **_describe(rule))
            elif not holds and value is not None and i in self._firing:
                self._firing.discard(i)
                self._emit(ev.ALERT_RESOLVED, cause, value=value, **_describe(rule))

    def _emit(self, name: str, cause: Event, **fields: Any) -> None:
        if self._bus is not None:
            self._bus.emit(name, endpoint=cause.endpoint, service=cause.service, **fields)


def _describe(rule: AlertRule) -> dict[str, Any]:
    out: dict[str, Any] = {
        "condition": rule.condition,
        "severity": rule.severity,
        "channel": rule.channel,
        "window": rule.window,
    }
    if rule.description:
        out["description"] = rule.description
    return out
