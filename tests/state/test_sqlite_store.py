"""The SQLite store: the whole StateStore protocol on one file, shared by processes and policies.

The protocol behaviours run against the memory store and the SQLite store alike (the ``store``
fixture is parametrized), so the two stay interchangeable. SQLite-only checks follow: schema,
persistence, error translation, lazy sweeping, the rate and breaker policies unchanged on SQLite,
and four real processes hammering one file.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import httpx2
import pytest

from tether._config import Timeouts
from tether._context import CONTEXT_KEY, CallContext
from tether.errors import APIError, CircuitOpenError, SpecError, StateStoreError
from tether.events import EventBus
from tether.pipeline._base import PolicyEnv
from tether.pipeline.breaker import Breaker
from tether.pipeline.rate import Rate
from tether.state import StateStore, open_store
from tether.state import sqlite as sqlite_module
from tether.state._protocol import BreakerConfig, RateWindow
from tether.state.memory import MemoryStore
from tether.state.sqlite import SQLiteStore
from tether.testing import VirtualClock

HAMMER = Path(__file__).with_name("sqlite_hammer.py")


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateStore]:
    """A fresh store of each kind (the SQLite one on a new file in tmp_path)."""
    made: StateStore = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "state.db")
    try:
        yield made
    finally:
        await made.aclose()


def most_in_any_span(times: Sequence[float], span: float) -> int:
    """The largest number of times in any closed interval [t, t + span]."""
    ordered = sorted(times)
    best, j = 0, 0
    for i, start in enumerate(ordered):
        while j < len(ordered) and ordered[j] <= start + span + 1e-9:
            j += 1
        best = max(best, j - i)
    return best


# --- the protocol, on every store -------------------------------------------------------------


def test_every_store_implements_the_protocol(store: StateStore) -> None:
    """Both stores have every method of StateStore (runtime-checkable protocol)."""
    assert isinstance(store, StateStore)


async def test_counters_expire_after_their_ttl(store: StateStore) -> None:
    """incr creates a counter with a TTL; later increments keep that expiry; it reads 0 after."""
    assert await store.incr("c", 2.0, ttl=10.0, now=0.0) == 2.0
    assert await store.incr("c", 1.0, ttl=10.0, now=5.0) == 3.0
    assert await store.get_counter("c", now=9.9) == 3.0
    assert await store.get_counter("c", now=10.0) == 0.0
    assert await store.incr("c", 1.0, ttl=10.0, now=10.0) == 1.0
    assert await store.get_counter("c", now=19.9) == 1.0


async def test_a_counter_without_ttl_never_expires(store: StateStore) -> None:
    """incr with ttl=None keeps counting forever; a missing counter reads 0."""
    assert await store.get_counter("n", now=0.0) == 0.0
    for _ in range(3):
        await store.incr("n", 0.5, now=0.0)
    assert await store.get_counter("n", now=1e12) == 1.5


async def test_values_expire_and_are_replaced(store: StateStore) -> None:
    """set stores bytes until now + ttl; a second set replaces value and expiry; delete removes."""
    await store.set("v", b"x", ttl=1.0, now=0.0)
    assert await store.get("v", now=0.5) == b"x"
    assert await store.get("v", now=1.0) is None
    await store.set("v", b"y", now=2.0)
    assert await store.get("v", now=1e12) == b"y"
    await store.delete("v")
    await store.delete("never-there")
    assert await store.get("v", now=3.0) is None


async def test_a_key_is_either_a_value_or_a_counter(store: StateStore) -> None:
    """A value reads as counter 0, a counter reads as no value, and incr turns a value into a counter."""
    await store.set("k", b"bytes", now=0.0)
    assert await store.get_counter("k", now=0.0) == 0.0
    assert await store.incr("k", 4.0, now=0.0) == 4.0
    assert await store.get("k", now=0.0) is None


async def test_locks_refuse_other_owners_until_released_or_expired(store: StateStore) -> None:
    """A lock is re-entrant for its owner, refused to others while live, free after expiry or unlock."""
    assert await store.try_lock("l", "a", ttl=5.0, now=0.0)
    assert await store.try_lock("l", "a", ttl=5.0, now=1.0)  # refresh: held until 6
    assert not await store.try_lock("l", "b", ttl=5.0, now=5.5)
    await store.unlock("l", "b")  # not the owner: nothing happens
    assert not await store.try_lock("l", "b", ttl=5.0, now=5.9)
    assert await store.try_lock("l", "b", ttl=5.0, now=6.0)
    await store.unlock("l", "b")
    assert await store.try_lock("l", "c", ttl=5.0, now=6.1)


async def test_concurrent_acquires_get_distinct_fifo_slots(store: StateStore) -> None:
    """Fifty concurrent rate_acquire calls on one key get fifty distinct slots in call order."""
    window = RateWindow(10, 1.0)
    grants = await asyncio.gather(*(store.rate_acquire("k", [window], now=0.0) for _ in range(50)))
    waits = [g.wait for g in grants]
    assert waits == sorted(waits)
    assert waits == pytest.approx([i * 0.1 for i in range(50)])
    assert grants[-1].snapshot.queued == 49


async def test_refused_grants_reserve_nothing(store: StateStore) -> None:
    """max_wait and max_queue refusals leave the limiter as it was."""
    window = RateWindow(1, 10.0)
    assert (await store.rate_acquire("k", [window], now=0.0)).wait == 0.0
    refused = await store.rate_acquire("k", [window], now=0.0, max_wait=5.0)
    assert (refused.granted, refused.reason, refused.wait) == (False, "wait", pytest.approx(10.0))
    assert (await store.rate_acquire("k", [window], now=0.0, max_queue=1)).granted
    full = await store.rate_acquire("k", [window], now=0.0, max_queue=1)
    assert (full.granted, full.reason) == (False, "queue_full")
    status = await store.rate_status("k", [window], now=0.0)
    assert status.queued == 1
    assert status.windows[0].next_at == pytest.approx(20.0)


async def test_rate_keys_are_independent(store: StateStore) -> None:
    """Two limiter keys in one store do not spend each other's slots."""
    window = RateWindow(1, 60.0)
    await store.rate_acquire("a", [window], now=0.0)
    assert (await store.rate_acquire("b", [window], now=0.0)).wait == 0.0


