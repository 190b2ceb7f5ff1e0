"""REQ-001 rules on the facade: validation before sending, tiers, rate-limit status, the DTOs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pydantic
import pytest
from dataapi_helpers import API_KEY

import tether.errors as errors
from tether.dataapi import (
    APICredentials,
    DataAPIClient,
    DataAPIMock,
    DataResponse,
    HistoricalRequest,
    RateLimitStatus,
    RateLimitTier,
    bundled_spec_path,
    serve_mock,
)
from tether.pipeline.rate import TIERS, Rate
from tether.testing import VirtualClock

REPO = Path(__file__).resolve().parents[2]


async def _connected(server: DataAPIMock, tier: RateLimitTier, clock: VirtualClock) -> DataAPIClient:
    client = DataAPIClient(base_url=server.base_url, environ={}, clock=clock, timeout=None)
    await client.connect(APICredentials(api_key=API_KEY, tier=tier))
    return client


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("get_data", ("item-001",)),
        ("get_data", ("ITEM-0000000000000000001",)),
        ("get_data", ("ITEM 001",)),
        ("get_data", ("",)),
        ("get_historical", ("ITEM-001", date(2022, 1, 1), date(2024, 1, 2))),
        ("get_historical", ("ITEM-001", date(2024, 2, 1), date(2024, 1, 1))),
        ("get_historical", ("ITEM-001", date(2024, 1, 1), date(2024, 2, 1), "hourly")),
        ("get_historical", ("bad id", date(2024, 1, 1), date(2024, 2, 1))),
    ],
)
async def test_invalid_requests_raise_before_sending(
    client: DataAPIClient, mock_server: DataAPIMock, method: str, args: tuple[Any, ...]
) -> None:
    """AC-008: a bad identifier, reversed or >2-year range, or bad interval fails at once, unsent."""
    with pytest.raises(errors.RequestValidationError) as info:
        await getattr(client, method)(*args)
    assert info.value.error_code == "VALID_001"
    assert isinstance(info.value, errors.ValidationError)
    assert info.value.details and info.value.details[0]["code"] == "VALID_001"
    assert mock_server.log == []


@pytest.mark.parametrize("identifiers", [[], ["ITEM-001", "bad-id"], ["ITEM-001", "X" * 21]])
async def test_invalid_batches_send_nothing(
    client: DataAPIClient, mock_server: DataAPIMock, identifiers: list[str]
) -> None:
    """AC-008: one invalid identifier (or none at all) rejects the whole batch before any request."""
    with pytest.raises(errors.RequestValidationError):
        async for _ in client.get_data_batch(identifiers):
            pass  # pragma: no cover - nothing is yielded
    assert mock_server.log == []


async def test_two_year_range_is_the_limit(client: DataAPIClient, mock_server: DataAPIMock) -> None:
    """A 730-day range is accepted (25 monthly records); 731 days is refused unsent."""
    history = await client.get_historical("ITEM-001", date(2022, 1, 1), date(2024, 1, 1), "monthly")
    assert len(history.records) == 25
    sent = len(mock_server.log)
    with pytest.raises(errors.RequestValidationError, match="2 years"):
        await client.get_historical("ITEM-001", date(2022, 1, 1), date(2024, 1, 2), "monthly")
    assert len(mock_server.log) == sent


@pytest.mark.parametrize("tier", list(RateLimitTier))
async def test_tier_selects_the_rate_preset(
    mock_server: DataAPIMock, clock: VirtualClock, tier: RateLimitTier
) -> None:
    """AC-004: the credentials' tier selects its Rate.tier preset (5/min, 75/min + 10, 1000/min)."""
    client = await _connected(mock_server, tier, clock)
    try:
        preset = Rate.tier(tier.value).windows[0]
        status = client.get_rate_limit_status()
        assert status.tier is tier
        assert status.window_size_seconds == 60
        assert status.requests_remaining == TIERS[tier.value]["burst"] == preset.burst
        limiter = client.status()["limiter"]
        assert (limiter["tier"], limiter["limit"]) == (tier.value, preset.limit)
        assert preset.limit == {"free": 5, "premium": 75, "enterprise": 1000}[tier.value]
    finally:
        await client.disconnect()


async def test_rate_limit_status_after_some_calls(client: DataAPIClient) -> None:
    """get_rate_limit_status counts the calls made and what remains of the premium burst."""
    before = client.get_rate_limit_status()
    assert (before.requests_made, before.requests_remaining) == (0, 10)
    for n in range(3):
        await client.get_data(f"ITEM-{n:03d}")
    status = client.get_rate_limit_status()
    assert isinstance(status, RateLimitStatus)
    assert status.tier is RateLimitTier.PREMIUM
    assert (status.requests_made, status.requests_remaining) == (3, 7)
    assert status.reset_time > before.reset_time


