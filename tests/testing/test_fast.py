"""tether.testing.fast / the tether_fast fixture: waits skipped, attempts unchanged, restored after."""

from __future__ import annotations

import time
from typing import Any

import pytest

import tether
from tether._clock import system_clock
from tether.mock import Fault
from tether.pipeline.retry import Retry
from tether.testing import FastMode, fast


async def test_a_call_retried_five_times_keeps_its_attempts_and_waits_no_real_time(
    fault_server: Any, tether_fast: FastMode
) -> None:
    """With the default retry (5 attempts, 1-2-4-8 s backoff with full jitter) a failing call is
    still tried 5 times; its 4 waits were skipped: the clock ran ahead of the real one by their sum."""
    fault_server.route("GET", "/data", Fault.status(503))
    events = tether.testing.EventRecorder()
    async with tether.Client(fault_server.url, breaker=None, listeners=[events]) as client:
        with pytest.raises(tether.APIError):
            await client.get("/data")
    assert len(fault_server.log) == 5
    assert Retry().attempts == 5
    failed = [e for e in events.events if e.name == "call.failed"]
    assert failed[0].fields["attempts"] == 5
    waits = tether_fast.sleeps
    assert len(waits) == 4
    assert all(0 <= wait <= cap for wait, cap in zip(waits, (1, 2, 4, 8), strict=True))
    assert tether_fast.skipped == pytest.approx(sum(waits))
    ahead = system_clock.monotonic() - time.monotonic()
    assert ahead == pytest.approx(tether_fast.skipped, abs=1e-3)  # skipped, not slept


async def test_the_breaker_open_window_passes_on_the_skipped_clock(fault_server: Any) -> None:
    """Inside fast(), sleeping out the breaker's 30 s open window lets the next call through."""
    fault_server.route("GET", "/x", Fault.status(503), Fault.status(503), Fault.ok(json={"ok": True}))
    breaker = tether.Breaker(failures=2, open_for=30)
    async with tether.Client(fault_server.url, retry=None, breaker=breaker) as client:
        with fast() as mode:
            for _ in range(2):
                with pytest.raises(tether.APIError):
                    await client.get("/x")
            with pytest.raises(tether.CircuitOpenError):
                await client.get("/x")
            await system_clock.sleep(31)
            assert (await client.get("/x")).json() == {"ok": True}
    assert mode.skipped == pytest.approx(31)


def test_fast_restores_the_clock_and_nests() -> None:
    """Leaving the block turns the switch off and puts the clock back; an inner block keeps the outer on."""
    from tether._clock import WARP

    before = system_clock.monotonic() - time.monotonic()
    with fast() as outer:
        with fast():
            pass
        assert WARP.active
        assert outer.sleeps == []
    assert not WARP.active
    assert system_clock.monotonic() - time.monotonic() == pytest.approx(before, abs=1e-3)


@pytest.mark.tether_fast
async def test_the_tether_fast_marker_turns_the_switch_on() -> None:
    """@pytest.mark.tether_fast skips waits without asking for the fixture."""
    from tether._clock import WARP

    assert WARP.active
    started = system_clock.monotonic()
    await system_clock.sleep(3600)
    assert system_clock.monotonic() - started >= 3600
