"""The aiohttp engine on the happy path: bodies, headers, request bodies, pooling, streaming."""

from __future__ import annotations

import asyncio
import gc
import json
import tracemalloc
from collections.abc import AsyncIterator

import httpx2
import pytest
from engine_helpers import plain_client

from tether import Timeouts
from tether.mock import Fault, FaultServer
from tether.transport import AiohttpTransport, EngineOptions, create_transport
from tether.transport._negotiate import NegotiatingTransport


async def test_a_json_body_arrives_through_the_transport(
    fault_server: FaultServer, transport: AiohttpTransport
) -> None:
    """A plain 200 JSON response comes back as an httpx2.Response with its body and HTTP/1.1."""
    fault_server.route("GET", "/item", Fault.ok(json={"id": 7, "name": "seven"}))
    response = await transport.handle_async_request(httpx2.Request("GET", fault_server.url + "/item"))
    await response.aread()
    assert response.status_code == 200
    assert response.json() == {"id": 7, "name": "seven"}
    assert response.http_version == "HTTP/1.1"
    assert response.reason_phrase == "OK"


async def test_a_json_body_arrives_through_the_client(fault_server: FaultServer) -> None:
    """tether.Client with no policies returns the body read by the engine."""
    fault_server.route("GET", "/item", Fault.ok(json={"id": 7}))
    async with plain_client(fault_server.url) as client:
        response = await client.get("/item")
    assert response.json() == {"id": 7}


async def test_duplicate_response_headers_keep_their_order(
    fault_server: FaultServer, transport: AiohttpTransport
) -> None:
    """Repeated headers (several Set-Cookie) all arrive, in the order the server sent them."""
    headers = [("Set-Cookie", "a=1"), ("X-Trace", "t"), ("Set-Cookie", "b=2"), ("Set-Cookie", "c=3")]
    fault_server.route("GET", "/cookies", Fault.ok(body=b"ok", headers=headers))
    response = await transport.handle_async_request(httpx2.Request("GET", fault_server.url + "/cookies"))
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2", "c=3"]
    names = [name.lower() for name, _ in response.headers.raw]
    assert names.index(b"set-cookie") < names.index(b"x-trace")


async def test_request_headers_are_sent_as_given_without_aiohttp_defaults(
    fault_server: FaultServer, transport: AiohttpTransport
) -> None:
    """The server sees httpx2's headers in order, and no User-Agent/Accept-Encoding aiohttp would add."""
    fault_server.route("GET", "/h", Fault.ok(body=b"ok"))
    request = httpx2.Request("GET", fault_server.url + "/h", headers=[("X-One", "1"), ("X-Two", "2")])
    await transport.handle_async_request(request)
    seen = fault_server.log[-1]
    assert seen.headers["x-one"] == "1"
    assert seen.headers["x-two"] == "2"
    assert "user-agent" not in seen.headers
    assert "accept-encoding" not in seen.headers
    names = [name.lower() for name, _ in seen.header_list]
    assert names.index("x-one") < names.index("x-two")


async def test_a_bytes_body_is_sent_with_its_length_and_type(fault_server: FaultServer) -> None:
    """A JSON POST reaches the server whole, with Content-Length and the given Content-Type."""
    fault_server.route("POST", "/echo", Fault.echo())
    async with plain_client(fault_server.url) as client:
        response = await client.post("/echo", json={"k": "v" * 100})
    echoed = response.json()
    assert json.loads(echoed["body"]) == {"k": "v" * 100}
    assert echoed["headers"]["content-type"] == "application/json"
    assert echoed["headers"]["content-length"] == str(len(echoed["body"]))


async def test_a_raw_body_without_a_type_gets_no_invented_content_type(
    fault_server: FaultServer, transport: AiohttpTransport
) -> None:
    """Bytes sent without Content-Type arrive without one (aiohttp's octet-stream default is skipped)."""
    fault_server.route("PUT", "/raw", Fault.echo())
    request = httpx2.Request("PUT", fault_server.url + "/raw", content=b"abc")
    response = await transport.handle_async_request(request)
    echoed = json.loads(await response.aread())
    assert echoed["body"] == "abc"
    assert "content-type" not in echoed["headers"]


async def test_a_large_bytes_body_is_sent_whole(fault_server: FaultServer) -> None:
    """A bytes body larger than one slice (sent in slices under the write timeout) arrives intact."""
    fault_server.route("POST", "/upload", Fault.ok(body=b"stored"))
    payload = bytes(range(256)) * 2000  # 512 000 bytes
    async with plain_client(fault_server.url) as client:
        await client.post("/upload", content=payload)
    assert fault_server.log[-1].body == payload
    assert fault_server.log[-1].headers["content-length"] == str(len(payload))


async def test_a_streamed_request_body_is_sent_chunked(fault_server: FaultServer) -> None:
    """An async-iterable body goes out with chunked framing and arrives complete."""

    async def parts() -> AsyncIterator[bytes]:
        for i in range(5):
            yield f"part{i};".encode()

    fault_server.route("POST", "/stream-in", Fault.ok(body=b"ok"))
    async with AiohttpTransport() as engine:
        request = httpx2.Request("POST", fault_server.url + "/stream-in", content=parts())
        await engine.handle_async_request(request)
    seen = fault_server.log[-1]
    assert seen.body == b"part0;part1;part2;part3;part4;"
    assert seen.headers.get("transfer-encoding") == "chunked"


