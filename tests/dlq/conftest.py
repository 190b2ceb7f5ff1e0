"""Fixtures for DLQ tests: both backends, and a factory for entries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from dlq_helpers import make_entry as _make_entry

from tether.dlq import DeadLetter, DLQBackend, MemoryDLQ, SQLiteDLQ


@pytest.fixture(params=["memory", "sqlite"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[DLQBackend]:
    """A fresh DLQ backend: in memory, or a real SQLite file under tmp_path."""
    dlq: DLQBackend = MemoryDLQ() if request.param == "memory" else SQLiteDLQ(tmp_path / "dlq.db")
    try:
        yield dlq
    finally:
        await dlq.aclose()


@pytest.fixture
def make_entry() -> Callable[..., DeadLetter]:
    """``make_entry(**overrides)``: a pending POST dead letter created at EPOCH, due a second later."""
    return _make_entry
