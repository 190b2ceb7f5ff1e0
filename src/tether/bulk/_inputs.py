"""The bulk job's input files, read strictly: every row located, every problem named.

- CSV (``.csv``): a header row, then one record per row, read with the ``csv`` module in strict
  mode. A UTF-8 byte-order mark (every Excel export) is removed; a record with more or fewer
  fields than the header, an unbalanced quote or a NUL byte is refused with its line number,
  never merged into its neighbour. Blank lines are skipped.
- JSON Lines (``.jsonl`` / ``.ndjson``): one JSON object per non-blank line.
- JSON (``.json``): an array of objects.

Only regular files are read (not a FIFO or a device), up to ``MAX_INPUT_BYTES``; text must be
UTF-8. Every problem is a ``RequestValidationError`` whose message starts with ``file:line``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from tether.errors import RequestValidationError

__all__ = ["MAX_INPUT_BYTES", "InputRow", "read_inputs"]

#: The largest input file read (bytes): a bigger one is refused rather than read into memory.
MAX_INPUT_BYTES: Final = 512 * 1024 * 1024
_BOM: Final = "\ufeff"
_JSON_LINES: Final = (".jsonl", ".ndjson")


@dataclass(frozen=True, slots=True)
class InputRow:
    """One input row: its parameters and where it came from (``hist.csv:4``, ``list_series#12``)."""

    values: Mapping[str, Any]
    where: str
    number: int


def _fail(where: str, message: str, **detail: Any) -> RequestValidationError:
    return RequestValidationError(f"{where}: {message}", details=[{"where": where, **detail}])


def _read_text(path: Path) -> str:
    try:
        info = os.stat(path)
    except OSError as exc:
        raise _fail(str(path), f"cannot read the input file ({exc.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise _fail(str(path), "the input must be a regular file (not a folder, FIFO or device)")
    if info.st_size > MAX_INPUT_BYTES:
        raise _fail(str(path), f"the input file is larger than {MAX_INPUT_BYTES} bytes")
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_INPUT_BYTES + 1)
    except OSError as exc:
        raise _fail(str(path), f"cannot read the input file ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise _fail(
            f"{path}:{line}",
            f"not UTF-8 (byte 0x{raw[exc.start]:02x} at column {column}); save the file as UTF-8",
            line=line,
        ) from None
    return text[1:] if text.startswith(_BOM) else text


def read_inputs(path: str | os.PathLike[str]) -> list[InputRow]:
    """The rows of ``path`` (CSV with a header, JSON Lines, or a JSON array of objects)."""
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".csv", ".json", *_JSON_LINES):
        raise _fail(str(file), "an input file is .csv, .jsonl / .ndjson or .json")
    text = _read_text(file)
    if suffix == ".csv":
        return _csv_rows(file, text)
    if suffix in _JSON_LINES:
        rows = []
        for number, line in enumerate(text.split("\n"), 1):
            if line.strip():
                where = f"{file}:{number}"
                rows.append(InputRow(_object(_json(line, where), where), where, number))
        return rows
    data = _json(text, str(file))
    if not isinstance(data, list):
        raise _fail(str(file), f"a JSON input file holds an array of objects, not {_kind(data)}")
    return [InputRow(_object(item, f"{file}[{i}]"), f"{file}[{i}]", i + 1) for i, item in enumerate(data)]


def _csv_rows(file: Path, text: str) -> list[InputRow]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[InputRow] = []
    header: list[str] | None = None
    ended = 0  # the line the previous record ended on
    try:
        for fields in reader:
            start, ended = ended + 1, reader.line_num
            if not fields or (len(fields) == 1 and not fields[0].strip() and header is not None):
                continue  # a blank line
            if header is None:
                header = _header(file, fields, start)
                continue
            where = f"{file}:{start}"
            if len(fields) != len(header):
                raise _fail(
                    where,
                    f"{len(fields)} field(s) but the header has {len(header)} "
                    "(a stray comma, or a quote that is not closed?)",
                    line=start,
                )
            rows.append(InputRow(dict(zip(header, fields, strict=True)), where, start))
    except csv.Error as exc:
        line = ended + 1  # where the malformed record starts
        hint = " (a quote opened here is never closed)" if "end of data" in str(exc) else ""
        raise _fail(f"{file}:{line}", f"malformed CSV: {exc}{hint}", line=line) from None
    if header is None:
        raise _fail(str(file), "the CSV file is empty: it needs a header row naming the parameters")
    return rows


def _header(file: Path, fields: list[str], line: int) -> list[str]:
    names = [name.strip() for name in fields]
    where = f"{file}:{line}"
    if any(not name for name in names):
        raise _fail(where, f"the header has an empty column name: {fields!r}", line=line)
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise _fail(where, f"the header names {', '.join(duplicates)} more than once", line=line)
    return names


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise _fail(where, "JSON nested too deeply") from None
    except ValueError as exc:
        raise _fail(where, f"not valid JSON ({exc})") from None


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else "a number"
    )


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(where, f"each input is an object of parameters, got {_kind(value)}")
    return value
