"""Fallback: the chain's order, each step end to end on loopback, triggers, and failover."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx2
import pytest

import tether
from tether._context import CallContext
from tether.dlq import MemoryDLQ, SQLiteDLQ, mark_dlq
from tether.events import EventRecorder
from tether.mock import Fault, FaultServer
from tether.pipeline._base import Handler, PolicyEnv
from tether.pipeline.breaker import Breaker
from tether.pipeline.fallback import (
    STALE_LOOKUP_KEY,
    Alternate,
    Default,
    Enqueue,
    Fallback,
    StaleCache,
)
from tether.testing import VirtualClock

CANARY = "canary-primary-secret-7f3a9c"
ALT_TOKEN = "alt-token-0b1e2d"


@pytest.fixture
async def backup() -> AsyncIterator[FaultServer]:
    """A second mock provider serving the same API under another base path."""
    server = FaultServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def plain(url: str, *policies: object, **kwargs: object) -> tether.Client:
    return tether.Client(url, retry=None, breaker=None, policies=list(policies), **kwargs)  # type: ignore[arg-type]


async def test_success_is_served_by_primary(fault_server: FaultServer) -> None:
    """A call that succeeds is untouched and says served_by 'primary'."""
    fault_server.route("GET", "/v1/items/1", Fault.ok(json={"id": 1}))
    async with plain(fault_server.url + "/v1", Fallback(Default(json={"id": 0}))) as client:
        request = client.build_request("GET", "items/1")
        response = await client.send(request)
    assert response.json() == {"id": 1}
    assert request.extensions["tether"].meta["served_by"] == "primary"


async def test_default_serves_a_5xx_and_emits_an_event(fault_server: FaultServer) -> None:
    """A 503 is answered with the static default; served_by 'default' and a fallback.served event."""
    fault_server.route("GET", "/v1/items/1", Fault.status(503))
    recorder = EventRecorder()
    step = Default(json={"items": []}, headers={"X-Fallback": "yes"})
    async with plain(fault_server.url + "/v1", Fallback(step), listeners=[recorder]) as client:
        request = client.build_request("GET", "items/1", endpoint="get_item")
        response = await client.send(request)
    assert response.status_code == 200
    assert response.json() == {"items": []}
    assert response.headers["x-fallback"] == "yes"
    meta = request.extensions["tether"].meta
    assert meta["served_by"] == "default"
    assert meta["fallback_error"] == "API_001"
    [event] = recorder.of("fallback.served")
    assert event.fields["step"] == "default"
    assert event.endpoint == "get_item"


async def test_chain_is_tried_in_order_until_one_serves(
    fault_server: FaultServer, backup: FaultServer
) -> None:
    """Stale cache (none) passes, a failing alternate passes, then the default serves."""
    fault_server.route("GET", "/v1/items/1", Fault.status(503))
    backup.route("GET", "/items/1", Fault.status(500))
    async with plain(backup.url) as alt:
        chain = Fallback(StaleCache(), Alternate(alt, name="backup"), Default(json={"from": "default"}))
        async with plain(fault_server.url + "/v1", chain) as client:
            request = client.build_request("GET", "items/1")
            response = await client.send(request)
    assert response.json() == {"from": "default"}
    assert request.extensions["tether"].meta["served_by"] == "default"
    assert [r.path for r in backup.log] == ["/items/1"]


async def test_an_earlier_step_wins_and_later_ones_are_not_tried(
    fault_server: FaultServer, backup: FaultServer
) -> None:
    """With the default before the alternate, the alternate never receives the call."""
    fault_server.route("GET", "/v1/items/1", Fault.status(502))
    async with plain(backup.url) as alt:
        chain = Fallback(Default(json={"first": True}), Alternate(alt))
        async with plain(fault_server.url + "/v1", chain) as client:
            response = await client.get("items/1")
    assert response.json() == {"first": True}
    assert backup.log == []


@pytest.mark.parametrize(("status", "error"), [(400, tether.ValidationError), (404, tether.NotFoundError)])
async def test_client_errors_are_never_served_another_way(
    fault_server: FaultServer, status: int, error: type[Exception]
) -> None:
    """A 400 or 404 is the caller's problem: raised, even with a default configured."""
    fault_server.route("GET", "/v1/items/1", Fault.status(status))
    async with plain(fault_server.url + "/v1", Fallback(Default(json={}))) as client:
        with pytest.raises(error):
            await client.get("items/1")


