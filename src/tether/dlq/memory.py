"""``MemoryDLQ``: dead letters in a dict, for tests and single-process use (not durable)."""

from __future__ import annotations

import builtins
from collections.abc import Sequence

from tether.dlq._protocol import DeadLetter, DLQCounts, EntryStatus

__all__ = ["MemoryDLQ"]


class MemoryDLQ:
    """A ``DLQBackend`` in memory. Every method runs without an ``await``, so each is atomic."""

    def __init__(self) -> None:
        self._entries: dict[str, DeadLetter] = {}

    def __repr__(self) -> str:
        return f"MemoryDLQ(entries={len(self._entries)})"

    def _held(self, entry_id: str, owner: str | None) -> DeadLetter | None:
        entry = self._entries.get(entry_id)
        if entry is None:
            return None
        if owner is not None and entry.lease_owner != owner:
            return None
        return entry

    async def add(self, entry: DeadLetter) -> str:
        self._entries.setdefault(entry.id, entry)
        return entry.id

    async def claim(
        self,
        owner: str,
        *,
        now: float,
        lease: float,
        limit: int = 10,
        ids: Sequence[str] | None = None,
    ) -> builtins.list[DeadLetter]:
        wanted = None if ids is None else frozenset(ids)
        due = sorted(
            (
                e
                for e in self._entries.values()
                if e.status == "pending"
                and (wanted is None or e.id in wanted)
                and e.due_at <= now
                and (e.lease_until is None or e.lease_until <= now)
            ),
            key=lambda e: (e.due_at, e.created_at, e.id),
        )[: max(0, limit)]
        claimed = []
        for entry in due:
            held = entry.with_changes(lease_owner=owner, lease_until=now + lease)
            self._entries[entry.id] = held
            claimed.append(held)
        return claimed

    async def complete(self, entry_id: str, owner: str) -> bool:
        if self._held(entry_id, owner) is None:
            return False
        del self._entries[entry_id]
        return True

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
        entry = self._held(entry_id, owner)
        if entry is None:
            return False
        self._entries[entry_id] = entry.with_changes(
            due_at=due_at,
            replays=replays,
            error_code=error_code,
            error_message=error_message,
            updated_at=now,
            lease_owner=None,
            lease_until=None,
        )
        return True

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
        entry = self._held(entry_id, owner)
        if entry is None:
            return False
        self._entries[entry_id] = entry.with_changes(
            status="failed",
            replays=replays,
            error_code=error_code,
            error_message=error_message,
            updated_at=now,
            lease_owner=None,
            lease_until=None,
        )
        return True

    async def release(self, entry_id: str, owner: str) -> bool:
        entry = self._held(entry_id, owner)
        if entry is None:
            return False
        self._entries[entry_id] = entry.with_changes(lease_owner=None, lease_until=None)
        return True

    async def requeue(self, entry_id: str, *, due_at: float, now: float, reset_replays: bool = True) -> bool:
        entry = self._entries.get(entry_id)
        if entry is None:
            return False
        self._entries[entry_id] = entry.with_changes(
            status="pending",
            due_at=due_at,
            updated_at=now,
            replays=0 if reset_replays else entry.replays,
            lease_owner=None,
            lease_until=None,
        )
        return True

    async def get(self, entry_id: str) -> DeadLetter | None:
        return self._entries.get(entry_id)

    async def list(
        self, *, status: EntryStatus | None = None, limit: int | None = None, offset: int = 0
    ) -> Sequence[DeadLetter]:
        rows = sorted(
            (e for e in self._entries.values() if status is None or e.status == status),
            key=lambda e: (e.created_at, e.id),
        )
        end = None if limit is None else offset + limit
        return rows[offset:end]

    async def purge(self, *, status: EntryStatus | None = None) -> int:
        doomed = [k for k, e in self._entries.items() if status is None or e.status == status]
        for key in doomed:
            del self._entries[key]
        return len(doomed)

    async def counts(self) -> DLQCounts:
        pending = failed = leased = 0
        for entry in self._entries.values():
            if entry.status == "failed":
                failed += 1
            else:
                pending += 1
                leased += entry.lease_owner is not None
        return DLQCounts(pending=pending, failed=failed, leased=leased)

    async def aclose(self) -> None:
        return None
