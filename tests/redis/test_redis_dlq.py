"""RedisDLQ keeps the DLQBackend contract (the same tests the memory and SQLite backends pass),
shares its queue between workers, and loses nothing while Redis is away."""

from __future__ import annotations

import importlib.util
import inspect
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tether.dlq import DeadLetter, DLQBackend, MemoryDLQ, Replayer, SQLiteDLQ, open_dlq
from tether.dlq.redis import RedisDLQ
from tether.errors import StateStoreError
from tether.mock import Fault, FaultServer

pytestmark = pytest.mark.redis

_DLQ_TESTS = Path(__file__).resolve().parents[1] / "dlq"
if str(_DLQ_TESTS) not in sys.path:
    sys.path.insert(0, str(_DLQ_TESTS))

from dlq_helpers import EPOCH, assert_concurrent_claims_split  # noqa: E402
from dlq_helpers import make_entry as _make_entry  # noqa: E402


def _contract_tests() -> dict[str, Any]:
    """The backend contract tests of tests/dlq/test_*backends.py that take a ``backend``."""
    found: dict[str, Any] = {}
    for path in sorted(_DLQ_TESTS.glob("test_*backends.py")):
        spec = importlib.util.spec_from_file_location(f"dlq_contract_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for name, fn in vars(module).items():
            if name.startswith("test_") and callable(fn) and "backend" in inspect.signature(fn).parameters:
                found[name] = fn
    return found


# Collected here, they run with this module's ``backend`` fixture: a RedisDLQ.
globals().update(_contract_tests())

MakeEntry = Callable[..., DeadLetter]


@pytest.fixture
async def backend(redis_url: str, namespace: str) -> AsyncIterator[DLQBackend]:
    """A RedisDLQ on the session's Redis, in a namespace of its own."""
    dlq = RedisDLQ(redis_url, namespace=namespace, timeout=5.0)
    try:
        yield dlq
    finally:
        await dlq.aclose()


@pytest.fixture
def make_entry() -> MakeEntry:
    """``make_entry(**overrides)``: a pending POST dead letter created at EPOCH, due a second later."""
    return _make_entry


def test_the_contract_tests_were_found() -> None:
    """The shared backend contract is really run here (a renamed file would silently drop it)."""
    assert len(_contract_tests()) >= 8


def test_redis_dlq_implements_the_protocol(redis_url: str) -> None:
    """RedisDLQ has every method of DLQBackend, and open_dlq builds one from a redis:// URL."""
    assert isinstance(RedisDLQ(redis_url), DLQBackend)
    opened = open_dlq(f"{redis_url}?name=orders&timeout=3")
    assert isinstance(opened, RedisDLQ)
    assert opened.name == "orders"
    assert opened.prefix == "tether:{dlq:orders}:"


async def test_fields_and_times_round_trip_exactly(backend: DLQBackend, make_entry: MakeEntry) -> None:
    """Binary bodies, repeated headers, extra data and sub-microsecond times read back unchanged."""
    entry = make_entry(
        created_at=EPOCH + 0.123456789,
        due_at=EPOCH + 1.000000119,
        extra={"nested": {"a": [1, 2.5, None]}, "text": "é"},
    )
    odd = entry.with_changes(
        request=entry.request.__class__(
            "PUT", "https://api.test/x", (("x-a", "1"), ("x-a", "2")), b"\x00\xff\x10"
        )
    )
    await backend.add(odd)
    assert await backend.get(odd.id) == odd
    [held] = await backend.claim("w", now=EPOCH + 2.000000001, lease=0.3)
    assert held.lease_until == EPOCH + 2.000000001 + 0.3


async def test_two_workers_claiming_at_once_split_the_entries(
    redis_url: str, namespace: str, make_entry: MakeEntry
) -> None:
    """Two RedisDLQ connections draining one queue concurrently get every entry exactly once."""
    first = RedisDLQ(redis_url, namespace=namespace, timeout=5.0)
    second = RedisDLQ(redis_url, namespace=namespace, timeout=5.0)
    try:
        await assert_concurrent_claims_split(first, second)
    finally:
        await first.aclose()
        await second.aclose()


async def test_claim_orders_ties_on_due_time_by_creation(backend: DLQBackend, make_entry: MakeEntry) -> None:
    """Entries due at the same time are claimed oldest-created first, across the limit boundary."""
    entries = [make_entry(due_at=EPOCH + 1, created_at=EPOCH - i) for i in range(6)]
    for e in entries:
        await backend.add(e)
    claimed = await backend.claim("w", now=EPOCH + 1, lease=10, limit=2)
    assert [e.id for e in claimed] == [entries[5].id, entries[4].id]


async def test_an_unreachable_redis_makes_add_fail_loudly_without_a_spill(make_entry: MakeEntry) -> None:
    """Without a spill backend, add raises StateStoreError: the caller knows the entry was not kept."""
    dlq = RedisDLQ("redis://127.0.0.1:1/0", timeout=0.3)
    with pytest.raises(StateStoreError, match="Redis DLQ"):
        await dlq.add(make_entry())
    await dlq.aclose()


async def test_entries_spilled_while_redis_is_away_are_moved_back(
    redis_server_factory: Callable[..., Any], tmp_path: Path, make_entry: MakeEntry
) -> None:
    """With Redis killed, add writes to the SQLite spill; once Redis is back the entries move to it."""
    server = redis_server_factory()
    spill = SQLiteDLQ(tmp_path / "spill.db")
    dlq = RedisDLQ(server.url, timeout=0.5, spill=spill, namespace=f"s-{uuid.uuid4().hex[:8]}:")
    try:
        before = make_entry()
        await dlq.add(before)
        server.kill()
        during = [make_entry(created_at=EPOCH + i) for i in (1, 2)]
        for entry in during:
            assert await dlq.add(entry) == entry.id
        assert {e.id for e in await spill.list()} == {e.id for e in during}
        with pytest.raises(StateStoreError):
            await dlq.counts()
        server.start()  # same port; this server keeps nothing, so `before` is gone with it
        await dlq.add(before)
        assert await spill.list() == []
        listed = [e.id for e in await dlq.list()]
        assert listed == [before.id, during[0].id, during[1].id]
        assert dlq.flushed == 2
    finally:
        await dlq.aclose()


async def test_a_leftover_spill_is_flushed_by_the_first_operation(
    redis_url: str, namespace: str, make_entry: MakeEntry
) -> None:
    """Entries a previous process spilled are moved to Redis by the next process's first call."""
    spill = MemoryDLQ()
    failed = make_entry(status="failed")
    pending = make_entry()
    await spill.add(failed)
    await spill.add(pending)
    dlq = RedisDLQ(redis_url, namespace=namespace, timeout=5.0, spill=spill)
    try:
        counts = await dlq.counts()
        assert (counts.pending, counts.failed) == (1, 1)
        assert (await spill.counts()).total == 0
        got = await dlq.get(failed.id)
        assert got is not None and got.status == "failed"
    finally:
        await dlq.aclose()


async def test_the_replayer_delivers_entries_from_redis(
    redis_url: str, namespace: str, make_entry: MakeEntry, fault_server: FaultServer
) -> None:
    """A Replayer on a RedisDLQ sends the due entry to the server and removes it when delivered."""
    import tether

    fault_server.route("POST", "/v1/orders", Fault.ok(json={"ok": True}))
    dlq = RedisDLQ(redis_url, namespace=namespace, timeout=5.0)
    entry = make_entry(
        request=make_entry().request.__class__(
            "POST", f"{fault_server.url}/v1/orders", (("content-type", "application/json"),), b"{}"
        ),
        due_at=0.0,
    )
    try:
        await dlq.add(entry)
        async with tether.Client(fault_server.url, retry=None, breaker=None) as client:
            report = await Replayer(client, dlq).run_once()
        assert report.delivered == [entry.id]
        assert await dlq.get(entry.id) is None
        assert len(fault_server.requests("POST", "/v1/orders")) == 1
    finally:
        await dlq.aclose()


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[Any]:
    """A plain redis-py client on the session's Redis, to look at the DLQ's keys."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


async def test_claims_are_delivered_by_a_stream_consumer_group(
    backend: DLQBackend, raw: Any, make_entry: MakeEntry
) -> None:
    """A due entry is XADDed to the ready stream and read by the worker's consumer of the group."""
    assert isinstance(backend, RedisDLQ)
    stream = backend.prefix + "ready"
    entry = make_entry(due_at=EPOCH + 1)
    later = make_entry(due_at=EPOCH + 100)
    await backend.add(entry)
    await backend.add(later)
    [held] = await backend.claim("w1", now=EPOCH + 2, lease=30)
    assert held.id == entry.id
    [group] = await raw.xinfo_groups(stream)
    assert group["name"] == "replayers"
    pending = await raw.xpending_range(stream, "replayers", "-", "+", 10)
    assert [
        (p["consumer"], (await raw.xrange(stream, p["message_id"], p["message_id"]))[0][1]) for p in pending
    ] == [("w1", {"id": entry.id})]
    assert await raw.xlen(stream) == 1  # the entry not yet due waits in the delayed set
    assert await raw.zrange(backend.prefix + "due", 0, -1) == [later.id]
    assert await backend.complete(entry.id, "w1")
    assert await raw.xlen(stream) == 0
    assert await raw.xpending(stream, "replayers") == {
        "pending": 0,
        "min": None,
        "max": None,
        "consumers": [],
    }


async def test_a_dead_workers_pending_entry_is_xclaimed_after_its_lease(
    backend: DLQBackend, raw: Any, make_entry: MakeEntry
) -> None:
    """A crashed worker's entry stays in its pending list until the callers' time passes the lease,
    then the next worker XCLAIMs it (the group's idle time on the server clock plays no part)."""
    assert isinstance(backend, RedisDLQ)
    stream = backend.prefix + "ready"
    entry = make_entry(due_at=EPOCH + 1)
    await backend.add(entry)
    [held] = await backend.claim("dead", now=EPOCH + 5, lease=10)
    [before] = await raw.xpending_range(stream, "replayers", "-", "+", 10)
    assert before["consumer"] == "dead"
    assert await backend.claim("alive", now=EPOCH + 14.9, lease=10) == []
    [taken] = await backend.claim("alive", now=EPOCH + 15, lease=10)
    assert (taken.id, taken.lease_owner, taken.lease_until) == (entry.id, "alive", EPOCH + 25)
    [after] = await raw.xpending_range(stream, "replayers", "-", "+", 10)
    assert (after["message_id"], after["consumer"]) == (before["message_id"], "alive")
    assert after["times_delivered"] == 2
    assert not await backend.reschedule(
        held.id, "dead", due_at=EPOCH + 20, replays=1, error_code="X", error_message="x", now=EPOCH + 16
    )
    assert await backend.fail(entry.id, "alive", replays=1, error_code="X", error_message="x", now=EPOCH + 16)
    assert await raw.xlen(stream) == 0
    assert (await raw.xpending(stream, "replayers"))["pending"] == 0
    assert await raw.zrange(backend.prefix + "failed", 0, -1) == [entry.id]


async def test_reschedule_and_claim_by_id_keep_the_stream_consistent(
    backend: DLQBackend, raw: Any, make_entry: MakeEntry
) -> None:
    """A rescheduled entry leaves the stream for the delayed set; claiming by id takes an entry
    waiting in the stream out of it, and one held by a dead worker from its pending list."""
    assert isinstance(backend, RedisDLQ)
    stream = backend.prefix + "ready"
    first = make_entry(due_at=EPOCH + 1, created_at=EPOCH - 2)
    second = make_entry(due_at=EPOCH + 1, created_at=EPOCH - 1)
    await backend.add(first)
    await backend.add(second)
    [held] = await backend.claim("w1", now=EPOCH + 3, lease=10, limit=1)
    assert held.id == first.id
    assert await raw.xlen(stream) == 2  # `second` (tied on due time) was promoted and waits
    [by_id] = await backend.claim("w2", now=EPOCH + 3, lease=10, ids=[second.id, first.id])
    assert by_id.id == second.id  # `first` is under w1's running lease
    assert await raw.xlen(stream) == 1
    assert await backend.reschedule(
        first.id, "w1", due_at=EPOCH + 50, replays=1, error_code="X", error_message="x", now=EPOCH + 4
    )
    assert await raw.xlen(stream) == 0
    assert await raw.zrange(backend.prefix + "due", 0, -1) == [first.id]
    [expired] = await backend.claim("w3", now=EPOCH + 20, lease=10)  # w2's lease ended
    assert (expired.id, expired.lease_owner) == (second.id, "w3")
    assert await backend.complete(second.id, "w3")
    [again] = await backend.claim("w3", now=EPOCH + 50, lease=10)
    assert (again.id, again.replays) == (first.id, 1)
    [pending] = await raw.xpending_range(stream, "replayers", "-", "+", 10)
    assert pending["consumer"] == "w3"
    [taken] = await backend.claim("w4", now=EPOCH + 60, lease=10, ids=[first.id])
    assert taken.lease_owner == "w4"
    [moved] = await raw.xpending_range(stream, "replayers", "-", "+", 10)
    assert (moved["message_id"], moved["consumer"]) == (pending["message_id"], "w4")
    assert not await backend.complete(first.id, "w3")
    assert await backend.complete(first.id, "w4")
    assert await raw.xlen(stream) == 0
