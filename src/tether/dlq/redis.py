"""``RedisDLQ``: dead letters in Redis — shared by every worker of every host.

Each ``DLQBackend`` method is one Lua script (``tether/state/lua/dlq.lua``), so claims, leases
and moves are atomic across workers, and times are the callers' (``now=``), as the protocol
requires (leases and due times follow the workers' clocks, and tests run in virtual time). The
queue lives under one Cluster hash tag, ``<namespace>{dlq:<name>}:``: one hash per entry, a
delayed sorted set (pending entries by ``due_at``), a ready stream with the consumer group
``replayers``, a lease sorted set (by ``lease_until``) and the listings (pending and failed
entries by ``created_at``). ``claim`` promotes the entries due by the caller's ``now`` into the
stream (``XADD``), takes over messages whose lease ended on the callers' time line (``XCLAIM``
with min-idle-time 0: a dead worker's pending entries, never the server's idle clock), and reads
new ones as consumer ``owner`` (``XREADGROUP``); ``complete``, ``reschedule``, ``fail`` … ``XACK``
and ``XDEL`` the message. At-least-once: an entry whose worker died is replayed by another.

Durability: ``add`` returns when Redis has applied the write. For that to mean "on disk", run
the Redis that holds dead letters with ``appendonly yes`` and ``appendfsync always`` (with
``everysec`` a crash of the Redis host can lose the last second). See
``docs/guides/redis-operations.md``.

When Redis cannot be reached, ``add`` never loses an entry: with a ``spill`` backend (e.g. a
``SQLiteDLQ`` file on local disk) the entry is written there and moved to Redis by the next
operation that reaches it (``flush_spill``); without one, ``add`` raises ``StateStoreError`` so
the caller knows the work was not kept. Every other method raises ``StateStoreError`` while
Redis is away.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tether.dlq._protocol import DeadLetter, DLQBackend, DLQCounts, EntryStatus, StoredRequest
from tether.errors import SpecError, StateStoreError
from tether.state.redis import DLQ, RedisConnection, shown_url

__all__ = ["RedisDLQ", "open_url"]

#: Options of a ``redis://`` DLQ URL that tether reads (the rest go to redis-py).
URL_OPTIONS: Final = ("namespace", "name", "timeout", "spill", "cluster")


def _num(value: float) -> str:
    return repr(float(value))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _doc(entry: DeadLetter) -> str:
    """The part of an entry that never changes, as JSON (the body base64-encoded)."""
    req = entry.request
    return json.dumps(
        {
            "id": entry.id,
            "service": entry.service,
            "endpoint": entry.endpoint,
            "method": req.method,
            "url": req.url,
            "headers": [list(pair) for pair in req.headers],
            "body": base64.b64encode(req.body).decode(),
            "idempotency_key": entry.idempotency_key,
            "credential_ref": entry.credential_ref,
            "attempts": entry.attempts,
            "extra": dict(entry.extra),
        },
        separators=(",", ":"),
        sort_keys=True,
    )


def _entry(flat: Sequence[bytes]) -> DeadLetter:
    """A ``DeadLetter`` from an entry hash (``HGETALL``'s flat list)."""
    fields = {_text(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)}
    doc: Mapping[str, Any] = json.loads(fields["doc"])
    status = _text(fields["status"])
    lease_owner = fields.get("lease_owner")
    lease_until = fields.get("lease_until")
    return DeadLetter(
        id=doc["id"],
        service=doc["service"],
        endpoint=doc["endpoint"],
        request=StoredRequest(
            method=doc["method"],
            url=doc["url"],
            headers=tuple((str(k), str(v)) for k, v in doc["headers"]),
            body=base64.b64decode(doc["body"]),
        ),
        idempotency_key=doc["idempotency_key"],
        credential_ref=doc["credential_ref"],
        attempts=int(doc["attempts"]),
        error_code=_text(fields["error_code"]),
        error_message=_text(fields["error_message"]),
        created_at=float(fields["created_at"]),
        due_at=float(fields["due_at"]),
        updated_at=float(fields["updated_at"]),
        status="failed" if status == "failed" else "pending",
        replays=int(fields["replays"]),
        lease_owner=None if lease_owner is None else _text(lease_owner),
        lease_until=None if lease_until is None else float(lease_until),
        extra=doc.get("extra") or {},
    )


class RedisDLQ:
    """A ``DLQBackend`` on Redis (see the module docstring).

    ``url``: ``redis://host:6379/0`` (``rediss://`` for TLS). ``name`` names the queue (several
    queues may share a Redis); ``namespace`` prefixes its keys (default ``tether:``). ``timeout``
    bounds each call (seconds; an fsync-always Redis needs more than the state store's 0.25 s).
    ``spill``: a local backend that keeps entries while Redis is away (see ``flush_spill``).
    """

    DEFAULT_NAME: Final = "default"
    DEFAULT_NAMESPACE: Final = "tether:"
    DEFAULT_TIMEOUT: Final = 2.0

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        name: str = DEFAULT_NAME,
        namespace: str = DEFAULT_NAMESPACE,
        timeout: float = DEFAULT_TIMEOUT,
        spill: DLQBackend | None = None,
        cluster: bool = False,
    ) -> None:
        if not name or any(c in name for c in "{}"):
            raise ValueError(f"a RedisDLQ name must be non-empty and without braces, got {name!r}")
        self.name = name
        self.prefix = f"{namespace}{{dlq:{name}}}:"
        self.spill = spill
        self._redis = RedisConnection(url, timeout=timeout, cluster=cluster, what="Redis DLQ")
        #: Entries this process put in ``spill`` that are not in Redis yet (None: not looked yet).
        self._spilled: int | None = None if spill is not None else 0
        #: Entries moved from ``spill`` to Redis so far.
        self.flushed = 0

    def __repr__(self) -> str:
        return f"RedisDLQ({self._redis.shown!r}, name={self.name!r})"

    async def _run(self, args: Sequence[str | bytes | int]) -> Any:
        await self._maybe_flush()  # spilled entries first, so claims and listings see them
        return await self._redis.eval(DLQ, [self.prefix], args)

    async def _maybe_flush(self) -> None:
        """Redis answered: move spilled entries there now (a failure leaves them for next time)."""
        if self._spilled == 0:
            return
        with contextlib.suppress(StateStoreError):
            await self.flush_spill()

    # --- writing ---------------------------------------------------------------------------------

    def _add_args(self, entry: DeadLetter) -> list[str | bytes | int]:
        return [
            "add",
            entry.id,
            _doc(entry),
            _num(entry.created_at),
            _num(entry.due_at),
            _num(entry.updated_at),
            entry.status,
            str(entry.replays),
            entry.error_code,
            entry.error_message,
            entry.lease_owner or "",
            "" if entry.lease_until is None else _num(entry.lease_until),
        ]

    async def add(self, entry: DeadLetter) -> str:
        try:
            await self._redis.eval(DLQ, [self.prefix], self._add_args(entry))
        except StateStoreError:
            if self.spill is None:
                raise  # loud: the caller must know this failed call was not kept
            await self.spill.add(entry)
            self._spilled = (self._spilled or 0) + 1
            return entry.id
        await self._maybe_flush()
        return entry.id

    async def flush_spill(self) -> int:
        """Move every entry of ``spill`` into Redis (each added, then removed from the spill).

        An entry already in Redis is not added twice (``add`` is idempotent by id), so a flush
        interrupted between the two steps repeats safely. Returns how many entries moved.
        """
        spill = self.spill
        if spill is None:
            return 0
        moved = 0
        owner = f"flush-{uuid.uuid4().hex}"
        for entry in await spill.list():
            await self._redis.eval(DLQ, [self.prefix], self._add_args(entry))
            if entry.status == "failed":
                await spill.requeue(entry.id, due_at=entry.due_at, now=entry.updated_at, reset_replays=False)
            # Lease it in the spill (at the end of time: whatever its due time) and remove it.
            for held in await spill.claim(owner, now=math.inf, lease=0.0, ids=[entry.id]):
                if await spill.complete(held.id, owner):
                    moved += 1
        self._spilled = 0
        self.flushed += moved
        return moved

    async def claim(
        self,
        owner: str,
        *,
        now: float,
        lease: float,
        limit: int = 10,
        ids: Sequence[str] | None = None,
    ) -> builtins.list[DeadLetter]:
        if ids is not None and not ids:
            return []
        args: list[str | bytes | int] = ["claim", owner, _num(now), _num(now + lease), max(0, int(limit))]
        args += list(ids or ())
        rows = await self._run(args)
        return [_entry(row) for row in rows]

    async def complete(self, entry_id: str, owner: str) -> bool:
        return bool(await self._run(["complete", entry_id, owner]))

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
        args = [
            "reschedule",
            entry_id,
            owner,
            _num(due_at),
            str(replays),
            error_code,
            error_message,
            _num(now),
        ]
        return bool(await self._run(args))

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
        args = ["fail", entry_id, owner or "", str(replays), error_code, error_message, _num(now)]
        return bool(await self._run(args))

    async def release(self, entry_id: str, owner: str) -> bool:
        return bool(await self._run(["release", entry_id, owner]))

    async def requeue(self, entry_id: str, *, due_at: float, now: float, reset_replays: bool = True) -> bool:
        args = ["requeue", entry_id, _num(due_at), _num(now), "1" if reset_replays else "0"]
        return bool(await self._run(args))

    # --- reading ---------------------------------------------------------------------------------

    async def get(self, entry_id: str) -> DeadLetter | None:
        flat = await self._run(["get", entry_id])
        return _entry(flat) if flat else None

    async def list(
        self, *, status: EntryStatus | None = None, limit: int | None = None, offset: int = 0
    ) -> Sequence[DeadLetter]:
        args = ["list", status or "", -1 if limit is None else max(0, limit), max(0, offset)]
        return [_entry(row) for row in await self._run(args)]

    async def purge(self, *, status: EntryStatus | None = None) -> int:
        return int(await self._run(["purge", status or ""]))

    async def counts(self) -> DLQCounts:
        pending, failed, leased = await self._run(["counts"])
        return DLQCounts(pending=int(pending), failed=int(failed), leased=int(leased))

    async def aclose(self) -> None:
        try:
            await self._redis.aclose()
        finally:
            if self.spill is not None:
                await self.spill.aclose()


