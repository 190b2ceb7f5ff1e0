"""The tether_mock fixture: a spec's mock per test, scripted from the test."""

from __future__ import annotations

import pytest

import tether
from tether.testing import FastMode, MockAPI


@pytest.mark.tether_mock("dataapi")
async def test_fail_scripts_statuses_before_the_normal_answer(
    tether_mock: MockAPI, tether_fast: FastMode
) -> None:
    """fail("get_data", [500, 500, 200]) gives two 500s, then the provider's answer; the log
    shows all three."""
    tether_mock.fail("get_data", [500, 500, 200])
    async with tether_mock.open() as api:
        result = await api.call("get_data", identifier="ITEM-001")
    assert result.meta.attempts == 3 and result.data["identifier"] == "ITEM-001"
    assert [r.status for r in tether_mock.requests("get_data")] == [500, 500, 200]
    assert tether_mock.url.endswith("/v1") and tether_mock.url.startswith("http://127.0.0.1:")


@pytest.mark.tether_mock("dataapi")
async def test_a_429_with_retry_after_60_is_rate_limit_exceeded_with_that_wait(tether_mock: MockAPI) -> None:
    """A scripted 429 asking for 60 s fails at once with RateLimitExceeded(retry_after=60) when the
    wait is longer than the retry policy accepts."""
    tether_mock.fail("get_data", [429], retry_after=60)
    async with tether_mock.open(retry=tether.Retry(attempts=3, max_retry_after=10)) as api:
        with pytest.raises(tether.RateLimitExceeded) as caught:
            await api.call("get_data", identifier="ITEM-001")
    assert caught.value.retry_after == 60


@pytest.mark.tether_mock("dataapi")
async def test_rate_limit_makes_the_server_enforce_a_limit(tether_mock: MockAPI) -> None:
    """rate_limit("get_data", "2/minute") answers the third request in a minute with 429."""
    tether_mock.rate_limit("get_data", "2/minute")
    async with tether_mock.open(retry=None, cache=None) as api:
        await api.call("get_data", identifier="ITEM-001")
        await api.call("get_data", identifier="ITEM-002")
        with pytest.raises(tether.RateLimitExceeded):
            await api.call("get_data", identifier="ITEM-003")
    assert [r.status for r in tether_mock.requests("get_data")] == [200, 200, 429]


@pytest.mark.tether_mock("dataapi")
async def test_down_resets_every_connection_until_up(tether_mock: MockAPI) -> None:
    """down() makes calls fail with ConnectionError; up() brings the answers back."""
    tether_mock.down()
    async with tether_mock.open(retry=None, breaker=None, cache=None) as api:
        with pytest.raises(tether.ConnectionError):
            await api.call("get_data", identifier="ITEM-001")
        tether_mock.up()
        assert (await api.call("get_data", identifier="ITEM-001")).data["identifier"] == "ITEM-001"


@pytest.mark.tether_mock("dataapi")
async def test_respond_declares_an_answer_the_spec_allows(tether_mock: MockAPI) -> None:
    """respond() with a body that fits the response schema is what the next call returns."""
    body = {
        "identifier": "ITEM-9",
        "value": 4.5,
        "timestamp": "2024-01-01T00:00:00Z",
        "request_id": "req_abcdef",
    }
    tether_mock.respond("get_data", json=body, headers={"X-Extra": "1"})
    async with tether_mock.open() as api:
        result = await api.call("get_data", identifier="ITEM-9")
    assert result.data == body and result.response.headers["x-extra"] == "1"


@pytest.mark.tether_mock("dataapi")
def test_respond_refuses_a_body_the_api_would_never_send(tether_mock: MockAPI) -> None:
    """A body breaking the schema is a ValidationError naming the path and the rule; so is an
    error body that breaks the documented error schema."""
    with pytest.raises(tether.ValidationError, match=r"\$\.value: 'high' is not of type 'number' \(type\)"):
        tether_mock.respond(
            "get_data",
            json={
                "identifier": "A",
                "value": "high",
                "timestamp": "2024-01-01T00:00:00Z",
                "request_id": "req_abcdef",
            },
        )
    with pytest.raises(tether.ValidationError, match=r"'error_code' is a required property \(required\)"):
        tether_mock.respond("get_data", status=404, json={"error_message": "gone"})
    with pytest.raises(tether.SpecError, match="unknown endpoint 'get_datum'"):
        tether_mock.fail("get_datum", [500])


def test_a_spec_file_is_served_with_example_bodies(tmp_path: pytest.TempPathFactory) -> None:
    """MockAPI.start on any spec file serves each endpoint's example body under the base path."""
    spec = tmp_path / "s.yaml"  # type: ignore[operator]
    spec.write_text(
        "service: {name: s, base_url: 'https://api.example.com/v2'}\n"
        "endpoints:\n  thing:\n    path: /things/{id}\n    parameters: [{name: id, in: path, type: string}]\n"
        "    response: {success: {schema: {type: object, required: [id],\n"
        "                                  properties: {id: {type: integer}}}}}\n"
    )
    with MockAPI.start(spec) as mock:
        import asyncio

        async def call() -> object:
            async with mock.open() as api:
                return (await api.call("thing", id="7")).data

        assert asyncio.run(call()) == {"id": 1}
        assert mock.url.endswith("/v2")
    assert not mock.running
