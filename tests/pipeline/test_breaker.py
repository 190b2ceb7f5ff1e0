"""The circuit breaker policy, in virtual time: opening, failing fast, probing, closing, sharing."""

from __future__ import annotations

import asyncio
from collections import deque
from datetime import UTC, datetime

import httpx2
import pytest

from tether import events as ev
from tether._config import Timeouts
from tether._context import CONTEXT_KEY, CallContext
from tether.errors import (
    APIError,
    BulkheadFull,
    CircuitOpenError,
    ConnectionError,
    NotFoundError,
    RateLimitExceeded,
    RateLimitRejected,
    TimeoutError,
    ValidationError,
)
from tether.events import EventBus, EventRecorder
from tether.pipeline._base import PolicyEnv
from tether.pipeline.breaker import Breaker, BreakerPolicy
from tether.state.memory import MemoryStore
from tether.testing import VirtualClock

# Private helpers: a request carrying a CallContext and a scripted `next` handler.


def _request(service: str = "svc") -> httpx2.Request:
    request = httpx2.Request("GET", "http://127.0.0.1:9/data/ITEM-001")
    request.extensions[CONTEXT_KEY] = CallContext(service=service, timeouts=Timeouts(), endpoint="get_data")
    return request


Outcome = int | BaseException | asyncio.Event


class Script:
    """A fake `next`: plays scripted statuses / errors (then 200s) and counts the calls it got."""

    def __init__(self, *outcomes: Outcome) -> None:
        self.outcomes: deque[Outcome] = deque(outcomes)
        self.calls = 0

    def push(self, *outcomes: Outcome) -> None:
        self.outcomes.extend(outcomes)

    async def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.calls += 1
        item = self.outcomes.popleft() if self.outcomes else 200
        if isinstance(item, asyncio.Event):  # hold the call in flight until the test sets it
            await item.wait()
            return httpx2.Response(200, request=request)
        if isinstance(item, BaseException):
            raise item
        return httpx2.Response(item, request=request)


class Rig:
    """One breaker policy on a virtual clock with an event recorder and a store."""

    def __init__(
        self, options: Breaker | None = None, *, store: MemoryStore | None = None, service: str = "svc"
    ):
        self.clock = VirtualClock()
        self.recorder = EventRecorder()
        self.store = store or MemoryStore()
        env = PolicyEnv(service=service, clock=self.clock, events=EventBus([self.recorder]), store=self.store)
        self.policy = (options or Breaker()).build(env)
        self.next = Script()
        self.service = service

    async def call(self, *outcomes: Outcome) -> httpx2.Response:
        self.next.push(*outcomes)
        return await self.policy(_request(self.service), self.next)

    async def fail(self, times: int = 1) -> None:
        for _ in range(times):
            with pytest.raises(APIError):
                await self.call(APIError("HTTP 503", status_code=503))

    def transitions(self) -> list[tuple[str, str]]:
        names = (ev.BREAKER_OPENED, ev.BREAKER_HALF_OPENED, ev.BREAKER_CLOSED, ev.BREAKER_REJECTED)
        return [(e.name, str(e.fields.get("reason", ""))) for e in self.recorder.events if e.name in names]


async def _play(rig: Rig, outcome: Outcome) -> None:
    if isinstance(outcome, BaseException):
        with pytest.raises(type(outcome)):
            await rig.call(outcome)
    else:
        await rig.call(outcome)


async def test_the_circuit_opens_on_exactly_the_fifth_consecutive_failure() -> None:
    """Four failures leave it closed; the fifth opens it; the sixth call fails fast."""
    rig = Rig()
    await rig.fail(4)
    assert rig.policy.status().state == "closed"
    await rig.fail(1)
    assert rig.policy.status().state == "open"
    with pytest.raises(CircuitOpenError):
        await rig.call()
    assert rig.next.calls == 5


async def test_an_open_circuit_fails_fast_without_calling_next_and_says_when_to_come_back() -> None:
    """While open, calls raise CircuitOpenError, next is never called, retry_after counts down."""
    rig = Rig()
    await rig.fail(5)  # opened at t=0
    rig.clock.advance(12.0)
    for _ in range(10):
        with pytest.raises(CircuitOpenError) as info:
            await rig.call()
    assert rig.next.calls == 5
    assert info.value.retry_after == pytest.approx(18.0)
    assert info.value.service == "svc"
    assert info.value.endpoint == "get_data"
    assert info.value.error_code == "CIRCUIT_001"


