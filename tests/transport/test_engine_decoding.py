"""Content decoding (gzip, deflate, br), the bomb guard, and max_response_size, end to end and unit."""

from __future__ import annotations

import gzip
import zlib

import brotli
import httpx2
import pytest
from engine_helpers import plain_client
from hypothesis import given, settings
from hypothesis import strategies as st

from tether import errors
from tether.mock import Fault, FaultServer, pattern_bytes
from tether.transport import AiohttpTransport, EngineOptions
from tether.transport._decoding import ContentDecoder, DecodingFailed, parse_content_encoding

ENCODERS = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
}


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def _decode_all(codings: tuple[str, ...], data: bytes, step: int, **limits: int | None) -> bytes:
    decoder = ContentDecoder(
        codings, max_size=limits.get("max_size"), max_ratio=limits.get("max_ratio") or 100
    )
    out: list[bytes] = []
    for start in range(0, len(data), step):
        out.extend(decoder.decode(data[start : start + step]))
    out.extend(decoder.flush())
    return b"".join(out)


# --- through the engine -------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
async def test_each_encoding_is_decoded_once(fault_server: FaultServer, encoding: str) -> None:
    """gzip/deflate/br bodies arrive decoded, without Content-Encoding/-Length; the coding is kept."""
    fault_server.route("GET", "/c", Fault.ok(json={"values": list(range(200))}, encoding=encoding))
    async with plain_client(fault_server.url) as client:
        response = await client.get("/c")
    assert response.json() == {"values": list(range(200))}
    assert "content-encoding" not in response.headers
    assert "content-length" not in response.headers
    assert response.extensions["tether.content_encoding"] == encoding


async def test_raw_deflate_is_decoded_too(fault_server: FaultServer, transport: AiohttpTransport) -> None:
    """deflate without the zlib wrapper (what some servers send) decodes the same."""
    body = b"raw deflate body " * 50
    fault_server.route(
        "GET", "/d", Fault.ok(body=_raw_deflate(body), headers={"Content-Encoding": "deflate"})
    )
    response = await transport.handle_async_request(httpx2.Request("GET", fault_server.url + "/d"))
    assert await response.aread() == body


async def test_stacked_encodings_are_undone_in_reverse(fault_server: FaultServer) -> None:
    """Content-Encoding: gzip, br (gzip applied first) decodes br then gzip."""
    body = b"layered " * 300
    fault_server.route(
        "GET",
        "/two",
        Fault.ok(body=brotli.compress(gzip.compress(body)), headers={"Content-Encoding": "gzip, br"}),
    )
    async with plain_client(fault_server.url) as client:
        response = await client.get("/two")
    assert response.content == body
    assert response.extensions["tether.content_encoding"] == "gzip, br"


async def test_an_unknown_encoding_passes_through_untouched(
    fault_server: FaultServer, transport: AiohttpTransport
) -> None:
    """A coding tether does not know leaves body and headers as the server sent them."""
    fault_server.route("GET", "/u", Fault.ok(body=b"opaque-bytes", headers={"Content-Encoding": "x-custom"}))
    response = await transport.handle_async_request(httpx2.Request("GET", fault_server.url + "/u"))
    assert await response.aread() == b"opaque-bytes"
    assert response.headers["content-encoding"] == "x-custom"
    assert "tether.content_encoding" not in response.extensions


async def test_a_corrupt_gzip_body_is_a_decoding_error(fault_server: FaultServer) -> None:
    """Bytes that claim gzip but are not: ResponseError(reason="decoding")."""
    fault_server.route(
        "GET", "/bad", Fault.ok(body=b"definitely not gzip", headers={"Content-Encoding": "gzip"})
    )
    async with plain_client(fault_server.url) as client:
        with pytest.raises(errors.ResponseError) as caught:
            await client.get("/bad")
    assert caught.value.reason == "decoding"


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
async def test_a_decompression_bomb_is_refused_while_reading(
    fault_server: FaultServer, encoding: str
) -> None:
    """Fault.bomb (a small body decoding to 200 MB): refused as decoding/too_large, never held whole."""
    fault_server.route("GET", "/bomb", Fault.bomb("200MB", encoding=encoding))
    async with plain_client(fault_server.url) as client:
        with pytest.raises(errors.ResponseError) as caught:
            await client.get("/bomb")
    assert caught.value.reason in ("decoding", "too_large")


async def test_a_streamed_bomb_is_refused_too(fault_server: FaultServer) -> None:
    """Streamed calls have no size limit, but the ratio guard still stops a bomb."""
    fault_server.route("GET", "/bomb", Fault.bomb("500MB"))
    async with plain_client(fault_server.url) as client, client.stream("GET", "/bomb") as response:
        with pytest.raises(errors.ResponseError) as caught:
            async for _ in response.aiter_bytes():
                pass
    assert caught.value.reason == "decoding"


async def test_a_streamed_encoded_body_is_decoded_as_it_arrives(fault_server: FaultServer) -> None:
    """Client.stream over a gzip body yields the decoded bytes (the mock's pattern compresses ~1000x,
    so this client allows that ratio)."""
    size = 2_000_000
    fault_server.route("GET", "/gz", Fault.large(size, encoding="gzip"))
    options = EngineOptions(max_decompression_ratio=10_000)
    async with (
        plain_client(fault_server.url, engine=options) as client,
        client.stream("GET", "/gz") as response,
    ):
        body = b"".join([chunk async for chunk in response.aiter_bytes()])
    assert body == pattern_bytes(0, size)
    assert response.extensions["tether.content_encoding"] == "gzip"


