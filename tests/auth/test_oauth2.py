"""OAuth 2.0 end to end against a loopback provider: lazy fetch, caching, single-flight refresh,
401 replay, provider errors, refresh-token rotation, shared state."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from typing import Any

import pytest
from auth_helpers import Provider, make_client

import tether.secret as ts
from tether.auth import OAuth2ClientCredentials, OAuth2RefreshToken
from tether.errors import AuthenticationError
from tether.events import EventRecorder
from tether.mock import Fault, FaultServer
from tether.state.memory import MemoryStore
from tether.testing import VirtualClock


def _cc(provider: Provider, **kwargs: Any) -> OAuth2ClientCredentials:
    return OAuth2ClientCredentials(provider.token_url, provider.client_id, provider.client_secret, **kwargs)


def _refresh(provider: Provider, **kwargs: Any) -> OAuth2RefreshToken:
    return OAuth2RefreshToken(
        provider.token_url,
        provider.client_id,
        provider.client_secret,
        refresh_token=ts.value("rt-0"),
        **kwargs,
    )


async def test_the_token_is_fetched_lazily_on_first_use(provider: Provider) -> None:
    """Starting the client fetches nothing; the first call fetches one token, later calls reuse it."""
    client = make_client(provider.url, _cc(provider))
    async with client:
        await client.pipeline.policy("auth").check()
        assert provider.token_calls == []
        for _ in range(3):
            response = await client.get("/api")
            assert response.json() == {"ok": True, "token": "at-1"}
    assert len(provider.token_calls) == 1
    call = provider.token_calls[0]
    assert call.form == {"grant_type": "client_credentials"}
    assert call.authorization == "Basic " + base64.b64encode(b"client-1:client-secret-1").decode()
    assert provider.api_calls == ["Bearer at-1"] * 3


async def test_client_auth_in_the_body_with_scopes_audience_and_extra(provider: Provider) -> None:
    """client_auth='body' sends the client in the form, with scope, audience and extra fields."""
    options = _cc(
        provider,
        client_auth="body",
        scopes=["read", "write"],
        audience="https://api",
        extra={"resource": "r1"},
    )
    client = make_client(provider.url, options)
    async with client:
        await client.get("/api")
    (call,) = provider.token_calls
    assert call.authorization is None
    assert call.form == {
        "grant_type": "client_credentials",
        "scope": "read write",
        "audience": "https://api",
        "resource": "r1",
        "client_id": "client-1",
        "client_secret": "client-secret-1",
    }


async def test_200_concurrent_calls_at_expiry_cause_one_token_request(provider: Provider) -> None:
    """When the token has expired, 200 calls at once share exactly one token request."""
    clock = VirtualClock()
    provider.token_delay = 0.05
    client = make_client(provider.url, _cc(provider), clock=clock)
    async with client:
        await client.get("/api")
        clock.advance(3600)
        responses = await asyncio.gather(*(client.get("/api") for _ in range(200)))
    assert len(provider.token_calls) == 2
    assert {r.json()["token"] for r in responses} == {"at-2"}


async def test_the_token_is_replaced_before_it_expires(provider: Provider) -> None:
    """Within `leeway` of expiry the token is replaced while the old one is still valid."""
    clock = VirtualClock()
    client = make_client(provider.url, _cc(provider, leeway=60), clock=clock)
    async with client:
        await client.get("/api")
        clock.advance(3500)
        assert (await client.get("/api")).json()["token"] == "at-1"
        clock.advance(50)  # 3550 s: inside the 60 s leeway, 50 s before expiry
        assert (await client.get("/api")).json()["token"] == "at-2"
    assert len(provider.token_calls) == 2
    assert "at-1" in provider.valid_access  # the old token had not expired: it was replaced early


async def test_a_missing_expires_in_uses_the_default_lifetime(provider: Provider) -> None:
    """Without expires_in the token lives `default_expires_in`."""
    clock = VirtualClock()
    provider.expires_in = None
    client = make_client(provider.url, _cc(provider, default_expires_in="10m", leeway=0), clock=clock)
    async with client:
        await client.get("/api")
        clock.advance(599)
        await client.get("/api")
        assert len(provider.token_calls) == 1
        clock.advance(1)
        await client.get("/api")
    assert len(provider.token_calls) == 2


async def test_a_401_refreshes_once_and_replays_once(provider: Provider) -> None:
    """A revoked token: 401, one token request, one replay with the new token."""
    recorder = EventRecorder()
    client = make_client(provider.url, _cc(provider), listeners=[recorder])
    async with client:
        await client.get("/api")
        provider.revoke_access()
        response = await client.get("/api")
    assert response.json()["token"] == "at-2"
    assert len(provider.token_calls) == 2
    assert provider.api_calls == ["Bearer at-1", "Bearer at-1", "Bearer at-2"]
    reasons = [e.fields["reason"] for e in recorder.of("auth.token_refreshed")]
    assert reasons == ["initial", "rejected"]


async def test_many_401s_with_one_token_cause_one_refresh(provider: Provider) -> None:
    """Fifty calls refused with the same revoked token share one refresh."""
    client = make_client(provider.url, _cc(provider))
    async with client:
        await client.get("/api")
        provider.revoke_access()
        responses = await asyncio.gather(*(client.get("/api") for _ in range(50)))
    assert len(provider.token_calls) == 2
    assert {r.json()["token"] for r in responses} == {"at-2"}


async def test_a_second_401_raises_without_a_loop(provider: Provider) -> None:
    """When the replay is refused too, AuthenticationError is raised: two API requests, two tokens."""
    provider.reject_api = True
    client = make_client(provider.url, _cc(provider))
    async with client:
        with pytest.raises(AuthenticationError) as info:
            await client.get("/api")
    assert info.value.status_code == 401
    assert len(provider.api_calls) == 2
    assert len(provider.token_calls) == 2


async def test_invalid_client_is_an_authentication_error_with_the_description(provider: Provider) -> None:
    """A refused client gets the provider's error and description; the API is never called."""
    options = OAuth2ClientCredentials(provider.token_url, provider.client_id, "wrong-secret-xyz")
    client = make_client(provider.url, options)
    async with client:
        with pytest.raises(AuthenticationError) as info:
            await client.get("/api")
    error = info.value
    assert "invalid_client" in str(error)
    assert "Client authentication failed" in str(error)
    assert error.title == "invalid_client"
    assert error.detail == "Client authentication failed"
    assert error.status_code == 401
    assert provider.api_calls == []
    assert len(provider.token_calls) == 1  # a refusal is not retried


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            400,
            {"error": "invalid_scope", "error_description": "scope 'admin' is not allowed"},
            "invalid_scope",
        ),
        (400, {"error": "unauthorized_client"}, "unauthorized_client"),
        (403, {"unexpected": True}, "answered HTTP 403"),
        (200, {"token_type": "Bearer"}, "without an access_token"),
        (200, {"access_token": "x-1", "token_type": "mac"}, "tether sends bearer tokens"),
    ],
)
async def test_token_endpoint_failures(
    provider: Provider, status: int, body: dict[str, Any], expected: str
) -> None:
    """RFC 6749 errors, other failures and unusable token responses become AuthenticationError."""
    provider.token_error = (status, body)
    client = make_client(provider.url, _cc(provider))
    async with client:
        with pytest.raises(AuthenticationError, match=expected):
            await client.get("/api")
    assert provider.api_calls == []


