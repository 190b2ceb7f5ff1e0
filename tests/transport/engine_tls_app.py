"""A tiny ASGI app served by hypercorn over TLS (HTTP/2 and HTTP/1.1) on 127.0.0.1, for engine tests.

The certificate comes from a throwaway ``trustme`` CA; ``TlsServer.ca_path`` is that CA's PEM
file for ``EngineOptions(verify=...)``.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import trustme
from hypercorn.asyncio import serve
from hypercorn.config import Config

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Routes: /hello (JSON naming the HTTP version), /gzip, /big?size=N, /redirect?to=URL, /echo,
    /sleep?s=SECONDS (answers after a pause)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    query = parse_qs(scope["query_string"].decode())
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if path == "/hello":
        payload = json.dumps({"http_version": scope["http_version"], "method": scope["method"]}).encode()
        await _respond(send, 200, payload, [(b"content-type", b"application/json")])
    elif path == "/gzip":
        payload = gzip.compress(json.dumps({"compressed": True}).encode())
        await _respond(
            send, 200, payload, [(b"content-type", b"application/json"), (b"content-encoding", b"gzip")]
        )
    elif path == "/big":
        size = int(query["size"][0])
        await _respond(send, 200, b"x" * size, [(b"content-length", str(size).encode())])
    elif path == "/redirect":
        await _respond(send, 302, b"", [(b"location", query["to"][0].encode())])
    elif path == "/sleep":
        await asyncio.sleep(float(query["s"][0]))
        await _respond(send, 200, b"late", [])
    elif path == "/echo":
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        payload = json.dumps({"headers": headers, "body": body.decode()}).encode()
        await _respond(send, 200, payload, [(b"content-type", b"application/json")])
    else:
        await _respond(send, 404, b"not found", [])


class TlsServer:
    """Serves ``app`` with hypercorn over TLS on 127.0.0.1 (a free port) while entered."""

    def __init__(self, workdir: Path, *, alpn: tuple[str, ...] = ("h2", "http/1.1")) -> None:
        self._workdir = workdir
        self._alpn = list(alpn)
        self._shutdown = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.ca = trustme.CA()
        self.ca_path = str(workdir / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_path)
        self.port = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def __aenter__(self) -> TlsServer:
        cert = self.ca.issue_cert("127.0.0.1", "localhost")
        cert_path = self._workdir / "server.pem"
        cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = Config()
        config.bind = [f"fd://{os.dup(sock.fileno())}"]
        sock.close()
        config.certfile = str(cert_path)
        config.keyfile = str(cert_path)
        config.alpn_protocols = self._alpn
        config.accesslog = None
        config.errorlog = None
        config.graceful_timeout = 0.5
        self._task = asyncio.create_task(serve(app, config, shutdown_trigger=self._shutdown.wait))  # type: ignore[arg-type]
        await self._wait_listening()
        return self

    async def _wait_listening(self) -> None:
        for _ in range(200):
            if self._task is not None and self._task.done():
                self._task.result()  # raises what made hypercorn stop
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.01)
                continue
            writer.close()
            await writer.wait_closed()
            return
        raise RuntimeError("hypercorn did not start listening")

    async def __aexit__(self, *exc: object) -> None:
        self._shutdown.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, timeout=5)