async def test_after_open_for_exactly_one_probe_goes_while_others_fail_fast() -> None:
    """Half-open admits one probe; concurrent callers are rejected while it is in flight."""
    rig = Rig()
    await rig.fail(5)
    rig.clock.advance(30.0)
    release = asyncio.Event()
    probe = asyncio.create_task(rig.call(release))
    await asyncio.sleep(0)
    for _ in range(3):
        with pytest.raises(CircuitOpenError):
            await rig.call()
    assert rig.next.calls == 6, "only the probe reached next"
    release.set()
    assert (await probe).status_code == 200
    assert rig.policy.status().state == "half_open"


async def test_a_successful_probe_admits_the_next_call_as_a_probe_and_two_close_it() -> None:
    """AC-007: after a probe success the next call is a probe; the second success closes the circuit."""
    rig = Rig()
    await rig.fail(5)
    rig.clock.advance(30.0)
    await rig.call(200)
    assert rig.policy.status().state == "half_open"
    await rig.call(200)
    assert rig.policy.status().state == "closed"
    assert rig.transitions()[-2:] == [
        (ev.BREAKER_HALF_OPENED, "open_for_elapsed"),
        (ev.BREAKER_CLOSED, "probes_succeeded"),
    ]


async def test_a_failed_probe_reopens_for_another_open_for() -> None:
    """A probe failure re-opens the circuit; retry_after is a full open_for again."""
    rig = Rig()
    await rig.fail(5)
    rig.clock.advance(30.0)
    await rig.fail(1)
    with pytest.raises(CircuitOpenError) as info:
        await rig.call()
    assert info.value.retry_after == pytest.approx(30.0)
    assert rig.transitions()[-2] == (ev.BREAKER_OPENED, "probe_failed")


async def test_a_stuck_probe_reopens_the_circuit_after_half_open_timeout() -> None:
    """A probe with no outcome within half_open_timeout re-opens; its late success changes nothing."""
    rig = Rig(Breaker(half_open_timeout=10.0))
    await rig.fail(5)
    rig.clock.advance(30.0)
    release = asyncio.Event()
    stuck = asyncio.create_task(rig.call(release))
    await asyncio.sleep(0)
    rig.clock.advance(10.0)
    with pytest.raises(CircuitOpenError) as info:
        await rig.call()
    assert info.value.retry_after == pytest.approx(30.0)
    assert (ev.BREAKER_OPENED, "half_open_timeout") in rig.transitions()
    release.set()
    await stuck
    assert rig.policy.status().state == "open"


async def test_failures_older_than_the_window_do_not_accumulate() -> None:
    """Four failures, a 61 s gap, then four more: never five within 60 s, so it stays closed."""
    rig = Rig()
    await rig.fail(4)
    rig.clock.advance(61.0)
    await rig.fail(4)
    assert rig.policy.status().state == "closed"
    await rig.fail(1)
    assert rig.policy.status().state == "open"


async def test_a_success_resets_the_consecutive_count() -> None:
    """Four failures, one success, four failures: not five in a row, so it stays closed."""
    rig = Rig()
    await rig.fail(4)
    await rig.call(200)
    await rig.fail(4)
    status = rig.policy.status()
    assert status.state == "closed"
    assert status.failures == 4


async def test_rate_mode_opens_at_the_threshold_only_after_min_calls() -> None:
    """failure_rate=0.5, min_calls=10: 4 failures alone do nothing; 5 of 10 opens on the 10th call."""
    rig = Rig(Breaker(mode="rate", failure_rate=0.5, min_calls=10))
    await rig.fail(4)
    assert rig.policy.status().state == "closed", "100% failures, but below min_calls"
    for _ in range(5):
        await rig.call(200)
    assert rig.policy.status().state == "closed"
    await rig.fail(1)  # 10 calls, 5 failures
    assert rig.policy.status().state == "open"
    assert rig.transitions()[-1] == (ev.BREAKER_OPENED, "failure_rate")


async def test_rate_mode_over_the_last_n_calls_forgets_older_ones() -> None:
    """With window_calls=4, min_calls=4 and rate 0.75, only the last four outcomes matter."""
    rig = Rig(Breaker(mode="rate", failure_rate=0.75, min_calls=4, window_calls=4))
    await rig.fail(2)
    for _ in range(4):
        await rig.call(200)
    await rig.fail(2)  # last four: S S F F
    assert rig.policy.status().state == "closed"
    await rig.fail(1)  # last four: S F F F
    assert rig.policy.status().state == "open"


