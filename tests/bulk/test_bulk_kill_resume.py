"""A real `tether fetch` subprocess SIGKILLed at random moments, three times, then resumed:
every one of 3 rows x 366 daily records (100 per page) lands exactly once, in every destination."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import sqlite3
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from bulk_helpers import (
    SPEC,
    csv_records,
    environ,
    expected_records,
    jsonl_records,
    run_tether,
    sqlite_records,
    tether_command,
    write_csv,
)

from tether.dataapi._mock import DataAPIMock
from tether.mock import Fault

KILLS = 3


def _progress(target: Path) -> int:
    """How far the job got: the pages its state has committed (read while it runs)."""
    state = target.with_name(target.name + ".state.db") if target.suffix != ".db" else target
    if not state.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(state, timeout=1)) as conn:
            row = conn.execute("SELECT COALESCE(SUM(pages), 0) FROM tether_fetch_units").fetchone()
    except sqlite3.Error:  # not created yet
        return 0
    return int(row[0])


async def _kill_at_random(args: list[str], watch: Path, rng: random.Random) -> int | None:
    """Start the job, wait until it has committed something new, SIGKILL it a random moment later."""
    before = _progress(watch)
    proc = await asyncio.create_subprocess_exec(
        *tether_command(*args),
        env=environ(),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    for _ in range(3000):  # up to 30 s for the interpreter to start and commit a page
        if _progress(watch) > before or proc.returncode is not None:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(rng.uniform(0.0, 0.3))
    if proc.returncode is None:
        proc.send_signal(signal.SIGKILL)
    return await proc.wait()


@pytest.mark.parametrize(
    ("out", "read"),
    [
        ("{dir}/out.jsonl", lambda d: jsonl_records(d / "out.jsonl")),
        ("{dir}/out.csv", lambda d: csv_records(d / "out.csv")),
        ("sqlite:///{dir}/out.db#history", lambda d: sqlite_records(d / "out.db", "history")),
    ],
    ids=["jsonl", "csv", "sqlite"],
)
async def test_three_sigkills_then_resume_write_every_record_exactly_once(
    dataapi: DataAPIMock, tmp_path: Path, out: str, read: Callable[[Path], list[tuple[str, str, float]]]
) -> None:
    """SIGKILL x3 at random moments, resume: 1,098 records, each once, with the mock's values."""
    # Slow pages (150 ms) so that the kills land mid-job, between and during commits.
    live = dataapi.live("get_historical")
    slow = Fault.respond(lambda incoming: Fault.delay(0.15, then=live.answer(incoming)))
    dataapi.route("GET", "/v1/historical/{identifier}", slow)
    target = out.format(dir=tmp_path)
    watch = tmp_path / "out.db" if target.startswith("sqlite") else Path(target)
    each = write_csv(tmp_path / "hist.csv")
    args = [
        "fetch", str(SPEC), "get_historical", "--each", str(each), "--out", target,
        "--base-url", dataapi.base_url, "--full-refresh", "--concurrency", "2", "--progress-every", "60",
    ]  # fmt: skip
    rng = random.Random(11)
    codes = [await _kill_at_random(args, watch, rng) for _ in range(KILLS)]
    assert codes.count(-signal.SIGKILL) >= 1, f"no run was killed mid-job: {codes}"
    code, _, err = await run_tether(*args)
    assert code == 0, err
    records = read(tmp_path)
    counts = Counter((i, d) for i, d, _ in records)
    assert len(records) == 1098
    assert max(counts.values()) == 1
    assert set(records) == expected_records()
