"""``SQLiteDLQ``: dead letters in a SQLite file — durable on one machine, shared by its processes.

Durability: the database runs in WAL mode with ``synchronous=FULL``, so a committed transaction
is flushed to disk (the WAL is fsync'd) before ``COMMIT`` returns, and ``add`` returns only
after its ``COMMIT``. A process killed at any moment (even ``SIGKILL``) leaves every entry it was
told about; an entry being written when it died is either there whole or not at all.

Several processes may open the same file: each write is one ``BEGIN IMMEDIATE … COMMIT``
transaction (a claim selects and leases its rows in one transaction), so two workers never lease
one entry. The table is ``tether_dead_letters``, so the file may be shared with the SQLite state
store. The connection lives in one worker thread (``tether._sqlite.SQLiteDatabase``, shared with
the state store), so the event loop never waits on the disk.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

from tether._sqlite import SQLiteDatabase, check_schema, immediate, path_from_url
from tether.dlq._protocol import DeadLetter, DLQCounts, EntryStatus, StoredRequest

__all__ = ["SQLiteDLQ", "sqlite_path"]

T = TypeVar("T")

_TABLE: Final = "tether_dead_letters"
_COLUMNS: Final = (
    "id",
    "service",
    "endpoint",
    "method",
    "url",
    "headers",
    "body",
    "idempotency_key",
    "credential_ref",
    "attempts",
    "error_code",
    "error_message",
    "created_at",
    "updated_at",
    "due_at",
    "status",
    "replays",
    "lease_owner",
    "lease_until",
    "extra",
)
_SELECT: Final = f"SELECT {', '.join(_COLUMNS)} FROM {_TABLE}"
SCHEMA_VERSION: Final = 1
_DDL: Final = (
    f"""CREATE TABLE IF NOT EXISTS {_TABLE} (
        id TEXT PRIMARY KEY,
        service TEXT NOT NULL,
        endpoint TEXT,
        method TEXT NOT NULL,
        url TEXT NOT NULL,
        headers TEXT NOT NULL,
        body BLOB NOT NULL,
        idempotency_key TEXT,
        credential_ref TEXT,
        attempts INTEGER NOT NULL,
        error_code TEXT NOT NULL,
        error_message TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        due_at REAL NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'failed')),
        replays INTEGER NOT NULL DEFAULT 0,
        lease_owner TEXT,
        lease_until REAL,
        extra TEXT NOT NULL DEFAULT '{{}}'
    )""",
    f"CREATE INDEX IF NOT EXISTS {_TABLE}_due ON {_TABLE} (status, due_at)",
    f"CREATE INDEX IF NOT EXISTS {_TABLE}_created ON {_TABLE} (created_at)",
)
#: Seconds a process waits for another's write lock (a DLQ write must not fail under load).
_BUSY_TIMEOUT: Final = 30.0


def sqlite_path(location: str | Path) -> Path:
    """The file of ``location``: a path, or a ``sqlite:///relative`` / ``sqlite:////abs`` URL."""
    text = str(location)
    if text.startswith("sqlite:"):
        text = path_from_url(text)
    if not text or text == ":memory:":
        raise ValueError(f"SQLiteDLQ needs a file path (the DLQ must survive the process), got {text!r}")
    return Path(text)


def _row_to_entry(row: Sequence[Any]) -> DeadLetter:
    values = dict(zip(_COLUMNS, row, strict=True))
    return DeadLetter(
        id=values["id"],
        service=values["service"],
        endpoint=values["endpoint"],
        request=StoredRequest(
            method=values["method"],
            url=values["url"],
            headers=StoredRequest.headers_from_json(values["headers"]),
            body=bytes(values["body"]),
        ),
        idempotency_key=values["idempotency_key"],
        credential_ref=values["credential_ref"],
        attempts=int(values["attempts"]),
        error_code=values["error_code"],
        error_message=values["error_message"],
        created_at=float(values["created_at"]),
        updated_at=float(values["updated_at"]),
        due_at=float(values["due_at"]),
        status=values["status"],
        replays=int(values["replays"]),
        lease_owner=values["lease_owner"],
        lease_until=None if values["lease_until"] is None else float(values["lease_until"]),
        extra=json.loads(values["extra"] or "{}"),
    )


def _entry_row(entry: DeadLetter) -> tuple[Any, ...]:
    req = entry.request
    return (
        entry.id,
        entry.service,
        entry.endpoint,
        req.method,
        req.url,
        req.headers_json(),
        req.body,
        entry.idempotency_key,
        entry.credential_ref,
        entry.attempts,
        entry.error_code,
        entry.error_message,
        entry.created_at,
        entry.updated_at,
        entry.due_at,
        entry.status,
        entry.replays,
        entry.lease_owner,
        entry.lease_until,
        json.dumps(dict(entry.extra), sort_keys=True),
    )


