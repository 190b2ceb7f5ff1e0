"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tether.mock import FaultServer


@pytest.fixture
async def fault_server() -> AsyncIterator[FaultServer]:
    """A started ``tether.mock.FaultServer`` on 127.0.0.1 (a free port), stopped afterwards."""
    server = FaultServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
