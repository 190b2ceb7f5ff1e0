"""cache, fallback_behavior, dlq, costs, bandwidth, rights and state work from the spec, on the wire,
and ``Result.meta`` says who answered (from_cache, stale, served_by)."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import pytest
from integration_helpers import spec_text
from typer.testing import CliRunner

import tether
from tether.cli import _register, app
from tether.dlq import MemoryDLQ
from tether.errors import BudgetExceeded, RightsViolationError, SpecError, StateStoreError
from tether.events import EventRecorder
from tether.mock import Fault, FaultServer
from tether.spec import load
from tether.testing import VirtualClock

HEAD = """\
service: {name: resilient, base_url: "@URL@"}
retry: {enabled: false}
timeouts: {total: null}
"""
THING = """\
endpoints:
  thing: {path: /thing}
"""


def _open(server: FaultServer, sections: str, endpoints: str = THING, **overrides: Any) -> tether.Integration:
    return tether.open(spec_text(HEAD + endpoints, server.url) + sections, **overrides)


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- cache ---------------------------------------------------------------------------------------


async def test_cache_ttl_answers_the_second_call_from_cache(fault_server: FaultServer) -> None:
    """cache ttl 1m: the second call is answered from the cache; the server sees one request."""
    fault_server.route("GET", "/thing", Fault.ok(json={"n": 1}))
    async with _open(fault_server, "cache: {ttl: 1m}\n") as api:
        first = await api.call("thing")
        second = await api.call("thing")
    assert len(fault_server.log) == 1
    assert (first.meta.from_cache, first.meta.served_by) == (False, "network")
    assert (second.meta.from_cache, second.meta.stale, second.meta.served_by) == (True, False, "cache")
    assert second.data == {"n": 1}


async def test_endpoint_cache_ttls_override_and_false_bypasses(fault_server: FaultServer) -> None:
    """endpoints.*.cache: 1h outlives the spec's 10s; cache: false sends every call upstream."""
    endpoints = """\
endpoints:
  long: {path: /long, cache: 1h}
  short: {path: /short}
  never: {path: /never, cache: false}
"""
    for path in ("/long", "/short", "/never"):
        fault_server.route("GET", path, Fault.ok(json={"path": path}))
    clock = VirtualClock()
    async with _open(fault_server, "cache: {ttl: 10s}\n", endpoints, clock=clock) as api:
        for _ in range(2):
            for name in ("long", "short", "never"):
                await api.call(name)
        clock.advance(60)
        for name in ("long", "short", "never"):
            await api.call(name)
    counts = {path: len(fault_server.requests("GET", path)) for path in ("/long", "/short", "/never")}
    assert counts == {"/long": 1, "/short": 2, "/never": 3}


async def test_stale_if_error_serves_the_expired_entry_while_upstream_is_down(
    fault_server: FaultServer,
) -> None:
    """cache stale_if_error 1h: with the upstream down, the expired entry answers, marked stale."""
    fault_server.route("GET", "/thing", Fault.ok(json={"v": 1}))
    clock = VirtualClock()
    async with _open(fault_server, "cache: {ttl: 10s, stale_if_error: 1h}\n", clock=clock) as api:
        await api.call("thing")
        clock.advance(60)
        fault_server.route("GET", "/thing", Fault.status(503))
        stale = await api.call("thing")
    assert stale.data == {"v": 1}
    assert (stale.meta.from_cache, stale.meta.stale, stale.meta.served_by) == (True, True, "stale_cache")
    assert len(fault_server.log) == 2


# --- fallback --------------------------------------------------------------------------------------


async def test_fallback_default_answers_when_the_upstream_is_down(fault_server: FaultServer) -> None:
    """strategy default: a 503 is answered with default_response as written (no schema check)."""
    endpoints = """\
endpoints:
  thing: {path: /thing, response: {success: {schema: {type: object, required: [id]}}}}
"""
    sections = "fallback_behavior: {strategy: default, default_response: {items: [], fallback: true}}\n"
    fault_server.route("GET", "/thing", Fault.status(503))
    async with _open(fault_server, sections, endpoints) as api:
        result = await api.call("thing")
        status = api.status()
    assert result.data == {"items": [], "fallback": True}
    assert (result.meta.served_by, result.meta.from_cache) == ("default", False)
    assert status["fallback"]["steps"] == ["default"]
    assert len(fault_server.log) == 1


