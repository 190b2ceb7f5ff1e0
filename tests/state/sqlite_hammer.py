"""A worker process for the multi-process SQLite test (not a test module: run as a script).

``python sqlite_hammer.py DB GO_FILE INCRS ACQUIRES``: opens the SQLite store at DB, prints
``ready``, waits until GO_FILE exists (so every worker starts hammering at the same moment), then
runs INCRS ``incr("hits")`` and ACQUIRES ``rate_acquire("shared", [10/1s, burst 5], now=1000)``
interleaved, and prints one JSON line: the counter values it saw and the slot each grant reserved.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from tether.state._protocol import RateWindow
from tether.state.sqlite import SQLiteStore

NOW = 1000.0
WINDOW = RateWindow(10, 1.0, burst=5)


def wait_for(go: Path) -> None:
    """Block until ``go`` exists (the parent creates it once every worker is ready)."""
    while not go.exists():
        time.sleep(0.005)


async def main(db: str, go_file: str, incrs: int, acquires: int) -> None:
    store = SQLiteStore(db, busy_timeout=30.0)
    await store.get_counter("hits", now=NOW)  # open the file and create the schema before "ready"
    print("ready", flush=True)
    wait_for(Path(go_file))
    seen: list[float] = []
    slots: list[float] = []
    for i in range(max(incrs, acquires)):
        if i < incrs:
            seen.append(await store.incr("hits", now=NOW))
        if i < acquires:
            grant = await store.rate_acquire("shared", [WINDOW], now=NOW)
            assert grant.granted
            slots.append(NOW + grant.wait)
    await store.aclose()
    print(json.dumps({"seen": seen, "slots": slots}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
