"""The pure state machines behind the store: GCRA over several windows and the breaker transitions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.state import _algorithms as alg
from tether.state._protocol import BreakerConfig, RateWindow

PREMIUM = RateWindow(75, 60.0, 10)
CONSECUTIVE = BreakerConfig()


# --- rate: GCRA ----------------------------------------------------------------------------------


def test_a_fresh_window_grants_its_burst_at_once_then_one_per_interval() -> None:
    """75/min with burst 10 grants 10 slots with no wait, then slots 0.8 s apart."""
    state: alg.RateState | None = None
    waits = []
    for _ in range(13):
        state, grant = alg.rate_acquire(state, [PREMIUM], 100.0)
        assert grant.granted
        waits.append(grant.wait)
    assert waits[:10] == [0.0] * 10
    assert waits[10:] == pytest.approx([0.8, 1.6, 2.4])


def test_the_slot_is_the_latest_any_window_allows() -> None:
    """With 10/s and 2/min (burst 1 each) the second slot waits for the minute window: 30 s."""
    windows = [RateWindow(10, 1.0), RateWindow(2, 60.0)]
    state, first = alg.rate_acquire(None, windows, 0.0)
    state, second = alg.rate_acquire(state, windows, 0.0)
    assert (first.wait, second.wait) == (0.0, pytest.approx(30.0))


def test_a_refused_grant_reserves_nothing() -> None:
    """A grant refused for max_wait leaves the state as it was, so the next caller gets the same slot."""
    window = RateWindow(1, 10.0)
    state, _ = alg.rate_acquire(None, [window], 0.0)
    refused_state, refused = alg.rate_acquire(state, [window], 1.0, max_wait=2.0)
    assert not refused.granted
    assert refused.reason == "wait"
    assert refused.wait == pytest.approx(9.0)
    assert refused_state.tats == state.tats
    assert refused_state.pending == []


def test_max_queue_bounds_the_callers_holding_future_slots() -> None:
    """With max_queue=2, two callers may wait; the third is refused as queue_full."""
    window = RateWindow(1, 1.0)
    state, now_grant = alg.rate_acquire(None, [window], 0.0, max_queue=2)
    assert now_grant.wait == 0.0
    state, a = alg.rate_acquire(state, [window], 0.0, max_queue=2)
    state, b = alg.rate_acquire(state, [window], 0.0, max_queue=2)
    state, c = alg.rate_acquire(state, [window], 0.0, max_queue=2)
    assert (a.granted, b.granted, c.granted) == (True, True, False)
    assert c.reason == "queue_full"
    assert c.snapshot.queued == 2
    state, later = alg.rate_acquire(state, [window], 1.5, max_queue=2)
    assert later.granted, "once the first waiter's slot has passed, a place frees up"


def test_a_pause_holds_every_slot_until_it_ends_and_only_extends() -> None:
    """After a pause until t=50, the next slot is at 50; an earlier pause does not shorten it."""
    state, in_force = alg.rate_pause(None, 50.0, 0.0)
    state, in_force_again = alg.rate_pause(state, 20.0, 1.0)
    assert in_force == in_force_again == 50.0
    state, grant = alg.rate_acquire(state, [PREMIUM], 10.0)
    assert grant.wait == pytest.approx(40.0)


def test_status_reads_without_changing_the_state() -> None:
    """rate_status reports the windows and leaves the record as it was."""
    state, _ = alg.rate_acquire(None, [PREMIUM], 0.0)
    before = state.to_json()
    _, snap = alg.rate_status(state, [PREMIUM], 0.0)
    assert snap.windows[0].available == 9
    assert state.to_json() == before


def test_a_cost_above_the_burst_is_refused_as_a_configuration_error() -> None:
    """A request costing more than a window's burst could never go: ValueError, not an endless wait."""
    with pytest.raises(ValueError, match="exceeds the burst"):
        alg.rate_acquire(None, [RateWindow(10, 1.0, 2)], 0.0, cost=3)


def test_rate_state_survives_a_json_round_trip() -> None:
    """A rate record serialises to JSON bytes and back unchanged, pending heap included."""
    state: alg.RateState | None = None
    for _ in range(14):
        state, _grant = alg.rate_acquire(state, [PREMIUM, RateWindow(1000, 3600.0)], 0.0)
    state, _ = alg.rate_pause(state, 99.0, 0.0)
    assert state is not None
    again = alg.RateState.from_json(state.to_json())
    assert again == state


