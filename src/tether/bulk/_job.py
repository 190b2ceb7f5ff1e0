"""The bulk job's engine: every page of every unit of work, resumable, honest about failure.

A *unit of work* is one input row (or one chunk of a ``since``/``until`` range for a row). Each
unit is fetched page by page through ``Integration.pages`` (the whole pipeline per page), and
each page is committed with its checkpoint (``tether.bulk._store``): a killed job restarts each
unfinished unit from its last completed page. Units run ``concurrency`` at a time.

Failure policy:

- A page that fails after the pipeline's retries fails its unit (the failures file says why:
  the root cause, e.g. ``CONN_001`` behind an open circuit); the unit keeps its checkpoint, so
  the next run picks it up at the page that failed.
- A call refused by an open circuit waits until the circuit half-opens and goes again, unless
  the job was told to fail fast (``max_failures``) without ``wait_for_recovery``: then the unit
  fails at once with the error that opened the circuit.
- When every call fails at the upstream (connection refused, timeouts, 5xx) for twice the
  breaker's open period (or ``wait_for_recovery``), the job stops with ``reason
  "upstream_down"`` and a message naming the cause, instead of waiting forever.
- ``max_failures`` failed units stop the job (``reason "max_failures"``).

Incremental runs (``Incremental``): the job keeps, per input row, the highest cursor value it
wrote; the next run starts there (less ``lookback``) and skips records it already wrote at that
value. ``since``/``until`` make a stateless backfill, cut into ``chunk``-sized units.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final, Literal

from tether import events as ev
from tether._clock import Clock, system_clock
from tether.bulk._cursor import chunks, parse_cursor
from tether.bulk._inputs import InputRow
from tether.bulk._store import Destination, JobStore, UnitState, record_hash
from tether.dlq import unit_of_work
from tether.errors import (
    APIError,
    CircuitOpenError,
    ConnectionError,
    RequestValidationError,
    SpecError,
    TetherError,
    TimeoutError,
)
from tether.events import Event
from tether.integration import FetchedPage, Integration
from tether.mapping import search
from tether.pipeline.breaker import Breaker

__all__ = ["FetchJob", "Incremental", "JobOptions", "JobProgress", "JobReport", "Parent"]

#: Problems listed in one input-check error before "… and N more".
MAX_LISTED_PROBLEMS: Final = 20
_FAR: Final = float("inf")


@dataclass(frozen=True, slots=True)
class Incremental:
    """Incremental or backfill settings: the records' ``cursor_field`` and the ``start_param``
    (and ``end_param``) of the request; ``lookback`` (seconds, or an amount for numbers);
    ``since``/``until`` for a stateless backfill in ``chunk``-sized units; ``initial_value``
    for a row that gives no start of its own."""

    cursor_field: str
    start_param: str
    end_param: str | None = None
    lookback: float | None = None
    initial_value: Any = None
    since: Any = None
    until: Any = None
    chunk: float | None = None

    @property
    def backfill(self) -> bool:
        return self.since is not None or self.until is not None


@dataclass(frozen=True, slots=True)
class Parent:
    """Fan-out: the rows are the records of ``endpoint`` (every page); ``fields`` maps a record
    field (JMESPath) to this endpoint's parameter; ``params`` are the parent's own."""

    endpoint: str
    fields: Mapping[str, str]
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class JobOptions:
    """How the job runs (validated)."""

    concurrency: int = 8
    per: Literal["record", "page"] = "record"
    max_failures: int | None = None
    wait_for_recovery: float | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    incremental: Incremental | None = None

    def __post_init__(self) -> None:
        if (
            isinstance(self.concurrency, bool)
            or not isinstance(self.concurrency, int)
            or self.concurrency < 1
        ):
            raise ValueError(f"concurrency must be a whole number >= 1, got {self.concurrency!r}")
        if self.per not in ("record", "page"):
            raise ValueError(f"per must be 'record' or 'page', got {self.per!r}")
        if self.max_failures is not None and (isinstance(self.max_failures, bool) or self.max_failures < 1):
            raise ValueError(f"max_failures must be >= 1, got {self.max_failures!r}")
        if self.wait_for_recovery is not None and self.wait_for_recovery <= 0:
            raise ValueError(f"wait_for_recovery must be > 0 seconds, got {self.wait_for_recovery!r}")


@dataclass
class JobProgress:
    """Live counters (read them while the job runs; the CLI draws its progress from them)."""

    total: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    in_flight: int = 0
    records: int = 0
    pages: int = 0
    retries: int = 0
    rate_limit_waits: int = 0
    circuit_waits: int = 0
    from_cache: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    started: float = 0.0

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.skipped


@dataclass
class JobReport:
    """What one run did."""

    endpoint: str
    destination: str
    failures_path: Path | None
    progress: JobProgress
    elapsed: float = 0.0
    failures: Counter[str] = field(default_factory=Counter)
    pending: int = 0
    duplicates: int = 0
    stopped: str | None = None
    message: str | None = None
    failures_file_rows: int = 0

    @property
    def ok(self) -> bool:
        return self.stopped is None and self.progress.failed == 0 and self.pending == 0


@dataclass(frozen=True, slots=True)
class _Unit:
    key: str
    row_key: str
    inputs: Mapping[str, Any]
    params: Mapping[str, Any]
    where: str


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)


def root_cause(error: BaseException) -> BaseException:
    """The error behind a refusal: an open circuit's last underlying failure, else the error."""
    cause = error.__cause__
    if isinstance(error, CircuitOpenError) and isinstance(cause, TetherError):
        return cause
    return error


