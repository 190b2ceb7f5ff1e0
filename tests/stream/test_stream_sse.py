"""sse() against the FaultServer: order, reconnects with Last-Event-ID, retry:, error events, timeout."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

import tether
from tether import errors
from tether import events as ev
from tether.events import EventRecorder
from tether.mock import Fault, FaultServer
from tether.stream import SSEEvent, sse
from tether.testing import VirtualClock


def _events(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"id": str(i), "data": json.dumps({"n": i}), **extra} for i in range(n)]


@pytest.fixture
async def client(fault_server: FaultServer) -> AsyncIterator[tether.Client]:
    """A client for the fault server, without retry or breaker (only the stream is under test)."""
    async with tether.Client(fault_server.url, retry=None, breaker=None) as c:
        yield c


async def _drain(events: AsyncIterator[SSEEvent], seen: list[SSEEvent]) -> None:
    async for event in events:
        seen.append(event)


async def _all(client: tether.Client, path: str = "/sse", **kwargs: Any) -> list[SSEEvent]:
    return [e async for e in sse(client, "GET", path, **kwargs)]


async def test_events_arrive_in_order(fault_server: FaultServer, client: tether.Client) -> None:
    """Every event of an unbroken stream arrives once, in order, with its fields."""
    fault_server.route("GET", "/sse", Fault.sse([{"event": "start", "data": "go"}, *_events(5)]))
    got = await _all(client)
    assert got[0] == SSEEvent(event="start", data="go")
    assert [e.json() for e in got[1:]] == [{"n": i} for i in range(5)]
    request = fault_server.log[0]
    assert request.header("accept") == "text/event-stream"
    assert request.header("last-event-id") is None


async def test_a_drop_reconnects_with_last_event_id_and_loses_nothing(
    fault_server: FaultServer,
) -> None:
    """Drops every 3 events reconnect with Last-Event-ID; every event arrives exactly once."""
    fault_server.route("GET", "/sse", Fault.sse(_events(10), drop_after=3))
    recorder = EventRecorder()
    async with tether.Client(fault_server.url, retry=None, breaker=None, listeners=[recorder]) as c:
        got = await _all(c, clock=VirtualClock())
    assert [e.id for e in got] == [str(i) for i in range(10)]
    assert [r.header("last-event-id") for r in fault_server.log] == [None, "2", "5", "8"]
    reconnected = recorder.of(ev.STREAM_RECONNECTED)
    assert [e.fields["last_event_id"] for e in reconnected] == ["2", "5", "8"]
    assert {e.fields["error_type"] for e in reconnected} == {"ResponseError"}


async def test_the_servers_retry_sets_the_reconnect_delay(
    fault_server: FaultServer, client: tether.Client
) -> None:
    """The wait before each reconnect is the server's last retry: (ms), in virtual time."""
    fault_server.route("GET", "/sse", Fault.sse(_events(6, retry=250), drop_after=2))
    clock = VirtualClock()
    got = await _all(client, clock=clock)
    assert len(got) == 6
    assert clock.monotonic() == pytest.approx(0.5)  # two reconnects of 250 ms


async def test_without_retry_the_default_delay_is_used(
    fault_server: FaultServer, client: tether.Client
) -> None:
    """With no retry: from the server, a reconnect waits reconnect_delay (3 s by default)."""
    fault_server.route("GET", "/sse", Fault.sse(_events(2), drop_after=1))
    clock = VirtualClock()
    assert len(await _all(client, clock=clock)) == 2
    assert clock.monotonic() == pytest.approx(3.0)


async def test_a_given_last_event_id_resumes_from_the_first_request(
    fault_server: FaultServer, client: tether.Client
) -> None:
    """last_event_id= sends Last-Event-ID on the first request and the server resumes after it."""
    fault_server.route("GET", "/sse", Fault.sse(_events(5)))
    got = await _all(client, last_event_id="2")
    assert [e.id for e in got] == ["3", "4"]
    assert fault_server.log[0].header("last-event-id") == "2"


async def test_an_error_event_raises_the_typed_error(
    fault_server: FaultServer, client: tether.Client
) -> None:
    """An error event's status maps to a typed error, raised after the events before it."""
    error = {"event": "error", "data": json.dumps({"status": 429, "message": "slow down", "retry_after": 3})}
    fault_server.route("GET", "/sse", Fault.sse([*_events(2), error, *_events(1)]))
    seen: list[SSEEvent] = []
    with pytest.raises(errors.RateLimitExceeded) as caught:
        await _drain(sse(client, "GET", "/sse", endpoint="chat"), seen)
    assert len(seen) == 2
    assert caught.value.status_code == 429
    assert caught.value.retry_after == 3.0
    assert caught.value.endpoint == "chat"


