"""Shared state: the store protocol and its implementations (memory, SQLite, Redis).

Policies keep whatever several workers must agree on (rate budgets, circuit state, tokens,
counters, cache entries, dead letters) in a ``StateStore``. Every operation that must be atomic
across processes is *one* method call here, so the SQLite implementation can run it in one
transaction and the Redis implementation as one Lua script, without the policies changing.

See ``docs/state-store.md`` for the contract of each method.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from tether.errors import SpecError
from tether.state._protocol import StateStore
from tether.state.memory import MemoryStore

__all__ = ["MemoryStore", "StateStore", "open_store"]

_SCHEMES = ("memory", "sqlite", "redis", "rediss", "unix")


def open_store(state: StateStore | str | None) -> StateStore:
    """The store for a ``state=`` value: a store object as is, or a URL (``memory://``)."""
    if state is None:
        return MemoryStore()
    if not isinstance(state, str):
        return state
    scheme = urlsplit(state).scheme
    if scheme == "memory":
        return MemoryStore()
    if scheme == "sqlite":
        from tether.state.sqlite import SQLiteStore

        return SQLiteStore.from_url(state)
    if scheme in ("redis", "rediss", "unix"):
        from tether.state.redis import open_redis_store

        return open_redis_store(state)
    raise SpecError(
        f"state URL scheme {scheme!r} is not supported by this version of tether; "
        f"supported: {', '.join(s + '://' for s in _SCHEMES)}"
    )