def _upstream_failure(error: BaseException) -> bool:
    """Whether ``error`` says the upstream itself is failing (not reachable, not answering, 5xx)."""
    error = root_cause(error)
    if isinstance(error, ConnectionError | TimeoutError):
        return getattr(error, "phase", None) != "total" or isinstance(error, ConnectionError)
    return isinstance(error, APIError) and (error.status_code or 0) >= 500


def _failure_entry(error: TetherError) -> dict[str, Any]:
    root = root_cause(error)
    entry = root.to_error_response() if isinstance(root, TetherError) else error.to_error_response()
    if root is not error:
        entry["refused_by"] = error.error_code  # the open circuit; the code above is why it opened
    return entry


class _Health:
    """Whether the upstream is down: every call has failed at the upstream for ``limit`` s."""

    def __init__(self, limit: float, clock: Clock) -> None:
        self.limit = limit
        self._clock = clock
        self.down_since: float | None = None
        self.cause: BaseException | None = None

    def ok(self) -> None:
        self.down_since = None
        self.cause = None

    def failed(self, error: BaseException) -> None:
        if not _upstream_failure(error):
            self.ok()  # the upstream answered, even if not with data
            return
        if self.down_since is None:
            self.down_since = self._clock.monotonic()
        self.cause = root_cause(error)

    def down_for(self) -> float:
        return 0.0 if self.down_since is None else self._clock.monotonic() - self.down_since

    def is_down(self) -> bool:
        return self.down_since is not None and self.down_for() >= self.limit

    def left(self) -> float:
        return _FAR if self.down_since is None else max(0.0, self.limit - self.down_for())


