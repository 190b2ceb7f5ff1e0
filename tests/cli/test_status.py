"""tether status: state read from the spec's state store, as a table or JSON."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tether
from tether.cli import _register, app
from tether.mock import Fault, FaultServer

SPEC = """
service: {{name: vendor, base_url: "{url}"}}
retry: {{max_attempts: 1}}
circuit_breaker: {{failure_threshold: 2, timeout: 600s}}
rate_limits: {{requests_per_minute: 600, burst_size: 5}}
state: {{url: "sqlite:///{db}"}}
endpoints:
  get_item:
    path: /items/{{id}}
    method: GET
    parameters: [{{name: id, in: path, type: string, required: true}}]
"""


async def test_status_reads_the_shared_breaker_from_the_store(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    """A breaker opened by one integration shows as open in tether status (a fresh process's view)."""
    fault_server.route("GET", "/items/{id}", Fault.status(503))
    spec = tmp_path / "vendor.yaml"
    spec.write_text(SPEC.format(url=fault_server.url, db=tmp_path / "state.db"), encoding="utf-8")
    async with tether.open(spec) as api:
        for n in range(2):
            with pytest.raises(tether.APIError):
                await api.call("get_item", id=str(n))
        with pytest.raises(tether.CircuitOpenError):
            await api.call("get_item", id="x")
    _register()
    runner = CliRunner()
    # The command runs its own event loop: invoke it from another thread, as from a shell.
    as_json = await asyncio.to_thread(runner.invoke, app, ["status", str(spec), "--json"])
    assert as_json.exit_code == 0, as_json.output
    snapshot = json.loads(as_json.output)
    assert snapshot["breaker"]["state"] == "open"
    assert snapshot["service"] == "vendor"
    table = await asyncio.to_thread(runner.invoke, app, ["status", str(spec)])
    assert table.exit_code == 0, table.output
    assert "breaker" in table.output
    assert "open" in table.output
    assert len(fault_server.log) == 2  # status sent nothing


def test_status_of_a_broken_spec_exits_1(tmp_path: Path) -> None:
    """A spec that does not load gives exit code 1 and the error, not a traceback."""
    spec = tmp_path / "bad.yaml"
    spec.write_text("service: {name: x}\nretyr: {}\n", encoding="utf-8")
    _register()
    result = CliRunner().invoke(app, ["status", str(spec)])
    assert result.exit_code == 1
    assert "SPEC_001" in result.output or "retyr" in result.output
