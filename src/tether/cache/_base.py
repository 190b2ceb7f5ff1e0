"""What a cache backend stores (``CacheEntry``) and the few operations the cache policy needs.

A backend is a bounded key → entry map with LRU eviction: it holds at most ``max_entries``
entries and ``max_bytes`` bytes (an entry's ``size``: body, headers and URL), and evicts the
least recently used entries to stay within both. It does not decide freshness: it returns an
entry until its ``keep_until`` (the end of its stale / revalidation window) and the policy
compares ``expires`` with the time. Every time is epoch seconds passed in by the caller, from the
policy's clock, so TTL logic runs in virtual time in tests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, Protocol, runtime_checkable

from tether._units import Size, parse_size

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_ENTRIES", "CacheBackend", "CacheEntry", "CacheStats"]

#: The default bounds (the spec's ``cache.max_entries`` / ``cache.max_bytes``).
DEFAULT_MAX_ENTRIES: Final = 10_000
DEFAULT_MAX_BYTES: Final = 512 * 1000**2

#: Bytes an entry is charged beyond its body, headers and URL (its bookkeeping).
ENTRY_OVERHEAD: Final = 64


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """One stored response.

    ``key`` is the policy's cache key (a hex digest that contains no secret); ``url`` the request
    URL normalised and without credential parameters (what ``invalidate`` matches prefixes of);
    ``headers`` the response headers as (name, value) pairs (latin-1 text, as on the wire), without
    hop-by-hop and body-framing headers; ``body`` the decoded body. The entry is fresh until
    ``expires`` and kept until ``keep_until`` (>= ``expires``) for stale-if-error and revalidation.
    ``vary`` holds the request header values the response said it varies on (``Vary``).
    """

    key: str
    url: str
    method: str
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    stored_at: float
    expires: float
    keep_until: float
    vary: tuple[tuple[str, str], ...] = ()

    @property
    def size(self) -> int:
        """Bytes charged against ``max_bytes``."""
        head = sum(len(k) + len(v) + 4 for k, v in self.headers)
        return len(self.body) + head + len(self.url) + ENTRY_OVERHEAD

    def fresh(self, now: float) -> bool:
        return now < self.expires

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for k, v in self.headers:
            if k.lower() == lowered:
                return v
        return None

    def headers_json(self) -> str:
        return json.dumps([list(p) for p in self.headers], separators=(",", ":"))

    def vary_json(self) -> str:
        return json.dumps([list(p) for p in self.vary], separators=(",", ":"))


def pairs_from_json(text: str) -> tuple[tuple[str, str], ...]:
    raw: Any = json.loads(text)
    return tuple((str(k), str(v)) for k, v in raw)


@dataclass(frozen=True, slots=True)
class CacheStats:
    """A backend's size: entries and bytes held (as of its last operation in this process)."""

    entries: int
    bytes: int
    max_entries: int
    max_bytes: int


def check_bounds(max_entries: int, max_bytes: Size) -> tuple[int, int]:
    if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
        raise ValueError(f"a cache's max_entries must be a whole number >= 1, got {max_entries!r}")
    size = parse_size(max_bytes, name="max_bytes")
    if size < 1:
        raise ValueError(f"a cache's max_bytes must be at least 1 byte, got {max_bytes!r}")
    return max_entries, size


@runtime_checkable
class CacheBackend(Protocol):
    """Where cache entries live: ``MemoryCache`` (one process) or ``SQLiteCache`` (one machine)."""

    async def get(self, key: str, *, now: float) -> CacheEntry | None:
        """The entry (fresh or not) if it exists and ``now < keep_until``; marks it recently used."""
        ...

    async def put(self, entry: CacheEntry, *, now: float) -> bool:
        """Store ``entry`` (replacing its key), evicting least recently used entries to stay within
        both bounds. ``False`` (and nothing stored, any old entry of the key removed) when the entry
        alone is larger than ``max_bytes``."""
        ...

    async def delete(self, key: str) -> bool:
        """Remove one entry; ``True`` if it existed."""
        ...

    async def invalidate(self, url_prefix: str, *, exact: bool = False) -> int:
        """Remove every entry whose ``url`` starts with ``url_prefix`` (equals it, with ``exact``)."""
        ...

    async def clear(self) -> int:
        """Remove every entry; returns how many there were."""
        ...

    async def identity_key(self) -> bytes:
        """The secret key credential identities are HMAC-ed with (random, one per backend)."""
        ...

    def stats(self) -> CacheStats:
        """Entries and bytes held (no I/O)."""
        ...

    async def aclose(self) -> None:
        """Release files and threads."""
        ...