async def test_authentication_errors_are_not_served_even_when_listed(fault_server: FaultServer) -> None:
    """An AuthenticationError stays raised although on= names its status."""
    fault_server.route("GET", "/v1/items/1", Fault.status(401))
    options = Fallback(Default(json={}), on=(401, tether.AuthenticationError))
    async with plain(fault_server.url + "/v1", options) as client:
        with pytest.raises(tether.AuthenticationError):
            await client.get("items/1")


async def test_on_narrows_the_triggers(fault_server: FaultServer) -> None:
    """With on=(503,), a 503 is served but a 500 is raised."""
    fault_server.route("GET", "/v1/a", Fault.status(503))
    fault_server.route("GET", "/v1/b", Fault.status(500))
    async with plain(fault_server.url + "/v1", Fallback(Default(json={"ok": 1}), on=(503,))) as client:
        assert (await client.get("a")).json() == {"ok": 1}
        with pytest.raises(tether.APIError):
            await client.get("b")


async def test_connection_errors_trigger_the_chain(fault_server: FaultServer) -> None:
    """A reset connection (ConnectionError) is served by the default."""
    fault_server.route("GET", "/v1/items/1", Fault.reset())
    async with plain(fault_server.url + "/v1", Fallback(Default(json={"ok": 1}))) as client:
        assert (await client.get("items/1")).json() == {"ok": 1}


async def test_per_endpoint_chains_replace_the_client_wide_one(fault_server: FaultServer) -> None:
    """An endpoint with its own chain uses it; one with an empty chain gets the error."""
    fault_server.route("GET", "/v1/x", Fault.status(503))
    options = Fallback(
        Default(json={"chain": "client"}),
        endpoints={"special": [Default(json={"chain": "special"})], "strict": []},
    )
    async with plain(fault_server.url + "/v1", options) as client:
        assert client.pipeline.policy("fallback").status()["endpoints"] == {
            "special": ["default"],
            "strict": [],
        }
        assert (await client.get("x")).json() == {"chain": "client"}
        assert (await client.get("x", endpoint="special")).json() == {"chain": "special"}
        with pytest.raises(tether.APIError):
            await client.get("x", endpoint="strict")


async def test_no_step_serves_raises_the_original_error(
    fault_server: FaultServer, backup: FaultServer
) -> None:
    """When every step passes, the caller sees the primary's error, not the alternate's."""
    fault_server.route("GET", "/v1/x", Fault.status(503))
    backup.route("GET", "/x", Fault.status(500))
    async with plain(backup.url) as alt, plain(fault_server.url + "/v1", Fallback(Alternate(alt))) as client:
        with pytest.raises(tether.APIError) as raised:
            await client.get("x")
    assert raised.value.status_code == 503


# --- alternate provider ---------------------------------------------------------------------------


async def test_alternate_gets_path_and_params_without_primary_credentials(
    fault_server: FaultServer, backup: FaultServer
) -> None:
    """The alternate sees the same path and params under its base, its own token, never ours."""
    fault_server.route("GET", "/v1/series/GDP", Fault.status(503))
    backup.route("GET", "/mirror/api/series/GDP", Fault.ok(json={"mirror": True}))
    alt = tether.Client(backup.url + "/mirror/api", retry=None, breaker=None, auth=tether.Bearer(ALT_TOKEN))
    primary = tether.Client(
        fault_server.url + "/v1",
        retry=None,
        breaker=None,
        auth=tether.ApiKey(CANARY, header="X-API-Key"),
        headers={"X-Trace": "t-1"},
        policies=[Fallback(Alternate(alt, name="mirror"))],
    )
    async with alt, primary:
        request = primary.build_request("GET", "series/GDP", params={"units": "pct", "api_key": CANARY})
        response = await primary.send(request)
    assert response.json() == {"mirror": True}
    assert request.extensions["tether"].meta["served_by"] == "alternate:mirror"
    assert fault_server.log[0].header("x-api-key") == CANARY  # the primary was signed
    [seen] = backup.log
    assert seen.path == "/mirror/api/series/GDP"
    assert seen.query == {"units": ["pct"]}
    assert seen.header("authorization") == f"Bearer {ALT_TOKEN}"
    assert seen.header("x-trace") == "t-1"
    everything = repr(seen.headers) + seen.target + seen.text
    assert CANARY not in everything


