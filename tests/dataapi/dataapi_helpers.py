"""Constants shared by the REQ-001 facade tests."""

from __future__ import annotations

#: The API key the tests connect with (a canary: it must never show in errors or reprs).
API_KEY = "sk_test_dataapi_4f9b2c7d"
