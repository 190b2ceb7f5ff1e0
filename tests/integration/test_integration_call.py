"""Integration.call: requests built from the spec, validated before sending, read into a Result."""

from __future__ import annotations

from pathlib import Path

import pytest
from integration_helpers import CANARY, spec_text

import tether
from tether.errors import RequestValidationError, SpecError, ValidationError
from tether.events import EventRecorder
from tether.mock import Fault, FaultServer

SPEC = """\
service: {name: shop, base_url: "@URL@/api"}
authentication: {type: api_key, config: {key_name: X-Key, secret: "${SHOP_KEY}"}}
retry: {initial_delay: 1, max_delay: 10, jitter: false}
endpoints:
  get_item:
    path: /items/{id}
    parameters:
      - {name: id, in: path, type: string, pattern: "^[a-z0-9-]+$"}
      - {name: fields, in: query, type: array}
      - {name: limit, in: query, type: integer, minimum: 1, maximum: 50, default: 10}
      - {name: X-Trace, in: header, type: string, required: false}
    headers:
      - {name: X-Client, value: tether-tests}
    response:
      success:
        status: 200
        schema: {type: object, required: [id, price], properties: {price: {type: number}}}
  create_order:
    path: /orders
    method: POST
    body:
      content_type: json
      schema: {type: object, required: [sku, qty], properties: {qty: {type: integer, minimum: 1}}}
  place_order:
    path: /orders/{shop}
    method: post
    idempotent: true
    parameters:
      - {name: shop, in: path}
      - {name: sku, in: body, type: string, required: true}
      - {name: qty, in: body, type: integer, default: 1}
  search:
    path: /search
    parameters: [{name: q, in: query, required: true}]
    records: hits.items
    timeouts: {total: 250ms}
  legacy_form:
    path: /form
    method: POST
    body: {content_type: form}
"""


@pytest.fixture
def shop_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """The API key the shop spec reads from SHOP_KEY."""
    monkeypatch.setenv("SHOP_KEY", CANARY)
    return CANARY


async def test_path_query_header_params_and_fixed_headers_are_sent(
    fault_server: FaultServer, shop_key: str
) -> None:
    """Path params fill the template, query/header params and the spec's fixed header are sent."""
    fault_server.route("GET", "/api/items/{id}", Fault.ok(json={"id": "ab-1", "price": 9.5}))
    async with tether.open(spec_text(SPEC, fault_server.url)) as api:
        result = await api.call("get_item", id="ab-1", fields=["name", "price"], **{"X-Trace": "t-1"})
    assert result.data == {"id": "ab-1", "price": 9.5}
    (seen,) = fault_server.log
    assert seen.method == "GET"
    assert seen.path == "/api/items/ab-1"
    assert seen.query == {"fields": ["name", "price"], "limit": ["10"]}
    assert seen.header("x-trace") == "t-1"
    assert seen.header("x-client") == "tether-tests"
    assert seen.header("x-key") == shop_key


async def test_a_bad_parameter_is_refused_before_anything_is_sent(
    fault_server: FaultServer, shop_key: str
) -> None:
    """A pattern, range or unknown-name problem raises RequestValidationError; the server log stays empty."""
    fault_server.route("GET", "/api/items/{id}", Fault.ok(json={"id": "x", "price": 1}))
    async with tether.open(spec_text(SPEC, fault_server.url)) as api:
        with pytest.raises(RequestValidationError) as bad_pattern:
            await api.call("get_item", id="NOT VALID")
        with pytest.raises(RequestValidationError) as out_of_range:
            await api.call("get_item", id="ok", limit=500)
        with pytest.raises(RequestValidationError) as unknown:
            await api.call("get_item", id="ok", limt=5)
        with pytest.raises(RequestValidationError) as bad_body:
            await api.call("create_order", sku="A", qty=0)
    assert bad_pattern.value.parameter == "id"
    assert out_of_range.value.parameter == "limit"
    assert "did you mean 'limit'" in str(unknown.value)
    assert "$.qty" in str(bad_body.value)
    assert fault_server.log == []


async def test_json_body_from_keywords_or_body_and_body_parameters(
    fault_server: FaultServer, shop_key: str
) -> None:
    """An endpoint with body: takes its fields as keywords or body=; in: body params form a body too."""
    fault_server.route("POST", "/api/orders", Fault.ok(json={"ok": True}, status=201))
    fault_server.route("POST", "/api/orders/{shop}", Fault.ok(json={"ok": True}))
    async with tether.open(spec_text(SPEC, fault_server.url)) as api:
        await api.call("create_order", sku="A-1", qty=2)
        await api.call("create_order", body={"sku": "B-2", "qty": 3})
        await api.call("place_order", shop="north", sku="C-3")
    first, second, third = fault_server.log
    assert first.json() == {"sku": "A-1", "qty": 2}
    assert second.json() == {"sku": "B-2", "qty": 3}
    assert third.path == "/api/orders/north"
    assert third.json() == {"sku": "C-3", "qty": 1}
    assert third.header("content-type") == "application/json"


async def test_form_bodies_are_form_encoded(fault_server: FaultServer, shop_key: str) -> None:
    """body.content_type form sends application/x-www-form-urlencoded."""
    fault_server.route("POST", "/api/form", Fault.ok(json={}))
    async with tether.open(spec_text(SPEC, fault_server.url)) as api:
        await api.call("legacy_form", a="1", b="two")
    (seen,) = fault_server.log
    assert seen.header("content-type") == "application/x-www-form-urlencoded"
    assert seen.text == "a=1&b=two"


