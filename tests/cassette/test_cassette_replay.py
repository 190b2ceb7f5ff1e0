"""Cassettes record at the transport and replay the whole pipeline offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cassette_helpers import socket_events

import tether
from tether.cassette import CASSETTE_KEY, Cassette
from tether.errors import CassetteError
from tether.testing import MockAPI


async def _session(mock: MockAPI, **overrides: Any) -> tuple[Any, int, list[Any], int]:
    """get_data (two 503s first) and every page of get_historical (first page 503 first)."""
    async with mock.open(**overrides) as api:
        result = await api.call("get_data", identifier="ITEM-001")
        records = [
            r
            async for r in api.paginate(
                "get_historical", identifier="ITEM-1", start="2024-01-01", end="2024-08-31"
            )
        ]
        pages = (
            len([e for e in api.client.cassette.interactions if "historical" in e.request.url])
            if api.client.cassette
            else 0
        )
    return result.data, result.meta.attempts, records, pages


@pytest.mark.tether_mock("dataapi")
async def test_replay_after_the_mock_stops_gives_the_same_data_through_retries_and_pages_without_a_socket(
    tether_mock: MockAPI, tether_fast: Any, tmp_path: Path
) -> None:
    """Recorded against the mock, then replayed with the mock stopped: same data, same attempts,
    every page, and not one socket created or connected."""
    tether_mock.fail("get_data", [503, 503, 200])
    tether_mock.fail("get_historical", [503, 200])
    path = tmp_path / "dataapi.yaml"
    with socket_events() as live_sockets:
        live = await _session(tether_mock, cassette=path, record="all")
    assert "socket.connect" in live_sockets  # the counter sees a live session's sockets
    sent = len(tether_mock.log)
    tether_mock.stop()
    assert live[1] == 3 and len(live[2]) == 244 and live[3] == 4  # 3 pages, the first one retried

    with socket_events() as sockets:
        replay = await _session(tether_mock, cassette=path, record="none")

    assert replay[0] == live[0]
    assert replay[1] == 3
    assert replay[2] == live[2]
    assert sockets == []
    assert len(tether_mock.log) == sent == 7


async def _get(base: str, path: Path, record: str, url: str = "data/1", **kwargs: Any) -> tether.Result | Any:
    async with tether.Client(
        base, cassette=path, record=record, retry=tether.Retry(attempts=3, initial=0.01)
    ) as c:
        return await c.get(url, **kwargs)


async def test_a_request_with_no_recording_names_the_closest_one(fault_server: Any, tmp_path: Path) -> None:
    """The error says which recorded request is closest, where it is in the file and how it differs."""
    fault_server.route("GET", "/v1/{what}/{id}", tether.mock.Fault.ok(json={"ok": True}))
    path = tmp_path / "c.yaml"
    base = fault_server.url + "/v1"
    await _get(base, path, "all", "data/1")
    await _get(base, path, "new", "items/7", params={"x": "1"})
    with pytest.raises(CassetteError) as caught:
        await _get(base, path, "none", "data/2")
    message = str(caught.value)
    assert "no recorded answer for GET data/2" in message
    assert f"closest recorded: interactions[0] GET data/1 at {path}:" in message
    assert "path 'data/2' (recorded 'data/1')" in message
    assert len(fault_server.log) == 2  # nothing was sent for the unmatched request


async def test_once_records_a_missing_file_then_only_replays(fault_server: Any, tmp_path: Path) -> None:
    """record='once' records when the file is missing; once it exists a new request is an error."""
    fault_server.route("GET", "/v1/data/{id}", tether.mock.Fault.ok(json={"n": 1}))
    path = tmp_path / "c.yaml"
    base = fault_server.url + "/v1"
    first = await _get(base, path, "once")
    assert path.is_file() and len(fault_server.log) == 1
    again = await _get(base, path, "once")
    assert again.json() == first.json() and len(fault_server.log) == 1
    with pytest.raises(CassetteError):
        await _get(base, path, "once", "data/9")
    assert len(fault_server.log) == 1


async def test_new_appends_what_is_not_recorded(fault_server: Any, tmp_path: Path) -> None:
    """record='new' replays what is recorded and records (appends) the rest."""
    fault_server.route("GET", "/v1/data/{id}", tether.mock.Fault.ok(json={"n": 1}))
    path = tmp_path / "c.yaml"
    base = fault_server.url + "/v1"
    await _get(base, path, "new", "data/1")
    await _get(base, path, "new", "data/1")
    await _get(base, path, "new", "data/2")
    assert len(fault_server.log) == 2
    assert [i.request.url for i in Cassette(path, record="none").interactions] == ["data/1", "data/2"]


async def test_none_without_a_file_fails_before_anything_is_sent(fault_server: Any, tmp_path: Path) -> None:
    """record='none' with no file is a CassetteError telling how to record it; nothing is sent."""
    with pytest.raises(CassetteError, match="does not exist and record='none'"):
        await _get(fault_server.url, tmp_path / "missing.yaml", "none", "/echo")
    assert fault_server.log == []


async def test_all_sends_everything_again_and_replaces_the_file(fault_server: Any, tmp_path: Path) -> None:
    """record='all' never replays: the server answers again and the file holds the new answers."""
    fault_server.route("GET", "/v1/data/{id}", tether.mock.Fault.ok(json={"n": 1}))
    path = tmp_path / "c.yaml"
    base = fault_server.url + "/v1"
    await _get(base, path, "all")
    fault_server.route("GET", "/v1/data/{id}", tether.mock.Fault.ok(json={"n": 2}))
    response = await _get(base, path, "all")
    assert response.json() == {"n": 2} and len(fault_server.log) == 2
    (only,) = Cassette(path, record="none").interactions
    assert only.response is not None and only.response.body.value == {"n": 2}


async def test_match_on_path_ignores_the_query(fault_server: Any, tmp_path: Path) -> None:
    """With match_on=("method", "path") a request with another query still gets the recording."""
    fault_server.route("GET", "/v1/data/{id}", tether.mock.Fault.ok(json={"n": 1}))
    path = tmp_path / "c.yaml"
    base = fault_server.url + "/v1"
    await _get(base, path, "all", params={"at": "1"})
    with pytest.raises(CassetteError, match="differs in query"):
        await _get(base, path, "none", params={"at": "2"})
    loose = Cassette(path, record="none", match_on=("method", "path"))
    response = await _get(base, loose, "none", params={"at": "2"})
    assert response.json() == {"n": 1} and response.extensions[CASSETTE_KEY].startswith(str(path))


async def test_each_recorded_answer_plays_once_unless_repeats_are_allowed(
    fault_server: Any, tmp_path: Path
) -> None:
    """A request made more often than recorded is an error saying so; allow_playback_repeats replays."""
    fault_server.route("GET", "/v1/data/{id}", tether.mock.Fault.ok(json={"n": 1}))
    path = tmp_path / "c.yaml"
    base = fault_server.url + "/v1"
    await _get(base, path, "all")
    cassette = Cassette(path, record="none")
    async with tether.Client(base, cassette=cassette) as client:
        await client.get("data/1")
        with pytest.raises(CassetteError, match="already played"):
            await client.get("data/1")
    repeating = Cassette(path, record="none", allow_playback_repeats=True)
    async with tether.Client(base, cassette=repeating) as client:
        for _ in range(3):
            assert (await client.get("data/1")).json() == {"n": 1}


async def test_a_cassette_recorded_at_one_base_url_replays_at_another(
    fault_server: Any, tmp_path: Path
) -> None:
    """URLs under the base URL are kept relative, so a recording from a mock replays against production."""
    fault_server.route("GET", "/v1/data/{id}", tether.mock.Fault.ok(json={"n": 1}))
    path = tmp_path / "c.yaml"
    await _get(fault_server.url + "/v1", path, "all")
    assert "url: data/1" in path.read_text()
    response = await _get("https://api.example.com/v1", path, "none")
    assert response.json() == {"n": 1}
    assert str(response.request.url) == "https://api.example.com/v1/data/1"


async def test_a_recorded_connection_reset_replays_as_a_connection_error_and_is_retried(
    fault_server: Any, tmp_path: Path
) -> None:
    """A reset while recording is kept as an error; the replay raises it and the retry recovers."""
    fault_server.route("GET", "/v1/data/{id}", tether.mock.Fault.reset(), tether.mock.Fault.ok(json={"n": 1}))
    path = tmp_path / "c.yaml"
    base = fault_server.url + "/v1"
    await _get(base, path, "all")
    text = path.read_text()
    assert "type: ConnectionError" in text
    events = tether.testing.EventRecorder()
    async with tether.Client(
        base, cassette=path, record="none", retry=tether.Retry(attempts=3, initial=0.01), listeners=[events]
    ) as client:
        assert (await client.get("data/1")).json() == {"n": 1}
    assert [e.fields["reason"] for e in events.events if e.name == "retry.scheduled"] == ["ConnectionError"]


async def test_a_streamed_response_is_recorded_as_read_and_replayed(
    fault_server: Any, tmp_path: Path
) -> None:
    """Client.stream records the body as it is read; the replay streams the same bytes."""
    fault_server.route("GET", "/v1/events", tether.mock.Fault.sse([{"data": "one"}, {"data": "two"}]))
    path = tmp_path / "c.yaml"
    base = fault_server.url + "/v1"
    chunks: list[bytes] = []
    client = tether.Client(base, cassette=path, record="all")
    async with client, client.stream("GET", "events") as response:
        chunks = [c async for c in response.aiter_bytes()]
    assert "data: two" in path.read_text()
    client = tether.Client(base, cassette=path, record="none")
    async with client, client.stream("GET", "events") as response:
        replayed = b"".join([c async for c in response.aiter_bytes()])
    assert replayed == b"".join(chunks)


async def test_rerecording_the_same_exchanges_writes_the_same_bytes(
    fault_server: Any, tmp_path: Path
) -> None:
    """The file is stable (no timestamps, fixed order) and a JSON body is one field per line."""
    fault_server.route("GET", "/v1/data/{id}", tether.mock.Fault.ok(json={"identifier": "A", "value": 1.5}))
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    base = fault_server.url + "/v1"
    await _get(base, first, "all")
    await _get(base, second, "all")
    assert first.read_bytes() == second.read_bytes()
    lines = first.read_text().splitlines()
    assert any(line.strip() == "identifier: A" for line in lines)
    assert any(line.strip() == "value: 1.5" for line in lines)


def test_a_malformed_cassette_names_file_and_line(tmp_path: Path) -> None:
    """A cassette with a bad status is a CassetteError pointing at the line."""
    path = tmp_path / "bad.yaml"
    path.write_text(
        "tether_cassette: 1\ninteractions:\n- request: {method: GET, url: a}\n  response:\n    status: lots\n"
    )
    with pytest.raises(CassetteError, match=rf"{path}:5:\d+: status must be an HTTP status code"):
        _ = Cassette(path, record="none").interactions


def test_bad_options_are_refused_with_the_rule() -> None:
    """An unknown record mode or matcher is a ValueError naming the choices."""
    with pytest.raises(ValueError, match="record must be one of once, new, none, all"):
        Cassette("x.yaml", record="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown matcher 'colour'"):
        Cassette("x.yaml", match_on=("method", "colour"))
    with pytest.raises(ValueError, match="record= needs a cassette="):
        tether.Client("https://api.example.com", record="none")
