"""``tether fetch SPEC ENDPOINT --each FILE --out OUT``: the bulk job.

One call per input row (CSV with a header, JSON Lines, or a JSON array of objects), through the
integration's whole pipeline (so the spec's rate limit paces it), with a live progress bar and a
summary. Results go to ``OUT`` as JSON Lines (``{"input": …, "data": …}``), one complete line
written and flushed per call, so the job is **resumable**: run it again and rows already in
``OUT`` are skipped (a line cut short by a crash is dropped first). Failed rows go to
``OUT.failures.jsonl`` with their error (and to the spec's DLQ when its endpoint is marked).
A call refused by an open circuit waits until the circuit half-opens and goes again.
Exit code 0 when every row is fetched, 2 when some failed (see the failures file), 1 on an error
that stopped the job.
"""

from __future__ import annotations

import asyncio
import csv
import json
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from tether.cli import app
from tether.errors import CircuitOpenError, SpecError, TetherError
from tether.integration import Integration
from tether.integration import open as open_integration

__all__ = ["FetchReport", "read_inputs", "run_fetch"]

_MAX_CIRCUIT_WAITS = 20


@dataclass
class FetchReport:
    """What one run did."""

    total: int = 0
    skipped: int = 0
    succeeded: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    circuit_waits: int = 0
    elapsed: float = 0.0


def read_inputs(path: Path) -> list[dict[str, Any]]:
    """The rows of ``path``: CSV (header row), JSON Lines (``.jsonl`` / ``.ndjson``) or a JSON array."""
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read the input file {path}: {exc.strerror}") from None
    if suffix == ".csv":
        return [dict(row) for row in csv.DictReader(text.splitlines())]
    if suffix in (".jsonl", ".ndjson"):
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                rows.append(_object(_json(line, f"{path}:{n}"), f"{path}:{n}"))
        return rows
    if suffix == ".json":
        data = _json(text, str(path))
        if not isinstance(data, list):
            raise SpecError(f"{path}: a JSON input file holds an array of objects")
        return [_object(item, f"{path}[{i}]") for i, item in enumerate(data)]
    raise SpecError(f"input file {path}: use .csv, .jsonl / .ndjson or .json")


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise SpecError(f"{where}: not valid JSON ({exc})") from None


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SpecError(f"{where}: each input is an object of parameters, got {type(value).__name__}")
    return value


def _key(row: Mapping[str, Any]) -> str:
    return json.dumps(row, sort_keys=True, separators=(",", ":"), default=str)


def _done_keys(out: Path) -> set[str]:
    """Inputs already written to ``out``; a last line cut short by a crash is removed first."""
    if not out.exists():
        return set()
    raw = out.read_bytes()
    complete = raw[: raw.rfind(b"\n") + 1]
    if len(complete) != len(raw):
        with out.open("r+b") as fh:
            fh.truncate(len(complete))
    done = set()
    for line in complete.decode("utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            done.add(_key(record["input"]))
    return done


def _write_line(fh: IO[str], record: Mapping[str, Any]) -> None:
    fh.write(json.dumps(record, default=str, separators=(",", ":")) + "\n")  # one write per line
    fh.flush()


async def run_fetch(
    integration: Integration,
    endpoint: str,
    rows: list[dict[str, Any]],
    out: Path,
    *,
    concurrency: int = 8,
    progress: Progress | None = None,
) -> FetchReport:
    """Call ``endpoint`` once per row not yet in ``out``; results to ``out``, failures beside it."""
    report = FetchReport(total=len(rows))
    done = _done_keys(out)
    todo = [row for row in rows if _key(row) not in done]
    report.skipped = len(rows) - len(todo)
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for row in todo:
        queue.put_nowait(row)
    waits: Counter[str] = Counter()
    failures_path = out.with_name(out.name + ".failures.jsonl")
    started = time.perf_counter()
    task: TaskID | None = None
    if progress is not None:
        task = progress.add_task("fetch", total=len(rows), completed=report.skipped, ok=0, failed=0)

    with out.open("a", encoding="utf-8") as results, failures_path.open("a", encoding="utf-8") as failures:

        async def worker() -> None:
            while True:
                try:
                    row = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                try:
                    result = await integration.call(endpoint, **row)
                except CircuitOpenError as exc:
                    key = _key(row)
                    waits[key] += 1
                    if waits[key] <= _MAX_CIRCUIT_WAITS:
                        report.circuit_waits += 1
                        await asyncio.sleep(min(exc.retry_after or 1.0, 30.0))
                        queue.put_nowait(row)
                        continue
                    _record_failure(failures, row, exc, report)
                except TetherError as exc:
                    _record_failure(failures, row, exc, report)
                else:
                    _write_line(results, {"input": row, "data": result.data})
                    report.succeeded += 1
                if progress is not None and task is not None:
                    progress.update(task, advance=1, ok=report.succeeded, failed=sum(report.failed.values()))

        await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    report.elapsed = time.perf_counter() - started
    return report


def _record_failure(fh: IO[str], row: Mapping[str, Any], exc: TetherError, report: FetchReport) -> None:
    report.failed[type(exc).__name__] += 1
    _write_line(fh, {"input": row, "error": exc.to_error_response()})


@app.command()
def fetch(
    spec: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The integration spec.")],
    endpoint: Annotated[str, typer.Argument(help="The endpoint to call once per input row.")],
    each: Annotated[
        Path, typer.Option("--each", exists=True, dir_okay=False, help="Inputs: .csv/.jsonl/.json")
    ],
    out: Annotated[
        Path, typer.Option("--out", dir_okay=False, help="Results (JSON Lines); resumes if present.")
    ],
    env: Annotated[str | None, typer.Option("--env", help="Environment (default: TETHER_ENV).")] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=1024, help="Calls in flight at once.")] = 8,
) -> None:
    """Run a resumable bulk fetch: one call per input row, paced by the spec's limits."""
    console = Console()
    try:
        rows = read_inputs(each)
        report = asyncio.run(_main(spec, endpoint, rows, out, env, concurrency, console))
    except TetherError as exc:
        Console(stderr=True).print(f"[red]error[/red]: {exc.error_code} {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from None
    failed = sum(report.failed.values())
    console.print(
        f"{report.total} inputs: {report.succeeded} fetched, {report.skipped} already done, "
        f"{failed} failed"
        + (f" ({', '.join(f'{k} {v}' for k, v in report.failed.most_common())})" if failed else "")
        + f"; {report.circuit_waits} waits for an open circuit; {report.elapsed:.1f}s"
    )
    if failed:
        console.print(f"failures: {out.with_name(out.name + '.failures.jsonl')}")
        raise typer.Exit(2)


async def _main(
    spec: Path,
    endpoint: str,
    rows: list[dict[str, Any]],
    out: Path,
    env: str | None,
    concurrency: int,
    console: Console,
) -> FetchReport:
    progress = Progress(
        TextColumn(f"[bold]{endpoint}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("ok {task.fields[ok]}  failed {task.fields[failed]}"),
        TimeElapsedColumn(),
        console=console,
    )
    async with open_integration(spec, env=env) as integration:
        if endpoint not in integration.spec.endpoints:
            known = ", ".join(sorted(integration.spec.endpoints))
            raise SpecError(f"no endpoint {endpoint!r} in {spec}; endpoints: {known}")
        with progress:
            return await run_fetch(
                integration, endpoint, rows, out, concurrency=concurrency, progress=progress
            )
