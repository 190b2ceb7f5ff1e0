"""Fault.sse on the wire: chunked event stream, drop after N events, resume after Last-Event-ID."""

from __future__ import annotations

import asyncio

import pytest

from tether.mock import Fault, FaultServer

WAIT = 10.0  # a safety net against a test waiting forever, never an assertion about speed


async def _exchange(port: int, headers: str = "") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET /sse HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{headers}\r\n".encode())
        await writer.drain()
        return await asyncio.wait_for(reader.read(), WAIT)
    finally:
        writer.close()


def _chunks(body: bytes) -> tuple[list[bytes], bool]:
    """The chunks of a chunked body, and whether it ended with the final zero-size chunk."""
    out: list[bytes] = []
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return out, True
        out.append(rest[:size])
        body = rest[size + 2 :]
    return out, False


EVENTS = [{"id": str(i), "data": f"e{i}"} for i in range(5)]


async def test_events_are_sent_one_chunk_each_then_the_final_chunk(fault_server: FaultServer) -> None:
    """Each event is one chunk of a text/event-stream body that ends with the zero-size chunk."""
    fault_server.route("GET", "/sse", Fault.sse([{"event": "t", "data": "a\nb", "retry": 10}, *EVENTS[:1]]))
    head, _, body = (await _exchange(fault_server.port)).partition(b"\r\n\r\n")
    assert b"Content-Type: text/event-stream" in head
    chunks, complete = _chunks(body)
    assert chunks == [b"event: t\nretry: 10\ndata: a\ndata: b\n\n", b"id: 0\ndata: e0\n\n"]
    assert complete


async def test_drop_after_closes_without_the_final_chunk(fault_server: FaultServer) -> None:
    """drop_after=N sends N events and closes the connection mid-body."""
    fault_server.route("GET", "/sse", Fault.sse(EVENTS, drop_after=2))
    chunks, complete = _chunks((await _exchange(fault_server.port)).partition(b"\r\n\r\n")[2])
    assert chunks == [b"id: 0\ndata: e0\n\n", b"id: 1\ndata: e1\n\n"]
    assert not complete


@pytest.mark.parametrize(("honour", "first"), [(True, b"id: 3"), (False, b"id: 0")])
async def test_last_event_id_resumes_after_that_event(
    fault_server: FaultServer, honour: bool, first: bytes
) -> None:
    """A request with Last-Event-ID gets the events after it, unless honour_last_event_id=False."""
    fault_server.route("GET", "/sse", Fault.sse(EVENTS, honour_last_event_id=honour))
    raw = await _exchange(fault_server.port, "Last-Event-ID: 2\r\n")
    chunks, complete = _chunks(raw.partition(b"\r\n\r\n")[2])
    assert chunks[0].startswith(first)
    assert complete
    assert fault_server.log[0].fault == "sse"


@pytest.mark.parametrize(
    "events",
    [
        [{"data": "x", "colour": "red"}],
        [{"id": "a\nb"}],
        [{}],
        [{"retry": -1}],
        "data: x",
    ],
)
def test_bad_events_are_refused(events: object) -> None:
    """Unknown keys, multi-line ids, empty events, negative retry and non-lists raise ValueError."""
    with pytest.raises(ValueError):
        Fault.sse(events)  # type: ignore[arg-type]


def test_sse_json_form_names_only_non_defaults() -> None:
    """to_dict keeps the events and drops default arguments; from_dict restores the fault."""
    fault = Fault.sse(EVENTS[:1], drop_after=3)
    assert fault.to_dict() == {"kind": "sse", "events": [{"id": "0", "data": "e0"}], "drop_after": 3}
    assert Fault.from_dict(fault.to_dict()) == fault
