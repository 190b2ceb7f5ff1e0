"""tether.Client, the code-first door: URLs, headers, defaults, lifecycle, errors, streaming."""

from __future__ import annotations

import httpx2
import pytest

import tether
from tether import errors
from tether.mock import Fault, FaultServer
from tether.pipeline.rate import Rate


async def test_base_url_path_is_kept_when_merging(fault_server: FaultServer) -> None:
    """A relative path is appended to the base URL's path, with or without a leading slash."""
    fault_server.route("GET", "/v1/data/{id}", Fault.echo())
    async with tether.Client(f"{fault_server.url}/v1", retry=None, breaker=None) as client:
        first = await client.get("/data/A")
        second = await client.get("data/B")
    assert first.json()["path"] == "/v1/data/A"
    assert second.json()["path"] == "/v1/data/B"


async def test_default_and_per_call_headers_and_params_merge(fault_server: FaultServer) -> None:
    """Client headers and params apply to every call; per-call ones add to or override them."""
    fault_server.route("GET", "/x", Fault.echo())
    async with tether.Client(
        fault_server.url, headers={"X-Team": "data"}, params={"format": "json"}, retry=None, breaker=None
    ) as client:
        body = (await client.get("/x", headers={"X-Call": "1"}, params={"page": 2})).json()
    headers = {k.lower(): v for k, v in body["headers"].items()}
    assert headers["x-team"] == "data"
    assert headers["x-call"] == "1"
    assert headers["user-agent"].startswith("tether/")
    assert body["query"] == {"format": ["json"], "page": ["2"]}


async def test_absolute_url_bypasses_base_url(fault_server: FaultServer) -> None:
    """An absolute URL is sent as given."""
    fault_server.route("GET", "/abs", Fault.ok(json={"ok": True}))
    async with tether.Client("http://127.0.0.1:9/unused", retry=None, breaker=None) as client:
        response = await client.get(f"{fault_server.url}/abs")
    assert response.json() == {"ok": True}


async def test_relative_url_without_base_url_is_refused() -> None:
    """A relative URL needs a base_url; the error says so."""
    async with tether.Client(retry=None, breaker=None) as client:
        with pytest.raises(ValueError, match="needs a base_url"):
            await client.get("/x")


def test_base_url_must_be_absolute_http() -> None:
    """A base_url that is not an absolute http(s) URL is refused at construction."""
    with pytest.raises(ValueError, match="absolute http"):
        tether.Client("ftp://example.com")


async def test_error_status_raises_typed_error_with_response(fault_server: FaultServer) -> None:
    """A 404 raises NotFoundError carrying the response and the endpoint name."""
    fault_server.route("GET", "/missing", Fault.status(404, json={"error": "nope"}))
    async with tether.Client(fault_server.url, retry=None, breaker=None) as client:
        with pytest.raises(errors.NotFoundError) as info:
            await client.get("/missing", endpoint="get_missing")
    assert info.value.status_code == 404
    assert info.value.endpoint == "get_missing"
    assert info.value.response is not None
    assert info.value.response.json() == {"error": "nope"}


async def test_raise_for_status_false_returns_the_response(fault_server: FaultServer) -> None:
    """With raise_for_status=False an error status comes back as a response."""
    fault_server.route("GET", "/missing", Fault.status(404))
    async with tether.Client(fault_server.url, retry=None, breaker=None, raise_for_status=False) as client:
        response = await client.get("/missing")
    assert response.status_code == 404


async def test_post_put_patch_delete_send_their_method_and_body(fault_server: FaultServer) -> None:
    """Each verb helper sends its method; json bodies arrive encoded."""
    fault_server.route("*", "/echo-any", Fault.echo())
    async with tether.Client(fault_server.url, retry=None, breaker=None) as client:
        for verb in ("post", "put", "patch", "delete"):
            kwargs = {} if verb == "delete" else {"json": {"verb": verb}}
            body = (await getattr(client, verb)("/echo-any", **kwargs)).json()
            assert body["method"] == verb.upper()
            if verb != "delete":
                assert '"verb"' in body["body"]


async def test_stream_yields_unread_body(fault_server: FaultServer) -> None:
    """stream() hands the body over in chunks rather than reading it first."""
    fault_server.route("GET", "/big", Fault.large(3_000_000, chunk=65536))
    total = 0
    async with (
        tether.Client(fault_server.url, retry=None, breaker=None) as client,
        client.stream("GET", "/big") as response,
    ):
        assert not response.is_stream_consumed
        async for chunk in response.aiter_bytes():
            total += len(chunk)
    assert total == 3_000_000


