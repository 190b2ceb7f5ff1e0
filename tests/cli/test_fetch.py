"""tether fetch: one call per input row, results and failures as JSON Lines, resumable."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tether
from tether.cli import _register, app
from tether.cli._fetch import read_inputs, run_fetch
from tether.errors import SpecError
from tether.mock import Fault, FaultServer

SPEC = """
service: {{name: vendor, base_url: "{url}"}}
retry: {{max_attempts: 3, initial_delay: 10, jitter: false}}
endpoints:
  get_item:
    path: "/items/{{id}}"
    method: GET
    parameters: [{{name: id, in: path, type: string, required: true}}]
"""


def _spec(tmp_path: Path, server: FaultServer) -> Path:
    path = tmp_path / "vendor.yaml"
    path.write_text(SPEC.format(url=server.url), encoding="utf-8")
    return path


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


async def test_each_row_is_fetched_once_and_failures_are_kept(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    """20 rows: 19 fetched into OUT, the one that 404s into the failures file; one call per row."""
    fault_server.route("GET", "/items/missing", Fault.status(404))
    fault_server.route("GET", "/items/{id}", Fault.echo())
    rows = [{"id": f"ITEM-{i}"} for i in range(19)] + [{"id": "missing"}]
    out = tmp_path / "out.jsonl"
    async with tether.open(_spec(tmp_path, fault_server)) as api:
        report = await run_fetch(api, "get_item", rows, out, concurrency=4)
    assert report.succeeded == 19
    assert dict(report.failed) == {"NotFoundError": 1}
    assert sorted(r["input"]["id"] for r in _lines(out)) == sorted(f"ITEM-{i}" for i in range(19))
    (failure,) = _lines(out.with_name("out.jsonl.failures.jsonl"))
    assert failure["error"]["error_code"] == "NOTFOUND_001"
    assert len(fault_server.log) == 20


async def test_a_second_run_resumes_and_drops_a_cut_line(fault_server: FaultServer, tmp_path: Path) -> None:
    """Rows already in OUT are skipped; a half-written last line (a crash) is removed and redone."""
    fault_server.route("GET", "/items/{id}", Fault.echo())
    rows = [{"id": f"ITEM-{i}"} for i in range(10)]
    out = tmp_path / "out.jsonl"
    done = "".join(json.dumps({"input": r, "data": {}}) + "\n" for r in rows[:6])
    out.write_text(done + '{"input": {"id": "ITEM-6"}, "da', encoding="utf-8")
    async with tether.open(_spec(tmp_path, fault_server)) as api:
        report = await run_fetch(api, "get_item", rows, out)
    assert report.skipped == 6
    assert report.succeeded == 4
    assert sorted(e.path for e in fault_server.log) == [f"/items/ITEM-{i}" for i in range(6, 10)]
    assert [r["input"]["id"] for r in _lines(out)][:6] == [f"ITEM-{i}" for i in range(6)]
    assert len(_lines(out)) == 10


async def test_transient_faults_are_retried_through_the_pipeline(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    """A 503 then 200 per row: every row lands, each after two requests."""
    fault_server.route("GET", "/items/{id}", Fault.status(503), Fault.echo())
    out = tmp_path / "out.jsonl"
    async with tether.open(_spec(tmp_path, fault_server)) as api:
        report = await run_fetch(api, "get_item", [{"id": "A"}], out)
    assert report.succeeded == 1
    assert len(fault_server.log) == 2


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("in.csv", "id,kind\nA,x\nB,y\n"),
        ("in.jsonl", '{"id": "A", "kind": "x"}\n\n{"id": "B", "kind": "y"}\n'),
        ("in.json", '[{"id": "A", "kind": "x"}, {"id": "B", "kind": "y"}]'),
    ],
)
def test_inputs_are_read_from_csv_jsonl_and_json(tmp_path: Path, name: str, text: str) -> None:
    """Each input format gives the same rows."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    assert read_inputs(path) == [{"id": "A", "kind": "x"}, {"id": "B", "kind": "y"}]


def test_bad_inputs_are_named(tmp_path: Path) -> None:
    """A row that is not an object, or an unknown format, is a SpecError naming the place."""
    bad = tmp_path / "in.jsonl"
    bad.write_text('{"id": 1}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(SpecError, match=r"in.jsonl:2"):
        read_inputs(bad)
    unknown = tmp_path / "in.txt"
    unknown.write_text("id\nA\n", encoding="utf-8")
    with pytest.raises(SpecError, match=r"use \.csv"):
        read_inputs(unknown)
    with pytest.raises(SpecError, match="cannot read the input file"):
        read_inputs(tmp_path / "absent.csv")


async def test_the_command_prints_a_summary_and_exits_2_on_failures(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    """tether fetch runs end to end; a failed row makes the exit code 2."""
    fault_server.route("GET", "/items/missing", Fault.status(404))
    fault_server.route("GET", "/items/{id}", Fault.echo())
    inputs = tmp_path / "in.csv"
    inputs.write_text("id\nA\nB\nmissing\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    _register()
    args = ["fetch", str(_spec(tmp_path, fault_server)), "get_item", "--each", str(inputs), "--out", str(out)]
    result = await asyncio.to_thread(CliRunner().invoke, app, args)
    assert result.exit_code == 2, result.output
    assert "3 inputs: 2 fetched, 0 already done, 1 failed" in result.output
