"""Every wire failure surfaces as one typed tether error, through the transport and through the Client."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator

import httpx2
import pytest
from engine_helpers import plain_client

import tether
from tether import errors
from tether._redact import register_secret, registry
from tether.mock import Fault, FaultServer
from tether.transport import AiohttpTransport, EngineOptions


def _request(url: str, *, timeout: float | None = None, method: str = "GET") -> httpx2.Request:
    extensions = {}
    if timeout is not None:
        extensions["timeout"] = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
    return httpx2.Request(method, url, extensions=extensions)


async def _fetch(transport: AiohttpTransport, request: httpx2.Request) -> httpx2.Response:
    response = await transport.handle_async_request(request)
    await response.aread()
    return response


@pytest.fixture
def listener_without_accept() -> Iterator[int]:
    """A port whose accept queue is full, so a new TCP connect never completes."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        try:
            filler.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(filler)
    try:
        yield port
    finally:
        for filler in fillers:
            filler.close()
        server.close()


@pytest.fixture
async def sink_server() -> AsyncIterator[int]:
    """A raw server that accepts connections and never reads from them (its receive buffer fills)."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.fixture
async def stalling_body_server() -> AsyncIterator[int]:
    """A raw server that sends a response head and part of the body, then goes silent."""
    held: list[asyncio.StreamWriter] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
        await writer.drain()
        held.append(writer)

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


# --- no response --------------------------------------------------------------------------------


async def test_a_reset_before_any_byte_is_a_connection_error(
    fault_server: FaultServer, transport: AiohttpTransport
) -> None:
    """Fault.reset: ConnectionError, and the request reached the server exactly once (no hidden retry)."""
    fault_server.route("GET", "/r", Fault.reset(), Fault.ok(json={"second": True}))
    with pytest.raises(errors.ConnectionError) as caught:
        await _fetch(transport, _request(fault_server.url + "/r"))
    assert isinstance(caught.value.__cause__, Exception)
    assert len(fault_server.log) == 1


async def test_a_refused_connection_is_a_connection_error(transport: AiohttpTransport) -> None:
    """Nothing listening on the port: ConnectionError naming method and URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(errors.ConnectionError, match=rf"GET http://127.0.0.1:{port}/x"):
        await _fetch(transport, _request(f"http://127.0.0.1:{port}/x"))


async def test_an_unresolvable_host_is_a_connection_error(transport: AiohttpTransport) -> None:
    """A name that does not resolve (.invalid, RFC 6761) is a ConnectionError about resolution."""
    with pytest.raises(errors.ConnectionError, match="resolve"):
        await _fetch(transport, _request("http://no-such-host.invalid/x", timeout=5.0))


# --- broken responses ---------------------------------------------------------------------------


async def test_a_reset_mid_body_is_a_truncated_response(
    fault_server: FaultServer, transport: AiohttpTransport
) -> None:
    """Fault.reset_mid_body: ResponseError(reason="truncated")."""
    fault_server.route("GET", "/rmb", Fault.reset_mid_body(total=10_000, sent=100))
    with pytest.raises(errors.ResponseError) as caught:
        await _fetch(transport, _request(fault_server.url + "/rmb"))
    assert caught.value.reason == "truncated"


async def test_a_truncated_body_is_a_truncated_response(fault_server: FaultServer) -> None:
    """Fault.truncated through the Client: ResponseError(reason="truncated")."""
    fault_server.route("GET", "/t", Fault.truncated(total=10_000, sent=100))
    async with plain_client(fault_server.url) as client:
        with pytest.raises(errors.ResponseError) as caught:
            await client.get("/t")
    assert caught.value.reason == "truncated"


@pytest.mark.parametrize("kind", ["garbage", "bad_chunked", "bad_header"])
async def test_a_malformed_response_is_a_protocol_error(fault_server: FaultServer, kind: str) -> None:
    """Fault.malformed (no status line, bad chunk size, header without colon): reason="protocol"."""
    fault_server.route("GET", "/m", Fault.malformed(kind))
    async with plain_client(fault_server.url) as client:
        with pytest.raises(errors.ResponseError) as caught:
            await client.get("/m")
    assert caught.value.reason == "protocol"
    assert "GET http://127.0.0.1" in str(caught.value)


async def test_a_truncated_stream_fails_while_the_caller_reads(fault_server: FaultServer) -> None:
    """Errors during body iteration of a streamed call are typed too (raised from aiter_bytes)."""
    fault_server.route("GET", "/t", Fault.reset_mid_body(total=100_000, sent=1000))
    async with plain_client(fault_server.url) as client, client.stream("GET", "/t") as response:
        with pytest.raises(errors.ResponseError) as caught:
            async for _ in response.aiter_bytes():
                pass
    assert caught.value.reason == "truncated"


