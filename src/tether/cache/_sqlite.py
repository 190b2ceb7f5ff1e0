"""The SQLite cache backend: entries in one file, shared by processes, kept across restarts.

``Cache(backend="sqlite:///path/cache.db")``, or ``Cache(backend="state")`` with
``state="sqlite:///…"`` to keep the cache in the state store's file. Tables (``meta``
``cache_schema_version`` = 1)::

    cache_entries (key TEXT PRIMARY KEY, url, method, status, headers, body, vary,
                   stored_at, expires, keep_until, size, seq)
    cache_totals  (id = 1, entries, bytes)      kept exact by triggers on cache_entries

``seq`` orders entries by last use (LRU). A read moves an entry to the front only when it is not
already among the most recent eighth of the bound, so hot entries are read without a write.
Each ``put`` is one ``BEGIN IMMEDIATE`` transaction: drop a batch of entries past
``keep_until``, replace the entry, then evict by ``seq`` until both bounds hold. The same
worker-thread design as the SQLite state store (``tether._sqlite``).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Final

from tether._sqlite import DEFAULT_BUSY_TIMEOUT, SQLiteDatabase, check_schema, immediate, path_from_url
from tether._units import Size
from tether.cache._base import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_ENTRIES,
    CacheEntry,
    CacheStats,
    check_bounds,
    pairs_from_json,
)

__all__ = ["SQLiteCache"]

SCHEMA_VERSION: Final = 1

_DDL: Final = (
    "CREATE TABLE IF NOT EXISTS cache_entries ("
    " key TEXT PRIMARY KEY, url TEXT NOT NULL, method TEXT NOT NULL, status INTEGER NOT NULL,"
    " headers TEXT NOT NULL, body BLOB NOT NULL, vary TEXT NOT NULL, stored_at REAL NOT NULL,"
    " expires REAL NOT NULL, keep_until REAL NOT NULL, size INTEGER NOT NULL, seq INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS cache_entries_seq ON cache_entries (seq)",
    "CREATE INDEX IF NOT EXISTS cache_entries_keep_until ON cache_entries (keep_until)",
    "CREATE INDEX IF NOT EXISTS cache_entries_url ON cache_entries (url)",
    "CREATE TABLE IF NOT EXISTS cache_totals ("
    " id INTEGER PRIMARY KEY CHECK (id = 1), entries INTEGER NOT NULL, bytes INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO cache_totals (id, entries, bytes) VALUES (1, 0, 0)",
    "CREATE TRIGGER IF NOT EXISTS cache_entries_added AFTER INSERT ON cache_entries BEGIN"
    " UPDATE cache_totals SET entries = entries + 1, bytes = bytes + NEW.size WHERE id = 1; END",
    "CREATE TRIGGER IF NOT EXISTS cache_entries_removed AFTER DELETE ON cache_entries BEGIN"
    " UPDATE cache_totals SET entries = entries - 1, bytes = bytes - OLD.size WHERE id = 1; END",
    "INSERT OR IGNORE INTO meta (key, value) VALUES ('cache_identity_key', lower(hex(randomblob(32))))",
)

#: Entries past keep_until that one put deletes at most.
SWEEP_LIMIT: Final = 100

_COLUMNS: Final = "key, url, method, status, headers, body, vary, stored_at, expires, keep_until"


def _row_to_entry(row: tuple[object, ...]) -> CacheEntry:
    key, url, method, status, headers, body, vary, stored_at, expires, keep_until = row
    return CacheEntry(
        key=str(key),
        url=str(url),
        method=str(method),
        status=int(str(status)),
        headers=pairs_from_json(str(headers)),
        body=bytes(body) if isinstance(body, bytes | bytearray | memoryview) else b"",
        stored_at=float(str(stored_at)),
        expires=float(str(expires)),
        keep_until=float(str(keep_until)),
        vary=pairs_from_json(str(vary)),
    )


def _totals(conn: sqlite3.Connection) -> tuple[int, int]:
    row = conn.execute("SELECT entries, bytes FROM cache_totals WHERE id = 1").fetchone()
    return (0, 0) if row is None else (int(row[0]), int(row[1]))


class SQLiteCache:
    """Cache entries in a SQLite file (WAL), LRU-bounded by ``max_entries`` and ``max_bytes``."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: Size = DEFAULT_MAX_BYTES,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    ) -> None:
        self.max_entries, self.max_bytes = check_bounds(max_entries, max_bytes)
        self._db = SQLiteDatabase(path, init=self._init, what="SQLite cache", busy_timeout=busy_timeout)
        self._identity_key: bytes | None = None
        self._stats = (0, 0)
        # Reads skip the LRU write when the entry is already this close to the most recent one.
        self._touch_gap = max(1, self.max_entries // 8)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: Size = DEFAULT_MAX_BYTES,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    ) -> SQLiteCache:
        """The backend for ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``."""
        return cls(
            path_from_url(url), max_entries=max_entries, max_bytes=max_bytes, busy_timeout=busy_timeout
        )

    @property
    def path(self) -> str:
        return self._db.path

    def __repr__(self) -> str:
        entries, size = self._stats
        return f"SQLiteCache({self._db.path!r}, entries={entries}, bytes={size})"

    def _init(self, conn: sqlite3.Connection) -> None:
        check_schema(conn, "cache_schema_version", SCHEMA_VERSION, _DDL, what="SQLite cache")
        row = conn.execute("SELECT value FROM meta WHERE key = 'cache_identity_key'").fetchone()
        self._identity_key = bytes.fromhex(str(row[0])) if row is not None else os.urandom(32)
        self._stats = _totals(conn)

    async def get(self, key: str, *, now: float) -> CacheEntry | None:
        gap = self._touch_gap

        def op(conn: sqlite3.Connection) -> CacheEntry | None:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM cache_entries WHERE key = ? AND keep_until > ?", (key, now)
            ).fetchone()
            if row is not None:
                conn.execute(
                    "UPDATE cache_entries SET seq = (SELECT MAX(seq) FROM cache_entries) + 1 "
                    "WHERE key = ? AND seq <= (SELECT MAX(seq) FROM cache_entries) - ?",
                    (key, gap),
                )
            self._stats = _totals(conn)
            return None if row is None else _row_to_entry(row)

        return await self._db.run(op)

    async def put(self, entry: CacheEntry, *, now: float) -> bool:
        size = entry.size

        def op(conn: sqlite3.Connection) -> bool:
            conn.execute(
                "DELETE FROM cache_entries WHERE key IN "
                "(SELECT key FROM cache_entries WHERE keep_until <= ? LIMIT ?)",
                (now, SWEEP_LIMIT),
            )
            conn.execute("DELETE FROM cache_entries WHERE key = ?", (entry.key,))
            if size > self.max_bytes:
                self._stats = _totals(conn)
                return False
            conn.execute(
                f"INSERT INTO cache_entries ({_COLUMNS}, size, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                "(SELECT COALESCE(MAX(seq), 0) + 1 FROM cache_entries))",
                (
                    entry.key,
                    entry.url,
                    entry.method,
                    entry.status,
                    entry.headers_json(),
                    entry.body,
                    entry.vary_json(),
                    entry.stored_at,
                    entry.expires,
                    entry.keep_until,
                    size,
                ),
            )
            entries, total = _totals(conn)
            while entries > self.max_entries or total > self.max_bytes:
                conn.execute(
                    "DELETE FROM cache_entries WHERE key = "
                    "(SELECT key FROM cache_entries ORDER BY seq LIMIT 1)"
                )
                entries, total = _totals(conn)
            self._stats = (entries, total)
            return True

        return await self._db.run(lambda conn: immediate(conn, op))

    async def delete(self, key: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            gone = conn.execute("DELETE FROM cache_entries WHERE key = ?", (key,)).rowcount
            self._stats = _totals(conn)
            return gone > 0

        return await self._db.run(op)

    async def invalidate(self, url_prefix: str, *, exact: bool = False) -> int:
        def op(conn: sqlite3.Connection) -> int:
            if exact:
                gone = conn.execute("DELETE FROM cache_entries WHERE url = ?", (url_prefix,)).rowcount
            else:
                gone = conn.execute(
                    "DELETE FROM cache_entries WHERE substr(url, 1, ?) = ?", (len(url_prefix), url_prefix)
                ).rowcount
            self._stats = _totals(conn)
            return int(gone)

        return await self._db.run(op)

    async def clear(self) -> int:
        def op(conn: sqlite3.Connection) -> int:
            gone = conn.execute("DELETE FROM cache_entries").rowcount
            self._stats = _totals(conn)
            return int(gone)

        return await self._db.run(op)

    async def identity_key(self) -> bytes:
        if self._identity_key is None:
            await self._db.run(lambda conn: None)  # connecting runs _init, which reads it
        assert self._identity_key is not None
        return self._identity_key

    def stats(self) -> CacheStats:
        entries, size = self._stats
        return CacheStats(entries, size, self.max_entries, self.max_bytes)

    async def aclose(self) -> None:
        """Close the connection and stop the worker thread; the file keeps the entries."""
        await self._db.aclose()
