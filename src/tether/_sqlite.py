"""One SQLite file, one connection, one worker thread: what the SQLite state store and cache share.

Why one dedicated thread per database object, rather than ``asyncio.to_thread``:

- ``sqlite3`` connections belong to the thread that made them. ``to_thread`` runs on the loop's
  default pool (many threads), so each thread would need its own connection, and the threads of
  one process would then compete for SQLite's write lock through its busy handler, which backs
  off by sleeping (1, 2, 5, 10 … ms). Writes are serialised by SQLite anyway; letting them queue
  in-process in front of one connection costs nothing and never sleeps.
- One connection keeps its prepared statements warm and is closed deterministically, in the
  thread that owns it, by ``aclose``.

So every operation is a function of the connection, submitted to a one-thread executor (its work
queue is the queue) and awaited: the event loop never blocks on disk or on another process'
lock. Several *processes* coordinate through the file: WAL journal (readers never block the
writer), ``busy_timeout`` (a process waits for another's write lock instead of failing) and one
``BEGIN IMMEDIATE`` transaction per atomic operation (the write lock is taken before the record
is read, so two processes can never both read the old value).

``sqlite3`` errors are translated here, once, into ``tether.errors.StateStoreError``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final, TypeVar

from tether.errors import SpecError, StateStoreError

__all__ = ["DEFAULT_BUSY_TIMEOUT", "SQLiteDatabase", "path_from_url"]

T = TypeVar("T")

#: Seconds a process waits for another process' write lock before failing.
DEFAULT_BUSY_TIMEOUT: Final = 5.0


def path_from_url(url: str) -> str:
    """The file of a ``sqlite:///relative/path`` or ``sqlite:////absolute/path`` URL.

    ``sqlite:///tether.db`` is ``tether.db`` in the working directory (SQLAlchemy's convention);
    ``sqlite:////var/lib/tether.db`` is absolute.
    """
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        raise SpecError(f"a SQLite URL looks like 'sqlite:///path/to/file.db', got {url!r}")
    path = url[len(prefix) :].split("?", 1)[0]
    if not path:
        raise SpecError(f"a SQLite URL must name a file, got {url!r}")
    return path


class SQLiteDatabase:
    """A SQLite file opened lazily in one worker thread; ``run`` executes a function there.

    ``init`` runs once, in the worker, on the new connection (inside no transaction), to create
    or check the schema. ``what`` names the owner in error messages.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        init: Callable[[sqlite3.Connection], None],
        what: str,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    ) -> None:
        if busy_timeout < 0:
            raise ValueError(f"busy_timeout must be >= 0 seconds, got {busy_timeout!r}")
        self.path = str(path)
        self._init = init
        self._what = what
        self._busy_timeout = float(busy_timeout)
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        self._lock = threading.Lock()

    @property
    def closed(self) -> bool:
        return self._closed

    def _executor_for_call(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._closed:
                raise StateStoreError(f"the {self._what} at {self.path!r} is closed")
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tether-sqlite")
            return self._executor

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` in the worker thread; sqlite3 errors become ``StateStoreError``."""
        executor = self._executor_for_call()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(executor, self._call, fn)
        except sqlite3.Error as exc:
            raise StateStoreError(f"the {self._what} at {self.path!r} failed: {exc}") from exc

    async def transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` inside one ``BEGIN IMMEDIATE … COMMIT`` (rolled back if it raises)."""
        return await self.run(lambda conn: immediate(conn, fn))

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        if conn is None:
            conn = self._conn = self._connect()
        return fn(conn)

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; each operation says BEGIN IMMEDIATE.
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if mode is None or str(mode[0]).lower() != "wal":
                raise sqlite3.OperationalError(f"could not switch to WAL journal mode (got {mode!r})")
            # WAL + NORMAL: a commit does not fsync (the WAL is synced at checkpoints). A power cut
            # may lose the last transactions, never corrupt the file: right for limiter, breaker
            # and cache state, which are rebuilt by the next calls anyway.
            conn.execute("PRAGMA synchronous = NORMAL")
            self._init(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    async def aclose(self) -> None:
        """Close the connection (in its thread) and stop the worker. Later calls raise."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is None:
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(executor, self._close_connection)
        except sqlite3.Error as exc:
            raise StateStoreError(f"closing the {self._what} at {self.path!r} failed: {exc}") from exc
        finally:
            executor.shutdown(wait=False)

    def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def immediate(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """``fn(conn)`` in one ``BEGIN IMMEDIATE`` transaction: committed, or rolled back if it raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


def check_schema(conn: sqlite3.Connection, name: str, version: int, ddl: Sequence[str], *, what: str) -> None:
    """Run the ``ddl`` statements (idempotent: ``IF NOT EXISTS``) and record ``name = version`` in
    ``meta``, in one transaction.

    A file written by a newer schema is refused (``StateStoreError``) rather than misread.
    """

    def create(c: sqlite3.Connection) -> None:
        c.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        row = c.execute("SELECT value FROM meta WHERE key = ?", (name,)).fetchone()
        found = int(row[0]) if row is not None else None
        if found is not None and found > version:
            raise StateStoreError(
                f"the {what} file was written by a newer tether ({name} {found}; "
                f"this version reads {version}); upgrade tether or use another file"
            )
        for statement in ddl:
            c.execute(statement)
        if found is None or found < version:
            c.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (name, str(version)),
            )

    immediate(conn, create)
