"""Integration.paginate: records across pages, each page through the pipeline, origin-safe next URLs."""

from __future__ import annotations

from typing import Any

import pytest
from integration_helpers import spec_text

import tether
from tether.errors import RequestValidationError, ResponseError
from tether.events import EventRecorder
from tether.mock import Fault, FaultServer

SPEC = """\
service: {name: pages, base_url: "@URL@"}
authentication: {type: api_key, config: {key_name: X-Key, secret: "${PAGES_KEY}"}}
retry: {initial_delay: 1, max_delay: 10, jitter: false}
endpoints:
  history:
    path: /history/{id}
    parameters:
      - {name: id, in: path}
      - {name: start, in: query, type: date, required: true}
    pagination: {type: page, page_param: page, size_param: size, page_size: 2, stop: {on_short_page: true}}
    records: rows
    data_mappings:
      inbound: [{external_field: v, internal_field: value, transform: float}]
  feed:
    path: /feed
    pagination: {type: next_url, next_url_path: next}
    records: items
  changes:
    path: /changes
    pagination: {type: cursor, cursor_path: meta.next, stop: {on_empty: false}}
    records: data
  single:
    path: /single
    records: items
"""
KEY = "pages-key-5551234"


@pytest.fixture(autouse=True)
def pages_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The key the spec reads from PAGES_KEY."""
    monkeypatch.setenv("PAGES_KEY", KEY)


async def _all(iterator: Any) -> list[Any]:
    return [item async for item in iterator]


async def test_pages_are_fetched_through_the_pipeline_and_mapped(fault_server: FaultServer) -> None:
    """Three pages (a 503 on the second is retried) give every record, mapped, in order."""
    fault_server.route(
        "GET",
        "/history/{id}",
        Fault.ok(json={"rows": [{"d": "a", "v": "1"}, {"d": "b", "v": "2"}]}),
        Fault.status(503),
        Fault.ok(json={"rows": [{"d": "c", "v": "3"}, {"d": "d", "v": "4"}]}),
        Fault.ok(json={"rows": [{"d": "e", "v": "5"}]}),
    )
    async with tether.open(spec_text(SPEC, fault_server.url)) as api:
        records = await _all(api.paginate("history", id="x1", start="2024-01-01"))
    assert records == [
        {"d": "a", "value": 1.0},
        {"d": "b", "value": 2.0},
        {"d": "c", "value": 3.0},
        {"d": "d", "value": 4.0},
        {"d": "e", "value": 5.0},
    ]
    seen = fault_server.log
    assert [r.param("page") for r in seen] == ["1", "2", "2", "3"]
    assert {r.param("size") for r in seen} == {"2"}
    assert {r.param("start") for r in seen} == {"2024-01-01"}
    assert {r.header("x-key") for r in seen} == {KEY}


async def test_a_start_page_among_the_params_starts_there(fault_server: FaultServer) -> None:
    """page=3 in the call starts at page 3 (it is not a parameter of the endpoint)."""
    fault_server.route("GET", "/history/{id}", Fault.ok(json={"rows": [{"v": "1"}]}))
    async with tether.open(spec_text(SPEC, fault_server.url)) as api:
        await _all(api.paginate("history", id="x1", start="2024-01-01", page=3))
    assert [r.param("page") for r in fault_server.log] == ["3"]


async def test_bad_params_fail_before_the_first_page(fault_server: FaultServer) -> None:
    """A missing required parameter raises RequestValidationError; no page is fetched."""
    fault_server.route("GET", "/history/{id}", Fault.ok(json={"rows": []}))
    async with tether.open(spec_text(SPEC, fault_server.url)) as api:
        with pytest.raises(RequestValidationError) as caught:
            await _all(api.paginate("history", id="x1"))
    assert caught.value.parameter == "start"
    assert fault_server.log == []


async def test_a_next_url_on_another_origin_gets_no_credentials(
    fault_server: FaultServer, other_server: FaultServer
) -> None:
    """The next page on another host is fetched without the API key; its records still come."""
    fault_server.route("GET", "/feed", Fault.ok(json={"items": [1, 2], "next": f"{other_server.url}/more"}))
    other_server.route("GET", "/more", Fault.ok(json={"items": [3]}))
    recorder = EventRecorder()
    async with tether.open(spec_text(SPEC, fault_server.url), listeners=[recorder]) as api:
        records = await _all(api.paginate("feed"))
    assert records == [1, 2, 3]
    assert fault_server.log[0].header("x-key") == KEY
    (foreign,) = other_server.log
    assert foreign.header("x-key") is None
    assert KEY not in foreign.target
    assert all(KEY not in value for value in foreign.headers.values())
    (stripped,) = recorder.of("auth.credentials_stripped")
    assert stripped.fields["destination"] == other_server.url


async def test_a_repeated_cursor_is_a_pagination_loop(fault_server: FaultServer) -> None:
    """A cursor already fetched raises ResponseError(reason=pagination_loop) after the pages before it."""
    fault_server.route("GET", "/changes", Fault.ok(json={"data": ["r"], "meta": {"next": "abc"}}))
    records: list[Any] = []

    async def read_all(api: tether.Integration) -> None:
        async for record in api.paginate("changes"):
            records.append(record)

    async with tether.open(spec_text(SPEC, fault_server.url)) as api:
        with pytest.raises(ResponseError) as caught:
            await read_all(api)
    assert caught.value.reason == "pagination_loop"
    assert records == ["r", "r"]
    assert [r.param("cursor") for r in fault_server.log] == [None, "abc"]


async def test_an_endpoint_without_pagination_is_one_page(fault_server: FaultServer) -> None:
    """paginate() on an endpoint with no pagination: yields the records of one call."""
    fault_server.route("GET", "/single", Fault.ok(json={"items": ["a", "b"]}))
    async with tether.open(spec_text(SPEC, fault_server.url)) as api:
        assert await _all(api.paginate("single")) == ["a", "b"]
    assert len(fault_server.log) == 1
