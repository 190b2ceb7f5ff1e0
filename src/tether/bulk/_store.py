"""Where the bulk job writes: its destination and its state, committed together page by page.

Destinations: JSON Lines (the default; ``-`` is stdout), CSV (``.csv``) and a SQLite table
(``sqlite:///out.db#table``). The job's state is a SQLite database: for a file destination
``OUT.state.db`` beside it (or ``--state``), for a SQLite destination the same database.

What is committed, and in which order, so that a crash (a SIGKILL at any instant) never loses
or duplicates a record:

- **JSON Lines / CSV**: the page's lines are appended to the file and ``fsync``-ed, then one
  state transaction records the unit's checkpoint (the page after this one) *and the file's new
  length*. On open, the file is cut back to the length the state last recorded: bytes past it
  belong to a page whose checkpoint was never committed, and that page is fetched again. A file
  shorter than recorded was changed by someone else, and the job refuses to go on.
- **SQLite**: the page's rows and the unit's checkpoint are written in one transaction.

Every operation runs in one worker thread (``tether._sqlite.SQLiteDatabase``), so commits are
serialised, and a commit whose caller was cancelled still completes whole.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import stat
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

from tether._sqlite import SQLiteDatabase, immediate
from tether.errors import JobError, StateStoreError
from tether.paginate import PageCheckpoint

__all__ = ["Committed", "Destination", "JobStore", "UnitState", "parse_destination", "record_hash"]

_TABLE_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_META: Final = "tether_fetch_meta"
_UNITS: Final = "tether_fetch_units"
_CURSORS: Final = "tether_fetch_cursors"
_VERSION: Final = "1"
#: The CSV / SQLite column holding fields a record has beyond the columns fixed by the first page.
EXTRA_COLUMN: Final = "_extra"
_DDL: Final = (
    f"CREATE TABLE IF NOT EXISTS {_META} (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    f"""CREATE TABLE IF NOT EXISTS {_UNITS} (
        unit TEXT PRIMARY KEY, row_key TEXT NOT NULL, input TEXT NOT NULL, params TEXT,
        status TEXT NOT NULL, checkpoint TEXT, pages INTEGER NOT NULL DEFAULT 0,
        records INTEGER NOT NULL DEFAULT 0, cursor_max TEXT, boundary TEXT, floor TEXT,
        floor_boundary TEXT, error TEXT, location TEXT)""",
    f"CREATE TABLE IF NOT EXISTS {_CURSORS} (row_key TEXT PRIMARY KEY, cursor_max TEXT, boundary TEXT)",
)


@dataclass(frozen=True, slots=True)
class Destination:
    """Where records go: ``kind`` is ``jsonl``, ``csv``, ``sqlite`` or ``stdout``."""

    kind: str
    path: Path | None = None
    table: str | None = None

    def __str__(self) -> str:
        if self.kind == "stdout":
            return "-"
        if self.kind == "sqlite":
            return f"sqlite:///{self.path}#{self.table}"
        return str(self.path)

    @property
    def default_state(self) -> Path | None:
        """Where the job keeps its state unless told: beside a file, inside a database."""
        if self.kind in ("jsonl", "csv") and self.path is not None:
            return self.path.with_name(self.path.name + ".state.db")
        return self.path if self.kind == "sqlite" else None

    @property
    def default_failures(self) -> Path | None:
        """Where the failures file goes unless told (``None`` for stdout)."""
        if self.path is None:
            return None
        if self.kind == "sqlite":
            return self.path.with_name(f"{self.path.name}.{self.table}.failures.jsonl")
        return self.path.with_name(self.path.name + ".failures.jsonl")


def parse_destination(text: str) -> Destination:
    """``-`` (stdout), ``sqlite:///path.db#table``, ``*.csv`` or anything else (JSON Lines).

    The folder must exist and the target must not be a folder: checked now, before any call.
    """
    if text == "-":
        return Destination("stdout")
    if text.startswith("sqlite:"):
        if not text.startswith("sqlite:///"):
            raise JobError(f"--out {text!r}: a SQLite destination is sqlite:///path/to/file.db#table")
        location, _, table = text[len("sqlite:///") :].partition("#")
        if not location:
            raise JobError(f"--out {text!r}: name the database file (sqlite:///out.db#table)")
        if not _TABLE_NAME.match(table):
            raise JobError(
                f"--out {text!r}: name the table after '#' (letters, digits and _, not starting "
                "with a digit), as in sqlite:///out.db#observations"
            )
        if table.startswith("tether_fetch_"):
            raise JobError(f"--out {text!r}: tables named tether_fetch_* hold the job's own state")
        path = Path(location)
        _check_target(path, text)
        return Destination("sqlite", path, table)
    path = Path(text)
    _check_target(path, text)
    return Destination("csv" if path.suffix.lower() == ".csv" else "jsonl", path)


def _check_target(path: Path, given: str) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise JobError(f"--out {given!r}: the folder {str(folder)!r} does not exist; create it first")
    if path.exists() and not stat.S_ISREG(path.stat().st_mode):
        raise JobError(f"--out {given!r}: {str(path)!r} exists and is not a regular file")


def record_hash(record: Any) -> str:
    """A short, stable digest of a record (for the records at the cursor's high-water mark)."""
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:20]


