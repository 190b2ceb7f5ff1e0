"""monitoring.alerts: rules over a rolling window of calls fire once and resolve, from code and spec."""

from __future__ import annotations

import pytest

import tether
from tether import events as ev
from tether.events import Event, EventBus, EventRecorder
from tether.mock import Fault, FaultServer
from tether.telemetry import AlertEvaluator, AlertRule
from tether.testing import VirtualClock


def _call(ok: bool, elapsed: float = 0.1, attempts: int = 1) -> Event:
    name = ev.CALL_SUCCEEDED if ok else ev.CALL_FAILED
    return Event.make(name, service="svc", elapsed=elapsed, attempts=attempts, from_cache=False)


def _wired(
    rules: list[AlertRule], clock: VirtualClock, **kwargs: object
) -> tuple[AlertEvaluator, EventRecorder]:
    recorder = EventRecorder()
    evaluator = AlertEvaluator(rules, clock=clock, **kwargs)  # type: ignore[arg-type]
    evaluator.bind(EventBus([recorder]))
    return evaluator, recorder


def test_error_rate_fires_once_after_min_calls_and_resolves() -> None:
    """error_rate > 0.5 waits for 10 calls, fires once while it holds, resolves when it stops."""
    clock = VirtualClock()
    evaluator, recorder = _wired([AlertRule("error_rate", ">", 0.5, window=60)], clock)
    for _ in range(9):
        evaluator(_call(ok=False))
    assert recorder.of(ev.ALERT_FIRED) == []  # 9 calls: not enough to judge a rate
    for _ in range(5):
        evaluator(_call(ok=False))
    fired = recorder.of(ev.ALERT_FIRED)
    assert len(fired) == 1
    assert fired[0].fields["condition"] == "error_rate > 0.5"
    assert evaluator.firing == ["error_rate > 0.5"]
    for _ in range(20):
        evaluator(_call(ok=True))
    assert len(recorder.of(ev.ALERT_RESOLVED)) == 1
    assert evaluator.firing == []


def test_the_window_forgets_old_calls() -> None:
    """Failures older than the window no longer count."""
    clock = VirtualClock()
    evaluator, _ = _wired([AlertRule("error_rate", ">", 0.5, window=60)], clock)
    for _ in range(10):
        evaluator(_call(ok=False))
    clock.advance(61)
    for _ in range(10):
        evaluator(_call(ok=True))
    assert evaluator.metric("error_rate", 60) == 0.0


def test_latency_percentile_and_throughput() -> None:
    """p95 is the 95th-percentile elapsed time; throughput is calls per second of the window."""
    clock = VirtualClock()
    evaluator, recorder = _wired([AlertRule("response_time_p95", ">", 0.5, window=10)], clock)
    for i in range(20):
        evaluator(_call(ok=True, elapsed=1.0 if i == 19 else 0.1))
    assert evaluator.metric("response_time_p95", 10) == pytest.approx(0.1)
    assert evaluator.metric("throughput", 10) == pytest.approx(2.0)
    assert recorder.of(ev.ALERT_FIRED) == []
    evaluator(_call(ok=True, elapsed=1.0))
    evaluator(_call(ok=True, elapsed=1.0))
    assert len(recorder.of(ev.ALERT_FIRED)) == 1


def test_breaker_opening_is_an_alert_when_asked() -> None:
    """alert_on_open turns breaker.opened into a critical alert."""
    clock = VirtualClock()
    evaluator, recorder = _wired([], clock, alert_on_open=True)
    evaluator(Event.make(ev.BREAKER_OPENED, service="svc"))
    (alert,) = recorder.of(ev.ALERT_FIRED)
    assert alert.fields["condition"] == "circuit_open"
    assert alert.fields["severity"] == "critical"


def test_bad_rules_are_refused() -> None:
    """An unknown comparison or a non-positive window is refused with the value named."""
    with pytest.raises(ValueError, match="'~'"):
        AlertRule("error_rate", "~", 0.1)
    with pytest.raises(ValueError, match="window"):
        AlertRule("error_rate", ">", 0.1, window=0)


SPEC = """
service: {{name: vendor, base_url: "{url}"}}
retry: {{max_attempts: 1}}
circuit_breaker: {{failure_threshold: 100}}
monitoring:
  metrics_enabled: false
  alerts:
    - {{condition: "error_rate > 0.5", severity: critical, window: 60s}}
endpoints:
  get_item:
    path: /items/{{id}}
    method: GET
    parameters: [{{name: id, in: path, type: string, required: true}}]
"""


async def test_a_spec_alert_fires_from_real_calls(fault_server: FaultServer) -> None:
    """A spec's monitoring.alerts rule fires once when most calls fail against the mock."""
    fault_server.route("GET", "/items/{id}", Fault.status(503))
    recorder = EventRecorder()
    spec = tether.spec.load(SPEC.format(url=fault_server.url), environ={})
    async with tether.open(spec, listeners=[recorder]) as api:
        for n in range(12):
            with pytest.raises(tether.APIError):
                await api.call("get_item", id=str(n))
        assert api.alerts is not None
        assert api.alerts.firing == ["error_rate > 0.5"]
    fired = recorder.of(ev.ALERT_FIRED)
    assert len(fired) == 1
    assert fired[0].fields["severity"] == "critical"
    assert fired[0].service == "vendor"