async def test_messages_name_the_call_and_hide_credentials(fault_server: FaultServer) -> None:
    """A failure message has the method and redacted URL; neither a secret query value nor a header."""
    fault_server.route("GET", "/secret", Fault.reset())
    with registry.isolated():
        register_secret("s3cr3t-token-value")
        async with plain_client(fault_server.url, headers={"X-API-Key": "s3cr3t-token-value"}) as client:
            with pytest.raises(errors.ConnectionError) as caught:
                await client.get("/secret", params={"api_key": "s3cr3t-token-value", "q": "1"})
    text = str(caught.value)
    assert "GET http://127.0.0.1" in text
    assert "/secret" in text
    assert "s3cr3t" not in text
    assert "s3cr3t" not in repr(caught.value)


# --- timeouts -----------------------------------------------------------------------------------


async def test_a_hung_server_is_a_read_timeout(fault_server: FaultServer) -> None:
    """Fault.hang with read=0.2 s: TimeoutError(phase="read")."""
    fault_server.route("GET", "/hang", Fault.hang())
    async with plain_client(fault_server.url, timeout=tether.Timeouts(read=0.2)) as client:
        with pytest.raises(errors.TimeoutError) as caught:
            await client.get("/hang")
    assert caught.value.phase == "read"


async def test_a_slow_answer_is_a_read_timeout(
    fault_server: FaultServer, transport: AiohttpTransport
) -> None:
    """Fault.delay longer than the read timeout: TimeoutError(phase="read")."""
    fault_server.route("GET", "/slow", Fault.delay(5.0))
    with pytest.raises(errors.TimeoutError) as caught:
        await _fetch(transport, _request(fault_server.url + "/slow", timeout=0.2))
    assert caught.value.phase == "read"


async def test_a_body_that_stalls_is_a_read_timeout(stalling_body_server: int) -> None:
    """A body that stops arriving halfway: TimeoutError(phase="read") while the body is read."""
    url = f"http://127.0.0.1:{stalling_body_server}"
    async with plain_client(url, timeout=tether.Timeouts(read=0.2)) as client:
        with pytest.raises(errors.TimeoutError) as caught:
            await client.get("/stall")
    assert caught.value.phase == "read"


async def test_an_unanswered_connect_is_a_connect_timeout(
    listener_without_accept: int, transport: AiohttpTransport
) -> None:
    """A TCP connect that never completes: TimeoutError(phase="connect")."""
    request = _request(f"http://127.0.0.1:{listener_without_accept}/x", timeout=0.2)
    with pytest.raises(errors.TimeoutError) as caught:
        await _fetch(transport, request)
    assert caught.value.phase == "connect"


async def test_waiting_for_a_busy_pool_is_a_pool_timeout(fault_server: FaultServer) -> None:
    """One connection allowed and held by an open stream: the next call fails with phase="pool"."""
    fault_server.route("GET", "/big", Fault.large(1_000_000))
    fault_server.route("GET", "/small", Fault.ok(json={}))
    options = EngineOptions(max_connections=1)
    async with (
        plain_client(fault_server.url, engine=options, timeout=tether.Timeouts(pool=0.2)) as client,
        client.stream("GET", "/big"),
    ):
        with pytest.raises(errors.TimeoutError) as caught:
            await client.get("/small")
    assert caught.value.phase == "pool"
    assert [r.path for r in fault_server.log] == ["/big"]


async def test_a_body_the_server_does_not_read_is_a_write_timeout(sink_server: int) -> None:
    """Uploading to a peer that stops reading: TimeoutError(phase="write") once the buffers are full."""
    block = b"u" * (1024 * 1024)

    async def upload() -> AsyncIterator[bytes]:
        for _ in range(256):  # far more than loopback socket buffers hold
            yield block

    url = f"http://127.0.0.1:{sink_server}"
    async with plain_client(url, timeout=tether.Timeouts(write=0.2, read=30.0)) as client:
        with pytest.raises(errors.TimeoutError) as caught:
            await client.post("/up", content=upload())
    assert caught.value.phase == "write"


async def test_a_large_bytes_body_the_server_does_not_read_is_a_write_timeout(sink_server: int) -> None:
    """The write timeout also bounds a large in-memory body (sent in slices)."""
    url = f"http://127.0.0.1:{sink_server}"
    async with plain_client(url, timeout=tether.Timeouts(write=0.2, read=30.0)) as client:
        with pytest.raises(errors.TimeoutError) as caught:
            await client.post("/up", content=b"b" * (64 * 1024 * 1024))
    assert caught.value.phase == "write"
