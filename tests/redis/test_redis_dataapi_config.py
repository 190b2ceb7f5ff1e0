"""The REQ-001 client configured by its configuration file exactly as written (a Redis cache, the
key from Google Cloud Secret Manager), against the bundled mock provider: each environment
variable changes the behaviour it names.

The file's Redis (localhost:6379) and secret manager (Google's) are replaced through the
variables tether adds for that (EXTERNAL_API_REDIS_URL, EXTERNAL_API_SECRET_ENDPOINT): the test
Redis and a loopback answer of the Secret Manager REST API on the mock server.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "auth"))
from secret_managers import GcpSecrets

from tether.dataapi import DataAPIClient, DataAPIMock, RateLimitTier, serve_mock
from tether.errors import APIError, CircuitOpenError, TimeoutError, ValidationError
from tether.mock import Fault
from tether.testing import VirtualClock

pytestmark = pytest.mark.redis

CONFIG = Path(__file__).resolve().parents[1] / "dataapi" / "fixtures" / "external_api_client.yaml"


@pytest.fixture
async def mock() -> AsyncIterator[tuple[DataAPIMock, GcpSecrets]]:
    """The mock provider, also answering Secret Manager for the file's secret and another one."""
    async with await serve_mock() as server:
        secrets = GcpSecrets()
        secrets.add_version("my-project-prod", "external_api_key_prod", "sk-from-config-file")
        secrets.add_version("other-project", "other-secret", "sk-from-variables")
        secrets.install(server, "my-project-prod", "external_api_key_prod")
        secrets.install(server, "other-project", "other-secret")
        yield server, secrets


def environ(server: DataAPIMock, redis_url: str, namespace: str, **extra: str) -> dict[str, str]:
    return {
        "EXTERNAL_API_URL": server.base_url,
        "EXTERNAL_API_SECRET_ENDPOINT": server.url,
        "EXTERNAL_API_REDIS_URL": f"{redis_url}?namespace={namespace}",
        **extra,
    }


def data_requests(server: DataAPIMock, identifier: str) -> list[Any]:
    return [r for r in server.log if r.path == f"/v1/data/{identifier}"]


async def connected(env: dict[str, str], **overrides: Any) -> DataAPIClient:
    client = DataAPIClient.from_config(CONFIG, environ=env, **overrides)
    await client.connect()
    return client


async def test_the_file_as_written_reads_the_key_from_the_secret_manager_and_caches_in_redis(
    mock: tuple[DataAPIMock, GcpSecrets], redis_url: str, namespace: str
) -> None:
    """EXTERNAL_API_URL points the file's client at the mock; the key comes from the file's
    secret; a second instance answers from the shared Redis cache (EXTERNAL_API_REDIS_URL)."""
    server, secrets = mock
    env = environ(server, redis_url, namespace)
    first = await connected(env)
    second = await connected(env)
    try:
        assert first.get_rate_limit_status().tier is RateLimitTier.PREMIUM  # the file's tier
        assert (await first.get_data("ITEM-001")).identifier == "ITEM-001"
        assert (await second.get_data("ITEM-001")).identifier == "ITEM-001"
        assert first.integration.client.engine.http_version == "2"
    finally:
        await first.disconnect()
        await second.disconnect()
    requests = data_requests(server, "ITEM-001")
    assert [r.header("x-api-key") for r in requests] == ["sk-from-config-file"]  # one call; one hit
    assert (
        secrets.accessed[0]
        == "/v1/projects/my-project-prod/secrets/external_api_key_prod/versions/latest:access"
    )


async def test_secret_project_and_secret_name_pick_another_secret(
    mock: tuple[DataAPIMock, GcpSecrets], redis_url: str, namespace: str
) -> None:
    """SECRET_PROJECT and SECRET_NAME: the key is read from that secret and sent."""
    server, secrets = mock
    env = environ(server, redis_url, namespace, SECRET_PROJECT="other-project", SECRET_NAME="other-secret")
    client = await connected(env)
    try:
        await client.get_data("ITEM-002")
    finally:
        await client.disconnect()
    assert [r.header("x-api-key") for r in data_requests(server, "ITEM-002")] == ["sk-from-variables"]
    assert secrets.accessed == ["/v1/projects/other-project/secrets/other-secret/versions/latest:access"]


