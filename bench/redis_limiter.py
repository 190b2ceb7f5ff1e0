"""What a shared rate limiter on Redis adds to a call: ``python -m bench.redis_limiter``.

The same ``tether.Client`` (a ``Rate`` high enough never to wait, no retry, no breaker) sends
``GET /x`` to an in-process fake transport, so the only difference between the two contenders is
where the limiter keeps its slots: the memory store, or a ``RedisStore`` on a loopback Redis (one
``EVALSHA`` round trip per call). A client with no limiter at all is the baseline. Rounds
alternate the contenders; the table shows medians. The store operation alone
(``rate_acquire``) is measured too.

Writes ``docs/benchmarks-redis.md`` and links it from ``docs/benchmarks.md`` (a short
"Redis limiter" section appended to the generated report). ``make bench`` runs it after the main
harness (``run_after_bench``); the Redis is ``--redis-url`` / ``TETHER_BENCH_REDIS_URL`` or a
``redis-server`` started on a free port for the run (persistence off).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx2

import tether
from tether.state import StateStore
from tether.state._protocol import RateWindow
from tether.state.memory import MemoryStore
from tether.state.redis import RedisStore

__all__ = ["link_section", "main", "measure", "render", "run_after_bench", "write_report"]

ROOT = Path(__file__).resolve().parents[1]
DOC_NAME = "benchmarks-redis.md"
SECTION = "## Redis limiter"
CONTENDERS = ("none", "memory", "redis")
LEVELS = (1, 32)
#: A limit no contender reaches: the limiter is consulted on every call but never waits.
RATE = tether.Rate("1000000/second", burst=1_000_000, shared="bench")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def running_redis(url: str | None = None) -> Iterator[str]:
    """``url`` as given, or a ``redis-server`` of our own on a free loopback port for the block."""
    if url:
        yield url
        return
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        raise RuntimeError("no redis-server binary: pass --redis-url or set TETHER_BENCH_REDIS_URL")
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="tether-bench-redis-") as tmp:
        args = [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            tmp,
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.02)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.kill()
            proc.wait()


def _transport() -> httpx2.MockTransport:
    body = b'{"ok":true}'
    return httpx2.MockTransport(lambda request: httpx2.Response(200, content=body))


async def _calls(client: tether.Client, n: int, concurrency: int) -> None:
    per_task, extra = divmod(n, concurrency)

    async def worker(count: int) -> None:
        for _ in range(count):
            await client.get("/x")

    await asyncio.gather(*(worker(per_task + (1 if i < extra else 0)) for i in range(concurrency)))


async def _one(kind: str, redis_url: str, calls: int, concurrency: int) -> dict[str, float]:
    """Microseconds per call (wall and client CPU) for one contender at one concurrency."""
    store: StateStore | None = None
    if kind == "memory":
        store = MemoryStore()
    elif kind == "redis":
        store = RedisStore(redis_url, namespace=f"bench-{uuid.uuid4().hex[:8]}:", timeout=2.0)
    rate = None if kind == "none" else RATE
    client = tether.Client(
        "http://bench.test", transport=_transport(), rate=rate, retry=None, breaker=None, state=store
    )
    try:
        async with client:
            await _calls(client, max(50, calls // 10), concurrency)  # warm-up: connections, script load
            wall, cpu = time.perf_counter(), time.process_time()
            await _calls(client, calls, concurrency)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        if store is not None:
            await store.aclose()
    return {"wall_us": wall / calls * 1e6, "cpu_us": cpu / calls * 1e6}


async def _store_op(kind: str, redis_url: str, calls: int) -> float:
    """Microseconds per ``rate_acquire`` on the store alone (one caller)."""
    store: StateStore = (
        MemoryStore()
        if kind == "memory"
        else RedisStore(redis_url, namespace=f"bench-{uuid.uuid4().hex[:8]}:")
    )
    windows = [RateWindow(1_000_000, 1.0, 1_000_000)]
    try:
        for _ in range(max(50, calls // 10)):
            await store.rate_acquire("bench:rate", windows, now=time.time())
        wall = time.perf_counter()
        for _ in range(calls):
            await store.rate_acquire("bench:rate", windows, now=time.time())
        return (time.perf_counter() - wall) / calls * 1e6
    finally:
        await store.aclose()


async def measure(redis_url: str, *, calls: int = 3000, rounds: int = 5) -> dict[str, Any]:
    """Median µs per call per contender and concurrency, and per store operation."""
    samples: dict[str, list[dict[str, float]]] = {}
    ops: dict[str, list[float]] = {"memory": [], "redis": []}
    for _ in range(rounds):
        for level in LEVELS:
            for kind in CONTENDERS:
                samples.setdefault(f"{kind}@{level}", []).append(await _one(kind, redis_url, calls, level))
        for kind in ops:
            ops[kind].append(await _store_op(kind, redis_url, calls))
    cells = {
        key: {
            "wall_us": statistics.median(s["wall_us"] for s in runs),
            "cpu_us": statistics.median(s["cpu_us"] for s in runs),
            "wall_low": min(s["wall_us"] for s in runs),
            "wall_high": max(s["wall_us"] for s in runs),
        }
        for key, runs in samples.items()
    }
    return {
        "load": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "date": dt.datetime.now(dt.UTC).astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "calls": calls,
        "rounds": rounds,
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "cells": cells,
        "store_op_us": {kind: statistics.median(v) for kind, v in ops.items()},
    }


def render(result: dict[str, Any], *, smoke: bool = False) -> str:
    """The Markdown of ``docs/benchmarks-redis.md``."""
    cells = result["cells"]
    lines = [
        "# Benchmarks: the rate limiter on Redis",
        "",
        f"<!-- Generated by `python -m bench.redis_limiter` (also run by `make bench`) on {result['date']}. "
        "Do not edit by hand. -->",
        "",
    ]
    if smoke:
        lines += ["**Smoke run**: a handful of calls to check the harness; the numbers mean nothing.", ""]
    lines += [
        "What a shared limiter costs per call when its slots live in Redis instead of process memory. "
        "One `tether.Client` with `Rate('1000000/second', shared='bench')` (consulted on every call, "
        "never waiting), no retry, no breaker, sends `GET /x` to an in-process fake transport, so the "
        "network to the API is not part of the figure; Redis runs on loopback on the same machine "
        f"({result['cpu_count']} CPUs). Median of {result['rounds']} rounds of {result['calls']:,} "
        "calls; wall time per call (the latency a caller sees, or 1/throughput at c=32) with the "
        "fastest and slowest round, and the client's own CPU per call.",
        "",
        "| contender | " + " | ".join(f"c={c} µs/call [min–max] | c={c} CPU µs/call" for c in LEVELS) + " |",
        "|---|" + "---:|---:|" * len(LEVELS),
    ]
    names = {
        "none": "no limiter",
        "memory": "Rate on the memory store",
        "redis": "Rate on Redis (`RedisStore`)",
    }
    for kind in CONTENDERS:
        row = [names[kind]]
        for level in LEVELS:
            cell = cells[f"{kind}@{level}"]
            row += [
                f"{cell['wall_us']:,.0f} [{cell['wall_low']:,.0f}–{cell['wall_high']:,.0f}]",
                f"{cell['cpu_us']:,.0f}",
            ]
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "| added by Redis (vs the memory store) | " + " | ".join(["µs/call", "ratio"] * len(LEVELS)) + " |",
    ]
    lines.append("|---|" + "---:|---:|" * len(LEVELS))
    row = ["Rate on Redis − Rate on memory"]
    for level in LEVELS:
        memory, redis = cells[f"memory@{level}"]["wall_us"], cells[f"redis@{level}"]["wall_us"]
        row += [f"+{redis - memory:,.0f} (c={level})", f"{redis / memory:.2f}×"]
    lines.append("| " + " | ".join(row) + " |")
    op = result["store_op_us"]
    lines += [
        "",
        f"The store operation alone (`rate_acquire`, one caller): {op['memory']:,.1f} µs on the memory "
        f"store, {op['redis']:,.0f} µs on Redis ({op['redis'] / op['memory']:,.0f}×): one loopback "
        "round trip plus the Lua script. At c=32 the round trips overlap, so the added wall time per "
        "call is smaller than one round trip; the added client CPU is what redis-py spends per "
        "command. Against a real API (milliseconds away) the added time is a small share of a call; "
        "on a Redis across the network, add that network's round trip.",
        "",
    ]
    if result.get("load") is not None:
        load = ", ".join(f"{x:g}" for x in result["load"])
        lines += [f"Load average (1, 5, 15 min) at the end of the run: {load}.", ""]
    return "\n".join(lines)


def write_report(result: dict[str, Any], out_dir: Path, *, smoke: bool = False) -> Path:
    """Write ``benchmarks-redis.md`` and make sure ``benchmarks.md`` links to it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = out_dir / DOC_NAME
    doc.write_text(render(result, smoke=smoke), encoding="utf-8")
    main_doc = out_dir / "benchmarks.md"
    if main_doc.exists():
        link_section(main_doc)
    return doc


