"""Time, injected: every policy reads the clock and sleeps through a ``Clock``.

Production code uses ``SystemClock``; tests use ``tether.testing.VirtualClock`` so that policy
logic (backoff, breaker windows, limiter buckets) runs in virtual time and takes milliseconds.

``tether.testing.fast()`` is the testing switch of ``SystemClock`` itself: while it is on, every
wait ends at once and the clock jumps to the wait's end (``Warp``), so clients built with the
default clock skip backoff and limiter waits and see breaker windows pass, without being rebuilt.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock", "Warp", "system_clock"]


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


class Warp:
    """The state of the testing switch: on or off, how far the clock has jumped, what was skipped."""

    __slots__ = ("active", "offset", "sleeps")

    def __init__(self) -> None:
        self.active = False
        #: Seconds added to the real clocks (the skipped waits).
        self.offset = 0.0
        #: Every wait asked for while on, in seconds, in order.
        self.sleeps: list[float] = []

    async def skip(self, seconds: float) -> None:
        """End a wait now: the clock jumps past it, other tasks get one turn."""
        wait = max(0.0, seconds)
        self.sleeps.append(wait)
        self.offset += wait
        await asyncio.sleep(0)


#: The one switch ``SystemClock`` reads (``tether.testing.fast`` turns it on and restores it).
WARP = Warp()


class SystemClock:
    """The real clock (shifted by the waits ``tether.testing.fast()`` skipped, while it is on)."""

    def monotonic(self) -> float:
        return time.monotonic() + WARP.offset

    def time(self) -> float:
        return time.time() + WARP.offset

    async def sleep(self, seconds: float) -> None:
        if WARP.active:
            await WARP.skip(seconds)
            return
        await asyncio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "SystemClock()"


system_clock = SystemClock()
