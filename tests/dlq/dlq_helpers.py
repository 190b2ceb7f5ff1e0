"""Helpers for DLQ tests: a fixed epoch and a dead-letter factory."""

from __future__ import annotations

from typing import Any

from tether.dlq import DeadLetter, StoredRequest, new_entry_id

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
