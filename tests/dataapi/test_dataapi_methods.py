"""The REQ-001 ``ExternalAPIClient`` methods end to end against the bundled mock provider."""

from __future__ import annotations

import inspect
from datetime import date

import pytest
from dataapi_helpers import API_KEY

import tether.errors as errors
from tether.dataapi import (
    APICredentials,
    ConnectionResult,
    DataAPIClient,
    DataAPIMock,
    DataResponse,
    DisconnectionResult,
    ExternalAPIClient,
    RateLimitTier,
    RetryConfig,
)
from tether.dataapi._mock import value_for
from tether.mock import Fault
from tether.testing import VirtualClock


def test_client_has_the_protocol_methods_with_the_seed_signatures() -> None:
    """DataAPIClient satisfies ExternalAPIClient with the seed's method and parameter names."""
    client = DataAPIClient(environ={})
    assert isinstance(client, ExternalAPIClient)
    expected = {
        "connect": ["credentials", "timeout"],
        "get_data": ["identifier", "retry_config"],
        "get_data_batch": ["identifiers", "max_concurrent"],
        "get_historical": ["identifier", "start_date", "end_date", "interval"],
        "disconnect": [],
        "get_rate_limit_status": [],
    }
    for name, params in expected.items():
        signature = inspect.signature(getattr(client, name))
        assert list(signature.parameters) == params, name
    assert inspect.signature(client.connect).parameters["timeout"].default == 5.0
    assert inspect.signature(client.get_data_batch).parameters["max_concurrent"].default == 10
    assert inspect.signature(client.get_historical).parameters["interval"].default == "daily"
    assert not inspect.iscoroutinefunction(client.get_rate_limit_status)


async def test_connect_returns_a_connection_result_with_the_tier(mock_server: DataAPIMock) -> None:
    """AC-001: connect with a valid API key succeeds at once with a session id and the tier."""
    client = DataAPIClient(base_url=mock_server.base_url, environ={})
    result = await client.connect(APICredentials(api_key=API_KEY, tier=RateLimitTier.ENTERPRISE))
    try:
        assert isinstance(result, ConnectionResult)
        assert result.success and result.session_id and result.error_message is None
        assert result.rate_limit_tier is RateLimitTier.ENTERPRISE
        assert client.connected
        assert mock_server.log == []  # connecting sends nothing
    finally:
        await client.disconnect()


async def test_connect_refuses_an_empty_api_key(mock_server: DataAPIMock) -> None:
    """An empty API key is an AuthenticationError (AUTH_001) before anything is opened."""
    client = DataAPIClient(base_url=mock_server.base_url, environ={})
    with pytest.raises(errors.AuthenticationError) as info:
        await client.connect(APICredentials(api_key="  "))
    assert info.value.error_code == "AUTH_001"
    assert not client.connected


async def test_get_data_returns_the_identifiers_data(client: DataAPIClient, mock_server: DataAPIMock) -> None:
    """get_data sends an authenticated GET /v1/data/{identifier} and returns a DataResponse."""
    item = await client.get_data("ITEM-001")
    assert isinstance(item, DataResponse)
    assert item.identifier == "ITEM-001"
    assert item.value == value_for("ITEM-001")
    assert item.metadata is not None and set(item.metadata) == {"category", "region"}
    assert item.request_id.startswith("req_")
    (sent,) = mock_server.log
    assert (sent.method, sent.path, sent.header("x-api-key")) == ("GET", "/v1/data/ITEM-001", API_KEY)


async def test_get_data_is_deterministic_per_identifier(client: DataAPIClient) -> None:
    """The mock provider gives each identifier its own fixed value."""
    first = await client.get_data("ITEM-001")
    other = await client.get_data("ITEM-002")
    assert first.value == value_for("ITEM-001") and other.value == value_for("ITEM-002")
    assert first.value != other.value


async def test_get_data_batch_yields_every_identifier(
    client: DataAPIClient, mock_server: DataAPIMock
) -> None:
    """AC-003: a batch of 10 identifiers yields one DataResponse each, through call_many."""
    identifiers = [f"ITEM-{n:03d}" for n in range(10)]
    got = [item async for item in client.get_data_batch(identifiers, max_concurrent=4)]
    assert sorted(item.identifier for item in got) == identifiers
    assert all(item.value == value_for(item.identifier) for item in got)
    assert len(mock_server.requests("GET", "/v1/data/{identifier}")) == 10
    assert client.batch_failures == {}


async def test_get_data_batch_reports_partial_failures(client: DataAPIClient) -> None:
    """A failed identifier does not stop the batch; the failure is raised after the rest, with details."""
    got: list[str] = []

    async def consume() -> None:
        async for item in client.get_data_batch(["ITEM-001", "MISSING-9", "ITEM-003"]):
            got.append(item.identifier)

    with pytest.raises(errors.NotFoundError) as info:
        await consume()
    assert sorted(got) == ["ITEM-001", "ITEM-003"]
    assert info.value.details == [
        {"field": "MISSING-9", "message": info.value.message, "code": "NOTFOUND_001"}
    ]
    assert set(client.batch_failures) == {"MISSING-9"}