async def test_a_pause_reaches_every_caller_of_the_key_and_only_extends(store: StateStore) -> None:
    """rate_pause makes the next acquire wait until the pause ends; an earlier until changes nothing."""
    assert await store.rate_pause("k", 30.0, now=0.0) == 30.0
    assert await store.rate_pause("k", 20.0, now=0.0) == 30.0
    grant = await store.rate_acquire("k", [RateWindow(100, 1.0, 10)], now=10.0)
    status = await store.rate_status("k", [RateWindow(100, 1.0, 10)], now=10.0)
    assert grant.wait == pytest.approx(20.0)
    assert status.paused_until == 30.0
    assert status.queued == 1
    assert await store.rate_pause("k", 5.0, now=40.0) == 0.0


async def test_breaker_ops_share_one_circuit_per_key(store: StateStore) -> None:
    """Failures recorded through one key open it; another key stays closed; force and status work."""
    config = BreakerConfig(failures=2, open_for=30.0)
    for t in (0.0, 1.0):
        permit = await store.breaker_acquire("x", config, now=t)
        await store.breaker_record("x", permit, "failure", config, now=t)
    assert (await store.breaker_status("x", config, now=2.0)).state == "open"
    assert (await store.breaker_status("x", config, now=31.0)).state == "half_open"
    assert (await store.breaker_status("y", config, now=2.0)).state == "closed"
    update = await store.breaker_force("y", "isolated", config, now=3.0)
    assert update.snapshot.state == "isolated"
    rejected = await store.breaker_acquire("y", config, now=1000.0)
    assert not rejected.granted
    assert rejected.retry_after is None
    await store.breaker_force("y", "closed", config, now=1001.0)
    assert (await store.breaker_acquire("y", config, now=1002.0)).granted


async def test_a_probe_closes_the_circuit_and_stale_permits_change_nothing(store: StateStore) -> None:
    """Half-open admits one probe; its success closes (close_after=1); an older permit is ignored."""
    config = BreakerConfig(failures=1, open_for=10.0, close_after=1)
    old = await store.breaker_acquire("c", config, now=0.0)
    other = await store.breaker_acquire("c", config, now=0.0)
    opened = await store.breaker_record("c", old, "failure", config, now=0.0)
    assert [t.to_state for t in opened.transitions] == ["open"]
    probe = await store.breaker_acquire("c", config, now=10.0)
    assert probe.probe and [t.to_state for t in probe.transitions] == ["half_open"]
    assert not (await store.breaker_acquire("c", config, now=10.0)).granted
    late = await store.breaker_record("c", other, "failure", config, now=10.5)
    assert late.transitions == () and late.snapshot.state == "half_open"
    closed = await store.breaker_record("c", probe, "success", config, now=11.0)
    assert [t.to_state for t in closed.transitions] == ["closed"]


# --- SQLite only ------------------------------------------------------------------------------


async def test_the_file_is_versioned_in_wal_mode_with_every_table(tmp_path: Path) -> None:
    """Opening creates meta.schema_version = 1, WAL journal mode and the four state tables."""
    db = tmp_path / "s.db"
    store = SQLiteStore(db)
    await store.incr("c", now=0.0)
    await store.aclose()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("1",)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"meta", "kv", "locks", "rate", "breaker"} <= tables