async def test_head_and_204_have_empty_bodies(fault_server: FaultServer, transport: AiohttpTransport) -> None:
    """HEAD and 204 responses come back with no body, even when Content-Length says otherwise."""
    fault_server.route("HEAD", "/h", Fault.ok(body=b"x" * 50))
    fault_server.route("DELETE", "/d", Fault.status(204))
    head = await transport.handle_async_request(httpx2.Request("HEAD", fault_server.url + "/h"))
    deleted = await transport.handle_async_request(httpx2.Request("DELETE", fault_server.url + "/d"))
    assert await head.aread() == b""
    assert await deleted.aread() == b""
    assert head.headers["content-length"] == "50"
    assert deleted.status_code == 204


async def test_many_requests_reuse_a_few_pooled_connections(fault_server: FaultServer) -> None:
    """60 requests, 4 at a time, travel over at most 4 connections (the pool keeps them alive)."""
    fault_server.route("GET", "/p", Fault.ok(json={"ok": True}))
    gate = asyncio.Semaphore(4)

    async with plain_client(fault_server.url) as client:

        async def one() -> None:
            async with gate:
                await client.get("/p")

        await asyncio.gather(*(one() for _ in range(60)))
    ids = {r.connection_id for r in fault_server.log}
    assert len(fault_server.log) == 60
    assert len(ids) <= 4


async def test_the_pool_never_opens_more_than_max_connections(fault_server: FaultServer) -> None:
    """With max_connections=2, 20 concurrent requests share two connections (the rest wait their turn)."""
    fault_server.route("GET", "/slow", Fault.ok(json={"ok": True}, latency=0.01))
    async with plain_client(fault_server.url, engine=EngineOptions(max_connections=2)) as client:
        await asyncio.gather(*(client.get("/slow") for _ in range(20)))
    assert len({r.connection_id for r in fault_server.log}) <= 2


async def test_the_per_host_bound_limits_connections_to_one_host(fault_server: FaultServer) -> None:
    """max_connections_per_host=1 serialises requests to one origin over a single connection."""
    fault_server.route("GET", "/slow", Fault.ok(json={"ok": True}, latency=0.01))
    options = EngineOptions(max_connections_per_host=1)
    async with plain_client(fault_server.url, engine=options) as client:
        await asyncio.gather(*(client.get("/slow") for _ in range(8)))
    assert len({r.connection_id for r in fault_server.log}) == 1


async def test_a_streamed_response_is_delivered_in_chunks(fault_server: FaultServer) -> None:
    """Client.stream yields the body piece by piece and the whole matches what was sent."""
    fault_server.route("GET", "/big", Fault.large(300_000, chunk=10_000))
    async with plain_client(fault_server.url) as client, client.stream("GET", "/big") as response:
        sizes = [len(chunk) async for chunk in response.aiter_bytes()]
    assert sum(sizes) == 300_000
    assert len(sizes) > 1


async def test_a_stream_closed_early_frees_its_pool_slot(fault_server: FaultServer) -> None:
    """Leaving a stream unread closes it; with one connection allowed, the next call still goes through."""
    fault_server.route("GET", "/big", Fault.large(5_000_000))
    fault_server.route("GET", "/small", Fault.ok(json={"ok": 1}))
    options = EngineOptions(max_connections=1)
    async with plain_client(fault_server.url, engine=options, timeout=2.0) as client:
        async with client.stream("GET", "/big") as response:
            async for _ in response.aiter_bytes():
                break
        again = await client.get("/small")
    assert again.json() == {"ok": 1}


async def test_streaming_100_mb_keeps_memory_flat(fault_server: FaultServer) -> None:
    """100 MB streamed through tether.Client.stream never holds more than a few MB (tracemalloc peak)."""
    size = 100 * 1000 * 1000
    fault_server.route("GET", "/huge", Fault.large(size, chunk=256 * 1024))
    async with plain_client(fault_server.url, timeout=60.0) as client:
        tracemalloc.start()
        try:
            total = 0
            async with client.stream("GET", "/huge") as response:
                async for chunk in response.aiter_raw():
                    total += len(chunk)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert total == size
    assert peak < 20 * 1000 * 1000


def test_the_factory_picks_the_engine_by_http_version() -> None:
    """http_version "1.1" gives the aiohttp engine, "2" HTTP/2 by ALPN with aiohttp as the fallback."""
    assert isinstance(create_transport(EngineOptions()), AiohttpTransport)
    assert isinstance(create_transport(EngineOptions(http_version="2")), NegotiatingTransport)


async def test_a_closed_transport_refuses_new_requests(fault_server: FaultServer) -> None:
    """After aclose() the engine does not silently reopen."""
    engine = AiohttpTransport()
    await engine.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await engine.handle_async_request(httpx2.Request("GET", fault_server.url + "/fast"))


async def test_a_dropped_stream_gives_its_pool_slot_back(fault_server: FaultServer) -> None:
    """A streamed response garbage-collected without aclose() does not starve a one-connection pool."""
    fault_server.route("GET", "/big", Fault.large(2_000_000))
    fault_server.route("GET", "/small", Fault.ok(json={"ok": True}))
    client = plain_client(fault_server.url)
    engine = AiohttpTransport(EngineOptions(max_connections=1))
    try:
        response = await engine.handle_async_request(client.build_request("GET", "/big", stream=True))
        assert response.status_code == 200
        del response
        gc.collect()
        request = client.build_request("GET", "/small", timeout=Timeouts(pool=2.0))
        again = await engine.handle_async_request(request)
        assert await again.aread() == b'{"ok":true}'
    finally:
        await engine.aclose()
        await client.aclose()
