"""Incremental runs, backfill chunks, fan-out from a paginated list endpoint, per-page output."""

from __future__ import annotations

import json
from pathlib import Path

from bulk_helpers import jsonl_records, spec_environ, write_csv

import tether
from tether.bulk import FetchJob, Incremental, InputRow, JobOptions, Parent, parse_destination, read_inputs
from tether.dataapi._mock import DEFAULT_CATALOG, DataAPIMock

CURSOR = Incremental(cursor_field="date", start_param="start", end_param="end")


def _open(dataapi: DataAPIMock) -> tether.Integration:
    return tether.open("specs/dataapi.yaml", environ=spec_environ(), base_url=dataapi.base_url)


async def test_a_second_run_with_a_cursor_fetches_only_newer_records(
    dataapi: DataAPIMock, tmp_path: Path
) -> None:
    """Run 1 to June 30, run 2 to Dec 31 for the same identifiers: run 2 writes exactly the 184
    later days per row, starting its requests at the kept date; no record is written twice."""
    out = tmp_path / "out.jsonl"
    options = JobOptions(incremental=CURSOR)
    async with _open(dataapi) as api:
        first = read_inputs(write_csv(tmp_path / "a.csv", end="2024-06-30"))
        await FetchJob(api, "get_historical", parse_destination(str(out)), rows=first, options=options).run()
        dataapi.clear_log()
        second = read_inputs(write_csv(tmp_path / "b.csv", end="2024-12-31"))
        report = await FetchJob(
            api, "get_historical", parse_destination(str(out)), rows=second, options=options
        ).run()
    assert report.progress.records == 3 * 184
    starts = {entry.query["start"][0] for entry in dataapi.log}
    assert starts == {"2024-06-30"}
    records = jsonl_records(out)
    assert len(records) == 3 * 366 == len({(i, d) for i, d, _ in records})


async def test_a_lookback_starts_earlier_and_writes_the_window_again(
    dataapi: DataAPIMock, tmp_path: Path
) -> None:
    """lookback 3 days: the next run asks from June 27 and writes those days again (updates)."""
    out = tmp_path / "out.jsonl"
    rows = read_inputs(write_csv(tmp_path / "a.csv", ["ID-A"], end="2024-06-30"))
    inc = Incremental(cursor_field="date", start_param="start", end_param="end", lookback=3 * 86400)
    async with _open(dataapi) as api:
        for _ in range(2):
            dataapi.clear_log()
            opts = JobOptions(incremental=inc)
            report = await FetchJob(
                api, "get_historical", parse_destination(str(out)), rows=rows, options=opts
            ).run()
    assert {e.query["start"][0] for e in dataapi.log} == {"2024-06-27"}
    assert report.progress.records == 4


async def test_since_until_backfill_runs_in_chunks_and_keeps_no_cursor(
    dataapi: DataAPIMock, tmp_path: Path
) -> None:
    """--since/--until with 90-day chunks: 5 units for one row, each its own range, 366 records."""
    out = tmp_path / "out.jsonl"
    inc = Incremental("date", "start", "end", since="2024-01-01", until="2024-12-31", chunk=90 * 86400)
    rows = [InputRow({"identifier": "ID-A"}, "row 1", 1)]
    async with _open(dataapi) as api:
        report = await FetchJob(
            api, "get_historical", parse_destination(str(out)), rows=rows, options=JobOptions(incremental=inc)
        ).run()
    assert report.progress.total == 5
    ranges = sorted({(e.query["start"][0], e.query["end"][0]) for e in dataapi.log})
    assert ranges[0] == ("2024-01-01", "2024-03-30") and ranges[-1] == ("2024-12-26", "2024-12-31")
    assert len(jsonl_records(out)) == 366 == len({d for _, d, _ in jsonl_records(out)})


async def test_fan_out_from_a_paginated_list_endpoint_fetches_every_child(
    dataapi: DataAPIMock, tmp_path: Path
) -> None:
    """list_identifiers has two pages (10 + 2); each of the 12 identifiers is fetched once."""
    out = tmp_path / "out.jsonl"
    parent = Parent("list_identifiers", {"identifier": "identifier"})
    options = JobOptions(params={"start": "2024-01-01", "end": "2024-01-10"})
    async with _open(dataapi) as api:
        report = await FetchJob(
            api, "get_historical", parse_destination(str(out)), parent=parent, options=options
        ).run()
    listed = [e for e in dataapi.log if e.path.endswith("/identifiers")]
    assert len(listed) == 2
    assert report.ok and report.progress.done == len(DEFAULT_CATALOG)
    assert {i for i, _, _ in jsonl_records(out)} == set(DEFAULT_CATALOG)
    assert len(jsonl_records(out)) == 10 * len(DEFAULT_CATALOG)


async def test_per_page_writes_one_line_per_page(dataapi: DataAPIMock, tmp_path: Path) -> None:
    """--per page: 4 lines for 366 records at 100 per page, pages numbered from 0."""
    out = tmp_path / "out.jsonl"
    rows = read_inputs(write_csv(tmp_path / "a.csv", ["ID-A"]))
    async with _open(dataapi) as api:
        await FetchJob(
            api, "get_historical", parse_destination(str(out)), rows=rows, options=JobOptions(per="page")
        ).run()
    pages = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [p["page"] for p in pages] == [0, 1, 2, 3]
    assert [len(p["records"]) for p in pages] == [100, 100, 100, 66]
