"""Each policy section of a spec has its effect on the wire (the keys tether check calls enforced)."""

from __future__ import annotations

import asyncio

import pytest
from integration_helpers import spec_text, until

import tether
from tether.errors import BulkheadFull, CircuitOpenError, RateLimitRejected, ResponseError
from tether.mock import Fault, FaultServer

BASE = """\
service: {name: effects, base_url: "@URL@"}
endpoints:
  thing: {path: /thing}
"""


def _open(server: FaultServer, sections: str) -> tether.Integration:
    return tether.open(spec_text(BASE, server.url) + sections)


async def test_retry_max_attempts_bounds_the_attempts(fault_server: FaultServer) -> None:
    """retry.max_attempts: 2 sends a failing call exactly twice."""
    fault_server.route("GET", "/thing", Fault.status(503))
    async with _open(fault_server, "retry: {max_attempts: 2, initial_delay: 1, max_delay: 2}\n") as api:
        with pytest.raises(tether.APIError):
            await api.call("thing")
    assert len(fault_server.log) == 2


async def test_circuit_breaker_threshold_opens_and_fails_fast(fault_server: FaultServer) -> None:
    """circuit_breaker.failure_threshold: 2 opens after two failures; the next call is not sent."""
    fault_server.route("GET", "/thing", Fault.status(500))
    sections = "retry: {enabled: false}\ncircuit_breaker: {failure_threshold: 2, timeout: 60}\n"
    async with _open(fault_server, sections) as api:
        for _ in range(2):
            with pytest.raises(tether.APIError):
                await api.call("thing")
        with pytest.raises(CircuitOpenError):
            await api.call("thing")
    assert len(fault_server.log) == 2


async def test_rate_limits_with_reject_refuse_the_call_over_the_limit(fault_server: FaultServer) -> None:
    """rate_limits 1/minute + throttling.on_limit reject: the second call is refused unsent."""
    fault_server.route("GET", "/thing", Fault.ok(json={}))
    sections = "rate_limits: {requests_per_minute: 1}\nthrottling: {on_limit: reject}\n"
    async with _open(fault_server, sections) as api:
        await api.call("thing")
        with pytest.raises(RateLimitRejected):
            await api.call("thing")
    assert len(fault_server.log) == 1


async def test_bulkhead_limits_concurrent_calls(fault_server: FaultServer) -> None:
    """bulkhead max_concurrent 1 / max_queue 0: a second concurrent call is BulkheadFull, unsent."""
    fault_server.route("GET", "/thing", Fault.hang())
    sections = "retry: {enabled: false}\nbulkhead: {max_concurrent: 1, max_queue: 0}\n"
    async with _open(fault_server, sections) as api:
        first = asyncio.create_task(api.call("thing"))
        await until(lambda: bool(fault_server.log))
        with pytest.raises(BulkheadFull):
            await api.call("thing")
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
    assert len(fault_server.log) == 1


async def test_timeouts_bound_an_attempt(fault_server: FaultServer) -> None:
    """timeouts.attempt: a server that never answers ends the call with TimeoutError(attempt)."""
    fault_server.route("GET", "/thing", Fault.hang())
    async with _open(fault_server, "retry: {enabled: false}\ntimeouts: {attempt: 100ms, total: 5s}\n") as api:
        with pytest.raises(tether.TimeoutError) as caught:
            await api.call("thing")
    assert caught.value.phase == "attempt"


async def test_http_max_response_size_refuses_a_larger_body(fault_server: FaultServer) -> None:
    """http.max_response_size: 1KB refuses a 4 KB body with ResponseError(too_large)."""
    fault_server.route("GET", "/thing", Fault.ok(text="x" * 4000))
    async with _open(fault_server, "retry: {enabled: false}\nhttp: {max_response_size: 1KB}\n") as api:
        with pytest.raises(ResponseError) as caught:
            await api.call("thing")
    assert caught.value.reason == "too_large"


async def test_http_follow_redirects_follows(fault_server: FaultServer) -> None:
    """http.follow_redirects: true follows a 302 to the target."""
    fault_server.route("GET", "/thing", Fault.redirect("/there"))
    fault_server.route("GET", "/there", Fault.ok(json={"here": True}))
    async with _open(fault_server, "http: {follow_redirects: true}\n") as api:
        result = await api.call("thing")
    assert result.data == {"here": True}