async def test_alternate_may_be_any_object_with_send(fault_server: FaultServer, backup: FaultServer) -> None:
    """A plain httpx2.AsyncClient works as the alternate, given its base URL."""
    fault_server.route("POST", "/v1/jobs", Fault.status(504))
    backup.route("POST", "/jobs", Fault.ok(json={"accepted": True}))
    async with httpx2.AsyncClient() as raw:
        options = Fallback(Alternate(raw, base_url=backup.url + "/"))
        async with plain(fault_server.url + "/v1", options) as client:
            response = await client.post("jobs", json={"n": 1})
    assert response.json() == {"accepted": True}
    assert backup.log[0].json() == {"n": 1}


async def test_failover_while_primary_is_down_and_back_when_its_breaker_closes(
    fault_server: FaultServer, backup: FaultServer
) -> None:
    """A down → breaker open → alternate serves; A recovers, breaker half-opens, probe closes it."""
    clock = VirtualClock()
    fault_server.route("GET", "/v1/q", Fault.status(503))
    backup.route("GET", "/q", Fault.ok(json={"from": "B"}))
    breaker = Breaker(failures=2, open_for=5, close_after=1, window=60)
    async with plain(backup.url, timeout=None) as alt:
        primary = tether.Client(
            fault_server.url + "/v1",
            retry=None,
            breaker=breaker,
            timeout=None,
            clock=clock,
            policies=[Fallback(Alternate(alt, name="B"))],
        )
        async with primary:

            async def served_by() -> tuple[str, object]:
                request = primary.build_request("GET", "q")
                response = await primary.send(request)
                return request.extensions["tether"].meta["served_by"], response.json()["from"]

            assert await served_by() == ("alternate:B", "B")
            assert await served_by() == ("alternate:B", "B")  # the second failure opens the breaker
            assert await served_by() == ("alternate:B", "B")  # open: A is not even tried
            assert len(fault_server.log) == 2
            fault_server.route("GET", "/v1/q", Fault.ok(json={"from": "A"}))
            assert await served_by() == ("alternate:B", "B")  # still open
            assert len(fault_server.log) == 2
            clock.advance(5)  # half-open: the next call probes A
            assert await served_by() == ("primary", "A")
            assert await served_by() == ("primary", "A")
            assert len(fault_server.log) == 4
            assert (await primary.pipeline.policy("breaker").fetch_status()).state == "closed"
    assert len(backup.log) == 4


# --- stale cache -----------------------------------------------------------------------------------


class _CacheContract:
    """The cache side of the stale-lookup contract: leaves a stored response for the call."""

    kind = "cache"

    def __init__(self, body: bytes) -> None:
        self.body = body

    def build(self, env: PolicyEnv) -> Callable[[httpx2.Request, Handler], Awaitable[httpx2.Response]]:
        body = self.body

        async def policy(request: httpx2.Request, next: Handler) -> httpx2.Response:
            ctx: CallContext = request.extensions["tether"]

            async def lookup() -> httpx2.Response:
                return httpx2.Response(200, content=body, request=request)

            ctx.extras[STALE_LOOKUP_KEY] = lookup
            return await next(request)

        return policy


