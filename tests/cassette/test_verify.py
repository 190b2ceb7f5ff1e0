"""tether verify: recorded responses against the spec, drift reported with file and line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tether
import tether.cli._verify
from tether.cli import app
from tether.testing import MockAPI, fast
from tether.testing._mock import bundled_spec

tether.cli._register()  # every command, as the tether script has them
SPEC = bundled_spec("dataapi")
runner = CliRunner()


async def _record(folder: Path) -> Path:
    """Fresh recordings from the bundled mock: data, a retried 503, two pages and a 404."""
    path = folder / "dataapi.yaml"
    with MockAPI.start("dataapi") as mock:
        mock.fail("get_data", [503, 200])
        async with mock.open(cassette=path, record="all") as api:
            with fast():
                await api.call("get_data", identifier="ITEM-001")
                async for _ in api.paginate(
                    "get_historical", identifier="ITEM-1", start="2024-01-01", end="2024-05-30"
                ):
                    pass
                with pytest.raises(tether.errors.NotFoundError):
                    await api.call("get_data", identifier="MISSING-1")
    return path


def _verify(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["verify", str(SPEC), *args])
    return result.exit_code, result.output


def _line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


@pytest.fixture
async def recorded(tmp_path: Path) -> Path:
    return await _record(tmp_path)


def test_fresh_recordings_pass(recorded: Path) -> None:
    """Cassettes just recorded from the provider agree with the spec: exit 0, nothing drifted."""
    code, output = _verify("--cassettes", str(recorded.parent))
    assert code == 0, output
    assert "1 file(s), 5 response(s) checked, 0 drift(s), 0 not checked" in output


def test_an_edited_body_fails_naming_the_field_file_and_line(recorded: Path) -> None:
    """One recorded value changed to a string: exit 1, the drift names $.records[0].value and its line."""
    text = recorded.read_text()
    first = re.search(r"(records:\n\s+- date: \S+\n\s+value: )([0-9.]+)", text)
    assert first is not None
    recorded.write_text(text[: first.start(2)] + "high" + text[first.end(2) :])
    line = _line_of(recorded, "value: high")
    code, output = _verify("--cassettes", str(recorded.parent))
    assert code == 1, output
    assert f"{recorded}:{line}:" in output
    assert "$.records[0].value: 'high' is not of type 'number' (type)" in output
    assert "(get_historical)" in output


def test_status_content_type_and_pagination_drift_are_reported(recorded: Path) -> None:
    """An undocumented status, a changed content type and a missing pagination field each drift."""
    text = recorded.read_text()
    text = text.replace("status: 404", "status: 418", 1)
    text = text.replace("Content-Type: application/json", "Content-Type: text/html")
    text = re.sub(r"\n\s+total_pages: \d+", "", text, count=1)
    recorded.write_text(text)
    code, output = _verify("--cassettes", str(recorded.parent), "--json")
    assert code == 1
    drifts = json.loads(output)["drifts"]
    rules = {(d["rule"], d["field"]) for d in drifts}
    assert ("error_mapping", "status") in rules
    assert ("pagination", "total_pages") in rules
    assert any(d["rule"] == "content_type" and d["field"] == "Content-Type" for d in drifts)
    assert all(d["file"] == str(recorded) and d["line"] > 0 for d in drifts)


def test_the_folder_comes_from_the_spec_and_pact_files_are_checked(tmp_path: Path) -> None:
    """Without --cassettes the spec's contract_tests.pact_location is checked; a Pact file's bad
    body drifts with its line; a Pact for another provider is reported."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        SPEC.read_text() + "\ntesting:\n  contract_tests:\n    provider: dataapi\n    pact_location: pacts\n"
    )
    (tmp_path / "pacts").mkdir()
    pact = {
        "consumer": {"name": "reports"},
        "provider": {"name": "other-api"},
        "interactions": [
            {
                "description": "an item",
                "request": {"method": "GET", "path": "/v1/data/ITEM-1"},
                "response": {
                    "status": 200,
                    "headers": {"Content-Type": "application/json"},
                    "body": {
                        "identifier": "ITEM-1",
                        "value": "1.5",
                        "timestamp": "2024-01-01T00:00:00Z",
                        "request_id": "req_abcdef",
                    },
                },
            }
        ],
    }
    (tmp_path / "pacts" / "reports-dataapi.json").write_text(json.dumps(pact, indent=2))
    result = runner.invoke(app, ["verify", str(spec)])
    assert result.exit_code == 1, result.output
    assert "$.value: '1.5' is not of type 'number' (type)" in result.output
    assert "reports-dataapi.json:" in result.output
    assert "recorded for 'other-api'; testing.contract_tests.provider is 'dataapi'" in result.output


def test_nothing_to_check_is_a_usage_error(tmp_path: Path) -> None:
    """No folder configured, or an empty one, exits 2 saying what to pass."""
    code, output = _verify()
    assert code == 2 and "pass --cassettes DIR" in output
    code, output = _verify("--cassettes", str(tmp_path))
    assert code == 2 and "no cassettes" in output
