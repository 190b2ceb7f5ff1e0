"""The DLQBackend contract, run against the memory and the SQLite backend."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dlq_helpers import EPOCH, assert_concurrent_claims_split

from tether.dlq import DeadLetter, DLQBackend, SQLiteDLQ

MakeEntry = Callable[..., DeadLetter]


async def test_add_then_get_returns_every_field(backend: DLQBackend, make_entry: MakeEntry) -> None:
    """An added entry reads back whole: request, key, error, times."""
    entry = make_entry(credential_ref="svc@https://api.test", extra={"note": "x"})
    assert await backend.add(entry) == entry.id
    assert await backend.get(entry.id) == entry


async def test_adding_the_same_id_twice_keeps_one_entry(backend: DLQBackend, make_entry: MakeEntry) -> None:
    """A repeated add of one id is a no-op, so a retried add cannot duplicate."""
    entry = make_entry()
    await backend.add(entry)
    await backend.add(entry.with_changes(error_code="OTHER"))
    assert [e.id for e in await backend.list()] == [entry.id]
    got = await backend.get(entry.id)
    assert got is not None and got.error_code == "API_001"


async def test_claim_takes_only_due_unleased_pending_entries(
    backend: DLQBackend, make_entry: MakeEntry
) -> None:
    """Claim leases due pending entries, oldest due first, and skips future, leased and failed ones."""
    late = make_entry(due_at=EPOCH + 10)
    early = make_entry(due_at=EPOCH + 1)
    later = make_entry(due_at=EPOCH + 2)
    failed = make_entry(due_at=EPOCH, status="failed")
    for e in (late, early, later, failed):
        await backend.add(e)
    claimed = await backend.claim("w1", now=EPOCH + 5, lease=30, limit=10)
    assert [e.id for e in claimed] == [early.id, later.id]
    assert all(e.lease_owner == "w1" and e.lease_until == EPOCH + 35 for e in claimed)
    assert await backend.claim("w2", now=EPOCH + 6, lease=30) == []
    counts = await backend.counts()
    assert (counts.pending, counts.failed, counts.leased) == (3, 1, 2)


async def test_claim_respects_the_limit_and_ids(backend: DLQBackend, make_entry: MakeEntry) -> None:
    """limit bounds a claim; ids restricts it to those entries."""
    entries = [make_entry(due_at=EPOCH + i) for i in range(5)]
    for e in entries:
        await backend.add(e)
    assert len(await backend.claim("w1", now=EPOCH + 10, lease=5, limit=2)) == 2
    picked = await backend.claim("w2", now=EPOCH + 10, lease=5, ids=[entries[4].id, entries[0].id])
    assert [e.id for e in picked] == [entries[4].id]  # entries[0] is held by w1


async def test_an_expired_lease_can_be_claimed_by_another_worker(
    backend: DLQBackend, make_entry: MakeEntry
) -> None:
    """A crashed worker's claim expires; the old owner can then no longer complete it."""
    entry = make_entry()
    await backend.add(entry)
    [held] = await backend.claim("crashed", now=EPOCH + 2, lease=10)
    assert await backend.claim("w2", now=EPOCH + 11.9, lease=10) == []
    [taken] = await backend.claim("w2", now=EPOCH + 12, lease=10)
    assert taken.lease_owner == "w2"
    assert await backend.complete(held.id, "crashed") is False
    assert await backend.complete(taken.id, "w2") is True
    assert await backend.get(entry.id) is None