async def test_client_starts_lazily_and_refuses_use_after_close(fault_server: FaultServer) -> None:
    """No connection is made before the first call; a closed client says it is closed."""
    client = tether.Client(fault_server.url, retry=None, breaker=None)
    assert client._transport is None
    await client.get("/fast")
    await client.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await client.get("/fast")


def test_resilience_is_on_by_default_and_none_turns_it_off() -> None:
    """Default pipeline: deadline, retry, breaker; None disables each."""
    assert tether.Client("http://127.0.0.1:9").describe() == ["deadline", "retry", "breaker"]
    plain = tether.Client("http://127.0.0.1:9", timeout=None, retry=None, breaker=None)
    assert plain.describe() == []


def test_keywords_build_the_documented_order() -> None:
    """Every keyword policy lands in the fixed order, whatever the argument order."""
    client = tether.Client(
        "http://127.0.0.1:9",
        bulkhead=5,
        rate="10/second",
        timeout=tether.Timeouts(attempt=2, total=10),
        auth=tether.Bearer("t0ken-value-123"),
    )
    assert client.describe() == [
        "deadline",
        "retry",
        "breaker",
        "rate",
        "bulkhead",
        "auth",
        "attempt_timeout",
    ]


def test_a_policy_in_policies_replaces_the_default_of_its_kind() -> None:
    """policies=[Retry(...)] replaces the default retry instead of clashing with it."""
    custom = tether.Retry(attempts=2)
    client = tether.Client("http://127.0.0.1:9", policies=[custom])
    assert client.describe() == ["deadline", "retry", "breaker"]
    assert client.pipeline.policy("retry")._attempts == 2


def test_a_kind_given_twice_explicitly_is_refused() -> None:
    """A kind given by keyword and in policies is ambiguous and refused."""
    with pytest.raises(ValueError, match="one policy of each kind"):
        tether.Client("http://127.0.0.1:9", rate=Rate("1/second"), policies=[Rate("2/second")])


def test_repr_shows_no_credentials() -> None:
    """The client's repr masks credentials in its base URL."""
    client = tether.Client("https://user:hunter2secret@api.example.com/v1?api_key=abcd1234")
    assert "hunter2secret" not in repr(client)
    assert "abcd1234" not in repr(client)


async def test_connection_refused_is_a_connection_error() -> None:
    """Nothing listening: a typed ConnectionError, not an aiohttp or OS error."""
    async with tether.Client("http://127.0.0.1:9", retry=None, breaker=None) as client:
        with pytest.raises(errors.ConnectionError):
            await client.get("/x")


async def test_send_accepts_a_built_request(fault_server: FaultServer) -> None:
    """build_request + send is the two-step form of request()."""
    fault_server.route("GET", "/x", Fault.ok(json={"n": 1}))
    async with tether.Client(fault_server.url, retry=None, breaker=None) as client:
        request = client.build_request("GET", "/x", endpoint="x")
        assert isinstance(request, httpx2.Request)
        response = await client.send(request)
    assert response.json() == {"n": 1}


async def test_cache_and_fallback_keywords_join_the_pipeline(
    fault_server: FaultServer, tmp_path: object
) -> None:
    """cache= answers a repeat from the cache; fallback= serves a default when the upstream fails."""
    from tether.pipeline.fallback import Default

    fault_server.route("GET", "/cached", Fault.ok(json={"n": 1}))
    fault_server.route("GET", "/down", Fault.status(503))
    client = tether.Client(
        fault_server.url,
        retry=None,
        breaker=None,
        cache=tether.Cache(ttl=60),
        fallback=tether.Fallback(Default(json={"fallback": True})),
    )
    async with client:
        assert client.describe() == ["fallback", "cache", "deadline"]
        first = await client.get("/cached")
        second = await client.get("/cached")
        down = await client.get("/down")
    assert first.json() == second.json() == {"n": 1}
    assert len(fault_server.requests("GET", "/cached")) == 1
    assert down.json() == {"fallback": True}


async def test_closing_the_client_closes_policies_with_resources(tmp_path: object) -> None:
    """aclose() closes a cache's SQLite backend the client made."""
    from pathlib import Path

    db = Path(str(tmp_path)) / "cache.db"
    client = tether.Client("http://127.0.0.1:9", cache=tether.Cache(backend=f"sqlite:///{db}"))
    backend = client.pipeline.policy("cache")._backend
    assert not backend._db.closed
    await client.aclose()
    assert backend._db.closed
