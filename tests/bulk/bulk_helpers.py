"""Helpers for the bulk job tests: the bundled REQ-001 mock, input files, a real `tether fetch`."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import sqlite3
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from tether.dataapi._mock import value_for

ROOT: Final = Path(__file__).resolve().parents[2]
SPEC: Final = ROOT / "specs" / "dataapi.yaml"
YEAR: Final = ("2024-01-01", "2024-12-31")  # 366 days: four pages of 100
IDS: Final = ("ID-A", "ID-B", "ID-C")


def environ(**extra: str) -> dict[str, str]:
    """The environment a `tether fetch` subprocess runs with: a fresh fake key, the fast tier."""
    env = dict(os.environ)
    env.update(EXTERNAL_API_KEY="k" + secrets.token_hex(12), EXTERNAL_API_RATE_TIER="enterprise")
    env.pop("TETHER_ENV", None)
    env.update(extra)
    return env


def spec_environ() -> dict[str, str]:
    """``environ=`` for tether.open on the bundled spec (fake key, fast tier)."""
    return {"EXTERNAL_API_KEY": "k" + secrets.token_hex(12), "EXTERNAL_API_RATE_TIER": "enterprise"}


def write_csv(path: Path, ids: Sequence[str] = IDS, start: str = YEAR[0], end: str = YEAR[1]) -> Path:
    path.write_text("identifier,start,end\n" + "".join(f"{i},{start},{end}\n" for i in ids), encoding="utf-8")
    return path


def closed_port() -> int:
    """A loopback port nobody listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tether_command(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("tether")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-c", "from tether.cli import main; main()", *args]


async def run_tether(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 60.0
) -> tuple[int, str, str]:
    """Run the real CLI in a subprocess (while the test's event loop keeps serving the mock)."""
    proc = await asyncio.create_subprocess_exec(
        *tether_command(*args),
        env=dict(env or environ()),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def expected_records(ids: Sequence[str] = IDS, days: int = 366) -> set[tuple[str, str, float]]:
    from datetime import date, timedelta

    first = date.fromisoformat(YEAR[0])
    return {
        (i, (first + timedelta(days=n)).isoformat(), value_for(i, first + timedelta(days=n)))
        for i in ids
        for n in range(days)
    }


def jsonl_records(path: Path) -> list[tuple[str, str, float]]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        doc = json.loads(line)
        out.append((doc["input"]["identifier"], doc["data"]["date"], doc["data"]["value"]))
    return out


def csv_records(path: Path) -> list[tuple[str, str, float]]:
    import csv

    with path.open(encoding="utf-8", newline="") as fh:
        return [(r["input_identifier"], r["date"], float(r["value"])) for r in csv.DictReader(fh)]


def sqlite_records(path: Path, table: str) -> list[tuple[str, str, float]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(f"SELECT input_identifier, date, value FROM {table}").fetchall()
    return [(str(a), str(b), float(c)) for a, b, c in rows]


def as_text(value: Any) -> str:
    return json.dumps(value, default=str)
