"""Budgets: cost and bandwidth per calendar month — alerts once, hard stop before sending,
counters that survive a restart and reset with the month."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import tether
from tether.events import EventRecorder
from tether.mock import Fault, FaultServer
from tether.pipeline.breaker import Breaker
from tether.pipeline.budget import Budget, Pricing, month_bounds
from tether.pipeline.retry import Retry
from tether.state import MemoryStore, StateStore
from tether.testing import VirtualClock

JAN_31_LATE = datetime(2027, 1, 31, 23, 59, tzinfo=UTC).timestamp()


def budget_client(
    server: FaultServer,
    budget: Budget,
    *,
    recorder: EventRecorder | None = None,
    state: StateStore | str | None = None,
    clock: VirtualClock | None = None,
    **kwargs: Any,
) -> tether.Client:
    """A client with only the budget policy (no retry, no breaker) unless kwargs add more."""
    options: dict[str, Any] = {"retry": None, "breaker": None, **kwargs}
    if clock is not None:
        options.update(clock=clock, timeout=None)
    return tether.Client(
        server.url,
        policies=[budget],
        listeners=[recorder] if recorder is not None else [],
        state=state,
        **options,
    )


def thresholds(recorder: EventRecorder, kind: str = "cost") -> list[float]:
    return [
        e.fields["threshold"]
        for e in recorder.of("budget.alert")
        if e.fields["budget"] == kind and e.fields["action"] == "alert"
    ]


async def test_cost_alerts_fire_once_at_70_85_95(fault_server: FaultServer) -> None:
    """At 1.00 a call and a 10.00 budget, alerts fire at calls 7, 9 and 10, and never again."""
    fault_server.route("GET", "/x", Fault.ok(json={}))
    recorder = EventRecorder()
    options = Budget(monthly_limit=10.0, pricing=Pricing.per_request(1.0))
    async with budget_client(fault_server, options, recorder=recorder) as client:
        seen: list[list[float]] = []
        for _ in range(12):
            await client.get("x")
            seen.append(thresholds(recorder))
        status = await client.pipeline.policy("budget").fetch_status()
    assert seen[5] == []
    assert seen[6] == [70.0]
    assert seen[8] == [70.0, 85.0]
    assert seen[9] == seen[11] == [70.0, 85.0, 95.0]
    alert = recorder.of("budget.alert")[0]
    assert (alert.fields["used"], alert.fields["limit"], alert.fields["ratio"]) == (7.0, 10.0, 0.7)
    assert status["cost"]["used"] == 12.0
    assert status["cost"]["ratio"] == pytest.approx(1.2)  # no hard stop: it only warns
    assert len(fault_server.log) == 12


async def test_hard_stop_rejects_before_sending(fault_server: FaultServer) -> None:
    """With hard_stop the call that would pass the limit raises BudgetExceeded and is never sent."""
    fault_server.route("GET", "/x", Fault.ok(json={}))
    recorder = EventRecorder()
    options = Budget(monthly_limit=3.0, pricing=Pricing.per_request(1.0), hard_stop=True)
    async with budget_client(fault_server, options, recorder=recorder) as client:
        for _ in range(3):
            await client.get("x")
        with pytest.raises(tether.BudgetExceeded) as raised:
            await client.get("x", endpoint="get_x")
        with pytest.raises(tether.BudgetExceeded):
            await client.get("x")
        status = await client.pipeline.policy("budget").fetch_status()
    assert len(fault_server.log) == 3
    assert raised.value.endpoint == "get_x"
    assert "not sent" in str(raised.value)
    assert status["cost"] == {"used": 3.0, "limit": 3.0, "ratio": 1.0, "requests": 3, "hard_stop": True}
    [stop] = [e for e in recorder.of("budget.alert") if e.fields["action"] == "hard_stop"]
    assert stop.fields["budget"] == "cost"


async def test_budget_survives_a_restart_on_a_sqlite_store(fault_server: FaultServer, tmp_path: Path) -> None:
    """A new client and policy on the same SQLite file continue the month's count and its alerts."""
    fault_server.route("GET", "/x", Fault.ok(json={}))
    state = f"sqlite:///{tmp_path / 'state.db'}"
    options = Budget(monthly_limit=10.0, pricing=Pricing.per_request(1.0), hard_stop=True)
    first = EventRecorder()
    async with budget_client(fault_server, options, recorder=first, state=state) as client:
        for _ in range(7):
            await client.get("x")
    assert thresholds(first) == [70.0]
    second = EventRecorder()
    async with budget_client(fault_server, options, recorder=second, state=state) as client:
        status = await client.pipeline.policy("budget").fetch_status()
        assert status["cost"]["used"] == 7.0
        for _ in range(3):
            await client.get("x")
        with pytest.raises(tether.BudgetExceeded):
            await client.get("x")
    assert thresholds(second) == [85.0, 95.0]  # 70 % fired before the restart: not again
    assert len(fault_server.log) == 10


