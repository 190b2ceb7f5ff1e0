"""The state store protocol. Implementations: memory (default), SQLite, Redis."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["StateStore"]


@runtime_checkable
class StateStore(Protocol):
    """Where policies keep state that several workers may share.

    Keys are plain strings chosen by the policies (``"<service>:<kind>:<name>"``); a store may
    prefix them (a namespace, Redis hash tags). Times are passed in by the caller (epoch seconds
    from the injected clock), so stores never read the clock themselves and tests stay in virtual
    time.
    """

    # --- counters with expiry (retry budget, budgets) ---------------------------------------
    async def incr(self, key: str, amount: float = 1.0, *, ttl: float | None = None, now: float) -> float:
        """Add ``amount`` to a counter and return the new value, atomically.

        ``ttl`` (seconds) sets the counter to expire ``ttl`` after ``now`` when it is created;
        an expired counter reads as 0.
        """
        ...

    async def get_counter(self, key: str, *, now: float) -> float:
        """A counter's value (0 when missing or expired)."""
        ...

    # --- values with expiry (tokens, cache entries) -----------------------------------------
    async def get(self, key: str, *, now: float) -> bytes | None:
        """A value, or ``None`` when missing or expired."""
        ...

    async def set(self, key: str, value: bytes, *, ttl: float | None = None, now: float) -> None:
        """Store a value, expiring ``ttl`` seconds after ``now`` (``None`` = never)."""
        ...

    async def delete(self, key: str) -> None:
        """Remove a value or counter (no error when missing)."""
        ...

    # --- mutual exclusion across workers (one token refresh) --------------------------------
    async def try_lock(self, key: str, owner: str, *, ttl: float, now: float) -> bool:
        """Take the lock ``key`` for ``owner`` for ``ttl`` seconds; ``False`` if another owner holds it."""
        ...

    async def unlock(self, key: str, owner: str) -> None:
        """Release the lock if ``owner`` still holds it."""
        ...

    async def aclose(self) -> None:
        """Release connections and files."""
        ...
