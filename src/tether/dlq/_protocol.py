"""The dead-letter queue backend protocol and the records it stores.

A *dead letter* is one call that failed after its retries and was marked to be kept (``dlq``):
its request (method, URL, headers, body — credentials removed), a *reference* to the credentials
(the client's auth scheme and origin: the scheme re-signs the request on replay, so no secret is
ever stored), its idempotency key (so a replayed POST is safe), how many attempts the call made,
the last error, and its replay bookkeeping.

Every backend (``MemoryDLQ``, ``SQLiteDLQ``, the Redis stream backend) keeps this contract:

- Every method is one atomic operation. ``add`` returns only after the entry is durable (for a
  durable backend: committed and flushed to disk), so a caller told "the call failed, it is in
  the DLQ" can rely on it surviving a crash.
- Times are epoch seconds passed in by the caller (``now=``, ``due_at=``) from its injected
  clock; a backend never reads the clock, so tests run in virtual time.
- An entry is either ``pending`` (waiting for a replay at ``due_at``) or ``failed`` (in the
  failed set, waiting for a person: never claimed by a worker). Delivered entries are removed.
- Workers ``claim`` due pending entries with a *lease*: a claimed entry is invisible to other
  workers until its lease ends (``lease_until``). A worker that finishes calls ``complete``
  (delivered: removed), ``reschedule`` (try again later) or ``fail`` (to the failed set), each
  only if it still holds the lease (``owner`` matches and the lease has not been taken over):
  they return ``False`` otherwise. A crashed worker's lease simply expires and another worker
  claims the entry.

``tether.dlq.open_dlq(location)`` picks a backend from a location: ``memory://``, a file path or
``sqlite:///path``, and ``redis://…`` through ``tether.dlq.redis.open_url(url) -> DLQBackend``.
"""

from __future__ import annotations

import builtins
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, runtime_checkable

import httpx2

__all__ = [
    "DLQBackend",
    "DLQCounts",
    "DeadLetter",
    "EntryStatus",
    "StoredRequest",
    "new_entry_id",
]

EntryStatus = Literal["pending", "failed"]
"""``pending``: waits for a replay at ``due_at``. ``failed``: in the failed set, for manual review."""


def new_entry_id() -> str:
    """A fresh dead-letter id (32 hex characters)."""
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class StoredRequest:
    """A request as the DLQ keeps it: credentials removed, body as bytes.

    ``url`` is absolute and has credential query parameters removed; ``headers`` keep their order
    and repeats and have credential headers removed.
    """

    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or ``None``."""
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None

    def to_request(self) -> httpx2.Request:
        """An ``httpx2.Request`` with this method, URL, headers and body (no tether context)."""
        return httpx2.Request(self.method, self.url, headers=list(self.headers), content=self.body)

    def headers_json(self) -> str:
        """The headers as a JSON list of ``[name, value]`` pairs (how backends store them)."""
        return json.dumps([list(pair) for pair in self.headers])

    @staticmethod
    def headers_from_json(text: str) -> tuple[tuple[str, str], ...]:
        """The inverse of ``headers_json``."""
        pairs: list[Any] = json.loads(text) if text else []
        return tuple((str(k), str(v)) for k, v in pairs)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead letter: a failed call kept for replay. Plain data; backends store every field.

    ``attempts`` is how many attempts the original call made; ``replays`` how many replays have
    been tried since (the replay worker moves the entry to the failed set after its limit).
    ``credential_ref`` names the credentials without holding them (``"ApiKey@https://api.x"``):
    the client's auth scheme re-signs the request on replay. ``lease_owner`` / ``lease_until``
    are set while a worker holds the entry.
    """

    id: str
    service: str
    endpoint: str | None
    request: StoredRequest
    idempotency_key: str | None
    credential_ref: str | None
    attempts: int
    error_code: str
    error_message: str
    created_at: float
    due_at: float
    updated_at: float = 0.0
    status: EntryStatus = "pending"
    replays: int = 0
    lease_owner: str | None = None
    lease_until: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.updated_at:
            object.__setattr__(self, "updated_at", self.created_at)

    def with_changes(self, **changes: Any) -> DeadLetter:
        """A copy with ``changes`` applied."""
        return replace(self, **changes)

    def summary(self) -> dict[str, Any]:
        """The entry as a JSON-ready dict without the body (for listings and events)."""
        return {
            "id": self.id,
            "service": self.service,
            "endpoint": self.endpoint,
            "method": self.request.method,
            "url": self.request.url,
            "status": self.status,
            "attempts": self.attempts,
            "replays": self.replays,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "idempotency_key": self.idempotency_key,
            "credential_ref": self.credential_ref,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "due_at": self.due_at,
        }


