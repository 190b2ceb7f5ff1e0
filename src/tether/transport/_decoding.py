"""Streaming content decoding (gzip, deflate, brotli) with a decompression-bomb guard.

aiohttp's own decompression is off and httpx2 never sees a ``Content-Encoding`` it would decode
again: tether decodes here, once, for both engines. Every decompressor is driven with an output
bound (``max_length`` for zlib, ``output_buffer_limit`` for brotli), so no call ever produces more
than a small piece, and the decoded size is checked after each piece against two limits:

- ``max_size`` (``EngineOptions.max_response_size``, for non-streamed calls), and
- ``max_ratio`` × compressed bytes read so far, after a first ``allowance`` of output.

A bomb therefore fails while it is being read, holding at most one piece beyond the limit.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Final, Protocol

import brotli

__all__ = ["ContentDecoder", "DecodingFailed", "parse_content_encoding"]

#: Output produced before the ratio limit starts to apply (small bodies compress very well).
RATIO_ALLOWANCE: Final = 64 * 1024
#: Largest piece one decompressor call may produce.
PIECE: Final = 256 * 1024

_GZIP_MAGIC: Final = b"\x1f\x8b"


class DecodingFailed(Exception):
    """A body could not be decoded or broke a limit. ``reason`` is ``decoding`` or ``too_large``.

    Internal: the engines turn it into ``tether.errors.ResponseError`` naming the request.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class _Layer(Protocol):
    """One content coding being undone. ``feed`` queues input; ``pull`` yields bounded output."""

    name: str

    def feed(self, data: bytes) -> None: ...

    def pull(self, max_length: int) -> bytes: ...

    def finish(self) -> None: ...


class _GzipLayer:
    """gzip (RFC 1952), including bodies made of several gzip members."""

    name = "gzip"

    def __init__(self) -> None:
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._buf = b""
        self._done = False

    def feed(self, data: bytes) -> None:
        if not self._done:
            self._buf = self._buf + data if self._buf else data

    def pull(self, max_length: int) -> bytes:
        while self._buf:
            d = self._d
            try:
                out = d.decompress(self._buf, max_length)
            except zlib.error as exc:
                raise DecodingFailed("decoding", f"invalid gzip data ({exc})") from exc
            self._buf = d.unconsumed_tail
            if d.eof:
                rest = d.unused_data
                if rest.startswith(_GZIP_MAGIC):  # another member follows
                    self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    self._buf = rest + self._buf
                elif rest:  # trailing bytes after the last member (often NUL padding) are ignored
                    self._buf = b""
                    self._done = True
            if out:
                return out
        return b""

    def finish(self) -> None:
        return None


class _DeflateLayer:
    """deflate: zlib-wrapped (RFC 1950, what the RFC means) or raw (RFC 1951, what some servers send)."""

    name = "deflate"

    def __init__(self) -> None:
        self._d: zlib._Decompress | None = None
        self._buf = b""

    def feed(self, data: bytes) -> None:
        self._buf = self._buf + data if self._buf else data
        if self._d is None and len(self._buf) >= 2:
            self._d = zlib.decompressobj(zlib.MAX_WBITS if _is_zlib_header(self._buf) else -zlib.MAX_WBITS)

    def pull(self, max_length: int) -> bytes:
        d = self._d
        if d is None or not self._buf:
            return b""
        if d.eof:
            self._buf = b""
            return b""
        try:
            out = d.decompress(self._buf, max_length)
        except zlib.error as exc:
            raise DecodingFailed("decoding", f"invalid deflate data ({exc})") from exc
        self._buf = b"" if d.eof else d.unconsumed_tail
        return out

    def finish(self) -> None:
        if self._d is None and self._buf:  # a one-byte body: only raw deflate can be that short
            self._d = zlib.decompressobj(-zlib.MAX_WBITS)


def _is_zlib_header(head: bytes) -> bool:
    cmf, flg = head[0], head[1]
    return cmf & 0x0F == 8 and cmf >> 4 <= 7 and ((cmf << 8) | flg) % 31 == 0