class SQLiteDLQ:
    """A durable ``DLQBackend`` in one SQLite file (see the module docstring)."""

    def __init__(self, path: str | Path, *, busy_timeout: float = _BUSY_TIMEOUT) -> None:
        self.path = sqlite_path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = SQLiteDatabase(self.path, init=self._init, what="SQLite DLQ", busy_timeout=busy_timeout)

    def __repr__(self) -> str:
        return f"SQLiteDLQ({str(self.path)!r})"

    # --- plumbing -----------------------------------------------------------------------------

    def _init(self, conn: sqlite3.Connection) -> None:
        # The shared helper opens in WAL with synchronous=NORMAL (fine for limiter state); a dead
        # letter must be on disk before the caller hears "failed": every commit fsyncs the WAL.
        conn.execute("PRAGMA synchronous = FULL")
        check_schema(conn, "dlq_schema_version", SCHEMA_VERSION, _DDL, what="SQLite DLQ")

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._db.run(fn)

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one ``BEGIN IMMEDIATE … COMMIT`` transaction (rolled back on error)."""
        return await self._call(lambda conn: immediate(conn, fn))

    # --- the protocol -------------------------------------------------------------------------

    async def add(self, entry: DeadLetter) -> str:
        row = _entry_row(entry)
        placeholders = ", ".join("?" for _ in _COLUMNS)
        sql = f"INSERT OR IGNORE INTO {_TABLE} ({', '.join(_COLUMNS)}) VALUES ({placeholders})"

        await self._write(lambda conn: conn.execute(sql, row))
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
        only = ""
        wanted: tuple[str, ...] = ()
        if ids is not None:
            wanted = tuple(ids)
            if not wanted:
                return []
            only = f"AND id IN ({', '.join('?' for _ in wanted)}) "
        select = (
            f"SELECT id FROM {_TABLE} WHERE status = 'pending' AND due_at <= ? "
            f"AND (lease_until IS NULL OR lease_until <= ?) {only}"
            "ORDER BY due_at, created_at, id LIMIT ?"
        )

        def tx(conn: sqlite3.Connection) -> builtins.list[DeadLetter]:
            ids = [r[0] for r in conn.execute(select, (now, now, *wanted, max(0, limit)))]
            if not ids:
                return []
            marks = ", ".join("?" for _ in ids)
            conn.execute(
                f"UPDATE {_TABLE} SET lease_owner = ?, lease_until = ? WHERE id IN ({marks})",
                (owner, now + lease, *ids),
            )
            rows = conn.execute(
                f"{_SELECT} WHERE id IN ({marks}) ORDER BY due_at, created_at, id", ids
            ).fetchall()
            return [_row_to_entry(r) for r in rows]

        return await self._write(tx)

    async def complete(self, entry_id: str, owner: str) -> bool:
        def tx(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(f"DELETE FROM {_TABLE} WHERE id = ? AND lease_owner = ?", (entry_id, owner))
            return cur.rowcount > 0

        return await self._write(tx)

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
        def tx(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                f"UPDATE {_TABLE} SET due_at = ?, replays = ?, error_code = ?, error_message = ?, "
                "updated_at = ?, lease_owner = NULL, lease_until = NULL "
                "WHERE id = ? AND lease_owner = ? AND status = 'pending'",
                (due_at, replays, error_code, error_message, now, entry_id, owner),
            )
            return cur.rowcount > 0

        return await self._write(tx)

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
        sql = (
            f"UPDATE {_TABLE} SET status = 'failed', replays = ?, error_code = ?, error_message = ?, "
            "updated_at = ?, lease_owner = NULL, lease_until = NULL WHERE id = ?"
        )
        params: tuple[Any, ...] = (replays, error_code, error_message, now, entry_id)
        if owner is not None:
            sql += " AND lease_owner = ?"
            params = (*params, owner)

        def tx(conn: sqlite3.Connection) -> bool:
            return conn.execute(sql, params).rowcount > 0

        return await self._write(tx)

    async def release(self, entry_id: str, owner: str) -> bool:
        def tx(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                f"UPDATE {_TABLE} SET lease_owner = NULL, lease_until = NULL "
                "WHERE id = ? AND lease_owner = ?",
                (entry_id, owner),
            )
            return cur.rowcount > 0

        return await self._write(tx)

    async def requeue(self, entry_id: str, *, due_at: float, now: float, reset_replays: bool = True) -> bool:
        replays_sql = "replays = 0, " if reset_replays else ""

        def tx(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                f"UPDATE {_TABLE} SET status = 'pending', {replays_sql}due_at = ?, updated_at = ?, "
                "lease_owner = NULL, lease_until = NULL WHERE id = ?",
                (due_at, now, entry_id),
            )
            return cur.rowcount > 0

        return await self._write(tx)

    async def get(self, entry_id: str) -> DeadLetter | None:
        def op(conn: sqlite3.Connection) -> DeadLetter | None:
            row = conn.execute(f"{_SELECT} WHERE id = ?", (entry_id,)).fetchone()
            return None if row is None else _row_to_entry(row)

        return await self._call(op)

    async def list(
        self, *, status: EntryStatus | None = None, limit: int | None = None, offset: int = 0
    ) -> Sequence[DeadLetter]:
        where = "" if status is None else " WHERE status = ?"
        params: tuple[Any, ...] = () if status is None else (status,)
        sql = f"{_SELECT}{where} ORDER BY created_at, id LIMIT ? OFFSET ?"
        params = (*params, -1 if limit is None else max(0, limit), max(0, offset))

        def op(conn: sqlite3.Connection) -> builtins.list[DeadLetter]:
            return [_row_to_entry(r) for r in conn.execute(sql, params).fetchall()]

        return await self._call(op)

    async def purge(self, *, status: EntryStatus | None = None) -> int:
        where = "" if status is None else " WHERE status = ?"
        params: tuple[Any, ...] = () if status is None else (status,)

        def tx(conn: sqlite3.Connection) -> int:
            return conn.execute(f"DELETE FROM {_TABLE}{where}", params).rowcount

        return await self._write(tx)

    async def counts(self) -> DLQCounts:
        def op(conn: sqlite3.Connection) -> DLQCounts:
            row = conn.execute(
                f"SELECT COALESCE(SUM(status = 'pending'), 0), COALESCE(SUM(status = 'failed'), 0), "
                f"COALESCE(SUM(status = 'pending' AND lease_owner IS NOT NULL), 0) FROM {_TABLE}"
            ).fetchone()
            return DLQCounts(pending=int(row[0]), failed=int(row[1]), leased=int(row[2]))

        return await self._call(op)

    async def aclose(self) -> None:
        await self._db.aclose()
