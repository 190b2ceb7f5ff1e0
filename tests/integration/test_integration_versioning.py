"""Versioning: where the version goes, deprecation warnings once per endpoint, sunset refusal."""

from __future__ import annotations

import pytest
from integration_helpers import spec_text

import tether
from tether.events import EventRecorder
from tether.integration import parse_deprecation
from tether.mock import Fault, FaultServer
from tether.testing import VirtualClock

BASE = """\
service: {name: versioned, base_url: "@URL@"}
timeouts: {total: null}  # virtual time below: no deadline watchdog racing the real network
endpoints:
  things: {path: /things}
  old_things: {path: /old, deprecated: true}
"""


def _spec(url: str, versioning: str) -> str:
    return spec_text(BASE, url) + versioning


async def test_header_strategy_sends_the_version_header(fault_server: FaultServer) -> None:
    """strategy header: every request carries header_name: current."""
    fault_server.route("GET", "/things", Fault.ok(json=[]))
    text = _spec(
        fault_server.url, "versioning: {strategy: header, current: '2024-06', header_name: X-Api-Version}\n"
    )
    async with tether.open(text) as api:
        await api.call("things")
    assert fault_server.log[0].header("x-api-version") == "2024-06"


async def test_url_strategy_prefixes_the_path_once(fault_server: FaultServer) -> None:
    """strategy url: /v2 is put before the path, unless the base URL already ends in it."""
    fault_server.route("GET", "/v2/things", Fault.ok(json=[]))
    text = _spec(fault_server.url, "versioning: {strategy: url, current: v2}\n")
    async with tether.open(text) as api:
        await api.call("things")
    async with tether.open(text, base_url=f"{fault_server.url}/v2") as already:
        await already.call("things")
    assert [r.path for r in fault_server.log] == ["/v2/things", "/v2/things"]


async def test_query_strategy_adds_the_version_parameter(fault_server: FaultServer) -> None:
    """strategy query: ?version=<current> (the parameter name is query_param)."""
    fault_server.route("GET", "/things", Fault.ok(json=[]))
    text = _spec(fault_server.url, "versioning: {strategy: query, current: '3', query_param: api}\n")
    async with tether.open(text) as api:
        await api.call("things")
    assert fault_server.log[0].param("api") == "3"


async def test_deprecation_and_sunset_headers_warn_once_per_endpoint(fault_server: FaultServer) -> None:
    """RFC 9745 Deprecation and RFC 8594 Sunset emit one api.deprecated warning per endpoint."""
    headers = {"Deprecation": "@1700000000", "Sunset": "Wed, 30 Jun 2027 23:59:59 GMT"}
    fault_server.route("GET", "/things", Fault.ok(json=[], headers=headers))
    recorder = EventRecorder()
    async with tether.open(_spec(fault_server.url, ""), listeners=[recorder]) as api:
        for _ in range(3):
            await api.call("things")
        status = api.status()
    (event,) = recorder.of("api.deprecated")
    assert event.endpoint == "things"
    assert event.fields["source"] == "headers"
    assert event.fields["deprecated_since"] == "2023-11-14T22:13:20+00:00"
    assert event.fields["sunset"] == "2027-06-30T23:59:59+00:00"
    assert status["deprecated"] == {"things": {"sunset": "2027-06-30T23:59:59+00:00"}}


def test_deprecation_header_forms() -> None:
    """@epoch (RFC 9745), the legacy true and HTTP-date forms, and false are all read."""
    assert parse_deprecation("@1700000000", now=0) == (True, 1700000000.0)
    assert parse_deprecation("true", now=0) == (True, None)
    assert parse_deprecation("Sun, 11 Nov 2018 23:59:59 GMT", now=0) == (True, 1541980799.0)
    assert parse_deprecation("false", now=0) == (False, None)


async def test_an_endpoint_marked_deprecated_in_the_spec_warns_once(fault_server: FaultServer) -> None:
    """endpoints.*.deprecated: true emits api.deprecated on the first call only."""
    fault_server.route("GET", "/old", Fault.ok(json=[]))
    recorder = EventRecorder()
    async with tether.open(_spec(fault_server.url, ""), listeners=[recorder]) as api:
        await api.call("old_things")
        await api.call("old_things")
    (event,) = recorder.of("api.deprecated")
    assert (event.endpoint, event.fields["source"]) == ("old_things", "spec")


async def test_a_schedule_within_90_days_warns(fault_server: FaultServer) -> None:
    """deprecation_schedule for the current version warns from 90 days before its date."""
    fault_server.route("GET", "/things", Fault.ok(json=[]))
    clock = VirtualClock()  # 2027-01-15 (epoch 1.8e9)
    soon = "versioning: {strategy: header, current: v1, deprecation_schedule: {v1: 2027-03-01}}\n"
    later = "versioning: {strategy: header, current: v1, deprecation_schedule: {v1: 2028-03-01}}\n"
    warned = EventRecorder()
    quiet = EventRecorder()
    async with tether.open(_spec(fault_server.url, soon), clock=clock, listeners=[warned]) as api:
        await api.call("things")
    async with tether.open(_spec(fault_server.url, later), clock=clock, listeners=[quiet]) as api:
        await api.call("things")
    (event,) = warned.of("api.deprecated")
    assert event.fields["source"] == "deprecation_schedule"
    assert event.fields["version"] == "v1"
    assert quiet.of("api.deprecated") == []


async def test_calls_past_the_scheduled_sunset_can_be_refused(fault_server: FaultServer) -> None:
    """refuse_after_sunset=True: a retired version is Rejected before sending; without it, it is sent."""
    fault_server.route("GET", "/things", Fault.ok(json=[]))
    retired = "versioning: {strategy: header, current: v1, deprecation_schedule: {v1: 2026-12-31}}\n"
    text = _spec(fault_server.url, retired)
    async with tether.open(text, clock=VirtualClock(), refuse_after_sunset=True) as strict:
        with pytest.raises(tether.Rejected, match="sunset"):
            await strict.call("things")
    assert fault_server.log == []
    async with tether.open(text, clock=VirtualClock()) as lenient:
        await lenient.call("things")
    assert len(fault_server.log) == 1


async def test_a_sunset_header_in_the_past_refuses_the_next_call(fault_server: FaultServer) -> None:
    """After a response says Sunset: <past date>, the next call is refused without sending."""
    fault_server.route(
        "GET", "/things", Fault.ok(json=[], headers={"Sunset": "Fri, 01 Jan 2027 00:00:00 GMT"})
    )
    async with tether.open(
        _spec(fault_server.url, ""), clock=VirtualClock(), refuse_after_sunset=True
    ) as api:
        await api.call("things")
        with pytest.raises(tether.Rejected):
            await api.call("things")
    assert len(fault_server.log) == 1
