"""Picks the engine for ``EngineOptions.http_version``."""

from __future__ import annotations

import httpx2

from tether.transport._aiohttp import AiohttpTransport
from tether.transport._http2 import Http2Transport
from tether.transport._options import EngineOptions

__all__ = ["create_transport"]


def create_transport(options: EngineOptions) -> httpx2.AsyncBaseTransport:
    """The aiohttp engine for ``"1.1"`` (the default), httpx2's HTTP/2 transport for ``"2"``."""
    if options.http_version == "2":
        return Http2Transport(options)
    return AiohttpTransport(options)