async def test_a_fresh_policy_on_the_same_memory_store_continues(fault_server: FaultServer) -> None:
    """Counters live in the store, not in the policy object."""
    fault_server.route("GET", "/x", Fault.ok(json={}))
    store = MemoryStore()
    options = Budget(monthly_limit=5.0, pricing=Pricing.per_request(1.0), hard_stop=True)
    for _ in range(5):
        async with budget_client(fault_server, options, state=store) as client:
            await client.get("x")
    async with budget_client(fault_server, options, state=store) as client:
        with pytest.raises(tether.BudgetExceeded):
            await client.get("x")


async def test_a_new_month_starts_from_zero(fault_server: FaultServer) -> None:
    """In virtual time, a spent January budget is fresh again on February 1st (UTC)."""
    fault_server.route("GET", "/x", Fault.ok(json={}))
    clock = VirtualClock(epoch=JAN_31_LATE)
    recorder = EventRecorder()
    options = Budget(monthly_limit=2.0, pricing=Pricing.per_request(1.0), hard_stop=True)
    async with budget_client(fault_server, options, recorder=recorder, clock=clock) as client:
        policy = client.pipeline.policy("budget")
        await client.get("x")
        await client.get("x")
        with pytest.raises(tether.BudgetExceeded):
            await client.get("x")
        january = await policy.fetch_status()
        assert policy.status() == january  # the last call's view, no I/O
        clock.advance(120)  # 2027-02-01 00:01 UTC
        assert policy.status()["cost"]["used"] == 0.0
        february = await policy.fetch_status()
        await client.get("x")
        await client.get("x")
        with pytest.raises(tether.BudgetExceeded):
            await client.get("x")
    assert (january["month"], january["cost"]["used"]) == ("2027-01", 2.0)
    assert (february["month"], february["cost"]["used"]) == ("2027-02", 0.0)
    months = [e.fields["month"] for e in recorder.of("budget.alert") if e.fields["threshold"] == 70.0]
    assert months == ["2027-01", "2027-02"]
    assert len(fault_server.log) == 4


def test_month_bounds_are_utc_calendar_months() -> None:
    """month_bounds gives the UTC month's name, start and the next month's start (December too)."""
    name, start, end = month_bounds(datetime(2026, 12, 15, 12, tzinfo=UTC).timestamp())
    assert name == "2026-12"
    assert start == datetime(2026, 12, 1, tzinfo=UTC).timestamp()
    assert end == datetime(2027, 1, 1, tzinfo=UTC).timestamp()


async def test_bandwidth_counts_bytes_alerts_and_prefers_the_cache_at_95(fault_server: FaultServer) -> None:
    """Request + response bytes are counted; alerts fire; from 95 % calls carry prefer_cache."""
    fault_server.route("POST", "/x", Fault.ok(body=b"r" * 250))
    recorder = EventRecorder()
    options = Budget(bandwidth_limit=1000)
    store = MemoryStore()
    async with budget_client(fault_server, options, recorder=recorder, state=store) as client:
        prefer: list[bool] = []
        for _ in range(4):
            request = client.build_request("POST", "x", content=b"q" * 50)
            await client.send(request)
            prefer.append(bool(request.extensions["tether"].extras.get("prefer_cache")))
        status = await client.pipeline.policy("budget").fetch_status()
    assert status["bandwidth"]["used"] == 1200
    assert status["bandwidth"]["prefer_cache"] is True
    assert prefer == [False, False, False, False]  # decided before each call: 0, 300, 600, 900 bytes
    assert thresholds(recorder, "bandwidth") == [70.0, 85.0, 95.0]
    async with budget_client(fault_server, options, state=store) as again:
        request = again.build_request("POST", "x", content=b"q")
        await again.send(request)
    assert request.extensions["tether"].extras["prefer_cache"] is True


