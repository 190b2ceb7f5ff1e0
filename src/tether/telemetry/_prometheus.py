"""The Prometheus listener: DESIGN 6's metric names, fed by events.

Labels never carry secrets: ``provider`` is the service name, ``endpoint`` the spec's endpoint
name (or ``-``), ``status`` a number, ``error_type`` an error class name, ``result`` a cache
outcome. URLs and header values are never labels.
"""

from __future__ import annotations

import threading
from typing import Any, Final

from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from tether import events as ev
from tether.events import Event

__all__ = ["PrometheusListener"]

_BREAKER_STATE: Final = {
    ev.BREAKER_CLOSED: 0.0,
    ev.BREAKER_OPENED: 1.0,
    ev.BREAKER_HALF_OPENED: 2.0,
}
_CACHE_RESULT: Final = {
    ev.CACHE_HIT: "hit",
    ev.CACHE_MISS: "miss",
    ev.CACHE_STALE_SERVED: "stale",
    ev.CACHE_REVALIDATED: "revalidated",
}
_LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class _Metrics:
    """The metric families of one registry (a registry refuses a second copy of a name)."""

    def __init__(self, reg: CollectorRegistry) -> None:
        self.requests = Counter(
            "provider_requests", "HTTP exchanges by status", ["provider", "endpoint", "status"], registry=reg
        )
        self.latency = Histogram(
            "provider_latency_seconds",
            "Time of one exchange (one attempt), seconds",
            ["provider", "endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.errors = Counter(
            "provider_errors",
            "Failed attempts by error type",
            ["provider", "endpoint", "error_type"],
            registry=reg,
        )
        self.breaker_state = Gauge(
            "circuit_breaker_state", "0 closed, 1 open, 2 half-open", ["provider"], registry=reg
        )
        self.dlq_size = Gauge(
            "dlq_size", "Entries waiting in the dead-letter queue", ["provider"], registry=reg
        )
        self.rate_limit_hits = Counter(
            "rate_limit_hits", "Calls the local limiter made wait or refused", ["provider"], registry=reg
        )
        self.rate_limit_429 = Counter(
            "rate_limit_429", "429 answers from the provider", ["provider"], registry=reg
        )
        self.cache_requests = Counter(
            "cache_requests", "Cache lookups by result", ["provider", "result"], registry=reg
        )
        self.retry_attempts = Counter(
            "retry_attempts", "Retries scheduled", ["provider", "endpoint"], registry=reg
        )
        self.bandwidth_used = Gauge(
            "bandwidth_used_bytes", "Bytes in and out this month", ["provider"], registry=reg
        )
        self.bandwidth_remaining = Gauge(
            "bandwidth_remaining_pct",
            "Share of the monthly bandwidth budget left, %",
            ["provider"],
            registry=reg,
        )
        self.budget_used = Gauge(
            "budget_used_ratio", "Share of the monthly cost budget spent", ["provider"], registry=reg
        )
        self.state_fallbacks = Counter(
            "state_store_fallbacks",
            "Switches from the shared state store to local state",
            ["provider"],
            registry=reg,
        )


_BY_REGISTRY: dict[int, tuple[CollectorRegistry, _Metrics]] = {}
_LOCK = threading.Lock()


def _metrics_for(reg: CollectorRegistry) -> _Metrics:
    with _LOCK:
        known = _BY_REGISTRY.get(id(reg))
        if known is None or known[0] is not reg:
            known = (reg, _Metrics(reg))
            _BY_REGISTRY[id(reg)] = known
        return known[1]


class PrometheusListener:
    """Counts what the pipeline reports into Prometheus metrics.

    ``registry``: where the metrics live (default: prometheus_client's global registry; pass a
    fresh ``CollectorRegistry`` in tests or to export several clients separately).
    ``circuit_breaker_state`` is 0 closed, 1 open, 2 half-open.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = registry if registry is not None else DEFAULT_REGISTRY
        self.registry = reg
        m = _metrics_for(reg)  # several listeners (clients) on one registry share its families
        self.requests = m.requests
        self.latency = m.latency
        self.errors = m.errors
        self.breaker_state = m.breaker_state
        self.dlq_size = m.dlq_size
        self.rate_limit_hits = m.rate_limit_hits
        self.rate_limit_429 = m.rate_limit_429
        self.cache_requests = m.cache_requests
        self.retry_attempts = m.retry_attempts
        self.bandwidth_used = m.bandwidth_used
        self.bandwidth_remaining = m.bandwidth_remaining
        self.budget_used = m.budget_used
        self.state_fallbacks = m.state_fallbacks

    def __repr__(self) -> str:
        return "PrometheusListener()"

    def __call__(self, event: Event) -> None:
        provider = event.service or "-"
        endpoint = event.endpoint or "-"
        name = event.name
        fields = event.fields
        if name == ev.RESPONSE_RECEIVED:
            status = fields.get("status")
            self.requests.labels(provider, endpoint, str(status)).inc()
            self._observe_latency(provider, endpoint, fields)
            if status == 429:
                self.rate_limit_429.labels(provider).inc()
        elif name == ev.REQUEST_FAILED:
            self.requests.labels(provider, endpoint, "error").inc()
            self.errors.labels(provider, endpoint, str(fields.get("error_type", "unknown"))).inc()
            self._observe_latency(provider, endpoint, fields)
        elif name in _BREAKER_STATE:
            self.breaker_state.labels(provider).set(_BREAKER_STATE[name])
        elif name == ev.RETRY_SCHEDULED:
            self.retry_attempts.labels(provider, endpoint).inc()
        elif name in (ev.LIMITER_QUEUED, ev.LIMITER_REJECTED):
            self.rate_limit_hits.labels(provider).inc()
        elif name in _CACHE_RESULT:
            self.cache_requests.labels(provider, _CACHE_RESULT[name]).inc()
        elif name in (ev.DLQ_ENQUEUED, ev.DLQ_REPLAYED, ev.DLQ_FAILED):
            self._set_number(self.dlq_size, provider, fields, "size")
        elif name == ev.BUDGET_ALERT:
            self._budget(provider, fields)
        elif name == ev.STATE_LOCAL:
            self.state_fallbacks.labels(provider).inc()

    def _observe_latency(self, provider: str, endpoint: str, fields: Any) -> None:
        elapsed = fields.get("elapsed")
        if isinstance(elapsed, int | float):
            self.latency.labels(provider, endpoint).observe(float(elapsed))

    @staticmethod
    def _set_number(gauge: Gauge, provider: str, fields: Any, key: str) -> None:
        value = fields.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            gauge.labels(provider).set(float(value))

    def _budget(self, provider: str, fields: Any) -> None:
        kind = fields.get("kind") or fields.get("budget")
        ratio = fields.get("ratio")
        if not isinstance(ratio, int | float):
            return
        if kind == "bandwidth":
            self.bandwidth_remaining.labels(provider).set(max(0.0, 100.0 * (1.0 - float(ratio))))
            self._set_number(self.bandwidth_used, provider, fields, "used")
        else:
            self.budget_used.labels(provider).set(float(ratio))
