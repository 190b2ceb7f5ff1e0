"""``tether demo``: the main job — a bulk fetch over the bundled spec — against a flaky provider, offline.

1. Starts the bundled REQ-001 mock provider (``tether.dataapi``) on loopback, enforcing its rate
   limit and answering a seeded share of requests with faults (5xx, 429 with ``Retry-After``,
   connection resets).
2. Runs the bulk job (``tether.bulk``, what ``tether fetch`` runs) over the bundled spec: the
   identifiers are listed from the paginated ``list_identifiers`` endpoint (fan-out), and each
   one's daily history is fetched page by page from ``get_historical``.
3. Stops the job abruptly mid-way, as a crash would, and runs it again: it resumes from the
   last completed page of each identifier.
4. Checks the output against what the provider serves: every record once, none missing.

The summary says what was asked, what the provider did (faults by kind), what tether did about
each, and whether every record arrived exactly once.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Final

import typer
from rich.console import Console
from rich.table import Table

import tether
from tether import events as ev
from tether.bulk import FetchJob, JobOptions, JobReport, Parent, parse_destination
from tether.cli import app
from tether.cli._fetch import quiet_logs, run_job
from tether.dataapi._mock import DataAPIMock, value_for
from tether.events import EventRecorder
from tether.mock import Chaos, Fault
from tether.pipeline.breaker import Breaker
from tether.pipeline.retry import Retry

__all__ = ["DemoReport", "run_demo"]

SPEC: Final = Path(__file__).resolve().parents[1] / "dataapi" / "spec.yaml"
START: Final = date(2024, 1, 1)
END: Final = date(2024, 12, 31)
_FAULTS: Final = (
    ("HTTP 500", Fault.status(500)),
    ("HTTP 502", Fault.status(502)),
    ("HTTP 503", Fault.status(503)),
    ("HTTP 429 + Retry-After", Fault.rate_limited(retry_after=1)),
    ("connection reset", Fault.reset()),
)


@dataclass
class DemoReport:
    """What one demo run did, for the summary and for tests."""

    identifiers: int = 0
    expected: int = 0
    written: int = 0
    duplicates: int = 0
    missing: int = 0
    wrong_values: int = 0
    provider: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    events: Counter[str] = field(default_factory=Counter)
    first: JobReport | None = None
    second: JobReport | None = None
    written_before_crash: int = 0
    elapsed: float = 0.0

    @property
    def exactly_once(self) -> bool:
        return self.written == self.expected and not (self.duplicates or self.missing or self.wrong_values)


def _fault_kind(status: int | None, fault: str) -> str:
    if fault == "reset" or status is None:
        return "connection reset"
    if status == 429:
        return "HTTP 429 + Retry-After"
    return f"HTTP {status}" if status >= 400 else "answered"


async def run_demo(
    *, seed: int = 7, fault_rate: float = 0.08, console: Console | None = None, workdir: Path | None = None
) -> DemoReport:
    """Run the demo (mock provider, job, crash, resume, check) and return what happened."""
    console = console or Console(stderr=True)
    report = DemoReport()
    started = time.monotonic()
    recorder = EventRecorder()
    chaos = Chaos(rate=fault_rate, faults=[f for _, f in _FAULTS], seed=seed)
    folder = workdir or Path(tempfile.mkdtemp(prefix="tether-demo-"))
    out = folder / "history.jsonl"
    for stale in (out, out.with_name(out.name + ".state.db"), out.with_name(out.name + ".failures.jsonl")):
        stale.unlink(missing_ok=True)
    environ = {"EXTERNAL_API_KEY": "demo-" + secrets.token_hex(8), "EXTERNAL_API_RATE_TIER": "enterprise"}
    server = DataAPIMock(tier="enterprise", enforce_rate_limit=True, chaos=chaos)
    async with server:
        overrides: dict[str, Any] = {
            "base_url": server.base_url,
            "listeners": [recorder],
            # Demo-sized waits (the bundled spec waits 1 s, 2 s, 4 s … and opens for 30 s).
            "retry": Retry(attempts=6, initial=0.05, max_delay=1.0),
            "breaker": Breaker(failures=5, window=10, open_for=1.0),
        }
        options = JobOptions(concurrency=6, params={"start": START.isoformat(), "end": END.isoformat()})
        parent = Parent("list_identifiers", {"identifier": "identifier"})
        async with tether.open(SPEC, environ=environ, **overrides) as api:
            first = FetchJob(
                api, "get_historical", parse_destination(str(out)), parent=parent, options=options
            )
            crash = asyncio.ensure_future(first.run())
            while first.progress.pages < 12 and not crash.done():
                await asyncio.sleep(0.02)
            crash.cancel()  # abruptly, mid-page: committed pages stay, the rest is redone
            await asyncio.gather(crash, return_exceptions=True)
            report.written_before_crash = first.progress.records
            console.print(
                f"[bold]crash![/bold] the job was stopped abruptly after {first.progress.pages} pages "
                f"({first.progress.records} records committed); running it again resumes there."
            )
            second = FetchJob(
                api, "get_historical", parse_destination(str(out)), parent=parent, options=options
            )
            report.second = await run_job(
                second, console=console, on_terminal=console.is_terminal, progress_every=2.0
            )
        for entry in server.log:
            report.requests += 1
            report.provider[_fault_kind(entry.status, entry.fault)] += 1
    report.events = Counter(e.name for e in recorder.events)
    _check(out, server.catalog, report)
    report.elapsed = time.monotonic() - started
    return report


def _check(out: Path, catalog: tuple[str, ...], report: DemoReport) -> None:
    days = (END - START).days + 1
    report.identifiers = len(catalog)
    report.expected = len(catalog) * days
    seen: Counter[tuple[str, str]] = Counter()
    for line in out.read_text(encoding="utf-8").splitlines():
        doc = json.loads(line)
        key = (doc["input"]["identifier"], doc["data"]["date"])
        seen[key] += 1
        if doc["data"]["value"] != value_for(key[0], date.fromisoformat(key[1])):
            report.wrong_values += 1
    report.written = sum(seen.values())
    report.duplicates = sum(n - 1 for n in seen.values() if n > 1)
    wanted = {(i, (START + timedelta(days=n)).isoformat()) for i in catalog for n in range(days)}
    report.missing = len(wanted - set(seen))


def _summary(report: DemoReport, console: Console) -> None:
    asked = Table(title="What was asked", show_header=False, title_justify="left")
    asked.add_row(
        "list the identifiers", f"{report.identifiers}, from list_identifiers (2 pages of up to 10)"
    )
    asked.add_row("for each, its daily history", f"{START} … {END}: 366 records, 4 pages of 100")
    asked.add_row("records in all", str(report.expected))
    console.print(asked)

    provider = Table(title="What the provider did", title_justify="left")
    provider.add_column("answer")
    provider.add_column("requests", justify="right")
    provider.add_column("what tether did about it")
    what = {
        "answered": "kept the page, with its checkpoint",
        "HTTP 500": "retried after a backoff",
        "HTTP 502": "retried after a backoff",
        "HTTP 503": "retried after a backoff",
        "HTTP 429 + Retry-After": "waited as long as the server asked, then retried",
        "connection reset": "retried on a new connection",
    }
    for kind, n in sorted(report.provider.items(), key=lambda kv: (kv[0] != "answered", kv[0])):
        provider.add_row(kind, str(n), what.get(kind, ""))
    provider.add_row("[bold]total", f"[bold]{report.requests}", "")
    console.print(provider)

    did = Table(title="What tether did", show_header=False, title_justify="left")
    did.add_row("retries", str(report.events.get(ev.RETRY_SCHEDULED, 0)))
    did.add_row("waits to stay under the rate limit", str(report.events.get(ev.LIMITER_QUEUED, 0)))
    did.add_row(
        "circuit opened / closed",
        f"{report.events.get(ev.BREAKER_OPENED, 0)} / {report.events.get(ev.BREAKER_CLOSED, 0)}",
    )
    second = report.second
    if second is not None:
        did.add_row("rows waited for an open circuit", str(second.progress.circuit_waits))
        did.add_row("rows failed", str(second.progress.failed))
    did.add_row(
        "crash, then resume",
        f"{report.written_before_crash} records kept; the rest fetched after the restart",
    )
    console.print(did)

    verdict = (
        f"[bold green]every record arrived exactly once[/bold green]: {report.written} of {report.expected}, "
        f"0 duplicates, 0 missing, values as the provider served them ({report.elapsed:.1f}s)"
        if report.exactly_once
        else f"[bold red]NOT exactly once[/bold red]: {report.written} written of {report.expected}, "
        f"{report.duplicates} duplicates, {report.missing} missing, {report.wrong_values} wrong values"
    )
    console.print(verdict)


@app.command()
def demo(
    seed: int = typer.Option(7, help="Seed of the mock provider's faults."),
    fault_rate: float = typer.Option(0.08, min=0.0, max=0.5, help="Share of requests answered with a fault."),
) -> None:
    """Run the main job offline: a bulk fetch of a flaky mock provider, a crash, a resume, a check."""
    console = Console()
    quiet_logs()
    console.print(
        "[bold]tether demo[/bold]: a mock provider on loopback serves the bundled REQ-001 API with its "
        f"rate limit, and answers {fault_rate:.0%} of requests with a fault (5xx, 429, connection reset)."
    )
    report = asyncio.run(run_demo(seed=seed, fault_rate=fault_rate, console=console))
    _summary(report, console)
    if not report.exactly_once:
        raise typer.Exit(1)