async def test_stale_cache_serves_the_entry_the_cache_leaves(fault_server: FaultServer) -> None:
    """StaleCache serves the cache's stored response (marked stale) before the default."""
    fault_server.route("GET", "/v1/x", Fault.status(503))
    options = Fallback(StaleCache(), Default(json={"from": "default"}))
    async with plain(fault_server.url + "/v1", options, _CacheContract(b'{"from":"cache"}')) as client:
        request = client.build_request("GET", "x")
        response = await client.send(request)
    assert response.json() == {"from": "cache"}
    meta = request.extensions["tether"].meta
    assert (meta["served_by"], meta["stale"], meta["from_cache"]) == ("stale_cache", True, True)


async def test_stale_cache_passes_without_a_cache(fault_server: FaultServer) -> None:
    """Without a cache policy the stale step passes to the next step."""
    fault_server.route("GET", "/v1/x", Fault.status(503))
    async with plain(fault_server.url + "/v1", Fallback(StaleCache(), Default(json={"d": 1}))) as client:
        assert (await client.get("x")).json() == {"d": 1}


# --- the DLQ step ----------------------------------------------------------------------------------


async def test_enqueue_parks_a_marked_post_and_raises_with_its_id(fault_server: FaultServer) -> None:
    """A failed POST is stored with its key, then its error is raised carrying dlq_id."""
    fault_server.route("POST", "/v1/orders", Fault.status(503))
    dlq = MemoryDLQ()
    recorder = EventRecorder()
    options = Fallback(Enqueue(dlq, methods={"POST"}))
    async with plain(fault_server.url + "/v1", options, listeners=[recorder]) as client:
        with pytest.raises(tether.APIError) as raised:
            await client.post("orders", json={"sku": "A-1"}, endpoint="create_order")
    dlq_id = raised.value.dlq_id  # type: ignore[attr-defined]
    entry = await dlq.get(dlq_id)
    assert entry is not None
    sent_key = fault_server.log[0].header("idempotency-key")
    assert sent_key is not None and entry.idempotency_key == sent_key
    assert entry.request.method == "POST"
    assert entry.request.body == b'{"sku":"A-1"}'
    assert (entry.endpoint, entry.error_code, entry.attempts) == ("create_order", "API_001", 1)
    assert [e.fields["id"] for e in recorder.of("dlq.enqueued")] == [dlq_id]


async def test_enqueue_keeps_a_callers_idempotency_key(fault_server: FaultServer) -> None:
    """A POST that already has a key keeps it, upstream and in the entry."""
    fault_server.route("POST", "/v1/orders", Fault.status(500))
    dlq = MemoryDLQ()
    async with plain(fault_server.url + "/v1", Fallback(Enqueue(dlq))) as client:
        with pytest.raises(tether.APIError):
            await client.post("orders", json={}, idempotency_key="order-42")
    [entry] = await dlq.list()
    assert entry.idempotency_key == "order-42"
    assert fault_server.log[0].header("idempotency-key") == "order-42"


async def test_unmarked_calls_are_not_parked(fault_server: FaultServer) -> None:
    """A GET is not stored when only POSTs are marked; a per-call mark adds it."""
    fault_server.route("GET", "/v1/x", Fault.status(503))
    dlq = MemoryDLQ()
    async with plain(fault_server.url + "/v1", Fallback(Enqueue(dlq, methods={"POST"}))) as client:
        with pytest.raises(tether.APIError) as raised:
            await client.get("x")
        assert not hasattr(raised.value, "dlq_id")
        assert await dlq.list() == []
        with pytest.raises(tether.APIError):
            await client.send(mark_dlq(client.build_request("GET", "x")))
    [entry] = await dlq.list()
    assert entry.request.method == "GET"
    assert entry.idempotency_key is None


