"""The bulkhead: concurrency slots, a bounded FIFO queue, deadlines and cancellation (virtual time)."""

from __future__ import annotations

import asyncio

import httpx2
import pytest

from tether import errors
from tether.events import BULKHEAD_QUEUED, BULKHEAD_REJECTED
from tether.pipeline._base import Pipeline
from tether.pipeline.bulkhead import Bulkhead, BulkheadPolicy
from tether.pipeline.deadline import Deadline


async def until(predicate, spins: int = 200) -> None:  # type: ignore[no-untyped-def]
    """Let other tasks run until ``predicate()`` holds (no clock time passes)."""
    for _ in range(spins):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


# --- options ---------------------------------------------------------------------------------


def test_defaults_and_validation() -> None:
    """Bulkhead() is 10 concurrent with a 10-place queue; bad values name the rule and the value."""
    b = Bulkhead()
    assert (b.max_concurrent, b.max_queue, b.queue_timeout) == (10, 10, None)
    assert (Bulkhead.DEFAULT_MAX_CONCURRENT, Bulkhead.DEFAULT_MAX_QUEUE, Bulkhead.kind) == (
        10,
        10,
        "bulkhead",
    )
    assert Bulkhead(queue_timeout="500ms").queue_timeout == 0.5
    with pytest.raises(ValueError, match=r"Bulkhead.max_concurrent must be at least 1, got 0"):
        Bulkhead(max_concurrent=0)
    with pytest.raises(ValueError, match=r"Bulkhead.max_queue must be zero or more, got -1"):
        Bulkhead(max_queue=-1)
    with pytest.raises(ValueError, match=r"Bulkhead.max_concurrent must be an integer, got 2.5"):
        Bulkhead(max_concurrent=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Bulkhead.queue_timeout must be positive"):
        Bulkhead(queue_timeout=0)


# --- limits ----------------------------------------------------------------------------------


async def test_limits_concurrency(env, script, make_request, reply, clock) -> None:
    """No more than max_concurrent attempts are in flight; the rest wait their turn and succeed."""
    policy = Bulkhead(max_concurrent=3, max_queue=100).build(env)
    handler = script(reply(200, delay=1.0))
    responses = await asyncio.gather(*(policy(make_request(), handler) for _ in range(25)))
    assert all(r.status_code == 200 for r in responses)
    assert handler.max_in_flight == 3
    assert clock.monotonic() == 9.0  # ceil(25 / 3) rounds of 1 s
    assert policy.status() == {"in_flight": 0, "queued": 0, "max_concurrent": 3, "max_queue": 100}


async def test_queue_is_fifo(env, script, make_request) -> None:
    """Waiting callers get slots in the order they arrived."""
    policy = Bulkhead(max_concurrent=1, max_queue=10).build(env)
    gate = asyncio.Event()

    async def held(request: httpx2.Request) -> httpx2.Response:
        await gate.wait()
        return httpx2.Response(200, request=request)

    handler = script(held, 200)
    first = asyncio.create_task(policy(make_request(url="items/0"), handler))
    await until(lambda: policy.status()["in_flight"] == 1)
    waiters = []
    for i in range(1, 6):
        waiters.append(asyncio.create_task(policy(make_request(url=f"items/{i}"), handler)))
        await until(lambda i=i: policy.status()["queued"] == i)
    gate.set()
    await asyncio.gather(first, *waiters)
    assert [r.url.path for r in handler.requests] == [f"/v1/items/{i}" for i in range(6)]


async def test_full_queue_rejects_without_sending(env, script, make_request, recorder) -> None:
    """With every slot and queue place taken, the next call fails at once with BulkheadFull."""
    policy = Bulkhead(max_concurrent=1, max_queue=2).build(env)
    gate = asyncio.Event()

    async def held(request: httpx2.Request) -> httpx2.Response:
        await gate.wait()
        return httpx2.Response(200, request=request)

    handler = script(held)
    tasks = [asyncio.create_task(policy(make_request(), handler)) for _ in range(3)]
    await until(lambda: policy.status() == {"in_flight": 1, "queued": 2, "max_concurrent": 1, "max_queue": 2})
    with pytest.raises(errors.BulkheadFull) as info:
        await policy(make_request(), handler)
    assert isinstance(info.value, errors.Rejected)
    assert handler.calls == 1
    assert recorder.of(BULKHEAD_REJECTED)[0].fields["reason"] == "queue_full"
    assert len(recorder.of(BULKHEAD_QUEUED)) == 2
    gate.set()
    await asyncio.gather(*tasks)
    assert handler.calls == 3


async def test_zero_queue_rejects_as_soon_as_slots_are_taken(env, script, make_request, reply) -> None:
    """max_queue=0: no waiting at all."""
    policy = Bulkhead(max_concurrent=1, max_queue=0).build(env)
    busy = asyncio.create_task(policy(make_request(), script(reply(200, delay=5))))
    await until(lambda: policy.status()["in_flight"] == 1)
    with pytest.raises(errors.BulkheadFull):
        await policy(make_request(), script(200))
    await busy


# --- time limits -----------------------------------------------------------------------------


async def test_waiting_respects_the_deadline(env, script, make_request, reply, clock) -> None:
    """A queued caller whose deadline comes first fails with TimeoutError(total) at the deadline, unsent."""
    policy = Bulkhead(max_concurrent=1, max_queue=5).build(env)
    busy = asyncio.create_task(policy(make_request(), script(reply(200, delay=10))))
    await until(lambda: policy.status()["in_flight"] == 1)
    late = script(200)
    with pytest.raises(errors.TimeoutError) as info:
        await policy(make_request(deadline=2.0), late)
    assert info.value.phase == "total"
    assert clock.monotonic() == 2.0
    assert late.calls == 0
    assert policy.status()["queued"] == 0
    await busy


async def test_deadline_already_spent_is_not_queued(env, script, make_request, reply, clock) -> None:
    """A caller with no time left is refused without joining the queue."""
    policy = Bulkhead(max_concurrent=1).build(env)
    busy = asyncio.create_task(policy(make_request(), script(reply(200, delay=1))))
    await until(lambda: policy.status()["in_flight"] == 1)
    with pytest.raises(errors.TimeoutError):
        await policy(make_request(deadline=0.0), script(200))
    assert policy.status()["queued"] == 0
    await busy


async def test_queue_timeout_rejects_with_bulkhead_full(
    env, script, make_request, reply, clock, recorder
) -> None:
    """A caller that waits longer than queue_timeout is rejected with BulkheadFull."""
    policy = Bulkhead(max_concurrent=1, queue_timeout=3).build(env)
    busy = asyncio.create_task(policy(make_request(), script(reply(200, delay=10))))
    await until(lambda: policy.status()["in_flight"] == 1)
    with pytest.raises(errors.BulkheadFull, match=r"queue timeout of 3s"):
        await policy(make_request(deadline=50.0), script(200))
    assert clock.monotonic() == 3.0
    assert recorder.of(BULKHEAD_REJECTED)[0].fields["reason"] == "queue_timeout"
    await busy


async def test_with_the_deadline_policy(env, script, make_request, reply, clock) -> None:
    """Inside a pipeline, the Deadline policy's deadline bounds the bulkhead wait."""
    bulkhead = Bulkhead(max_concurrent=1)
    busy_pipe = Pipeline.build([bulkhead], env, script(reply(200, delay=30)))
    shared = busy_pipe.policy("bulkhead")
    busy = asyncio.create_task(busy_pipe(make_request()))
    await until(lambda: shared.status()["in_flight"] == 1)
    waiting = Pipeline([("deadline", Deadline(4).build(env)), ("bulkhead", shared)], script(200))
    with pytest.raises(errors.TimeoutError):
        await waiting(make_request())
    assert clock.monotonic() == 4.0
    await busy


# --- releasing slots -------------------------------------------------------------------------


async def test_slot_released_after_an_error(env, script, make_request) -> None:
    """An attempt that raises gives its slot back."""
    policy = Bulkhead(max_concurrent=1).build(env)
    with pytest.raises(errors.ConnectionError):
        await policy(make_request(), script(errors.ConnectionError("refused")))
    assert policy.status()["in_flight"] == 0
    assert (await policy(make_request(), script(200))).status_code == 200


async def test_slot_released_when_the_attempt_is_cancelled(env, script, make_request, hang) -> None:
    """Cancelling an in-flight attempt frees its slot for the next waiter."""
    policy = Bulkhead(max_concurrent=1).build(env)
    stuck = asyncio.create_task(policy(make_request(), script(hang)))
    await until(lambda: policy.status()["in_flight"] == 1)
    waiter = asyncio.create_task(policy(make_request(), script(200)))
    await until(lambda: policy.status()["queued"] == 1)
    stuck.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stuck
    assert (await waiter).status_code == 200
    assert policy.status()["in_flight"] == 0


async def test_cancelled_waiter_leaves_the_queue(env, script, make_request, hang) -> None:
    """A waiter cancelled while queued takes no slot and no queue place."""
    policy = Bulkhead(max_concurrent=1).build(env)
    stuck = asyncio.create_task(policy(make_request(), script(hang)))
    await until(lambda: policy.status()["in_flight"] == 1)
    waiter = asyncio.create_task(policy(make_request(), script(200)))
    await until(lambda: policy.status()["queued"] == 1)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert policy.status()["queued"] == 0
    stuck.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stuck
    assert policy.status()["in_flight"] == 0


async def test_slot_handed_to_a_cancelled_waiter_passes_on(env, script, make_request) -> None:
    """If a waiter is cancelled just after being handed a slot, the slot goes to the next waiter."""
    policy = Bulkhead(max_concurrent=1).build(env)
    handler = script(200)
    queued: list[asyncio.Task[httpx2.Response]] = []

    async def holder(request: httpx2.Request) -> httpx2.Response:
        queued.append(asyncio.create_task(policy(make_request(url="a"), handler)))
        queued.append(asyncio.create_task(policy(make_request(url="b"), handler)))
        await until(lambda: policy.status()["queued"] == 2)
        return httpx2.Response(200, request=request)

    await policy(make_request(), holder)  # its release hands the slot to "a", which has not run yet
    first, second = queued
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert (await second).status_code == 200
    assert [r.url.path for r in handler.requests] == ["/v1/b"]
    assert policy.status()["in_flight"] == 0


def test_policy_repr_shows_counts(env) -> None:  # type: ignore[no-untyped-def]
    """The runtime's repr shows in-flight and queued against the limits."""
    policy = Bulkhead(max_concurrent=2, max_queue=3).build(env)
    assert isinstance(policy, BulkheadPolicy)
    assert repr(policy) == "BulkheadPolicy(in_flight=0/2, queued=0/3)"


# --- end to end ------------------------------------------------------------------------------


@pytest.mark.realtime
async def test_end_to_end_bulkhead_through_the_client(fault_server) -> None:  # type: ignore[no-untyped-def]
    """Through tether.Client, a third concurrent call with 2 slots and no queue is refused unsent."""
    import tether
    from tether.mock import Fault

    fault_server.route("GET", "/slow", Fault.delay(0.1, then=Fault.ok(json={"ok": True})))
    async with tether.Client(fault_server.url, policies=[Bulkhead(max_concurrent=2, max_queue=0)]) as client:
        results = await asyncio.gather(*(client.get("/slow") for _ in range(3)), return_exceptions=True)
        status = client.pipeline.policy("bulkhead").status()
    rejected = [r for r in results if isinstance(r, errors.BulkheadFull)]
    assert len(rejected) == 1
    assert sorted(r.status_code for r in results if isinstance(r, httpx2.Response)) == [200, 200]
    assert len(fault_server.requests("GET", "/slow")) == 2
    assert status["in_flight"] == 0