def open_url(url: str) -> RedisDLQ:
    """The backend for ``dlq="redis://host:port/db?…"`` (``tether.dlq.open_dlq``).

    Query options read here (the rest go to redis-py): ``name`` (the queue, default
    ``default``), ``namespace`` (default ``tether:``), ``timeout`` (seconds, default 2),
    ``spill`` (a SQLite file that keeps entries while Redis is away), ``cluster`` (``1``).
    """
    from tether.dlq.sqlite import SQLiteDLQ

    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in query if k in URL_OPTIONS}
    rest = [(k, v) for k, v in query if k not in URL_OPTIONS]
    plain = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(rest), parts.fragment))
    try:
        spill = SQLiteDLQ(ours["spill"]) if ours.get("spill") else None
        return RedisDLQ(
            plain,
            name=ours.get("name", RedisDLQ.DEFAULT_NAME),
            namespace=ours.get("namespace", RedisDLQ.DEFAULT_NAMESPACE),
            timeout=float(ours.get("timeout", RedisDLQ.DEFAULT_TIMEOUT)),
            spill=spill,
            cluster=ours.get("cluster", "0").lower() in ("1", "true", "yes"),
        )
    except ValueError as exc:
        raise SpecError(f"DLQ URL {shown_url(url)!r}: {exc}") from exc
