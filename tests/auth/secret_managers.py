"""Loopback stand-ins for the secret managers: moto's server (AWS Secrets Manager) as a real
subprocess, and a Google Cloud Secret Manager REST answer on a FaultServer route.

The Google answer follows the documented REST API: ``GET
/v1/projects/{project}/secrets/{secret}/versions/{version}:access`` returns
``{"name": "...", "payload": {"data": "<base64>", "dataCrc32c": "<int64 as string>"}}``; a
missing secret is a 404 with the Google error body ``{"error": {"code", "message", "status"}}``.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tether.auth._managers import crc32c
from tether.mock import Fault, FaultServer
from tether.mock._faults import Incoming

#: Credentials moto accepts; never real ones.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def moto_server() -> Iterator[str]:
    """``python -m moto.server`` on a free loopback port, as a child process; yields its URL."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **AWS_ENV},
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"moto's server exited with {proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto's server did not start listening within 60 s") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(timeout=10)


@dataclass
class GcpSecrets:
    """Secret values by (project, name) served as Secret Manager's REST API answers them."""

    values: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    accessed: list[str] = field(default_factory=list)
    corrupt: bool = False

    def add_version(self, project: str, name: str, value: str) -> None:
        self.values.setdefault((project, name), []).append(value)

    def install(self, server: FaultServer, project: str, name: str) -> None:
        """Answer the access routes of ``latest`` and of each numbered version."""

        def answer(incoming: Incoming) -> Fault:
            self.accessed.append(incoming.path)
            versions = self.values.get((project, name), [])
            wanted = incoming.path.rsplit("/versions/", 1)[1].removesuffix(":access")
            index = len(versions) if wanted == "latest" else int(wanted) if wanted.isdigit() else 0
            if not 1 <= index <= len(versions):
                return Fault.status(404, json=_google_error(404, "NOT_FOUND", f"Secret [{name}] not found"))
            data = versions[index - 1].encode()
            checksum = crc32c(data) ^ (1 if self.corrupt else 0)
            body: dict[str, Any] = {
                "name": f"projects/{project}/secrets/{name}/versions/{index}",
                "payload": {"data": base64.b64encode(data).decode(), "dataCrc32c": str(checksum)},
            }
            return Fault.ok(json=body)

        for version in ("latest", *(str(i) for i in range(1, 10))):
            path = f"/v1/projects/{project}/secrets/{name}/versions/{version}:access"
            server.route("GET", path, Fault.respond(answer))


def _google_error(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


def accepting(keys: list[str]) -> Fault:
    """A route that answers 200 only to ``X-API-Key: <keys[-1]>`` (the current key), else 401."""

    def answer(incoming: Incoming) -> Fault:
        sent = {k.lower(): v for k, v in incoming.headers}.get("x-api-key")
        if sent == keys[-1]:
            return Fault.ok(json={"ok": True})
        return Fault.status(401, json={"error": "invalid key"})

    return Fault.respond(answer)


__all__ = ["AWS_ENV", "GcpSecrets", "accepting", "moto_server"]
