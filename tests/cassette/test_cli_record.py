"""tether call / tether fetch --record DIR: the run's exchanges, scrubbed, in a cassette."""

from __future__ import annotations

import json
import os
from pathlib import Path

from typer.testing import CliRunner

import tether.cli
from tether.cassette import Cassette, cassette_files, verify
from tether.spec import load
from tether.testing import MockAPI, bundled_spec

tether.cli._register()
SPEC = bundled_spec("dataapi")


def _env(mock: MockAPI, key: str) -> dict[str, str]:
    return {"EXTERNAL_API_URL": mock.url, "EXTERNAL_API_KEY": key, "TETHER_ENV": "production"}


def test_call_record_writes_a_scrubbed_cassette_that_verifies(tmp_path: Path) -> None:
    """--record DIR writes DIR/get_data.yaml without the key, and the recording passes verify."""
    key = "sk-" + os.urandom(8).hex()
    with MockAPI.start("dataapi") as mock:
        result = CliRunner().invoke(
            tether.cli.app,
            ["call", str(SPEC), "get_data", "-p", "identifier=ITEM-001", "--record", str(tmp_path / "rec")],
            env=_env(mock, key),
        )
        assert result.exit_code == 0, result.output
        assert len(mock.log) == 1
    path = tmp_path / "rec" / "get_data.yaml"
    assert key.encode() not in path.read_bytes()
    (interaction,) = Cassette(path, record="none").interactions
    assert interaction.response is not None and interaction.response.status == 200
    assert verify(load(SPEC, environ={}), cassette_files(tmp_path / "rec")).ok


def test_fetch_record_keeps_every_call_of_the_bulk_job(tmp_path: Path) -> None:
    """A bulk fetch with --record DIR records one exchange per input row."""
    inputs = tmp_path / "ids.jsonl"
    inputs.write_text("".join(json.dumps({"identifier": f"ITEM-00{i}"}) + "\n" for i in range(1, 4)))
    with MockAPI.start("dataapi") as mock:
        result = CliRunner().invoke(
            tether.cli.app,
            [
                "fetch",
                str(SPEC),
                "get_data",
                "--each",
                str(inputs),
                "--out",
                str(tmp_path / "out.jsonl"),
                "--record",
                str(tmp_path / "rec"),
            ],
            env=_env(mock, "sk-" + os.urandom(8).hex()),
        )
        assert result.exit_code == 0, result.output
    urls = sorted(
        i.request.url for i in Cassette(tmp_path / "rec" / "get_data.yaml", record="none").interactions
    )
    assert urls == ["data/ITEM-001", "data/ITEM-002", "data/ITEM-003"]
