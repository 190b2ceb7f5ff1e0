"""Credentials go only to the configured origin: other hosts, ports and schemes get none."""

from __future__ import annotations

import httpx2
import pytest
from auth_helpers import make_client

import tether.secret as ts
from tether.auth import ApiKey, Bearer, Combined, Headers
from tether.auth._base import origin_of, parse_origin
from tether.events import EventRecorder
from tether.mock import Fault, FaultServer
from tether.pipeline._base import PolicyEnv

KEY = "key-origin-6c1d2e"


def test_origins_compare_scheme_host_and_effective_port() -> None:
    """Default ports are filled in; scheme, host and port all count."""
    assert origin_of(httpx2.URL("https://API.example.com/v1")) == ("https", "api.example.com", 443)
    assert parse_origin("https://api.example.com:443/x") == parse_origin("https://api.example.com")
    assert parse_origin("http://api.example.com") != parse_origin("https://api.example.com")
    assert parse_origin("https://api.example.com:8443") != parse_origin("https://api.example.com")
    with pytest.raises(ValueError, match="absolute http"):
        parse_origin("/relative")


async def test_a_link_to_another_host_gets_no_credentials() -> None:
    """A request to another origin (a pagination link) is sent without the key, with an event."""
    recorder = EventRecorder()
    async with FaultServer() as api, FaultServer() as other:
        client = make_client(api.url, ApiKey(KEY, header="X-Discogs-Token"), listeners=[recorder])
        async with client:
            await client.get("/echo")
            await client.get(f"{other.url}/echo")
    assert api.log[0].header("x-discogs-token") == KEY
    assert other.log[0].header("x-discogs-token") is None
    (stripped,) = recorder.of("auth.credentials_stripped")
    assert stripped.fields["destination"] == other.url
    assert stripped.fields["origin"] == api.url


async def test_credentials_copied_onto_a_foreign_request_are_removed() -> None:
    """A next-page request built from a signed one (same headers and query) loses the credentials."""
    recorder = EventRecorder()
    async with FaultServer() as api, FaultServer() as other:
        options = Combined(ApiKey(KEY, query="api_key"), Headers({"X-Session": ts.value(KEY + "-s")}))
        client = make_client(api.url, options, listeners=[recorder])
        async with client:
            first = await client.get("/echo")
            signed = first.request
            copied = client.build_request(
                "GET", f"{other.url}/echo", params=dict(signed.url.params), headers=dict(signed.headers)
            )
            await client.send(copied)
    assert api.log[0].param("api_key") == KEY
    foreign = other.log[0]
    assert foreign.param("api_key") is None
    assert foreign.header("x-session") is None
    assert KEY not in foreign.target
    (stripped,) = recorder.of("auth.credentials_stripped")
    assert stripped.fields["removed_params"] == ["api_key"]
    assert stripped.fields["removed_headers"] == ["x-session"]


async def test_explicit_origin_wins_over_the_first_request() -> None:
    """With origin= set, even the first request elsewhere is sent without credentials."""
    async with FaultServer() as api, FaultServer() as other:
        client = make_client(None, Bearer(KEY, origin=api.url))
        async with client:
            await client.get(f"{other.url}/echo")
            await client.get(f"{api.url}/echo")
    assert other.log[0].header("authorization") is None
    assert api.log[0].header("authorization") == f"Bearer {KEY}"


async def test_the_base_url_origin_is_used_when_the_environment_gives_it() -> None:
    """A PolicyEnv carrying base_url pins the origin before any request."""

    class EnvWithBase:
        service = "svc"
        clock = PolicyEnv(service="svc").clock
        events = PolicyEnv(service="svc").events
        store = None
        base_url = "https://api.example.com/v1/"

    policy = ApiKey(KEY).build(EnvWithBase())  # type: ignore[arg-type]
    assert policy.origin == "https://api.example.com"


async def test_a_redirect_to_another_host_drops_custom_credential_headers() -> None:
    """A redirect off the origin arrives without the key, even under a custom header name."""
    async with FaultServer() as api, FaultServer() as other:
        api.route("GET", "/moved", Fault.redirect(f"{other.url}/echo"))
        options = ApiKey(KEY, header="X-Discogs-Token")
        client = make_client(api.url, options, follow_redirects=True)
        async with client:
            response = await client.get("/moved")
    assert response.status_code == 200
    assert api.log[0].header("x-discogs-token") == KEY
    assert other.log[0].header("x-discogs-token") is None