async def test_a_token_endpoint_5xx_is_retried_once() -> None:
    """A transient 503 from the token endpoint is tried again once, then the call goes on."""
    clock = VirtualClock()
    async with FaultServer() as server:
        token = {"access_token": "at-fs-1", "token_type": "bearer", "expires_in": 60}
        server.route("POST", "/token", Fault.status(503), Fault.ok(json=token))
        options = OAuth2ClientCredentials(f"{server.url}/token", "cid", "csecret-1")
        client = make_client(server.url, options, clock=clock)
        async with client:
            response = await client.get("/echo")
    assert response.json()["headers"]["authorization"] == "Bearer at-fs-1"
    assert len(server.requests("POST", "/token")) == 2


async def test_a_non_json_token_failure_is_reported(fault_server: FaultServer) -> None:
    """A token endpoint answering 502 HTML twice is reported as an AuthenticationError."""
    fault_server.route("POST", "/token", Fault.status(502, body=b"<html>bad gateway</html>"))
    options = OAuth2ClientCredentials(f"{fault_server.url}/token", "cid", "csecret-1", token_retries=0)
    client = make_client(fault_server.url, options)
    async with client:
        with pytest.raises(AuthenticationError, match="answered HTTP 502"):
            await client.get("/echo")


async def test_an_unreachable_token_endpoint_is_an_authentication_error() -> None:
    """Connection refused at the token endpoint: AuthenticationError caused by the ConnectionError."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    options = OAuth2ClientCredentials(f"http://127.0.0.1:{port}/token", "cid", "csecret-1", token_retries=0)
    async with FaultServer() as server:
        client = make_client(server.url, options)
        async with client:
            with pytest.raises(AuthenticationError, match=r"token request to .* failed") as info:
                await client.get("/echo")
        assert server.log == []
    assert info.value.__cause__ is not None


async def test_a_rotated_refresh_token_is_used_next_time(provider: Provider) -> None:
    """A new refresh_token in a token response replaces the old one, in memory and in the store."""
    provider.rotate_refresh = True
    store = MemoryStore()
    recorder = EventRecorder()
    client = make_client(provider.url, _refresh(provider), state=store, listeners=[recorder])
    async with client:
        await client.get("/api")
        provider.revoke_access()
        response = await client.get("/api")
    assert response.json()["token"] == "at-2"
    assert [c.form["refresh_token"] for c in provider.token_calls] == ["rt-0", "rt-1"]
    rotated = [e.fields["refresh_token_rotated"] for e in recorder.of("auth.token_refreshed")]
    assert rotated == [True, True]

    # A worker started later reads the newest refresh token from the store, not the stale source.
    key = _refresh(provider).cache_key(client.service)
    stored = json.loads(await store.get(key, now=client._clock.time()) or b"{}")
    assert stored["refresh_token"] == "rt-2"
    provider.revoke_access()
    later = make_client(provider.url, _refresh(provider), state=store)
    async with later:
        assert (await later.get("/api")).json()["token"] == "at-3"
    assert provider.token_calls[-1].form["refresh_token"] == "rt-2"


async def test_a_public_client_sends_its_id_in_the_form(provider: Provider) -> None:
    """Without a client secret the refresh grant sends client_id in the body."""
    options = OAuth2RefreshToken(provider.token_url, provider.client_id, refresh_token="rt-0")
    client = make_client(provider.url, options)
    async with client:
        await client.get("/api")
    (call,) = provider.token_calls
    assert call.authorization is None
    assert call.form == {"grant_type": "refresh_token", "refresh_token": "rt-0", "client_id": "client-1"}


async def test_invalid_grant_tries_a_changed_source_once(
    provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the stored refresh token is refused and the source now holds a new one, that one is tried."""
    monkeypatch.setenv("TETHER_T_RT", "rt-0")
    store = MemoryStore()

    def options() -> OAuth2RefreshToken:
        return OAuth2RefreshToken(
            provider.token_url,
            provider.client_id,
            provider.client_secret,
            refresh_token=ts.env("TETHER_T_RT"),
        )

    provider.rotate_refresh = True
    async with make_client(provider.url, options(), state=store) as client:
        await client.get("/api")  # rt-0 -> rt-1 (stored)
    provider.valid_refresh = {"rt-reauthorised"}  # the user re-authorised the app
    provider.revoke_access()
    monkeypatch.setenv("TETHER_T_RT", "rt-reauthorised")
    async with make_client(provider.url, options(), state=store) as client:
        await client.pipeline.policy("auth").check()
        monkeypatch.setenv("TETHER_T_RT", "rt-reauthorised")
        assert (await client.get("/api")).status_code == 200
    assert [c.form["refresh_token"] for c in provider.token_calls] == ["rt-0", "rt-1", "rt-reauthorised"]


