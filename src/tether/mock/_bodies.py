"""Bodies generated on the fly: large patterned payloads and decompression bombs.

Each generator yields pieces of at most a few chunks, so a server streaming through one holds only
the piece in hand (plus what its transport buffers) however large the body is.
"""

from __future__ import annotations

import functools
import struct
import zlib
from collections.abc import Iterator
from typing import Any, Final

import brotli

__all__ = ["ENCODINGS", "PATTERN", "bomb_pieces", "compress", "large_pieces", "pattern_bytes"]

ENCODINGS: Final = ("gzip", "deflate", "br")

# The content of every large body: this 64-byte line repeated, so a client can check any byte.
PATTERN: Final = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+\n"

_BOMB_BLOCK: Final = 1 << 20
# gzip member header: deflate, no flags, mtime 0, "max compression", OS unknown (RFC 1952).
_GZIP_HEADER: Final = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
# zlib header for deflate with a 32 KiB window at the best level (RFC 1950); "deflate" in HTTP.
_ZLIB_HEADER: Final = b"\x78\xda"
# A final, empty, fixed-Huffman deflate block: ends a stream after a full flush.
_DEFLATE_END: Final = b"\x03\x00"


def pattern_bytes(offset: int, size: int) -> bytes:
    """``size`` bytes of the large-body pattern starting at byte ``offset`` of the body."""
    start = offset % len(PATTERN)
    reps = (start + size) // len(PATTERN) + 1
    return (PATTERN * reps)[start : start + size]


def compress(body: bytes, encoding: str) -> bytes:
    """``body`` encoded with a ``Content-Encoding`` (``gzip``, ``deflate`` = zlib, ``br``)."""
    if encoding == "br":
        return bytes(brotli.compress(body))
    wbits = 31 if encoding == "gzip" else 15
    c = zlib.compressobj(6, zlib.DEFLATED, wbits)
    return c.compress(body) + c.flush()


class _Encoder:
    """A streaming compressor with one interface over zlib and brotli."""

    def __init__(self, encoding: str) -> None:
        self._br: Any = None
        self._z: Any = None
        if encoding == "br":
            self._br = brotli.Compressor(quality=4)
        else:
            self._z = zlib.compressobj(6, zlib.DEFLATED, 31 if encoding == "gzip" else 15)

    def feed(self, data: bytes) -> bytes:
        if self._br is not None:
            return bytes(self._br.process(data))
        return bytes(self._z.compress(data))

    def finish(self) -> bytes:
        if self._br is not None:
            return bytes(self._br.finish())
        return bytes(self._z.flush())


def large_pieces(size: int, chunk: int, encoding: str | None = None) -> Iterator[bytes]:
    """The pattern body of ``size`` bytes in pieces of ``chunk`` bytes (encoded when asked).

    Encoded pieces are whatever the compressor emits (never empty); their sizes vary.
    """
    period = len(PATTERN)
    # When the chunk is a whole number of pattern periods every chunk is the same bytes object.
    same = chunk % period == 0
    block = pattern_bytes(0, chunk) if same else b""
    encoder = _Encoder(encoding) if encoding else None
    offset = 0
    while offset < size:
        n = min(chunk, size - offset)
        piece = block if same and n == chunk else pattern_bytes(offset, n)
        offset += n
        if encoder is None:
            yield piece
        else:
            out = encoder.feed(piece)
            if out:
                yield out
    if encoder is not None:
        tail = encoder.finish()
        if tail:
            yield tail


@functools.lru_cache(maxsize=8)
def _raw_deflate_zeros(n: int) -> bytes:
    # A raw deflate segment for n zero bytes, ended by a full flush: it is byte-aligned and
    # independent of what precedes it, so one segment can be repeated any number of times.
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(bytes(n)) + c.flush(zlib.Z_FULL_FLUSH)


@functools.lru_cache(maxsize=1)
def _zero_block() -> bytes:
    return bytes(_BOMB_BLOCK)


def bomb_pieces(decoded_size: int, encoding: str) -> Iterator[bytes]:
    """A body that decodes to ``decoded_size`` zero bytes, in small compressed pieces.

    gzip and deflate repeat one precomputed deflate segment (about 1 KiB per MiB decoded) and
    write the stream's header and trailer themselves, so no byte of the decoded body is ever
    compressed at request time; br streams zeros through a fast brotli compressor.
    """
    full, rest = divmod(decoded_size, _BOMB_BLOCK)
    if encoding == "br":
        c = brotli.Compressor(quality=1)
        zeros = _zero_block()
        for _ in range(full):
            out = bytes(c.process(zeros))
            if out:
                yield out
        out = bytes(c.process(bytes(rest))) + bytes(c.finish())
        if out:
            yield out
        return
    segment = _raw_deflate_zeros(_BOMB_BLOCK)
    gzip = encoding == "gzip"
    crc = 0
    yield _GZIP_HEADER if gzip else _ZLIB_HEADER
    for _ in range(full):
        if gzip:
            crc = zlib.crc32(_zero_block(), crc)
        yield segment
    if rest:
        if gzip:
            crc = zlib.crc32(bytes(rest), crc)
        yield _raw_deflate_zeros(rest)
    if gzip:
        yield _DEFLATE_END + struct.pack("<II", crc, decoded_size & 0xFFFFFFFF)
    else:
        # Adler-32 of n zero bytes: A stays 1 and B sums A once per byte.
        adler = ((decoded_size % 65521) << 16) | 1
        yield _DEFLATE_END + struct.pack(">I", adler)