async def test_get_historical_reads_every_page(client: DataAPIClient, mock_server: DataAPIMock) -> None:
    """get_historical pages through the range (page / page_size) and returns every record."""
    history = await client.get_historical("ITEM-001", date(2024, 1, 1), date(2024, 12, 31))
    assert history.identifier == "ITEM-001" and history.interval == "daily"
    assert len(history.records) == 366
    assert history.records[0].date == date(2024, 1, 1) and history.records[-1].date == date(2024, 12, 31)
    assert history.records[59].value == value_for("ITEM-001", date(2024, 2, 29))
    pages = mock_server.requests("GET", "/v1/historical/{identifier}")
    assert [r.param("page") for r in pages] == ["1", "2", "3", "4"]
    assert {r.param("interval") for r in pages} == {"daily"}


async def test_get_historical_weekly_interval(client: DataAPIClient) -> None:
    """A weekly interval returns one record per week of the range."""
    history = await client.get_historical("ITEM-002", date(2024, 1, 1), date(2024, 1, 29), interval="weekly")
    assert [r.date.day for r in history.records] == [1, 8, 15, 22, 29]
    assert history.interval == "weekly"


async def test_disconnect_releases_resources(mock_server: DataAPIMock) -> None:
    """disconnect closes the client; later calls raise ConnectionError; a second disconnect is harmless."""
    client = DataAPIClient(base_url=mock_server.base_url, environ={})
    await client.connect(APICredentials(api_key=API_KEY))
    result = await client.disconnect()
    assert isinstance(result, DisconnectionResult)
    assert result.success and result.resources_released
    with pytest.raises(errors.ConnectionError):
        await client.get_data("ITEM-001")
    assert (await client.disconnect()).success


async def test_not_found_raises_not_found_error(client: DataAPIClient) -> None:
    """A 404 from the provider is a NotFoundError with code NOTFOUND_001, not retried."""
    with pytest.raises(errors.NotFoundError) as info:
        await client.get_data("MISSING-001")
    assert info.value.error_code == "NOTFOUND_001"
    assert info.value.status_code == 404
    assert info.value.to_error_response()["error_type"] == "NotFoundError"


async def test_a_503_burst_is_retried(
    client: DataAPIClient, mock_server: DataAPIMock, clock: VirtualClock
) -> None:
    """AC-005: two 503s then data: the call succeeds after backing off (1 s, 2 s) and retrying."""
    mock_server.script("ITEM-503", Fault.status(503), Fault.status(503))
    item = await client.get_data("ITEM-503")
    assert item.value == value_for("ITEM-503")
    assert [r.status for r in mock_server.requests("GET", "/v1/data/ITEM-503")] == [503, 503, 200]
    assert clock.monotonic() > 0  # the backoff waited (in virtual time)


async def test_5xx_retries_up_to_five_attempts(client: DataAPIClient, mock_server: DataAPIMock) -> None:
    """AC-009: a lasting 5xx is tried 5 times, then raises APIError (API_001)."""
    mock_server.script("ITEM-500", *[Fault.status(500)] * 8)
    with pytest.raises(errors.APIError) as info:
        await client.get_data("ITEM-500")
    assert info.value.error_code == "API_001"
    assert len(mock_server.requests("GET", "/v1/data/ITEM-500")) == 5


async def test_retry_config_overrides_the_attempts(client: DataAPIClient, mock_server: DataAPIMock) -> None:
    """get_data's retry_config replaces the default retry for that call."""
    mock_server.script("ITEM-502", *[Fault.status(502)] * 8)
    config = RetryConfig(max_attempts=2, initial_delay_seconds=0.5, add_jitter=False)
    with pytest.raises(errors.APIError):
        await client.get_data("ITEM-502", retry_config=config)
    assert len(mock_server.requests("GET", "/v1/data/ITEM-502")) == 2
    assert (await client.get_data("ITEM-001", retry_config=config)).identifier == "ITEM-001"


async def test_circuit_opens_after_five_failures_and_closes_after_two_successes(
    mock_server: DataAPIMock, clock: VirtualClock
) -> None:
    """AC-006 / AC-007: 5 consecutive failures open the circuit; after 30 s, 2 successes close it."""
    client = DataAPIClient(base_url=mock_server.base_url, environ={}, clock=clock, retry=None, timeout=None)
    await client.connect(APICredentials(api_key=API_KEY, tier=RateLimitTier.ENTERPRISE))
    try:
        mock_server.script("ITEM-DOWN", *[Fault.status(503)] * 5)
        for _ in range(5):
            with pytest.raises(errors.APIError):
                await client.get_data("ITEM-DOWN")
        with pytest.raises(errors.CircuitOpenError) as info:
            await client.get_data("ITEM-DOWN")
        assert info.value.error_code == "CIRCUIT_001"
        assert len(mock_server.requests("GET", "/v1/data/ITEM-DOWN")) == 5  # failed fast
        assert client.status()["breaker"]["state"] == "open"
        await clock.sleep(30.0)
        await client.get_data("ITEM-DOWN")  # the script is over: the live answer
        await client.get_data("ITEM-007")
        assert client.status()["breaker"]["state"] == "closed"
    finally:
        await client.disconnect()