async def test_external_api_timeout_bounds_each_attempt(
    mock: tuple[DataAPIMock, GcpSecrets], redis_url: str, namespace: str
) -> None:
    """EXTERNAL_API_TIMEOUT=0.3: an answer 1 s late is a TimeoutError (the file's 30 s would
    have waited for it, as the second call shows)."""
    server, _ = mock
    server.script("ITEM-003", Fault.delay(1.0, Fault.ok(json={})))
    client = await connected(environ(server, redis_url, namespace, EXTERNAL_API_TIMEOUT="0.3"), retry=None)
    try:
        with pytest.raises(TimeoutError) as caught:
            await client.get_data("ITEM-003")
        assert caught.value.phase in ("read", "attempt")
    finally:
        await client.disconnect()
    server.script("ITEM-003", Fault.delay(1.0, Fault.ok(json={})))
    patient = await connected(environ(server, redis_url, namespace), retry=None)
    try:
        with pytest.raises(ValidationError):  # the late answer arrives (its {} is no DataResponse)
            await patient.get_data("ITEM-003")
    finally:
        await patient.disconnect()


async def test_rate_tier_and_rate_limit_set_the_limiter(
    mock: tuple[DataAPIMock, GcpSecrets], redis_url: str, namespace: str
) -> None:
    """EXTERNAL_API_RATE_TIER=free selects the free tier; EXTERNAL_API_RATE_LIMIT sets its
    requests per minute: 16 calls at once take about three times longer (virtual time) at 2/minute
    than at 6/minute, once the burst is spent."""
    server, _ = mock

    async def spread(limit: str) -> float:
        clock = VirtualClock()
        env = environ(
            server, redis_url, namespace, EXTERNAL_API_RATE_TIER="free", EXTERNAL_API_RATE_LIMIT=limit
        )
        client = await connected(env, clock=clock, timeout=None)
        try:
            assert client.get_rate_limit_status().tier is RateLimitTier.FREE
            await asyncio.gather(*(client.get_data(f"RATE-{limit}-{i:02d}") for i in range(16)))
        finally:
            await client.disconnect()
        return clock.monotonic()

    slow, fast = await spread("2"), await spread("6")
    assert fast > 0
    assert 2.0 < slow / fast < 4.5


@pytest.mark.parametrize(("enabled", "requests"), [("true", 2), ("false", 1)])
async def test_retry_enabled_turns_retrying_on_and_off(
    mock: tuple[DataAPIMock, GcpSecrets], redis_url: str, namespace: str, enabled: str, requests: int
) -> None:
    """EXTERNAL_API_RETRY_ENABLED: a 503 once is retried and answered (true), or raised (false)."""
    server, _ = mock
    server.script("ITEM-004", Fault.status(503))
    env = environ(server, redis_url, namespace, EXTERNAL_API_RETRY_ENABLED=enabled)
    client = await connected(env, clock=VirtualClock(), timeout=None)
    try:
        if enabled == "true":
            assert (await client.get_data("ITEM-004")).identifier == "ITEM-004"
        else:
            with pytest.raises(APIError):
                await client.get_data("ITEM-004")
    finally:
        await client.disconnect()
    assert len(data_requests(server, "ITEM-004")) == requests


@pytest.mark.parametrize(("ttl", "requests"), [(None, 1), ("0", 2)])
async def test_cache_ttl_sets_how_long_data_is_reused(
    mock: tuple[DataAPIMock, GcpSecrets], redis_url: str, namespace: str, ttl: str | None, requests: int
) -> None:
    """EXTERNAL_API_CACHE_TTL=0: every get_data goes upstream; the file's 30 s answers the second."""
    server, _ = mock
    extra = {"EXTERNAL_API_CACHE_TTL": ttl} if ttl is not None else {}
    client = await connected(environ(server, redis_url, namespace, **extra))
    try:
        for _ in range(2):
            await client.get_data("ITEM-005")
    finally:
        await client.disconnect()
    assert len(data_requests(server, "ITEM-005")) == requests


@pytest.mark.parametrize(("enabled", "sent"), [("true", 5), ("false", 6)])
async def test_circuit_enabled_turns_the_breaker_on_and_off(
    mock: tuple[DataAPIMock, GcpSecrets], redis_url: str, namespace: str, enabled: str, sent: int
) -> None:
    """EXTERNAL_API_CIRCUIT_ENABLED: after the file's 5 failures the 6th call fails fast (true)
    or still reaches the server (false)."""
    server, _ = mock
    server.script("ITEM-006", *[Fault.status(500)] * 6)
    env = environ(server, redis_url, namespace, EXTERNAL_API_CIRCUIT_ENABLED=enabled)
    client = await connected(env, retry=None, clock=VirtualClock(), timeout=None)
    errors = []
    try:
        for _ in range(6):
            try:
                await client.get_data("ITEM-006")
            except (APIError, CircuitOpenError) as exc:
                errors.append(type(exc))
    finally:
        await client.disconnect()
    assert len(data_requests(server, "ITEM-006")) == sent
    assert (CircuitOpenError in errors) is (enabled == "true")
