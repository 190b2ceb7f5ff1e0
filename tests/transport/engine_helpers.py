"""Helpers for the engine tests."""

from __future__ import annotations

from typing import Any

import httpx2

import tether


def plain_client(base_url: str | httpx2.URL | None = None, **kwargs: Any) -> tether.Client:
    """A ``tether.Client`` with no retry and no breaker: only the engine is under test."""
    return tether.Client(base_url, retry=None, breaker=None, **kwargs)