def link_section(main_doc: Path) -> None:
    """Append the "Redis limiter" section (a fixed pointer to ``benchmarks-redis.md``) to the main
    report, once. Fixed text, so re-rendering the main report from its raw results gives the same
    file; ``bench/run.py`` calls it whenever it writes ``benchmarks.md``."""
    text = main_doc.read_text(encoding="utf-8")
    if SECTION in text:
        return
    section = (
        f"{SECTION}\n\n"
        "What a shared `Rate` adds per call when its slots live in Redis instead of process memory "
        f"(one loopback round trip and a Lua script): see [{DOC_NAME}]({DOC_NAME}), written by "
        "`python -m bench.redis_limiter` (which `make bench` runs after this table).\n"
    )
    main_doc.write_text(text.rstrip("\n") + "\n\n" + section, encoding="utf-8")


def run_after_bench(out_dir: Path, *, smoke: bool = False) -> None:
    """The hook ``bench/run.py`` calls at the end of ``main``: never fails the main benchmark."""
    try:
        with running_redis(os.environ.get("TETHER_BENCH_REDIS_URL")) as url:
            result = asyncio.run(measure(url, calls=200 if smoke else 3000, rounds=1 if smoke else 5))
        doc = write_report(result, out_dir, smoke=smoke)
        print(f"wrote {doc}", file=sys.stderr)
    except Exception as exc:  # a missing redis-server must not cost the main report
        print(f"Redis limiter benchmark skipped: {type(exc).__name__}: {exc}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.redis_limiter", description=__doc__.split("\n")[0])
    p.add_argument("--calls", type=int, default=3000, help="calls per measurement (default 3000)")
    p.add_argument("--rounds", type=int, default=5, help="rounds, contenders alternating (default 5)")
    p.add_argument("--redis-url", default=os.environ.get("TETHER_BENCH_REDIS_URL"), help="use this Redis")
    p.add_argument(
        "--out-dir", type=Path, default=ROOT / "docs", help="where the Markdown goes (default docs/)"
    )
    p.add_argument("--smoke", action="store_true", help="200 calls, 1 round: check the harness")
    args = p.parse_args(argv)
    calls, rounds = (200, 1) if args.smoke else (args.calls, args.rounds)
    with running_redis(args.redis_url) as url:
        result = asyncio.run(measure(url, calls=calls, rounds=rounds))
    doc = write_report(result, args.out_dir, smoke=args.smoke)
    for kind in CONTENDERS:
        for level in LEVELS:
            cell = result["cells"][f"{kind}@{level}"]
            print(f"{kind:>6} c={level:<3} {cell['wall_us']:8.1f} µs/call  CPU {cell['cpu_us']:8.1f} µs/call")
    print(f"wrote {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