async def test_state_survives_a_new_store_object_on_the_same_file(tmp_path: Path) -> None:
    """Counters, values, limiter and circuit records written by one store are read by the next."""
    db = tmp_path / "s.db"
    config = BreakerConfig()
    first = SQLiteStore(db)
    await first.incr("c", 3.0, now=0.0)
    await first.set("v", b"kept", now=0.0)
    await first.rate_acquire("r", [RateWindow(1, 60.0)], now=0.0)
    await first.breaker_force("b", "isolated", config, now=0.0)
    await first.aclose()
    second = SQLiteStore(db)
    try:
        assert await second.get_counter("c", now=1.0) == 3.0
        assert await second.get("v", now=1.0) == b"kept"
        assert (await second.rate_acquire("r", [RateWindow(1, 60.0)], now=1.0)).wait == pytest.approx(59.0)
        assert (await second.breaker_status("b", config, now=1.0)).state == "isolated"
    finally:
        await second.aclose()


async def test_a_file_from_a_newer_schema_is_refused(tmp_path: Path) -> None:
    """A meta.schema_version above this version raises StateStoreError instead of misreading it."""
    db = tmp_path / "s.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO meta VALUES ('schema_version', '99')")
    store = SQLiteStore(db)
    with pytest.raises(StateStoreError, match="newer tether"):
        await store.get_counter("c", now=0.0)
    await store.aclose()


async def test_sqlite_errors_become_state_store_errors_with_the_cause(tmp_path: Path) -> None:
    """A file that cannot be opened raises StateStoreError from the sqlite3 error."""
    store = SQLiteStore(tmp_path)  # a directory, not a database file
    with pytest.raises(StateStoreError) as info:
        await store.incr("c", now=0.0)
    assert isinstance(info.value.__cause__, sqlite3.Error)
    assert info.value.error_code == "STATE_001"
    await store.aclose()


async def test_an_unreadable_record_is_a_state_store_error(tmp_path: Path) -> None:
    """A corrupted limiter record raises StateStoreError, not a JSON error."""
    db = tmp_path / "s.db"
    store = SQLiteStore(db)
    await store.rate_acquire("r", [RateWindow(1, 1.0)], now=0.0)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE rate SET state = x'7b6e6f' WHERE key = 'r'")
    with pytest.raises(StateStoreError, match="unreadable"):
        await store.rate_acquire("r", [RateWindow(1, 1.0)], now=0.0)
    await store.aclose()


async def test_a_closed_store_refuses_further_calls(tmp_path: Path) -> None:
    """After aclose every operation raises StateStoreError; aclose twice is fine."""
    store = SQLiteStore(tmp_path / "s.db")
    await store.set("v", b"x", now=0.0)
    await store.aclose()
    await store.aclose()
    with pytest.raises(StateStoreError, match="closed"):
        await store.get("v", now=0.0)


async def test_a_bad_cost_is_a_value_error_and_rolls_back(tmp_path: Path) -> None:
    """Configuration errors from the algorithms pass through as ValueError and leave no record."""
    store = SQLiteStore(tmp_path / "s.db")
    with pytest.raises(ValueError, match="exceeds the burst"):
        await store.rate_acquire("r", [RateWindow(5, 1.0)], now=0.0, cost=2)
    assert (await store.rate_status("r", [RateWindow(5, 1.0)], now=0.0)).windows[0].available == 1
    await store.aclose()


