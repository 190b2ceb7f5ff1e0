"""``tether fetch SPEC ENDPOINT --each FILE --out OUT``: the bulk job (``tether.bulk``) on the CLI.

Every page of every input row, through the integration's whole pipeline, committed with its
checkpoint: rerun the same command after a crash, a kill or Ctrl-C and it resumes at the last
completed page. Human output (progress, summary, errors) goes to stderr; stdout carries only
records, and only with ``--out -``. Exit codes: 0 every row fetched; 1 the job could not run
(bad input, spec or output); 2 rows failed or the job stopped on failures (see the failures
file); 130 interrupted (rerun to resume).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Final

import structlog
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from tether._redact import redact_text
from tether._units import parse_duration
from tether.bulk import (
    FetchJob,
    Incremental,
    JobOptions,
    JobProgress,
    JobReport,
    Parent,
    parse_destination,
    read_inputs,
)
from tether.bulk._inputs import InputRow
from tether.cli import app
from tether.cli._call import RECORD_HELP, parse_params, recording
from tether.errors import SpecError, TetherError
from tether.integration import Integration
from tether.integration import open as open_integration
from tether.spec import load
from tether.spec._model import Spec

__all__ = ["format_progress", "quiet_logs", "render_summary", "run_job"]

EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_INCOMPLETE: Final = 2
EXIT_INTERRUPTED: Final = 130


class _Stderr:
    """A file that is whatever ``sys.stderr`` is at write time (rich swaps it while drawing)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def quiet_logs(verbose: bool = False) -> None:
    """Send tether's structlog lines to stderr (stdout is for data), warnings and up unless
    ``verbose``; a program that configured structlog itself keeps its own setup."""
    if structlog.is_configured():
        return
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(_Stderr()),  # type: ignore[arg-type]
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO if verbose else logging.WARNING),
    )


def _rate(progress: JobProgress, now: float) -> tuple[float, float | None]:
    """Rows per second in this run, and the seconds left at that pace (``None``: unknown)."""
    elapsed = max(now - progress.started, 1e-9)
    finished = progress.done + progress.failed
    rate = finished / elapsed
    left = progress.total - progress.finished
    return rate, (left / rate if rate > 0 else None)


def _clock_text(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds + 0.5)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def format_progress(progress: JobProgress, endpoint: str, now: float) -> str:
    """One progress line (what is printed off a terminal every ``--progress-every`` seconds)."""
    rate, eta = _rate(progress, now)
    return (
        f"fetch {endpoint}: {progress.finished}/{progress.total} rows "
        f"({progress.done} ok, {progress.failed} failed, {progress.skipped} already done) · "
        f"{progress.records} records · {progress.in_flight} in flight · {rate:.1f} rows/s · "
        f"ETA {_clock_text(eta)} · retries {progress.retries} · rate-limit waits "
        f"{progress.rate_limit_waits} · open-circuit waits {progress.circuit_waits}"
    )


