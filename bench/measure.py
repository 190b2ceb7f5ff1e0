"""One measurement: a client, a concurrency, a fixed duration (or a fixed number of requests).

``concurrency`` workers share one client and each sends its next request as soon as the last one
is read. The client is opened fresh for each measurement and warmed up at the same concurrency
first (so every connection of the pool is open and every lazy import done) outside the measured
window. Inside it we record wall time, this process's CPU time (``time.process_time``: every
thread of the client process, user + system) and the server process's CPU time.
"""

from __future__ import annotations

import asyncio
import gc
import time
from dataclasses import asdict, dataclass
from typing import Any

from bench.clients import ClientSpec, Fetch
from bench.server import ServerHandle, system_busy_seconds

__all__ = ["Measurement", "measure_once"]

#: A measurement stops early once this many requests failed (the report shows the count).
MAX_ERRORS = 100


@dataclass(frozen=True)
class Measurement:
    client: str
    concurrency: int
    round: int
    requests: int  # successful requests in the measured window
    errors: int
    seconds: float
    per_second: float
    cpu_us_per_request: float
    client_cpu: float  # client process CPU time / wall time (fraction of one core)
    server_cpu: float | None  # server process CPU time / wall time (fraction of one core)
    other_cpu: float | None  # CPU used by every other process on the machine, in cores
    first_error: str | None
    info: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Run:
    """Shared state of the workers of one drive."""

    __slots__ = ("deadline", "errors", "first_error", "issued", "ok", "stop", "total")

    def __init__(self, total: int | None, deadline: float | None) -> None:
        self.total = total
        self.deadline = deadline
        self.issued = 0
        self.ok = 0
        self.errors = 0
        self.first_error: str | None = None
        self.stop = False


async def _worker(fetch: Fetch, run: _Run) -> None:
    clock = time.perf_counter
    while not run.stop:
        if run.total is not None:
            if run.issued >= run.total:
                return
            run.issued += 1
        elif run.deadline is not None and clock() >= run.deadline:
            return
        try:
            await fetch()
        except Exception as exc:
            run.errors += 1
            if run.first_error is None:
                run.first_error = f"{type(exc).__name__}: {exc}"[:300]
            if run.errors >= MAX_ERRORS:
                run.stop = True
        else:
            run.ok += 1


async def _drive(fetch: Fetch, concurrency: int, run: _Run) -> None:
    await asyncio.gather(*(_worker(fetch, run) for _ in range(concurrency)))


def _other(
    b0: float | None, b1: float | None, client: float, s0: float | None, s1: float | None, wall: float
) -> float | None:
    if b0 is None or b1 is None or s0 is None or s1 is None or wall <= 0:
        return None
    return max(0.0, (b1 - b0) - client - (s1 - s0)) / wall


async def measure_once(
    spec: ClientSpec,
    server: ServerHandle,
    *,
    concurrency: int,
    round_no: int,
    pool: int,
    duration: float | None,
    requests: int | None,
    warmup: int,
) -> Measurement:
    """Open ``spec``'s client, warm it up, measure it, close it."""
    async with spec.open(server.url, pool, concurrency) as opened:
        await _drive(opened.fetch, concurrency, _Run(warmup, None))
        gc.collect()
        b0 = system_busy_seconds()
        s0 = server.cpu_seconds()
        c0 = time.process_time()
        t0 = time.perf_counter()
        run = _Run(requests, None if requests is not None else t0 + (duration or 0.0))
        await _drive(opened.fetch, concurrency, run)
        t1 = time.perf_counter()
        c1 = time.process_time()
        s1 = server.cpu_seconds()
        b1 = system_busy_seconds()
    wall = t1 - t0
    done = max(run.ok, 1)
    return Measurement(
        client=spec.key,
        concurrency=concurrency,
        round=round_no,
        requests=run.ok,
        errors=run.errors,
        seconds=round(wall, 6),
        per_second=run.ok / wall if wall > 0 else 0.0,
        cpu_us_per_request=(c1 - c0) / done * 1e6,
        client_cpu=(c1 - c0) / wall if wall > 0 else 0.0,
        server_cpu=(s1 - s0) / wall if s0 is not None and s1 is not None and wall > 0 else None,
        other_cpu=_other(b0, b1, c1 - c0, s0, s1, wall),
        first_error=run.first_error,
        info=opened.info,
    )
