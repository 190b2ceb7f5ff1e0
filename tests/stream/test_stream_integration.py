"""Integration.stream: SSE endpoints of a spec, built like call() and driven by the streaming keys."""

from __future__ import annotations

import pytest

import tether
from tether import errors
from tether.mock import Fault, FaultServer
from tether.spec import load
from tether.spec._enforcement import not_enforced
from tether.testing import VirtualClock

SPEC = """\
service: {name: chat, base_url: "@URL@/api"}
retry: {max_attempts: 1}
streaming: {reconnect_delay: 2000, max_reconnects: 4}
endpoints:
  tail:
    path: /rooms/{room}/events
    parameters:
      - {name: room, in: path, type: string, pattern: "^[a-z]+$"}
      - {name: since, in: query, type: integer, required: false}
    streaming: {type: sse, error_events: [oops], timeout: 60s}
  plain:
    path: /plain
"""

EVENTS = [{"id": str(i), "data": f"m{i}"} for i in range(6)]


def _spec(url: str) -> str:
    return SPEC.replace("@URL@", url)


async def test_stream_sends_the_endpoints_request_and_reconnects(fault_server: FaultServer) -> None:
    """Path and query params build the request; drops reconnect after the spec's reconnect_delay."""
    fault_server.route("GET", "/api/rooms/{room}/events", Fault.sse(EVENTS, drop_after=2))
    clock = VirtualClock()
    async with tether.open(_spec(fault_server.url), clock=clock) as api:
        got = [e.data async for e in api.stream("tail", room="lobby", since=5)]
    assert got == [f"m{i}" for i in range(6)]
    assert [r.header("last-event-id") for r in fault_server.log] == [None, "1", "3"]
    assert {r.param("since") for r in fault_server.log} == {"5"}
    assert {r.header("accept") for r in fault_server.log} == {"text/event-stream"}
    assert clock.monotonic() == pytest.approx(4.0)  # two reconnects of the section's 2 s


async def test_stream_raises_the_endpoints_error_events(fault_server: FaultServer) -> None:
    """An event named in the endpoint's error_events raises its typed error."""
    oops = {"event": "oops", "data": '{"status": 500}'}
    fault_server.route("GET", "/api/rooms/{room}/events", Fault.sse([EVENTS[0], oops]))
    async with tether.open(_spec(fault_server.url)) as api:
        with pytest.raises(errors.APIError) as caught:
            async for _ in api.stream("tail", room="lobby"):
                pass
    assert caught.value.status_code == 500
    assert caught.value.endpoint == "tail"


async def test_stream_honours_max_reconnects_from_the_section(fault_server: FaultServer) -> None:
    """The spec's streaming.max_reconnects bounds reconnects in a row without an event."""
    fault_server.route("GET", "/api/rooms/{room}/events", Fault.sse(EVENTS, drop_after=0))
    async with tether.open(_spec(fault_server.url), clock=VirtualClock()) as api:
        with pytest.raises(errors.ResponseError):
            async for _ in api.stream("tail", room="lobby"):
                pass
    assert len(fault_server.log) == 5


async def test_a_bad_parameter_fails_before_anything_is_sent(fault_server: FaultServer) -> None:
    """Parameter validation runs when stream() is called, before a request is made."""
    async with tether.open(_spec(fault_server.url)) as api:
        with pytest.raises(errors.RequestValidationError):
            api.stream("tail", room="NOT-lower")
    assert fault_server.log == []


async def test_an_endpoint_without_streaming_is_refused(fault_server: FaultServer) -> None:
    """stream() on an endpoint with no streaming: section raises SpecError."""
    async with tether.open(_spec(fault_server.url)) as api:
        with pytest.raises(errors.SpecError, match="streaming"):
            api.stream("plain")


def test_streaming_keys_are_enforced() -> None:
    """streaming and endpoints.*.streaming are no longer reported as not enforced."""
    spec = load(_spec("https://chat.example"), environ={})
    assert not [k for k in not_enforced(spec) if "streaming" in k]
