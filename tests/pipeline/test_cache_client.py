"""The cache through ``tether.Client`` against the loopback fault server: coalescing on the wire,
stale answers through an outage and an open breaker, ETag revalidation, credential separation,
and the SQLite backend across a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx2
import pytest

import tether
from tether import events as ev
from tether._context import context_of
from tether.cache import MemoryCache, SQLiteCache
from tether.events import EventRecorder
from tether.mock import Fault, FaultServer
from tether.testing import VirtualClock


def meta(response: httpx2.Response) -> dict[str, Any]:
    """The call's ``CallContext.meta``."""
    return context_of(response.request).meta


async def test_a_thousand_concurrent_cold_gets_make_one_upstream_request(fault_server: FaultServer) -> None:
    """1,000 identical GETs at once on a cold cache: the server sees exactly one request."""
    fault_server.route("GET", "/quote/{id}", Fault.ok(json={"price": 42}, latency=0.05))
    async with tether.Client(fault_server.url, policies=[tether.Cache(ttl=30)]) as client:
        responses = await asyncio.gather(*(client.get("/quote/ACME") for _ in range(1000)))
        status = client.pipeline.policy("cache").status()
    assert len(fault_server.requests("GET", "/quote/{id}")) == 1
    assert {r.status_code for r in responses} == {200}
    assert all(r.json() == {"price": 42} for r in responses)
    assert len({id(r) for r in responses}) == 1000
    assert (status.misses, status.coalesced) == (1, 999)


async def test_an_outage_and_an_open_breaker_are_answered_from_stale_entries(
    fault_server: FaultServer,
) -> None:
    """Upstream down (503, then resets): retry gives up, the breaker opens and fails fast with
    CircuitOpenError below the cache, and every caller still gets the stale entry."""
    fault_server.route("GET", "/quote/{id}", Fault.ok(json={"price": 1}), Fault.status(503), Fault.reset())
    clock, recorder = VirtualClock(), EventRecorder()
    client = tether.Client(
        fault_server.url,
        clock=clock,
        listeners=[recorder],
        policies=[
            tether.Cache(ttl=10, stale_if_error="1h"),
            tether.Retry(attempts=2, initial=0.1, jitter=False),
            tether.Breaker(failures=2, open_for=300),
        ],
    )
    async with client:
        await client.get("/quote/ACME")
        clock.advance(11.0)  # expired: every later call goes through retry and breaker
        answers = [await client.get("/quote/ACME") for _ in range(5)]
        breaker = client.pipeline.policy("breaker").status()
    assert [r.json() for r in answers] == [{"price": 1}] * 5
    assert all(meta(r)["stale"] is True and meta(r)["from_cache"] is True for r in answers)
    assert breaker.state == "open"
    assert len(fault_server.requests("GET", "/quote/{id}")) == 3  # the 200, the 503, the reset
    served = recorder.of(ev.CACHE_STALE_SERVED)
    assert [e.fields["error"] for e in served] == ["ConnectionError"] + ["CircuitOpenError"] * 4
    assert len(recorder.of(ev.BREAKER_REJECTED)) == 4


async def test_an_etag_is_revalidated_with_a_304_from_the_server(fault_server: FaultServer) -> None:
    """After expiry the client sends If-None-Match; the server's 304 renews the entry's TTL."""
    etag = '"v1-5f2a"'
    fault_server.route(
        "GET",
        "/meta",
        Fault.ok(json={"name": "ACME"}, headers={"ETag": etag}),
        Fault.status(304, headers={"ETag": etag}),
    )
    clock = VirtualClock()
    async with tether.Client(
        fault_server.url, clock=clock, policies=[tether.Cache(ttl=60, revalidate=True)]
    ) as client:
        await client.get("/meta")
        clock.advance(61.0)
        revalidated = await client.get("/meta")
        clock.advance(59.0)
        fresh = await client.get("/meta")
    seen = fault_server.requests("GET", "/meta")
    assert [r.header("if-none-match") for r in seen] == [None, etag]
    assert [r.status for r in seen] == [200, 304]
    assert (revalidated.status_code, revalidated.json()) == (200, {"name": "ACME"})
    assert meta(revalidated)["revalidated"] is True
    assert meta(fresh)["cache"] == "hit"


