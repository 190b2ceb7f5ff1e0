"""The bulk job is honest about failure: dead upstreams, --max-failures, the failures file, the DLQ."""

from __future__ import annotations

import json
from pathlib import Path

from bulk_helpers import closed_port, run_tether, spec_environ

import tether
from tether.bulk import FetchJob, InputRow, JobOptions, parse_destination
from tether.dataapi._mock import DataAPIMock
from tether.mock import Fault, FaultServer

VENDOR = """
service: {{name: vendor, base_url: "{url}"}}
retry: {{max_attempts: 2, initial_delay: 10, max_delay: 20, jitter: false}}
circuit_breaker: {{failure_threshold: 3, timeout: 0.3, window: 60s}}
{extra}
endpoints:
  get_item:
    path: "/items/{{id}}"
    method: GET
    parameters: [{{name: id, in: path, type: string, required: true}}]
{endpoint_extra}
"""


def vendor_spec(tmp_path: Path, url: str, *, extra: str = "", endpoint_extra: str = "") -> Path:
    path = tmp_path / "vendor.yaml"
    path.write_text(VENDOR.format(url=url, extra=extra, endpoint_extra=endpoint_extra), encoding="utf-8")
    return path


def rows_file(tmp_path: Path, n: int = 20) -> Path:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"id": f"ITEM-{i}"}) + "\n" for i in range(n)), encoding="utf-8")
    return path


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


async def test_dead_upstream_with_max_failures_exits_2_and_records_conn_001(tmp_path: Path) -> None:
    """A closed loopback port, --max-failures 3: exit 2, the failures file names CONN_001 (not
    CIRCUIT_001) and the message says it stopped on failures."""
    spec = vendor_spec(tmp_path, f"http://127.0.0.1:{closed_port()}")
    out = tmp_path / "out.jsonl"
    code, stdout, err = await run_tether(
        "fetch",
        str(spec),
        "get_item",
        "--each",
        str(rows_file(tmp_path)),
        "--out",
        str(out),
        "--max-failures",
        "3",
    )
    assert code == 2, err
    assert stdout == ""
    failures = lines(tmp_path / "out.jsonl.failures.jsonl")
    assert len(failures) >= 3
    assert {f["error"]["error_code"] for f in failures} == {"CONN_001"}  # type: ignore[index]
    assert "--max-failures 3" in err


async def test_dead_upstream_without_flags_stops_by_itself_naming_the_cause(tmp_path: Path) -> None:
    """No flags: the job waits for the circuit twice its open period, then stops with a message
    naming CONN_001 and how to resume or wait longer; rows not reached stay for a rerun."""
    spec = vendor_spec(tmp_path, f"http://127.0.0.1:{closed_port()}")
    async with tether.open(spec) as api:
        rows = [InputRow({"id": f"ITEM-{i}"}, f"row {i}", i) for i in range(20)]
        job = FetchJob(api, "get_item", parse_destination(str(tmp_path / "out.jsonl")), rows=rows)
        report = await job.run()
    assert report.stopped == "upstream_down"
    assert report.message is not None
    assert "CONN_001" in report.message and "--wait-for-recovery" in report.message
    assert "at connection level" in report.message
    assert report.progress.circuit_waits >= 1
    assert report.pending + report.progress.failed == 20
    codes = {f["error"]["error_code"] for f in lines(tmp_path / "out.jsonl.failures.jsonl")}  # type: ignore[index]
    assert codes == {"CONN_001"}


async def test_wait_for_recovery_outlasts_a_short_outage(fault_server: FaultServer, tmp_path: Path) -> None:
    """A 503 outage with --wait-for-recovery: rows refused by the open circuit wait and land once
    it closes; only rows whose own retries ran out fail (API_001); the job never stops early."""
    outage = [Fault.status(503)] * 12
    fault_server.route("GET", "/items/{id}", *outage, Fault.echo())
    spec = vendor_spec(tmp_path, fault_server.url)
    async with tether.open(spec) as api:
        rows = [InputRow({"id": f"ITEM-{i}"}, f"row {i}", i) for i in range(6)]
        options = JobOptions(concurrency=2, wait_for_recovery=30.0)
        job = FetchJob(
            api, "get_item", parse_destination(str(tmp_path / "o.jsonl")), rows=rows, options=options
        )
        report = await job.run()
    assert report.stopped is None, report.message
    assert report.progress.done + report.progress.failed == 6
    assert report.progress.done >= 3
    assert set(report.failures) <= {"API_001"}
    assert report.progress.circuit_waits >= 1


async def test_the_failures_file_is_rewritten_on_resume(dataapi: DataAPIMock, tmp_path: Path) -> None:
    """Run 1: ID-X fails (503s past its retries) and MISSING-1 is unknown. Run 2 (resume): ID-X is
    fetched, and the failures file then lists MISSING-1 only, once."""
    dataapi.script("ID-X", Fault.status(503), Fault.status(503), endpoint="get_data")
    out = tmp_path / "out.jsonl"
    rows = [InputRow({"identifier": i}, i, n) for n, i in enumerate(["ID-1", "ID-X", "MISSING-1"])]
    fast = {"retry": tether.Retry(attempts=2, initial=0.01, jitter=False), "breaker": None}
    for _ in range(2):
        async with tether.open(
            "specs/dataapi.yaml", environ=spec_environ(), base_url=dataapi.base_url, **fast
        ) as api:
            report = await FetchJob(api, "get_data", parse_destination(str(out)), rows=rows).run()
    failures = lines(tmp_path / "out.jsonl.failures.jsonl")
    assert [f["input"] for f in failures] == [{"identifier": "MISSING-1"}]
    assert failures[0]["error"]["error_code"] == "NOTFOUND_001"  # type: ignore[index]
    assert report.progress.skipped == 1 and report.progress.done == 1
    assert sorted(json.loads(x)["input"]["identifier"] for x in out.read_text().splitlines()) == [
        "ID-1",
        "ID-X",
    ]


async def test_a_dlq_marked_row_is_parked_once_and_a_replay_delivers_it_once(tmp_path: Path) -> None:
    """20 rows against a dead upstream, endpoint marked for the DLQ, the job run twice: 20 dead
    letters (one per row, not one per refused call); replayed against a live upstream, each entry
    is delivered once and the queue is empty."""
    port = closed_port()
    dlq = tmp_path / "dlq.db"
    spec = vendor_spec(
        tmp_path,
        f"http://127.0.0.1:{port}",
        extra=f"dlq: {{backend: sqlite, path: '{dlq}', schedule: [0.01]}}",
        endpoint_extra="    dlq: true",
    )
    rows = [InputRow({"id": f"ITEM-{i}"}, f"row {i}", i) for i in range(20)]
    for _ in range(2):
        async with tether.open(spec) as api:
            await FetchJob(api, "get_item", parse_destination(str(tmp_path / "o.jsonl")), rows=rows).run()
    async with tether.open(spec) as api:
        assert api.dlq is not None
        entries = await api.dlq.list()
    attempted = {e.request.url.rsplit("/", 1)[-1] for e in entries}
    assert len(entries) == len(attempted)  # one per row
    server = FaultServer(port=port)
    server.route("GET", "/items/{id}", Fault.echo())
    async with server, tether.open(spec) as api:
        assert api.dlq is not None
        replayer = api.replayer()
        for _ in range(5):
            await replayer.run_once()
        remaining = await api.dlq.counts()
    delivered = sorted(r.path for r in server.log)
    assert delivered == sorted(f"/items/{i}" for i in attempted)
    assert remaining.total == 0