@dataclass(frozen=True, slots=True)
class DLQCounts:
    """How many entries a backend holds: pending (of which ``leased`` are held by a worker), failed."""

    pending: int
    failed: int
    leased: int = 0

    @property
    def total(self) -> int:
        return self.pending + self.failed


@runtime_checkable
class DLQBackend(Protocol):
    """Where dead letters live. See the module docstring for the contract every method keeps."""

    async def add(self, entry: DeadLetter) -> str:
        """Store ``entry`` durably and return its id; return only once it would survive a crash.

        Adding an id that is already stored changes nothing (so a retried ``add`` cannot make a
        duplicate) and returns the id.
        """
        ...

    async def claim(
        self,
        owner: str,
        *,
        now: float,
        lease: float,
        limit: int = 10,
        ids: Sequence[str] | None = None,
    ) -> builtins.list[DeadLetter]:
        """Lease up to ``limit`` pending entries that are due (``due_at <= now``) and not leased.

        An entry whose lease ended (``lease_until <= now``) counts as not leased. The claimed
        entries get ``lease_owner = owner`` and ``lease_until = now + lease`` atomically, so two
        workers never hold one entry at once. Oldest due first. ``ids`` restricts the claim to
        those entries (``tether dlq replay --id``).
        """
        ...

    async def complete(self, entry_id: str, owner: str) -> bool:
        """The entry was delivered: remove it. ``False`` when ``owner`` no longer holds its lease."""
        ...

    async def reschedule(
        self,
        entry_id: str,
        owner: str,
        *,
        due_at: float,
        replays: int,
        error_code: str,
        error_message: str,
        now: float,
    ) -> bool:
        """A replay failed: record ``replays`` and the error, make it due at ``due_at``, release it.

        ``False`` when ``owner`` no longer holds its lease (nothing changes).
        """
        ...

    async def fail(
        self,
        entry_id: str,
        owner: str | None,
        *,
        replays: int,
        error_code: str,
        error_message: str,
        now: float,
    ) -> bool:
        """Move the entry to the failed set (for manual review), releasing its lease.

        ``owner=None`` moves it whoever holds it (an operator's decision). ``False`` when the
        entry is missing or ``owner`` no longer holds its lease.
        """
        ...

    async def release(self, entry_id: str, owner: str) -> bool:
        """Give the lease back without recording anything (a cancelled replay)."""
        ...

    async def requeue(self, entry_id: str, *, due_at: float, now: float, reset_replays: bool = True) -> bool:
        """Make an entry (pending or failed) pending again, due at ``due_at``, unleased.

        Used by ``tether dlq replay --id``: a person decided to try again. ``False`` when missing.
        """
        ...

    async def get(self, entry_id: str) -> DeadLetter | None:
        """One entry by id, or ``None``."""
        ...

    async def list(
        self, *, status: EntryStatus | None = None, limit: int | None = None, offset: int = 0
    ) -> Sequence[DeadLetter]:
        """Entries (``status=None``: both kinds), oldest first."""
        ...

    async def purge(self, *, status: EntryStatus | None = None) -> int:
        """Remove every entry of ``status`` (``None``: all); returns how many were removed."""
        ...

    async def counts(self) -> DLQCounts:
        """How many entries are pending, leased, failed."""
        ...

    async def aclose(self) -> None:
        """Release connections and files."""
        ...
