"""``spawn_server``: a ``FaultServer`` in its own process, controlled over HTTP.

Benchmarks use it to put the server on its own core; multi-process tests use it so that several
workers can hit one server. The parent talks to the child through ``/__tether/...``.
"""

from __future__ import annotations

import http.client
import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from tether.mock._faults import Chaos, Fault
from tether.mock._log import RecordedRequest

__all__ = ["SpawnedServer", "spawn_server"]

_READY_PREFIX = "listening "


def _json_default(value: Any) -> Any:
    if isinstance(value, Fault | Chaos):
        return value.to_dict()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable in a route spec")


class SpawnedServer:
    """A running ``python -m tether.mock`` child; methods talk to its remote control."""

    def __init__(self, url: str, process: subprocess.Popen[bytes], *, timeout: float = 10.0) -> None:
        self.url = url
        self.process = process
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self._timeout = timeout

    def log(self) -> list[RecordedRequest]:
        """Every request the server recorded, in arrival order (``GET /__tether/log``)."""
        doc = self._call("GET", "log")
        return [RecordedRequest.from_dict(r) for r in doc["requests"]]

    def clear_log(self) -> None:
        """Forget the recorded requests."""
        self._call("DELETE", "log")

    def reset(self) -> None:
        """Drop every route and the log (``POST /__tether/reset``)."""
        self._call("POST", "reset")

    def route(
        self,
        method: str,
        path: str,
        *responses: Fault,
        rate_limit: str | None = None,
        burst: int | None = None,
        chaos: Chaos | None = None,
    ) -> None:
        """Add or replace a route, as ``FaultServer.route`` does (``POST /__tether/routes``)."""
        spec: dict[str, Any] = {"method": method, "path": path, "responses": list(responses)}
        if rate_limit is not None:
            spec["rate_limit"] = rate_limit
        if burst is not None:
            spec["burst"] = burst
        if chaos is not None:
            spec["chaos"] = chaos
        self.load_routes([spec])

    def load_routes(self, specs: Sequence[Mapping[str, Any]]) -> None:
        """Add routes from their JSON form (``Fault`` / ``Chaos`` values are converted)."""
        self._call("POST", "routes", json.dumps(list(specs), default=_json_default).encode())

    def stats(self) -> dict[str, Any]:
        """The server's counters (``GET /__tether/stats``)."""
        doc: dict[str, Any] = self._call("GET", "stats")
        return doc

    def _call(self, method: str, name: str, body: bytes | None = None) -> Any:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self._timeout)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            conn.request(method, f"/__tether/{name}", body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        if response.status >= 400:
            raise RuntimeError(f"mock server {method} /__tether/{name} answered {response.status}: {data!r}")
        return json.loads(data) if data else None

    def __repr__(self) -> str:
        return f"SpawnedServer({self.url}, pid={self.process.pid})"


def _read_ready_line(process: subprocess.Popen[bytes], stderr: IO[bytes], timeout: float) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while b"\n" not in buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise RuntimeError(f"mock server did not start within {timeout} s")
            data = os.read(process.stdout.fileno(), 4096)
            if not data:  # the child exited before binding
                process.wait()
                stderr.seek(0)
                detail = stderr.read().decode(errors="replace").strip()[-2000:]
                raise RuntimeError(f"mock server exited with status {process.returncode}: {detail}")
            buffer += data
    line = buffer.split(b"\n", 1)[0].decode()
    if not line.startswith(_READY_PREFIX):
        raise RuntimeError(f"mock server printed {line!r} instead of 'listening URL'")
    return line[len(_READY_PREFIX) :].strip()


@contextmanager
def spawn_server(
    routes: Sequence[Mapping[str, Any]] | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    record: bool = True,
    startup_timeout: float = 20.0,
) -> Iterator[SpawnedServer]:
    """Run ``python -m tether.mock`` in a subprocess for the duration of the ``with`` block.

    ``routes`` are route specs (``{"method", "path", "responses": [Fault or dict], ...}``)
    installed before the server reports ready. Yields a ``SpawnedServer`` (``.url``, ``.log()``,
    ``.route()``, ``.reset()``); the child is terminated (SIGTERM, then SIGKILL) on exit.
    """
    src = str(Path(__file__).resolve().parents[2])  # so the child imports this same tether
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    args = [sys.executable, "-m", "tether.mock", "--host", host, "--port", str(port)]
    if not record:
        args.append("--no-log")
    with tempfile.TemporaryDirectory(prefix="tether-mock-") as tmp, tempfile.TemporaryFile() as stderr:
        if routes:
            routes_file = Path(tmp) / "routes.json"
            routes_file.write_text(json.dumps(list(routes), default=_json_default))
            args += ["--routes", str(routes_file)]
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, env=env)
        try:
            url = _read_ready_line(process, stderr, startup_timeout)
            yield SpawnedServer(url, process)
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if process.stdout is not None:
                with suppress(OSError):
                    process.stdout.close()