@settings(max_examples=40, deadline=None)
@given(
    limit=st.integers(1, 20),
    period=st.sampled_from([1.0, 10.0, 60.0]),
    burst=st.integers(1, 5),
    gaps=st.lists(st.floats(0.0, 5.0), min_size=1, max_size=120),
)
def test_no_span_of_one_period_ever_holds_more_than_limit_plus_burst(
    limit: int, period: float, burst: int, gaps: list[float]
) -> None:
    """Whatever the arrival pattern, sends at the granted slots never exceed limit + burst per period."""
    window = RateWindow(limit, period, burst)
    state: alg.RateState | None = None
    now, sends = 0.0, []
    for gap in gaps:
        now += gap
        state, grant = alg.rate_acquire(state, [window], now)
        sends.append(now + grant.wait)
    sends.sort()
    j = 0
    for i, start in enumerate(sends):
        while j < len(sends) and sends[j] <= start + period + 1e-9:
            j += 1
        assert j - i <= limit + burst


# --- breaker ---------------------------------------------------------------------------------


def _fail(
    state: alg.BreakerState | None, now: float, config: BreakerConfig = CONSECUTIVE
) -> alg.BreakerState:
    state, permit = alg.breaker_acquire(state, config, now)
    assert permit.granted
    state, _ = alg.breaker_record(state, permit, "failure", config, now)
    return state


def test_the_fifth_consecutive_failure_opens_the_circuit() -> None:
    """Four failures leave it closed; the fifth opens it with half-open due open_for later."""
    state: alg.BreakerState | None = None
    for t in range(4):
        state = _fail(state, float(t))
    assert state is not None
    assert state.state == "closed"
    state, permit = alg.breaker_acquire(state, CONSECUTIVE, 4.0)
    state, update = alg.breaker_record(state, permit, "failure", CONSECUTIVE, 4.0)
    assert [(t.from_state, t.to_state, t.reason) for t in update.transitions] == [
        ("closed", "open", "failures")
    ]
    assert update.snapshot.half_open_at == 34.0


def test_an_outcome_from_an_older_generation_changes_nothing() -> None:
    """A call admitted while closed that succeeds after the circuit opened does not close it."""
    state: alg.BreakerState | None = None
    state, early = alg.breaker_acquire(state, CONSECUTIVE, 0.0)
    for t in range(5):
        state = _fail(state, float(t))
    state, update = alg.breaker_record(state, early, "success", CONSECUTIVE, 6.0)
    assert update.transitions == ()
    assert update.snapshot.state == "open"


def test_status_projects_an_open_circuit_past_open_for_as_half_open() -> None:
    """breaker_status at a time past half_open_at reads half_open without storing it."""
    state: alg.BreakerState | None = None
    for t in range(5):
        state = _fail(state, float(t))
    assert alg.breaker_status(state, CONSECUTIVE, 40.0).state == "half_open"
    assert state is not None
    assert state.state == "open"


def test_breaker_state_survives_a_json_round_trip() -> None:
    """A breaker record with a probe in flight serialises to JSON bytes and back unchanged."""
    state: alg.BreakerState | None = None
    for t in range(5):
        state = _fail(state, float(t))
    state, permit = alg.breaker_acquire(state, CONSECUTIVE, 40.0)
    assert permit.probe
    assert state.state == "half_open"
    assert alg.BreakerState.from_json(state.to_json()) == state


def test_rate_mode_time_window_forgets_old_calls() -> None:
    """In rate mode over 60 s, failures older than the window no longer count toward the rate."""
    config = BreakerConfig(mode="rate", failure_rate=0.5, min_calls=4)
    state: alg.BreakerState | None = None
    for t in range(3):
        state = _fail(state, float(t), config)
    state, permit = alg.breaker_acquire(state, config, 100.0)
    state, update = alg.breaker_record(state, permit, "failure", config, 100.0)
    assert update.snapshot.state == "closed"
    assert update.snapshot.calls == 1


def test_forcing_an_unknown_state_is_refused() -> None:
    """breaker_force only knows 'isolated' and 'closed'."""
    with pytest.raises(ValueError, match="isolated"):
        alg.breaker_force(None, "open", CONSECUTIVE, 0.0)  # type: ignore[arg-type]
