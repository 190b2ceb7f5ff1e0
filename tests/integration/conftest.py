"""Fixtures for the spec-driven runtime tests: an isolated redaction registry, loopback servers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tether._redact import registry
from tether.mock import FaultServer


@pytest.fixture(autouse=True)
def isolated_redaction(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts with the same registered secrets and no TETHER_ENV."""
    monkeypatch.delenv("TETHER_ENV", raising=False)
    with registry.isolated():
        yield


@pytest.fixture
async def other_server() -> AsyncIterator[FaultServer]:
    """A second loopback server (another origin than ``fault_server``)."""
    async with FaultServer() as server:
        yield server