async def test_enqueue_placeholder_answers_202(fault_server: FaultServer) -> None:
    """With placeholder=True the caller gets 202 {queued, dlq_id} and served_by 'dlq'."""
    fault_server.route("POST", "/v1/orders", Fault.status(503))
    dlq = MemoryDLQ()
    async with plain(fault_server.url + "/v1", Fallback(Enqueue(dlq, placeholder=True))) as client:
        request = client.build_request("POST", "orders", json={})
        response = await client.send(request)
    assert response.status_code == 202
    body = response.json()
    assert body["queued"] is True
    assert await dlq.get(body["dlq_id"]) is not None
    assert request.extensions["tether"].meta["served_by"] == "dlq"


async def test_default_after_enqueue_serves_once_the_call_is_parked(fault_server: FaultServer) -> None:
    """Enqueue then Default: the call is stored and the caller still gets the default answer."""
    fault_server.route("POST", "/v1/orders", Fault.status(503))
    dlq = MemoryDLQ()
    options = Fallback(Enqueue(dlq), Default(json={"later": True}, status=202))
    async with plain(fault_server.url + "/v1", options) as client:
        request = client.build_request("POST", "orders", json={})
        response = await client.send(request)
    assert response.json() == {"later": True}
    [entry] = await dlq.list()
    assert request.extensions["tether"].meta["dlq_id"] == entry.id


def test_options_reject_bad_values() -> None:
    """Fallback options state the rule and the bad value."""
    with pytest.raises(ValueError, match="at least one step"):
        Fallback()
    with pytest.raises(ValueError, match="'5xx'"):
        Fallback(Default(json={}), on=("4xx",))
    with pytest.raises(ValueError, match="success status"):
        Default(status=500)
    with pytest.raises(ValueError, match="async send"):
        Alternate(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fallback steps"):
        Fallback("default")  # type: ignore[arg-type]


async def test_cache_stale_if_error_answers_inside_and_served_by_says_stale_cache(
    fault_server: FaultServer,
) -> None:
    """With the real cache's stale_if_error, the stale answer reaches the fallback as a success."""
    clock = VirtualClock()
    fault_server.route("GET", "/v1/x", Fault.ok(json={"v": 1}), Fault.status(503))
    options = Fallback(Default(json={"from": "default"}))
    cache = tether.Cache(ttl=10, stale_if_error=3600)
    async with plain(fault_server.url + "/v1", options, cache, clock=clock, timeout=None) as client:
        first = client.build_request("GET", "x")
        assert (await client.send(first)).json() == {"v": 1}
        clock.advance(60)  # expired, within stale_if_error
        second = client.build_request("GET", "x")
        response = await client.send(second)
    assert response.json() == {"v": 1}
    assert first.extensions["tether"].meta["served_by"] == "primary"
    assert second.extensions["tether"].meta["served_by"] == "stale_cache"
    assert len(fault_server.log) == 2


async def test_a_dlq_that_cannot_store_leaves_the_error_unmarked(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    """If the backend fails, the caller gets the original error without dlq_id, and dlq.failed."""
    fault_server.route("POST", "/v1/orders", Fault.status(503))
    not_a_file = tmp_path / "a-directory"
    not_a_file.mkdir()
    dlq = SQLiteDLQ(not_a_file)
    recorder = EventRecorder()
    async with plain(fault_server.url + "/v1", Fallback(Enqueue(dlq)), listeners=[recorder]) as client:
        with pytest.raises(tether.APIError) as raised:
            await client.post("orders", json={})
    await dlq.aclose()
    assert raised.value.status_code == 503
    assert not hasattr(raised.value, "dlq_id")
    [event] = recorder.of("dlq.failed")
    assert event.fields["stage"] == "enqueue"


async def test_on_accepts_error_codes(fault_server: FaultServer) -> None:
    """on=('CONN_001',) serves a reset connection but not a 503 (as a spec's on_errors says)."""
    fault_server.route("GET", "/v1/reset", Fault.reset())
    fault_server.route("GET", "/v1/down", Fault.status(503))
    options = Fallback(Default(json={"ok": 1}), on=("CONN_001",))
    async with plain(fault_server.url + "/v1", options) as client:
        assert (await client.get("reset")).json() == {"ok": 1}
        with pytest.raises(tether.APIError):
            await client.get("down")
