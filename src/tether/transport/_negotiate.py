"""HTTP/2 where the server speaks it, the aiohttp HTTP/1.1 engine where it does not.

``EngineOptions(http_version="2")`` selects this transport. Per origin (scheme, host, port):

- ``https``: the first request goes through httpx2's HTTP/2 transport, which offers ``h2`` and
  ``http/1.1`` by ALPN. If the server chose ``h2``, the origin stays on HTTP/2 (one multiplexed
  connection carries every concurrent call; ``max_connections`` and ``keepalive`` apply to the
  pool). If it chose HTTP/1.1, later requests to that origin go to the aiohttp engine, tether's
  faster HTTP/1.1 path, with the same pool options.
- ``http``: no HTTP/2 without TLS (tether does not send prior-knowledge h2c), so the aiohttp
  engine from the start.

Each response says which engine served it in ``response.extensions["tether.engine"]``
(``"h2"`` or ``"aiohttp"``); ``negotiated()`` lists what each origin settled on.
"""

from __future__ import annotations

import dataclasses
from typing import Final, Literal

import httpx2

from tether.transport._aiohttp import AiohttpTransport
from tether.transport._http2 import Http2Transport
from tether.transport._options import EngineOptions

__all__ = ["ENGINE_KEY", "NegotiatingTransport"]

#: ``response.extensions`` key naming the engine that served the response.
ENGINE_KEY: Final = "tether.engine"

Protocol = Literal["h2", "http/1.1"]


class NegotiatingTransport(httpx2.AsyncBaseTransport):
    """HTTP/2 by ALPN per origin, falling back to the aiohttp engine where the server has no h2."""

    def __init__(self, options: EngineOptions | None = None) -> None:
        options = options if options is not None else EngineOptions(http_version="2")
        self._options = options
        self._h2 = Http2Transport(options)
        self._h1 = AiohttpTransport(dataclasses.replace(options, http_version="1.1"))
        self._protocols: dict[tuple[str, str, int], Protocol] = {}

    @property
    def options(self) -> EngineOptions:
        return self._options

    def negotiated(self) -> dict[str, Protocol]:
        """``{"https://host:port": "h2" | "http/1.1"}`` for each TLS origin seen so far."""
        return {f"{scheme}://{host}:{port}": proto for (scheme, host, port), proto in self._protocols.items()}

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        if url.scheme != "https":
            return _tagged(await self._h1.handle_async_request(request), "aiohttp")
        origin = (url.scheme, url.host, url.port or 443)
        known = self._protocols.get(origin)
        if known == "http/1.1":
            return _tagged(await self._h1.handle_async_request(request), "aiohttp")
        response = await self._h2.handle_async_request(request)
        if known is None:
            self._protocols[origin] = "h2" if response.http_version == "HTTP/2" else "http/1.1"
        return _tagged(response, "h2" if response.http_version == "HTTP/2" else "httpx2")

    async def aclose(self) -> None:
        try:
            await self._h2.aclose()
        finally:
            await self._h1.aclose()


def _tagged(response: httpx2.Response, engine: str) -> httpx2.Response:
    response.extensions[ENGINE_KEY] = engine
    return response
