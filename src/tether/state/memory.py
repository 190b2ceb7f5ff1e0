"""The in-memory state store: the default, for one process.

Each operation runs without an ``await`` in its body, so on one event loop it is atomic, exactly
as the SQLite (transaction) and Redis (Lua script) stores make it atomic across processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from tether.state import _algorithms as alg
from tether.state._protocol import (
    BreakerConfig,
    BreakerOutcome,
    BreakerPermit,
    BreakerSnapshot,
    BreakerUpdate,
    RateGrant,
    RateSnapshot,
    RateWindow,
)

__all__ = ["MemoryStore"]


@dataclass(slots=True)
class _Entry:
    value: bytes | float
    expires: float | None

    def live(self, now: float) -> bool:
        return self.expires is None or now < self.expires


class MemoryStore:
    """State for one process. ``url``: ``memory://``."""

    def __init__(self) -> None:
        self._data: dict[str, _Entry] = {}
        self._locks: dict[str, tuple[str, float]] = {}
        self._rates: dict[str, alg.RateState] = {}
        self._breakers: dict[str, alg.BreakerState] = {}

    def __repr__(self) -> str:
        return f"MemoryStore(keys={len(self._data) + len(self._rates) + len(self._breakers)})"

    def _live(self, key: str, now: float) -> _Entry | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if not entry.live(now):
            del self._data[key]
            return None
        return entry

    # --- counters ----------------------------------------------------------------------------

    async def incr(self, key: str, amount: float = 1.0, *, ttl: float | None = None, now: float) -> float:
        entry = self._live(key, now)
        if entry is None or not isinstance(entry.value, float):
            entry = _Entry(0.0, None if ttl is None else now + ttl)
            self._data[key] = entry
        entry.value = float(entry.value) + amount
        return entry.value

    async def get_counter(self, key: str, *, now: float) -> float:
        entry = self._live(key, now)
        return entry.value if entry is not None and isinstance(entry.value, float) else 0.0

    # --- values ------------------------------------------------------------------------------

    async def get(self, key: str, *, now: float) -> bytes | None:
        entry = self._live(key, now)
        return entry.value if entry is not None and isinstance(entry.value, bytes) else None

    async def set(self, key: str, value: bytes, *, ttl: float | None = None, now: float) -> None:
        self._data[key] = _Entry(value, None if ttl is None else now + ttl)

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    # --- locks -------------------------------------------------------------------------------

    async def try_lock(self, key: str, owner: str, *, ttl: float, now: float) -> bool:
        held = self._locks.get(key)
        if held is not None and held[0] != owner and now < held[1]:
            return False
        self._locks[key] = (owner, now + ttl)
        return True

    async def unlock(self, key: str, owner: str) -> None:
        held = self._locks.get(key)
        if held is not None and held[0] == owner:
            del self._locks[key]

    # --- rate limiter ------------------------------------------------------------------------

    async def rate_acquire(
        self,
        key: str,
        windows: Sequence[RateWindow],
        *,
        now: float,
        cost: int = 1,
        max_wait: float | None = None,
        max_queue: int | None = None,
    ) -> RateGrant:
        state, grant = alg.rate_acquire(
            self._rates.get(key), windows, now, cost=cost, max_wait=max_wait, max_queue=max_queue
        )
        self._rates[key] = state
        return grant

    async def rate_pause(self, key: str, until: float, *, now: float) -> float:
        state, paused = alg.rate_pause(self._rates.get(key), until, now)
        self._rates[key] = state
        return paused

    async def rate_status(self, key: str, windows: Sequence[RateWindow], *, now: float) -> RateSnapshot:
        state, snapshot = alg.rate_status(self._rates.get(key), windows, now)
        if key in self._rates:
            self._rates[key] = state  # only past reservations were dropped
        return snapshot

    # --- circuit breaker ---------------------------------------------------------------------

    async def breaker_acquire(self, key: str, config: BreakerConfig, *, now: float) -> BreakerPermit:
        state, permit = alg.breaker_acquire(self._breakers.get(key), config, now)
        self._breakers[key] = state
        return permit

    async def breaker_record(
        self,
        key: str,
        permit: BreakerPermit,
        outcome: BreakerOutcome,
        config: BreakerConfig,
        *,
        now: float,
    ) -> BreakerUpdate:
        state, update = alg.breaker_record(self._breakers.get(key), permit, outcome, config, now)
        self._breakers[key] = state
        return update

    async def breaker_force(
        self,
        key: str,
        state: Literal["isolated", "closed"],
        config: BreakerConfig,
        *,
        now: float,
    ) -> BreakerUpdate:
        new, update = alg.breaker_force(self._breakers.get(key), state, config, now)
        self._breakers[key] = new
        return update

    async def breaker_status(self, key: str, config: BreakerConfig, *, now: float) -> BreakerSnapshot:
        return alg.breaker_status(self._breakers.get(key), config, now)

    async def aclose(self) -> None:
        self._data.clear()
        self._locks.clear()
        self._rates.clear()
        self._breakers.clear()
