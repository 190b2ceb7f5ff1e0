"""The Redis cache backend: entries shared by every process and host that uses one Redis.

``Cache(backend="redis://host:6379/0")`` (spec: ``cache: {backend: redis, redis_url: …}``).
Each operation is one Lua script (``tether/cache/lua/cache.lua``), so the entry count, the byte
total and the eviction order are exact however many instances read and write at once.

What is tether's and what is the server's
    * tether's (in the script): the byte and entry bounds and the eviction order. ``lru`` evicts
      the least recently used entry, ``lfu`` the one with the fewest hits since it was stored
      (ties: the oldest), ``ttl`` the one closest to the end of its retention (Redis'
      ``volatile-ttl`` rule). The bound is tether's own because the cache usually shares its
      Redis with tether's state (rate budgets, breaker, DLQ), which a server-wide
      ``maxmemory-policy`` could evict too.
    * the server's: key expiry. Each entry hash expires (``PEXPIRE``) a little after the end of
      its retention, so entries nobody reads again free their memory without a sweep; atomicity
      (``EVALSHA``). If you give the cache a Redis of its own you may also set ``maxmemory`` with
      the matching policy (``allkeys-lru``, ``allkeys-lfu``, ``volatile-ttl``) as a second guard;
      tether's bound still holds exactly.

Freshness uses the callers' clock (``now=``), never the server's, so virtual-time tests work.

Coalescing across processes (``claim`` / ``release`` / ``peek``)
    A caller that misses claims a fill lock (``SET NX PX`` with a random owner). The others poll
    (``peek``: the entry and whether the lock is still held, in one round trip, every 5 ms
    growing to 50 ms) until the entry appears, the lock is released without one (they then
    fetch themselves), or the lock's time runs out (a crashed leader). The policy
    (``tether.pipeline.cache``) drives this; the backend only offers the primitives.

Keys: ``<namespace>{<name>}:cache:…`` (default namespace ``tether:``, name ``default``); the
hash tag keeps every key of one cache in one cluster slot.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
from importlib import resources
from typing import Any, Final, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tether._units import Size
from tether.cache._base import DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, CacheEntry, CacheStats, check_bounds
from tether.errors import SpecError
from tether.state.redis import RedisConnection, Script, shown_url

__all__ = ["EVICTION_POLICIES", "Eviction", "RedisCache"]

Eviction = Literal["lru", "lfu", "ttl"]
EVICTION_POLICIES: Final[tuple[Eviction, ...]] = ("lru", "lfu", "ttl")

_TEXT: Final = resources.files("tether.cache").joinpath("lua", "cache.lua").read_text(encoding="utf-8")
SCRIPT: Final = Script("cache", _TEXT, hashlib.sha1(_TEXT.encode()).hexdigest())

#: Seconds Redis keeps an entry hash past its keep_until (the callers' clocks may run a little
#: ahead of or behind the server's).
EXPIRY_SLACK: Final = 60.0
#: Options of a ``redis://`` cache URL that tether reads (the rest go to redis-py).
URL_OPTIONS: Final = ("namespace", "name", "timeout", "cluster")


def _encode(entry: CacheEntry) -> bytes:
    head = {
        "url": entry.url,
        "method": entry.method,
        "status": entry.status,
        "headers": [list(p) for p in entry.headers],
        "stored_at": entry.stored_at,
        "expires": entry.expires,
        "keep_until": entry.keep_until,
        "vary": [list(p) for p in entry.vary],
    }
    return json.dumps(head, separators=(",", ":")).encode() + b"\n" + entry.body


def _decode(key: str, blob: bytes) -> CacheEntry:
    head_raw, _, body = blob.partition(b"\n")
    head: dict[str, Any] = json.loads(head_raw)
    return CacheEntry(
        key=key,
        url=str(head["url"]),
        method=str(head["method"]),
        status=int(head["status"]),
        headers=tuple((str(k), str(v)) for k, v in head["headers"]),
        body=body,
        stored_at=float(head["stored_at"]),
        expires=float(head["expires"]),
        keep_until=float(head["keep_until"]),
        vary=tuple((str(k), str(v)) for k, v in head["vary"]),
    )


def _num(value: float) -> str:
    return repr(float(value))


class RedisCache:
    """Cache entries in Redis, bounded by ``max_entries`` and ``max_bytes`` with ``eviction``.

    ``url``: ``redis://[user:password@]host:port/db`` (or ``rediss://``, ``unix://``).
    ``namespace`` prefixes every key; ``name`` separates caches sharing one Redis (several
    integrations: give each its own name, or share one on purpose). ``timeout`` bounds each call.
    Every Redis failure is a ``StateStoreError`` (the cache policy then carries on uncached).
    """

    DEFAULT_NAMESPACE: Final = "tether:"
    DEFAULT_NAME: Final = "default"
    DEFAULT_TIMEOUT: Final = 0.5

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: Size = DEFAULT_MAX_BYTES,
        eviction: Eviction = "lru",
        namespace: str = DEFAULT_NAMESPACE,
        name: str = DEFAULT_NAME,
        timeout: float = DEFAULT_TIMEOUT,
        cluster: bool = False,
    ) -> None:
        self.max_entries, self.max_bytes = check_bounds(max_entries, max_bytes)
        if eviction not in EVICTION_POLICIES:
            raise ValueError(f"a Redis cache's eviction is one of lru, lfu, ttl; got {eviction!r}")
        self.eviction: Eviction = eviction
        self._redis = RedisConnection(url, timeout=timeout, cluster=cluster, what="Redis cache")
        tag = name.replace("{", "(").replace("}", ")")
        base = f"{namespace}{{{tag}}}:cache:"
        self._keys = [base + part for part in ("totals", "sizes", "urls", "order", "keep")]
        self._entry_prefix = base + "e:"
        self._lock_prefix = base + "fill:"
        self._identity = base + "identity"
        self._identity_key: bytes | None = None
        self._identity_lock = asyncio.Lock()
        self._stats = (0, 0)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: Size = DEFAULT_MAX_BYTES,
        eviction: Eviction = "lru",
    ) -> RedisCache:
        """The backend for ``redis://host:port/db?namespace=…&name=…&timeout=…&cluster=1``."""
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        ours = {k: v for k, v in query if k in URL_OPTIONS}
        rest = [(k, v) for k, v in query if k not in URL_OPTIONS]
        plain = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(rest), parts.fragment))
        try:
            return cls(
                plain,
                max_entries=max_entries,
                max_bytes=max_bytes,
                eviction=eviction,
                namespace=ours.get("namespace", cls.DEFAULT_NAMESPACE),
                name=ours.get("name", cls.DEFAULT_NAME),
                timeout=float(ours.get("timeout", cls.DEFAULT_TIMEOUT)),
                cluster=ours.get("cluster", "0").lower() in ("1", "true", "yes"),
            )
        except ValueError as exc:
            raise SpecError(f"cache URL {shown_url(url)!r}: {exc}") from exc

    def __repr__(self) -> str:
        entries, size = self._stats
        return f"RedisCache({self._redis.shown!r}, eviction={self.eviction}, entries={entries}, bytes={size})"

    async def _run(self, op: str, now: float, *args: str | bytes | int) -> Any:
        return await self._redis.eval(
            SCRIPT, self._keys, [op, self._entry_prefix, _num(now), self.eviction, *args]
        )

    def _keep_stats(self, n: Any, b: Any) -> None:
        self._stats = (int(n), int(b))

    # --- the CacheBackend protocol -----------------------------------------------------------

    async def get(self, key: str, *, now: float) -> CacheEntry | None:
        blob, n, b = await self._run("get", now, key)
        self._keep_stats(n, b)
        return _decode(key, blob) if blob else None

    async def put(self, entry: CacheEntry, *, now: float) -> bool:
        expire_ms = math.ceil((max(0.0, entry.keep_until - now) + EXPIRY_SLACK) * 1000)
        stored, n, b, _evicted = await self._run(
            "put",
            now,
            entry.key,
            _encode(entry),
            entry.size,
            _num(entry.keep_until),
            entry.url,
            self.max_entries,
            self.max_bytes,
            expire_ms,
        )
        self._keep_stats(n, b)
        return bool(stored)

    async def delete(self, key: str) -> bool:
        removed, n, b = await self._run("del", 0.0, key)
        self._keep_stats(n, b)
        return bool(removed)

    async def invalidate(self, url_prefix: str, *, exact: bool = False) -> int:
        doomed: list[str] = []
        cursor: Any = 0
        while True:
            cursor, chunk = await self._redis.command("HSCAN", self._keys[2], cursor, "COUNT", 500)
            pairs = chunk.items() if isinstance(chunk, dict) else zip(chunk[::2], chunk[1::2], strict=True)
            for name, url in pairs:
                text = url.decode() if isinstance(url, bytes) else str(url)
                if (text == url_prefix) if exact else text.startswith(url_prefix):
                    doomed.append(name.decode() if isinstance(name, bytes) else str(name))
            if int(cursor) == 0:
                break
        removed = 0
        for start in range(0, len(doomed), 200):
            count, n, b = await self._run("del", 0.0, *doomed[start : start + 200])
            removed += int(count)
            self._keep_stats(n, b)
        return removed

    async def clear(self) -> int:
        removed, n, b = await self._run("clear", 0.0)
        self._keep_stats(n, b)
        return int(removed)

    async def identity_key(self) -> bytes:
        """One random key per cache, kept in Redis: every instance derives the same identities."""
        async with self._identity_lock:  # many first calls at once read it once
            if self._identity_key is None:
                await self._redis.command("SET", self._identity, os.urandom(32).hex(), "NX")
                raw = await self._redis.command("GET", self._identity)
                self._identity_key = bytes.fromhex(raw.decode() if isinstance(raw, bytes) else str(raw))
            return self._identity_key

    def stats(self) -> CacheStats:
        entries, size = self._stats
        return CacheStats(entries, size, self.max_entries, self.max_bytes)

    async def refresh_stats(self) -> CacheStats:
        """The totals as Redis holds them now (every instance's entries)."""
        n, b = await self._run("totals", 0.0)
        self._keep_stats(n, b)
        return self.stats()

    async def aclose(self) -> None:
        """Close the connection pool; the entries stay in Redis for the other instances."""
        await self._redis.aclose()

    # --- coalescing across processes ---------------------------------------------------------

    async def claim(self, key: str, owner: str, *, ttl: float) -> bool:
        """Take the fill lock of ``key`` for ``ttl`` seconds (server time); ``False`` if held."""
        reply = await self._redis.command(
            "SET", self._lock_prefix + key, owner, "NX", "PX", max(1, math.ceil(ttl * 1000))
        )
        return reply is not None and reply is not False

    async def release(self, key: str, owner: str) -> None:
        """Give the fill lock back (only if ``owner`` still holds it)."""
        await self._redis.eval(_RELEASE, [self._lock_prefix + key], [owner])

    async def peek(self, key: str, *, now: float) -> tuple[CacheEntry | None, bool]:
        """The entry (as ``get``) and whether the fill lock of ``key`` is held, in one round trip."""
        blob, locked, n, b = await self._run("peek", now, key, self._lock_prefix + key)
        self._keep_stats(n, b)
        return (_decode(key, blob) if blob else None), bool(locked)


_RELEASE_TEXT: Final = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
)
_RELEASE: Final = Script("cache_release", _RELEASE_TEXT, hashlib.sha1(_RELEASE_TEXT.encode()).hexdigest())
