"""The cache policy, in virtual time: hits, TTLs, stale-if-error, coalescing, revalidation, keys.

An upstream is a scripted ``next`` (see ``conftest.py``); end-to-end checks through
``tether.Client`` and the fault server are in ``test_cache_client.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx2
import pytest

from tether import events as ev
from tether._context import context_of
from tether.cache import MemoryCache
from tether.errors import (
    APIError,
    CircuitOpenError,
    ConnectionError,
    NotFoundError,
    RateLimitExceeded,
    StateStoreError,
    TimeoutError,
)
from tether.events import EventBus, EventRecorder
from tether.pipeline._base import PolicyEnv
from tether.pipeline.cache import (
    CACHE_ERROR,
    CACHE_MODE_KEY,
    STALE_LOOKUP_KEY,
    Cache,
    CachePolicy,
    _normalise,
)
from tether.testing import VirtualClock

MakeRequest = Callable[..., httpx2.Request]
Script = Callable[..., Any]


def meta(response: httpx2.Response) -> dict[str, Any]:
    """The call's ``CallContext.meta`` (the cache fills from_cache, stale, revalidated, cache)."""
    return context_of(response.request).meta


async def get(
    policy: CachePolicy, upstream: Any, make_request: MakeRequest, url: str = "items/1", **kw: Any
) -> httpx2.Response:
    """GET ``url`` through ``policy`` with ``upstream`` as the next handler."""
    return await policy(make_request("GET", url, **kw), upstream)


# --- hits and TTLs -----------------------------------------------------------------------------


async def test_a_fresh_entry_answers_without_calling_upstream(
    env: PolicyEnv, script: Script, reply: Any, make_request: MakeRequest, recorder: EventRecorder
) -> None:
    """The second GET is served from the cache: same status, headers and body, a new Response object."""
    policy = Cache(ttl=30).build(env)
    upstream = script(reply(200, headers={"X-Req": "1"}, json={"v": 1}))
    first = await get(policy, upstream, make_request)
    second = await get(policy, upstream, make_request)
    assert upstream.calls == 1
    assert second is not first
    assert (second.status_code, second.json(), second.headers["x-req"]) == (200, {"v": 1}, "1")
    assert meta(first)["from_cache"] is False
    assert meta(second) | {"cache_age": 0} == {
        "from_cache": True,
        "stale": False,
        "revalidated": False,
        "cache": "hit",
        "cache_age": 0,
    }
    assert [n for n in recorder.names() if n.startswith("cache.")] == [ev.CACHE_MISS, ev.CACHE_HIT]
    status = policy.status()
    assert (status.entries, status.hits, status.misses) == (1, 1, 1)
    assert status.bytes > 0


async def test_an_entry_expires_after_its_ttl_in_virtual_time(
    env: PolicyEnv, clock: VirtualClock, script: Script, reply: Any, make_request: MakeRequest
) -> None:
    """Fresh up to ttl - ε; at ttl the next GET goes upstream again and is stored anew."""
    policy = Cache(ttl="30s").build(env)
    upstream = script(reply(json={"v": 1}), reply(json={"v": 2}))
    await get(policy, upstream, make_request)
    clock.advance(29.999)
    assert (await get(policy, upstream, make_request)).json() == {"v": 1}
    clock.advance(0.001)
    assert (await get(policy, upstream, make_request)).json() == {"v": 2}
    assert (await get(policy, upstream, make_request)).json() == {"v": 2}
    assert upstream.calls == 2


