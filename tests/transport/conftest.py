"""Fixtures for the engine tests: transports, a second fault server, a TLS/HTTP/2 server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from engine_tls_app import TlsServer

from tether.mock import FaultServer
from tether.transport import AiohttpTransport, EngineOptions


@pytest.fixture
async def transport() -> AsyncIterator[AiohttpTransport]:
    """The default engine with default options, closed afterwards."""
    engine = AiohttpTransport(EngineOptions())
    try:
        yield engine
    finally:
        await engine.aclose()


@pytest.fixture
async def other_server() -> AsyncIterator[FaultServer]:
    """A second fault server: another origin (same host, another port)."""
    async with FaultServer() as server:
        yield server


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[TlsServer]:
    """hypercorn over TLS with HTTP/2 on 127.0.0.1, certificate from a throwaway trustme CA."""
    async with TlsServer(tmp_path) as server:
        yield server
