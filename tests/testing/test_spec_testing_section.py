"""The spec's testing: section acts: sandbox environment, fixtures_location, mock_responses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2
import pytest

import tether
from tether.cassette._answers import RECORDING_HEADER, answering_routes
from tether.mock import FaultServer
from tether.mock._spec import routes_for
from tether.spec import load
from tether.spec._enforcement import classify, not_enforced
from tether.testing import MockAPI

BASE = """
service:
  name: sb
  base_url: https://api.example.com/v1
authentication:
  type: api_key
  config: {key_location: header, key_name: X-Key, secret: "${MAIN_KEY}"}
endpoints:
  ping: {path: /ping}
"""


def _spec(tmp_path: Path, testing: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(BASE + "testing:\n" + testing)
    return path


async def _sent_key(spec: Any, fault_server: FaultServer, **kwargs: Any) -> str | None:
    async with tether.open(spec, **kwargs) as api:
        echoed = await api.client.get(fault_server.url + "/echo")
    return echoed.json()["headers"].get("x-key")


async def test_sandbox_url_and_test_credentials_define_the_sandbox_environment(
    tmp_path: Path, fault_server: FaultServer
) -> None:
    """env="sandbox" calls sandbox_url and signs with test_credentials; other environments keep
    the main key."""
    spec = _spec(
        tmp_path,
        f"  integration_tests:\n    sandbox_url: {fault_server.url}\n"
        "    test_credentials: ${SANDBOX_KEY}\n",
    )
    environ = {"MAIN_KEY": "main-key-1", "SANDBOX_KEY": "sandbox-key-1"}
    loaded = load(spec, env="sandbox", environ=environ)
    assert loaded.environment == "sandbox" and loaded.base_url == fault_server.url
    assert load(spec, environ={**environ, "TETHER_ENV": "sandbox"}).base_url == fault_server.url
    assert await _sent_key(spec, fault_server, env="sandbox", environ=environ) == "sandbox-key-1"
    main = await _sent_key(spec, fault_server, environ=environ, base_url=fault_server.url)
    assert main == "main-key-1"


async def test_test_credentials_may_name_a_secrets_file(tmp_path: Path, fault_server: FaultServer) -> None:
    """A test_credentials path (with #key) is read as a secrets file beside the spec."""
    (tmp_path / "sandbox.json").write_text(json.dumps({"api_key": "file-key-1"}))
    spec = _spec(
        tmp_path,
        f"  integration_tests:\n    sandbox_url: {fault_server.url}\n"
        "    test_credentials: sandbox.json#api_key\n",
    )
    assert await _sent_key(spec, fault_server, env="sandbox", environ={}) == "file-key-1"


async def test_a_relative_cassette_lives_in_fixtures_location(
    tmp_path: Path, fault_server: FaultServer
) -> None:
    """tether.open(spec, cassette="ping.yaml") writes <spec folder>/<fixtures_location>/ping.yaml."""
    fault_server.route("GET", "/ping", tether.mock.Fault.ok(json={"pong": True}))
    spec = _spec(tmp_path, "  unit_tests:\n    fixtures_location: fixtures/sb\n")
    environ = {"MAIN_KEY": "main-key-2"}
    async with tether.open(spec, environ=environ, base_url=fault_server.url, cassette="ping.yaml") as api:
        assert (await api.call("ping")).data == {"pong": True}
        assert api.client.cassette is not None
    assert (tmp_path / "fixtures" / "sb" / "ping.yaml").is_file()


async def test_mock_responses_answers_from_the_recorded_cassettes(tmp_path: Path) -> None:
    """The mock answers a recorded request with the recorded response (and says from where), and
    an unrecorded one with the example body."""
    folder = tmp_path / "fixtures"
    body = {
        "identifier": "ITEM-7",
        "value": 7.5,
        "timestamp": "2024-01-01T00:00:00Z",
        "request_id": "req_abcdef",
    }
    with MockAPI.start("dataapi") as mock:
        mock.respond("get_data", json=body)
        async with mock.open(cassette=folder / "d.yaml", record="all") as api:
            await api.call("get_data", identifier="ITEM-7")
        spec = mock.spec
    routes, count = answering_routes(spec, routes_for(spec, enforce_limits=False), [folder / "d.yaml"])
    assert count == 1
    async with FaultServer() as server:
        for route in routes:
            route.install(server)
        async with httpx2.AsyncClient(base_url=server.url) as client:
            recorded = await client.get("/v1/data/ITEM-7")
            other = await client.get("/v1/data/ITEM-8")
    assert recorded.json() == body and recorded.headers[RECORDING_HEADER].startswith("d.yaml:")
    assert other.json() != body and RECORDING_HEADER.lower() not in other.headers


def test_the_testing_section_is_enforced_except_use_sandbox(tmp_path: Path) -> None:
    """tether check no longer reports the testing keys, only use_sandbox, which has no effect yet."""
    spec = _spec(
        tmp_path,
        "  unit_tests: {mock_responses: true, fixtures_location: f}\n"
        "  integration_tests:\n"
        "    {use_sandbox: true, sandbox_url: 'https://sb.example.com', test_credentials: x}\n"
        "  contract_tests: {provider: sb, pact_location: pacts}\n",
    )
    assert [k for k in not_enforced(load(spec, environ={})) if k.startswith("testing")] == [
        "testing.integration_tests.use_sandbox"
    ]
    assert classify("testing.unit_tests.fixtures_location") == "enforced"
    assert classify("endpoints.x.response.errors.404.schema") == "enforced"


def test_an_unknown_environment_still_lists_the_known_ones(tmp_path: Path) -> None:
    """Without sandbox_url, env="sandbox" on a spec with environments is refused as before."""
    path = tmp_path / "s.yaml"
    path.write_text(
        BASE.replace("base_url: https://api.example.com/v1", "environments: {prod: 'https://a.example.com'}")
    )
    with pytest.raises(tether.SpecError, match="unknown environment 'sandbox'"):
        load(path, env="sandbox", environ={})
