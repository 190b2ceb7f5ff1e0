"""``tether demo``: the main job on the embedded default, offline.

Starts the fault-injecting mock provider on loopback, scripts a flaky API on it (transient 5xx,
429s with Retry-After, connection resets, slow answers, and one endpoint that is down for good),
and runs a batch of calls through a ``tether.Client`` with the resilience pipeline on. It shows
a live progress bar, then a summary: what the caller saw, what the provider received, and what
the policies did (retries, waits, breaker transitions).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from tether import events as ev
from tether._config import Timeouts
from tether.cli import app
from tether.client import Client
from tether.errors import CircuitOpenError, TetherError
from tether.events import EventRecorder
from tether.mock import Chaos, Fault, FaultServer
from tether.pipeline.breaker import Breaker
from tether.pipeline.rate import Rate
from tether.pipeline.retry import Retry

__all__ = ["run_demo"]

_MAX_DEFERRALS = 5


@dataclass
class DemoReport:
    """What one demo run did, for the summary and for tests."""

    calls: int = 0
    succeeded: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    upstream_statuses: Counter[str] = field(default_factory=Counter)
    upstream_requests: int = 0
    events: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0
    deferred: int = 0


def _script(server: FaultServer, seed: int) -> None:
    transient = [
        Fault.status(500),
        Fault.status(502),
        Fault.status(503),
        Fault.rate_limited(retry_after=1),
        Fault.reset(),
        Fault.delay(1.5),  # longer than the demo's attempt timeout
    ]
    # Healthy at first, then an outage of 12 answers (the breaker should open, fail fast, probe
    # after its open time and close again), then healthy; transient faults throughout.
    script = [Fault.echo()] * 40 + [Fault.status(503)] * 12 + [Fault.echo()]
    server.route(
        "GET",
        "/v1/data/{identifier}",
        *script,
        chaos=Chaos(rate=0.1, faults=transient, seed=seed),
    )


async def run_demo(
    *, calls: int = 120, concurrency: int = 8, seed: int = 7, console: Console | None = None
) -> DemoReport:
    """Run the demo against an in-process mock provider and return what happened."""
    report = DemoReport()
    recorder = EventRecorder()
    async with FaultServer() as server:
        _script(server, seed)
        client = Client(
            f"{server.url}/v1",
            service="demo-provider",
            timeout=Timeouts(connect=1.0, read=1.0, attempt=1.0, total=20.0),
            retry=Retry(attempts=6, initial=0.05, max_delay=1.0),
            breaker=Breaker(failures=8, window=10, open_for=1.0),
            rate=Rate("40/second", burst=5),
            listeners=[recorder],
        )
        paths = [f"/data/ITEM-{i:03d}" for i in range(calls)]
        queue: asyncio.Queue[str] = asyncio.Queue()
        deferrals: Counter[str] = Counter()
        for p in paths:
            queue.put_nowait(p)
        started = time.perf_counter()

        progress = Progress(
            TextColumn("[bold]calls"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("ok {task.fields[ok]}  failed {task.fields[failed]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )

        async def worker(task_id: TaskID) -> None:
            # What a bulk job does: a call refused by an open circuit waits until the circuit
            # half-opens and goes again, instead of being lost.
            while True:
                try:
                    path = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                t0 = time.perf_counter()
                try:
                    await client.get(path, endpoint="get_data")
                    report.succeeded += 1
                except CircuitOpenError as exc:
                    deferrals[path] += 1
                    if deferrals[path] <= _MAX_DEFERRALS:
                        report.deferred += 1
                        await asyncio.sleep(exc.retry_after or 0.5)
                        queue.put_nowait(path)
                        continue
                    report.failed[type(exc).__name__] += 1
                except TetherError as exc:
                    report.failed[type(exc).__name__] += 1
                report.latencies.append(time.perf_counter() - t0)
                report.calls += 1
                progress.update(task_id, advance=1, ok=report.succeeded, failed=sum(report.failed.values()))

        async with client:
            with progress:
                task_id = progress.add_task("calls", total=len(paths), ok=0, failed=0)
                await asyncio.gather(*(worker(task_id) for _ in range(concurrency)))
        report.elapsed = time.perf_counter() - started
        for entry in server.log:
            report.upstream_requests += 1
            answer = str(entry.status) if entry.status is not None else f"no answer ({entry.fault})"
            report.upstream_statuses[answer] += 1
    report.events = Counter(e.name for e in recorder.events)
    return report


def _summary(report: DemoReport, console: Console) -> None:
    table = Table(title="What the caller saw", show_header=True)
    table.add_column("outcome")
    table.add_column("calls", justify="right")
    table.add_row("succeeded", str(report.succeeded))
    table.add_row("waited for an open circuit, then went again", str(report.deferred))
    for name, n in report.failed.most_common():
        table.add_row(f"failed: {name}", str(n))
    console.print(table)

    upstream = Table(title="What the provider received", show_header=True)
    upstream.add_column("answer")
    upstream.add_column("requests", justify="right")
    for status, n in sorted(report.upstream_statuses.items()):
        upstream.add_row(status, str(n))
    upstream.add_row("[bold]total", f"[bold]{report.upstream_requests}")
    console.print(upstream)

    policies = Table(title="What the policies did", show_header=True)
    policies.add_column("event")
    policies.add_column("count", justify="right")
    for name in (
        ev.RETRY_SCHEDULED,
        ev.RETRY_GAVE_UP,
        ev.LIMITER_QUEUED,
        ev.LIMITER_PAUSED,
        ev.BREAKER_OPENED,
        ev.BREAKER_HALF_OPENED,
        ev.BREAKER_CLOSED,
        ev.BREAKER_REJECTED,
        ev.DEADLINE_EXCEEDED,
    ):
        policies.add_row(name, str(report.events.get(name, 0)))
    console.print(policies)

    lat = sorted(report.latencies)
    p50 = statistics.median(lat) if lat else 0.0
    p95 = lat[int(0.95 * (len(lat) - 1))] if lat else 0.0
    console.print(
        f"{report.calls} calls in {report.elapsed:.1f}s · latency p50 {p50 * 1000:.0f} ms, "
        f"p95 {p95 * 1000:.0f} ms · every call ended in a result or a typed error"
    )


@app.command()
def demo(
    calls: int = typer.Option(120, min=1, max=100_000, help="How many calls to make."),
    concurrency: int = typer.Option(8, min=1, max=1024, help="How many calls in flight at once."),
    seed: int = typer.Option(7, help="Seed of the mock provider's fault sequence."),
) -> None:
    """Run the main job offline: a flaky mock provider, the resilience pipeline, a summary."""
    console = Console()
    console.print(
        "[bold]tether demo[/bold]: a mock provider on loopback answers 10% of calls with a fault "
        "(5xx, 429 + Retry-After, reset, slow answer), and goes down for a while mid-run."
    )
    report = asyncio.run(run_demo(calls=calls, concurrency=concurrency, seed=seed, console=console))
    _summary(report, console)
