"""Integration.call_many (bounded, as completed, failures isolated, cancellation-safe) and status()."""

from __future__ import annotations

import asyncio
import json

import pytest
from integration_helpers import spec_text, until

import tether
from tether.errors import RequestValidationError
from tether.events import Event
from tether.mock import Fault, FaultServer

SPEC = """\
service: {name: batch, base_url: "@URL@"}
authentication: {type: bearer, config: {secret: "${BATCH_TOKEN}"}}
retry: {initial_delay: 1, max_delay: 5, jitter: false}
rate_limits: {requests_per_second: 1000, burst_size: 50}
bulkhead: {max_concurrent: 8, max_queue: 50}
endpoints:
  get_item:
    path: /items/{id}
    parameters: [{name: id, in: path, pattern: "^[0-9]+$"}]
    performance: {p95: 5s}
"""


@pytest.fixture(autouse=True)
def batch_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """The token the spec reads from BATCH_TOKEN."""
    monkeypatch.setenv("BATCH_TOKEN", "batch-token-0001")


def _call_tasks() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_coro().__qualname__ == "_call_one"]  # type: ignore[union-attr]


async def test_mixed_failures_never_abort_the_batch(fault_server: FaultServer) -> None:
    """Each input gets an Outcome: successes with results, a 404 and a bad parameter as errors."""
    fault_server.route("GET", "/items/{id}", Fault.ok(json={"ok": True}))
    fault_server.route("GET", "/items/404", Fault.status(404))
    inputs = [{"id": "1"}, {"id": "404"}, {"id": "2"}, {"id": "not-a-number"}, {"id": "3"}]
    async with tether.open(spec_text(SPEC, fault_server.url)) as api:
        outcomes = [out async for out in api.call_many("get_item", inputs, concurrency=2)]
    assert len(outcomes) == len(inputs)
    by_id = {out.input["id"]: out for out in outcomes}
    assert [by_id[i].ok for i in ("1", "2", "3")] == [True, True, True]
    assert by_id["1"].result is not None
    assert by_id["1"].result.data == {"ok": True}
    assert isinstance(by_id["404"].error, tether.NotFoundError)
    assert isinstance(by_id["not-a-number"].error, RequestValidationError)
    assert by_id["404"].result is None
    assert "not-a-number" not in [r.path.rsplit("/", 1)[1] for r in fault_server.log]
    assert "batch-token-0001" not in repr(outcomes)


async def test_concurrency_is_bounded(fault_server: FaultServer) -> None:
    """At most `concurrency` calls are in flight at once."""
    fault_server.route("GET", "/items/{id}", Fault.ok(json={}, latency=0.02))
    in_flight = 0
    most = 0

    def count(event: Event) -> None:
        nonlocal in_flight, most
        if event.name == "request.sent":
            in_flight += 1
            most = max(most, in_flight)
        elif event.name == "response.received":
            in_flight -= 1

    async with tether.open(spec_text(SPEC, fault_server.url), listeners=[count]) as api:
        outcomes = [
            out async for out in api.call_many("get_item", ({"id": str(i)} for i in range(9)), concurrency=3)
        ]
    assert all(out.ok for out in outcomes)
    assert 1 <= most <= 3
    assert len(fault_server.log) == 9


async def test_leaving_early_cancels_the_calls_still_running(fault_server: FaultServer) -> None:
    """break inside `async with call_many(...)` cancels and awaits the calls in flight; no orphans."""
    fault_server.route("GET", "/items/{id}", Fault.ok(json={}), Fault.hang())
    fault_server.route("GET", "/items/1", Fault.ok(json={}))
    async with tether.open(spec_text(SPEC, fault_server.url)) as api:
        inputs = [{"id": "1"}, *({"id": str(i)} for i in range(2, 6))]
        async with api.call_many("get_item", inputs, concurrency=5) as outcomes:
            async for first in outcomes:
                assert first.ok
                break
        assert _call_tasks() == []


async def test_dropping_the_iterator_cancels_its_calls(fault_server: FaultServer) -> None:
    """Without async with, breaking out and dropping the iterator still cancels what runs."""
    fault_server.route("GET", "/items/{id}", Fault.hang())
    fault_server.route("GET", "/items/1", Fault.ok(json={}))
    async with tether.open(spec_text(SPEC, fault_server.url)) as api:
        batch = api.call_many("get_item", [{"id": "1"}, {"id": "2"}, {"id": "3"}], concurrency=3)
        async for _ in batch:
            break
        running = _call_tasks()
        assert running
        del batch
        await asyncio.gather(*running, return_exceptions=True)
        assert all(t.cancelled() for t in running)


async def test_cancelling_the_consumer_cancels_the_batch(fault_server: FaultServer) -> None:
    """Cancelling the task that iterates cancels every call it started."""
    fault_server.route("GET", "/items/{id}", Fault.hang())
    async with tether.open(spec_text(SPEC, fault_server.url)) as api:

        async def consume() -> None:
            async for _ in api.call_many("get_item", [{"id": str(i)} for i in range(4)], concurrency=4):
                pass

        task = asyncio.create_task(consume())
        await until(lambda: len(fault_server.log) == 4)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        assert all(t.done() for t in _call_tasks())


async def test_call_many_checks_its_arguments(fault_server: FaultServer) -> None:
    """A bad concurrency or an unknown endpoint fails at once, before any call."""
    async with tether.open(spec_text(SPEC, fault_server.url)) as api:
        with pytest.raises(ValueError, match="concurrency"):
            api.call_many("get_item", [], concurrency=0)
        with pytest.raises(tether.SpecError):
            api.call_many("nope", [])
    assert fault_server.log == []


async def test_status_is_a_plain_snapshot_of_the_policies(fault_server: FaultServer) -> None:
    """status() has breaker, limiter, bulkhead, auth and endpoint latency vs targets, as plain data."""
    fault_server.route("GET", "/items/{id}", Fault.ok(json={}))
    async with tether.open(spec_text(SPEC, fault_server.url)) as api:
        await api.call("get_item", id="1")
        status = api.status()
    json.dumps(status)  # plain data all the way down
    assert status["service"] == "batch"
    assert status["breaker"]["state"] == "closed"
    assert status["limiter"]["limit"] == 1000
    assert status["bulkhead"] == {"in_flight": 0, "queued": 0, "max_concurrent": 8, "max_queue": 50}
    assert status["auth"]["scheme"] == "Bearer"
    endpoint = status["endpoints"]["get_item"]
    assert endpoint["calls"] == 1
    assert endpoint["targets"] == {"p95": 5.0}
    assert "batch-token-0001" not in json.dumps(status)
