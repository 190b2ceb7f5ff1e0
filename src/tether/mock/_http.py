"""A minimal, incremental HTTP/1.1 request parser and response helpers for the mock server.

The parser is fed whatever bytes arrive and returns the requests completed so far, so it is safe
under pipelining (several requests in one read) and fragmentation (one request over many reads).
It understands ``Content-Length`` and ``Transfer-Encoding: chunked`` request bodies and nothing
else of HTTP/1.1 framing; anything it cannot frame is a ``BadRequest``.
"""

from __future__ import annotations

import email.utils
import http
from dataclasses import dataclass
from typing import Final

__all__ = ["BadRequest", "Request", "RequestParser", "http_date", "reason"]

MAX_HEAD: Final = 64 * 1024
MAX_LINE: Final = 4096
MAX_BODY: Final = 64 * 1024 * 1024

_HEAD, _BODY, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER = range(6)
_HEX = frozenset(b"0123456789abcdefABCDEF")
_METHOD_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~")


class BadRequest(Exception):
    """The client sent bytes that are not a request this parser can frame."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(slots=True)
class Request:
    """One framed request as it arrived (header names lower-cased, values as sent)."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes
    keep_alive: bool


class RequestParser:
    """Incremental request framing; ``feed()`` returns the requests completed by these bytes."""

    __slots__ = (
        "_body_size",
        "_chunked",
        "_headers",
        "_keep_alive",
        "_method",
        "_parts",
        "_remaining",
        "_state",
        "_tail",
        "_target",
        "_version",
        "max_body",
        "wants_continue",
    )

    def __init__(self, *, max_body: int = MAX_BODY) -> None:
        self.max_body = max_body
        self.wants_continue = False  # set when a request asked for "Expect: 100-continue"
        self._state = _HEAD
        self._tail = b""
        self._method = ""
        self._target = ""
        self._version = ""
        self._headers: list[tuple[str, str]] = []
        self._keep_alive = True
        self._chunked = False
        self._parts: list[bytes] = []
        self._remaining = 0
        self._body_size = 0

    @property
    def idle(self) -> bool:
        """True between requests (no partial request buffered)."""
        return self._state == _HEAD and not self._tail

    def feed(self, data: bytes) -> list[Request]:
        """Consume ``data``; return every request it completes, in order."""
        if self._tail:
            data = self._tail + data
            self._tail = b""
        out: list[Request] = []
        pos = 0
        size = len(data)
        while pos < size:
            state = self._state
            if state == _HEAD:
                # RFC 9112 2.2: ignore empty lines received before a request line.
                while data.startswith(b"\r\n", pos):
                    pos += 2
                if pos >= size:
                    break
                end = data.find(b"\r\n\r\n", pos)
                if end < 0:
                    if size - pos > MAX_HEAD:
                        raise BadRequest(431, "request head too large")
                    self._tail = data[pos:]
                    break
                if end - pos > MAX_HEAD:
                    raise BadRequest(431, "request head too large")
                self._start(data[pos:end])
                pos = end + 4
                if self._state == _HEAD:
                    out.append(self._finish())
            elif state in (_BODY, _CHUNK_DATA):
                take = min(self._remaining, size - pos)
                self._parts.append(data[pos : pos + take])
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    if state == _BODY:
                        out.append(self._finish())
                    else:
                        self._state = _CHUNK_END
            elif state == _CHUNK_END:
                if size - pos < 2:
                    self._tail = data[pos:]
                    break
                if data[pos : pos + 2] != b"\r\n":
                    raise BadRequest(400, "chunk data not followed by CRLF")
                pos += 2
                self._state = _CHUNK_SIZE
            else:  # _CHUNK_SIZE or _TRAILER: one line at a time
                end = data.find(b"\r\n", pos)
                if end < 0:
                    if size - pos > MAX_LINE:
                        raise BadRequest(400, "chunk line too long")
                    self._tail = data[pos:]
                    break
                line = data[pos:end]
                pos = end + 2
                if state == _TRAILER:
                    if not line:
                        out.append(self._finish())
                    continue
                digits = line.split(b";", 1)[0].strip()
                if not digits or not _HEX.issuperset(digits):
                    raise BadRequest(400, f"bad chunk size line {line[:40]!r}")
                chunk = int(digits, 16)
                if chunk == 0:
                    self._state = _TRAILER
                    continue
                self._body_size += chunk
                if self._body_size > self.max_body:
                    raise BadRequest(413, "request body too large")
                self._remaining = chunk
                self._state = _CHUNK_DATA
        return out

    def _start(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3 or not parts[0] or not parts[1]:
            raise BadRequest(400, f"bad request line {lines[0][:80]!r}")
        method, target, version = parts
        if not _METHOD_CHARS.issuperset(method):
            raise BadRequest(400, f"bad method {method[:20]!r}")
        if version != b"HTTP/1.1" and version != b"HTTP/1.0":
            if not version.startswith(b"HTTP/"):
                raise BadRequest(400, f"bad request line {lines[0][:80]!r}")
            raise BadRequest(505, f"unsupported version {version[:20]!r}")
        headers: list[tuple[str, str]] = []
        length: int | None = None
        chunked = False
        connection = ""
        expect = False
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or name[-1:] in (b" ", b"\t") or name[:1] in (b" ", b"\t"):
                raise BadRequest(400, f"bad header line {line[:80]!r}")
            lname = name.decode("latin-1").lower()
            svalue = value.strip(b" \t").decode("latin-1")
            headers.append((lname, svalue))
            if lname == "content-length":
                if not svalue.isdigit() or (length is not None and int(svalue) != length):
                    raise BadRequest(400, f"bad Content-Length {svalue[:40]!r}")
                length = int(svalue)
            elif lname == "transfer-encoding":
                codings = [c.strip().lower() for c in svalue.split(",")]
                if codings[-1] != "chunked":
                    raise BadRequest(501, f"unsupported Transfer-Encoding {svalue[:40]!r}")
                chunked = True
            elif lname == "connection":
                connection = svalue.lower()
            elif lname == "expect":
                expect = svalue.lower() == "100-continue"
        self._method = method.decode("ascii")
        self._target = target.decode("latin-1")
        self._version = version.decode("ascii")
        self._headers = headers
        if self._version == "HTTP/1.1":
            self._keep_alive = "close" not in connection
        else:
            self._keep_alive = False  # HTTP/1.0: one request per connection
        self._parts = []
        self._body_size = 0
        if chunked:  # Transfer-Encoding wins over Content-Length (RFC 9112 6.3)
            self._state = _CHUNK_SIZE
            self.wants_continue = expect
        elif length:
            if length > self.max_body:
                raise BadRequest(413, "request body too large")
            self._remaining = length
            self._body_size = length
            self._state = _BODY
            self.wants_continue = expect
        else:
            self._state = _HEAD

    def _finish(self) -> Request:
        parts = self._parts
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        self._parts = []
        self._state = _HEAD
        return Request(self._method, self._target, self._version, self._headers, body, self._keep_alive)


def reason(status: int) -> str:
    """The standard reason phrase for ``status`` (``"Unknown"`` for unregistered codes)."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def http_date(timestamp: float) -> str:
    """An IMF-fixdate (``Sun, 06 Nov 1994 08:49:37 GMT``) for a POSIX timestamp."""
    return email.utils.formatdate(timestamp, usegmt=True)
