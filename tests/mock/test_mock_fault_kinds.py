"""Each Fault, hit by a real client, does on the wire exactly what it promises."""

from __future__ import annotations

import asyncio
import email.utils
import socket
import time
import zlib
from datetime import UTC, datetime

import aiohttp
import brotli
import pytest
from mock_wire import WAIT, exchange, read_response, request

from tether.mock import Chaos, Fault, FaultServer, pattern_bytes
from tether.mock._server import WRITE_HIGH_WATER


def _close(path: str) -> bytes:
    return request("GET", path, headers={"Connection": "close"})


def _split(data: bytes) -> tuple[bytes, bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


async def test_reset_aborts_with_rst_before_any_byte(fault_server: FaultServer) -> None:
    """Fault.reset() resets the connection (RST) without sending a single byte."""
    fault_server.route("GET", "/r", Fault.reset())
    raw = await exchange(fault_server.port, request("GET", "/r"))
    assert raw == type(raw)(b"", True)
    assert fault_server.log[0].fault == "reset"
    assert fault_server.log[0].status is None


async def test_reset_is_a_client_error_in_aiohttp(fault_server: FaultServer) -> None:
    """An HTTP client sees Fault.reset() as a connection failure, never as a response."""
    fault_server.route("GET", "/r", Fault.reset())
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.ClientError):
            async with s.get(f"{fault_server.url}/r") as resp:
                await resp.read()


async def test_reset_mid_body_sends_part_of_the_body_then_rst(fault_server: FaultServer) -> None:
    """reset_mid_body: headers promise `total` bytes, `sent` arrive, then the connection is reset."""
    fault_server.route("GET", "/m", Fault.reset_mid_body(total=5000, sent=300))
    raw = await exchange(fault_server.port, request("GET", "/m"))
    head, body = _split(raw.data)
    assert b"Content-Length: 5000" in head
    assert body == pattern_bytes(0, 300)
    assert raw.reset is True


async def test_truncated_sends_part_of_the_body_then_a_clean_close(fault_server: FaultServer) -> None:
    """truncated: headers promise `total` bytes, `sent` arrive, then FIN (no reset)."""
    fault_server.route("GET", "/t", Fault.truncated(total=1000, sent=10))
    raw = await exchange(fault_server.port, request("GET", "/t"))
    head, body = _split(raw.data)
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"Content-Length: 1000" in head
    assert body == pattern_bytes(0, 10)
    assert raw.reset is False


async def test_truncated_body_is_a_payload_error_in_aiohttp(fault_server: FaultServer) -> None:
    """A client reading a truncated body gets a payload error, not a short body."""
    fault_server.route("GET", "/t", Fault.truncated(total=1000, sent=10))
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.ClientPayloadError):
            async with s.get(f"{fault_server.url}/t") as resp:
                await resp.read()


@pytest.mark.parametrize("kind", ["garbage", "bad_chunked", "bad_header"])
async def test_malformed_responses_fail_to_parse_in_aiohttp(fault_server: FaultServer, kind: str) -> None:
    """Each malformed kind makes a real HTTP client fail to parse the response."""
    fault_server.route("GET", "/bad", Fault.malformed(kind))
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.ClientError):
            async with s.get(f"{fault_server.url}/bad") as resp:
                await resp.read()
    assert fault_server.log[0].fault == "malformed"


async def test_malformed_garbage_has_no_status_line(fault_server: FaultServer) -> None:
    """Fault.malformed('garbage') sends bytes that do not start with HTTP/, then closes."""
    fault_server.route("GET", "/bad", Fault.malformed("garbage"))
    raw = await exchange(fault_server.port, request("GET", "/bad"))
    assert raw.data
    assert not raw.data.startswith(b"HTTP/")
    assert raw.reset is False


async def test_delay_answers_then_after_waiting(fault_server: FaultServer) -> None:
    """Fault.delay(s, then) answers `then` once the delay has passed."""
    fault_server.route("GET", "/d", Fault.delay(0.02, then=Fault.status(202)))
    async with aiohttp.ClientSession() as s, s.get(f"{fault_server.url}/d") as resp:
        assert resp.status == 202
    assert fault_server.log[0].fault == "delay"
    assert fault_server.log[0].status == 202


async def test_a_delay_longer_than_the_client_timeout_times_the_client_out(fault_server: FaultServer) -> None:
    """A client whose timeout is shorter than the delay gives up before any response."""
    fault_server.route("GET", "/d", Fault.delay(30.0))
    timeout = aiohttp.ClientTimeout(total=0.1)
    async with aiohttp.ClientSession(timeout=timeout) as s:
        with pytest.raises(asyncio.TimeoutError):
            async with s.get(f"{fault_server.url}/d") as resp:
                await resp.read()