async def test_ttls_per_endpoint_by_name_glob_and_preset(
    clock: VirtualClock, script: Script, reply: Any, make_request: MakeRequest
) -> None:
    """An endpoint name beats a path glob; globs are relative to the base URL; presets name TTLs."""
    env = PolicyEnv("svc", clock=clock, base_url="https://api.test/v1/")
    policy = Cache(
        ttl="data",
        ttl_by_endpoint={"get_meta": "metadata", "/historical/*": "historical_daily", "/weekly/*": "24h"},
    ).build(env)
    upstream = script(reply(json={}))
    await get(policy, upstream, make_request, "items/1")
    await get(policy, upstream, make_request, "historical/A")
    await get(policy, upstream, make_request, "historical/B", endpoint="get_meta")
    await get(policy, upstream, make_request, "weekly/C")
    clock.advance(30.0)  # data (30 s) expired; the others are fresh
    await get(policy, upstream, make_request, "items/1")
    await get(policy, upstream, make_request, "historical/A")
    clock.advance(3600.0)  # historical_daily (1 h) expired
    await get(policy, upstream, make_request, "historical/A")
    await get(policy, upstream, make_request, "historical/B", endpoint="get_meta")
    await get(policy, upstream, make_request, "weekly/C")
    assert [r.url.path for r in upstream.requests] == [
        "/v1/items/1",
        "/v1/historical/A",
        "/v1/historical/B",
        "/v1/weekly/C",
        "/v1/items/1",
        "/v1/historical/A",
    ]
    assert Cache.PRESETS["historical_weekly"] == 86400.0


async def test_only_get_and_head_are_cached_and_unsafe_methods_invalidate_the_url(
    env: PolicyEnv, script: Script, reply: Any, make_request: MakeRequest
) -> None:
    """POST always goes upstream; a successful POST to a URL drops that URL's cached GET."""
    policy = Cache().build(env)
    upstream = script(reply(json={"n": 1}))
    await get(policy, upstream, make_request)
    await policy(make_request("HEAD", "items/1"), upstream)
    await policy(make_request("HEAD", "items/1"), upstream)
    for _ in range(2):
        await policy(make_request("POST", "items/1", json={}), upstream)
    assert [r.method for r in upstream.requests] == ["GET", "HEAD", "POST", "POST"]
    await get(policy, upstream, make_request)
    assert upstream.calls == 5


# --- stale-if-error ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        ConnectionError("reset"),
        TimeoutError("read timed out"),
        APIError("HTTP 503", status_code=503),
        RateLimitExceeded("HTTP 429", status_code=429, retry_after=60),
        CircuitOpenError("open", retry_after=30),
    ],
    ids=["connection", "timeout", "5xx", "429", "circuit_open"],
)
async def test_an_expired_entry_answers_when_the_upstream_fails(
    env: PolicyEnv,
    clock: VirtualClock,
    script: Script,
    reply: Any,
    make_request: MakeRequest,
    recorder: EventRecorder,
    failure: Exception,
) -> None:
    """Within stale_if_error, a failure is answered by the expired entry, marked stale."""
    policy = Cache(ttl=10, stale_if_error="1h").build(env)
    upstream = script(reply(json={"v": "old"}), failure)
    await get(policy, upstream, make_request)
    clock.advance(60.0)
    response = await get(policy, upstream, make_request)
    assert response.json() == {"v": "old"}
    assert meta(response)["stale"] is True
    assert meta(response)["from_cache"] is True
    (event,) = recorder.of(ev.CACHE_STALE_SERVED)
    assert event.fields["error"] == type(failure).__name__
    assert event.fields["stale_for"] == pytest.approx(50.0)
    assert policy.status().stale_served == 1


async def test_stale_answers_end_with_the_window_and_never_cover_client_errors(
    env: PolicyEnv, clock: VirtualClock, script: Script, reply: Any, make_request: MakeRequest
) -> None:
    """A 404 is raised even with an entry; past expires + stale_if_error the failure is raised."""
    policy = Cache(ttl=10, stale_if_error=100).build(env)
    upstream = script(
        reply(json={}), NotFoundError("HTTP 404", status_code=404), APIError("x", status_code=500)
    )
    await get(policy, upstream, make_request)
    clock.advance(20.0)
    with pytest.raises(NotFoundError):
        await get(policy, upstream, make_request)
    assert meta(await get(policy, upstream, make_request))["stale"] is True  # 500 at t=20
    clock.advance(90.0)  # t=110: expired at 10, stale window ended at 110
    with pytest.raises(APIError):
        await get(policy, upstream, make_request)


async def test_without_stale_if_error_failures_are_raised(
    env: PolicyEnv, clock: VirtualClock, script: Script, reply: Any, make_request: MakeRequest
) -> None:
    """stale_if_error=None (the default) never answers a failure from the cache."""
    policy = Cache(ttl=10).build(env)
    upstream = script(reply(json={}), ConnectionError("down"))
    await get(policy, upstream, make_request)
    clock.advance(11.0)
    with pytest.raises(ConnectionError):
        await get(policy, upstream, make_request)


