"""Fixtures for the bulk job tests: the bundled REQ-001 mock provider on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tether.dataapi._mock import DataAPIMock


@pytest.fixture
async def dataapi() -> AsyncIterator[DataAPIMock]:
    """A started REQ-001 mock provider (a free loopback port), stopped afterwards."""
    server = DataAPIMock()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