@pytest.mark.parametrize(
    "outcome",
    [
        404,
        400,
        NotFoundError("HTTP 404", status_code=404),
        ValidationError("HTTP 422", status_code=422),
        RateLimitRejected("queue full"),
        BulkheadFull("no slot"),
    ],
    ids=[
        "404-response",
        "400-response",
        "NotFoundError",
        "ValidationError",
        "RateLimitRejected",
        "BulkheadFull",
    ],
)
async def test_ignored_outcomes_neither_count_nor_reset(outcome: Outcome) -> None:
    """4xx statuses and local rejections between failures neither open the circuit nor reset the run."""
    rig = Rig()
    for _ in range(10):
        await _play(rig, outcome)
    assert rig.policy.status().state == "closed"
    await rig.fail(4)
    await _play(rig, outcome)
    await rig.fail(1)
    assert rig.policy.status().state == "open"


@pytest.mark.parametrize(
    "error",
    [
        ConnectionError("refused"),
        TimeoutError("read timed out"),
        APIError("HTTP 500", status_code=500),
        RateLimitExceeded("HTTP 429", status_code=429),
    ],
    ids=["connection", "timeout", "5xx", "429"],
)
async def test_counted_errors_open_the_circuit(error: Exception) -> None:
    """Connection errors, timeouts, 5xx and 429 all count toward opening."""
    rig = Rig()
    for _ in range(5):
        with pytest.raises(type(error)):
            await rig.call(error)
    assert rig.policy.status().state == "open"


async def test_5xx_and_429_responses_count_too() -> None:
    """A returned 503 or 429 response (not raised) counts as a failure."""
    rig = Rig()
    for status in (503, 429, 500, 502, 504):
        await rig.call(status)
    assert rig.policy.status().state == "open"


async def test_counted_statuses_and_a_predicate_are_configurable() -> None:
    """count_statuses={418} counts 418 but not 503; a predicate overrides the data rules."""
    rig = Rig(Breaker(failures=2, count_statuses={418}))
    await rig.call(503)
    await rig.call(503)
    assert rig.policy.status().state == "closed"
    await rig.call(418)
    await rig.call(418)
    assert rig.policy.status().state == "open"

    def slow_header(outcome: BaseException | httpx2.Response) -> bool | None:
        if isinstance(outcome, httpx2.Response):
            return outcome.status_code == 299
        return None

    rig = Rig(Breaker(failures=2, is_failure=slow_header))
    await rig.call(299)
    await rig.call(299)
    assert rig.policy.status().state == "open"


async def test_a_cancelled_probe_frees_its_slot_without_counting() -> None:
    """Cancelling the probe in flight lets the next caller probe; nothing is counted."""
    rig = Rig()
    await rig.fail(5)
    rig.clock.advance(30.0)
    stuck = asyncio.create_task(rig.call(asyncio.Event()))
    await asyncio.sleep(0)
    stuck.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stuck
    assert (await rig.call(200)).status_code == 200
    assert rig.policy.status().state == "half_open"


async def test_isolate_forces_open_until_reset() -> None:
    """isolate() fails every call fast (no retry_after) however long we wait; reset() closes it."""
    rig = Rig()
    status = await rig.policy.isolate()
    assert status.state == "isolated"
    rig.clock.advance(3600.0)
    with pytest.raises(CircuitOpenError) as info:
        await rig.call()
    assert info.value.retry_after is None
    assert rig.next.calls == 0
    assert (await rig.policy.reset()).state == "closed"
    assert (await rig.call()).status_code == 200
    assert rig.transitions() == [
        (ev.BREAKER_OPENED, "isolated"),
        (ev.BREAKER_REJECTED, ""),
        (ev.BREAKER_CLOSED, "reset"),
    ]


async def test_events_follow_the_state_machine_in_order() -> None:
    """open → rejected → half_opened → opened (probe failed) → half_opened → closed, in that order."""
    rig = Rig()
    await rig.fail(5)
    with pytest.raises(CircuitOpenError):
        await rig.call()
    rig.clock.advance(30.0)
    await rig.fail(1)
    rig.clock.advance(30.0)
    await rig.call(200)
    await rig.call(200)
    assert [name for name, _ in rig.transitions()] == [
        ev.BREAKER_OPENED,
        ev.BREAKER_REJECTED,
        ev.BREAKER_HALF_OPENED,
        ev.BREAKER_OPENED,
        ev.BREAKER_HALF_OPENED,
        ev.BREAKER_CLOSED,
    ]
    opened = rig.recorder.of(ev.BREAKER_OPENED)[0]
    assert opened.fields["circuit"] == "svc:breaker"
    assert opened.fields["open_for"] == 30.0


