"""A virtual clock: ``sleep`` returns instantly in real time, in the right order in virtual time."""

from __future__ import annotations

import asyncio
import heapq
import itertools

__all__ = ["VirtualClock"]

# How many loop iterations with nothing to wake count as "every task is waiting on the clock".
_IDLE_SPINS = 20


class VirtualClock:
    """A ``tether`` clock for tests.

    Time starts at ``start`` (monotonic) and ``epoch + start`` (wall). ``await sleep(s)`` parks the
    caller; a driver task advances time to the earliest sleeper once the event loop has nothing
    else to run, so concurrent sleepers wake in virtual-time order. ``advance(s)`` moves time by
    hand. Do not mix with real network waits: the driver only sees the clock's own sleepers, and
    advances time while a real socket read is pending.
    """

    def __init__(self, start: float = 0.0, *, epoch: float = 1_800_000_000.0) -> None:
        self._now = float(start)
        self._epoch = float(epoch)
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._driver: asyncio.Task[None] | None = None

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._epoch + self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), future))
        if self._driver is None or self._driver.done():
            self._driver = loop.create_task(self._drive())
        await future

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` and wake every sleeper that is due."""
        if seconds < 0:
            raise ValueError(f"a clock only moves forward; got advance({seconds})")
        self._now += seconds
        self._wake_due()

    def _wake_due(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    async def _drive(self) -> None:
        while True:
            for _ in range(_IDLE_SPINS):
                await asyncio.sleep(0)
            # Forget sleepers whose tasks were cancelled (timeouts, losers of a race).
            while self._sleepers and self._sleepers[0][2].done():
                heapq.heappop(self._sleepers)
            if not self._sleepers:
                return
            self._now = max(self._now, self._sleepers[0][0])
            self._wake_due()

    def __repr__(self) -> str:
        return f"VirtualClock(now={self._now:g}, sleepers={len(self._sleepers)})"