class _BrotliLayer:
    """br (RFC 7932)."""

    name = "br"

    def __init__(self) -> None:
        self._d = brotli.Decompressor()
        self._buf = b""
        self._draining = False

    def feed(self, data: bytes) -> None:
        self._buf = self._buf + data if self._buf else data

    def pull(self, max_length: int) -> bytes:
        d = self._d
        if d.is_finished():
            self._buf = b""
            return b""
        if self._buf:
            data, self._buf = self._buf, b""
        elif self._draining:
            data = b""
        else:
            return b""
        try:
            out: bytes = d.process(data, output_buffer_limit=max_length)
        except brotli.error as exc:
            raise DecodingFailed("decoding", f"invalid brotli data ({exc})") from exc
        # Output may be pending inside the decompressor: keep asking (with no input) until it
        # returns nothing; only then may new input be given.
        self._draining = bool(out) and not d.is_finished()
        return out

    def finish(self) -> None:
        return None


_LAYERS: Final[dict[str, Callable[[], _Layer]]] = {
    "gzip": _GzipLayer,
    "x-gzip": _GzipLayer,
    "deflate": _DeflateLayer,
    "br": _BrotliLayer,
}


def parse_content_encoding(value: str) -> tuple[str, ...] | None:
    """The codings to undo, first to undo first; ``None`` if there is nothing tether can decode.

    ``Content-Encoding: gzip, br`` means gzip was applied first, so br is undone first. When any
    coding is unknown the body is passed through untouched (``None``).
    """
    codings = [c.strip().lower() for c in value.split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings or any(c not in _LAYERS for c in codings):
        return None
    return tuple(reversed(codings))


class ContentDecoder:
    """Undoes a chain of content codings, piece by piece, within the size and ratio limits."""

    __slots__ = ("_allowance", "_layers", "_max_ratio", "_max_size", "_produced", "_raw_in")

    def __init__(
        self,
        codings: tuple[str, ...],
        *,
        max_size: int | None,
        max_ratio: int,
        allowance: int = RATIO_ALLOWANCE,
    ) -> None:
        self._layers: list[_Layer] = [_LAYERS[c]() for c in codings]
        self._produced = [0] * len(self._layers)
        self._raw_in = 0
        self._max_size = max_size
        self._max_ratio = max_ratio
        self._allowance = allowance

    @property
    def compressed_bytes(self) -> int:
        return self._raw_in

    @property
    def decoded_bytes(self) -> int:
        return self._produced[-1]

    def decode(self, data: bytes) -> list[bytes]:
        """Decoded pieces for the next chunk of the encoded body (possibly none)."""
        out: list[bytes] = []
        if data:
            self._raw_in += len(data)
            self._push(0, data, out)
        return out

    def flush(self) -> list[bytes]:
        """Whatever is still held once the encoded body has ended."""
        out: list[bytes] = []
        self._push(0, b"", out, final=True)
        return out

    def _push(self, i: int, data: bytes, out: list[bytes], *, final: bool = False) -> None:
        layer = self._layers[i]
        last = i == len(self._layers) - 1
        if data:
            layer.feed(data)
        if final:
            layer.finish()
        while True:
            allowed = self._allowed(last)
            piece = layer.pull(max(1, min(PIECE, allowed - self._produced[i] + 1)))
            if not piece:
                break
            self._produced[i] += len(piece)
            if self._produced[i] > allowed:
                self._refuse(last)
            if last:
                out.append(piece)
            else:
                self._push(i + 1, piece, out)
        if final and not last:
            self._push(i + 1, b"", out, final=True)

    def _allowed(self, last: bool) -> int:
        by_ratio = max(self._allowance, self._max_ratio * self._raw_in)
        if last and self._max_size is not None:
            return min(by_ratio, self._max_size)
        return by_ratio

    def _refuse(self, last: bool) -> None:
        if last and self._max_size is not None and self._produced[-1] > self._max_size:
            raise DecodingFailed(
                "too_large", f"decoded response body exceeds max_response_size ({self._max_size} bytes)"
            )
        raise DecodingFailed(
            "decoding",
            f"decompression bomb refused: the body expands more than {self._max_ratio}x "
            f"({self._raw_in} compressed bytes read)",
        )
