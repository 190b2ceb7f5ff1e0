"""Per-call state: one ``CallContext`` travels with the request in ``request.extensions``.

Policy objects are immutable and shared by every call; anything that belongs to one call (its
deadline, attempt number, idempotency key, what served it) lives here instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import httpx2

    from tether._config import Timeouts

__all__ = ["CONTEXT_KEY", "CallContext", "context_of"]

CONTEXT_KEY: Final = "tether"

IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


def new_request_id() -> str:
    return os.urandom(16).hex()


@dataclass(slots=True, eq=False)
class CallContext:
    """What one logical call (all its attempts) knows about itself."""

    service: str
    timeouts: Timeouts
    endpoint: str | None = None
    #: Set by ``request_id`` on first read: most calls never need one, and making it costs.
    _request_id: str | None = None
    #: Monotonic time by which the whole call must end (set by the deadline policy).
    deadline: float | None = None
    #: 1 for the first attempt; the retry policy counts up.
    attempt: int = 0
    #: ``None``: decide by method; ``True``/``False``: the caller or the spec said so.
    idempotent: bool | None = None
    idempotency_key: str | None = None
    #: The response body is streamed to the caller rather than read by tether.
    stream: bool = False
    #: Facts for ``Result.meta`` (attempts, from_cache, stale, served_by, rate_limit …).
    meta: dict[str, Any] = field(default_factory=dict)
    #: Extra values policies share for this call (cache key, credential identity …).
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def request_id(self) -> str:
        """A unique id for this call (all its attempts), made on first use."""
        rid = self._request_id
        if rid is None:
            rid = self._request_id = new_request_id()
        return rid

    @request_id.setter
    def request_id(self, value: str) -> None:
        self._request_id = value

    def is_idempotent(self, method: str) -> bool:
        if self.idempotent is not None:
            return self.idempotent
        if self.idempotency_key is not None:
            return True
        return method.upper() in IDEMPOTENT_METHODS

    def remaining(self, now: float) -> float | None:
        """Seconds left before the deadline (``None`` = no deadline)."""
        return None if self.deadline is None else self.deadline - now


def context_of(request: httpx2.Request) -> CallContext:
    """The call context attached to ``request`` by the client."""
    ctx = request.extensions.get(CONTEXT_KEY)
    if not isinstance(ctx, CallContext):
        raise LookupError("request has no tether CallContext; send it through tether.Client")
    return ctx
