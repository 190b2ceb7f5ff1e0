"""HTTP/2 by ALPN with the aiohttp HTTP/1.1 engine as the fallback (``http_version="2"``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from engine_helpers import plain_client
from engine_tls_app import TlsServer

from tether.mock import Fault, FaultServer
from tether.transport import EngineOptions, NegotiatingTransport, create_transport


@pytest.fixture
async def h1_only_tls_server(tmp_path: Path) -> AsyncIterator[TlsServer]:
    """hypercorn over TLS offering only http/1.1 by ALPN (no h2)."""
    async with TlsServer(tmp_path, alpn=("http/1.1",)) as server:
        yield server


def _options(ca: str) -> EngineOptions:
    return EngineOptions(http_version="2", verify=ca, max_connections=100, keepalive=60)


def test_http_version_2_makes_the_negotiating_engine() -> None:
    """create_transport(http_version="2") is the negotiating engine, with the pool options given."""
    engine = create_transport(EngineOptions(http_version="2"))
    assert isinstance(engine, NegotiatingTransport)
    assert (engine.options.max_connections, engine.options.keepalive) == (100, 60.0)


async def test_an_h2_server_is_spoken_to_in_http2(tls_server: TlsServer) -> None:
    """Against a server offering h2, every call is HTTP/2 (the server saw 2) on the h2 engine."""
    async with plain_client(tls_server.url, engine=_options(tls_server.ca_path)) as client:
        answers = [await client.get("/hello") for _ in range(3)]
        engine = client._ensure_open()
    assert [r.http_version for r in answers] == ["HTTP/2"] * 3
    assert [r.json()["http_version"] for r in answers] == ["2"] * 3
    assert {r.extensions["tether.engine"] for r in answers} == {"h2"}
    assert isinstance(engine, NegotiatingTransport)
    assert engine.negotiated() == {f"https://127.0.0.1:{tls_server.port}": "h2"}


async def test_a_server_without_h2_falls_back_to_the_http11_engine(h1_only_tls_server: TlsServer) -> None:
    """A TLS server that picks http/1.1: the first call learns it, the next ones use aiohttp."""
    server = h1_only_tls_server
    async with plain_client(server.url, engine=_options(server.ca_path)) as client:
        answers = [await client.get("/hello") for _ in range(3)]
        engine = client._ensure_open()
    assert [r.json()["http_version"] for r in answers] == ["1.1"] * 3
    assert [r.extensions["tether.engine"] for r in answers] == ["httpx2", "aiohttp", "aiohttp"]
    assert isinstance(engine, NegotiatingTransport)
    assert engine.negotiated() == {f"https://127.0.0.1:{server.port}": "http/1.1"}


async def test_plain_http_goes_straight_to_the_http11_engine(fault_server: FaultServer) -> None:
    """No TLS, no h2 (no prior-knowledge h2c): a plain http:// server is served by aiohttp."""
    fault_server.route("GET", "/x", Fault.ok(json={"ok": True}))
    async with plain_client(fault_server.url, http_version="2") as client:
        response = await client.get("/x")
    assert response.http_version == "HTTP/1.1"
    assert response.extensions["tether.engine"] == "aiohttp"
