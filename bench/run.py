"""The command line: ``python -m bench [--rounds N] [--duration S] [--smoke] ...``."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from bench.clients import CLIENTS
from bench.dataapi_load import link_section as dataapi_link
from bench.dataapi_load import run_after_bench as run_dataapi_load
from bench.measure import Measurement, measure_once
from bench.redis_limiter import link_section, run_after_bench
from bench.report import RATIO_CONCURRENCY, ratios, render_markdown, summarise, write_json, write_plot
from bench.server import CapacityResult, Placement, ServerHandle, place, probe_capacity, running_server

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tether", "httpx2", "aiohttp", "httpx", "httpcore", "tenacity", "aiolimiter", "purgatory")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark tether against httpx2, aiohttp and a hand-assembled resilience stack.",
    )
    p.add_argument("--rounds", type=int, default=5, help="rounds of round-robin measurements (default 5)")
    p.add_argument("--duration", type=float, default=2.5, help="seconds per measurement (default 2.5)")
    p.add_argument(
        "--requests", type=int, default=None, help="a fixed number of requests per measurement instead"
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="warm-up requests per measurement (default: 100 + 2 × concurrency)",
    )
    p.add_argument(
        "--concurrency", default="1,32,256", help="comma-separated concurrency levels (default 1,32,256)"
    )
    p.add_argument(
        "--clients",
        default=",".join(c.key for c in CLIENTS),
        help="comma-separated client keys, in round-robin order (default a,b,c,d,e,f)",
    )
    p.add_argument("--probe-seconds", type=float, default=2.0, help="server capacity probe, per mode")
    p.add_argument("--out-dir", type=Path, default=None, help="where benchmarks.md/.png go (default docs/)")
    p.add_argument(
        "--results-dir", type=Path, default=None, help="where the raw JSON goes (default bench/results/)"
    )
    p.add_argument(
        "--render",
        type=Path,
        default=None,
        metavar="RESULTS.json",
        help="measure nothing: rewrite benchmarks.md/.png from a raw results file of an earlier run",
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help="a tiny run to check the harness: 1 round, 50 requests per measurement, output to "
        "bench/results/smoke/ unless --out-dir says otherwise",
    )
    return p


def _ints(text: str) -> list[int]:
    values = [int(x) for x in text.split(",") if x.strip()]
    if not values or any(v < 1 for v in values):
        raise SystemExit(f"--concurrency needs positive whole numbers, got {text!r}")
    return values


def _package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


async def _run(
    args: argparse.Namespace,
    server: ServerHandle,
    keys: Sequence[str],
    levels: Sequence[int],
    pool: int,
) -> tuple[list[CapacityResult], list[Measurement]]:
    _log(f"server {server.url} (pid {server.pid}); probing its capacity …")
    capacity = await probe_capacity(server, seconds=args.probe_seconds)
    for cap in capacity:
        cpu = "n/a" if cap.server_cpu is None else f"{cap.server_cpu * 100:.0f} %"
        _log(f"  capacity {cap.mode}: {cap.per_second:,.0f} responses/s (server CPU {cpu})")
    specs = {c.key: c for c in CLIENTS}
    measurements: list[Measurement] = []
    for round_no in range(1, args.rounds + 1):
        for level in levels:
            for key in keys:
                warmup = args.warmup if args.warmup is not None else 100 + 2 * level
                m = await measure_once(
                    specs[key],
                    server,
                    concurrency=level,
                    round_no=round_no,
                    pool=pool,
                    duration=args.duration,
                    requests=args.requests,
                    warmup=warmup,
                )
                measurements.append(m)
                server_cpu = "n/a" if m.server_cpu is None else f"{m.server_cpu * 100:.0f} %"
                errors = f", {m.errors} errors" if m.errors else ""
                _log(
                    f"  round {round_no} c={level:<3} ({key}) {specs[key].name:<36} "
                    f"{m.per_second:>9,.0f} req/s {m.cpu_us_per_request:>7,.0f} µs/req "
                    f"server {server_cpu}{errors}"
                )
    return capacity, measurements


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.render is not None:
        return _rerender(args.render, args.out_dir or ROOT / "docs")
    if args.smoke:
        args.rounds = 1
        args.requests = args.requests or 50
        args.warmup = 5 if args.warmup is None else args.warmup
        args.probe_seconds = min(args.probe_seconds, 0.2)
    if args.rounds < 1:
        raise SystemExit("--rounds must be at least 1")
    keys = [k.strip() for k in args.clients.split(",") if k.strip()]
    known = {c.key for c in CLIENTS}
    if not keys or any(k not in known for k in keys):
        raise SystemExit(f"--clients takes keys from {', '.join(sorted(known))}, got {args.clients!r}")
    levels = _ints(args.concurrency)
    pool = max(256, *levels)
    out_dir: Path = args.out_dir or (ROOT / "bench" / "results" / "smoke" if args.smoke else ROOT / "docs")
    results_dir: Path = args.results_dir or ROOT / "bench" / "results"

    placement: Placement = place()
    started = time.perf_counter()
    load_before = _loadavg()
    _log(f"{placement.note}; load average {load_before}")
    with running_server(placement) as server:
        capacity, measurements = asyncio.run(_run(args, server, keys, levels, pool))
    load_after = _loadavg()
    now = dt.datetime.now(dt.UTC).astimezone()

    tether_clients: dict[str, Any] = {}
    for m in measurements:
        if m.info and m.client not in tether_clients:
            tether_clients[m.client] = m.info
    meta: dict[str, Any] = {
        "date": now.strftime("%Y-%m-%d %H:%M %Z"),
        "smoke": bool(args.smoke),
        "rounds": args.rounds,
        "duration": args.duration,
        "requests": args.requests,
        "warmup": args.warmup if args.warmup is not None else "100 + 2 × concurrency",
        "concurrency": levels,
        "clients": keys,
        "pool": pool,
        "cpu_count": placement.cpu_count,
        "placement": placement.note,
        "platform": platform.platform(),
        "python": sys.version.split()[0] + f" ({platform.python_implementation()})",
        "packages": _package_versions(),
        "load_before": load_before,
        "load_after": load_after,
        "elapsed": time.perf_counter() - started,
        "tether_clients": tether_clients,
    }

    stamp = now.strftime("%Y%m%d-%H%M%S")
    json_path = results_dir / f"bench-{'smoke-' if args.smoke else ''}{stamp}.json"
    write_json(json_path, meta=meta, measurements=measurements, capacity=capacity)
    doc, plot = _write_report(out_dir, meta, measurements, capacity)
    _print_summary(measurements, levels, keys)
    print(f"\nwrote {doc}, {plot} and {json_path}")
    run_after_bench(out_dir, smoke=bool(args.smoke))  # docs/benchmarks-redis.md + its link
    run_dataapi_load(out_dir, smoke=bool(args.smoke))  # docs/benchmarks-dataapi.md + its link
    return 0


def _write_report(
    out_dir: Path,
    meta: dict[str, Any],
    measurements: Sequence[Measurement],
    capacity: Sequence[CapacityResult],
) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    plot = out_dir / "benchmarks.png"
    write_plot(plot, meta=meta, measurements=measurements)
    doc = out_dir / "benchmarks.md"
    doc.write_text(
        render_markdown(meta=meta, measurements=measurements, capacity=capacity, plot_name=plot.name)
    )
    link_section(doc)  # a pointer to benchmarks-redis.md (bench/redis_limiter.py)
    dataapi_link(doc)  # and to benchmarks-dataapi.md (bench/dataapi_load.py)
    return doc, plot


def _rerender(path: Path, out_dir: Path) -> int:
    raw = json.loads(path.read_text())
    meta = raw["meta"]
    measurements = [Measurement(**m) for m in raw["measurements"]]
    capacity = [CapacityResult(**c) for c in raw["capacity"]]
    doc, plot = _write_report(out_dir, meta, measurements, capacity)
    _print_summary(measurements, meta["concurrency"], meta["clients"])
    print(f"\nwrote {doc} and {plot} from {path}")
    return 0


def _print_summary(measurements: Sequence[Measurement], levels: Sequence[int], keys: Sequence[str]) -> None:
    cells = summarise(measurements)
    names = {c.key: c.name for c in CLIENTS}
    print(f"\n{'client':<42}" + "".join(f"{'c=' + str(c) + ' req/s':>24}{'µs/req':>9}" for c in levels))
    for key in keys:
        row = f"({key}) {names[key]:<38}"
        for level in levels:
            cell = cells.get((key, level))
            if cell is None:
                row += f"{'–':>24}{'–':>9}"
            else:
                span = f"{cell.median:,.0f} [{cell.low:,.0f}–{cell.high:,.0f}]"
                row += f"{span:>24}{cell.cpu_us:>9,.0f}"
        print(row)
    print(f"\nratios at concurrency {RATIO_CONCURRENCY}:")
    for r in ratios(cells):
        value = "n/a" if r.value is None else f"{r.value:.2f}×"
        cpu = "n/a" if r.cpu_value is None else f"{r.cpu_value:.2f}×"
        print(
            f"  {r.numerator}/{r.denominator} = {value:>7}  (goal ≥ {r.goal:g}×)  {r.verdict:<5}"
            f"  CPU-cost ratio {cpu}"
        )
