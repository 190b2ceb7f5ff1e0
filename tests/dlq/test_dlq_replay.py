"""The replay worker: schedule 1/2/4 s ± 20 % in virtual time, failed set, leases, several workers."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path

import pytest

import tether
from tether.dlq import DLQBackend, MemoryDLQ, Replayer, ReplayReport, ReplaySchedule, SQLiteDLQ
from tether.events import EventRecorder
from tether.mock import Fault, FaultServer
from tether.pipeline.fallback import Enqueue, Fallback
from tether.testing import VirtualClock


def parking_client(server: FaultServer, dlq: DLQBackend, clock: VirtualClock) -> tether.Client:
    """A client whose failed POSTs go to ``dlq``: no retry, no breaker, virtual time."""
    return tether.Client(
        server.url + "/v1",
        retry=None,
        breaker=None,
        timeout=None,
        clock=clock,
        policies=[Fallback(Enqueue(dlq, methods={"POST"}))],
    )


async def park(client: tether.Client, n: int = 1) -> list[str]:
    """Make ``n`` POSTs that fail and return their dead-letter ids."""
    ids = []
    for i in range(n):
        with pytest.raises(tether.APIError) as raised:
            await client.post("orders", json={"n": i})
        ids.append(raised.value.dlq_id)  # type: ignore[attr-defined]
    return ids


async def drain(replayer: Replayer) -> ReplayReport:
    """Run passes until one finds nothing to claim."""
    total = ReplayReport()
    while (report := await replayer.run_once()).claimed:
        total.merge(report)
    return total


def test_schedule_is_1_2_4_seconds_within_20_percent() -> None:
    """base(k) is 1, 2, 4 s and every jittered delay stays within ± 20 % of it."""
    schedule = ReplaySchedule()
    assert [schedule.base(k) for k in (1, 2, 3)] == [1.0, 2.0, 4.0]
    rng = random.Random(3)
    for k in (1, 2, 3):
        delays = [schedule.delay(k, rng) for _ in range(200)]
        assert all(0.8 * schedule.base(k) <= d <= 1.2 * schedule.base(k) for d in delays)
        assert max(delays) - min(delays) > 0.2 * schedule.base(k)  # the jitter is really applied
    explicit = ReplaySchedule(delays=(5, 10), multiplier=3)
    assert [explicit.base(k) for k in (1, 2, 3)] == [5.0, 10.0, 30.0]
    with pytest.raises(ValueError, match="jitter"):
        ReplaySchedule(jitter=1.5)


async def test_replays_follow_the_schedule_then_go_to_the_failed_set(fault_server: FaultServer) -> None:
    """Due 1 s ± 20 % after the failure, then 2 s and 4 s ± 20 % after each replay; failed after 3."""
    fault_server.route("POST", "/v1/orders", Fault.status(503))
    clock = VirtualClock()
    dlq = MemoryDLQ()
    recorder = EventRecorder()
    client = parking_client(fault_server, dlq, clock)
    replayer = Replayer(client, dlq, clock=clock, rng=random.Random(11), events=client.events)
    client.events.add(recorder)
    reference = random.Random(11)
    async with client:
        [entry_id] = await park(client)
        entry = await dlq.get(entry_id)
        assert entry is not None
        assert 0.8 <= entry.due_at - entry.created_at <= 1.2
        clock.advance(entry.due_at - clock.time() - 0.01)
        assert (await replayer.run_once()).claimed == 0  # not due yet
        for replay, base in ((1, 2.0), (2, 4.0)):
            clock.advance(entry.due_at - clock.time())
            report = await replayer.run_once()
            assert report.rescheduled == [entry_id]
            entry = await dlq.get(entry_id)
            assert entry is not None
            expected = base * (1 + reference.uniform(-0.2, 0.2))
            assert entry.due_at - clock.time() == pytest.approx(expected)
            assert 0.8 * base <= entry.due_at - clock.time() <= 1.2 * base
            assert (entry.replays, entry.status, entry.error_code) == (replay, "pending", "API_001")
        clock.advance(entry.due_at - clock.time())
        report = await replayer.run_once()
    assert report.failed == [entry_id]
    entry = await dlq.get(entry_id)
    assert entry is not None
    assert (entry.status, entry.replays) == ("failed", 3)
    assert (await dlq.counts()).total == 1  # a failed replay never queues a second copy
    keys = {r.header("idempotency-key") for r in fault_server.log}
    assert len(fault_server.log) == 4
    assert keys == {entry.idempotency_key}
    [failed_event] = recorder.of("dlq.failed")
    assert failed_event.fields["reason"] == "attempts"


async def test_a_recovered_upstream_gets_each_entry_once_and_entries_are_removed(
    fault_server: FaultServer,
) -> None:
    """After recovery every parked call is delivered once, with its key, and leaves the DLQ."""
    fault_server.route("POST", "/v1/orders", Fault.status(503))
    clock = VirtualClock()
    dlq = MemoryDLQ()
    async with parking_client(fault_server, dlq, clock) as client:
        ids = await park(client, 5)
        keys = {e.idempotency_key for e in await dlq.list()}
        fault_server.clear_log()
        fault_server.route("POST", "/v1/orders", Fault.ok(json={"ok": True}))
        report = await Replayer(client, dlq, clock=clock).run(until_empty=True)
    assert sorted(report.delivered) == sorted(ids)
    assert await dlq.list() == []
    sent = Counter(r.header("idempotency-key") for r in fault_server.log)
    assert set(sent) == keys
    assert set(sent.values()) == {1}
    assert sorted(r.json()["n"] for r in fault_server.log) == [0, 1, 2, 3, 4]


async def test_a_permanent_error_goes_to_the_failed_set_at_once(fault_server: FaultServer) -> None:
    """A 422 on replay cannot get better: the entry fails after one replay, not three."""
    fault_server.route("POST", "/v1/orders", Fault.status(503))
    clock = VirtualClock()
    dlq = MemoryDLQ()
    async with parking_client(fault_server, dlq, clock) as client:
        [entry_id] = await park(client)
        fault_server.route("POST", "/v1/orders", Fault.status(422))
        clock.advance(2)
        report = await Replayer(client, dlq, clock=clock).run_once()
    assert report.failed == [entry_id]
    entry = await dlq.get(entry_id)
    assert entry is not None and (entry.status, entry.replays, entry.error_code) == ("failed", 1, "VALID_001")


async def test_a_crashed_workers_claim_expires_and_another_delivers(fault_server: FaultServer) -> None:
    """An entry claimed by a worker that died is replayed by another once the lease ends."""
    fault_server.route("POST", "/v1/orders", Fault.status(503))
    clock = VirtualClock()
    dlq = MemoryDLQ()
    async with parking_client(fault_server, dlq, clock) as client:
        [entry_id] = await park(client)
        fault_server.route("POST", "/v1/orders", Fault.ok(json={}))
        clock.advance(2)
        assert len(await dlq.claim("crashed-worker", now=clock.time(), lease=30)) == 1
        survivor = Replayer(client, dlq, clock=clock, lease=30)
        assert (await survivor.run_once()).claimed == 0
        clock.advance(30)
        report = await survivor.run_once()
    assert report.delivered == [entry_id]
    assert len(fault_server.requests("POST", "/v1/orders")) == 2  # the original and one replay


async def test_two_workers_on_one_sqlite_file_never_double_deliver(
    tmp_path: Path, fault_server: FaultServer
) -> None:
    """Two replayers with their own connections deliver 40 entries between them, each once."""
    fault_server.route("POST", "/v1/orders", Fault.status(503))
    clock = VirtualClock()
    path = tmp_path / "dlq.db"
    writer = SQLiteDLQ(path)
    async with parking_client(fault_server, writer, clock) as client:
        await park(client, 40)
        fault_server.clear_log()
        fault_server.route("POST", "/v1/orders", Fault.ok(json={}))
        clock.advance(2)
        first, second = SQLiteDLQ(path), SQLiteDLQ(path)
        try:
            a = Replayer(client, first, clock=clock, batch=3, concurrency=2)
            b = Replayer(client, second, clock=clock, batch=3, concurrency=2)
            # Passes back to back, time standing still (no virtual sleeps while sockets are busy).
            ra, rb = await asyncio.gather(drain(a), drain(b))
        finally:
            await first.aclose()
            await second.aclose()
    await writer.aclose()
    assert len(ra.delivered) + len(rb.delivered) == 40
    assert not set(ra.delivered) & set(rb.delivered)
    assert ra.lost == rb.lost == []
    sent = Counter(r.header("idempotency-key") for r in fault_server.log)
    assert len(sent) == 40
    assert set(sent.values()) == {1}


async def test_replay_now_retries_a_failed_entry(fault_server: FaultServer) -> None:
    """replay_now makes a failed entry due and delivers it (tether dlq replay --id)."""
    fault_server.route("POST", "/v1/orders", Fault.status(503))
    clock = VirtualClock()
    dlq = MemoryDLQ()
    async with parking_client(fault_server, dlq, clock) as client:
        [entry_id] = await park(client)
        now = clock.time()
        await dlq.fail(entry_id, None, replays=3, error_code="API_001", error_message="gone", now=now)
        fault_server.route("POST", "/v1/orders", Fault.ok(json={}))
        report = await Replayer(client, dlq, clock=clock).replay_now([entry_id])
    assert report.delivered == [entry_id]
    assert await dlq.list() == []
