"""Cache backends: LRU bounds by count and bytes, retention, invalidation, and SQLite persistence.

Every behaviour runs against the memory and the SQLite backend (the ``make`` fixture builds
either with the bounds a test asks for), so the two stay interchangeable.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tether.cache import CacheBackend, CacheEntry, MemoryCache, RedisCache, SQLiteCache, open_backend
from tether.errors import SpecError
from tether.state.memory import MemoryStore
from tether.state.sqlite import SQLiteStore

MakeBackend = Callable[..., CacheBackend]


def entry(
    key: str,
    *,
    body: bytes = b"{}",
    url: str | None = None,
    expires: float = 100.0,
    keep_until: float | None = None,
) -> CacheEntry:
    """An entry for ``key`` (URL https://api.test/<key> unless given), fresh until ``expires``."""
    return CacheEntry(
        key=key,
        url=url or f"https://api.test/{key}",
        method="GET",
        status=200,
        headers=(("Content-Type", "application/json"), ("ETag", f'"{key}"')),
        body=body,
        stored_at=0.0,
        expires=expires,
        keep_until=expires if keep_until is None else keep_until,
        vary=(("accept", "application/json"),),
    )


@pytest.fixture(params=["memory", "sqlite"])
async def make(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MakeBackend]:
    """Build a backend of each kind (SQLite on a new file) with the given bounds; closed afterwards."""
    made: list[CacheBackend] = []

    def build(**bounds: int) -> CacheBackend:
        backend: CacheBackend = (
            MemoryCache(**bounds)
            if request.param == "memory"
            else SQLiteCache(tmp_path / f"cache{len(made)}.db", **bounds)
        )
        made.append(backend)
        return backend

    yield build
    for backend in made:
        await backend.aclose()


async def test_an_entry_comes_back_as_it_was_stored(make: MakeBackend) -> None:
    """get returns every field of the stored entry, until its keep_until."""
    backend = make()
    stored = entry("a", body=b"\x00\xffbinary", expires=10.0, keep_until=20.0)
    assert await backend.put(stored, now=0.0)
    assert await backend.get("a", now=15.0) == stored
    assert await backend.get("a", now=20.0) is None
    assert await backend.get("missing", now=0.0) is None


async def test_the_least_recently_used_entry_goes_first_when_the_count_is_full(make: MakeBackend) -> None:
    """max_entries=3: after a, b, c and a read of a, storing d evicts b (the least recently used)."""
    backend = make(max_entries=3)
    for key in "abc":
        await backend.put(entry(key), now=0.0)
    assert await backend.get("a", now=0.0) is not None
    await backend.put(entry("d"), now=0.0)
    present = [k for k in "abcd" if await backend.get(k, now=0.0) is not None]
    assert present == ["a", "c", "d"]
    assert backend.stats().entries == 3


async def test_the_byte_bound_evicts_least_recently_used_entries(make: MakeBackend) -> None:
    """With room for two 1,000-byte bodies, a third evicts the oldest; bytes never exceed the bound."""
    size = entry("a", body=b"x" * 1000).size
    backend = make(max_bytes=2 * size + 10)
    await backend.put(entry("a", body=b"x" * 1000), now=0.0)
    await backend.put(entry("b", body=b"y" * 1000), now=0.0)
    await backend.put(entry("c", body=b"z" * 1000), now=0.0)
    assert await backend.get("a", now=0.0) is None
    assert await backend.get("b", now=0.0) is not None
    assert await backend.get("c", now=0.0) is not None
    stats = backend.stats()
    assert (stats.entries, stats.bytes) == (2, 2 * size)
    assert stats.bytes <= stats.max_bytes


async def test_one_large_entry_can_evict_several_small_ones(make: MakeBackend) -> None:
    """An entry that needs the room of three others evicts all three, oldest first."""
    small = entry("s0", body=b"x" * 100).size
    backend = make(max_bytes=4 * small)
    for i in range(4):
        await backend.put(entry(f"s{i}", body=b"x" * 100), now=0.0)
    await backend.put(entry("big", body=b"x" * (2 * small)), now=0.0)
    present = [k for k in ("s0", "s1", "s2", "s3", "big") if await backend.get(k, now=0.0) is not None]
    assert present == ["s3", "big"]


async def test_an_entry_larger_than_the_bound_is_refused_and_drops_its_old_version(make: MakeBackend) -> None:
    """put returns False for an entry bigger than max_bytes and removes the key's previous entry."""
    backend = make(max_bytes=500)
    assert await backend.put(entry("a"), now=0.0)
    assert not await backend.put(entry("a", body=b"x" * 1000), now=0.0)
    assert await backend.get("a", now=0.0) is None
    assert backend.stats().entries == 0


async def test_replacing_an_entry_keeps_the_totals_exact(make: MakeBackend) -> None:
    """Storing a key twice counts it once, with the bytes of the newer entry."""
    backend = make()
    await backend.put(entry("a", body=b"x" * 10), now=0.0)
    newer = entry("a", body=b"x" * 500)
    await backend.put(newer, now=0.0)
    assert backend.stats().entries == 1
    assert backend.stats().bytes == newer.size


async def test_invalidate_by_prefix_exact_url_key_and_clear(make: MakeBackend) -> None:
    """invalidate removes URLs under a prefix (or one exact URL); delete one key; clear the rest."""
    backend = make()
    for key, url in [
        ("d1", "https://api.test/v1/data/A"),
        ("d2", "https://api.test/v1/data/B?x=1"),
        ("dd", "https://api.test/v1/datasets"),
        ("m", "https://api.test/v1/meta"),
        ("m2", "https://api.test/v1/meta2"),
    ]:
        await backend.put(entry(key, url=url), now=0.0)
    assert await backend.invalidate("https://api.test/v1/data/") == 2
    assert await backend.invalidate("https://api.test/v1/meta", exact=True) == 1
    assert await backend.get("m2", now=0.0) is not None
    assert await backend.delete("m2")
    assert not await backend.delete("m2")
    assert await backend.clear() == 1
    assert backend.stats().entries == 0


async def test_the_identity_key_is_random_per_backend_and_stable(make: MakeBackend) -> None:
    """Each backend has its own 32-byte identity key, the same on every call."""
    one, two = make(), make()
    key = await one.identity_key()
    assert len(key) == 32
    assert await one.identity_key() == key
    assert await two.identity_key() != key


# --- SQLite only ------------------------------------------------------------------------------


async def test_sqlite_entries_and_identity_key_survive_a_restart(tmp_path: Path) -> None:
    """A new SQLiteCache on the same file finds the entries, totals and identity key of the old one."""
    db = tmp_path / "c.db"
    first = SQLiteCache(db)
    stored = entry("a", keep_until=1000.0)
    await first.put(stored, now=0.0)
    key = await first.identity_key()
    await first.aclose()
    second = SQLiteCache(db)
    assert await second.get("a", now=500.0) == stored
    assert await second.identity_key() == key
    assert second.stats().entries == 1
    await second.aclose()


async def test_two_sqlite_backends_on_one_file_share_entries_and_bounds(tmp_path: Path) -> None:
    """Two backend objects (two processes' worth) on one file see each other's entries and one LRU bound."""
    db = tmp_path / "c.db"
    a, b = SQLiteCache(db, max_entries=2), SQLiteCache(db, max_entries=2)
    await a.put(entry("x"), now=0.0)
    await b.put(entry("y"), now=0.0)
    assert await b.get("x", now=0.0) is not None  # x is now the most recent
    await a.put(entry("z"), now=0.0)
    assert [k for k in "xyz" if await a.get(k, now=0.0) is not None] == ["x", "z"]
    await a.aclose()
    await b.aclose()


async def test_sqlite_cache_tables_are_versioned_and_expired_entries_swept(tmp_path: Path) -> None:
    """The file records cache_schema_version 1; a put deletes entries past their keep_until."""
    db = tmp_path / "c.db"
    backend = SQLiteCache(db)
    await backend.put(entry("old", expires=1.0, keep_until=2.0), now=0.0)
    await backend.put(entry("new", expires=100.0), now=50.0)
    await backend.aclose()
    with sqlite3.connect(db) as conn:
        version = conn.execute("SELECT value FROM meta WHERE key = 'cache_schema_version'").fetchone()
        keys = [r[0] for r in conn.execute("SELECT key FROM cache_entries")]
        totals = conn.execute("SELECT entries FROM cache_totals").fetchone()
    assert version == ("1",)
    assert keys == ["new"]
    assert totals == (1,)


async def test_open_backend_resolves_names_urls_and_the_state_store(tmp_path: Path) -> None:
    """'memory' → MemoryCache; 'sqlite:///p' → SQLiteCache on p; 'redis://…' → RedisCache (no I/O
    until used); 'state' follows the state store; an unknown scheme is refused."""
    assert isinstance(open_backend("memory"), MemoryCache)
    by_url = open_backend(f"sqlite:///{tmp_path / 'u.db'}", max_entries=5)
    assert isinstance(by_url, SQLiteCache)
    assert by_url.stats().max_entries == 5
    store = SQLiteStore(tmp_path / "state.db")
    shared = open_backend("state", store=store)
    assert isinstance(shared, SQLiteCache)
    assert shared.path == store.path
    assert isinstance(open_backend("state", store=MemoryStore()), MemoryCache)
    redis_backend = open_backend("redis://127.0.0.1:1/0?name=api", eviction="lfu")
    assert isinstance(redis_backend, RedisCache)
    assert redis_backend.eviction == "lfu"
    await redis_backend.aclose()
    with pytest.raises(ValueError, match=r"Cache\.backend"):
        open_backend("mongodb://localhost")
    with pytest.raises(ValueError, match="needs the Redis backend"):
        open_backend("memory", eviction="ttl")
    with pytest.raises(SpecError):
        open_backend("sqlite:///")
    for backend in (by_url, shared):
        await backend.aclose()
    await store.aclose()
