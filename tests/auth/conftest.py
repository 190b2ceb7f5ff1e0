"""Fixtures for the auth tests: an isolated redaction registry and a loopback OAuth 2.0 provider."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from auth_helpers import Provider, running_provider

from tether._redact import registry


@pytest.fixture(autouse=True)
def isolated_redaction() -> Iterator[None]:
    """Every test starts and ends with the same set of registered secrets."""
    with registry.isolated():
        yield


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    """A started loopback OAuth 2.0 provider (token endpoint + protected API)."""
    async with running_provider() as state:
        yield state
