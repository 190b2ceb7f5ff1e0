"""``tether.testing.fast()``: the testing switch that turns waits off, and restores itself.

::

    with tether.testing.fast() as fast:
        res = await api.call("get_data", identifier="X")    # retried 4 times: no real wait
    fast.sleeps      # [0.71, 1.42, 3.1, 6.3]: the backoff waits that were skipped
    fast.skipped     # their sum: how far the clock jumped

While it is on, every wait on tether's default clock (``SystemClock``: backoff, ``Retry-After``,
rate-limiter queueing, DLQ replay schedules, token polling) ends at once and the clock jumps to the
wait's end, so breaker windows, limiter windows and cache TTLs see the time pass. Attempts, events
and errors are exactly those of a real run; only the waiting is gone. Clients need not be rebuilt:
the switch is read on every wait. Leaving the block restores the clock as it was (a client that
outlives the block sees its clock step back by the skipped time).

It is process-wide, like stamina's ``set_testing``: do not run tests that use it concurrently in
one process with tests that need real waits. A client given its own ``clock=`` (a
``VirtualClock``) is not affected. Network waits (connect, read) stay real.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tether._clock import WARP

__all__ = ["FastMode", "fast"]


class FastMode:
    """What a ``fast()`` block skipped (read it during or after the block)."""

    def __init__(self, start: int, base: float) -> None:
        self._start = start
        self._base = base
        self._final: tuple[list[float], float] | None = None

    @property
    def sleeps(self) -> list[float]:
        """The waits asked for inside the block, in seconds, in order (each ended at once)."""
        if self._final is not None:
            return list(self._final[0])
        return WARP.sleeps[self._start :]

    @property
    def skipped(self) -> float:
        """Seconds the clock jumped inside the block: the waits that took no real time."""
        if self._final is not None:
            return self._final[1]
        return WARP.offset - self._base

    def _close(self) -> None:
        self._final = (WARP.sleeps[self._start :], WARP.offset - self._base)

    def __repr__(self) -> str:
        return f"FastMode(sleeps={len(self.sleeps)}, skipped={self.skipped:g}s)"


@contextmanager
def fast() -> Iterator[FastMode]:
    """Skip every wait on tether's default clock inside the block (see the module doc)."""
    saved_active, saved_offset, saved_count = WARP.active, WARP.offset, len(WARP.sleeps)
    mode = FastMode(saved_count, saved_offset)
    WARP.active = True
    try:
        yield mode
    finally:
        mode._close()
        WARP.active = saved_active
        WARP.offset = saved_offset
        if not saved_active:
            del WARP.sleeps[saved_count:]
