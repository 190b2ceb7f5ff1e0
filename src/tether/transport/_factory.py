"""Picks the engine for ``EngineOptions.http_version``."""

from __future__ import annotations

import httpx2

from tether.transport._aiohttp import AiohttpTransport
from tether.transport._negotiate import NegotiatingTransport
from tether.transport._options import EngineOptions

__all__ = ["create_transport"]


def create_transport(options: EngineOptions) -> httpx2.AsyncBaseTransport:
    """The aiohttp engine for ``"1.1"`` (the default); for ``"2"``, HTTP/2 by ALPN per origin with
    the aiohttp engine where the server does not speak h2 (``NegotiatingTransport``)."""
    if options.http_version == "2":
        return NegotiatingTransport(options)
    return AiohttpTransport(options)
