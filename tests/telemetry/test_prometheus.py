"""The Prometheus listener turns pipeline events into DESIGN 6's metrics, with safe labels."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

import tether
from tether._redact import registry as secrets
from tether.mock import Fault, FaultServer
from tether.telemetry import PrometheusListener


def _value(reg: CollectorRegistry, name: str, **labels: str) -> float:
    value = reg.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_requests_latency_retries_and_breaker_are_counted(fault_server: FaultServer) -> None:
    """A 503 then 200 with retry counts two exchanges, one retry, latency samples; an open breaker sets 1."""
    fault_server.route("GET", "/flaky", Fault.status(503), Fault.ok(json={"ok": True}))
    fault_server.route("GET", "/dead", Fault.status(500))
    reg = CollectorRegistry()
    client = tether.Client(
        fault_server.url,
        service="vendor",
        retry=tether.Retry(attempts=2, initial=0.01, jitter=False),
        breaker=tether.Breaker(failures=2, open_for=60),
        listeners=[PrometheusListener(reg)],
    )
    async with client:
        await client.get("/flaky", endpoint="get_flaky")
        with pytest.raises(tether.APIError):
            await client.get("/dead", endpoint="get_dead")
        with pytest.raises(tether.CircuitOpenError):
            await client.get("/dead", endpoint="get_dead")
    assert _value(reg, "provider_requests_total", provider="vendor", endpoint="get_flaky", status="503") == 1
    assert _value(reg, "provider_requests_total", provider="vendor", endpoint="get_flaky", status="200") == 1
    assert _value(reg, "retry_attempts_total", provider="vendor", endpoint="get_flaky") == 1
    assert _value(reg, "provider_latency_seconds_count", provider="vendor", endpoint="get_flaky") == 2
    assert _value(reg, "circuit_breaker_state", provider="vendor") == 1


async def test_connection_errors_and_429s_are_counted() -> None:
    """A refused connection counts as an error by type; a 429 counts in rate_limit_429_total."""
    reg = CollectorRegistry()
    listener = PrometheusListener(reg)
    async with FaultServer() as server:
        server.route("GET", "/limited", Fault.rate_limited(retry_after=1))
        client = tether.Client(server.url, service="v", retry=None, breaker=None, listeners=[listener])
        async with client:
            with pytest.raises(tether.RateLimitExceeded):
                await client.get("/limited")
    refused = tether.Client(
        "http://127.0.0.1:9",
        service="down",
        retry=None,
        breaker=None,
        listeners=[listener],
    )
    async with refused:
        with pytest.raises(tether.ConnectionError):
            await refused.get("/x")
    assert _value(reg, "rate_limit_429_total", provider="v") == 1
    assert (
        _value(reg, "provider_errors_total", provider="down", endpoint="-", error_type="ConnectionError") == 1
    )


async def test_labels_never_carry_secrets(fault_server: FaultServer) -> None:
    """The exported text holds no credential, even when URLs and headers carried one."""
    fault_server.route("GET", "/x", Fault.status(500))
    reg = CollectorRegistry()
    canary = "prom-canary-4f1c9a7e"
    with secrets.isolated():
        client = tether.Client(
            fault_server.url,
            auth=tether.Bearer(canary),
            params={"api_key": canary},
            retry=None,
            breaker=None,
            listeners=[PrometheusListener(reg)],
        )
        async with client:
            with pytest.raises(tether.APIError):
                await client.get("/x")
    exported = generate_latest(reg).decode()
    assert "provider_requests_total" in exported
    assert canary not in exported


def test_several_listeners_share_one_registry() -> None:
    """Two clients' listeners on the same registry share its metric families instead of clashing."""
    reg = CollectorRegistry()
    first, second = PrometheusListener(reg), PrometheusListener(reg)
    assert first.requests is second.requests
    assert PrometheusListener(CollectorRegistry()).requests is not first.requests
