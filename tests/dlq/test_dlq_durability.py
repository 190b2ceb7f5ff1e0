"""Durability: a process killed with SIGKILL mid-run loses no call it reported as failed."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import tether
from tether.dlq import DeadLetter, Replayer, ReplayReport, SQLiteDLQ
from tether.mock import Fault, SpawnedServer, spawn_server
from tether.testing import VirtualClock

CALLS = 1000
CHILD = Path(__file__).with_name("dlq_child.py")
SRC = Path(tether.__file__).resolve().parents[1]


def _run_child_and_kill(base_url: str, db: Path, rng: random.Random) -> list[tuple[str, str]]:
    """Start the child, SIGKILL it after a random number of reported failures; every reported line."""
    paths = (str(SRC), os.environ.get("PYTHONPATH"))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p))
    child = subprocess.Popen(
        [sys.executable, str(CHILD), base_url, str(db), str(CALLS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert child.stdout is not None
    kill_after = rng.randint(50, CALLS - 100)
    reported: list[tuple[str, str]] = []
    try:
        for raw in child.stdout:
            _, dlq_id, key = raw.decode().split()
            reported.append((dlq_id, key))
            if len(reported) == kill_after:
                time.sleep(rng.uniform(0, 0.01))  # land somewhere inside the next call
                os.kill(child.pid, signal.SIGKILL)
                break
        # Lines the child wrote before it died are still in the pipe: they were reported too.
        for raw in child.stdout:
            _, dlq_id, key = raw.decode().split()
            reported.append((dlq_id, key))
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert len(reported) < CALLS  # it really died mid-run
    return reported


async def _after_restart(db: Path, server: SpawnedServer) -> tuple[list[DeadLetter], ReplayReport]:
    backend = SQLiteDLQ(db)
    try:
        entries = list(await backend.list())
        server.route("POST", "/v1/orders", Fault.ok(json={"ok": True}))
        server.clear_log()
        clock = VirtualClock(epoch=time.time() + 60)  # every entry is due
        async with tether.Client(server.url + "/v1", retry=None, breaker=None) as client:
            replayer = Replayer(client, backend, clock=clock, batch=50, concurrency=8)
            report = await replayer.run(until_empty=True)
        assert (await backend.counts()).total == 0
        return entries, report
    finally:
        await backend.aclose()


def test_sigkilled_writer_loses_no_reported_failure_and_replay_delivers_each_once(tmp_path: Path) -> None:
    """Every call printed as failed is in the DLQ exactly once; replay delivers each key exactly once."""
    db = tmp_path / "dlq.db"
    routes = [{"method": "POST", "path": "/v1/orders", "responses": [Fault.status(503)]}]
    with spawn_server(routes) as server:
        reported = _run_child_and_kill(server.url + "/v1", db, random.Random())
        entries, report = asyncio.run(_after_restart(db, server))
        log = server.log()

    by_id = {e.id: e for e in entries}
    assert len(by_id) == len(entries)
    for dlq_id, key in reported:
        assert dlq_id in by_id, f"call {dlq_id} was reported failed but is not in the DLQ"
        assert by_id[dlq_id].idempotency_key == key
    # At most the one call in flight at the kill can be stored without having been reported.
    assert len(entries) - len(reported) in (0, 1)
    keys = Counter(e.idempotency_key for e in entries)
    assert set(keys.values()) == {1}

    assert sorted(report.delivered) == sorted(by_id)
    delivered = Counter(r.header("idempotency-key") for r in log)
    assert set(delivered) == set(keys)
    assert set(delivered.values()) == {1}
