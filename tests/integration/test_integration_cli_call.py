"""tether call SPEC ENDPOINT -p k=v: one call through the pipeline, JSON out, -v attempts, masked."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from integration_helpers import CANARY, spec_text
from typer.testing import CliRunner, Result

from tether.cli import _register, app
from tether.cli._call import parse_params
from tether.mock import Fault, FaultServer
from tether.spec import load

_register()  # every command on the app, as the tether script has them

SPEC = """\
service:
  name: cli-demo
  environments: {development: "@URL@", production: https://api.example.com}
  default_environment: production
authentication: {type: api_key, config: {key_name: X-Key, secret: "${CANARY_KEY}"}}
retry: {initial_delay: 1, max_delay: 5, jitter: false}
endpoints:
  get_item:
    path: /items/{id}
    parameters:
      - {name: id, in: path}
      - {name: limit, in: query, type: integer}
      - {name: tags, in: query, type: array}
"""


@pytest.fixture
def spec_file(tmp_path: Path, fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The spec on disk, its development environment pointing at the loopback server."""
    monkeypatch.setenv("CANARY_KEY", CANARY)
    monkeypatch.setenv("COLUMNS", "200")
    path = tmp_path / "cli.yaml"
    path.write_text(spec_text(SPEC, fault_server.url), encoding="utf-8")
    return path


async def _invoke(*args: str) -> Result:
    # The command runs its own event loop; run it in a thread so the server keeps answering here.
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


async def test_call_prints_the_result_as_json(spec_file: Path, fault_server: FaultServer) -> None:
    """A successful call prints the data as JSON and exits 0; -p values reach the request."""
    fault_server.route("GET", "/items/{id}", Fault.ok(json={"id": "A-1", "price": 3.5}))
    result = await _invoke(
        "call", str(spec_file), "get_item", "-p", "id=A-1", "-p", "limit=5", "--env", "development"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"id": "A-1", "price": 3.5}
    (seen,) = fault_server.log
    assert seen.path == "/items/A-1"
    assert seen.param("limit") == "5"
    assert seen.header("x-key") == CANARY


async def test_verbose_shows_each_attempt_and_never_the_secret(
    spec_file: Path, fault_server: FaultServer
) -> None:
    """-v prints every attempt, its status and the wait before the next; the canary key never shows."""
    fault_server.route(
        "GET",
        "/items/{id}",
        Fault.status(503, json={"error": f"bad key {CANARY}"}),
        Fault.ok(json={"echo": CANARY, "ok": True}),
    )
    result = await _invoke("call", str(spec_file), "get_item", "-p", "id=A-1", "-e", "development", "-v")
    assert result.exit_code == 0, result.output
    output = result.output
    assert CANARY not in output
    assert "attempt 1: HTTP 503" in output
    assert "before attempt 2" in output
    assert "attempt 2: HTTP 200" in output
    assert json.loads(result.stdout)["ok"] is True


async def test_a_failed_call_exits_1_with_the_error_code(spec_file: Path, fault_server: FaultServer) -> None:
    """A 404 exits 1 and prints the typed error's code and message (masked)."""
    fault_server.route("GET", "/items/{id}", Fault.status(404, json={"detail": CANARY}))
    result = await _invoke(
        "call", str(spec_file), "get_item", "-p", "id=missing", "--env", "development", "-v"
    )
    assert result.exit_code == 1
    assert "error: NOTFOUND_001 NotFoundError: HTTP 404" in result.output
    assert CANARY not in result.output
    assert result.stdout == ""


async def test_a_bad_parameter_exits_1_and_sends_nothing(spec_file: Path, fault_server: FaultServer) -> None:
    """An invalid -p value is a VALID_001 error before anything reaches the server."""
    result = await _invoke(
        "call", str(spec_file), "get_item", "-p", "id=x", "-p", "limit=many", "--env", "development"
    )
    assert result.exit_code == 1
    assert "VALID_001" in result.output
    assert "limit" in result.output
    assert fault_server.log == []


def test_params_are_text_unless_the_spec_says_json() -> None:
    """Scalars stay text for the spec's types to convert; array parameters are read as JSON."""
    spec = load(SPEC.replace("@URL@", "http://127.0.0.1:9"), environ={"CANARY_KEY": "x"})
    endpoint = spec.endpoints["get_item"]
    assert parse_params(["id=007", "limit=5", 'tags=["a","b"]'], endpoint) == {
        "id": "007",
        "limit": "5",
        "tags": ["a", "b"],
    }
    assert parse_params(['extra={"k": 1}', "plain=word"], endpoint) == {"extra": {"k": 1}, "plain": "word"}
