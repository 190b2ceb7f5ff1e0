"""Service levels: per-operation percentiles, error rate, retry success, cache hits and breaker
recovery over a rolling window, beside their targets; shared through the state store; alerted."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tether
from tether import events as ev
from tether.cli import _register, app
from tether.dataapi import APICredentials, DataAPIClient, RateLimitTier, serve_mock
from tether.events import EventBus, EventRecorder
from tether.mock import Fault, FaultServer
from tether.spec import load, not_enforced
from tether.state.sqlite import SQLiteStore
from tether.telemetry._sla import LatencyTargets, SlaRecorder, SlaTargets, sla_rows
from tether.testing import VirtualClock

TARGETS = SlaTargets(
    latency={"get": LatencyTargets(p50=0.15, p95=0.5, p99=1.0)},
    error_rate=0.005,
    availability=0.995,
    retry_success_rate=0.8,
    cache_hit_rate=0.7,
    breaker_recovery=60.0,
    window=600.0,
    cached=frozenset({"get"}),
)


def _calls(recorder: SlaRecorder) -> None:
    """100 calls of "get": 90 fast cache hits, 10 of 600 ms; 4 retried (3 then succeeded), one
    server error, two rate-limit refusals and one breaker rejection (not errors)."""
    for i in range(100):
        recorder.record("get", 0.6 if i >= 90 else 0.04, from_cache=i < 90, attempts=2 if 90 <= i < 94 else 1)
    recorder.record("get", 0.2, error_code="API_001", attempts=2)
    for code in ("RATE_001", "RATE_001", "CIRCUIT_001"):
        recorder.record("get", 0.001, error_code=code)


def test_figures_and_marks_over_the_window() -> None:
    """Percentiles from the fixed histogram, rates with refusals left out, each marked against its target."""
    clock = VirtualClock()
    recorder = SlaRecorder("api", TARGETS, operations=["get"], clock=clock)
    _calls(recorder)
    entry = recorder.report()["operations"]["get"]
    assert entry["calls"] == 104 and entry["excluded"] == 3
    assert (entry["p50"]["value"], entry["p50"]["mark"]) == (0.05, "pass")
    assert (entry["p95"]["value"], entry["p95"]["mark"]) == (0.6, "short")  # 10 % took 600 ms > 500 ms
    assert (entry["p99"]["value"], entry["p99"]["mark"]) == (0.6, "pass")
    assert entry["error_rate"]["value"] == pytest.approx(1 / 101)
    assert entry["error_rate"]["mark"] == "short"
    assert entry["retry_success_rate"]["value"] == pytest.approx(4 / 5)
    assert entry["retry_success_rate"]["mark"] == "pass"
    assert entry["cache_hit_rate"]["value"] == pytest.approx(90 / 100)  # the refusals looked nothing up
    assert entry["cache_hit_rate"]["mark"] == "pass"
    clock.advance(601)
    recorder.record("get", 0.01)
    assert recorder.report()["operations"]["get"]["calls"] == 1  # the old minutes left the window


def test_breaker_recovery_is_timed_from_open_to_closed() -> None:
    """breaker.opened → breaker.closed 45 s later passes a 60 s target; 75 s later is short."""
    clock = VirtualClock()
    recorder = SlaRecorder("api", TARGETS, operations=["get"], clock=clock)
    for took in (45.0, 75.0):
        recorder(ev.Event.make(ev.BREAKER_OPENED, service="api"))
        clock.advance(took)
        recorder(ev.Event.make(ev.BREAKER_CLOSED, service="api"))
        recovery = recorder.report()["breaker_recovery"]
    assert (recovery["value"], recovery["recoveries"], recovery["mark"]) == (75.0, 2, "short")


async def test_two_instances_add_up_in_the_state_store(tmp_path: Path) -> None:
    """Two recorders (two processes' worth) flush into one SQLite store; a third reads the sum."""
    clock = VirtualClock()
    store = SQLiteStore(tmp_path / "state.db")
    first, second, reader = (
        SlaRecorder("api", TARGETS, operations=["get"], store=store, clock=clock) for _ in range(3)
    )
    _calls(first)
    _calls(second)
    await first.flush()
    await second.flush()
    shared = (await reader.fetch_report())["operations"]["get"]
    await store.aclose()
    assert shared["calls"] == 208
    assert shared["error_rate"]["value"] == pytest.approx(2 / 202)
    assert shared["p95"]["value"] == 0.6


async def test_a_missed_target_fires_one_alert_and_resolves() -> None:
    """A p95 over target fires alert.fired (source sla) once; fast calls later resolve it."""
    clock = VirtualClock()
    targets = SlaTargets(latency={"get": LatencyTargets(p95=0.5)}, window=120.0)
    recorder = SlaRecorder("api", targets, operations=["get"], clock=clock)
    events = EventRecorder()
    recorder.bind(EventBus([events], service="api"))
    for _ in range(10):
        recorder.record("get", 0.9)
    await recorder.flush()
    await recorder.flush()
    fired = events.of(ev.ALERT_FIRED)
    assert [e.fields["condition"] for e in fired] == ["sla get p95"]
    assert fired[0].fields["source"] == "sla" and recorder.firing == ["get p95"]
    clock.advance(181)
    for _ in range(10):
        recorder.record("get", 0.1)
    await recorder.flush()
    assert [e.fields["condition"] for e in events.of(ev.ALERT_RESOLVED)] == ["sla get p95"]


def test_the_sla_section_is_enforced() -> None:
    """sla keys are no longer reported as not enforced (support_hours is informational)."""
    spec = load(Path(__file__).resolve().parents[2] / "specs" / "dataapi.yaml")
    assert not [key for key in not_enforced(spec) if key.startswith("sla")]


async def test_tether_status_shows_every_instances_service_levels(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    """Calls made by an integration on a SQLite store; `tether status` (another store handle)
    shows each figure beside its target with a mark."""
    fault_server.route("GET", "/item", Fault.ok(json={"ok": True}))
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"""
service: {{name: levels, base_url: "{fault_server.url}"}}
state: {{url: "sqlite:///{tmp_path / "state.db"}"}}
cache: {{ttl: 60s}}
sla: {{response_time: {{p95: 500ms}}, error_rate: 1%, cache_hit_rate: 50%, breaker_recovery: 60s}}
endpoints:
  item: {{path: /item, method: GET, performance: {{p50: 150ms, p95: 500ms, p99: 1s}}}}
"""
    )
    async with tether.open(spec) as api:
        for _ in range(4):
            await api.call("item")
        local = api.status()["sla"]["operations"]["item"]
    assert local["calls"] == 4 and local["cache_hit_rate"]["value"] == 0.75
    _register()
    runner = CliRunner()
    # The command runs its own event loop: invoke it from another thread, as from a shell.
    result = await asyncio.to_thread(runner.invoke, app, ["status", str(spec), "--json"])
    assert result.exit_code == 0, result.output
    shared = json.loads(result.output)["sla"]
    assert shared["operations"]["item"]["calls"] == 4
    rows = {
        (op.split(" ")[0], figure): (value, target, mark)
        for op, figure, value, target, mark in sla_rows(shared)
    }
    assert rows[("item", "p95")][1:] == ("500 ms", "pass")
    assert rows[("item", "cache_hit_rate")] == ("75.00 %", "50.00 %", "pass")
    assert rows[("breaker", "breaker_recovery")][2] == "no data"
    table = await asyncio.to_thread(runner.invoke, app, ["status", str(spec)])
    assert "service levels" in table.output and "cache_hit_rate" in table.output


async def test_the_data_api_client_reports_its_operations() -> None:
    """A batch and a multi-page history are one operation each; single calls are get_data."""
    async with await serve_mock() as server:
        client = DataAPIClient(base_url=server.base_url, environ={})
        await client.connect(APICredentials(api_key="sk-sla-test", tier=RateLimitTier.PREMIUM))
        try:
            await client.get_data("ITEM-001")
            _ = [item async for item in client.get_data_batch([f"ITEM-{i:03d}" for i in range(2, 12)])]
            await client.get_historical("ITEM-001", date(2024, 1, 1), date(2024, 12, 31))
            levels = await client.service_levels()
        finally:
            await client.disconnect()
    ops = levels["operations"]
    assert ops["get_data"]["calls"] == 11
    assert ops["get_data_batch"]["calls"] == 1
    assert ops["get_historical"]["calls"] == 1
    assert ops["get_data_batch"]["p95"]["target"] == 2.0
    assert ops["get_historical"]["p99"]["target"] == 5.0
    assert ops["get_data"]["cache_hit_rate"]["target"] == 0.7
