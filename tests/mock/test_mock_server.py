"""FaultServer routing, scripting, connections and the request log, hit by real clients."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from mock_wire import exchange, read_response, request

from tether.mock import Fault, FaultServer


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, bytes]:
    async with session.get(url) as resp:
        return resp.status, await resp.read()


async def test_scripted_responses_are_used_in_order_and_the_last_repeats(fault_server: FaultServer) -> None:
    """A route answers its faults in order, then keeps answering the last one."""
    fault_server.route("GET", "/data/{id}", Fault.status(500), Fault.status(503), Fault.ok(json={"ok": True}))
    async with aiohttp.ClientSession() as s:
        statuses = [(await _get(s, f"{fault_server.url}/data/{i}"))[0] for i in range(5)]
    assert statuses == [500, 503, 200, 200, 200]
    assert [r.status for r in fault_server.log] == statuses


async def test_fast_route_answers_fixed_json_from_precomputed_bytes(fault_server: FaultServer) -> None:
    """Every server has GET /fast answering a tiny fixed JSON 200."""
    async with aiohttp.ClientSession() as s, s.get(f"{fault_server.url}/fast") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/json"
        assert await resp.json() == {"ok": True}


async def test_path_parameters_match_one_segment_only(fault_server: FaultServer) -> None:
    """{id} matches a single path segment: /data/1 matches, /data/1/extra does not."""
    fault_server.route("GET", "/data/{id}", Fault.ok(text="one"))
    async with aiohttp.ClientSession() as s:
        assert await _get(s, f"{fault_server.url}/data/ITEM-001") == (200, b"one")
        status, body = await _get(s, f"{fault_server.url}/data/ITEM-001/extra")
    assert status == 404
    assert b"no route" in body


async def test_star_method_matches_any_method_and_specific_methods_win(fault_server: FaultServer) -> None:
    """method='*' answers every method, but a route for the exact method takes precedence."""
    fault_server.route("*", "/thing", Fault.ok(text="any"))
    fault_server.route("DELETE", "/thing", Fault.status(204))
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{fault_server.url}/thing", data=b"x") as resp:
            assert await resp.text() == "any"
        async with s.delete(f"{fault_server.url}/thing") as resp:
            assert resp.status == 204


async def test_a_later_route_for_the_same_method_and_path_replaces_it(fault_server: FaultServer) -> None:
    """route() for an existing method+path replaces it and restarts its script."""
    fault_server.route("GET", "/x", Fault.status(500), Fault.ok(text="first"))
    async with aiohttp.ClientSession() as s:
        assert (await _get(s, f"{fault_server.url}/x"))[0] == 500
        fault_server.route("GET", "/x", Fault.status(502), Fault.ok(text="second"))
        assert (await _get(s, f"{fault_server.url}/x"))[0] == 502
        assert await _get(s, f"{fault_server.url}/x") == (200, b"second")


async def test_unknown_paths_get_404_and_wrong_methods_405(fault_server: FaultServer) -> None:
    """Unknown paths answer 404 JSON; a known path with another method answers 405 with Allow."""
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{fault_server.url}/nope") as resp:
            assert resp.status == 404
            assert (await resp.json())["path"] == "/nope"
        async with s.post(f"{fault_server.url}/fast") as resp:
            assert resp.status == 405
            assert resp.headers["Allow"] == "GET"
    assert [r.fault for r in fault_server.log] == ["not_found", "method_not_allowed"]


async def test_echo_returns_the_request_as_received(fault_server: FaultServer) -> None:
    """/echo answers JSON with the method, path, query, headers and body it received."""
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{fault_server.url}/echo?a=1&a=2&b=", data=b'{"k": "v"}', headers={"X-Trace": "t1"}) as resp,
    ):
        doc = await resp.json()
    assert doc["method"] == "POST"
    assert doc["path"] == "/echo"
    assert doc["query"] == {"a": ["1", "2"], "b": [""]}
    assert doc["headers"]["x-trace"] == "t1"
    assert doc["body"] == '{"k": "v"}'


async def test_log_records_every_field_of_each_request(fault_server: FaultServer) -> None:
    """The log keeps method, decoded path, query, lower-cased headers, body, times, status, fault, conn."""
    fault_server.route("PUT", "/items/{id}", Fault.status(409, json={"error": "conflict"}))
    before_wall, before_mono = time.time(), time.monotonic()
    async with (
        aiohttp.ClientSession() as s,
        s.put(f"{fault_server.url}/items/a%20b?q=x&q=y", data=b"payload", headers={"X-Key": "K"}) as resp,
    ):
        assert resp.status == 409
    (rec,) = fault_server.log
    assert rec.method == "PUT"
    assert rec.path == "/items/a b"
    assert rec.target == "/items/a%20b?q=x&q=y"
    assert rec.query == {"q": ["x", "y"]}
    assert rec.param("q") == "x"
    assert rec.headers["x-key"] == "K"
    assert rec.header("X-KEY") == "K"
    assert rec.body == b"payload"
    assert before_wall <= rec.time <= time.time()
    assert before_mono <= rec.monotonic <= time.monotonic()
    assert rec.status == 409
    assert rec.fault == "status"
    assert rec.route == "/items/{id}"
    assert rec.connection_id >= 1


async def test_requests_filters_the_log_by_method_and_route_pattern(fault_server: FaultServer) -> None:
    """requests(method, pattern) returns only matching entries; path-only and method-less forms work."""
    fault_server.route("*", "/data/{id}", Fault.ok())
    async with aiohttp.ClientSession() as s:
        for method, path in [("GET", "/data/1"), ("POST", "/data/2"), ("GET", "/fast"), ("GET", "/data/3")]:
            async with s.request(method, f"{fault_server.url}{path}") as resp:
                await resp.read()
    assert [r.path for r in fault_server.requests("GET", "/data/{id}")] == ["/data/1", "/data/3"]
    assert len(fault_server.requests(path="/data/{id}")) == 3
    assert len(fault_server.requests("/data/{id}")) == 3
    assert len(fault_server.requests("GET")) == 3


async def test_clear_log_and_reset(fault_server: FaultServer) -> None:
    """clear_log() empties the log; reset() also drops user routes but keeps /fast and /echo."""
    fault_server.route("GET", "/mine", Fault.ok(text="mine"))
    async with aiohttp.ClientSession() as s:
        assert await _get(s, f"{fault_server.url}/mine") == (200, b"mine")
        fault_server.clear_log()
        assert fault_server.log == []
        await _get(s, f"{fault_server.url}/mine")
        fault_server.reset()
        assert fault_server.log == []
        assert (await _get(s, f"{fault_server.url}/mine"))[0] == 404
        assert (await _get(s, f"{fault_server.url}/fast"))[0] == 200


async def test_keep_alive_serves_several_requests_on_one_connection(fault_server: FaultServer) -> None:
    """Sequential requests on one connection each get their answer; the log shows one connection id."""
    fault_server.route("GET", "/n/{i}", Fault.ok(text="a"), Fault.ok(text="bb"), Fault.ok(text="ccc"))
    reader, writer = await asyncio.open_connection("127.0.0.1", fault_server.port)
    try:
        bodies = []
        for i in range(3):
            writer.write(request("GET", f"/n/{i}"))
            bodies.append((await read_response(reader)).body)
    finally:
        writer.close()
    assert bodies == [b"a", b"bb", b"ccc"]
    assert len({r.connection_id for r in fault_server.log}) == 1


async def test_pipelined_requests_are_answered_in_order_even_behind_a_delay(
    fault_server: FaultServer,
) -> None:
    """Pipelined requests get responses in request order, even when the first one is delayed."""
    fault_server.route("GET", "/slow", Fault.delay(0.05, then=Fault.ok(text="slow")))
    fault_server.route("GET", "/quick", Fault.ok(text="quick"))
    reader, writer = await asyncio.open_connection("127.0.0.1", fault_server.port)
    try:
        writer.write(request("GET", "/slow") + request("GET", "/quick") + request("GET", "/fast"))
        bodies = [(await read_response(reader)).body for _ in range(3)]
    finally:
        writer.close()
    assert bodies == [b"slow", b"quick", b'{"ok":true}']


async def test_many_pipelined_fast_requests_all_come_back(fault_server: FaultServer) -> None:
    """200 pipelined GET /fast on one connection return 200 responses, in order."""
    reader, writer = await asyncio.open_connection("127.0.0.1", fault_server.port)
    try:
        writer.write(b"".join(request("GET", f"/fast?i={i}") for i in range(200)))
        responses = [await read_response(reader) for _ in range(200)]
    finally:
        writer.close()
    assert {r.status for r in responses} == {200}
    assert [r.param("i") for r in fault_server.log] == [str(i) for i in range(200)]


async def test_chunked_request_bodies_are_decoded_and_logged(fault_server: FaultServer) -> None:
    """A chunked request body (with extensions and trailers) reaches the log and echo decoded."""
    data = (
        b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"5;note=x\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    raw = await exchange(fault_server.port, data)
    assert raw.data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b'"body":"hello world"' in raw.data
    assert fault_server.log[0].body == b"hello world"


async def test_aiohttp_streamed_upload_arrives_whole(fault_server: FaultServer) -> None:
    """An upload aiohttp sends chunked (an async generator body) is logged whole."""

    async def gen():  # type: ignore[no-untyped-def]
        for part in (b"a" * 1000, b"b" * 70000, b"c"):
            yield part

    fault_server.route("POST", "/upload", Fault.ok(status=201))
    async with aiohttp.ClientSession() as s, s.post(f"{fault_server.url}/upload", data=gen()) as resp:
        assert resp.status == 201
    (rec,) = fault_server.log
    assert rec.headers.get("transfer-encoding") == "chunked"
    assert rec.body == b"a" * 1000 + b"b" * 70000 + b"c"


async def test_connection_close_is_honoured(fault_server: FaultServer) -> None:
    """A request with Connection: close is answered with Connection: close and a clean FIN."""
    raw = await exchange(fault_server.port, request("GET", "/fast", headers={"Connection": "close"}))
    assert raw.reset is False
    assert b"Connection: close\r\n" in raw.data
    assert raw.data.endswith(b'{"ok":true}')


async def test_a_half_closed_client_still_gets_its_delayed_answer(fault_server: FaultServer) -> None:
    """A client that shuts its sending side after a request still receives the (delayed) response."""
    fault_server.route("GET", "/slow", Fault.delay(0.02, then=Fault.ok(text="late")))
    reader, writer = await asyncio.open_connection("127.0.0.1", fault_server.port)
    try:
        writer.write(request("GET", "/slow"))
        writer.write_eof()
        response = await read_response(reader)
        async with asyncio.timeout(10):
            rest = await reader.read()
    finally:
        writer.close()
    assert response.body == b"late"
    assert rest == b""


async def test_head_gets_headers_without_a_body(fault_server: FaultServer) -> None:
    """HEAD on a GET route answers its headers (with the real Content-Length) and no body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", fault_server.port)
    try:
        writer.write(request("HEAD", "/fast") + request("GET", "/fast"))
        head = await read_response(reader, head_only=True)
        after = await read_response(reader)
    finally:
        writer.close()
    assert head.status == 200
    assert head.header("content-length") == "11"
    assert after.body == b'{"ok":true}'


async def test_bad_requests_get_400_and_the_connection_closes(fault_server: FaultServer) -> None:
    """Bytes that are not a request get a 400 JSON answer and the connection is closed."""
    raw = await exchange(fault_server.port, b"NOT A REQUEST\r\n\r\n")
    assert raw.data.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert raw.reset is False
    assert fault_server.log == []


async def test_expect_continue_gets_100_before_the_body(fault_server: FaultServer) -> None:
    """A client that sends Expect: 100-continue is told to continue, then answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", fault_server.port)
    try:
        writer.write(b"POST /echo HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        interim = await read_response(reader, head_only=True)
        writer.write(b"hi")
        final = await read_response(reader)
    finally:
        writer.close()
    assert interim.status == 100
    assert b'"body":"hi"' in final.body


async def test_server_works_as_an_async_context_manager_and_needs_start_for_url() -> None:
    """url/port need a started server; 'async with' starts and stops it."""
    server = FaultServer()
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.url
    async with server:
        assert server.url == f"http://127.0.0.1:{server.port}"
        raw = await exchange(server.port, request("GET", "/fast", headers={"Connection": "close"}))
        assert b"200 OK" in raw.data
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", server.port)
