"""Redis killed mid-run and started again on the same port: calls keep succeeding, the events
mark the switch to local state and back, and no dead letter is lost."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import tether
from tether import events as ev
from tether.dlq import SQLiteDLQ, StoredRequest
from tether.dlq.redis import RedisDLQ
from tether.events import EventBus, EventRecorder
from tether.mock import Fault, FaultServer
from tether.state._fallback import FallbackStore
from tether.state.redis import RedisStore

pytestmark = [pytest.mark.redis, pytest.mark.realtime]


async def _until(condition: Callable[[], bool], what: str, limit: float = 20.0) -> None:
    """Wait until ``condition()`` holds (a liveness guard, not a timing assertion)."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.01)


def _letter(n: int) -> tether.dlq.DeadLetter:
    now = time.time()
    return tether.dlq.DeadLetter(
        id=uuid.uuid4().hex,
        service="svc",
        endpoint="create",
        request=StoredRequest("POST", "https://api.test/orders", (), f'{{"n":{n}}}'.encode()),
        idempotency_key=f"k-{n}",
        credential_ref=None,
        attempts=5,
        error_code="API_001",
        error_message="HTTP 503",
        created_at=now,
        due_at=now + 1.0,
    )


async def test_calls_and_dead_letters_survive_a_redis_restart(
    redis_server_factory: Callable[..., Any], fault_server: FaultServer, tmp_path: Path
) -> None:
    """Redis killed and restarted mid-traffic: every call succeeds, one switch each way, no letter lost."""
    # The DLQ needs persistence: an fsync'd append-only file survives the SIGKILL.
    server = redis_server_factory(extra=["--appendonly", "yes", "--appendfsync", "always"])
    namespace = f"o-{uuid.uuid4().hex[:8]}:"
    recorder = EventRecorder()
    state = FallbackStore(
        RedisStore(server.url, namespace=namespace, timeout=0.3), retry_every=0.3, events=EventBus([recorder])
    )
    dlq = RedisDLQ(server.url, namespace=namespace, timeout=1.0, spill=SQLiteDLQ(tmp_path / "spill.db"))
    fault_server.route("GET", "/data", Fault.ok(json={"ok": True}))
    outcomes: list[str] = []
    added: list[str] = []
    stop = asyncio.Event()
    client = tether.Client(
        fault_server.url,
        rate=tether.Rate("200/second", burst=10, shared="demo"),
        breaker=tether.Breaker(shared="demo"),
        retry=None,
        state=state,
    )

    async def calls() -> None:
        while not stop.is_set():
            try:
                await client.get("/data")
                outcomes.append("ok")
            except tether.errors.TetherError as exc:
                outcomes.append(type(exc).__name__)
            await asyncio.sleep(0.005)

    async def dead_letters() -> None:
        n = 0
        while not stop.is_set():
            letter = _letter(n)
            await dlq.add(letter)  # raises if it could not be kept anywhere: that fails the test
            added.append(letter.id)
            n += 1
            await asyncio.sleep(0.01)

    try:
        async with client:
            tasks = [asyncio.create_task(calls()), asyncio.create_task(dead_letters())]
            await _until(lambda: len(outcomes) >= 20 and len(added) >= 10, "traffic on shared state")
            await asyncio.to_thread(server.kill)
            await _until(lambda: bool(recorder.of(ev.STATE_LOCAL)), "the switch to local state")
            during = len(outcomes)
            await _until(lambda: len(outcomes) >= during + 50, "calls on local state")
            await asyncio.to_thread(server.start)  # same port, same append-only file
            await _until(lambda: bool(recorder.of(ev.STATE_SHARED)), "the switch back")
            after = len(outcomes)
            await _until(lambda: len(outcomes) >= after + 20, "calls on shared state again")
            stop.set()
            await asyncio.gather(*tasks)
        stored = {e.id for e in await dlq.list()}
    finally:
        stop.set()
        await dlq.aclose()
        await state.aclose()

    assert set(outcomes) == {"ok"}, "every call succeeded, whatever Redis did"
    assert recorder.names() == [ev.STATE_LOCAL, ev.STATE_SHARED]
    assert stored == set(added), "no dead letter lost"
    assert dlq.flushed >= 1, "some were written while Redis was down, kept in the spill, and moved back"
