"""A real redis-server for the Redis tests, started on a free loopback port (DESIGN 10).

``TETHER_TEST_REDIS_URL`` points the tests at a Redis you run instead (each test uses its own key
namespace, so its contents do not matter). Without it the tests start ``redis-server`` (found at
``TETHER_REDIS_SERVER``, on ``PATH`` or in /usr/bin) with persistence off in a temporary
directory. When neither is possible the tests skip with the reason, except under ``CI=true``,
where they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from redis_servers import (
    BINARY_ENV,
    URL_ENV,
    RedisServer,
    cluster_ok,
    free_cluster_port,
    redis_binary,
    unavailable,
)


@pytest.fixture(scope="session")
def redis_server_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., RedisServer]]:
    """Starts dedicated redis-servers (for tests that kill and restart one); all killed at the end."""
    started: list[RedisServer] = []

    def start(*, extra: Sequence[str] = ()) -> RedisServer:
        binary = redis_binary()
        if binary is None:
            unavailable(f"no redis-server binary (PATH, {BINARY_ENV} or /usr/bin/redis-server)")
            raise AssertionError("unreachable")
        server = RedisServer(binary, tmp_path_factory.mktemp("redis"), extra=extra)
        server.start()
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.kill()


@pytest.fixture(scope="session")
def redis_url(redis_server_factory: Callable[..., RedisServer]) -> str:
    """A Redis for the whole session: ``TETHER_TEST_REDIS_URL`` or a redis-server of our own."""
    url = os.environ.get(URL_ENV)
    if url:
        return url
    return redis_server_factory().url


@pytest.fixture
def namespace() -> str:
    """A key namespace no other test uses."""
    return f"t-{uuid.uuid4().hex[:12]}:"


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A three-node Redis Cluster on loopback (no replicas), built with ``redis-cli --cluster create``."""
    binary = redis_binary()
    cli = shutil.which("redis-cli") or (str(Path(binary).with_name("redis-cli")) if binary else None)
    if binary is None or cli is None or not Path(cli).exists():
        unavailable("a Redis Cluster needs the redis-server and redis-cli binaries")
        raise AssertionError("unreachable")
    nodes = [
        RedisServer(
            binary,
            tmp_path_factory.mktemp("cluster"),
            port=free_cluster_port(),
            extra=[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
            ],
        )
        for _ in range(3)
    ]
    try:
        for node in nodes:
            node.start()
        create = [cli, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in nodes)]
        subprocess.run(
            [*create, "--cluster-replicas", "0", "--cluster-yes"], check=True, capture_output=True, timeout=60
        )
        deadline = time.monotonic() + 30
        while not all(cluster_ok(cli, n.port) for n in nodes):
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis Cluster did not reach cluster_state:ok within 30 s")
            time.sleep(0.1)
        yield nodes[0].url
    finally:
        for node in nodes:
            node.kill()
