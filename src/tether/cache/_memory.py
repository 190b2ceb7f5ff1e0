"""The in-memory cache backend: an LRU map bounded by entry count and bytes, for one process."""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Final

from tether._units import Size
from tether.cache._base import DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, CacheEntry, CacheStats, check_bounds

__all__ = ["MemoryCache"]

#: Puts between two sweeps of entries past their keep_until (a sweep is O(entries)).
SWEEP_EVERY: Final = 1024


class MemoryCache:
    """Entries in an ``OrderedDict`` in LRU order (least recently used first).

    Each operation runs without an ``await``, so it is atomic on the event loop. One object can be
    shared by several clients (pass it as ``Cache(backend=...)``): credential identities keep their
    entries apart.
    """

    def __init__(
        self, *, max_entries: int = DEFAULT_MAX_ENTRIES, max_bytes: Size = DEFAULT_MAX_BYTES
    ) -> None:
        self.max_entries, self.max_bytes = check_bounds(max_entries, max_bytes)
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()
        self._bytes = 0
        self._puts = 0
        self._identity_key = os.urandom(32)

    def __repr__(self) -> str:
        return f"MemoryCache(entries={len(self._entries)}, bytes={self._bytes})"

    async def get(self, key: str, *, now: float) -> CacheEntry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if now >= entry.keep_until:
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return entry

    async def put(self, entry: CacheEntry, *, now: float) -> bool:
        self._remove(entry.key)
        if entry.size > self.max_bytes:
            return False
        self._entries[entry.key] = entry
        self._bytes += entry.size
        self._puts += 1
        if self._puts % SWEEP_EVERY == 0:
            for key in [k for k, e in self._entries.items() if now >= e.keep_until]:
                self._remove(key)
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            self._remove(next(iter(self._entries)))
        return True

    async def delete(self, key: str) -> bool:
        return self._remove(key)

    async def invalidate(self, url_prefix: str, *, exact: bool = False) -> int:
        if exact:
            doomed = [k for k, e in self._entries.items() if e.url == url_prefix]
        else:
            doomed = [k for k, e in self._entries.items() if e.url.startswith(url_prefix)]
        for key in doomed:
            self._remove(key)
        return len(doomed)

    async def clear(self) -> int:
        count = len(self._entries)
        self._entries.clear()
        self._bytes = 0
        return count

    async def identity_key(self) -> bytes:
        return self._identity_key

    def stats(self) -> CacheStats:
        return CacheStats(len(self._entries), self._bytes, self.max_entries, self.max_bytes)

    async def aclose(self) -> None:
        await self.clear()

    def _remove(self, key: str) -> bool:
        entry = self._entries.pop(key, None)
        if entry is None:
            return False
        self._bytes -= entry.size
        return True
