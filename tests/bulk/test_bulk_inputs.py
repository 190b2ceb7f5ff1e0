"""Input files are read strictly and checked before the first call; outputs are refused when unusable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bulk_helpers import IDS, YEAR, run_tether, spec_environ, write_csv

import tether
from tether.bulk import FetchJob, JobOptions, parse_destination, read_inputs
from tether.dataapi._mock import DataAPIMock
from tether.errors import JobError, RequestValidationError


def test_a_utf8_bom_is_stripped_from_the_first_column_name(tmp_path: Path) -> None:
    """An Excel export's BOM does not stay in the header: the first column is 'identifier'."""
    path = tmp_path / "in.csv"
    path.write_bytes("\ufeffidentifier,start\nA-1,2024-01-01\n".encode())
    (row,) = read_inputs(path)
    assert dict(row.values) == {"identifier": "A-1", "start": "2024-01-01"}


def test_an_unbalanced_quote_is_refused_with_its_line_not_merged(tmp_path: Path) -> None:
    """'"A1' then 'A2' never becomes one row 'A1\\nA2': the malformed record's line is named."""
    path = tmp_path / "in.csv"
    path.write_text('identifier\n"A1\nA2\n', encoding="utf-8")
    with pytest.raises(RequestValidationError, match=r"in\.csv:2.*malformed CSV"):
        read_inputs(path)


def test_a_row_with_more_fields_than_the_header_names_its_line(tmp_path: Path) -> None:
    """A stray comma on line 3 is a located error, not a traceback or a silently dropped field."""
    path = tmp_path / "in.csv"
    path.write_text("identifier,start\nA-1,2024-01-01\nA-2,2024-01-01,extra\n", encoding="utf-8")
    with pytest.raises(RequestValidationError, match=r"in\.csv:3: 3 field\(s\) but the header has 2"):
        read_inputs(path)


def test_non_utf8_input_names_the_line_and_byte(tmp_path: Path) -> None:
    """Latin-1 bytes on line 2 are reported with the line, not a UnicodeDecodeError."""
    path = tmp_path / "in.csv"
    path.write_bytes(b"identifier\nCAF\xc9\n")
    with pytest.raises(RequestValidationError, match=r"in\.csv:2: not UTF-8 \(byte 0xc9"):
        read_inputs(path)


def test_json_lines_and_json_inputs_are_located(tmp_path: Path) -> None:
    """A JSON Lines line that is not an object, and a JSON file that is not an array, name where."""
    lines = tmp_path / "in.jsonl"
    lines.write_text('{"identifier": "A-1"}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(RequestValidationError, match=r"in\.jsonl:2: each input is an object"):
        read_inputs(lines)
    array = tmp_path / "in.json"
    array.write_text('{"identifier": "A-1"}', encoding="utf-8")
    with pytest.raises(RequestValidationError, match="holds an array of objects"):
        read_inputs(array)


def test_out_in_a_missing_folder_is_refused_before_anything(tmp_path: Path) -> None:
    """--out in a folder that does not exist is a JobError naming the folder."""
    with pytest.raises(JobError, match="does not exist"):
        parse_destination(str(tmp_path / "nope" / "out.jsonl"))
    with pytest.raises(JobError, match="name the table"):
        parse_destination(f"sqlite:///{tmp_path}/o.db")


async def test_a_wrong_column_is_refused_before_any_request(dataapi: DataAPIMock, tmp_path: Path) -> None:
    """A misspelt column and a bad date: one error listing both rows by line; the mock's log is
    empty and no output file is created."""
    path = tmp_path / "in.csv"
    path.write_text(
        "identifer,start,end\nA-1,2024-01-01,2024-02-01\nA-2,2024-13-01,2024-02-01\n", encoding="utf-8"
    )
    out = tmp_path / "out.jsonl"
    async with tether.open("specs/dataapi.yaml", environ=spec_environ(), base_url=dataapi.base_url) as api:
        job = FetchJob(api, "get_historical", parse_destination(str(out)), rows=read_inputs(path))
        with pytest.raises(RequestValidationError) as info:
            await job.run()
    text = str(info.value)
    assert "in.csv:2" in text and "in.csv:3" in text and "identifier" in text and "nothing was sent" in text
    assert dataapi.log == []
    assert not out.exists()


async def test_a_corrupt_resumed_output_is_refused_not_a_traceback(
    dataapi: DataAPIMock, tmp_path: Path
) -> None:
    """An output edited by hand (last line not JSON, or no 'input') and an output the job did not
    write are JobErrors on resume: nothing is appended to them."""
    out = tmp_path / "out.jsonl"
    rows = read_inputs(write_csv(tmp_path / "in.csv", IDS[:1]))
    options = JobOptions(incremental=None)
    async with tether.open("specs/dataapi.yaml", environ=spec_environ(), base_url=dataapi.base_url) as api:
        await FetchJob(api, "get_historical", parse_destination(str(out)), rows=rows, options=options).run()
        good = out.read_bytes()
        last = good[good.rindex(b"\n", 0, len(good) - 1) + 1 :]
        head = good[: len(good) - len(last)]
        not_json = b"\xff" * (len(last) - 1) + b"\n"
        no_input = b'{"x":"' + b"y" * (len(last) - 9) + b'"}\n'
        for bad in (not_json, no_input, last[:-10] + b"\n"):
            out.write_bytes(head + bad)
            with pytest.raises(JobError, match=r"changed outside tether|written"):
                await FetchJob(api, "get_historical", parse_destination(str(out)), rows=rows).run()
        stranger = tmp_path / "theirs.jsonl"
        stranger.write_text(json.dumps({"x": 1}) + "\n", encoding="utf-8")
        with pytest.raises(JobError, match="has no job state"):
            await FetchJob(api, "get_historical", parse_destination(str(stranger)), rows=rows).run()
    assert stranger.read_text(encoding="utf-8") == json.dumps({"x": 1}) + "\n"


async def test_cli_reports_input_problems_without_a_traceback(dataapi: DataAPIMock, tmp_path: Path) -> None:
    """Through the real CLI: a malformed CSV exits 1 with a located one-line error, no traceback."""
    path = tmp_path / "in.csv"
    path.write_text(f'identifier,start,end\n"A1,{YEAR[0]},{YEAR[1]}\n', encoding="utf-8")
    code, out, err = await run_tether(
        "fetch", "specs/dataapi.yaml", "get_historical", "--each", str(path),
        "--out", str(tmp_path / "o.jsonl"), "--base-url", dataapi.base_url,
    )  # fmt: skip
    assert code == 1
    assert "Traceback" not in err and out == ""
    assert "in.csv:2" in err and "malformed CSV" in err
