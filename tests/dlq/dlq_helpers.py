"""Helpers for DLQ tests: a fixed epoch and a dead-letter factory."""

from __future__ import annotations

import asyncio
from typing import Any

from tether.dlq import DeadLetter, DLQBackend, StoredRequest, new_entry_id

EPOCH = 1_800_000_000.0


def make_entry(**overrides: Any) -> DeadLetter:
    """A pending POST dead letter created at EPOCH, due a second later; ``overrides`` replace fields."""
    fields: dict[str, Any] = {
        "id": new_entry_id(),
        "service": "svc",
        "endpoint": "create_order",
        "request": StoredRequest(
            "POST",
            "https://api.test/v1/orders?page=1",
            (("content-type", "application/json"), ("idempotency-key", "k-1")),
            b'{"sku":"A-1"}',
        ),
        "idempotency_key": "k-1",
        "credential_ref": None,
        "attempts": 3,
        "error_code": "API_001",
        "error_message": "HTTP 503",
        "created_at": EPOCH,
        "due_at": EPOCH + 1.0,
    }
    fields.update(overrides)
    return DeadLetter(**fields)


async def assert_concurrent_claims_split(first: DLQBackend, second: DLQBackend, count: int = 60) -> None:
    """Two backends on one queue, draining it at once, get every entry exactly once between them."""
    ids = set()
    for _ in range(count):
        entry = make_entry()
        ids.add(entry.id)
        await first.add(entry)

    async def drain(dlq: DLQBackend, owner: str) -> list[str]:
        got: list[str] = []
        while batch := await dlq.claim(owner, now=EPOCH + 5, lease=60, limit=3):
            got += [e.id for e in batch]
        return got

    a, b = await asyncio.gather(drain(first, "a"), drain(second, "b"))
    assert sorted(a + b) == sorted(ids)
    assert not set(a) & set(b)
