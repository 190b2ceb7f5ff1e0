"""HTTP engines: the aiohttp-backed default (HTTP/1.1) and httpx2's own HTTP/2 transport."""

from __future__ import annotations

from tether.transport._options import EngineOptions

__all__ = ["EngineOptions"]
