"""Time, injected: every policy reads the clock and sleeps through a ``Clock``.

Production code uses ``SystemClock``; tests use ``tether.testing.VirtualClock`` so that policy
logic (backoff, breaker windows, limiter buckets) runs in virtual time and takes milliseconds.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock", "system_clock"]


@runtime_checkable
class Clock(Protocol):
    """Where a policy gets the time and waits."""

    def monotonic(self) -> float:
        """Seconds on a monotonic clock (for durations, deadlines, windows)."""
        ...

    def time(self) -> float:
        """Seconds since the epoch (for HTTP dates, calendar months, shared state)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (cancellable)."""
        ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "SystemClock()"


system_clock = SystemClock()