@dataclass
class UnitState:
    """What the state holds about one unit of work."""

    status: str = "new"  # new | running | done | failed
    params: dict[str, Any] | None = None
    checkpoint: PageCheckpoint | None = None
    pages: int = 0
    records: int = 0
    cursor_max: Any = None
    boundary: list[str] = field(default_factory=list)
    floor: Any = None
    floor_boundary: list[str] = field(default_factory=list)
    error: dict[str, Any] | None = None
    location: str | None = None


@dataclass(frozen=True, slots=True)
class Committed:
    """What one page commit wrote."""

    records: int
    bytes: int


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str, ensure_ascii=False)


def _loads(text: str | None, default: Any = None) -> Any:
    return default if text is None else json.loads(text)


def _cell(value: Any) -> Any:
    """A value for a CSV cell or a SQLite column: scalars as they are, the rest as JSON."""
    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, bool):
        return int(value)
    return _dumps(value)


def _payload(shaped: Mapping[str, Any]) -> Any:
    """What a shaped record carries: ``{"data": record}`` (per record) or the page itself."""
    return shaped.get("data", shaped)


def _replace_file(path: Path, entries: list[dict[str, Any]]) -> int:
    """``path`` atomically rewritten as JSON Lines of ``entries`` (removed when there are none)."""
    if not entries:
        path.unlink(missing_ok=True)
        return 0
    fd, temp = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for entry in entries:
                fh.write(_dumps(entry) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return len(entries)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class JobStore:
    """The job's destination and state; ``open`` it, ``commit`` pages, ``close`` it."""

    def __init__(
        self,
        destination: Destination,
        *,
        state: Path | None = None,
        stdout: IO[bytes] | None = None,
    ) -> None:
        self.destination = destination
        self._temp_dir: str | None = None
        state_path = state if state is not None else destination.default_state
        if destination.kind == "sqlite" and state is not None and state != destination.path:
            raise JobError("a SQLite destination keeps the job's state in its own database: drop --state")
        if state_path is None:  # stdout without --state: state for this run only
            self._temp_dir = tempfile.mkdtemp(prefix="tether-fetch-")
            state_path = Path(self._temp_dir) / "state.db"
        self.state_path = state_path
        self._db = SQLiteDatabase(state_path, init=self._init, what="fetch job state")
        self._stdout = stdout
        self._fd: int | None = None
        self._size = 0
        self.columns: list[str] | None = None
        self.input_columns: list[str] = []

    # --- opening ------------------------------------------------------------------------------

    @staticmethod
    def _init(conn: sqlite3.Connection) -> None:
        def create(c: sqlite3.Connection) -> None:
            for statement in _DDL:
                c.execute(statement)
            row = c.execute(f"SELECT value FROM {_META} WHERE key = 'version'").fetchone()
            if row is None:
                c.execute(f"INSERT INTO {_META} (key, value) VALUES ('version', ?)", (_VERSION,))
            elif row[0] != _VERSION:
                raise StateStoreError(f"job state version {row[0]!r}; this tether reads {_VERSION!r}")

        immediate(conn, create)

    async def open(self, *, job: Mapping[str, Any], input_columns: Sequence[str]) -> dict[str, UnitState]:
        """Create or take up the destination and state; returns every unit the state knows.

        ``job`` describes the job (endpoint, ``per``): a state written by a different job is
        refused, so two jobs cannot interleave in one output.
        """
        dest = self.destination
        fresh_file = dest.kind in ("jsonl", "csv") and dest.path is not None and not dest.path.exists()
        if dest.kind in ("jsonl", "csv") and not fresh_file and not self.state_path.exists():
            raise JobError(
                f"{dest} exists but has no job state ({self.state_path}): tether only appends to "
                "output it wrote itself; remove the file or choose another --out"
            )
        try:
            return await self._db.run(lambda conn: self._open(conn, dict(job), list(input_columns)))
        except StateStoreError as exc:
            raise JobError(f"the job state {self.state_path} cannot be used: {exc.message}") from exc

    def _open(
        self, conn: sqlite3.Connection, job: dict[str, Any], input_columns: list[str]
    ) -> dict[str, UnitState]:
        meta = dict(conn.execute(f"SELECT key, value FROM {_META}").fetchall())
        described = _dumps(job)
        if "job" in meta and meta["job"] != described:
            raise JobError(
                f"{self.destination} was written by another job ({meta['job']}); this one is "
                f"{described}: choose another --out (and --state)"
            )
        if "job" not in meta:
            conn.execute(f"INSERT INTO {_META} (key, value) VALUES ('job', ?)", (described,))
        self.columns = _loads(meta.get("columns"))
        self.input_columns = _loads(meta.get("input_columns"), input_columns)
        if self.destination.kind == "sqlite":
            self._check_table(conn)
        elif self.destination.kind in ("jsonl", "csv"):
            self._take_up_file(int(meta.get("out_size", "0")))
        units: dict[str, UnitState] = {}
        query = (
            f"SELECT unit, params, status, checkpoint, pages, records, cursor_max, boundary, floor, "
            f"floor_boundary, error, location FROM {_UNITS}"
        )
        for row in conn.execute(query):
            units[row[0]] = UnitState(
                status=row[2],
                params=_loads(row[1]),
                checkpoint=PageCheckpoint.from_dict(json.loads(row[3])) if row[3] else None,
                pages=row[4],
                records=row[5],
                cursor_max=_loads(row[6]),
                boundary=_loads(row[7], []),
                floor=_loads(row[8]),
                floor_boundary=_loads(row[9], []),
                error=_loads(row[10]),
                location=row[11],
            )
        return units

    def _check_table(self, conn: sqlite3.Connection) -> None:
        table = self.destination.table
        assert table is not None
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()
        if exists and self.columns is None:
            raise JobError(
                f"table {table!r} already exists in {self.destination.path} and was not written by "
                "this job: choose another table"
            )

    def _take_up_file(self, committed: int) -> None:
        path = self.destination.path
        assert path is not None
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(path, flags, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size < committed:
                raise JobError(
                    f"{path} holds {size} bytes but the job state says {committed} were written: "
                    "the file was changed outside tether; remove it and its state file to start over"
                )
            if size > committed:  # a page written but never checkpointed: it is fetched again
                os.ftruncate(fd, committed)
                os.fsync(fd)
            if committed:
                self._check_tail(path, committed)
        except BaseException:
            os.close(fd)
            raise
        self._fd, self._size = fd, committed

    def _check_tail(self, path: Path, committed: int) -> None:
        """The committed part must still be what tether wrote: whole lines, the last readable."""
        with open(path, "rb") as fh:
            fh.seek(max(0, committed - 65536))
            tail = fh.read(committed - max(0, committed - 65536))
        lines = tail.rstrip(b"\n").split(b"\n")
        where = f"{path}: its last line"
        if not tail.endswith(b"\n"):
            raise JobError(f"{where} is cut short: the file was changed outside tether")
        if self.destination.kind == "jsonl":
            try:
                last = json.loads(lines[-1].decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError):
                raise JobError(f"{where} is not JSON: the file was changed outside tether") from None
            if not isinstance(last, dict) or "input" not in last:
                raise JobError(
                    f"{where} is not a tether record (no 'input'): the file was changed outside tether"
                )

    # --- reading state ------------------------------------------------------------------------

    async def cursors(self) -> dict[str, tuple[Any, list[str]]]:
        """Each input row's kept cursor: ``{row_key: (high-water mark, boundary hashes)}``."""

        def read(conn: sqlite3.Connection) -> dict[str, tuple[Any, list[str]]]:
            rows = conn.execute(f"SELECT row_key, cursor_max, boundary FROM {_CURSORS}").fetchall()
            return {r[0]: (_loads(r[1]), _loads(r[2], [])) for r in rows}

        return await self._db.run(read)

    async def forget_done(self) -> int:
        """Drop the units that finished (an incremental job starts them again from their cursor)."""

        def drop(conn: sqlite3.Connection) -> int:
            return immediate(
                conn, lambda c: c.execute(f"DELETE FROM {_UNITS} WHERE status = 'done'").rowcount
            )

        return await self._db.run(drop)

    async def failures(self) -> list[dict[str, Any]]:
        """Every unit that is failed now, as failures-file entries."""

        def read(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            query = f"SELECT unit, input, error, pages, location FROM {_UNITS} WHERE status = 'failed' "
            query += "ORDER BY rowid"
            return [
                {"input": json.loads(r[1]), "error": _loads(r[2]), "pages_written": r[3], "where": r[4]}
                for r in conn.execute(query)
            ]

        return await self._db.run(read)

    # --- committing ---------------------------------------------------------------------------

    async def commit(
        self,
        unit: str,
        row_key: str,
        inputs: Mapping[str, Any],
        state: UnitState,
        records: Sequence[Any],
        *,
        cursor: tuple[Any, list[str]] | None = None,
    ) -> Committed:
        """Write ``records`` (already shaped: one per output line or row) and ``state`` as one
        atomic step; ``cursor`` (when the unit is done) is kept as the row's new cursor."""
        return await self._db.run(
            lambda conn: self._commit(conn, unit, row_key, inputs, state, records, cursor)
        )

    def _commit(
        self,
        conn: sqlite3.Connection,
        unit: str,
        row_key: str,
        inputs: Mapping[str, Any],
        state: UnitState,
        records: Sequence[Any],
        cursor: tuple[Any, list[str]] | None,
    ) -> Committed:
        kind = self.destination.kind
        new_columns = False
        if kind in ("csv", "sqlite") and records and self.columns is None:
            self.columns = self._columns_for(records)
            new_columns = True
        data = self._encode(inputs, records, header=new_columns and kind == "csv")
        written = 0
        if kind == "stdout" and data:
            assert self._stdout is not None
            self._stdout.write(data)
            self._stdout.flush()
        elif kind in ("jsonl", "csv") and data:
            assert self._fd is not None
            written = self._append(data)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if kind == "sqlite" and records:
                    self._insert(conn, inputs, records, create=new_columns)
                if new_columns:
                    self._set_meta(conn, "columns", _dumps(self.columns))
                    self._set_meta(conn, "input_columns", _dumps(self.input_columns))
                if written:
                    self._set_meta(conn, "out_size", str(self._size + written))
                self._write_unit(conn, unit, row_key, inputs, state)
                if cursor is not None:
                    conn.execute(
                        f"INSERT INTO {_CURSORS} (row_key, cursor_max, boundary) VALUES (?, ?, ?) "
                        "ON CONFLICT(row_key) DO UPDATE SET cursor_max = excluded.cursor_max, "
                        "boundary = excluded.boundary",
                        (row_key, _dumps(cursor[0]), _dumps(cursor[1])),
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except BaseException:
            if written:  # the state did not take the page: neither may the file
                assert self._fd is not None
                os.ftruncate(self._fd, self._size)
            if new_columns:
                self.columns = None
            raise
        self._size += written
        return Committed(len(records), written)

    def _append(self, data: bytes) -> int:
        assert self._fd is not None
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        os.fsync(self._fd)
        return len(data)

    @staticmethod
    def _set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
        conn.execute(
            f"INSERT INTO {_META} (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    @staticmethod
    def _write_unit(
        conn: sqlite3.Connection, unit: str, row_key: str, inputs: Mapping[str, Any], state: UnitState
    ) -> None:
        conn.execute(
            f"INSERT INTO {_UNITS} (unit, row_key, input, params, status, checkpoint, pages, records, "
            "cursor_max, boundary, floor, floor_boundary, error, location) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(unit) DO UPDATE SET "
            "params = excluded.params, status = excluded.status, checkpoint = excluded.checkpoint, "
            "pages = excluded.pages, records = excluded.records, cursor_max = excluded.cursor_max, "
            "boundary = excluded.boundary, floor = excluded.floor, floor_boundary = excluded.floor_boundary, "
            "error = excluded.error, location = excluded.location",
            (
                unit,
                row_key,
                _dumps(dict(inputs)),
                _dumps(state.params),
                state.status,
                _dumps(state.checkpoint.to_dict()) if state.checkpoint is not None else None,
                state.pages,
                state.records,
                _dumps(state.cursor_max),
                _dumps(state.boundary),
                _dumps(state.floor),
                _dumps(state.floor_boundary),
                _dumps(state.error) if state.error is not None else None,
                state.location,
            ),
        )

    # --- shaping records ----------------------------------------------------------------------

    def _columns_for(self, records: Sequence[Any]) -> list[str]:
        names: dict[str, None] = {}
        for shaped in records:
            record = _payload(shaped)
            for key in record if isinstance(record, Mapping) else ("value",):
                names.setdefault(str(key), None)
        taken = {f"input_{name}" for name in self.input_columns}
        return [name for name in names if name not in taken and name != EXTRA_COLUMN]

    def _tabular(self, inputs: Mapping[str, Any], record: Any) -> list[Any]:
        columns = self.columns or []
        fields = dict(record) if isinstance(record, Mapping) else {"value": record}
        cells = [_cell(inputs.get(name)) for name in self.input_columns]
        cells.extend(_cell(fields.pop(name, None)) for name in columns)
        cells.append(_dumps(fields) if fields else None)
        return cells

    def header(self) -> list[str]:
        return [f"input_{name}" for name in self.input_columns] + list(self.columns or []) + [EXTRA_COLUMN]

    def _encode(self, inputs: Mapping[str, Any], records: Sequence[Any], *, header: bool) -> bytes:
        kind = self.destination.kind
        if kind in ("jsonl", "stdout"):
            return "".join(_dumps({"input": dict(inputs), **r}) + "\n" for r in records).encode(
                "utf-8", "surrogatepass"
            )
        if kind != "csv" or not records:
            return b""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        if header:
            writer.writerow(self.header())
        for record in records:
            writer.writerow(["" if c is None else c for c in self._tabular(inputs, _payload(record))])
        return buffer.getvalue().encode("utf-8", "surrogatepass")

    def _insert(
        self, conn: sqlite3.Connection, inputs: Mapping[str, Any], records: Sequence[Any], *, create: bool
    ) -> None:
        table = _quote(self.destination.table or "")
        names = self.header()
        if create:
            columns = ", ".join(_quote(n) for n in names)
            conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({columns})")
        marks = ", ".join("?" for _ in names)
        conn.executemany(
            f"INSERT INTO {table} ({', '.join(_quote(n) for n in names)}) VALUES ({marks})",
            [self._tabular(inputs, _payload(r)) for r in records],
        )

    # --- the failures file and closing --------------------------------------------------------

    async def write_failures(self, path: Path) -> int:
        """Rewrite ``path`` (atomically) to hold exactly the units failing now; returns how many.
        With none, the file is removed."""
        entries = await self.failures()
        return await self._db.run(lambda _conn: _replace_file(path, entries))

    async def close(self) -> None:
        try:
            await self._db.aclose()
        finally:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            if self._temp_dir is not None:
                shutil.rmtree(self._temp_dir, ignore_errors=True)