async def test_fallback_cache_strategy_without_a_cache_serves_the_last_answer(
    fault_server: FaultServer,
) -> None:
    """strategy cache without a cache section: a failure gets the last good answer, until cache_ttl."""
    fault_server.route("GET", "/thing", Fault.ok(json={"v": 7}))
    clock = VirtualClock()
    async with _open(
        fault_server, "fallback_behavior: {strategy: cache, cache_ttl: 1h}\n", clock=clock
    ) as api:
        fresh = await api.call("thing")
        fault_server.route("GET", "/thing", Fault.status(503))
        stale = await api.call("thing")
        clock.advance(2 * 3600)
        with pytest.raises(tether.APIError):
            await api.call("thing")
    assert fresh.meta.served_by == "network"
    assert stale.data == {"v": 7}
    assert (stale.meta.stale, stale.meta.served_by) == (True, "stale_cache")
    assert len(fault_server.log) == 3


async def test_paginate_ends_at_a_page_answered_by_the_default(fault_server: FaultServer) -> None:
    """paginate with the default strategy: a failed page yields default_response's records, then stops."""
    endpoints = """\
endpoints:
  pages: {path: /pages, records: data, pagination: {type: page}}
"""
    sections = "fallback_behavior: {strategy: default, default_response: [{id: 0}]}\n"
    fault_server.route("GET", "/pages", Fault.ok(json={"data": [{"id": 1}]}), Fault.status(503))
    async with _open(fault_server, sections, endpoints) as api:
        records = [record async for record in api.paginate("pages")]
    assert records == [{"id": 1}, {"id": 0}]
    assert len(fault_server.log) == 2


async def test_fallback_on_errors_selects_what_is_served(fault_server: FaultServer) -> None:
    """on_errors [CONN_001]: a connection reset gets the default; a 503 is raised."""
    sections = "fallback_behavior: {strategy: default, default_response: ok, on_errors: [CONN_001]}\n"
    fault_server.route("GET", "/thing", Fault.reset())
    async with _open(fault_server, sections) as api:
        served = await api.call("thing")
        fault_server.route("GET", "/thing", Fault.status(503))
        with pytest.raises(tether.APIError):
            await api.call("thing")
    assert (served.data, served.meta.served_by) == ("ok", "default")


MIRROR = """\
service: {name: mirror, base_url: "@URL@"}
retry: {enabled: false}
endpoints:
  thing: {path: /thing}
"""


async def test_fallback_alternate_opens_the_named_spec_file(
    fault_server: FaultServer, other_server: FaultServer, tmp_path: Path
) -> None:
    """alternate: mirror.yaml (beside the spec): a failed call is served by the mirror's API."""
    (tmp_path / "mirror.yaml").write_text(spec_text(MIRROR, other_server.url), encoding="utf-8")
    main = tmp_path / "main.yaml"
    sections = "fallback_behavior: {strategy: alternate, alternate: mirror.yaml}\n"
    main.write_text(spec_text(HEAD + THING, fault_server.url) + sections, encoding="utf-8")
    fault_server.route("GET", "/thing", Fault.status(503))
    other_server.route("GET", "/thing", Fault.ok(json={"from": "mirror"}))
    async with tether.open(main) as api:
        result = await api.call("thing")
    assert result.data == {"from": "mirror"}
    assert result.meta.served_by == "alternate:mirror"
    assert (len(fault_server.log), len(other_server.log)) == (1, 1)


async def test_fallback_alternate_by_name_uses_the_given_integration(
    fault_server: FaultServer, other_server: FaultServer
) -> None:
    """alternate: backup + tether.open(alternates={"backup": integration}) serves from it."""
    fault_server.route("GET", "/thing", Fault.status(502))
    other_server.route("GET", "/thing", Fault.ok(json={"from": "backup"}))
    sections = "fallback_behavior: {strategy: [alternate], alternate: backup}\n"
    async with tether.open(spec_text(MIRROR, other_server.url)) as backup:
        async with _open(fault_server, sections, alternates={"backup": backup}) as api:
            result = await api.call("thing")
        assert (await backup.call("thing")).data == {"from": "backup"}  # still open: the caller's
    assert (result.data, result.meta.served_by) == ({"from": "backup"}, "alternate:backup")


def test_an_alternate_that_cannot_be_found_is_a_spec_error() -> None:
    """alternate naming neither a spec file nor a given integration fails at open, naming it."""
    text = spec_text(HEAD + THING, "http://127.0.0.1:9")
    with pytest.raises(SpecError, match=r"nowhere\.yaml"):
        tether.open(text + "fallback_behavior: {strategy: alternate, alternate: nowhere.yaml}\n")


