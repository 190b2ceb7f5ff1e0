"""The `tether fetch` command as a person runs it: progress off a terminal, stdout, Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from pathlib import Path

from bulk_helpers import SPEC, environ, run_tether, tether_command, write_csv

from tether.dataapi._mock import DataAPIMock
from tether.mock import Fault


def _slow(dataapi: DataAPIMock, seconds: float) -> None:
    live = dataapi.live("get_historical")
    dataapi.route(
        "GET",
        "/v1/historical/{identifier}",
        Fault.respond(lambda i: Fault.delay(seconds, then=live.answer(i))),
    )


async def test_off_a_terminal_progress_lines_go_to_stderr_and_stdout_carries_only_data(
    dataapi: DataAPIMock, tmp_path: Path
) -> None:
    """--out - with --progress-every 0.2: stdout is exactly the 1,098 JSON records; stderr has
    several progress lines, then the summary."""
    _slow(dataapi, 0.1)
    each = write_csv(tmp_path / "hist.csv")
    code, out, err = await run_tether(
        "fetch", str(SPEC), "get_historical", "--each", str(each), "--out", "-",
        "--base-url", dataapi.base_url, "--full-refresh", "--concurrency", "1", "--progress-every", "0.2",
    )  # fmt: skip
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 1098 and all(set(r) == {"input", "data"} for r in records)
    progress = [line for line in err.splitlines() if line.startswith("fetch get_historical: ")]
    assert len(progress) >= 3
    assert re.search(r"\d+/3 rows .* records .* in flight .* rows/s .* ETA", progress[-1])
    assert "records written" in err


async def test_ctrl_c_stops_cleanly_says_how_to_resume_and_a_rerun_finishes(
    dataapi: DataAPIMock, tmp_path: Path
) -> None:
    """SIGINT mid-job: exit 130 with 'rerun the same command to resume'; the rerun completes the
    1,098 records without a duplicate."""
    _slow(dataapi, 0.15)
    each = write_csv(tmp_path / "hist.csv")
    out = tmp_path / "out.jsonl"
    args = [
        "fetch", str(SPEC), "get_historical", "--each", str(each), "--out", str(out), "--base-url",
        dataapi.base_url, "--full-refresh", "--concurrency", "1",
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *tether_command(*args), env=environ(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    for _ in range(3000):
        if out.exists() and out.stat().st_size > 0:
            break
        await asyncio.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 130, err.decode()
    assert "rerun the same command to resume" in err.decode()
    code, _, err2 = await run_tether(*args)
    assert code == 0, err2
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1098 == len(set(lines))
