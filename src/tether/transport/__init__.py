"""HTTP engines: the aiohttp-backed default (HTTP/1.1) and httpx2's own HTTP/2 transport."""

from __future__ import annotations

from tether.transport._aiohttp import AiohttpTransport
from tether.transport._factory import create_transport
from tether.transport._http2 import Http2Transport
from tether.transport._negotiate import NegotiatingTransport
from tether.transport._options import EngineOptions
from tether.transport._redirects import RedirectHistory, send_following_redirects

__all__ = [
    "AiohttpTransport",
    "EngineOptions",
    "Http2Transport",
    "NegotiatingTransport",
    "RedirectHistory",
    "create_transport",
    "send_following_redirects",
]