# --- the dead-letter queue -------------------------------------------------------------------------

ORDERS = """\
endpoints:
  create: {path: /orders, method: POST, dlq: true, body: {content_type: json}}
  read: {path: /orders}
"""


async def test_dlq_parks_a_failing_marked_post_and_replays_it(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    """A failed POST marked dlq: true is in integration.dlq; the replayer delivers it with its key."""
    spec_file = tmp_path / "orders.yaml"
    sections = "dlq: {backend: sqlite, path: dead.db, max_replays: 2}\n"
    spec_file.write_text(spec_text(HEAD + ORDERS, fault_server.url) + sections, encoding="utf-8")
    fault_server.route("POST", "/orders", Fault.status(503))
    fault_server.route("GET", "/orders", Fault.status(503))
    clock = VirtualClock()
    async with tether.open(spec_file, clock=clock) as api:
        assert api.dlq is not None
        with pytest.raises(tether.APIError) as parked:
            await api.call("create", body={"sku": "A-1"})
        with pytest.raises(tether.APIError) as unparked:
            await api.call("read")
        entries = list(await api.dlq.list())
        fault_server.route("POST", "/orders", Fault.ok(json={"created": True}))
        clock.advance(5)
        report = await api.replayer().run_once()
        left = list(await api.dlq.list())
    assert (tmp_path / "dead.db").exists()
    assert [e.id for e in entries] == [parked.value.dlq_id]  # type: ignore[attr-defined]
    assert not hasattr(unparked.value, "dlq_id")
    assert entries[0].endpoint == "create"
    assert report.delivered == [entries[0].id]
    assert left == []
    posts = fault_server.requests("POST", "/orders")
    assert len(posts) == 2
    assert posts[1].json() == {"sku": "A-1"}
    assert posts[0].headers["idempotency-key"] == posts[1].headers["idempotency-key"]
    assert posts[0].headers["idempotency-key"] == entries[0].idempotency_key


def test_tether_dlq_list_finds_what_the_spec_parked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """tether dlq list --spec reads the DLQ file the integration wrote (dlq.path beside the spec)."""
    spec_file = tmp_path / "orders.yaml"

    async def park() -> str:
        async with FaultServer() as server:
            server.route("POST", "/orders", Fault.status(503))
            text = spec_text(HEAD + ORDERS, server.url) + "dlq: {path: parked.db}\n"
            spec_file.write_text(text, encoding="utf-8")
            async with tether.open(spec_file) as api:
                with pytest.raises(tether.APIError) as caught:
                    await api.call("create", body={"sku": "B-2"})
        entry_id: str = caught.value.dlq_id  # type: ignore[attr-defined]
        return entry_id

    entry_id = asyncio.run(park())
    monkeypatch.setenv("COLUMNS", "200")
    _register()
    result = CliRunner().invoke(app, ["dlq", "list", "--spec", str(spec_file), "--json"])
    assert result.exit_code == 0, result.output
    listed = [json.loads(line) for line in result.output.splitlines()]
    assert [(e["id"], e["endpoint"], e["method"]) for e in listed] == [(entry_id, "create", "POST")]


async def test_queue_strategy_parks_every_endpoint_in_the_given_dlq(fault_server: FaultServer) -> None:
    """strategy queue with no endpoint marked parks any failed call; dlq= replaces the backend."""
    fault_server.route("GET", "/thing", Fault.status(500))
    backend = MemoryDLQ()
    async with _open(fault_server, "fallback_behavior: {strategy: queue}\n", dlq=backend) as api:
        with pytest.raises(tether.APIError) as caught:
            await api.call("thing")
        assert api.dlq is backend
    entries = list(await backend.list())
    assert [e.id for e in entries] == [caught.value.dlq_id]  # type: ignore[attr-defined]
    assert entries[0].request.method == "GET"


# --- budgets and rights ----------------------------------------------------------------------------


async def test_costs_hard_stop_sends_nothing_after_the_limit(fault_server: FaultServer) -> None:
    """costs per_request 1, budget 2 with hard_stop: the third call is refused before sending."""
    sections = (
        "costs: {pricing_model: per_request, tiers: [{name: all, cost: 1}],"
        " budget: {monthly_limit: 2, hard_stop: true}}\n"
    )
    fault_server.route("GET", "/thing", Fault.ok(json={}))
    async with _open(fault_server, sections) as api:
        await api.call("thing")
        await api.call("thing")
        with pytest.raises(BudgetExceeded):
            await api.call("thing")
        status = api.status()
    assert len(fault_server.log) == 2
    assert status["budget"]["cost"]["used"] == 2
    assert status["budget"]["cost"]["hard_stop"] is True


async def test_costs_tiers_price_requests_by_their_number_in_the_month(fault_server: FaultServer) -> None:
    """tiers [2 free, then 0.5 each]: three calls cost 0.5."""
    sections = (
        "costs:\n  pricing_model: tiered\n"
        "  tiers: [{name: free, limit: 2, cost: 0}, {name: paid, cost: 0.5}]\n"
        "  budget: {monthly_limit: 100}\n"
    )
    fault_server.route("GET", "/thing", Fault.ok(json={}))
    async with _open(fault_server, sections) as api:
        for _ in range(3):
            await api.call("thing")
        status = api.status()
    assert status["budget"]["cost"]["used"] == pytest.approx(0.5)
    assert status["budget"]["cost"]["requests"] == 3


async def test_bandwidth_hard_stop_refuses_calls_once_spent(fault_server: FaultServer) -> None:
    """bandwidth 100B with hard_stop: after a 200-byte answer the next call is not sent."""
    fault_server.route("GET", "/thing", Fault.ok(json={"blob": "x" * 200}))
    async with _open(fault_server, "bandwidth: {monthly_limit: 100B, hard_stop: true}\n") as api:
        await api.call("thing")
        with pytest.raises(BudgetExceeded):
            await api.call("thing")
    assert len(fault_server.log) == 1


async def test_a_rights_violation_sends_nothing(fault_server: FaultServer) -> None:
    """rights profile granting read: an endpoint requiring export is refused before sending."""
    endpoints = """\
endpoints:
  thing: {path: /thing, rights: [read]}
  export: {path: /export, rights: [export]}
"""
    fault_server.route("GET", "/thing", Fault.ok(json={}))
    fault_server.route("GET", "/export", Fault.ok(json={}))
    async with _open(fault_server, "rights: {profile: developer, granted: [read]}\n", endpoints) as api:
        with pytest.raises(RightsViolationError, match="export"):
            await api.call("export")
        await api.call("thing")
    assert [r.path for r in fault_server.log] == ["/thing"]


# --- state -----------------------------------------------------------------------------------------


async def test_on_state_error_fail_refuses_and_local_keeps_working(fault_server: FaultServer) -> None:
    """Redis unreachable: on_state_error fail raises unsent; local calls on, emitting state.local."""
    fault_server.route("GET", "/thing", Fault.ok(json={}))
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    async with _open(fault_server, f"state: {{url: '{url}', on_state_error: fail}}\n") as api:
        with pytest.raises(StateStoreError):
            await api.call("thing")
    assert fault_server.log == []
    recorder = EventRecorder()
    async with _open(
        fault_server, f"state: {{url: '{url}', on_state_error: local}}\n", listeners=[recorder]
    ) as api:
        result = await api.call("thing")
    assert result.response.status_code == 200
    assert len(fault_server.log) == 1
    assert recorder.of("state.local")


# --- tether check --explain ------------------------------------------------------------------------


def test_check_explain_shows_the_resilience_sections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--explain prints the cache, fallback chain, DLQ, budgets and rights the runtime builds."""
    monkeypatch.setenv("COLUMNS", "200")
    _register()  # every command on the app, as the tether entry point does
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "service: {name: x, base_url: 'https://x.example'}\n"
        + ORDERS
        + "cache: {ttl: 1m}\n"
        + "fallback_behavior: {strategy: [cache, default], default_response: {}}\n"
        + "dlq: {path: dead.db}\n"
        + "costs: {pricing_model: per_request, tiers: [{name: a, cost: 0.01}], budget: {monthly_limit: 5}}\n"
        + "bandwidth: {monthly_limit: 1GB}\n"
        + "rights: {profile: dev, granted: [read]}\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["check", "--explain", str(spec)])
    assert result.exit_code == 0, result.output
    text = result.output
    assert 'ttl: "1m"\n' in text
    assert 'keep_expired: "1d"' in text
    assert 'chain: ["stale_cache", "default", "dlq"]' in text
    assert 'parks: ["create"]' in text
    assert f'location: "{tmp_path / "dead.db"}"' in text
    assert "price per request: 0.01" in text
    assert "hard_stop: false  # default" in text
    assert 'monthly_limit: "1GB"' in text
    assert 'count: "response"  # default' in text
    assert 'granted: ["read"]' in text
    assert "not enforced: cache" not in text
    assert load(spec, environ={}).dlq is not None
