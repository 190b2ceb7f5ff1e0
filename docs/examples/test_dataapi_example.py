"""Testing an integration with tether's pytest plugin: a complete example for the bundled data API.

Run it with ``pytest docs/examples``. The cassettes beside it (``cassettes/test_dataapi_example/``)
were recorded once from the bundled mock with ``pytest docs/examples --tether-record=once``; a
plain run replays them (``record="none"``: nothing reaches the network, no API key is needed) and
``test_the_recordings_still_match_the_spec`` checks them against the spec, as ``tether verify``
does in CI. Re-record with ``--tether-record=all`` when the provider changes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import tether
from tether.cassette import Cassette, cassette_files, verify
from tether.spec import load
from tether.testing import FastMode, MockAPI, bundled_spec

# Every test here gets the bundled data API's mock (the ``tether_mock`` fixture) on a free port.
pytestmark = pytest.mark.tether_mock("dataapi")


async def test_get_data_replays_from_its_cassette(tether_mock: MockAPI, tether_cassette: Cassette) -> None:
    """One call through the whole pipeline, answered from the test's cassette."""
    async with tether_mock.open(cassette=tether_cassette) as api:
        result = await api.call("get_data", identifier="ITEM-001")
    assert result.data["identifier"] == "ITEM-001"
    assert isinstance(result.data["value"], float)
    if tether_cassette.record == "none":
        assert tether_mock.log == []  # replayed: the mock never saw the request


async def test_every_page_of_the_history_replays(tether_mock: MockAPI, tether_cassette: Cassette) -> None:
    """Pagination replays page by page: 250 daily records arrive in three pages of at most 100."""
    async with tether_mock.open(cassette=tether_cassette) as api:
        records = [
            r
            async for r in api.paginate(
                "get_historical", identifier="ITEM-001", start="2024-01-01", end="2024-09-06"
            )
        ]
    assert len(records) == 250
    assert records[0]["date"] == "2024-01-01" and records[-1]["date"] == "2024-09-06"


async def test_a_flaky_provider_is_retried_without_waiting(
    tether_mock: MockAPI, tether_fast: FastMode
) -> None:
    """Two 500s then the answer: the call succeeds on its third attempt, and the backoff between
    the attempts took no real time (tether_fast skipped it)."""
    tether_mock.fail("get_data", [500, 500, 200])
    async with tether_mock.open() as api:
        result = await api.call("get_data", identifier="ITEM-001")
    assert result.meta.attempts == 3
    assert len(tether_fast.sleeps) == 2
    assert [r.status for r in tether_mock.requests("get_data")] == [500, 500, 200]


async def test_a_long_rate_limit_wait_raises_rate_limit_exceeded(tether_mock: MockAPI) -> None:
    """A 429 asking for 60 s, longer than the retry policy will wait: RateLimitExceeded(60) at once."""
    tether_mock.fail("get_data", [429], retry_after=60)
    async with tether_mock.open(retry=tether.Retry(max_retry_after=10)) as api:
        with pytest.raises(tether.RateLimitExceeded) as caught:
            await api.call("get_data", identifier="ITEM-001")
    assert caught.value.retry_after == 60


async def test_a_declared_answer_must_be_one_the_api_could_send(tether_mock: MockAPI) -> None:
    """respond() declares the answer for this test; a body that breaks the spec is refused."""
    body = {
        "identifier": "ITEM-042",
        "value": 42.0,
        "timestamp": "2024-01-01T00:00:00Z",
        "request_id": "req_example1",
    }
    tether_mock.respond("get_data", json=body)
    async with tether_mock.open() as api:
        assert (await api.call("get_data", identifier="ITEM-042")).data == body
    with pytest.raises(tether.ValidationError, match="required property"):
        tether_mock.respond("get_data", json={"identifier": "ITEM-042"})


async def test_an_unknown_identifier_is_not_found(tether_mock: MockAPI) -> None:
    """The provider's 404 becomes NotFoundError (NOTFOUND_001), never retried."""
    async with tether_mock.open() as api:
        with pytest.raises(tether.NotFoundError):
            await api.call("get_data", identifier="MISSING-1")
    assert len(tether_mock.requests("get_data")) == 1


def test_the_recordings_still_match_the_spec() -> None:
    """The contract check: every recorded response agrees with the spec (tether verify)."""
    spec_path = bundled_spec("dataapi")
    assert spec_path is not None
    folder = Path(__file__).parent / "cassettes"
    report = verify(load(spec_path), cassette_files(folder))
    assert report.checked >= 4
    assert report.ok, "\n".join(map(str, report.drifts))
