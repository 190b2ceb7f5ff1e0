"""The static and custom schemes: where each puts its credential, and how each handles a 401."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx2
import pytest
from auth_helpers import make_client

import tether
import tether.secret as ts
from tether._redact import registry
from tether.auth import (
    ApiKey,
    Basic,
    Bearer,
    Combined,
    Custom,
    Headers,
    HttpxAuth,
    OAuth2ClientCredentials,
    as_auth,
)
from tether.errors import AuthenticationError, RequestValidationError
from tether.events import EventRecorder
from tether.mock import Fault, FaultServer

KEY = "key-3b8e5d1f"


async def _echo(options: Any, method: str = "GET", path: str = "/echo", **kwargs: Any) -> dict[str, Any]:
    async with FaultServer() as server:
        client = make_client(server.url, options)
        async with client:
            response = await client.request(method, path, **kwargs)
    data: dict[str, Any] = response.json()
    return data


# --- ApiKey ------------------------------------------------------------------------------------


async def test_api_key_in_the_default_header() -> None:
    """ApiKey puts the key in X-API-Key by default."""
    echoed = await _echo(ApiKey(KEY))
    assert echoed["headers"]["x-api-key"] == KEY


async def test_api_key_header_template_for_custom_formats() -> None:
    """A template formats the header value (Discogs: 'Discogs token=<key>' on Authorization)."""
    echoed = await _echo(ApiKey(KEY, header="Authorization", template="Discogs token={secret}"))
    assert echoed["headers"]["authorization"] == f"Discogs token={KEY}"


async def test_api_key_in_the_query() -> None:
    """query= adds the key as a query parameter, keeping the others."""
    echoed = await _echo(ApiKey(KEY, query="apikey"), params={"series": "GDP"})
    assert echoed["query"] == {"series": ["GDP"], "apikey": [KEY]}
    assert "x-api-key" not in echoed["headers"]


async def test_api_key_in_a_json_body() -> None:
    """body_field= adds the key to a JSON object body."""
    echoed = await _echo(ApiKey(KEY, body_field="api_key"), "POST", json={"q": "abba"})
    assert json.loads(echoed["body"]) == {"q": "abba", "api_key": KEY}


async def test_api_key_in_a_form_body_and_an_empty_body() -> None:
    """body_field= adds the key to a form body, or makes a form body when there is none."""
    echoed = await _echo(ApiKey(KEY, body_field="key"), "POST", data={"a": "1"})
    assert echoed["body"] == f"a=1&key={KEY}"
    assert echoed["headers"]["content-length"] == str(len(echoed["body"]))
    echoed = await _echo(ApiKey(KEY, body_field="key"), "POST")
    assert echoed["body"] == f"key={KEY}"
    assert echoed["headers"]["content-type"] == "application/x-www-form-urlencoded"


async def test_api_key_body_field_refuses_other_bodies() -> None:
    """A body that cannot carry a field (raw bytes) is refused before sending."""
    async with FaultServer() as server:
        client = make_client(server.url, ApiKey(KEY, body_field="key"))
        async with client:
            with pytest.raises(RequestValidationError, match="needs a JSON or form body"):
                await client.post(
                    "/echo", content=b"\x00raw", headers={"Content-Type": "application/octet-stream"}
                )
        assert server.log == []


def test_api_key_options_are_validated() -> None:
    """One placement only; the template needs {secret}; header names must be tokens."""
    with pytest.raises(ValueError, match="one place"):
        ApiKey(KEY, header="X-Key", query="key")
    with pytest.raises(ValueError, match="must contain"):
        ApiKey(KEY, template="Token abc")
    with pytest.raises(ValueError, match="header name"):
        ApiKey(KEY, header="Bad Header")
    with pytest.raises(ValueError, match="origin"):
        ApiKey(KEY, origin="ftp://example.com")


def test_options_reprs_hide_the_secret() -> None:
    """Options built from plain strings show no value in their repr."""
    for options in (
        ApiKey(KEY),
        Bearer(KEY),
        Basic("user", KEY),
        Headers({"X-Token": ts.Secret(KEY), "User-Agent": "app/1"}),
        OAuth2ClientCredentials("https://auth.example.com/token", "cid", KEY),
        Combined(ApiKey(KEY), Headers({"User-Agent": "app/1"})),
    ):
        assert KEY not in repr(options)
    assert "app/1" in repr(Headers({"User-Agent": "app/1"}))


async def test_custom_header_names_are_registered_for_masking() -> None:
    """Building an ApiKey with a custom header adds that name to the redaction registry."""
    ApiKey(KEY, header="X-Discogs-Token").build(_env())
    assert registry.is_sensitive_header("x-discogs-token")
    ApiKey(KEY, query="my_key").build(_env())
    assert registry.is_sensitive_param("my_key")


def _env() -> Any:
    from tether.pipeline._base import PolicyEnv

    return PolicyEnv(service="svc")


# --- Bearer, Basic, Headers ----------------------------------------------------------------------


async def test_bearer() -> None:
    """Bearer sends Authorization: Bearer <token>."""
    echoed = await _echo(Bearer(ts.value(KEY)))
    assert echoed["headers"]["authorization"] == f"Bearer {KEY}"


async def test_basic() -> None:
    """Basic sends base64(user:password) (RFC 7617)."""
    echoed = await _echo(Basic("alice", KEY))
    raw = base64.b64decode(echoed["headers"]["authorization"].removeprefix("Basic ")).decode()
    assert raw == f"alice:{KEY}"


async def test_basic_with_a_secret_username() -> None:
    """A username from a source is read like the password."""
    echoed = await _echo(Basic(ts.value("svc-user-7"), ts.value(KEY)))
    raw = base64.b64decode(echoed["headers"]["authorization"].removeprefix("Basic ")).decode()
    assert raw == f"svc-user-7:{KEY}"


async def test_headers_adds_fixed_and_secret_headers() -> None:
    """Headers adds plain and secret headers to each request."""
    echoed = await _echo(
        Headers({"User-Agent": "my-app/2.0 (ops@example.com)", "X-Tenant-Key": ts.value(KEY)})
    )
    assert echoed["headers"]["user-agent"] == "my-app/2.0 (ops@example.com)"
    assert echoed["headers"]["x-tenant-key"] == KEY


# --- Custom, HttpxAuth, Combined ---------------------------------------------------------------


async def test_custom_sync_function_mutates_the_request() -> None:
    """A sync function may change the request in place."""

    def sign(request: httpx2.Request) -> None:
        request.headers["X-Signature"] = "sig-" + request.method

    echoed = await _echo(Custom(sign, headers=["X-Signature"]))
    assert echoed["headers"]["x-signature"] == "sig-GET"


async def test_custom_async_function_returns_a_new_request() -> None:
    """An async function may return a new request (the call's context is carried over)."""

    async def sign(request: httpx2.Request) -> httpx2.Request:
        return httpx2.Request(
            request.method, request.url.copy_set_param("sig", "s1"), headers=request.headers
        )

    echoed = await _echo(Custom(sign, params=["sig"]))
    assert echoed["query"] == {"sig": ["s1"]}


async def test_httpx_digest_auth_flow_answers_the_challenge() -> None:
    """An httpx2.DigestAuth flow gets the 401 challenge and sends its follow-up request."""
    challenge = 'Digest realm="tether", nonce="abc123", qop="auth", algorithm=MD5'
    async with FaultServer() as server:
        server.route(
            "GET", "/digest", Fault.status(401, headers={"WWW-Authenticate": challenge}), Fault.echo()
        )
        client = make_client(server.url, HttpxAuth(httpx2.DigestAuth("alice", KEY)))
        async with client:
            response = await client.get("/digest")
    assert response.status_code == 200
    first, second = server.log
    assert first.header("authorization") is None
    assert (second.header("authorization") or "").startswith('Digest username="alice"')


async def test_httpx_auth_flow_that_gives_up_raises_the_401() -> None:
    """When the flow does not answer a 401, the AuthenticationError is raised."""
    async with FaultServer() as server:
        server.route("GET", "/x", Fault.status(401))
        client = make_client(server.url, as_auth(httpx2.BasicAuth("alice", KEY)))
        async with client:
            with pytest.raises(AuthenticationError) as info:
                await client.get("/x")
    assert info.value.status_code == 401
    assert len(server.log) == 1


async def test_combined_applies_every_part() -> None:
    """Combined(key, headers) sends both."""
    options = Combined(ApiKey(KEY, header="X-Discogs-Token"), Headers({"User-Agent": "crate-digger/1.0"}))
    echoed = await _echo(options)
    assert echoed["headers"]["x-discogs-token"] == KEY
    assert echoed["headers"]["user-agent"] == "crate-digger/1.0"


def test_as_auth_normalises_loose_input() -> None:
    """Options pass through; httpx2.Auth, (user, password) and functions are wrapped."""
    key = ApiKey(KEY)
    assert as_auth(key) is key
    assert isinstance(as_auth(httpx2.BasicAuth("a", "b")), HttpxAuth)
    assert isinstance(as_auth(("alice", KEY)), Basic)
    assert isinstance(as_auth(lambda r: r), Custom)
    with pytest.raises(TypeError):
        as_auth(42)  # type: ignore[arg-type]


def test_options_are_immutable() -> None:
    """Options objects cannot be changed after they are made."""
    with pytest.raises(AttributeError):
        ApiKey(KEY).header = "X-Other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        Combined(ApiKey(KEY)).origin = "http://x"  # type: ignore[misc]


# --- 401 with a static credential --------------------------------------------------------------


async def test_401_rereads_a_rotated_key_and_replays_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a 401 the source is re-read; a new value is used for one replay."""
    monkeypatch.setenv("TETHER_T_401", "old-key-1111")
    recorder = EventRecorder()
    async with FaultServer() as server:
        server.route("GET", "/x", Fault.status(401), Fault.echo())
        client = make_client(server.url, ApiKey(ts.env("TETHER_T_401")), listeners=[recorder])
        async with client:
            await client.pipeline.policy("auth").check()
            monkeypatch.setenv("TETHER_T_401", "new-key-2222")
            response = await client.get("/x")
    assert response.status_code == 200
    assert [r.header("x-api-key") for r in server.log] == ["old-key-1111", "new-key-2222"]
    assert recorder.names().count("auth.secret_rotated") == 1


async def test_401_with_an_unchanged_key_is_raised_without_a_replay() -> None:
    """When re-reading yields the same key, the 401 is raised at once (no pointless replay)."""
    async with FaultServer() as server:
        server.route("GET", "/x", Fault.status(401), Fault.echo())
        client = make_client(server.url, ApiKey(KEY))
        async with client:
            with pytest.raises(AuthenticationError) as info:
                await client.get("/x")
    assert info.value.status_code == 401
    assert len(server.log) == 1


async def test_a_second_401_is_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    """A replay that is refused again raises AuthenticationError: no loop."""
    monkeypatch.setenv("TETHER_T_401B", "old-key-3333")
    async with FaultServer() as server:
        server.route("GET", "/x", Fault.status(401))
        client = make_client(server.url, Bearer(ts.env("TETHER_T_401B")))
        async with client:
            await client.pipeline.policy("auth").check()
            monkeypatch.setenv("TETHER_T_401B", "new-key-4444")
            with pytest.raises(AuthenticationError):
                await client.get("/x")
    assert len(server.log) == 2


async def test_403_is_not_replayed() -> None:
    """403 (forbidden, not unauthenticated) is raised without re-reading or replaying."""
    async with FaultServer() as server:
        server.route("GET", "/x", Fault.status(403))
        client = make_client(server.url, ApiKey(KEY))
        async with client:
            with pytest.raises(AuthenticationError) as info:
                await client.get("/x")
    assert info.value.status_code == 403
    assert len(server.log) == 1


async def test_the_callers_request_is_never_signed() -> None:
    """The auth stage signs a copy: the request the caller built holds no credential."""
    async with FaultServer() as server:
        client = make_client(server.url, ApiKey(KEY))
        async with client:
            request = client.build_request("GET", "/echo")
            response = await client.send(request)
    assert "x-api-key" not in request.headers
    assert response.json()["headers"]["x-api-key"] == KEY


async def test_combined_lets_the_part_whose_secret_rotated_replay(monkeypatch: pytest.MonkeyPatch) -> None:
    """In Combined, a 401 reaches every part; the one whose secret changed replays once."""
    monkeypatch.setenv("TETHER_T_COMB", "bearer-old-5555")
    async with FaultServer() as server:
        server.route("GET", "/x", Fault.status(401), Fault.echo())
        client = make_client(server.url, Combined(Bearer(ts.env("TETHER_T_COMB")), ApiKey(KEY)))
        async with client:
            await client.pipeline.policy("auth").check()
            monkeypatch.setenv("TETHER_T_COMB", "bearer-new-6666")
            response = await client.get("/x")
    assert response.status_code == 200
    assert [r.header("authorization") for r in server.log] == [
        "Bearer bearer-old-5555",
        "Bearer bearer-new-6666",
    ]
    assert {r.header("x-api-key") for r in server.log} == {KEY}


async def test_the_client_auth_keyword(monkeypatch: pytest.MonkeyPatch) -> None:
    """Client(auth=ApiKey(header=..., secret=env(...))) signs requests (the DESIGN 2.2 example)."""
    monkeypatch.setenv("EXAMPLE_API_KEY", KEY)
    async with FaultServer() as server:
        options = ApiKey(header="X-API-Key", secret=ts.env("EXAMPLE_API_KEY"))
        async with tether.Client(server.url, auth=options, retry=None, breaker=None) as client:
            response = await client.get("/echo")
    assert response.json()["headers"]["x-api-key"] == KEY
