"""Cache backends: where ``tether.Cache`` keeps responses.

- ``MemoryCache``: one process (the default, ``backend="memory"``).
- ``SQLiteCache``: processes of one machine, kept across restarts (``backend="sqlite:///path"``,
  or ``backend="state"`` with a SQLite state store: the same file).

Both are LRU-bounded by entry count and by bytes. The policy (``tether.pipeline.cache``) decides
keys, freshness, stale-if-error, revalidation and coalescing; a backend only stores. See
``docs/guides/cache.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tether._units import Size
from tether.cache._base import DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, CacheBackend, CacheEntry, CacheStats
from tether.cache._memory import MemoryCache
from tether.cache._sqlite import SQLiteCache
from tether.errors import SpecError

if TYPE_CHECKING:
    from tether.state import StateStore

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_ENTRIES",
    "CacheBackend",
    "CacheEntry",
    "CacheStats",
    "MemoryCache",
    "SQLiteCache",
    "check_backend_name",
    "open_backend",
]


def check_backend_name(backend: str) -> None:
    """Refuse a backend string that ``open_backend`` could never open (at options time)."""
    if backend in ("memory", "memory://", "state") or backend.startswith("sqlite:///"):
        return
    raise ValueError(
        f"Cache.backend must be 'memory', 'state', 'sqlite:///path' or a CacheBackend object, got {backend!r}"
    )


def open_backend(
    backend: str,
    *,
    store: StateStore | None = None,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    max_bytes: Size = DEFAULT_MAX_BYTES,
) -> CacheBackend:
    """The backend named by ``backend``: ``memory``, ``sqlite:///path``, or ``state`` (the state
    store's SQLite file when the store is SQLite; memory when it is the memory store)."""
    check_backend_name(backend)
    if backend.startswith("sqlite:///"):
        return SQLiteCache.from_url(backend, max_entries=max_entries, max_bytes=max_bytes)
    if backend == "state" and store is not None:
        from tether.state.memory import MemoryStore
        from tether.state.sqlite import SQLiteStore

        if isinstance(store, SQLiteStore):
            return SQLiteCache(store.path, max_entries=max_entries, max_bytes=max_bytes)
        if not isinstance(store, MemoryStore):
            raise SpecError(
                f"Cache(backend='state') keeps entries in a SQLite or memory state store; "
                f"{type(store).__name__} is not supported yet: give backend='sqlite:///path' or 'memory'"
            )
    return MemoryCache(max_entries=max_entries, max_bytes=max_bytes)
