"""Starting and stopping real redis-servers for the Redis tests (used by ``conftest.py``)."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

URL_ENV = "TETHER_TEST_REDIS_URL"
BINARY_ENV = "TETHER_REDIS_SERVER"


def redis_binary() -> str | None:
    """The redis-server to start, or ``None``: ``TETHER_REDIS_SERVER`` when set (and only it),
    else ``redis-server`` on ``PATH``, else /usr/bin/redis-server."""
    chosen = os.environ.get(BINARY_ENV)
    candidates = [chosen] if chosen else [shutil.which("redis-server"), "/usr/bin/redis-server"]
    return next((c for c in candidates if c and Path(c).is_file()), None)


def unavailable(reason: str) -> None:
    """Skip the test (locally) or fail it (under ``CI=true``) because no Redis can be had."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"Redis tests cannot run under CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_cluster_port() -> int:
    """A port for a cluster node: at most 55535, with ``port + 10000`` (its bus port) free too."""
    for _ in range(200):
        port = random.randint(20000, 55000)
        if _is_free(port) and _is_free(port + 10000):
            return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class RedisServer:
    """One ``redis-server`` child on 127.0.0.1; ``kill()`` and ``start()`` again keep the port."""

    def __init__(
        self, binary: str, workdir: Path, *, port: int | None = None, extra: Sequence[str] = ()
    ) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = port or free_port()
        self.extra = tuple(extra)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it answers PING."""
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.workdir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
            "--loglevel",
            "warning",
            *self.extra,
        ]
        log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115 (kept open while the child runs)
        try:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                detail = (self.workdir / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: {detail}")
            if self.ping():
                return
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"redis-server on port {self.port} did not answer within {timeout} s")

    def ping(self) -> bool:
        """Whether the server answers PING now (a raw RESP exchange, no client library)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL the server (no shutdown, no save) and wait for it to exit."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


def cluster_ok(cli: str, port: int) -> bool:
    done = subprocess.run(
        [cli, "-p", str(port), "cluster", "info"], capture_output=True, timeout=10, check=False
    )
    return b"cluster_state:ok" in done.stdout