async def _until(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(WAIT):
        while not condition():
            await asyncio.sleep(0.005)


async def _small_window_connection(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection whose receive buffer is fixed and small, so an unread stream fills it fast."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 128 * 1024)  # set before connect: no autotuning
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return await asyncio.open_connection(sock=sock, limit=1 << 20)


async def test_hang_never_answers_and_ends_when_the_client_leaves(fault_server: FaultServer) -> None:
    """Fault.hang() reads the request and sends nothing; the server lets go once the client closes."""
    fault_server.route("GET", "/h", Fault.hang())
    reader, writer = await asyncio.open_connection("127.0.0.1", fault_server.port)
    writer.write(request("GET", "/h"))
    await _until(lambda: fault_server.log, "request logged")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):
            await reader.read(1)
    assert fault_server.log[0].fault == "hang"
    writer.close()
    await _until(lambda: not fault_server._connections, "connection released")


async def test_stop_ends_hanging_and_streaming_connections(fault_server: FaultServer) -> None:
    """stop() returns while a hang and an unread stream are in progress; both connections end, the
    stream short of its Content-Length."""
    fault_server.route("GET", "/h", Fault.hang())
    fault_server.route("GET", "/big", Fault.large(64 * 1024 * 1024))
    r1, w1 = await asyncio.open_connection("127.0.0.1", fault_server.port)
    r2, w2 = await _small_window_connection(fault_server.port)
    w1.write(request("GET", "/h"))
    w2.write(request("GET", "/big"))
    await _until(lambda: fault_server.stats.write_pauses > 0 and len(fault_server.log) == 2, "both busy")
    await fault_server.stop()
    async with asyncio.timeout(WAIT):
        assert await r1.read() == b""
        received = 0
        while chunk := await r2.read(1 << 20):
            received += len(chunk)
    assert received < 64 * 1024 * 1024
    w1.close()
    w2.close()


async def test_large_body_with_content_length_arrives_whole(fault_server: FaultServer) -> None:
    """Fault.large(size) streams exactly `size` pattern bytes with a Content-Length."""
    size = 3 * 1024 * 1024 + 17
    fault_server.route("GET", "/big", Fault.large(size))
    async with aiohttp.ClientSession() as s, s.get(f"{fault_server.url}/big") as resp:
        assert resp.headers["Content-Length"] == str(size)
        body = await resp.read()
    assert body == pattern_bytes(0, size)


async def test_large_body_can_be_chunked_with_odd_chunk_sizes(fault_server: FaultServer) -> None:
    """Fault.large(chunked=True) streams with Transfer-Encoding: chunked; content is the same."""
    fault_server.route("GET", "/big", Fault.large(100_001, chunk=1000, chunked=True))
    async with aiohttp.ClientSession() as s, s.get(f"{fault_server.url}/big") as resp:
        assert resp.headers["Transfer-Encoding"] == "chunked"
        assert await resp.read() == pattern_bytes(0, 100_001)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
async def test_large_encoded_body_decodes_to_the_pattern(fault_server: FaultServer, encoding: str) -> None:
    """Fault.large(encoding=...) sends a compressed stream a client decodes to the pattern."""
    fault_server.route("GET", "/big", Fault.large(500_000, encoding=encoding))
    async with aiohttp.ClientSession() as s, s.get(f"{fault_server.url}/big") as resp:
        assert resp.headers["Content-Encoding"] == encoding
        assert await resp.read() == pattern_bytes(0, 500_000)


async def test_large_stream_respects_flow_control_with_a_slow_reader(fault_server: FaultServer) -> None:
    """A 32 MB stream to a reader that stops reading never buffers more than the high-water mark
    plus one chunk in the server, and still arrives whole once the reader drains it."""
    size, chunk = 32 * 1024 * 1024, 65536
    fault_server.route("GET", "/big", Fault.large(size, chunk=chunk))
    reader, writer = await _small_window_connection(fault_server.port)
    try:
        writer.write(request("GET", "/big"))
        # The reader stops here: the kernel buffers fill and the server must pause.
        await _until(lambda: fault_server.stats.write_pauses > 0, "server paused")
        assert fault_server.stats.streamed_bytes < size // 2  # it did not run ahead of the reader
        response = await read_response(reader)
    finally:
        writer.close()
    assert len(response.body) == size
    assert response.body[-1000:] == pattern_bytes(size - 1000, 1000)
    assert 0 < fault_server.stats.max_write_buffer <= WRITE_HIGH_WATER + chunk


async def _raw_body(server: FaultServer, path: str) -> tuple[dict[str, str], bytes]:
    async with (
        aiohttp.ClientSession(auto_decompress=False) as s,
        s.get(f"{server.url}{path}") as resp,
    ):
        return dict(resp.headers), await resp.read()


def _decode(data: bytes, encoding: str) -> int:
    """Decoded size, decoded in bounded steps (the way a careful client would)."""
    if encoding == "br":
        d = brotli.Decompressor()
        return sum(len(d.process(data[i : i + 1024])) for i in range(0, len(data), 1024))
    z = zlib.decompressobj(31 if encoding == "gzip" else 15)
    total, pending = 0, data
    while pending:
        out = z.decompress(pending, 1 << 20)
        total += len(out)
        pending = z.unconsumed_tail
    assert z.eof
    return total


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
async def test_bomb_is_small_on_the_wire_and_huge_decoded(fault_server: FaultServer, encoding: str) -> None:
    """Fault.bomb(n) sends a body hundreds of times smaller than the n zero bytes it decodes to."""
    decoded = 20 * 1024 * 1024 + 3
    fault_server.route("GET", "/bomb", Fault.bomb(decoded, encoding=encoding))
    headers, body = await _raw_body(fault_server, "/bomb")
    assert headers["Content-Encoding"] == encoding
    assert len(body) * 100 < decoded
    assert _decode(body, encoding) == decoded


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
async def test_ok_with_encoding_is_decoded_by_the_client(fault_server: FaultServer, encoding: str) -> None:
    """Fault.ok(json, encoding=...) sends a compressed body with Content-Encoding."""
    doc = {"items": list(range(200))}
    fault_server.route("GET", "/z", Fault.ok(json=doc, encoding=encoding))
    headers, raw = await _raw_body(fault_server, "/z")
    assert headers["Content-Encoding"] == encoding
    assert int(headers["Content-Length"]) == len(raw) < len(str(doc))
    async with aiohttp.ClientSession() as s, s.get(f"{fault_server.url}/z") as resp:
        assert await resp.json() == doc


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
async def test_redirects_carry_the_status_and_location(fault_server: FaultServer, code: int) -> None:
    """Fault.redirect(location, status) answers that status with Location; clients can follow it."""
    fault_server.route("GET", "/old", Fault.redirect("/fast", status=code))
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{fault_server.url}/old", allow_redirects=False) as resp:
            assert resp.status == code
            assert resp.headers["Location"] == "/fast"
        async with s.get(f"{fault_server.url}/old") as resp:
            assert await resp.json() == {"ok": True}


async def test_rate_limited_sends_retry_after_seconds_and_ratelimit_headers(
    fault_server: FaultServer,
) -> None:
    """Fault.rate_limited answers 429 with Retry-After delta-seconds and X-RateLimit-*."""
    fault_server.route("GET", "/rl", Fault.rate_limited(retry_after=7, limit=100, remaining=0, reset=42))
    async with aiohttp.ClientSession() as s, s.get(f"{fault_server.url}/rl") as resp:
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "7"
        assert resp.headers["X-RateLimit-Limit"] == "100"
        assert resp.headers["X-RateLimit-Remaining"] == "0"
        assert resp.headers["X-RateLimit-Reset"] == "42"
        assert (await resp.json())["retry_after"] == 7


async def test_rate_limited_http_date_is_computed_when_sent(fault_server: FaultServer) -> None:
    """rate_limited(http_date=True) sends an HTTP-date about retry_after seconds after sending."""
    fault_server.route("GET", "/rl", Fault.rate_limited(retry_after=120, http_date=True))
    async with aiohttp.ClientSession() as s, s.get(f"{fault_server.url}/rl") as resp:
        value = resp.headers["Retry-After"]
    when = email.utils.parsedate_to_datetime(value)
    assert value.endswith(" GMT")
    assert 100 <= (when - datetime.now(UTC)).total_seconds() <= 121
    assert "X-RateLimit-Limit" not in resp.headers


async def test_status_with_a_datetime_retry_after_sends_that_http_date(fault_server: FaultServer) -> None:
    """Fault.status(503, retry_after=datetime) sends exactly that moment as an HTTP-date."""
    moment = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    fault_server.route("GET", "/s", Fault.status(503, json={"down": True}, retry_after=moment))
    async with aiohttp.ClientSession() as s, s.get(f"{fault_server.url}/s") as resp:
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "Tue, 06 May 2031 07:08:09 GMT"
        assert await resp.json() == {"down": True}


async def test_problem_json_bodies(fault_server: FaultServer) -> None:
    """Fault.problem answers application/problem+json with type, title, status and detail."""
    fault_server.route("GET", "/p", Fault.problem(422, "Invalid identifier", detail="must match ^[A-Z]+$"))
    async with aiohttp.ClientSession() as s, s.get(f"{fault_server.url}/p") as resp:
        assert resp.status == 422
        assert resp.headers["Content-Type"] == "application/problem+json"
        assert await resp.json(content_type=None) == {
            "type": "about:blank",
            "title": "Invalid identifier",
            "status": 422,
            "detail": "must match ^[A-Z]+$",
        }


async def test_latency_on_a_response_still_answers_it(fault_server: FaultServer) -> None:
    """A response with latency is sent once the latency has passed, with its own status and body."""
    fault_server.route("GET", "/l", Fault.ok(text="late", status=203, latency=0.01))
    async with aiohttp.ClientSession() as s, s.get(f"{fault_server.url}/l") as resp:
        assert resp.status == 203
        assert await resp.text() == "late"


async def test_server_rate_limit_answers_429_over_the_burst(fault_server: FaultServer) -> None:
    """rate_limit='10/hour', burst=3: three requests pass, the next get 429 with Retry-After and
    X-RateLimit-*; the scripted reply is not consumed by limited requests."""
    fault_server.route("GET", "/limited", Fault.ok(json={"n": 1}), rate_limit="10/hour", burst=3)
    results = []
    async with aiohttp.ClientSession() as s:
        for _ in range(5):
            async with s.get(f"{fault_server.url}/limited") as resp:
                results.append((resp.status, dict(resp.headers)))
    assert [status for status, _ in results] == [200, 200, 200, 429, 429]
    assert [h["X-RateLimit-Remaining"] for _, h in results] == ["2", "1", "0", "0", "0"]
    assert all(h["X-RateLimit-Limit"] == "10" for _, h in results)
    limited = results[3][1]
    assert int(limited["Retry-After"]) >= 300  # one token per 6 minutes
    assert int(limited["X-RateLimit-Reset"]) >= int(limited["Retry-After"])
    assert [r.fault for r in fault_server.requests("GET", "/limited")].count("rate_limited") == 2


async def test_server_rate_limit_without_burst_allows_the_whole_window(fault_server: FaultServer) -> None:
    """rate_limit='4/day' without burst lets 4 requests through at once, then limits."""
    fault_server.route("GET", "/limited", Fault.ok(), rate_limit="4/day")
    async with aiohttp.ClientSession() as s:
        statuses: list[int] = []
        for _ in range(6):
            async with s.get(f"{fault_server.url}/limited") as resp:
                statuses.append(resp.status)
    assert statuses == [200, 200, 200, 200, 429, 429]


async def _chaos_run(rate: float, seed: int, n: int) -> list[str]:
    async with FaultServer() as server:
        chaos = Chaos(rate=rate, faults=[Fault.status(503), Fault.reset(), Fault.status(502)], seed=seed)
        server.route("GET", "/c/{id}", Fault.ok(json={"ok": True}), chaos=chaos)
        async with aiohttp.ClientSession() as s:
            for i in range(n):
                try:
                    async with s.get(f"{server.url}/c/{i}") as resp:
                        await resp.read()
                except aiohttp.ClientError:
                    pass
        return [f"{r.fault}:{r.status}" for r in server.log]


async def test_chaos_is_reproducible_with_a_seed() -> None:
    """The same seed gives the same sequence of faults; some requests still get the scripted reply."""
    first = await _chaos_run(0.5, seed=7, n=30)
    second = await _chaos_run(0.5, seed=7, n=30)
    assert first == second
    assert "ok:200" in first
    assert set(first) - {"ok:200"} <= {"status:503", "status:502", "reset:None"}
    assert set(first) != {"ok:200"}


async def test_chaos_rate_bounds() -> None:
    """Chaos rate 0 never injects a fault; rate 1 always does."""
    assert set(await _chaos_run(0.0, seed=1, n=10)) == {"ok:200"}
    assert "ok:200" not in await _chaos_run(1.0, seed=1, n=10)


async def test_log_times_follow_arrival_order(fault_server: FaultServer) -> None:
    """Log entries are in arrival order with non-decreasing wall and monotonic times."""
    start = time.time()
    async with aiohttp.ClientSession() as s:
        for _ in range(5):
            async with s.get(f"{fault_server.url}/fast") as resp:
                await resp.read()
    stamps = [r.monotonic for r in fault_server.log]
    walls = [r.time for r in fault_server.log]
    assert stamps == sorted(stamps)
    assert start <= walls[0] <= walls[-1] <= time.time()