# --- max_response_size --------------------------------------------------------------------------


async def test_a_declared_length_above_the_limit_fails_before_reading(fault_server: FaultServer) -> None:
    """Content-Length over max_response_size: too_large at once, naming the declared length."""
    fault_server.route("GET", "/big", Fault.large(50_000))
    async with plain_client(fault_server.url, engine=EngineOptions(max_response_size=10_000)) as client:
        with pytest.raises(errors.ResponseError, match="declares Content-Length 50000") as caught:
            await client.get("/big")
    assert caught.value.reason == "too_large"


async def test_a_chunked_body_above_the_limit_fails_while_reading(fault_server: FaultServer) -> None:
    """No Content-Length: the limit is enforced on the bytes as they arrive."""
    fault_server.route("GET", "/big", Fault.large(50_000, chunk=1000, chunked=True))
    async with plain_client(fault_server.url, engine=EngineOptions(max_response_size=10_000)) as client:
        with pytest.raises(errors.ResponseError, match="exceeds max_response_size") as caught:
            await client.get("/big")
    assert caught.value.reason == "too_large"


async def test_the_limit_applies_to_the_decoded_size(fault_server: FaultServer) -> None:
    """A gzip body small on the wire but larger than the limit once decoded is too_large."""
    fault_server.route("GET", "/gz", Fault.large(200_000, encoding="gzip"))
    options = EngineOptions(max_response_size=100_000, max_decompression_ratio=10_000)
    async with plain_client(fault_server.url, engine=options) as client:
        with pytest.raises(errors.ResponseError) as caught:
            await client.get("/gz")
    assert caught.value.reason == "too_large"


async def test_a_body_at_the_limit_is_accepted(fault_server: FaultServer) -> None:
    """Exactly max_response_size bytes is allowed."""
    fault_server.route("GET", "/ok", Fault.large(10_000, chunked=True))
    async with plain_client(fault_server.url, engine=EngineOptions(max_response_size=10_000)) as client:
        response = await client.get("/ok")
    assert len(response.content) == 10_000


async def test_streamed_calls_have_no_size_limit(fault_server: FaultServer) -> None:
    """Client.stream reads past max_response_size."""
    fault_server.route("GET", "/big", Fault.large(50_000))
    async with (
        plain_client(fault_server.url, engine=EngineOptions(max_response_size=10_000)) as client,
        client.stream("GET", "/big") as response,
    ):
        total = sum([len(chunk) async for chunk in response.aiter_bytes()])
    assert total == 50_000


# --- the decoder itself -------------------------------------------------------------------------


def test_parse_content_encoding_orders_codings_for_undoing() -> None:
    """Codings are undone last-applied first; identity is skipped; unknown means pass through."""
    assert parse_content_encoding("gzip") == ("gzip",)
    assert parse_content_encoding("gzip, br") == ("br", "gzip")
    assert parse_content_encoding("identity") is None
    assert parse_content_encoding("GZIP , identity") == ("gzip",)
    assert parse_content_encoding("gzip, zstd") is None


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(max_size=20_000),
    encoding=st.sampled_from(sorted(ENCODERS)),
    step=st.integers(min_value=1, max_value=5000),
)
def test_decoding_round_trips_for_any_chunking(data: bytes, encoding: str, step: int) -> None:
    """Whatever the bytes and however the encoded body is split, decoding gives the original back."""
    encoded = ENCODERS[encoding](data)
    assert _decode_all((encoding,), encoded, step) == data


def test_a_multi_member_gzip_body_decodes_every_member() -> None:
    """Concatenated gzip members (allowed by RFC 1952) decode to the concatenation."""
    encoded = gzip.compress(b"first,") + gzip.compress(b"second")
    assert _decode_all(("gzip",), encoded, 7) == b"first,second"


def test_the_ratio_guard_stops_a_bomb_early() -> None:
    """A 50 MB-of-zeros gzip bomb fails before more than ratio × input (plus one piece) is produced."""
    bomb = gzip.compress(b"\0" * 50_000_000)
    decoder = ContentDecoder(("gzip",), max_size=None, max_ratio=100)
    produced = 0
    failure: DecodingFailed | None = None
    for start in range(0, len(bomb), 1024):
        try:
            produced += sum(len(piece) for piece in decoder.decode(bomb[start : start + 1024]))
        except DecodingFailed as exc:
            failure = exc
            break
    assert failure is not None
    assert failure.reason == "decoding"
    assert produced <= max(64 * 1024, 100 * decoder.compressed_bytes)


def test_the_size_limit_is_reported_as_too_large() -> None:
    """Output beyond max_size (within the ratio) is a too_large failure."""
    body = pattern_bytes(0, 300_000)
    encoded = gzip.compress(body)
    with pytest.raises(DecodingFailed) as caught:
        _decode_all(("gzip",), encoded, 4096, max_size=100_000, max_ratio=1000)
    assert caught.value.reason == "too_large"


def test_a_small_body_may_expand_within_the_allowance() -> None:
    """The first 64 KiB may expand any amount: tiny, very compressible bodies are fine."""
    body = b"a" * 60_000
    assert _decode_all(("br",), brotli.compress(body), 10, max_ratio=1) == body