async def test_an_endpoint_marked_idempotent_post_is_retried(
    fault_server: FaultServer, shop_key: str
) -> None:
    """idempotent: true lets a POST be retried; an unmarked POST is sent once."""
    fault_server.route("POST", "/api/orders/{shop}", Fault.status(503), Fault.ok(json={"ok": True}))
    fault_server.route("POST", "/api/orders", Fault.status(503), Fault.ok(json={"ok": True}))
    async with tether.open(spec_text(SPEC, fault_server.url)) as api:
        result = await api.call("place_order", shop="north", sku="C-3")
        with pytest.raises(tether.APIError):
            await api.call("create_order", sku="A", qty=1)
    assert result.meta.attempts == 2
    assert len(fault_server.requests("POST", "/api/orders/{shop}")) == 2
    assert len(fault_server.requests("POST", "/api/orders")) == 1


async def test_records_are_selected_and_per_endpoint_timeouts_apply(
    fault_server: FaultServer, shop_key: str
) -> None:
    """records: selects the list; the endpoint's timeouts replace the spec's for its calls."""
    fault_server.route("GET", "/api/search", Fault.ok(json={"hits": {"items": [{"n": 1}, {"n": 2}]}}))
    async with tether.open(spec_text(SPEC, fault_server.url)) as api:
        request = api._build(api._plan("search"), *api._validate(api._plan("search"), {"q": "x"}))
        result = await api.call("search", q="x")
    assert result.data == [{"n": 1}, {"n": 2}]
    assert request.extensions["tether"].timeouts.total == 0.25


async def test_a_response_that_breaks_its_schema_names_the_json_path(
    fault_server: FaultServer, shop_key: str
) -> None:
    """The success schema is checked: a ValidationError names the JSON path."""
    fault_server.route("GET", "/api/items/{id}", Fault.ok(json={"id": "a", "price": "cheap"}))
    async with tether.open(spec_text(SPEC, fault_server.url)) as api:
        with pytest.raises(ValidationError) as caught:
            await api.call("get_item", id="a")
    assert "$.price" in str(caught.value)


async def test_result_meta_and_a_repr_without_secrets(fault_server: FaultServer, shop_key: str) -> None:
    """meta counts attempts and reads the rate-limit headers; the repr masks the key everywhere."""
    fault_server.route(
        "GET",
        "/api/items/{id}",
        Fault.status(502),
        Fault.ok(
            json={"id": "a", "price": 1, "note": f"echo {shop_key}"},
            headers={"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "42", "X-RateLimit-Reset": "30"},
        ),
    )
    async with tether.open(spec_text(SPEC, fault_server.url)) as api:
        result = await api.call("get_item", id="a")
    assert result.meta.attempts == 2
    assert result.meta.served_by == "network"
    assert result.meta.from_cache is False
    assert result.meta.status == 200
    assert result.meta.rate_limit is not None
    assert result.meta.rate_limit.remaining == 42
    assert len(result.meta.request_id) == 32
    assert result.response.status_code == 200
    text = repr(result)
    assert shop_key not in text
    assert "get_item" in text
    assert "attempts=2" in text


async def test_an_unknown_endpoint_is_a_spec_error(fault_server: FaultServer, shop_key: str) -> None:
    """Calling a name the spec does not define lists the endpoints it does."""
    async with tether.open(spec_text(SPEC, fault_server.url)) as api:
        with pytest.raises(SpecError, match="get_item"):
            await api.call("get_itme")


ENVS = """\
service:
  name: envs
  environments:
    development: "${DEV_URL}"
    production: https://api.example.com
  default_environment: production
  headers: {X-Source: "${SOURCE:-tether}"}
authentication: {type: bearer, config: {secret: "${TOKEN}"}}
endpoints:
  ping: {path: /ping}
"""


async def test_environment_selection_and_interpolation_through_open(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    """env= picks the environment; ${VAR} fills its URL, headers and the secret from environ."""
    fault_server.route("GET", "/ping", Fault.ok(json={"pong": True}))
    path = tmp_path / "envs.yaml"
    path.write_text(ENVS, encoding="utf-8")
    environ = {"DEV_URL": fault_server.url, "TOKEN": "tok-abcdef-123", "SOURCE": "ci"}
    async with tether.open(path, env="development", environ=environ) as api:
        assert api.spec.environment == "development"
        result = await api.call("ping")
    assert result.data == {"pong": True}
    (seen,) = fault_server.log
    assert seen.header("authorization") == "Bearer tok-abcdef-123"
    assert seen.header("x-source") == "ci"
    async with tether.open(path, environ={**environ, "TETHER_ENV": "development"}) as by_variable:
        assert by_variable.spec.environment == "development"
    with pytest.raises(SpecError, match="unknown environment 'qa'"):
        tether.open(path, env="qa", environ=environ)


async def test_a_loaded_spec_and_overrides_are_accepted(fault_server: FaultServer) -> None:
    """open() takes a Spec and Client keywords that win over the spec (base_url, listeners)."""
    fault_server.route("GET", "/ping", Fault.ok(json={}))
    spec = tether.spec.load(ENVS, environ={"TOKEN": "tok-abcdef-123"})
    recorder = EventRecorder()
    async with tether.open(
        spec, base_url=fault_server.url, listeners=[recorder], environ={"TOKEN": "t-12345"}
    ) as api:
        await api.call("ping")
    assert fault_server.log[0].header("authorization") == "Bearer t-12345"
    assert "response.received" in recorder.names()
    with pytest.raises(TypeError, match=r"unknown tether\.open"):
        tether.open(spec, bogus=1)
