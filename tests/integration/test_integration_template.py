"""The filled-in INT template (specs/int-template-filled.yaml) loads and runs against a loopback server."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
from integration_helpers import SPECS

import tether
from tether.mock import Fault, FaultServer
from tether.spec import load, not_enforced

TEMPLATE = SPECS / "int-template-filled.yaml"
KEY = "template-key-31415926"


def _data(identifier: str, value: float) -> dict[str, Any]:
    return {
        "identifier": identifier,
        "value": value,
        "metadata": None,
        "timestamp": "2027-01-15T10:00:00Z",
        "request_id": "req_abc123",
    }


@pytest.fixture
def template_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The template's secret and no tier override in the environment."""
    monkeypatch.setenv("EXTERNAL_API_KEY", KEY)
    monkeypatch.delenv("EXTERNAL_API_RATE_TIER", raising=False)


def _route_everything(server: FaultServer) -> None:
    server.route("GET", "/v1/data/{identifier}", Fault.ok(json=_data("ITEM-001", 101.25)))
    server.route("POST", "/v1/data/batch", Fault.ok(json=[_data("ITEM-001", 1.5), _data("ITEM-002", 2.5)]))
    first_page = [{"d": f"2024-01-{(i % 28) + 1:02d}", "v": str(i)} for i in range(100)]
    last_page = [{"d": "2024-02-01", "v": "."}]
    page = {"identifier": "ITEM-001", "interval": "daily", "total_pages": 2}
    server.route(
        "GET",
        "/v1/historical/{identifier}",
        Fault.ok(json={**page, "records": first_page, "request_id": "r1"}),
        Fault.ok(json={**page, "records": last_page, "request_id": "r2"}),
    )
    change = {"identifier": "ITEM-009", "value": 7, "timestamp": "2027-01-14T09:30:00Z"}
    server.route(
        "GET",
        "/v1/changes",
        Fault.ok(json={"data": [change], "meta": {"next_cursor": "c2", "has_more": True, "total": 2}}),
        Fault.ok(json={"data": [change], "meta": {"next_cursor": None, "has_more": False, "total": 2}}),
    )
    server.route(
        "GET",
        "/v1/stream/{identifier}",
        Fault.ok(text="event: change\ndata: {}\n\n", content_type="text/event-stream"),
    )


async def test_every_endpoint_of_the_filled_template_runs(
    template_env: None, fault_server: FaultServer
) -> None:
    """Each endpoint of the template is called through the full pipeline against the mock."""
    _route_everything(fault_server)
    async with tether.open(TEMPLATE, env="development", base_url=f"{fault_server.url}/v1") as api:
        assert api.spec.environment == "development"
        one = await api.call("get_data", identifier="ITEM-001")
        batch = await api.call("get_data_batch", identifiers=["ITEM-001", "ITEM-002"])
        history = [r async for r in api.paginate("get_historical", identifier="ITEM-001", start="2024-01-01",
                                                   end="2024-02-01")]  # fmt: skip
        changes = [r async for r in api.paginate("list_changes")]
        stream = await api.call("stream_updates", identifier="ITEM-001")
        status = api.status()

    # get_data: validated against DataResponse, inbound mapping (datetime, exact decimal)
    assert one.data["timestamp"] == datetime.fromisoformat("2027-01-15T10:00:00+00:00")
    assert one.data["value"] == Decimal("101.25")
    assert one.data["identifier"] == "ITEM-001"
    # get_data_batch: a JSON body validated against BatchRequest; a list of mapped records back
    assert [r["value"] for r in batch.data] == [Decimal("1.5"), Decimal("2.5")]
    # get_historical: page pagination, the endpoint's own mapping (date, float, "." is null)
    assert len(history) == 101
    assert history[0]["date"] == date(2024, 1, 1)
    assert history[0]["value"] == 0.0
    assert history[-1] == {"date": date(2024, 2, 1), "value": None}
    # list_changes: cursor pagination until has_more is false
    assert len(changes) == 2
    assert stream.data.startswith("event: change")

    log = fault_server.log
    assert {r.header("x-api-key") for r in log} == {KEY}
    assert {r.header("accept") for r in log} == {"application/json"}
    get_data = fault_server.requests("GET", "/v1/data/{identifier}")[0]
    assert get_data.header("x-request-source") == "tether"
    assert fault_server.requests("POST", "/v1/data/batch")[0].json()["identifiers"] == [
        "ITEM-001",
        "ITEM-002",
    ]
    historical = fault_server.requests("GET", "/v1/historical/{identifier}")
    assert [(r.param("page"), r.param("page_size")) for r in historical] == [("1", "100"), ("2", "100")]
    assert historical[0].query["interval"] == ["daily"]
    assert historical[0].query["adjusted"] == ["true"]
    cursors = [r.param("cursor") for r in fault_server.requests("GET", "/v1/changes")]
    assert cursors == [None, "c2"]
    assert status["limiter"]["tier"] == "premium"
    assert status["bulkhead"]["max_concurrent"] == 10
    assert status["endpoints"]["get_data"]["targets"] == {"p50": 0.15, "p95": 0.5, "p99": 1.0}


async def test_the_template_error_mapping_applies(template_env: None, fault_server: FaultServer) -> None:
    """Template rules: a 404 fails with its message, a 204 is ignored, X-Maintenance gets the default."""
    fault_server.route("GET", "/v1/data/ITEM-404", Fault.status(404))
    fault_server.route("GET", "/v1/data/ITEM-204", Fault.status(204))
    fault_server.route("GET", "/v1/data/ITEM-500", Fault.status(503, headers={"X-Maintenance": "true"}))
    async with tether.open(TEMPLATE, env="development", base_url=f"{fault_server.url}/v1") as api:
        with pytest.raises(tether.NotFoundError, match="No data for that identifier"):
            await api.call("get_data", identifier="ITEM-404")
        ignored = await api.call("get_data", identifier="ITEM-204")
        maintenance = await api.call("get_data", identifier="ITEM-500")
    assert ignored.data is None
    assert ignored.response.status_code == 204
    assert maintenance.meta.served_by == "default"  # fallback_behavior: [cache, default]
    assert maintenance.data == {"value": None, "stale": True}
    assert len(fault_server.log) == 3


def test_what_the_runtime_acts_on_is_not_reported_as_not_enforced() -> None:
    """Sections the spec-driven runtime wires are no longer listed by tether check as not enforced."""
    reported = set(not_enforced(load(TEMPLATE, environ={})))
    wired = {
        "service.name",
        "service.headers",
        "authentication",
        "timeouts",
        "http",
        "retry",
        "error_mapping",
        "versioning",
        "bulkhead",
        "data_mappings",
        "security.block_private_networks",
        "security.tls_min_version",
    }
    assert not any(key == w or key.startswith(w + ".") for key in reported for w in wired)
    for endpoint in ("get_data", "get_historical", "list_changes"):
        for key in (
            "path",
            "method",
            "parameters",
            "response",
            "pagination",
            "records",
            "idempotent",
            "timeouts",
        ):
            assert f"endpoints.{endpoint}.{key}" not in reported