# --- coalescing --------------------------------------------------------------------------------


async def test_concurrent_identical_misses_share_one_upstream_call(
    env: PolicyEnv, script: Script, reply: Any, make_request: MakeRequest
) -> None:
    """Fifty concurrent GETs of a cold key make one upstream call; each caller gets its own copy."""
    policy = Cache().build(env)
    upstream = script(reply(json={"v": 1}, delay=1.0))
    responses = await asyncio.gather(*(get(policy, upstream, make_request) for _ in range(50)))
    assert upstream.calls == 1
    assert len({id(r) for r in responses}) == 50
    assert all(r.json() == {"v": 1} for r in responses)
    assert sum(1 for r in responses if meta(r).get("coalesced")) == 49
    assert policy.status().coalesced == 49


async def test_when_the_leader_fails_every_waiter_gets_the_error(
    env: PolicyEnv, script: Script, reply: Any, make_request: MakeRequest
) -> None:
    """The leader's failure reaches all coalesced callers (no hang), and the next call tries again."""
    policy = Cache().build(env)

    async def slow_failure(request: httpx2.Request) -> httpx2.Response:
        await env.clock.sleep(1.0)
        raise ConnectionError("refused")

    upstream = script(slow_failure, reply(json={"ok": True}))
    results = await asyncio.gather(
        *(get(policy, upstream, make_request) for _ in range(20)), return_exceptions=True
    )
    assert upstream.calls == 1
    assert all(isinstance(r, ConnectionError) for r in results)
    assert (await get(policy, upstream, make_request)).json() == {"ok": True}


async def test_a_cancelled_leader_hands_over_to_a_waiter(
    env: PolicyEnv, script: Script, reply: Any, hang: Any, make_request: MakeRequest
) -> None:
    """Cancelling the caller that fetches does not cancel the waiters: one of them fetches instead."""
    policy = Cache().build(env)
    upstream = script(hang, reply(json={"v": 2}, delay=1.0))
    leader = asyncio.create_task(get(policy, upstream, make_request))
    await asyncio.sleep(0)
    waiters = [asyncio.create_task(get(policy, upstream, make_request)) for _ in range(5)]
    await asyncio.sleep(0)
    leader.cancel()
    responses = await asyncio.gather(*waiters)
    assert [r.json() for r in responses] == [{"v": 2}] * 5
    assert upstream.calls == 2
    assert leader.cancelled()


async def test_coalescing_can_be_switched_off(
    env: PolicyEnv, script: Script, reply: Any, make_request: MakeRequest
) -> None:
    """coalesce=False: concurrent misses each go upstream."""
    policy = Cache(coalesce=False).build(env)
    upstream = script(reply(json={}, delay=1.0))
    await asyncio.gather(*(get(policy, upstream, make_request) for _ in range(3)))
    assert upstream.calls == 3


# --- revalidation ------------------------------------------------------------------------------


async def test_an_expired_entry_with_an_etag_is_revalidated_and_a_304_renews_it(
    env: PolicyEnv,
    clock: VirtualClock,
    script: Script,
    reply: Any,
    make_request: MakeRequest,
    recorder: EventRecorder,
) -> None:
    """If-None-Match carries the ETag; a 304 returns the cached body and renews the TTL."""
    policy = Cache(ttl=10, revalidate=True).build(env)
    upstream = script(
        reply(json={"v": 1}, headers={"ETag": '"abc"', "Last-Modified": "Tue, 01 Jul 2025 00:00:00 GMT"}),
        reply(304, headers={"ETag": '"abc"', "X-Fresh": "yes"}),
    )
    await get(policy, upstream, make_request)
    clock.advance(15.0)
    response = await get(policy, upstream, make_request)
    sent = upstream.requests[1]
    assert sent.headers["if-none-match"] == '"abc"'
    assert sent.headers["if-modified-since"] == "Tue, 01 Jul 2025 00:00:00 GMT"
    assert (response.status_code, response.json(), response.headers["x-fresh"]) == (200, {"v": 1}, "yes")
    assert meta(response)["revalidated"] is True
    assert meta(response)["from_cache"] is True
    clock.advance(9.0)  # renewed at t=15: fresh until 25
    await get(policy, upstream, make_request)
    assert upstream.calls == 2
    assert len(recorder.of(ev.CACHE_REVALIDATED)) == 1
    assert "if-none-match" not in make_request().headers  # the caller's request is untouched