async def test_two_clients_share_one_circuit_through_one_store() -> None:
    """With shared='upstream', failures through client A open the circuit for client B too."""
    store = MemoryStore()
    a = Rig(Breaker(shared="upstream"), store=store, service="a")
    b = Rig(Breaker(shared="upstream"), store=store, service="b")
    await a.fail(3)
    await b.fail(2)
    with pytest.raises(CircuitOpenError):
        await b.call()
    with pytest.raises(CircuitOpenError):
        await a.call()
    assert (await b.policy.fetch_status()).state == "open"
    unshared = Rig(Breaker(), store=store, service="c")
    assert (await unshared.call()).status_code == 200


async def test_status_reports_state_failures_and_times() -> None:
    """status() gives the failure run, opened_at and the next half-open time as UTC datetimes."""
    rig = Rig()
    await rig.fail(2)
    assert rig.policy.status().failures == 2
    rig.clock.advance(5.0)
    await rig.fail(3)
    status = rig.policy.status()
    opened = rig.clock.time()
    assert status.state == "open"
    assert status.opened_at == datetime.fromtimestamp(opened, UTC)
    assert status.half_open_at == datetime.fromtimestamp(opened + 30.0, UTC)
    assert status.retry_after == pytest.approx(30.0)
    rig.clock.advance(30.0)
    assert rig.policy.status().state == "half_open"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"failures": 0}, "failures must be a whole number >= 1, got 0"),
        ({"open_for": -1}, "open_for"),
        ({"mode": "sometimes"}, "mode must be 'consecutive' or 'rate'"),
        ({"failure_rate": 1.5}, "failure_rate must be in"),
        ({"count_errors": {"dns"}}, "count_errors knows"),
        ({"count_statuses": {42}}, "count_statuses must hold HTTP statuses"),
    ],
)
def test_bad_options_are_refused_with_the_rule_and_the_value(kwargs: dict[str, object], message: str) -> None:
    """Breaker options validate on construction and name the rule broken."""
    with pytest.raises(ValueError, match=message):
        Breaker(**kwargs)  # type: ignore[arg-type]


def test_options_accept_duration_strings_and_build_a_policy() -> None:
    """Breaker(open_for='45s', window='2m') normalises durations; build() gives a BreakerPolicy."""
    options = Breaker(open_for="45s", window="2m")
    config = options.config()
    assert (config.open_for, config.window) == (45.0, 120.0)
    policy = options.build(PolicyEnv(service="svc"))
    assert isinstance(policy, BreakerPolicy)
    assert policy.key == "svc:breaker"
    assert Breaker.kind == "breaker"


async def test_a_refusal_carries_the_last_connection_error_as_its_cause() -> None:
    """Opened by connection errors, the circuit's CircuitOpenError has that ConnectionError as
    __cause__ and names CONN_001 in its message."""
    rig = Rig()
    for _ in range(5):
        with pytest.raises(ConnectionError):
            await rig.call(ConnectionError("cannot connect to 127.0.0.1:9: connection refused"))
    with pytest.raises(CircuitOpenError) as info:
        await rig.call()
    cause = info.value.__cause__
    assert isinstance(cause, ConnectionError)
    assert cause.error_code == "CONN_001"
    assert "CONN_001" in str(info.value) and "connection refused" in str(info.value)
    assert rig.policy.last_failure is cause


async def test_a_refusal_after_failing_statuses_carries_the_status_error() -> None:
    """Opened by 503 responses (not exceptions), the refusal's cause is an APIError with 503."""
    rig = Rig()
    for _ in range(5):
        await rig.call(503)
    with pytest.raises(CircuitOpenError) as info:
        await rig.call()
    assert isinstance(info.value.__cause__, APIError)
    assert info.value.__cause__.status_code == 503


async def test_an_isolated_circuit_names_no_upstream_cause() -> None:
    """isolate() is a person's decision: the refusal has no upstream cause."""
    rig = Rig()
    await rig.fail(1)
    await rig.policy.isolate()
    with pytest.raises(CircuitOpenError) as info:
        await rig.call()
    assert info.value.__cause__ is None


async def test_a_client_against_a_closed_port_reports_the_connection_error_behind_the_open_circuit() -> None:
    """Through tether.Client on loopback: after the circuit opens on refused connections, the
    refusal's cause is the ConnectionError (CONN_001), not only CIRCUIT_001."""
    import socket

    from tether.client import Client
    from tether.pipeline.retry import Retry

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with Client(
        f"http://127.0.0.1:{port}", retry=Retry(attempts=1), breaker=Breaker(failures=2)
    ) as client:
        for _ in range(2):
            with pytest.raises(ConnectionError):
                await client.get("/x")
        with pytest.raises(CircuitOpenError) as info:
            await client.get("/x")
    assert isinstance(info.value.__cause__, ConnectionError)
    assert info.value.__cause__.error_code == "CONN_001"