async def test_clients_with_different_api_keys_never_share_entries(fault_server: FaultServer) -> None:
    """Two clients with their own ApiKey on one shared backend each get their own answers."""
    fault_server.route("GET", "/me", Fault.echo())
    backend = MemoryCache()
    keys = ("alpha-key-0001", "bravo-key-0002")
    clients = [
        tether.Client(fault_server.url, auth=tether.ApiKey(k), policies=[tether.Cache(backend=backend)])
        for k in keys
    ]
    seen = []
    for client in (*clients, *clients, *clients):
        seen.append((await client.get("/me")).json()["headers"]["x-api-key"])
    for client in clients:
        await client.aclose()
    assert seen == [*keys, *keys, *keys]
    assert len(fault_server.requests("GET", "/me")) == 2
    assert backend.stats().entries == 2


async def test_the_sqlite_backend_survives_a_restart_and_never_stores_the_key(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    """A new client and backend on the same file answer its first call from the old entries (the
    auth stage tells the cache which key signs it before sending); the key is not in the file."""
    fault_server.route("GET", "/series", Fault.ok(json={"points": [1, 2, 3]}))
    db = tmp_path / "cache.db"
    secret = "query-secret-7f3c9a"
    for _ in range(2):  # a "restart": a new client, a new backend object, the same file
        async with tether.Client(
            fault_server.url,
            auth=tether.ApiKey(secret, query="api_key"),
            policies=[tether.Cache(ttl=3600, backend=f"sqlite:///{db}")],
        ) as client:
            response = await client.get("/series", params={"id": "GDP"})
            await client.pipeline.policy("cache").aclose()
        assert response.json() == {"points": [1, 2, 3]}
    requests = fault_server.requests("GET", "/series")
    assert len(requests) == 1  # first run a miss; after the restart a hit
    assert requests[0].param("api_key") == secret
    files = [db, *(db.with_name(db.name + suffix) for suffix in ("-wal", "-shm"))]
    assert all(secret.encode() not in f.read_bytes() for f in files if f.is_file())


async def test_without_credentials_a_restarted_client_is_answered_from_the_file(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    """With a state store on SQLite and backend='state', a new client's first call is a hit."""
    fault_server.route("GET", "/series", Fault.ok(json={"points": [4, 5]}))
    state = f"sqlite:///{tmp_path / 'tether.db'}"
    answers = []
    for _ in range(2):
        client = tether.Client(
            fault_server.url, state=state, policies=[tether.Cache(ttl=3600, backend="state")]
        )
        async with client:
            answers.append(await client.get("/series"))
            cache = client.pipeline.policy("cache")
            assert isinstance(cache.backend, SQLiteCache)
            await cache.aclose()
    assert len(fault_server.requests("GET", "/series")) == 1
    assert meta(answers[1])["cache"] == "hit"
    assert answers[1].json() == {"points": [4, 5]}


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_cached_responses_keep_status_headers_and_body(fault_server: FaultServer, method: str) -> None:
    """A hit rebuilds the response exactly: status, the server's headers, and the (decoded) body."""
    fault_server.route(method, "/doc", Fault.ok(text="hello " * 200, headers={"X-Doc": "7"}, encoding="gzip"))
    async with tether.Client(fault_server.url, policies=[tether.Cache()]) as client:
        first = await client.request(method, "/doc")
        second = await client.request(method, "/doc")
    assert len(fault_server.requests(method, "/doc")) == 1
    assert (second.status_code, second.headers["x-doc"], second.content) == (200, "7", first.content)
    assert meta(second)["from_cache"] is True


async def test_a_fresh_hit_spends_no_rate_limit_token(fault_server: FaultServer) -> None:
    """With a 1/minute limiter that rejects, repeated cached GETs are never refused: hits skip it."""
    fault_server.route("GET", "/quote/{id}", Fault.ok(json={"price": 3}))
    policies = [tether.Cache(ttl=60), tether.Rate("1/minute", strategy="reject")]
    async with tether.Client(fault_server.url, policies=policies) as client:
        answers = [await client.get("/quote/ACME") for _ in range(5)]
        with pytest.raises(tether.RateLimitExceeded):
            await client.get("/quote/OTHER")
    assert [r.json() for r in answers] == [{"price": 3}] * 5
    assert len(fault_server.requests("GET", "/quote/{id}")) == 1
