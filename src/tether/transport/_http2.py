"""The HTTP/2 engine: httpx2's own ``AsyncHTTPTransport(http2=True)``, wrapped to behave like tether's.

Selected by ``EngineOptions(http_version="2")``. httpx2 negotiates HTTP/2 by ALPN over TLS and
falls back to HTTP/1.1 where the server does not offer it. The wrapper adds what the aiohttp
engine does: tether's decoding and size limits (httpx2's transport hands back the encoded body),
errors translated to ``tether.errors``, and, with ``block_private``, the destination guard as an
httpcore2 network backend (resolve, vet, connect to the vetted address).

Differences from the aiohttp engine: there is no per-host connection bound
(``max_connections_per_host`` is ignored) and ``trust_env`` has no effect here (no proxies).
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

import httpcore2
import httpx2

from tether.errors import TetherError, backend_cause
from tether.transport._body import BodyCollector, DecodedStream, has_no_body, is_streamed, plan_body
from tether.transport._errors import body_too_large, map_httpx2_error
from tether.transport._guard import DestinationGuard, GuardedNetworkBackend
from tether.transport._options import EngineOptions
from tether.transport._tls import make_ssl_context

__all__ = ["Http2Transport"]

_ERRORS: Final = (httpx2.TransportError, httpcore2.ConnectError, OSError, asyncio.TimeoutError)


class Http2Transport(httpx2.AsyncBaseTransport):
    """HTTP/2 (with HTTP/1.1 fallback) through httpx2's transport; errors are ``tether.errors``."""

    def __init__(self, options: EngineOptions | None = None) -> None:
        self._options = options = options if options is not None else EngineOptions(http_version="2")
        ssl_context = make_ssl_context(options.verify, options.min_tls_version)
        limits = httpx2.Limits(
            max_connections=options.max_connections,
            max_keepalive_connections=options.max_connections,
            keepalive_expiry=options.keepalive,
        )
        self._inner = httpx2.AsyncHTTPTransport(
            verify=ssl_context, http1=True, http2=True, limits=limits, trust_env=options.trust_env
        )
        if options.block_private:
            # httpx2's transport takes no network backend, so give it a pool that has one: the
            # same settings as above, connecting only to addresses the guard has vetted.
            self._inner._pool = httpcore2.AsyncConnectionPool(
                ssl_context=ssl_context,
                max_connections=limits.max_connections,
                max_keepalive_connections=limits.max_keepalive_connections,
                keepalive_expiry=limits.keepalive_expiry,
                http1=True,
                http2=True,
                network_backend=GuardedNetworkBackend(DestinationGuard(options.guard_allow)),
            )
        self._max_size = options.max_response_size
        self._max_ratio = options.max_decompression_ratio

    @property
    def options(self) -> EngineOptions:
        return self._options

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            raw = await self._inner.handle_async_request(request)
        except TetherError:
            raise
        except _ERRORS as exc:
            raise map_httpx2_error(exc, request, stage="send") from backend_cause(exc)
        try:
            status = raw.status_code
            no_body = has_no_body(request.method, status)
            plan = plan_body(raw.headers.raw, no_body=no_body)
            extensions: dict[str, Any] = plan.extensions(dict(raw.extensions))
            if is_streamed(request) and not no_body:
                stream: httpx2.AsyncByteStream = DecodedStream(
                    _raw_stream(raw),
                    request,
                    plan.decoder(None, self._max_ratio),
                    lambda exc: map_httpx2_error(exc, request, stage="body"),
                    raw.aclose,
                )
            else:
                body = b""
                if not no_body:
                    limit = self._max_size
                    if limit is not None and plan.content_length is not None and plan.content_length > limit:
                        raise body_too_large(request, limit, declared=plan.content_length)
                    collector = BodyCollector(request, limit, plan.decoder(limit, self._max_ratio))
                    try:
                        async for chunk in _raw_stream(raw):
                            collector.add(chunk)
                    except TetherError:
                        raise
                    except _ERRORS as exc:
                        raise map_httpx2_error(exc, request, stage="body") from backend_cause(exc)
                    body = collector.result()
                await raw.aclose()
                stream = httpx2.ByteStream(body)
        except BaseException:
            await raw.aclose()
            raise
        return httpx2.Response(status, headers=plan.headers, stream=stream, extensions=extensions)


def _raw_stream(raw: httpx2.Response) -> httpx2.AsyncByteStream:
    stream = raw.stream
    if not isinstance(stream, httpx2.AsyncByteStream):  # httpx2's async transport never does this
        raise TypeError("expected an async response stream from httpx2")
    return stream
