"""What both engines do with a response head and body: decoding, size limits, httpx2 headers.

``plan_body`` reads the response head once and decides whether the body is decoded (and so which
headers httpx2 gets). ``BodyCollector`` reads a whole non-streamed body within
``max_response_size``. ``DecodedStream`` is the streamed body of the HTTP/2 engine (the aiohttp
engine has its own, tighter loop).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Final

import httpx2

from tether._context import CONTEXT_KEY
from tether.errors import TetherError, backend_cause
from tether.transport._decoding import ContentDecoder, DecodingFailed, parse_content_encoding
from tether.transport._errors import body_too_large, decoding_error

__all__ = [
    "CONTENT_ENCODING_KEY",
    "BodyCollector",
    "BodyPlan",
    "DecodedStream",
    "has_no_body",
    "is_streamed",
    "plan_body",
]

#: ``response.extensions`` key holding the ``Content-Encoding`` tether decoded.
CONTENT_ENCODING_KEY: Final = "tether.content_encoding"

_CE: Final = b"content-encoding"
_CL: Final = b"content-length"


def is_streamed(request: httpx2.Request) -> bool:
    """True when the caller streams the body (``Client.stream``); a bare request is not streamed."""
    ctx = request.extensions.get(CONTEXT_KEY)
    return bool(getattr(ctx, "stream", False))


def has_no_body(method: str, status: int) -> bool:
    return method == "HEAD" or status < 200 or status in (204, 304)


class BodyPlan:
    """How to hand one response to httpx2: its headers, and the codings to undo (if any)."""

    __slots__ = ("codings", "content_encoding", "content_length", "headers")

    def __init__(
        self,
        headers: Sequence[tuple[bytes, bytes]],
        codings: tuple[str, ...] | None,
        content_encoding: str | None,
        content_length: int | None,
    ) -> None:
        self.headers = headers
        self.codings = codings
        self.content_encoding = content_encoding
        self.content_length = content_length

    def decoder(self, max_size: int | None, max_ratio: int) -> ContentDecoder | None:
        if self.codings is None:
            return None
        return ContentDecoder(self.codings, max_size=max_size, max_ratio=max_ratio)

    def extensions(self, base: dict[str, Any]) -> dict[str, Any]:
        if self.codings is not None:
            base[CONTENT_ENCODING_KEY] = self.content_encoding
        return base


def plan_body(raw_headers: Sequence[tuple[bytes, bytes]], *, no_body: bool) -> BodyPlan:
    """Scan the response head once. Decoded bodies lose ``Content-Encoding`` and ``Content-Length``."""
    encoding: list[bytes] = []
    length: int | None = None
    for name, value in raw_headers:
        if len(name) == 14 or len(name) == 16:  # cheap pre-filter for the two names we need
            lowered = name.lower()
            if lowered == _CL:
                try:
                    length = int(value)
                except ValueError:
                    length = None
            elif lowered == _CE:
                encoding.append(value)
    if not encoding or no_body:
        return BodyPlan(raw_headers, None, None, length)
    content_encoding = b", ".join(encoding).decode("latin-1")
    codings = parse_content_encoding(content_encoding)
    if codings is None:  # unknown coding: pass through untouched
        return BodyPlan(raw_headers, None, None, length)
    headers = [(k, v) for k, v in raw_headers if k.lower() not in (_CE, _CL)]
    return BodyPlan(headers, codings, content_encoding, length)


class BodyCollector:
    """Gathers a whole body within ``limit`` bytes (raw and decoded), decoding as it goes."""

    __slots__ = ("_chunks", "_decoder", "_limit", "_raw", "_request")

    def __init__(self, request: httpx2.Request, limit: int | None, decoder: ContentDecoder | None) -> None:
        self._request = request
        self._limit = limit
        self._decoder = decoder
        self._chunks: list[bytes] = []
        self._raw = 0

    def add(self, chunk: bytes) -> None:
        self._raw += len(chunk)
        if self._limit is not None and self._raw > self._limit:
            raise body_too_large(self._request, self._limit)
        if self._decoder is None:
            self._chunks.append(chunk)
            return
        try:
            self._chunks.extend(self._decoder.decode(chunk))
        except DecodingFailed as exc:
            raise decoding_error(self._request, exc) from backend_cause(exc)

    def result(self) -> bytes:
        if self._decoder is not None:
            try:
                self._chunks.extend(self._decoder.flush())
            except DecodingFailed as exc:
                raise decoding_error(self._request, exc) from backend_cause(exc)
        chunks = self._chunks
        if len(chunks) == 1:
            return chunks[0]
        return b"".join(chunks)


class DecodedStream(httpx2.AsyncByteStream):
    """A streamed body from a raw byte source, decoded, with errors mapped by ``map_error``."""

    __slots__ = ("_close", "_decoder", "_map_error", "_raw", "_request")

    def __init__(
        self,
        raw: httpx2.AsyncByteStream,
        request: httpx2.Request,
        decoder: ContentDecoder | None,
        map_error: Callable[[BaseException], TetherError],
        close: Callable[[], Awaitable[None]],
    ) -> None:
        self._raw = raw
        self._request = request
        self._decoder = decoder
        self._map_error = map_error
        self._close = close

    async def __aiter__(self) -> AsyncIterator[bytes]:
        decoder = self._decoder
        iterator = self._raw.__aiter__()
        while True:
            try:
                chunk = await iterator.__anext__()
            except StopAsyncIteration:
                break
            except TetherError:
                raise
            except Exception as exc:
                raise self._map_error(exc) from backend_cause(exc)
            if decoder is None:
                yield chunk
                continue
            try:
                pieces = decoder.decode(chunk)
            except DecodingFailed as exc:
                raise decoding_error(self._request, exc) from backend_cause(exc)
            for piece in pieces:
                yield piece
        if decoder is not None:
            try:
                pieces = decoder.flush()
            except DecodingFailed as exc:
                raise decoding_error(self._request, exc) from backend_cause(exc)
            for piece in pieces:
                yield piece

    async def aclose(self) -> None:
        await self._close()
