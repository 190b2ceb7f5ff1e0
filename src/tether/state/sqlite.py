"""The SQLite state store: shared state for several processes on one machine.

``state="sqlite:///path/to/tether.db"``. One file holds counters, values, locks, limiter records
and circuit records. Every atomic operation is one ``BEGIN IMMEDIATE`` transaction that loads
the record, calls the same pure function as the memory store (``tether.state._algorithms``) and
writes the result back, so processes sharing the file share one limiter and one circuit. The
connection lives in one worker thread per store (see ``tether._sqlite`` for why), so the event
loop never waits on the disk or on another process.

Schema (``meta.schema_version`` = 1)::

    kv      (key TEXT PRIMARY KEY, value BLOB, number REAL, expires REAL)   values and counters
    locks   (key TEXT PRIMARY KEY, owner TEXT, expires REAL)
    rate    (key TEXT PRIMARY KEY, state BLOB, idle_at REAL)                RateState JSON
    breaker (key TEXT PRIMARY KEY, state BLOB)                              BreakerState JSON

Expired rows are swept lazily: every ``SWEEP_EVERY`` writes, in the writing transaction, at most
``SWEEP_LIMIT`` expired values, counters and locks are deleted, and limiter records that have
gone idle (every window refilled, no pause, no waiting caller: indistinguishable from a new
limiter). Circuit records are kept: a circuit's generation must survive its quiet periods.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final, Literal, TypeVar

from tether._sqlite import DEFAULT_BUSY_TIMEOUT, SQLiteDatabase, check_schema, immediate, path_from_url
from tether.errors import StateStoreError
from tether.state import _algorithms as alg
from tether.state._protocol import (
    BreakerConfig,
    BreakerOutcome,
    BreakerPermit,
    BreakerSnapshot,
    BreakerUpdate,
    RateGrant,
    RateSnapshot,
    RateWindow,
)

__all__ = ["SQLiteStore"]

R = TypeVar("R")

SCHEMA_VERSION: Final = 1

_DDL: Final = (
    "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB, number REAL, expires REAL)",
    "CREATE INDEX IF NOT EXISTS kv_expires ON kv (expires) WHERE expires IS NOT NULL",
    "CREATE TABLE IF NOT EXISTS locks (key TEXT PRIMARY KEY, owner TEXT NOT NULL, expires REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS locks_expires ON locks (expires)",
    "CREATE TABLE IF NOT EXISTS rate (key TEXT PRIMARY KEY, state BLOB NOT NULL, idle_at REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS rate_idle_at ON rate (idle_at)",
    "CREATE TABLE IF NOT EXISTS breaker (key TEXT PRIMARY KEY, state BLOB NOT NULL)",
)

#: Writes between two lazy sweeps of expired rows.
SWEEP_EVERY: Final = 256
#: Rows of each kind one sweep deletes at most (a sweep never makes one operation slow).
SWEEP_LIMIT: Final = 500


def _init(conn: sqlite3.Connection) -> None:
    check_schema(conn, "schema_version", SCHEMA_VERSION, _DDL, what="SQLite state store")


def _idle_at(state: alg.RateState) -> float:
    """When a limiter record becomes equivalent to no record at all (every tat, pause and
    reservation in the past): after that a sweep may delete it."""
    return max([state.paused_until, *state.tats.values(), *state.pending], default=0.0)


def _load_rate(conn: sqlite3.Connection, key: str) -> alg.RateState | None:
    row = conn.execute("SELECT state FROM rate WHERE key = ?", (key,)).fetchone()
    return None if row is None else _decode(alg.RateState.from_json, row[0], "rate", key)


def _save_rate(conn: sqlite3.Connection, key: str, state: alg.RateState) -> None:
    conn.execute(
        "INSERT INTO rate (key, state, idle_at) VALUES (?, ?, ?) "
        "ON CONFLICT(key) DO UPDATE SET state = excluded.state, idle_at = excluded.idle_at",
        (key, state.to_json(), _idle_at(state)),
    )


def _load_breaker(conn: sqlite3.Connection, key: str) -> alg.BreakerState | None:
    row = conn.execute("SELECT state FROM breaker WHERE key = ?", (key,)).fetchone()
    return None if row is None else _decode(alg.BreakerState.from_json, row[0], "breaker", key)


def _save_breaker(conn: sqlite3.Connection, key: str, state: alg.BreakerState) -> None:
    conn.execute(
        "INSERT INTO breaker (key, state) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET state = excluded.state",
        (key, state.to_json()),
    )


def _decode(parse: Callable[[bytes], R], raw: bytes, table: str, key: str) -> R:
    try:
        return parse(raw)
    except (ValueError, TypeError, KeyError) as exc:
        raise StateStoreError(f"the stored {table} record {key!r} is unreadable: {exc}") from exc


def _sweep(conn: sqlite3.Connection, now: float) -> None:
    conn.execute(
        "DELETE FROM kv WHERE rowid IN "
        "(SELECT rowid FROM kv WHERE expires IS NOT NULL AND expires <= ? LIMIT ?)",
        (now, SWEEP_LIMIT),
    )
    conn.execute(
        "DELETE FROM locks WHERE rowid IN (SELECT rowid FROM locks WHERE expires <= ? LIMIT ?)",
        (now, SWEEP_LIMIT),
    )
    conn.execute(
        "DELETE FROM rate WHERE rowid IN (SELECT rowid FROM rate WHERE idle_at <= ? LIMIT ?)",
        (now - alg.EPSILON, SWEEP_LIMIT),
    )


class SQLiteStore:
    """State shared by the processes of one machine through one SQLite file.

    ``SQLiteStore("path/to/tether.db")`` or ``open_store("sqlite:///path/to/tether.db")``. The file
    and its tables are created on first use; ``busy_timeout`` (seconds) is how long an operation
    waits for another process' write lock before raising ``StateStoreError``.
    """

    def __init__(self, path: str | Path, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        self._db = SQLiteDatabase(path, init=_init, what="SQLite state store", busy_timeout=busy_timeout)
        self._writes = 0

    @classmethod
    def from_url(cls, url: str, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> SQLiteStore:
        """The store for ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``."""
        return cls(path_from_url(url), busy_timeout=busy_timeout)

    @property
    def path(self) -> str:
        return self._db.path

    def __repr__(self) -> str:
        return f"SQLiteStore({self._db.path!r})"

    async def _write(self, now: float, fn: Callable[[sqlite3.Connection], R]) -> R:
        """``fn`` in one BEGIN IMMEDIATE transaction, with a lazy sweep every SWEEP_EVERY writes."""
        self._writes += 1
        sweep = self._writes % SWEEP_EVERY == 0

        def op(conn: sqlite3.Connection) -> R:
            result = fn(conn)
            if sweep:
                _sweep(conn, now)
            return result

        return await self._db.run(lambda conn: immediate(conn, op))

    # --- counters ----------------------------------------------------------------------------

    async def incr(self, key: str, amount: float = 1.0, *, ttl: float | None = None, now: float) -> float:
        def op(conn: sqlite3.Connection) -> float:
            row = conn.execute("SELECT number, expires FROM kv WHERE key = ?", (key,)).fetchone()
            live = row is not None and row[0] is not None and (row[1] is None or now < row[1])
            if live:
                value = float(row[0]) + amount
                conn.execute("UPDATE kv SET number = ? WHERE key = ?", (value, key))
                return value
            conn.execute(
                "INSERT INTO kv (key, value, number, expires) VALUES (?, NULL, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = NULL, number = excluded.number, "
                "expires = excluded.expires",
                (key, float(amount), None if ttl is None else now + ttl),
            )
            return float(amount)

        return await self._write(now, op)

    async def get_counter(self, key: str, *, now: float) -> float:
        def op(conn: sqlite3.Connection) -> float:
            row = conn.execute(
                "SELECT number FROM kv WHERE key = ? AND number IS NOT NULL "
                "AND (expires IS NULL OR expires > ?)",
                (key, now),
            ).fetchone()
            return 0.0 if row is None else float(row[0])

        return await self._db.run(op)

    # --- values ------------------------------------------------------------------------------

    async def get(self, key: str, *, now: float) -> bytes | None:
        def op(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute(
                "SELECT value FROM kv WHERE key = ? AND value IS NOT NULL "
                "AND (expires IS NULL OR expires > ?)",
                (key, now),
            ).fetchone()
            return None if row is None else bytes(row[0])

        return await self._db.run(op)

    async def set(self, key: str, value: bytes, *, ttl: float | None = None, now: float) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO kv (key, value, number, expires) VALUES (?, ?, NULL, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value, number = NULL, "
                "expires = excluded.expires",
                (key, bytes(value), None if ttl is None else now + ttl),
            )

        await self._write(now, op)

    async def delete(self, key: str) -> None:
        await self._db.run(lambda conn: conn.execute("DELETE FROM kv WHERE key = ?", (key,)).close())

    # --- locks -------------------------------------------------------------------------------

    async def try_lock(self, key: str, owner: str, *, ttl: float, now: float) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT owner, expires FROM locks WHERE key = ?", (key,)).fetchone()
            if row is not None and row[0] != owner and now < row[1]:
                return False
            conn.execute(
                "INSERT INTO locks (key, owner, expires) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET owner = excluded.owner, expires = excluded.expires",
                (key, owner, now + ttl),
            )
            return True

        return await self._write(now, op)

    async def unlock(self, key: str, owner: str) -> None:
        await self._db.run(
            lambda conn: conn.execute("DELETE FROM locks WHERE key = ? AND owner = ?", (key, owner)).close()
        )

    # --- rate limiter ------------------------------------------------------------------------

    async def rate_acquire(
        self,
        key: str,
        windows: Sequence[RateWindow],
        *,
        now: float,
        cost: int = 1,
        max_wait: float | None = None,
        max_queue: int | None = None,
    ) -> RateGrant:
        windows = tuple(windows)

        def op(conn: sqlite3.Connection) -> RateGrant:
            state, grant = alg.rate_acquire(
                _load_rate(conn, key), windows, now, cost=cost, max_wait=max_wait, max_queue=max_queue
            )
            if grant.granted:
                _save_rate(conn, key, state)
            return grant

        return await self._write(now, op)

    async def rate_pause(self, key: str, until: float, *, now: float) -> float:
        def op(conn: sqlite3.Connection) -> float:
            state, paused = alg.rate_pause(_load_rate(conn, key), until, now)
            _save_rate(conn, key, state)
            return paused

        return await self._write(now, op)

    async def rate_status(self, key: str, windows: Sequence[RateWindow], *, now: float) -> RateSnapshot:
        windows = tuple(windows)

        def op(conn: sqlite3.Connection) -> RateSnapshot:
            return alg.rate_status(_load_rate(conn, key), windows, now)[1]

        return await self._db.run(op)

    # --- circuit breaker ---------------------------------------------------------------------

    async def breaker_acquire(self, key: str, config: BreakerConfig, *, now: float) -> BreakerPermit:
        def op(conn: sqlite3.Connection) -> BreakerPermit:
            state, permit = alg.breaker_acquire(_load_breaker(conn, key), config, now)
            _save_breaker(conn, key, state)
            return permit

        return await self._write(now, op)

    async def breaker_record(
        self,
        key: str,
        permit: BreakerPermit,
        outcome: BreakerOutcome,
        config: BreakerConfig,
        *,
        now: float,
    ) -> BreakerUpdate:
        def op(conn: sqlite3.Connection) -> BreakerUpdate:
            state, update = alg.breaker_record(_load_breaker(conn, key), permit, outcome, config, now)
            _save_breaker(conn, key, state)
            return update

        return await self._write(now, op)

    async def breaker_force(
        self,
        key: str,
        state: Literal["isolated", "closed"],
        config: BreakerConfig,
        *,
        now: float,
    ) -> BreakerUpdate:
        def op(conn: sqlite3.Connection) -> BreakerUpdate:
            new, update = alg.breaker_force(_load_breaker(conn, key), state, config, now)
            _save_breaker(conn, key, new)
            return update

        return await self._write(now, op)

    async def breaker_status(self, key: str, config: BreakerConfig, *, now: float) -> BreakerSnapshot:
        def op(conn: sqlite3.Connection) -> BreakerSnapshot:
            return alg.breaker_status(_load_breaker(conn, key), config, now)

        return await self._db.run(op)

    async def aclose(self) -> None:
        """Close the connection and stop the worker thread; the file keeps the state."""
        await self._db.aclose()