async def test_reschedule_records_the_replay_and_releases(backend: DLQBackend, make_entry: MakeEntry) -> None:
    """reschedule sets replays, error and due time and frees the lease; only for the holder."""
    entry = make_entry()
    await backend.add(entry)
    await backend.claim("w1", now=EPOCH + 2, lease=10)
    kwargs = {"due_at": EPOCH + 4, "replays": 1, "error_code": "CONN_001", "error_message": "reset", "now": 2}
    assert await backend.reschedule(entry.id, "w2", **kwargs) is False  # type: ignore[arg-type]
    assert await backend.reschedule(entry.id, "w1", **kwargs) is True  # type: ignore[arg-type]
    got = await backend.get(entry.id)
    assert got is not None
    assert (got.replays, got.error_code, got.due_at, got.lease_owner) == (1, "CONN_001", EPOCH + 4, None)
    assert await backend.claim("w1", now=EPOCH + 3, lease=10) == []
    assert len(await backend.claim("w1", now=EPOCH + 4, lease=10)) == 1


async def test_fail_moves_to_the_failed_set_which_is_never_claimed(
    backend: DLQBackend, make_entry: MakeEntry
) -> None:
    """A failed entry waits for a person: listed as failed, never claimed, until requeued."""
    entry = make_entry()
    await backend.add(entry)
    await backend.claim("w1", now=EPOCH + 2, lease=10)
    moved = await backend.fail(entry.id, "w1", replays=3, error_code="API_001", error_message="x", now=EPOCH)
    assert moved
    assert [e.id for e in await backend.list(status="failed")] == [entry.id]
    assert await backend.list(status="pending") == []
    assert await backend.claim("w1", now=EPOCH + 1000, lease=10) == []
    assert await backend.requeue(entry.id, due_at=EPOCH + 1000, now=EPOCH + 1000)
    [again] = await backend.claim("w1", now=EPOCH + 1000, lease=10)
    assert (again.status, again.replays) == ("pending", 0)


async def test_release_gives_the_lease_back(backend: DLQBackend, make_entry: MakeEntry) -> None:
    """A released entry is claimable again at once."""
    entry = make_entry()
    await backend.add(entry)
    await backend.claim("w1", now=EPOCH + 2, lease=100)
    assert await backend.release(entry.id, "w1")
    assert len(await backend.claim("w2", now=EPOCH + 2, lease=100)) == 1


async def test_purge_by_status_and_all(backend: DLQBackend, make_entry: MakeEntry) -> None:
    """purge(status='failed') keeps pending entries; purge() removes the rest."""
    await backend.add(make_entry())
    await backend.add(make_entry(status="failed"))
    await backend.add(make_entry(status="failed"))
    assert await backend.purge(status="failed") == 2
    assert (await backend.counts()).total == 1
    assert await backend.purge() == 1
    assert await backend.list() == []


async def test_list_pages_oldest_first(backend: DLQBackend, make_entry: MakeEntry) -> None:
    """list orders by creation time and honours limit and offset."""
    entries = [make_entry(created_at=EPOCH + i) for i in (3, 1, 2)]
    for e in entries:
        await backend.add(e)
    listed = await backend.list()
    assert [e.created_at for e in listed] == [EPOCH + 1, EPOCH + 2, EPOCH + 3]
    assert [e.created_at for e in await backend.list(limit=1, offset=1)] == [EPOCH + 2]


async def test_two_sqlite_connections_never_claim_one_entry(tmp_path: Path, make_entry: MakeEntry) -> None:
    """Two backends on one file claiming concurrently split the entries, each exactly once."""
    path = tmp_path / "shared.db"
    first, second = SQLiteDLQ(path), SQLiteDLQ(path)
    try:
        await assert_concurrent_claims_split(first, second)
    finally:
        await first.aclose()
        await second.aclose()


async def test_sqlite_entries_survive_reopening(tmp_path: Path, make_entry: MakeEntry) -> None:
    """A closed and reopened SQLite DLQ has the same entries."""
    path = tmp_path / "again.db"
    entry = make_entry()
    dlq = SQLiteDLQ(f"sqlite:///{path}")
    await dlq.add(entry)
    await dlq.aclose()
    reopened = SQLiteDLQ(path)
    try:
        assert await reopened.get(entry.id) == entry
    finally:
        await reopened.aclose()