async def test_workers_sharing_a_store_fetch_one_token(provider: Provider) -> None:
    """Two clients (two workers) sharing a state store: 100 concurrent calls, one token request."""
    provider.token_delay = 0.1
    store = MemoryStore()
    first = make_client(provider.url, _cc(provider), state=store)
    second = make_client(provider.url, _cc(provider), state=store)
    async with first, second:
        calls = [c.get("/api") for _ in range(50) for c in (first, second)]
        responses = await asyncio.gather(*calls)
    assert len(provider.token_calls) == 1
    assert {r.json()["token"] for r in responses} == {"at-1"}


async def test_the_stored_token_is_namespaced_json(provider: Provider) -> None:
    """The token sits in the store as JSON under service + a hash of token URL and client id."""
    store = MemoryStore()
    client = make_client(provider.url, _cc(provider), state=store, service="fred")
    async with client:
        await client.get("/api")
    key = _cc(provider).cache_key("fred")
    assert key.startswith("fred:auth:token:")
    assert provider.client_id not in key
    assert key != _cc(provider, scopes=["other"]).cache_key("fred")
    raw = await store.get(key, now=client._clock.time())
    assert raw is not None
    assert json.loads(raw)["access_token"] == "at-1"


async def test_status_shows_token_state_not_the_token(provider: Provider) -> None:
    """status() reports whether a token is held and for how long, never its value."""
    client = make_client(provider.url, _cc(provider))
    async with client:
        policy = client.pipeline.policy("auth")
        assert policy.status()["token"] == "none"
        await client.get("/api")
        status = policy.status()
    assert status["token"] == "valid"
    assert status["token_requests"] == 1
    assert "at-1" not in repr(status)


def test_options_are_validated() -> None:
    """Bad OAuth2 options raise ValueError stating the rule."""
    with pytest.raises(ValueError, match="https"):
        OAuth2ClientCredentials("http://auth.example.com/token", "cid", "s")
    OAuth2ClientCredentials("http://auth.example.com/token", "cid", "s", allow_insecure_token_url=True)
    with pytest.raises(ValueError, match="needs a client_secret"):
        OAuth2ClientCredentials("https://auth.example.com/token", "cid")
    with pytest.raises(ValueError, match="must not set"):
        OAuth2ClientCredentials("https://a.example.com/t", "cid", "s", extra={"grant_type": "password"})
    with pytest.raises(ValueError, match="client_auth"):
        OAuth2ClientCredentials("https://a.example.com/t", "cid", "s", client_auth="jwt")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a refresh_token"):
        OAuth2RefreshToken("https://a.example.com/t", "cid")