async def test_a_changed_resource_replaces_the_entry(
    env: PolicyEnv, clock: VirtualClock, script: Script, reply: Any, make_request: MakeRequest
) -> None:
    """A 200 to a conditional request is stored in place of the old entry."""
    policy = Cache(ttl=10, revalidate=True).build(env)
    upstream = script(
        reply(json={"v": 1}, headers={"ETag": '"1"'}), reply(json={"v": 2}, headers={"ETag": '"2"'})
    )
    await get(policy, upstream, make_request)
    clock.advance(11.0)
    assert (await get(policy, upstream, make_request)).json() == {"v": 2}
    assert (await get(policy, upstream, make_request)).json() == {"v": 2}
    assert upstream.calls == 2


# --- per-call control and invalidation ---------------------------------------------------------


async def test_request_cache_control_bypasses_or_refreshes(
    env: PolicyEnv, script: Script, reply: Any, make_request: MakeRequest
) -> None:
    """no-cache goes upstream and stores the answer; no-store goes upstream and stores nothing."""
    policy = Cache().build(env)
    upstream = script(reply(json={"v": 1}), reply(json={"v": 2}), reply(json={"v": 3}))
    await get(policy, upstream, make_request)
    refreshed = await get(policy, upstream, make_request, headers={"Cache-Control": "no-cache"})
    assert meta(refreshed)["cache"] == "refresh"
    assert (await get(policy, upstream, make_request)).json() == {"v": 2}
    bypassed = await get(policy, upstream, make_request, headers={"Cache-Control": "no-store"})
    assert (bypassed.json(), meta(bypassed)["cache"]) == ({"v": 3}, "bypass")
    assert (await get(policy, upstream, make_request)).json() == {"v": 2}
    assert upstream.calls == 3


async def test_the_call_context_can_ask_for_a_bypass(
    env: PolicyEnv, script: Script, reply: Any, make_request: MakeRequest
) -> None:
    """ctx.extras['cache.mode'] = 'bypass' skips the cache for one call."""
    policy = Cache().build(env)
    upstream = script(reply(json={}))
    await get(policy, upstream, make_request)
    request = make_request("GET", "items/1")
    context_of(request).extras[CACHE_MODE_KEY] = "bypass"
    await policy(request, upstream)
    assert upstream.calls == 2


async def test_invalidate_by_key_by_url_prefix_and_clear(
    clock: VirtualClock, script: Script, reply: Any, make_request: MakeRequest
) -> None:
    """invalidate(key) drops one entry; a relative prefix drops the URLs under it; clear drops all."""
    policy = Cache().build(PolicyEnv("svc", clock=clock, base_url="https://api.test/v1/"))
    upstream = script(reply(json={}))
    first = await get(policy, upstream, make_request, "data/A")
    for path in ("data/B?page=2", "meta/1", "meta/2"):
        await get(policy, upstream, make_request, path)
    assert await policy.invalidate(context_of(first.request).extras["cache.key"]) == 1
    assert await policy.invalidate("/data/") == 1
    assert await policy.invalidate("https://api.test/v1/meta/1") == 1
    assert await policy.clear() == 1
    await get(policy, upstream, make_request, "data/A")
    assert upstream.calls == 5


# --- what is stored ----------------------------------------------------------------------------


async def test_response_cache_control_and_vary_decide_what_is_stored(
    env: PolicyEnv, script: Script, reply: Any, make_request: MakeRequest
) -> None:
    """no-store and Vary: * are never stored; private is (entries are per credential); cookies are dropped."""
    policy = Cache().build(env)
    headers = {
        "/v1/a": {"Cache-Control": "no-store"},
        "/v1/b": {"Vary": "*"},
        "/v1/c": {"Cache-Control": "private, max-age=0", "Set-Cookie": "sid=s3cr3t"},
    }

    async def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers=headers[request.url.path], json={}, request=request)

    upstream = script(answer)
    for path in ("a", "a", "b", "b", "c", "c"):
        await get(policy, upstream, make_request, path)
    assert [r.url.path for r in upstream.requests] == ["/v1/a", "/v1/a", "/v1/b", "/v1/b", "/v1/c"]
    cached = await get(policy, upstream, make_request, "c")
    assert "set-cookie" not in cached.headers


