"""The HTTP/2 engine (httpx2 + h2) against a real TLS HTTP/2 server, and TLS on the default engine."""

from __future__ import annotations

import socket
import ssl

import httpx2
import pytest
from engine_helpers import plain_client
from engine_tls_app import TlsServer

import tether
from tether import errors
from tether.transport import EngineOptions, Http2Transport
from tether.transport._tls import make_ssl_context


def _h2(tls_server: TlsServer, **kwargs: object) -> EngineOptions:
    return EngineOptions(http_version="2", verify=tls_server.ca_path, **kwargs)  # type: ignore[arg-type]


async def test_http_version_2_speaks_http2(tls_server: TlsServer) -> None:
    """Client(http_version="2") negotiates HTTP/2 by ALPN; the server saw HTTP/2 too."""
    async with plain_client(tls_server.url, http_version="2", engine=_h2(tls_server)) as client:
        response = await client.get("/hello")
    assert response.http_version == "HTTP/2"
    assert response.json() == {"http_version": "2", "method": "GET"}


async def test_http2_bodies_are_decoded_by_tether(tls_server: TlsServer) -> None:
    """A gzip body over HTTP/2 is decoded once, with the headers cleaned like the default engine."""
    async with plain_client(tls_server.url, engine=_h2(tls_server)) as client:
        response = await client.get("/gzip")
    assert response.json() == {"compressed": True}
    assert "content-encoding" not in response.headers
    assert response.extensions["tether.content_encoding"] == "gzip"


async def test_http2_enforces_max_response_size(tls_server: TlsServer) -> None:
    """Bodies over max_response_size fail as too_large on HTTP/2 as well."""
    async with plain_client(tls_server.url, engine=_h2(tls_server, max_response_size=1000)) as client:
        with pytest.raises(errors.ResponseError) as caught:
            await client.get("/big", params={"size": 5000})
    assert caught.value.reason == "too_large"


async def test_http2_streams_past_the_size_limit(tls_server: TlsServer) -> None:
    """Client.stream over HTTP/2 yields the whole body, unlimited."""
    async with (
        plain_client(tls_server.url, engine=_h2(tls_server, max_response_size=1000)) as client,
        client.stream("GET", "/big", params={"size": 200_000}) as response,
    ):
        total = sum([len(chunk) async for chunk in response.aiter_bytes()])
    assert total == 200_000
    assert response.http_version == "HTTP/2"


async def test_http2_read_timeout_is_typed(tls_server: TlsServer) -> None:
    """A slow HTTP/2 answer is TimeoutError(phase="read")."""
    timeouts = tether.Timeouts(read=0.2)
    async with plain_client(tls_server.url, engine=_h2(tls_server), timeout=timeouts) as client:
        with pytest.raises(errors.TimeoutError) as caught:
            await client.get("/sleep", params={"s": 5})
    assert caught.value.phase == "read"


async def test_http2_refused_connection_is_a_connection_error() -> None:
    """Nothing listening: ConnectionError from the HTTP/2 engine too."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with plain_client(f"https://127.0.0.1:{port}", http_version="2") as client:
        with pytest.raises(errors.ConnectionError):
            await client.get("/x")


@pytest.mark.parametrize("version", ["1.1", "2"])
async def test_an_untrusted_certificate_is_refused(tls_server: TlsServer, version: str) -> None:
    """Verification is on by default: the throwaway CA is not trusted, so TLS fails (ConnectionError)."""
    async with plain_client(tls_server.url, http_version=version) as client:
        with pytest.raises(errors.ConnectionError, match="TLS"):
            await client.get("/hello")


async def test_the_default_engine_talks_tls_with_a_ca_bundle(tls_server: TlsServer) -> None:
    """verify=<CA path> makes the aiohttp engine trust the server; it speaks HTTP/1.1."""
    async with plain_client(tls_server.url, engine=EngineOptions(verify=tls_server.ca_path)) as client:
        response = await client.get("/hello")
    assert response.http_version == "HTTP/1.1"
    assert response.json()["http_version"] == "1.1"


async def test_verification_can_be_turned_off(tls_server: TlsServer) -> None:
    """verify=False accepts the untrusted certificate (for tests against self-signed servers)."""
    async with plain_client(tls_server.url, engine=EngineOptions(verify=False)) as client:
        response = await client.get("/hello")
    assert response.status_code == 200


def test_min_tls_version_is_applied_to_the_context() -> None:
    """min_tls_version sets the SSLContext's minimum; verify=True keeps hostname checks on."""
    ctx = make_ssl_context(True, ssl.TLSVersion.TLSv1_3)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_3
    assert ctx.check_hostname
    assert ctx.verify_mode == ssl.CERT_REQUIRED


async def test_a_tls13_minimum_still_reaches_a_modern_server(tls_server: TlsServer) -> None:
    """min_tls_version=TLSv1_3 works end to end on both engines against hypercorn."""
    for version in ("1.1", "2"):
        options = EngineOptions(
            http_version=version,  # type: ignore[arg-type]
            verify=tls_server.ca_path,
            min_tls_version=ssl.TLSVersion.TLSv1_3,
        )
        async with plain_client(tls_server.url, engine=options) as client:
            assert (await client.get("/hello")).status_code == 200


async def test_the_http2_transport_can_be_used_directly(tls_server: TlsServer) -> None:
    """Http2Transport is an httpx2 transport: usable with a bare request."""
    async with Http2Transport(_h2(tls_server)) as engine:
        response = await engine.handle_async_request(httpx2.Request("GET", tls_server.url + "/hello"))
        await response.aread()
    assert response.http_version == "HTTP/2"
