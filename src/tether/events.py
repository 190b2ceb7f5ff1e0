"""Events: what policies report, and the listeners that turn reports into logs, metrics, traces.

Policies never log or count directly. They emit frozen ``Event`` records with a constant
``name`` (one of the constants below) to an ``EventBus``; logging (structlog), Prometheus and
OpenTelemetry are listeners. Field values are redacted when the event is made, so no listener can
leak a secret.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from tether._redact import redact_value

__all__ = [
    "Event",
    "EventBus",
    "Listener",
]

# --- event names (constant; listeners match on them) --------------------------------------------
REQUEST_SENT: Final = "request.sent"
RESPONSE_RECEIVED: Final = "response.received"
REQUEST_FAILED: Final = "request.failed"
CALL_SUCCEEDED: Final = "call.succeeded"
CALL_FAILED: Final = "call.failed"
REDIRECT_FOLLOWED: Final = "redirect.followed"
CREDENTIALS_STRIPPED: Final = "auth.credentials_stripped"
DEADLINE_EXCEEDED: Final = "deadline.exceeded"
RETRY_SCHEDULED: Final = "retry.scheduled"
RETRY_GAVE_UP: Final = "retry.gave_up"
RETRY_BUDGET_EXHAUSTED: Final = "retry.budget_exhausted"
RETRY_REFUSED_WAIT: Final = "retry.refused_wait"
BREAKER_OPENED: Final = "breaker.opened"
BREAKER_HALF_OPENED: Final = "breaker.half_opened"
BREAKER_CLOSED: Final = "breaker.closed"
BREAKER_REJECTED: Final = "breaker.rejected"
LIMITER_QUEUED: Final = "limiter.queued"
LIMITER_REJECTED: Final = "limiter.rejected"
LIMITER_PAUSED: Final = "limiter.paused"
LIMITER_LEARNED: Final = "limiter.learned"
BULKHEAD_REJECTED: Final = "bulkhead.rejected"
BULKHEAD_QUEUED: Final = "bulkhead.queued"
CACHE_HIT: Final = "cache.hit"
CACHE_MISS: Final = "cache.miss"
CACHE_STALE_SERVED: Final = "cache.stale_served"
CACHE_REVALIDATED: Final = "cache.revalidated"
FALLBACK_SERVED: Final = "fallback.served"
DLQ_ENQUEUED: Final = "dlq.enqueued"
DLQ_REPLAYED: Final = "dlq.replayed"
DLQ_FAILED: Final = "dlq.failed"
BUDGET_ALERT: Final = "budget.alert"
AUTH_TOKEN_REFRESHED: Final = "auth.token_refreshed"
AUTH_SECRET_ROTATED: Final = "auth.secret_rotated"
API_DEPRECATED: Final = "api.deprecated"
STATE_LOCAL: Final = "state.local"
STATE_SHARED: Final = "state.shared"
ALERT_FIRED: Final = "alert.fired"
ALERT_RESOLVED: Final = "alert.resolved"
STREAM_RECONNECTED: Final = "stream.reconnected"


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened. ``fields`` is read-only and already redacted."""

    name: str
    service: str | None = None
    endpoint: str | None = None
    fields: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    level: int = logging.INFO

    @classmethod
    def make(
        cls,
        name: str,
        *,
        service: str | None = None,
        endpoint: str | None = None,
        level: int = logging.INFO,
        **fields: Any,
    ) -> Event:
        clean = {k: redact_value(k, v) for k, v in fields.items()}
        return cls(name, service, endpoint, MappingProxyType(clean), level)

    def __repr__(self) -> str:
        where = ".".join(p for p in (self.service, self.endpoint) if p)
        return f"Event({self.name!r}, {where!r}, {dict(self.fields)!r})"


Listener = Callable[[Event], None]
"""A listener receives every event. It must be fast and must not raise."""


class EventBus:
    """Delivers events to listeners. A failing listener is reported, never allowed to break a call."""

    __slots__ = ("_listeners", "_service")

    def __init__(self, listeners: Iterable[Listener] = (), *, service: str | None = None) -> None:
        self._listeners: tuple[Listener, ...] = tuple(listeners)
        self._service = service

    @property
    def active(self) -> bool:
        return bool(self._listeners)

    def add(self, listener: Listener) -> None:
        self._listeners = (*self._listeners, listener)

    def remove(self, listener: Listener) -> None:
        self._listeners = tuple(x for x in self._listeners if x is not listener)

    def emit(
        self,
        name: str,
        *,
        endpoint: str | None = None,
        level: int = logging.INFO,
        service: str | None = None,
        **fields: Any,
    ) -> None:
        if not self._listeners:
            return
        event = Event.make(name, service=service or self._service, endpoint=endpoint, level=level, **fields)
        self.deliver(event)

    def deliver(self, event: Event) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # a broken listener must not break the call; say so once per failure
                logging.getLogger("tether.events").exception("event listener %r failed", listener)


class EventRecorder:
    """A listener that keeps every event: for tests and for ``tether call -v``."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def names(self) -> list[str]:
        return [e.name for e in self.events]

    def of(self, name: str) -> list[Event]:
        return [e for e in self.events if e.name == name]