async def test_a_response_that_varies_on_a_header_is_not_served_to_other_values(
    env: PolicyEnv, script: Script, reply: Any, make_request: MakeRequest
) -> None:
    """Vary: Accept stores the request's Accept; a different Accept misses and replaces it."""
    policy = Cache().build(env)
    upstream = script(reply(json={}, headers={"Vary": "Accept"}))
    await get(policy, upstream, make_request, headers={"Accept": "application/json"})
    await get(policy, upstream, make_request, headers={"Accept": "application/json"})
    await get(policy, upstream, make_request, headers={"Accept": "text/csv"})
    assert upstream.calls == 2


async def test_configured_vary_headers_are_part_of_the_key(
    env: PolicyEnv, script: Script, reply: Any, make_request: MakeRequest
) -> None:
    """With vary_headers=['Accept-Language'], each language has its own entry."""
    policy = Cache(vary_headers=["Accept-Language"]).build(env)
    upstream = script(reply(json={}))
    for lang in ("en", "de", "en", "de"):
        await get(policy, upstream, make_request, headers={"Accept-Language": lang})
    assert upstream.calls == 2


async def test_query_order_does_not_matter_and_credentials_stay_out_of_the_url(
    env: PolicyEnv, script: Script, reply: Any, make_request: MakeRequest, recorder: EventRecorder
) -> None:
    """?b=2&a=1 hits the entry of ?a=1&b=2; an api_key parameter is keyed by hash, never stored."""
    policy = Cache().build(env)
    upstream = script(reply(json={}))
    await get(policy, upstream, make_request, "items?a=1&b=2&api_key=K-one-1234")
    await get(policy, upstream, make_request, "items?b=2&api_key=K-one-1234&a=1")
    await get(policy, upstream, make_request, "items?b=2&a=1&api_key=K-two-5678")
    assert upstream.calls == 2
    urls = {e.fields["url"] for e in recorder.events if e.name.startswith("cache.")}
    assert urls == {"https://api.test/v1/items?a=1&b=2"}


async def test_two_api_keys_in_request_headers_never_share_an_entry(
    env: PolicyEnv, script: Script, reply: Any, make_request: MakeRequest
) -> None:
    """Each X-API-Key value has its own entries; the same key hits its own."""
    policy = Cache().build(env)

    async def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json={"for": request.headers["x-api-key"]}, request=request)

    upstream = script(answer)
    bodies = [
        (await get(policy, upstream, make_request, headers={"X-API-Key": key})).json()["for"]
        for key in ("key-A-1111", "key-B-2222", "key-A-1111", "key-B-2222")
    ]
    assert bodies == ["key-A-1111", "key-B-2222", "key-A-1111", "key-B-2222"]
    assert upstream.calls == 2


# --- backends, options, errors -----------------------------------------------------------------


async def test_a_shared_backend_object_is_used_and_not_closed_by_the_policy(
    clock: VirtualClock, script: Script, reply: Any, make_request: MakeRequest
) -> None:
    """Two policies on one MemoryCache share entries; aclose leaves a backend it did not make open."""
    backend = MemoryCache(max_entries=10)
    one = Cache(backend=backend).build(PolicyEnv("a", clock=clock))
    two = Cache(backend=backend).build(PolicyEnv("b", clock=clock))
    upstream = script(reply(json={}))
    await get(one, upstream, make_request)
    await get(two, upstream, make_request)
    await one.aclose()
    assert upstream.calls == 1
    assert backend.stats().entries == 1