async def test_expired_rows_and_idle_limiters_are_swept_lazily(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every SWEEP_EVERY writes, expired values, counters, locks and idle limiter records are deleted."""
    monkeypatch.setattr(sqlite_module, "SWEEP_EVERY", 4)
    db = tmp_path / "s.db"
    store = SQLiteStore(db)
    await store.set("old", b"x", ttl=1.0, now=0.0)  # write 1
    await store.incr("count", ttl=1.0, now=0.0)  # write 2
    await store.try_lock("lock", "me", ttl=1.0, now=0.0)  # write 3
    await store.rate_acquire("idle", [RateWindow(1, 1.0)], now=0.0)  # write 4: swept at now=0
    await store.set("keep", b"y", now=100.0)  # write 5
    await store.set("keep2", b"y", now=100.0)  # write 6
    await store.set("keep3", b"y", now=100.0)  # write 7
    await store.set("keep4", b"y", now=100.0)  # write 8: sweeps at now=100
    await store.aclose()
    with sqlite3.connect(db) as conn:
        kv = sorted(r[0] for r in conn.execute("SELECT key FROM kv"))
        locks = conn.execute("SELECT COUNT(*) FROM locks").fetchone()[0]
        rates = conn.execute("SELECT COUNT(*) FROM rate").fetchone()[0]
    assert kv == ["keep", "keep2", "keep3", "keep4"]
    assert (locks, rates) == (0, 0)


async def test_open_store_selects_sqlite_by_url(tmp_path: Path) -> None:
    """state='sqlite:///<path>' opens a SQLiteStore on that file; a URL without a path is refused."""
    db = tmp_path / "by-url.db"
    store = open_store(f"sqlite:///{db}")
    assert isinstance(store, SQLiteStore)
    assert store.path == str(db)
    await store.set("v", b"x", now=0.0)
    await store.aclose()
    assert db.exists()
    with pytest.raises(SpecError, match="sqlite:///path"):
        open_store("sqlite://")


# --- the policies, unchanged, on SQLite ------------------------------------------------------


def _request() -> httpx2.Request:
    request = httpx2.Request("GET", "http://127.0.0.1:9/data/ITEM-001")
    request.extensions[CONTEXT_KEY] = CallContext(service="svc", timeouts=Timeouts(), endpoint="get_data")
    return request


async def test_the_rate_policy_keeps_its_exact_slots_on_sqlite(tmp_path: Path) -> None:
    """75/min + 10 burst on SQLite: ten calls go at t=0, the next at 0.8, 1.6, 2.4 s (virtual time)."""
    clock = VirtualClock()
    store = SQLiteStore(tmp_path / "s.db")
    policy = Rate("75/minute", burst=10).build(PolicyEnv("svc", clock=clock, store=store))
    sent: list[float] = []

    async def upstream(request: httpx2.Request) -> httpx2.Response:
        sent.append(clock.monotonic())
        return httpx2.Response(200, request=request)

    for _ in range(13):
        await policy(_request(), upstream)
    await store.aclose()
    assert sent[:10] == [0.0] * 10
    assert sent[10:] == pytest.approx([0.8, 1.6, 2.4])


async def test_two_breakers_on_two_store_objects_share_one_circuit(tmp_path: Path) -> None:
    """Failures seen by one client open the circuit for another client on the same SQLite file."""
    clock = VirtualClock()
    db = tmp_path / "s.db"
    stores = [SQLiteStore(db), SQLiteStore(db)]
    a, b = (
        Breaker(failures=3, shared="acct").build(PolicyEnv(n, clock=clock, events=EventBus(), store=s))
        for n, s in zip(("a", "b"), stores, strict=True)
    )
    calls = 0

    async def failing(request: httpx2.Request) -> httpx2.Response:
        nonlocal calls
        calls += 1
        raise APIError("HTTP 503", status_code=503)

    for policy in (a, b, a):
        with pytest.raises(APIError):
            await policy(_request(), failing)
    with pytest.raises(CircuitOpenError) as info:
        await b(_request(), failing)
    assert calls == 3
    assert info.value.retry_after == pytest.approx(30.0)
    for s in stores:
        await s.aclose()


# --- several processes on one file -----------------------------------------------------------


async def test_four_processes_hammering_one_file_lose_no_update(tmp_path: Path) -> None:
    """4 processes × (150 incr + 50 rate_acquire): the counter is exact and every slot is distinct.

    Every process asks at the same ``now`` for a 10/s limit with burst 5, so the 200 grants must be
    exactly the GCRA sequence: 5 slots at ``now``, then one every 0.1 s. A lost update (two
    processes reading the same record) would hand out a slot twice.
    """
    db, go = tmp_path / "shared.db", tmp_path / "go"
    procs, incrs, acquires = 4, 150, 50
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(HAMMER),
            str(db),
            str(go),
            str(incrs),
            str(acquires),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(procs)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            line = await asyncio.wait_for(worker.stdout.readline(), timeout=120)
            assert line.strip() == b"ready", (await worker.stderr.read()).decode() if worker.stderr else ""
        go.touch()
        outputs = [await asyncio.wait_for(w.communicate(), timeout=120) for w in workers]
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
    assert [w.returncode for w in workers] == [0] * procs, [err.decode() for _, err in outputs]
    results = [json.loads(out) for out, _ in outputs]
    seen = sorted(v for r in results for v in r["seen"])
    slots = sorted(s for r in results for s in r["slots"])

    assert seen == [float(i) for i in range(1, procs * incrs + 1)]
    store = SQLiteStore(db)
    assert await store.get_counter("hits", now=1000.0) == procs * incrs
    await store.aclose()
    expected = [1000.0] * 5 + [1000.0 + 0.1 * k for k in range(1, procs * acquires - 4)]
    assert slots == pytest.approx(expected)
    assert most_in_any_span(slots, 1.0) <= 10 + 5
