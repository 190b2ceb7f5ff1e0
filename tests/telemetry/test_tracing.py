"""OpenTelemetry: one span per call, one child span per attempt, credentials masked."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import tether
from tether._redact import registry
from tether.mock import Fault, FaultServer
from tether.telemetry import Tracing


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    """An in-memory span exporter."""
    return InMemorySpanExporter()


def _client(server: FaultServer, exporter: InMemorySpanExporter, **kwargs: object) -> tether.Client:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return tether.Client(
        server.url,
        service="vendor",
        retry=tether.Retry(attempts=3, initial=0.01, jitter=False),
        breaker=None,
        policies=[Tracing(tracer_provider=provider)],
        **kwargs,  # type: ignore[arg-type]
    )


async def test_a_retried_call_is_one_span_with_a_child_per_attempt(
    fault_server: FaultServer, exporter: InMemorySpanExporter
) -> None:
    """503 then 200: a call span with two CLIENT children, the second marked as a resend."""
    fault_server.route("GET", "/flaky", Fault.status(503), Fault.ok(json={"ok": True}))
    async with _client(fault_server, exporter) as client:
        await client.get("/flaky", endpoint="get_flaky")
    spans = exporter.get_finished_spans()
    call = next(s for s in spans if s.name == "vendor get_flaky")
    attempts = [s for s in spans if s.kind == SpanKind.CLIENT]
    assert len(attempts) == 2
    assert all(a.parent is not None and a.parent.span_id == call.context.span_id for a in attempts)
    assert [a.attributes["http.response.status_code"] for a in attempts] == [503, 200]
    assert attempts[0].status.status_code == StatusCode.ERROR
    assert attempts[1].attributes["http.request.resend_count"] == 1
    assert call.attributes["tether.attempts"] == 2
    assert call.attributes["http.response.status_code"] == 200


async def test_a_failed_call_records_the_error_type(
    fault_server: FaultServer, exporter: InMemorySpanExporter
) -> None:
    """A call that ends in NotFoundError has an ERROR status and error.type on its span."""
    fault_server.route("GET", "/missing", Fault.status(404))
    async with _client(fault_server, exporter) as client:
        with pytest.raises(tether.NotFoundError):
            await client.get("/missing")
    call = next(s for s in exporter.get_finished_spans() if s.kind != SpanKind.CLIENT)
    assert call.status.status_code == StatusCode.ERROR
    assert call.attributes["error.type"] == "NotFoundError"


async def test_traceparent_is_propagated_and_no_secret_is_recorded(
    fault_server: FaultServer, exporter: InMemorySpanExporter
) -> None:
    """The server receives a traceparent header; span attributes hold no credential."""
    fault_server.route("GET", "/x", Fault.ok(json={}))
    canary = "trace-canary-0b7e3d11"
    with registry.isolated():
        async with _client(fault_server, exporter, params={"api_key": canary}) as client:
            await client.get("/x")
    assert fault_server.log[0].headers.get("traceparent", "").startswith("00-")
    for span in exporter.get_finished_spans():
        assert canary not in str(dict(span.attributes or {}))


async def test_untraced_clients_open_no_spans(
    fault_server: FaultServer, exporter: InMemorySpanExporter
) -> None:
    """Without the Tracing policy nothing is traced and no traceparent is sent."""
    fault_server.route("GET", "/x", Fault.ok(json={}))
    async with tether.Client(fault_server.url, retry=None, breaker=None) as client:
        await client.get("/x")
    assert exporter.get_finished_spans() == ()
    assert "traceparent" not in fault_server.log[0].headers