async def test_a_failing_backend_is_reported_and_the_call_goes_on(
    tmp_path: Any, clock: VirtualClock, script: Script, reply: Any, make_request: MakeRequest
) -> None:
    """When the SQLite backend fails (closed), the call goes upstream and cache.error is emitted."""
    from tether.cache import SQLiteCache

    backend = SQLiteCache(tmp_path / "c.db")
    await backend.identity_key()
    await backend.aclose()
    recorder = EventRecorder()
    policy = Cache(backend=backend).build(PolicyEnv("svc", clock=clock, events=EventBus([recorder])))
    upstream = script(reply(json={"v": 1}))
    assert (await get(policy, upstream, make_request)).json() == {"v": 1}
    assert [e.fields["operation"] for e in recorder.of(CACHE_ERROR)] == ["get", "put"]
    with pytest.raises(StateStoreError):
        await backend.get("k", now=0.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ttl": "soon"}, "Cache.ttl must look like"),
        ({"ttl": -1}, "Cache.ttl must be zero or positive"),
        ({"stale_if_error": "1x"}, "unknown unit"),
        ({"ttl_by_endpoint": {"": 5}}, "endpoint names or '/path' globs"),
        ({"ttl_by_endpoint": {"/x/*": "never"}}, r"ttl_by_endpoint\['/x/\*'\]"),
        ({"max_entries": 0}, "max_entries must be a whole number >= 1, got 0"),
        ({"max_bytes": "lots"}, "max_bytes must look like"),
        ({"vary_headers": ["Bad Header"]}, "HTTP header names, got 'Bad Header'"),
        ({"methods": []}, "at least one method"),
        ({"backend": "mongodb://x"}, "Cache.backend must be"),
        ({"eviction": "lfu"}, "needs the Redis backend"),
    ],
)
def test_bad_options_are_refused_with_the_rule_and_the_value(kwargs: dict[str, Any], message: str) -> None:
    """Options are validated when made; the message names the rule and the bad value."""
    with pytest.raises(ValueError, match=message):
        Cache(**kwargs)


def test_options_normalise_loose_input() -> None:
    """Durations, sizes, presets and header names are normalised into the settings."""
    settings = Cache(
        ttl="metadata", stale_if_error="2h", max_bytes="10MB", vary_headers=["Accept"], methods=["get"]
    ).settings()
    assert (settings.ttl, settings.stale_if_error, settings.max_bytes) == (86400.0, 7200.0, 10_000_000)
    assert settings.vary_headers == ("accept",)
    assert settings.methods == frozenset({"GET"})
    assert Cache.kind == "cache"


async def test_the_fallback_can_ask_for_the_stored_entry_after_a_failure(
    env: PolicyEnv, clock: VirtualClock, script: Script, reply: Any, make_request: MakeRequest
) -> None:
    """Without stale_if_error the failure is raised, and ctx.extras['cache.stale_lookup']() returns
    the entry kept by keep_expired (for the fallback's StaleCache step); no entry gives None."""
    policy = Cache(ttl=10, keep_expired="1h").build(env)
    upstream = script(reply(json={"v": "kept"}), ConnectionError("down"))
    await get(policy, upstream, make_request)
    clock.advance(60.0)
    request = make_request("GET", "items/1")
    with pytest.raises(ConnectionError):
        await policy(request, upstream)
    stale = await context_of(request).extras[STALE_LOOKUP_KEY]()
    assert stale is not None and stale.json() == {"v": "kept"}
    assert meta(stale)["stale"] is True
    other = make_request("GET", "items/2")
    with pytest.raises(ConnectionError):
        await policy(other, upstream)
    assert await context_of(other).extras[STALE_LOOKUP_KEY]() is None
    clock.advance(3600.0)  # past expires + keep_expired: dropped
    assert await context_of(request).extras[STALE_LOOKUP_KEY]() is None


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("HTTPS://API.test:443/v1/x?b=2&a=1#frag", "https://api.test/v1/x?a=1&b=2"),
        ("http://api.test:8080/x?q=a+b&q=c", "http://api.test:8080/x?q=a+b&q=c"),
        ("https://user:pw@api.test/x?token=t0k3n&id=7", "https://api.test/x?id=7"),
        ("https://api.test", "https://api.test/"),
    ],
)
def test_urls_are_normalised_without_credentials(url: str, normalised: str) -> None:
    """Scheme and host lower-cased, default port, fragment, user-info and credential params dropped."""
    assert _normalise(httpx2.URL(url))[0] == normalised
