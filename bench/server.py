"""The server side: the mock server on its own core, its CPU time, and its own capacity.

The server is ``python -m tether.mock`` (via ``tether.mock.spawn_server``, request log off) in a
subprocess. With two or more cores it is pinned to one core and the benchmark process to another,
so the client under test never competes with the server for a CPU. The server's CPU time comes
from ``/proc/<pid>/stat`` (utime + stime); its utilisation during a measurement is that time over
the wall time: well below 100 % of its core means the server had headroom and the client was the
bottleneck.

``probe_capacity`` measures what the server can answer with the cheapest load generator there is:
raw ``asyncio`` protocols writing ready-made HTTP/1.1 requests and counting response status lines.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from tether.mock import spawn_server

__all__ = [
    "CapacityResult",
    "Placement",
    "ServerHandle",
    "place",
    "probe_capacity",
    "running_server",
    "system_busy_seconds",
]

_STATUS_LINE = b"HTTP/1.1 "
_KEEP = len(_STATUS_LINE) - 1  # a status line cannot fit whole in the carried tail


@dataclass(frozen=True)
class Placement:
    """Which cores the server and the benchmark (client) process run on."""

    cpu_count: int
    server_cpus: tuple[int, ...] | None  # None = not pinned
    client_cpus: tuple[int, ...] | None
    note: str


def _available_cpus() -> list[int] | None:
    getaff = getattr(os, "sched_getaffinity", None)
    if getaff is None:
        return None
    return sorted(getaff(0))


def place() -> Placement:
    """Choose cores: server on the first available one, client on the second (if there is one)."""
    count = os.cpu_count() or 1
    cpus = _available_cpus()
    if cpus is None or not hasattr(os, "sched_setaffinity"):
        return Placement(count, None, None, "not pinned: this platform has no sched_setaffinity")
    if len(cpus) < 2:
        return Placement(
            count, None, None, f"not pinned: only {len(cpus)} core available, server and client share it"
        )
    note = f"server pinned to core {cpus[0]}, client to core {cpus[1]}"
    return Placement(count, (cpus[0],), (cpus[1],), note)


def _clock_ticks() -> int:
    try:
        return int(os.sysconf("SC_CLK_TCK"))
    except (AttributeError, ValueError, OSError):
        return 100


class ServerHandle:
    """The running server: its URL, pid and CPU seconds used so far."""

    def __init__(self, url: str, pid: int) -> None:
        self.url = url
        self.pid = pid
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self._ticks = _clock_ticks()
        self._stat = f"/proc/{pid}/stat"
        self.cpu_available = self.cpu_seconds() is not None

    def cpu_seconds(self) -> float | None:
        """utime + stime of the server process, in seconds (None where /proc is unavailable)."""
        try:
            with open(self._stat, "rb") as f:
                raw = f.read()
        except OSError:
            return None
        # The command name (field 2) may contain spaces: split after its closing parenthesis.
        fields = raw[raw.rindex(b")") + 2 :].split()
        utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of stat(5)
        return (utime + stime) / self._ticks


_TICKS = _clock_ticks()


def system_busy_seconds() -> float | None:
    """CPU seconds all cores spent not idle since boot (``/proc/stat``; steal counts as busy).

    Minus the client's and the server's CPU time, it tells how much else ran on the machine.
    """
    try:
        with open("/proc/stat", "rb") as f:
            first = f.readline().split()
    except OSError:
        return None
    if not first or first[0] != b"cpu":
        return None
    # user nice system idle iowait irq softirq steal ...
    values = [int(x) for x in first[1:9]]
    busy = values[0] + values[1] + values[2] + values[5] + values[6] + values[7]
    return busy / _TICKS


@contextmanager
def running_server(placement: Placement) -> Iterator[ServerHandle]:
    """Start the mock server (request log off), pin it and this process, and stop it afterwards."""
    pinned = placement.server_cpus is not None and placement.client_cpus is not None
    original = os.sched_getaffinity(0) if pinned else None
    with spawn_server(record=False) as spawned:
        pid = spawned.process.pid
        if placement.server_cpus is not None and placement.client_cpus is not None:
            os.sched_setaffinity(pid, set(placement.server_cpus))
            os.sched_setaffinity(0, set(placement.client_cpus))
        try:
            yield ServerHandle(spawned.url, pid)
        finally:
            if original is not None:
                os.sched_setaffinity(0, original)


# --- server capacity -------------------------------------------------------------------------


class _Counter(asyncio.Protocol):
    """One connection that keeps ``depth`` requests in flight and counts the responses."""

    def __init__(self, request: bytes, depth: int, ready: asyncio.Future[None]) -> None:
        self.request = request
        self.depth = depth
        self.ready = ready
        self.responses = 0
        self.running = False
        self.transport: asyncio.Transport | None = None
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if not self.ready.done():
            self.ready.set_result(None)

    def start(self) -> None:
        assert self.transport is not None
        self.running = True
        self.transport.write(self.request * self.depth)

    def data_received(self, data: bytes) -> None:
        chunk = self._tail + data
        n = chunk.count(_STATUS_LINE)
        self._tail = chunk[-_KEEP:]
        if n:
            self.responses += n
            if self.running and self.transport is not None:
                self.transport.write(self.request * n)

    def connection_lost(self, exc: Exception | None) -> None:
        self.running = False


@dataclass(frozen=True)
class CapacityResult:
    mode: str
    connections: int
    depth: int
    seconds: float
    responses: int
    per_second: float
    server_cpu: float | None  # server utilisation during the probe, fraction of one core
    client_cpu: float  # load generator's utilisation, fraction of one core


async def _probe(
    server: ServerHandle, *, connections: int, depth: int, seconds: float, mode: str
) -> CapacityResult:
    loop = asyncio.get_running_loop()
    request = f"GET /fast HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n\r\n".encode()
    protocols: list[_Counter] = []
    for _ in range(connections):
        ready: asyncio.Future[None] = loop.create_future()
        proto = _Counter(request, depth, ready)
        await loop.create_connection(lambda p=proto: p, server.host, server.port)
        await ready
        protocols.append(proto)
    try:
        for p in protocols:  # warm up briefly, then count from a clean start
            p.start()
        await asyncio.sleep(min(0.2, seconds / 4))
        start_count = sum(p.responses for p in protocols)
        s0, c0, t0 = server.cpu_seconds(), time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        end_count = sum(p.responses for p in protocols)
        s1, c1, t1 = server.cpu_seconds(), time.process_time(), time.perf_counter()
    finally:
        for p in protocols:
            p.running = False
            if p.transport is not None:
                p.transport.close()
    wall = t1 - t0
    responses = end_count - start_count
    server_cpu = (s1 - s0) / wall if s0 is not None and s1 is not None else None
    return CapacityResult(
        mode=mode,
        connections=connections,
        depth=depth,
        seconds=round(wall, 4),
        responses=responses,
        per_second=responses / wall,
        server_cpu=server_cpu,
        client_cpu=(c1 - c0) / wall,
    )


async def probe_capacity(server: ServerHandle, *, seconds: float) -> list[CapacityResult]:
    """The server's capacity for ``GET /fast``: keep-alive with one request in flight per
    connection on 32 and on 256 connections (the clients' pattern at those concurrencies), and
    pipelined (8 connections × 16 in flight)."""
    return [
        await _probe(server, connections=32, depth=1, seconds=seconds, mode="keep-alive"),
        await _probe(server, connections=256, depth=1, seconds=seconds, mode="keep-alive"),
        await _probe(server, connections=8, depth=16, seconds=seconds, mode="pipelined"),
    ]