async def test_free_tier_spaces_calls_twelve_seconds_apart(
    mock_server: DataAPIMock, clock: VirtualClock
) -> None:
    """AC-004: on the free tier (5/min) the client queues calls so they start 12 s apart."""
    client = await _connected(mock_server, RateLimitTier.FREE, clock)
    try:
        for n in range(3):
            await client.get_data(f"ITEM-{n:03d}")
        assert clock.monotonic() == pytest.approx(24.0)
        assert len(mock_server.log) == 3
    finally:
        await client.disconnect()


async def test_mock_enforces_the_tier_limit_when_asked() -> None:
    """serve_mock(enforce_rate_limit=True) answers 429 with X-RateLimit-* once the tier's budget is spent."""
    server = await serve_mock(RateLimitTier.FREE, enforce_rate_limit=True)
    async with server, httpx2.AsyncClient() as http:
        codes = [(await http.get(f"{server.base_url}/data/ITEM-{n:03d}")).status_code for n in range(6)]
        last = await http.get(f"{server.base_url}/data/ITEM-009")
    assert codes == [200] * 5 + [429]
    assert last.status_code == 429 and last.headers["X-RateLimit-Limit"] == "5"
    assert int(last.headers["Retry-After"]) >= 1


async def test_api_key_never_shows_in_errors_or_reprs(client: DataAPIClient) -> None:
    """AC-011: the API key appears in no error message, ErrorResponse, or repr."""
    credentials = APICredentials(api_key=API_KEY)
    with pytest.raises(errors.NotFoundError) as info:
        await client.get_data("MISSING-001")
    texts = [str(info.value), repr(info.value), str(info.value.to_error_response())]
    texts += [repr(credentials), str(credentials), repr(client), str(client.status())]
    assert all(API_KEY not in text for text in texts)


async def test_mock_answers_a_malformed_identifier_with_400(mock_server: DataAPIMock) -> None:
    """The mock provider itself refuses a malformed identifier with a VALID_001 ErrorResponse."""
    async with httpx2.AsyncClient() as http:
        response = await http.get(f"{mock_server.base_url}/data/bad-id")
        batch = await http.post(
            f"{mock_server.base_url}/data/batch", json={"identifiers": ["ITEM-1", "MISSING-2"]}
        )
    assert response.status_code == 400 and response.json()["error_code"] == "VALID_001"
    assert [item["identifier"] for item in batch.json()] == ["ITEM-1"]
    assert [r.status for r in mock_server.log] == [400, 200]


def test_data_response_validators() -> None:
    """DataResponse applies the seed's validators: identifier and request_id patterns, no future timestamp."""
    good = {
        "identifier": "ITEM-001",
        "value": 1.5,
        "timestamp": "2025-01-09T14:30:00Z",
        "request_id": "req_abc123",
    }
    assert DataResponse.model_validate(good).metadata is None
    for change in (
        {"identifier": "item-001"},
        {"request_id": "abc123"},
        {"timestamp": (datetime.now(UTC) + timedelta(hours=1)).isoformat()},
        {"extra": 1},
    ):
        with pytest.raises(pydantic.ValidationError):
            DataResponse.model_validate({**good, **change})


def test_historical_request_validators() -> None:
    """HistoricalRequest allows at most 730 days, start <= end, and daily / weekly / monthly."""
    ok = HistoricalRequest(identifier="ITEM-001", start_date=date(2022, 1, 1), end_date=date(2024, 1, 1))
    assert ok.interval == "daily"
    with pytest.raises(pydantic.ValidationError, match="exceeds maximum 2 years"):
        HistoricalRequest(identifier="ITEM-001", start_date=date(2022, 1, 1), end_date=date(2024, 1, 2))
    with pytest.raises(pydantic.ValidationError, match="start_date must be <= end_date"):
        HistoricalRequest(identifier="ITEM-001", start_date=date(2024, 1, 2), end_date=date(2024, 1, 1))


def test_bundled_spec_is_the_specs_copy() -> None:
    """The spec shipped in the package is identical to specs/dataapi.yaml."""
    assert bundled_spec_path().read_text(encoding="utf-8") == (REPO / "specs" / "dataapi.yaml").read_text(
        encoding="utf-8"
    )
