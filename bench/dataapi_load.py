"""The REQ-001 client under load: ``python -m bench.dataapi_load [--duration 60] [--scale 20]``.

One client instance (its own process, so its CPU time and memory are its own) is built exactly as
the data API configuration file says (``config/external_api_client.yaml``: PREMIUM tier, Redis
cache, the key from Secret Manager, HTTP/2 where offered) and driven for ``--duration`` seconds
of real time against the bundled mock provider. The premium limits are scaled by ``--scale`` so a
minute's worth of behaviour fits in seconds (75/min × 20 = 1500/min); the breaker's and the
cache's times stay as configured. The mix, per worker: 80 % single ``get_data`` (80 % of those
on ten hot identifiers), 10 % ``get_data_batch`` of 10, 10 % ``get_historical`` of a year. The
mock answers 2 % of data requests with a 503 (retried), and for ``--outage`` seconds every data
request (the breaker opens; stale cache entries answer; it must recover within 60 s).

The report (``docs/benchmarks-dataapi.md``, linked from ``docs/benchmarks.md``) gives the service
levels the client measured (per operation p50/p95/p99, error rate, retry success rate, cache hit
rate, breaker recovery, each beside its target), the instance's CPU share (CPU seconds / wall
seconds, one core = 100 %) and peak RSS against 20 % and 512 MB, and what ``tether status
specs/dataapi.yaml`` prints from the shared state store afterwards. ``make bench`` runs it after
the main harness; the Redis is a ``redis-server`` started on a free port for the run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import json
import os
import random
import resource
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.redis_limiter import running_redis

__all__ = ["SECTION", "main", "render", "run_after_bench"]

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "external_api_client.yaml"
SPEC = ROOT / "specs" / "dataapi.yaml"
DOC_NAME = "benchmarks-dataapi.md"
SECTION = "## REQ-001 client under load"
#: Per instance, the requirement's resource limits.
CPU_TARGET = 0.20
RSS_TARGET = 512 * 1000**2
PROJECT, SECRET = "my-project-prod", "external_api_key_prod"
KEY = "sk-bench-premium-key"
HOT = [f"HOT-{i:03d}" for i in range(10)]
COLD = [f"ITEM-{i:03d}" for i in range(100)]


# --- the client instance (a child process) ------------------------------------------------------


async def _instance(cfg: dict[str, Any]) -> dict[str, Any]:
    from tether.dataapi import DataAPIClient
    from tether.errors import TetherError

    client = DataAPIClient.from_config(CONFIG, environ={**os.environ, **cfg["environ"]})
    await client.connect()
    rng = random.Random(cfg["seed"])
    outcomes: Counter[str] = Counter()
    deadline = time.monotonic() + cfg["duration"]
    cpu0, wall0 = time.process_time(), time.perf_counter()

    async def worker() -> None:
        while time.monotonic() < deadline:
            pick = rng.random()
            try:
                if pick < 0.8:
                    pool = HOT if rng.random() < 0.8 else COLD
                    await client.get_data(rng.choice(pool))
                    outcomes["get_data"] += 1
                elif pick < 0.9:
                    ids = rng.sample(COLD, 10)
                    _ = [item async for item in client.get_data_batch(ids)]
                    outcomes["get_data_batch"] += 1
                else:
                    start = dt.date(2024, 1, 1) + dt.timedelta(days=rng.randrange(300))
                    await client.get_historical(rng.choice(COLD), start, start + dt.timedelta(days=364))
                    outcomes["get_historical"] += 1
            except TetherError as exc:
                outcomes[f"error {exc.error_code}"] += 1
            await asyncio.sleep(rng.uniform(0.0, cfg["pause"]))

    await asyncio.gather(*(worker() for _ in range(cfg["workers"])))
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    levels = await client.service_levels()
    await client.disconnect()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    return {"outcomes": dict(outcomes), "levels": levels, "wall": wall, "cpu": cpu, "rss": peak}


# --- the run (mock, Redis, the instance, then tether status) ------------------------------------


def _secret_route(server: Any) -> None:
    from tether.mock import Fault

    data = KEY.encode()
    body = {
        "name": f"projects/{PROJECT}/secrets/{SECRET}/versions/1",
        "payload": {"data": base64.b64encode(data).decode()},
    }
    server.route(
        "GET", f"/v1/projects/{PROJECT}/secrets/{SECRET}/versions/latest:access", Fault.ok(json=body)
    )


async def _run(args: argparse.Namespace, redis_url: str) -> dict[str, Any]:
    from tether.dataapi import serve_mock
    from tether.mock import Fault
    from tether.mock._faults import Incoming

    rng = random.Random(7)
    outage = {"on": False}
    async with await serve_mock(tier="premium") as server:
        _secret_route(server)
        live = server.live("get_data")

        def flaky(incoming: Incoming) -> Fault:
            if outage["on"] or rng.random() < 0.02:
                return Fault.status(503, json={"error_code": "API_001", "error_message": "unavailable"})
            return live.answer(incoming)

        server.route("GET", "/v1/data/{identifier}", Fault.respond(flaky))
        state = f"{redis_url}?namespace=bench:"
        cfg = {
            "environ": {
                "EXTERNAL_API_URL": server.base_url,
                "EXTERNAL_API_SECRET_ENDPOINT": server.url,
                "EXTERNAL_API_REDIS_URL": f"{redis_url}?namespace=bench-cache:",
                "EXTERNAL_API_RATE_LIMIT": str(75 * args.scale),
                "TETHER_STATE_URL": state,
            },
            "duration": args.duration,
            "workers": args.workers,
            "pause": args.pause,
            "seed": 11,
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.dataapi_load",
            "--instance",
            json.dumps(cfg),
            stdout=asyncio.subprocess.PIPE,
            cwd=str(ROOT),
        )
        outage_at = args.duration * 0.3
        await asyncio.sleep(outage_at + 2.0)  # the child's start-up takes about 2 s
        outage["on"] = True
        await asyncio.sleep(args.outage)
        outage["on"] = False
        stdout, _ = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"the client instance exited with {proc.returncode}")
        result: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
        result["requests_seen_by_mock"] = len(server.log)
    env = {**os.environ, "TETHER_STATE_URL": state, "EXTERNAL_API_KEY": "unused-by-status", "COLUMNS": "120"}
    status = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", "from tether.cli import main; main()", "status", str(SPEC)],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(ROOT),
        timeout=120,
        check=False,
    )
    result["status_output"] = status.stdout if status.returncode == 0 else status.stdout + status.stderr
    result["args"] = {k: getattr(args, k) for k in ("duration", "scale", "workers", "outage", "pause")}
    return result


def render(result: dict[str, Any]) -> str:
    """The markdown report of one run."""
    from tether.telemetry._sla import sla_rows

    a = result["args"]
    cpu_share = result["cpu"] / result["wall"]
    lines = [
        "# The REQ-001 client under load",
        "",
        "<!-- Generated by `python -m bench.dataapi_load` (also run by `make bench`); do not edit. -->",
        "",
        f"One client instance built from `config/external_api_client.yaml` (PREMIUM, Redis cache, "
        f"key from Secret Manager) against the bundled mock for {a['duration']:g} s of real time, "
        f"the premium limit scaled ×{a['scale']} ({75 * a['scale']}/min + 10 burst), {a['workers']} "
        f"workers (80 % get_data, 10 % batch of 10, 10 % a year of history), 2 % of data requests "
        f"answered 503, and a {a['outage']:g} s outage of every data request "
        f"({dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}, one run on this machine).",
        "",
        "## Resources per instance",
        "",
        "| figure | measured | target | mark |",
        "|---|---|---|---|",
        f"| CPU share (CPU s / wall s, one core = 100 %) | {cpu_share * 100:.1f} % "
        f"| < {CPU_TARGET * 100:.0f} % | {'pass' if cpu_share < CPU_TARGET else 'short'} |",
        f"| peak RSS | {result['rss'] / 1000**2:.0f} MB | < {RSS_TARGET / 1000**2:.0f} MB "
        f"| {'pass' if result['rss'] < RSS_TARGET else 'short'} |",
        "",
        "## Service levels (measured by the client, every instance over the window)",
        "",
        "| operation | figure | value | target | mark |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {op} | {fig} | {val} | {tgt} | {mark} |" for op, fig, val, tgt, mark in sla_rows(result["levels"])
    ]
    outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(result["outcomes"].items()))
    lines += [
        "",
        f"Operations completed: {outcomes}. Requests the mock saw: {result['requests_seen_by_mock']}.",
        "",
        "## `tether status specs/dataapi.yaml` afterwards (from the shared state store)",
        "",
        "```",
        result["status_output"].rstrip(),
        "```",
        "",
    ]
    return "\n".join(lines)


def link_section(doc: Path) -> None:
    """Append the section pointing at the report to ``docs/benchmarks.md``, once (fixed text, so
    re-rendering the main report gives the same file)."""
    if not doc.exists():
        return
    text = doc.read_text(encoding="utf-8")
    if SECTION in text:
        return
    section = (
        f"{SECTION}\n\nThe REQ-001 client's service levels, CPU share and peak memory per instance under a "
        f"scaled PREMIUM load, and `tether status` on its spec afterwards: see [{DOC_NAME}]({DOC_NAME}), "
        "written by `python -m bench.dataapi_load` (which `make bench` runs after this table).\n"
    )
    doc.write_text(text.rstrip("\n") + "\n\n" + section, encoding="utf-8")


def run_after_bench(out_dir: Path, *, smoke: bool) -> Path:
    """The load test as ``make bench`` runs it (6 s for ``--smoke``); writes the report."""
    args = _parser().parse_args(["--duration", "6" if smoke else "60", "--outage", "1" if smoke else "3"])
    return _write(args, out_dir)


def _write(args: argparse.Namespace, out_dir: Path) -> Path:
    with running_redis(os.environ.get("TETHER_BENCH_REDIS_URL")) as redis_url:
        result = asyncio.run(_run(args, redis_url))
    out_dir.mkdir(parents=True, exist_ok=True)
    report = out_dir / DOC_NAME
    report.write_text(render(result))
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    (results / f"dataapi-load-{stamp}.json").write_text(json.dumps(result, indent=2, default=str))
    link_section(out_dir / "benchmarks.md")
    print(f"wrote {report}", file=sys.stderr)
    return report


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.dataapi_load", description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=60.0, help="seconds of real time (default 60)")
    p.add_argument("--scale", type=int, default=20, help="premium limit multiplier (default 20)")
    p.add_argument("--workers", type=int, default=6, help="concurrent workers (default 6)")
    p.add_argument("--outage", type=float, default=3.0, help="seconds every data request fails (default 3)")
    p.add_argument("--pause", type=float, default=0.5, help="longest pause between a worker's calls")
    p.add_argument(
        "--out-dir", type=Path, default=ROOT / "docs", help="where the report goes (default docs/)"
    )
    p.add_argument("--instance", default=None, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.instance is not None:
        print(json.dumps(asyncio.run(_instance(json.loads(args.instance))), default=str), flush=True)
        return 0
    report = _write(args, args.out_dir)
    print(report.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
