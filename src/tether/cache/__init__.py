"""Cache backends: where ``tether.Cache`` keeps responses.

- ``MemoryCache``: one process (the default, ``backend="memory"``).
- ``SQLiteCache``: processes of one machine, kept across restarts (``backend="sqlite:///path"``,
  or ``backend="state"`` with a SQLite state store: the same file).
- ``RedisCache``: every process and host on one Redis (``backend="redis://host:6379/0"``), with
  ``lru``, ``lfu`` or ``ttl`` eviction (``Cache(eviction=...)``).

All are bounded by entry count and by bytes (memory and SQLite evict least recently used). The
policy (``tether.pipeline.cache``) decides keys, freshness, stale-if-error, revalidation and
coalescing; a backend only stores. See ``docs/guides/cache.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from tether._units import Size
from tether.cache._base import DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, CacheBackend, CacheEntry, CacheStats
from tether.cache._memory import MemoryCache
from tether.cache._redis import Eviction, RedisCache
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
    "RedisCache",
    "SQLiteCache",
    "check_backend_name",
    "open_backend",
]


_REDIS_SCHEMES: Final = ("redis://", "rediss://", "unix://")
EVICTIONS: Final = ("lru", "lfu", "ttl")


def check_backend_name(backend: str, eviction: str = "lru") -> None:
    """Refuse a backend string (or an eviction policy for it) that ``open_backend`` could never
    open, at options time."""
    if eviction not in EVICTIONS:
        raise ValueError(f"Cache.eviction must be one of lru, lfu, ttl; got {eviction!r}")
    if backend.startswith(_REDIS_SCHEMES):
        return
    if backend in ("memory", "memory://", "state") or backend.startswith("sqlite:///"):
        if eviction != "lru" and backend != "state":
            raise ValueError(
                f"Cache.eviction {eviction!r} needs the Redis backend (backend='redis://…'); "
                "the memory and SQLite backends evict least recently used entries (lru)"
            )
        return
    raise ValueError(
        "Cache.backend must be 'memory', 'state', 'sqlite:///path', 'redis://host:port/db' or a "
        f"CacheBackend object, got {backend!r}"
    )


def open_backend(
    backend: str,
    *,
    store: StateStore | None = None,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    max_bytes: Size = DEFAULT_MAX_BYTES,
    eviction: str = "lru",
) -> CacheBackend:
    """The backend named by ``backend``: ``memory``, ``sqlite:///path``, ``redis://…``, or
    ``state`` (the state store's SQLite file when the store is SQLite; memory when it is the
    memory store)."""
    check_backend_name(backend, eviction)
    if backend.startswith(_REDIS_SCHEMES):
        chosen: Eviction = "lfu" if eviction == "lfu" else "ttl" if eviction == "ttl" else "lru"
        return RedisCache.from_url(backend, max_entries=max_entries, max_bytes=max_bytes, eviction=chosen)
    if eviction != "lru":
        raise SpecError(
            f"Cache(backend='state', eviction={eviction!r}): only the Redis backend evicts by {eviction}; "
            "give backend='redis://host:port/db'"
        )
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