def render_summary(report: JobReport, console: Console, *, state: Path | None = None) -> None:
    """The final summary table."""
    p = report.progress
    table = Table(title=f"tether fetch {report.endpoint}", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("how many", justify="right")
    table.add_column("")
    table.add_row("rows fetched", str(p.done), "every page written")
    failed_note = ", ".join(f"{code} {n}" for code, n in report.failures.most_common())
    table.add_row("rows failed", str(p.failed), failed_note)
    table.add_row("rows already done", str(p.skipped), "skipped: done by an earlier run")
    if report.pending:
        table.add_row("rows not finished", str(report.pending), "rerun the same command to resume them")
    if report.duplicates:
        table.add_row("duplicate input rows", str(report.duplicates), "fetched once")
    table.add_row("records written", str(p.records), f"{p.pages} page(s)")
    answers = ", ".join(f"{status} × {n}" for status, n in sorted(p.statuses.items())) or "none"
    table.add_row("requests sent", str(sum(p.statuses.values())), answers)
    if p.from_cache:
        table.add_row("answered from cache", str(p.from_cache), "")
    table.add_row("retries", str(p.retries), "transient failures retried by the pipeline")
    table.add_row("rate-limit waits", str(p.rate_limit_waits), "paced to stay under the limit")
    table.add_row("open-circuit waits", str(p.circuit_waits), "waited for the circuit to half-open")
    table.add_row("elapsed", f"{report.elapsed:.1f}s", "")
    table.add_row("output", report.destination, "")
    if report.failures_path is not None:
        listed = report.failures_file_rows
        table.add_row("failures file", str(report.failures_path) if listed else "—", f"{listed} row(s)")
    if state is not None:
        table.add_row("job state", str(state), "checkpoints: what a rerun resumes from")
    console.print(table)
    if report.message:
        console.print(redact_text(report.message), style="red" if report.stopped != "interrupted" else None)


def _parse_pairs(pairs: list[str], spec: Spec, endpoint: str | None, hint: str) -> dict[str, Any]:
    try:
        return parse_params(pairs, spec.endpoints.get(endpoint) if endpoint else None)
    except typer.BadParameter as exc:
        raise typer.BadParameter(str(exc.message), param_hint=hint) from None


def _fields(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        source, sep, target = pair.partition(":")
        if not sep or not source.strip() or not target.strip():
            raise typer.BadParameter(f"expected FIELD:PARAM, got {pair!r}", param_hint="--field")
        out[source.strip()] = target.strip()
    return out


def _duration(text: str | None, name: str) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration(text, name=name, allow_zero=False)
    except (ValueError, TypeError) as exc:
        raise typer.BadParameter(str(exc), param_hint=name) from None


def _amount(text: str | None, name: str) -> float | None:
    """A duration (``7d``) or a plain amount (``100``, for numeric cursors)."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return _duration(text, name)


def _incremental(
    spec: Spec,
    endpoint: str,
    *,
    cursor: str | None,
    cursor_param: str | None,
    lookback: str | None,
    since: str | None,
    until: str | None,
    chunk: str | None,
    full_refresh: bool,
) -> Incremental | None:
    declared = spec.endpoints[endpoint].incremental if endpoint in spec.endpoints else None
    if full_refresh:
        declared = None
        if cursor is None and since is None and until is None:
            return None
    wanted = declared is not None or cursor is not None or since is not None or until is not None
    if not wanted:
        return None
    start_param = cursor_param or (declared.start_param if declared else None)
    if start_param is None:
        raise typer.BadParameter(
            f"{endpoint} declares no incremental.start_param: name the parameter that starts "
            "from a cursor value with --cursor-param",
            param_hint="--cursor-param",
        )
    field = cursor or (declared.cursor_field if declared else None)
    if field is None and since is None and until is None:
        raise typer.BadParameter("name the records' cursor field with --cursor FIELD", param_hint="--cursor")
    return Incremental(
        cursor_field=field or start_param,
        start_param=start_param,
        end_param=declared.end_param if declared else None,
        lookback=_amount(lookback, "--lookback")
        if lookback is not None
        else (declared.lookback if declared else None),
        initial_value=declared.initial_value if declared else None,
        since=since,
        until=until,
        chunk=_amount(chunk, "--chunk") if chunk is not None else (declared.chunk if declared else None),
    )


async def run_job(
    job: FetchJob,
    *,
    console: Console,
    on_terminal: bool,
    progress_every: float,
    install_sigint: bool = True,
) -> JobReport:
    """Run ``job`` with progress on ``console`` (a live bar on a terminal, else a line every
    ``progress_every`` seconds) and Ctrl-C stopping it cleanly."""
    loop = asyncio.get_running_loop()
    interrupted = False

    def on_sigint() -> None:
        nonlocal interrupted
        interrupted = True
        job.stop("interrupted", "interrupted: committed pages are kept; rerun the same command to resume")
        loop.remove_signal_handler(signal.SIGINT)  # a second Ctrl-C ends at once (still safe)

    if install_sigint:
        try:
            loop.add_signal_handler(signal.SIGINT, on_sigint)
        except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
            install_sigint = False
    ticker: asyncio.Task[None] | None = None
    bar: Progress | None = None
    if on_terminal:
        bar = Progress(
            TextColumn(f"[bold]{job.endpoint}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("ETA {task.fields[eta]}"),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        task = bar.add_task("fetch", total=None, rate="", eta="?", detail="")
        ticker = asyncio.create_task(_draw(bar, task, job, 0.2))
    else:
        ticker = asyncio.create_task(_lines(console, job, progress_every))
    try:
        if bar is not None:
            with bar:
                report = await job.run()
                _update(bar, bar.task_ids[0], job)
        else:
            report = await job.run()
    finally:
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
        if install_sigint and not interrupted:
            loop.remove_signal_handler(signal.SIGINT)
    return report


def _update(bar: Progress, task: TaskID, job: FetchJob) -> None:
    p = job.progress
    rate, eta = _rate(p, time.monotonic()) if p.started else (0.0, None)
    detail = (
        f"{p.records} records · {p.in_flight} in flight · failed {p.failed} · retries {p.retries} · "
        f"rate-limit waits {p.rate_limit_waits} · open-circuit waits {p.circuit_waits}"
    )
    bar.update(
        task,
        total=p.total or None,
        completed=p.finished,
        rate=f"{rate:.1f} rows/s",
        eta=_clock_text(eta),
        detail=detail,
    )


async def _draw(bar: Progress, task: TaskID, job: FetchJob, every: float) -> None:
    while True:
        _update(bar, task, job)
        await asyncio.sleep(every)


async def _lines(console: Console, job: FetchJob, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        if job.progress.started:
            console.print(format_progress(job.progress, job.endpoint, time.monotonic()), soft_wrap=True)


def _rows(
    spec: Spec,
    endpoint: str,
    each: Path | None,
    each_from: str | None,
    fields: dict[str, str],
    parent_params: dict[str, Any],
) -> tuple[list[InputRow] | None, Parent | None]:
    if each is not None and each_from is not None:
        raise typer.BadParameter("give --each or --each-from, not both", param_hint="--each-from")
    if each is not None:
        return read_inputs(each), None
    declared = spec.endpoints[endpoint].parent
    if each_from is not None:
        if not fields:
            if declared is None or declared.endpoint != each_from:
                raise typer.BadParameter(
                    f"say which field of {each_from}'s records fills which parameter: --field FIELD:PARAM",
                    param_hint="--field",
                )
            fields = dict(declared.fields)
        if each_from not in spec.endpoints:
            raise SpecError(
                f"--each-from {each_from!r}: no such endpoint; endpoints: {', '.join(spec.endpoints)}"
            )
        base = dict(declared.params) if declared is not None and declared.endpoint == each_from else {}
        return None, Parent(each_from, fields, {**base, **parent_params})
    if declared is not None:
        return None, Parent(declared.endpoint, dict(declared.fields), {**declared.params, **parent_params})
    required = [p.name for p in spec.endpoints[endpoint].parameters if p.is_required and p.default is None]
    if required:
        raise typer.BadParameter(
            f"{endpoint} needs {', '.join(required)}: give the rows with --each FILE or --each-from ENDPOINT",
            param_hint="--each",
        )
    return [InputRow({}, "(no input file: one call)", 1)], None


async def _main(
    spec_path: Path,
    endpoint: str,
    env: str | None,
    base_url: str | None,
    build: Callable[[Integration, Spec], FetchJob],
    console: Console,
    on_terminal: bool,
    progress_every: float,
    record: Path | None = None,
) -> tuple[JobReport, FetchJob]:
    overrides: dict[str, Any] = {"base_url": base_url} if base_url else {}
    overrides.update(recording(record, endpoint))
    async with open_integration(spec_path, env=env, **overrides) as integration:
        job = build(integration, integration.spec)
        report = await run_job(job, console=console, on_terminal=on_terminal, progress_every=progress_every)
    return report, job


@app.command()
def fetch(
    spec: Annotated[Path, typer.Argument(help="The integration spec.")],
    endpoint: Annotated[str, typer.Argument(help="The endpoint to fetch for every input row.")],
    out: Annotated[
        str,
        typer.Option(
            "--out",
            "-o",
            help="Where records go: FILE.jsonl (default format), FILE.csv, "
            "sqlite:///FILE.db#TABLE, or - for stdout. Reruns resume.",
        ),
    ],
    each: Annotated[
        Path | None, typer.Option("--each", help="Input rows: a .csv (with a header), .jsonl or .json file.")
    ] = None,
    each_from: Annotated[
        str | None,
        typer.Option("--each-from", help="Input rows from the records of another endpoint (fan-out)."),
    ] = None,
    field: Annotated[
        list[str] | None,
        typer.Option(
            "--field", help="With --each-from: FIELD:PARAM, a parent record's field to a parameter."
        ),
    ] = None,
    parent_param: Annotated[
        list[str] | None,
        typer.Option("--parent-param", help="A parameter of the --each-from calls, name=value."),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="A parameter for every row, name=value (repeat)."),
    ] = None,
    env: Annotated[
        str | None, typer.Option("--env", "-e", help="The spec's environment (default: TETHER_ENV).")
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url", help="Send to this base URL instead of the spec's (a sandbox, tether mock)."
        ),
    ] = None,
    per: Annotated[str, typer.Option("--per", help="One output line per 'record' or per 'page'.")] = "record",
    concurrency: Annotated[int, typer.Option(min=1, max=1024, help="Rows in flight at once.")] = 8,
    max_failures: Annotated[
        int | None, typer.Option("--max-failures", min=1, help="Stop (exit 2) once this many rows failed.")
    ] = None,
    fail_fast: Annotated[
        bool, typer.Option("--fail-fast", help="Stop at the first failed row (--max-failures 1).")
    ] = False,
    wait_for_recovery: Annotated[
        str | None,
        typer.Option(
            "--wait-for-recovery",
            help="Wait up to this long (10m, 1h) for a failing upstream before stopping "
            "(default: twice the circuit breaker's open period).",
        ),
    ] = None,
    cursor: Annotated[
        str | None,
        typer.Option("--cursor", help="Incremental: the records' cursor field (a date, time or id)."),
    ] = None,
    cursor_param: Annotated[
        str | None,
        typer.Option("--cursor-param", help="Incremental: the parameter that starts from the cursor."),
    ] = None,
    lookback: Annotated[
        str | None,
        typer.Option("--lookback", help="Incremental: start this far before the kept cursor (3d, 100)."),
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Backfill from this cursor value (no state kept).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Backfill up to this cursor value (inclusive).")
    ] = None,
    chunk: Annotated[
        str | None,
        typer.Option("--chunk", help="Cut a --since/--until range into units this long (30d, 1000)."),
    ] = None,
    full_refresh: Annotated[
        bool, typer.Option("--full-refresh", help="Ignore the endpoint's incremental: settings.")
    ] = False,
    state: Annotated[
        Path | None, typer.Option("--state", help="The job's state file (default: OUT.state.db).")
    ] = None,
    failures: Annotated[
        Path | None, typer.Option("--failures", help="The failures file (default: OUT.failures.jsonl).")
    ] = None,
    progress_every: Annotated[
        float,
        typer.Option("--progress-every", min=0.05, help="Off a terminal: seconds between progress lines."),
    ] = 10.0,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log tether's events (info and up).")
    ] = False,
    record: Annotated[Path | None, typer.Option("--record", file_okay=False, help=RECORD_HELP)] = None,
) -> None:
    """Fetch every page for every input row, resumably: a rerun continues where the last run stopped."""
    err = Console(stderr=True)
    quiet_logs(verbose)
    try:
        if per not in ("record", "page"):
            raise typer.BadParameter("use 'record' or 'page'", param_hint="--per")
        loaded = load(spec, env=env)
        if endpoint not in loaded.endpoints:
            raise SpecError(f"no endpoint {endpoint!r} in {spec}; endpoints: {', '.join(loaded.endpoints)}")
        destination = parse_destination(out)
        rows, parent = _rows(
            loaded,
            endpoint,
            each,
            each_from,
            _fields(field or []),
            _parse_pairs(parent_param or [], loaded, each_from, "--parent-param"),
        )
        options = JobOptions(
            concurrency=concurrency,
            per="page" if per == "page" else "record",
            max_failures=1 if fail_fast else max_failures,
            wait_for_recovery=_duration(wait_for_recovery, "--wait-for-recovery"),
            params=_parse_pairs(param or [], loaded, endpoint, "--param"),
            incremental=_incremental(
                loaded,
                endpoint,
                cursor=cursor,
                cursor_param=cursor_param,
                lookback=lookback,
                since=since,
                until=until,
                chunk=chunk,
                full_refresh=full_refresh,
            ),
        )
    except TetherError as exc:
        err.print(redact_text(f"error: {exc.error_code} {type(exc).__name__}: {exc}"), markup=False)
        raise typer.Exit(EXIT_ERROR) from None

    stdout = sys.stdout.buffer if destination.kind == "stdout" else None

    def build(integration: Integration, _spec: Spec) -> FetchJob:
        return FetchJob(
            integration,
            endpoint,
            destination,
            rows=rows,
            parent=parent,
            options=options,
            state=state,
            failures=failures,
            stdout=stdout,
        )

    on_terminal = err.is_terminal
    try:
        report, job = asyncio.run(
            _main(spec, endpoint, env, base_url, build, err, on_terminal, progress_every, record)
        )
    except TetherError as exc:
        err.print(redact_text(f"error: {exc.error_code} {type(exc).__name__}: {exc}"), markup=False)
        raise typer.Exit(EXIT_ERROR) from None
    render_summary(report, err, state=job.state_path if destination.kind != "stdout" else None)
    if report.stopped == "interrupted":
        raise typer.Exit(EXIT_INTERRUPTED)
    if not report.ok:
        raise typer.Exit(EXIT_INCOMPLETE)
