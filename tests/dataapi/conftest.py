"""Fixtures for the REQ-001 facade: the bundled mock provider and a connected client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from dataapi_helpers import API_KEY

from tether._redact import registry
from tether.dataapi import APICredentials, DataAPIClient, DataAPIMock, RateLimitTier, serve_mock
from tether.testing import VirtualClock


@pytest.fixture(autouse=True)
def isolated_redaction(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts with the same registered secrets and no TETHER_ENV."""
    monkeypatch.delenv("TETHER_ENV", raising=False)
    with registry.isolated():
        yield


@pytest.fixture
async def mock_server() -> AsyncIterator[DataAPIMock]:
    """The bundled mock provider, started on loopback and stopped afterwards."""
    async with await serve_mock() as server:
        yield server


@pytest.fixture
def clock() -> VirtualClock:
    """Virtual time for the client's waits (backoff, rate-limit slots, breaker cool-down)."""
    return VirtualClock()


@pytest.fixture
async def client(mock_server: DataAPIMock, clock: VirtualClock) -> AsyncIterator[DataAPIClient]:
    """A premium-tier client connected to the mock provider, in virtual time.

    ``timeout=None``: a virtual clock moves on while a real socket read is pending, so the
    deadline watchdogs are left out (timeouts are tested elsewhere, in tests/pipeline).
    """
    api = DataAPIClient(base_url=mock_server.base_url, environ={}, clock=clock, timeout=None)
    await api.connect(APICredentials(api_key=API_KEY, tier=RateLimitTier.PREMIUM))
    try:
        yield api
    finally:
        await api.disconnect()
