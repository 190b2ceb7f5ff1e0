"""``tether mock SPEC`` / ``serve_spec``: a fault-injecting mock of a spec's API, called through tether."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from typer.testing import CliRunner

import tether
from tether.cli import _register, app
from tether.mock import FaultServer, routes_for, serve_spec
from tether.mock._spec import example_for
from tether.spec import Spec, load
from tether.testing import VirtualClock
from tether.validation import first_violation

SPECS = Path(__file__).resolve().parents[2] / "specs"
DATAAPI = SPECS / "dataapi.yaml"
TEMPLATE = SPECS / "int-template-filled.yaml"
ENVIRON = {"EXTERNAL_API_KEY": "mock-key-27182818"}


def _load(path: Path) -> Spec:
    return load(path, env="development", environ=ENVIRON)


@pytest.fixture(autouse=True)
def _in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Specs with a file DLQ write it under the test's temporary directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TETHER_ENV", raising=False)
    monkeypatch.delenv("EXTERNAL_API_RATE_TIER", raising=False)


@pytest.fixture
async def served(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Spec, FaultServer]]:
    """A spec (the test's parameter) and its mock, started with no injected faults."""
    spec = _load(request.param)
    server = await serve_spec(spec, fault_rate=0.0, seed=1)
    try:
        yield spec, server
    finally:
        await server.stop()


def _check(spec: Spec, endpoint: str, result: tether.Result) -> None:
    success = spec.endpoints[endpoint].response
    schema = success.success.schema_ if success is not None else None
    if schema is not None:
        assert first_violation(schema, result.response.json()) is None


@pytest.mark.parametrize("served", [DATAAPI], indirect=True)
async def test_every_dataapi_endpoint_answers_valid_bodies(served: tuple[Spec, FaultServer]) -> None:
    """Each endpoint of specs/dataapi.yaml, called through tether.open at the mock, passes validation."""
    spec, server = served
    async with tether.open(DATAAPI, env="development", environ=ENVIRON, base_url=f"{server.url}/v1") as api:
        one = await api.call("get_data", identifier="ITEM-001")
        batch = await api.call("get_data_batch", identifiers=["ITEM-001", "ITEM-002"])
        history = [
            r
            async for r in api.paginate(
                "get_historical", identifier="ITEM-1", start="2024-01-01", end="2024-02-01"
            )
        ]
    _check(spec, "get_data", one)
    _check(spec, "get_data_batch", batch)
    assert len(batch.data) == 3
    assert len(history) == 3
    assert {r.route for r in server.log} == {
        "/v1/data/{identifier}",
        "/v1/data/batch",
        "/v1/historical/{identifier}",
    }
    assert all(r.status == 200 for r in server.log)


@pytest.mark.parametrize("served", [TEMPLATE], indirect=True)
async def test_every_template_endpoint_answers_through_the_pipeline(served: tuple[Spec, FaultServer]) -> None:
    """Each endpoint of the filled INT template (mappings, cursor pages, SSE) runs against the mock."""
    spec, server = served
    async with tether.open(TEMPLATE, env="development", environ=ENVIRON, base_url=f"{server.url}/v1") as api:
        one = await api.call("get_data", identifier="ITEM-001")
        batch = await api.call("get_data_batch", identifiers=["ITEM-001"])
        history = [
            r
            async for r in api.paginate(
                "get_historical", identifier="ITEM-1", start="2024-01-01", end="2024-02-01"
            )
        ]
        changes = [r async for r in api.paginate("list_changes")]
        stream = await api.call("stream_updates", identifier="ITEM-001")
    _check(spec, "get_data", one)
    _check(spec, "get_data_batch", batch)
    assert len(history) == 3 and len(changes) == 3
    assert str(history[0]["date"]) == "2024-01-01"
    assert "event: message" in stream.response.text
    assert len(server.log) == 5 and all(r.status == 200 for r in server.log)


async def test_a_fault_rate_of_one_with_only_503_fails_calls_with_api_error() -> None:
    """fault_rate=1.0 and faults=['503']: every attempt gets 503 and the call fails with APIError."""
    spec = _load(DATAAPI)
    server = await serve_spec(spec, fault_rate=1.0, faults=["503"], seed=3)
    try:
        async with tether.open(
            DATAAPI, env="development", environ=ENVIRON, base_url=f"{server.url}/v1", clock=VirtualClock()
        ) as api:
            with pytest.raises(tether.APIError):
                await api.call("get_data", identifier="ITEM-001")
    finally:
        await server.stop()
    assert server.log and all(r.status == 503 for r in server.log)


async def test_the_specs_rate_limit_is_enforced_beyond_the_burst() -> None:
    """With enforce_limits the server answers 429 once the spec's burst (10) is spent."""
    spec = _load(DATAAPI)
    (route, *_) = routes_for(spec, enforce_limits=True)
    assert (route.rate_limit, route.burst) == ("75/minute", 10)
    server = await serve_spec(spec, fault_rate=0.0, enforce_limits=True)
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(15):
                async with session.get(f"{server.url}/v1/data/ITEM-1") as resp:
                    await resp.read()
    finally:
        await server.stop()
    statuses = [r.status for r in server.log]
    assert statuses[:10] == [200] * 10
    assert statuses.count(429) >= 4  # 75/minute refills one token per 0.8 s: at most one more 200


async def test_no_enforce_limits_leaves_routes_unlimited() -> None:
    """enforce_limits=False installs no rate limit on any route."""
    assert all(r.rate_limit is None for r in routes_for(_load(TEMPLATE), enforce_limits=False))


async def test_a_non_loopback_host_is_refused() -> None:
    """serve_spec and the CLI refuse to bind an address that is not loopback."""
    with pytest.raises(ValueError, match="loopback"):
        await serve_spec(_load(DATAAPI), host="0.0.0.0")
    _register()
    result = CliRunner().invoke(app, ["mock", str(DATAAPI), "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "loopback" in result.output


def test_examples_honour_schema_keywords() -> None:
    """The generator prefers examples, honours enum, formats, patterns and numeric bounds."""
    schema: dict[str, Any] = {
        "type": "object",
        "required": ["id"],
        "properties": {
            "id": {"type": "string", "pattern": "^req_[a-z0-9]{6,}$"},
            "kind": {"enum": ["b", "a"]},
            "day": {"type": "string", "format": "date"},
            "size": {"type": "integer", "minimum": 5, "maximum": 9},
            "named": {"type": "string", "examples": ["given"]},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
    }
    value = example_for(schema)
    assert first_violation(schema, value) is None
    assert value["kind"] == "b" and value["day"] == "2024-01-01" and value["size"] == 5
    assert value["named"] == "given" and len(value["tags"]) == 3


def test_the_cli_serves_until_sigterm(tmp_path: Path) -> None:
    """`tether mock SPEC` prints its URL, answers a request and exits 0 on SIGTERM."""
    env = {**os.environ, **ENVIRON, "TETHER_ENV": "development"}
    code = "from tether.cli import main; main()"
    args = [sys.executable, "-c", code, "mock", str(DATAAPI), "--fault-rate", "0", "--seed", "1"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("listening http://127.0.0.1:")
        url = line.split(" ", 1)[1]

        async def fetch() -> tuple[int, Any]:
            async with aiohttp.ClientSession() as session, session.get(f"{url}/v1/data/ITEM-1") as resp:
                return resp.status, await resp.json()

        status, body = asyncio.run(fetch())
        assert status == 200 and "request_id" in body
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "get_data" in out
