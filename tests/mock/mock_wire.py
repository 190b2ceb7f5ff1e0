"""Raw HTTP/1.1 client helpers for the mock server's tests: exact bytes in, exact bytes out."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field

# A safety net against a test waiting forever, never an assertion about speed.
WAIT = 10.0


@dataclass
class Raw:
    """Everything a connection received until the server closed it, and how it closed."""

    data: bytes
    reset: bool  # True: ended by RST (ConnectionResetError); False: clean close (FIN)


@dataclass
class Response:
    """One parsed response."""

    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case)."""
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


def request(method: str, target: str, *, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    """The bytes of one HTTP/1.1 request (Content-Length framing when there is a body)."""
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if body and not any(k.lower() == "transfer-encoding" for k in (headers or {})):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def exchange(port: int, data: bytes) -> Raw:
    """Send ``data`` on a new connection and read until the server closes or resets it."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    chunks: list[bytes] = []
    reset = False
    try:
        await loop.sock_connect(sock, ("127.0.0.1", port))
        await loop.sock_sendall(sock, data)
        async with asyncio.timeout(WAIT):
            while True:
                try:
                    chunk = await loop.sock_recv(sock, 65536)
                except ConnectionResetError:
                    reset = True
                    break
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        sock.close()
    return Raw(b"".join(chunks), reset)


async def read_response(reader: asyncio.StreamReader, *, head_only: bool = False) -> Response:
    """Read one response (Content-Length or chunked body) from a keep-alive connection."""
    async with asyncio.timeout(WAIT):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        _, status, reason = lines[0].split(" ", 2)
        headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:] if line]
        resp = Response(int(status), reason, [(k, v) for k, v in headers])
        if head_only:
            return resp
        if (resp.header("transfer-encoding") or "").lower() == "chunked":
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
            resp.body = b"".join(parts)
        else:
            resp.body = await reader.readexactly(int(resp.header("content-length") or 0))
        return resp