class FetchJob:
    """One bulk fetch of ``endpoint``: ``rows`` (or the records of ``parent``) into ``destination``.

    ``await job.run()`` returns a ``JobReport``; ``job.stop()`` (e.g. on Ctrl-C) ends it cleanly:
    calls in flight are cancelled, every committed page stays, and a rerun resumes. Input is
    checked before the first call of the endpoint (``RequestValidationError`` with row numbers).
    """

    def __init__(
        self,
        integration: Integration,
        endpoint: str,
        destination: Destination,
        *,
        rows: Sequence[InputRow] | None = None,
        parent: Parent | None = None,
        options: JobOptions | None = None,
        state: Path | None = None,
        failures: Path | None = None,
        stdout: IO[bytes] | None = None,
        clock: Clock | None = None,
        on_start: Callable[[JobProgress], None] | None = None,
    ) -> None:
        if (rows is None) == (parent is None):
            raise ValueError("give the job rows or a parent endpoint, not both and not neither")
        if endpoint not in integration.spec.endpoints:
            known = ", ".join(sorted(integration.spec.endpoints))
            raise SpecError(f"no endpoint {endpoint!r} in the spec; endpoints: {known}")
        self.integration = integration
        self.endpoint = endpoint
        self.destination = destination
        self.options = options or JobOptions()
        self._rows = rows
        self._parent = parent
        self._state_path = state
        self.failures_path = failures if failures is not None else destination.default_failures
        self._stdout = stdout
        self._clock = clock or integration.options.get("clock") or system_clock
        self._on_start = on_start
        self.progress = JobProgress()
        self._stopping: str | None = None
        self._message: str | None = None
        self._stop_event = asyncio.Event()
        self._waiting: dict[str, TetherError] = {}
        self._failures: Counter[str] = Counter()
        breaker = integration.options.get("breaker")
        open_for = breaker.config().open_for if isinstance(breaker, Breaker) else Breaker.DEFAULT_OPEN_FOR
        wait = self.options.wait_for_recovery
        self.recovery_limit = wait if wait is not None else 2 * open_for
        self._health = _Health(self.recovery_limit, self._clock)
        self._fail_on_refusal = self.options.max_failures is not None and wait is None
        self._store: JobStore | None = None
        self._states: dict[str, UnitState] = {}
        self._floors: dict[str, tuple[Any, list[str]]] = {}
        self._units_by_key: dict[str, _Unit] = {}
        self._job_key = f"fetch:{integration.service}:{endpoint}:{destination}"

    # --- control ------------------------------------------------------------------------------

    def stop(self, reason: str = "interrupted", message: str | None = None) -> None:
        """Stop taking units, cancel the calls in flight, keep what was committed."""
        if self._stopping is None:
            self._stopping = reason
            self._message = message
        self._stop_event.set()

    @property
    def stopping(self) -> str | None:
        """Why the job is stopping (``interrupted``, ``max_failures``, ``upstream_down``), if it is."""
        return self._stopping

    @property
    def state_path(self) -> Path | None:
        """The job's state file, once the job has opened it."""
        return self._store.state_path if self._store is not None else None

    # --- inputs -------------------------------------------------------------------------------

    async def _input_rows(self) -> list[InputRow]:
        if self._rows is not None:
            return list(self._rows)
        parent = self._parent
        assert parent is not None
        self.integration.validate(parent.endpoint, **dict(parent.params))
        rows: list[InputRow] = []
        number = 0
        async for record in self.integration.paginate(parent.endpoint, **dict(parent.params)):
            number += 1
            where = f"{parent.endpoint} record {number}"
            values: dict[str, Any] = {}
            for source, param in parent.fields.items():
                value = search(source, record) if isinstance(record, Mapping | list) else None
                if value is None:
                    raise RequestValidationError(
                        f"{where}: no {source!r} to fill {param!r} (record: {_dumps(record)[:200]})",
                        details=[{"where": where, "field": source}],
                    )
                values[param] = value
            rows.append(InputRow(values, where, number))
        return rows

    def _units(self, rows: Sequence[InputRow]) -> tuple[list[_Unit], int]:
        constants = dict(self.options.params)
        inc = self.options.incremental
        units: dict[str, _Unit] = {}
        duplicates = 0
        managed = {inc.start_param, inc.end_param} if inc is not None else set()
        for row in rows:
            inputs = {**constants, **row.values}
            # An incremental row is the same row whatever range it asks for this time.
            row_key = _dumps({k: v for k, v in inputs.items() if k not in managed})
            ranges: list[tuple[Any, Any] | None] = [None]
            if inc is not None and inc.backfill:
                ranges = self._ranges(inc, inputs, row.where)
            for bounds in ranges:
                params = dict(inputs)
                key = row_key
                if bounds is not None:
                    start, end = bounds
                    if start is not None:
                        params[inc.start_param] = start  # type: ignore[union-attr]
                    if end is not None and inc is not None and inc.end_param is not None:
                        params[inc.end_param] = end
                    key = f"{row_key}|{_dumps([start, end])}"
                elif inc is not None and inc.start_param not in params and inc.initial_value is not None:
                    params[inc.start_param] = inc.initial_value
                if key in units:
                    duplicates += 1
                    continue
                units[key] = _Unit(key, row_key, inputs, params, row.where)
        return list(units.values()), duplicates

    def _ranges(
        self, inc: Incremental, inputs: Mapping[str, Any], where: str
    ) -> list[tuple[Any, Any] | None]:
        since_raw = inc.since if inc.since is not None else inputs.get(inc.start_param)
        until_raw = (
            inc.until if inc.until is not None else (inputs.get(inc.end_param) if inc.end_param else None)
        )
        if since_raw is None or until_raw is None or inc.end_param is None:
            return [(since_raw, until_raw)]
        since, until = parse_cursor(since_raw), parse_cursor(until_raw)
        if since is None or until is None:
            raise RequestValidationError(f"{where}: --since/--until must be dates, times or numbers")
        if until < since:
            raise RequestValidationError(f"{where}: --until ({until.raw}) is before --since ({since.raw})")
        return list(chunks(since, until, inc.chunk))

    def _check(self, units: Sequence[_Unit]) -> None:
        """Every unit's first call, validated as the integration would; nothing is sent."""
        problems: list[str] = []
        details: list[dict[str, Any]] = []
        for unit in units:
            try:
                self.integration.validate(self.endpoint, **dict(unit.params))
            except RequestValidationError as exc:
                problems.append(f"{unit.where}: {exc.message}")
                details.append({"where": unit.where, "problem": exc.message})
        if problems:
            shown = problems[:MAX_LISTED_PROBLEMS]
            more = len(problems) - len(shown)
            raise RequestValidationError(
                f"{len(problems)} input row(s) do not fit {self.endpoint}; nothing was sent:\n  "
                + "\n  ".join(shown)
                + (f"\n  … and {more} more" if more else ""),
                endpoint=self.endpoint,
                details=details,
            )

    # --- running ------------------------------------------------------------------------------

    async def run(self) -> JobReport:
        """Run the job to its end (or its stop) and report."""
        progress = self.progress
        progress.started = self._clock.monotonic()
        report = JobReport(self.endpoint, str(self.destination), self.failures_path, progress)
        rows = await self._input_rows()
        units, report.duplicates = self._units(rows)
        self._check(units)
        self._units_by_key = {unit.key: unit for unit in units}
        store = self._store = JobStore(self.destination, state=self._state_path, stdout=self._stdout)
        listener = self._listen
        self.integration.client.events.add(listener)
        try:
            inputs = sorted({name for unit in units for name in unit.inputs})
            job = {"endpoint": self.endpoint, "per": self.options.per}
            self._states = await store.open(job=job, input_columns=inputs)
            inc = self.options.incremental
            if inc is not None and not inc.backfill:
                await store.forget_done()
                self._states = {k: v for k, v in self._states.items() if v.status != "done"}
                self._floors = await store.cursors()
            todo: deque[_Unit] = deque()
            for unit in units:
                state = self._states.get(unit.key)
                if state is not None and state.status == "done":
                    progress.skipped += 1
                    continue
                if state is None or state.params is None:
                    state = self._fresh_state(unit)
                    self._states[unit.key] = state
                todo.append(unit)
            progress.total = len(units)
            if self._on_start is not None:
                self._on_start(progress)
            workers = [
                asyncio.create_task(self._worker(todo))
                for _ in range(min(self.options.concurrency, len(todo)))
            ]
            try:
                await self._supervise(workers)
            finally:
                for task in workers:
                    task.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
            await self._fail_waiting()
            report.pending = sum(
                1 for u in units if self._states.get(u.key, UnitState()).status in ("new", "running")
            )
            if self.failures_path is not None:
                report.failures_file_rows = await store.write_failures(self.failures_path)
        finally:
            self.integration.client.events.remove(listener)
            await store.close()
        report.failures = self._failures
        report.stopped = self._stopping
        report.message = self._message
        report.elapsed = self._clock.monotonic() - progress.started
        return report

    async def _supervise(self, workers: list[asyncio.Task[None]]) -> None:
        if not workers:
            return
        stop = asyncio.create_task(self._stop_event.wait())
        try:
            pending: set[asyncio.Task[Any]] = {*workers, stop}
            while True:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task is not stop and not task.cancelled() and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
                if stop in done or not (pending - {stop}):
                    return
        finally:
            stop.cancel()

    def _fresh_state(self, unit: _Unit) -> UnitState:
        params = dict(unit.params)
        state = UnitState(status="new", params=params, location=unit.where)
        inc = self.options.incremental
        if inc is not None and not inc.backfill:
            kept = self._floors.get(unit.row_key)
            if kept is not None and kept[0] is not None:
                floor = parse_cursor(kept[0])
                if floor is not None:
                    start = floor.minus(inc.lookback) if inc.lookback else floor
                    params[inc.start_param] = start.raw
                    state.floor = kept[0]
                    state.floor_boundary = list(kept[1]) if not inc.lookback else []
                    state.cursor_max = kept[0]
                    state.boundary = list(kept[1])
        return state

    async def _worker(self, todo: deque[_Unit]) -> None:
        while todo and self._stopping is None:
            unit = todo.popleft()
            await self._run_unit(unit)

    async def _run_unit(self, unit: _Unit) -> None:
        store = self._store
        assert store is not None
        state = self._states[unit.key]
        progress = self.progress
        while self._stopping is None:
            progress.in_flight += 1
            try:
                with unit_of_work(f"{self._job_key}|row:{unit.key}"):
                    params = dict(state.params or unit.params)
                    async for page in self.integration.pages(
                        self.endpoint, resume=state.checkpoint, **params
                    ):
                        await self._commit_page(unit, state, page)
                        self._health.ok()
                        if page.checkpoint is None:
                            break
                if state.status != "done":  # a resumed unit whose last page was already written
                    state.status = "done"
                    await self._shielded(store.commit(unit.key, unit.row_key, unit.inputs, state, []))
                self._waiting.pop(unit.key, None)
                progress.done += 1
                return
            except CircuitOpenError as exc:
                self._health.failed(exc)
                if self._fail_on_refusal:
                    await self._fail(unit, state, exc)
                    return
                if self._health.is_down():
                    self._waiting[unit.key] = exc
                    self._stop_down()
                    return
                self._waiting[unit.key] = exc
                progress.circuit_waits += 1
                delay = min(max(exc.retry_after or 0.0, 0.05), self._health.left() + 0.01)
                progress.in_flight -= 1
                try:
                    await self._pause(delay)
                finally:
                    progress.in_flight += 1
            except TetherError as exc:
                self._health.failed(exc)
                await self._fail(unit, state, exc)
                if self._health.is_down():
                    self._stop_down()
                return
            finally:
                progress.in_flight -= 1

    async def _pause(self, seconds: float) -> None:
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        stopper = asyncio.ensure_future(self._stop_event.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            stopper.cancel()

    def _stop_down(self) -> None:
        cause = self._health.cause
        what = f"{cause.error_code} {cause.message}" if isinstance(cause, TetherError) else str(cause)
        level = "at connection level " if isinstance(cause, ConnectionError | TimeoutError) else ""
        limit = self.recovery_limit
        why = (
            f"--wait-for-recovery {limit:g}s"
            if self.options.wait_for_recovery is not None
            else f"twice the circuit breaker's open period, {limit:g}s"
        )
        self.stop(
            "upstream_down",
            f"stopped: every call failed {level}for {self._health.down_for():.0f}s ({why}): {what}. "
            "Committed pages are kept; rerun the same command to resume once the upstream is back"
            + (
                ""
                if self.options.wait_for_recovery is not None
                else ", or pass --wait-for-recovery DURATION to wait longer"
            ),
        )

    async def _fail(self, unit: _Unit, state: UnitState, error: TetherError) -> None:
        store = self._store
        assert store is not None
        state.status = "failed"
        state.error = _failure_entry(error)
        self._waiting.pop(unit.key, None)
        await self._shielded(store.commit(unit.key, unit.row_key, unit.inputs, state, []))
        self.progress.failed += 1
        self._failures[str(state.error.get("error_code"))] += 1
        limit = self.options.max_failures
        if limit is not None and self.progress.failed >= limit:
            self.stop(
                "max_failures",
                f"stopped after {self.progress.failed} failed row(s) (--max-failures {limit}); "
                "see the failures file, fix the cause and rerun to resume",
            )

    async def _fail_waiting(self) -> None:
        """Units that were waiting for an open circuit when the job stopped on a dead upstream
        failed too: record them, with the root cause."""
        if self._stopping != "upstream_down":
            return
        for key, error in list(self._waiting.items()):
            await self._fail(self._units_by_key[key], self._states[key], error)

    async def _shielded(self, commit: Any) -> Any:
        # A commit already handed to the store's thread finishes whole even if we are cancelled.
        return await asyncio.shield(commit)

    async def _commit_page(self, unit: _Unit, state: UnitState, page: FetchedPage) -> None:
        store = self._store
        assert store is not None
        records = self._new_records(state, page.records)
        if self.options.per == "page":
            shaped = [{"page": page.index, "records": records}] if records or page.index == 0 else []
        else:
            shaped = [{"data": r} for r in records]
        state.checkpoint = page.checkpoint
        state.pages += 1
        state.records += len(records)
        state.status = "running" if page.checkpoint is not None else "done"
        cursor = (
            (state.cursor_max, state.boundary) if state.status == "done" and self._keeps_cursor() else None
        )
        committed = await self._shielded(
            store.commit(unit.key, unit.row_key, unit.inputs, state, shaped, cursor=cursor)
        )
        self.progress.pages += 1
        self.progress.records += committed.records if self.options.per == "record" else len(records)

    def _keeps_cursor(self) -> bool:
        inc = self.options.incremental
        return inc is not None and not inc.backfill

    def _new_records(self, state: UnitState, records: Iterable[Any]) -> list[Any]:
        """The records to write: for an incremental run, those past what earlier runs wrote;
        the unit's high-water mark moves with them."""
        inc = self.options.incremental
        if inc is None:
            return list(records)
        floor = parse_cursor(state.floor) if state.floor is not None else None
        seen_at_floor = set(state.floor_boundary)
        best = parse_cursor(state.cursor_max) if state.cursor_max is not None else None
        boundary = set(state.boundary)
        out: list[Any] = []
        for record in records:
            value = parse_cursor(search(inc.cursor_field, record)) if isinstance(record, Mapping) else None
            skips = value is not None and floor is not None and not inc.lookback and not inc.backfill
            if skips and (value < floor or (value == floor and record_hash(record) in seen_at_floor)):  # type: ignore[operator]
                continue
            out.append(record)
            if value is None or inc.backfill:
                continue
            if best is None or best < value:
                best, boundary = value, {record_hash(record)}
            elif value == best:
                boundary.add(record_hash(record))
        if best is not None:
            state.cursor_max = best.raw
            state.boundary = sorted(boundary)
        return out

    # --- events -------------------------------------------------------------------------------

    def _listen(self, event: Event) -> None:
        progress = self.progress
        name = event.name
        if name == ev.RESPONSE_RECEIVED:
            progress.statuses[str(event.fields.get("status"))] += 1
        elif name == ev.REQUEST_FAILED:
            progress.statuses[f"no answer ({event.fields.get('error_type')})"] += 1
        elif name == ev.RETRY_SCHEDULED:
            progress.retries += 1
        elif name in (ev.LIMITER_QUEUED, ev.LIMITER_PAUSED):
            progress.rate_limit_waits += 1
        elif name == ev.CACHE_HIT:
            progress.from_cache += 1