async def test_error_event_names_are_configurable(fault_server: FaultServer, client: tether.Client) -> None:
    """error_events names which events are errors; a 5xx code is an APIError."""
    failure = {"event": "failure", "data": '{"code": 503}'}
    fault_server.route("GET", "/sse", Fault.sse([{"event": "error", "data": "not an error here"}, failure]))
    with pytest.raises(errors.APIError) as caught:
        await _all(client, error_events=("failure",))
    assert caught.value.status_code == 503


async def test_reconnect_waits_past_the_timeout_end_with_a_total_timeout(
    fault_server: FaultServer, client: tether.Client
) -> None:
    """A reconnect wait that would outlast the operation's timeout raises TimeoutError(phase=total)."""
    fault_server.route("GET", "/sse", Fault.sse(_events(10, retry=10_000), drop_after=1))
    seen: list[SSEEvent] = []
    with pytest.raises(errors.TimeoutError) as caught:
        await _drain(sse(client, "GET", "/sse", timeout=15.0, clock=VirtualClock()), seen)
    assert caught.value.phase == "total"
    assert len(seen) == 2  # one reconnect (10 s) fits in 15 s, the second does not


async def test_a_stalled_server_ends_with_a_total_timeout(
    fault_server: FaultServer, client: tether.Client
) -> None:
    """A server that never answers is cut off at the operation's timeout (phase=total)."""
    fault_server.route("GET", "/sse", Fault.hang())
    with pytest.raises(errors.TimeoutError) as caught:
        await _all(client, timeout=0.2)
    assert caught.value.phase == "total"


async def test_reconnects_in_a_row_are_bounded(fault_server: FaultServer, client: tether.Client) -> None:
    """A stream that drops before any event gives up after max_reconnects, raising the drop."""
    fault_server.route("GET", "/sse", Fault.sse(_events(3), drop_after=0))
    with pytest.raises(errors.ResponseError) as caught:
        await _all(client, max_reconnects=2, clock=VirtualClock())
    assert caught.value.reason == "truncated"
    assert len(fault_server.log) == 3


async def test_reconnect_false_raises_the_drop(fault_server: FaultServer, client: tether.Client) -> None:
    """With reconnect=False a dropped stream raises after the events that arrived."""
    fault_server.route("GET", "/sse", Fault.sse(_events(5), drop_after=2))
    seen: list[SSEEvent] = []
    with pytest.raises(errors.ResponseError):
        await _drain(sse(client, "GET", "/sse", reconnect=False), seen)
    assert [e.id for e in seen] == ["0", "1"]
    assert len(fault_server.log) == 1


async def test_a_done_event_ends_the_stream_and_a_clean_end_before_it_reconnects(
    fault_server: FaultServer, client: tether.Client
) -> None:
    """With done_event, a body that ends before it is a drop; the done event ends the stream unyielded."""
    everything = [*_events(3), {"event": "done", "data": "[DONE]"}]
    fault_server.route("GET", "/sse", Fault.sse(everything[:2]), Fault.sse(everything))
    got = await _all(client, done_event="done", clock=VirtualClock())
    assert [e.id for e in got] == ["0", "1", "2"]
    assert fault_server.log[1].header("last-event-id") == "1"


async def test_a_204_on_reconnect_ends_the_stream(fault_server: FaultServer, client: tether.Client) -> None:
    """A reconnect answered 204 No Content ends the stream quietly."""
    fault_server.route("GET", "/sse", Fault.sse(_events(4), drop_after=2), Fault.status(204))
    got = await _all(client, clock=VirtualClock())
    assert [e.id for e in got] == ["0", "1"]


async def test_a_response_that_is_not_an_event_stream_is_refused(
    fault_server: FaultServer, client: tether.Client
) -> None:
    """A 200 with another content type raises ResponseError(decoding) rather than parsing it."""
    fault_server.route("GET", "/sse", Fault.ok(json={"not": "sse"}))
    with pytest.raises(errors.ResponseError) as caught:
        await _all(client)
    assert caught.value.reason == "decoding"


async def test_an_error_status_on_connect_is_the_typed_http_error(
    fault_server: FaultServer, client: tether.Client
) -> None:
    """An HTTP error answering the first request raises its typed error (no reconnect)."""
    fault_server.route("GET", "/sse", Fault.status(401))
    with pytest.raises(errors.AuthenticationError):
        await _all(client)
    assert len(fault_server.log) == 1