async def test_bandwidth_hard_stop_refuses_once_spent(fault_server: FaultServer) -> None:
    """bandwidth_hard_stop refuses a call whose body would take the month past the limit."""
    fault_server.route("GET", "/x", Fault.ok(body=b"r" * 400))
    options = Budget(bandwidth_limit="1KB", bandwidth_hard_stop=True)
    async with budget_client(fault_server, options) as client:
        await client.get("x")
        await client.get("x")
        await client.get("x")  # 800 bytes used before it: allowed, ends at 1200
        with pytest.raises(tether.BudgetExceeded, match="bandwidth"):
            await client.get("x")
    assert len(fault_server.log) == 3


async def test_per_gb_tiered_and_subscription_pricing(fault_server: FaultServer) -> None:
    """Each pricing model charges what it says over a few calls."""
    fault_server.route("POST", "/x", Fault.ok(body=b"r" * 600))
    per_gb = Budget(monthly_limit=1.0, pricing=Pricing.per_gb(1000.0))  # 0.000001 a byte
    tiered = Budget(monthly_limit=10.0, pricing=Pricing.tiered([(2, 0.0), (4, 1.0), (None, 0.5)]))
    subscription = Budget(monthly_limit=100.0, pricing=Pricing.subscription(50.0, included=2, overage=1.0))
    used = {}
    for name, options in (("per_gb", per_gb), ("tiered", tiered), ("subscription", subscription)):
        async with budget_client(fault_server, options) as client:
            for _ in range(6):
                await client.post("x", content=b"q" * 400)
            used[name] = (await client.pipeline.policy("budget").fetch_status())["cost"]["used"]
    assert used["per_gb"] == pytest.approx(6 * 1000 * 1e-6)
    assert used["tiered"] == pytest.approx(0 + 0 + 1 + 1 + 0.5 + 0.5)
    assert used["subscription"] == pytest.approx(50 + 4 * 1.0)


async def test_retries_are_charged_as_requests(fault_server: FaultServer) -> None:
    """A call that took three attempts costs three requests."""
    fault_server.route("GET", "/x", Fault.status(503), Fault.status(503), Fault.ok(json={}))
    options = Budget(monthly_limit=10.0, pricing=Pricing.per_request(1.0))
    retry = Retry(attempts=3, initial=0.01, max_delay=0.01, jitter=False, budget=None)
    async with budget_client(fault_server, options, retry=retry) as client:
        await client.get("x")
        status = await client.pipeline.policy("budget").fetch_status()
    assert (status["cost"]["used"], status["cost"]["requests"]) == (3.0, 3)
    assert len(fault_server.log) == 3


async def test_a_call_refused_locally_costs_nothing(fault_server: FaultServer) -> None:
    """A call the open breaker refused (never sent) is refunded."""
    fault_server.route("GET", "/x", Fault.status(503))
    options = Budget(monthly_limit=10.0, pricing=Pricing.per_request(1.0))
    async with budget_client(fault_server, options, breaker=Breaker(failures=1, open_for=60)) as client:
        with pytest.raises(tether.APIError):
            await client.get("x")
        with pytest.raises(tether.CircuitOpenError):
            await client.get("x")
        status = await client.pipeline.policy("budget").fetch_status()
    assert (status["cost"]["used"], status["cost"]["requests"]) == (1.0, 1)
    assert len(fault_server.log) == 1


def test_options_state_the_rule_and_the_bad_value() -> None:
    """Budget and Pricing refuse bad input with messages naming it."""
    with pytest.raises(ValueError, match="monthly_limit= \\(cost\\), bandwidth_limit="):
        Budget()
    with pytest.raises(ValueError, match="needs pricing="):
        Budget(monthly_limit=10)
    with pytest.raises(ValueError, match="percentages in \\(0, 100\\]"):
        Budget(monthly_limit=10, pricing=Pricing.per_request(1), alert_at=(150,))
    with pytest.raises(ValueError, match="only the last pricing tier"):
        Pricing.tiered([(None, 1.0), (5, 2.0)])
    with pytest.raises(ValueError, match="bandwidth_limit"):
        Budget(bandwidth_limit="lots")
    assert Budget(bandwidth_limit="50GB").bandwidth_limit == 50_000_000_000


async def test_bandwidth_can_count_responses_only(fault_server: FaultServer) -> None:
    """bandwidth_count='response' (a spec's bandwidth.count) leaves request bodies out."""
    fault_server.route("POST", "/x", Fault.ok(body=b"r" * 100))
    options = Budget(bandwidth_limit=10_000, bandwidth_count="response")
    async with budget_client(fault_server, options) as client:
        await client.post("x", content=b"q" * 900)
        await client.post("x", content=b"q" * 900)
        status = await client.pipeline.policy("budget").fetch_status()
    assert status["bandwidth"]["used"] == 200
