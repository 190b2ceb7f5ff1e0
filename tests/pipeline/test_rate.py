"""The rate limiter policy, in virtual time: GCRA precision, strategies, deadlines, learning, status."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import httpx2
import pytest

from tether import events as ev
from tether.client import Client
from tether.errors import RateLimitExceeded, RateLimitRejected
from tether.events import EventRecorder
from tether.mock import Fault, FaultServer
from tether.pipeline._base import Pipeline, PolicyEnv
from tether.pipeline._headers import RateLimitHeaderNames
from tether.pipeline.breaker import Breaker
from tether.pipeline.rate import Rate, RatePolicy, parse_limit
from tether.pipeline.retry import Retry
from tether.state._protocol import RateWindow
from tether.state.memory import MemoryStore
from tether.testing import VirtualClock

MakeRequest = Callable[..., httpx2.Request]


def most_in_any_span(times: Sequence[float], span: float) -> int:
    """The largest number of send times in any closed interval [t, t + span]."""
    ordered = sorted(times)
    best, j = 0, 0
    for i, start in enumerate(ordered):
        while j < len(ordered) and ordered[j] <= start + span + 1e-9:
            j += 1
        best = max(best, j - i)
    return best


async def call_many(policy: RatePolicy, next: object, make_request: MakeRequest, n: int) -> list[object]:
    return await asyncio.gather(*(policy(make_request(), next) for _ in range(n)), return_exceptions=True)  # type: ignore[arg-type]


# --- parsing and options ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "limit", "period"),
    [
        ("75/minute", 75, 60.0),
        ("75/min", 75, 60.0),
        ("75/m", 75, 60.0),
        ("10/second", 10, 1.0),
        ("10/s", 10, 1.0),
        ("1000/hour", 1000, 3600.0),
        ("5/day", 5, 86400.0),
        ("100000/month", 100000, 2_592_000.0),
        ("100/10s", 100, 10.0),
        ("60 per minute", 60, 60.0),
        ("3/Minutes", 3, 60.0),
    ],
)
def test_limits_parse_from_strings(text: str, limit: int, period: float) -> None:
    """'75/minute', '75/min', '75/m', '5/day', '100000/month', '100/10s' … become (limit, period)."""
    window = parse_limit(text)
    assert (window.limit, window.period, window.burst) == (limit, period, 1)


@pytest.mark.parametrize("bad", ["75", "minute/75", "0/minute", "75/fortnight", "-3/second"])
def test_bad_limits_are_refused_with_the_value(bad: str) -> None:
    """Unparseable or zero limits raise ValueError naming what was wrong."""
    with pytest.raises(ValueError, match="rate"):
        Rate(bad)


def test_several_windows_and_bursts_can_be_given_at_once() -> None:
    """Strings share the burst keyword; tuples and a list of (limit, period, burst) carry their own."""
    assert Rate("10/second", "600/minute", burst=5).windows == (
        RateWindow(10, 1.0, 5),
        RateWindow(600, 60.0, 5),
    )
    assert Rate([(10, 1, 5), (600, "1m", 10)]).windows == (RateWindow(10, 1.0, 5), RateWindow(600, 60.0, 10))
    with pytest.raises(ValueError, match="same window twice"):
        Rate("10/second", "10/s")
    with pytest.raises(ValueError, match="strategy"):
        Rate("10/second", strategy="drop")  # type: ignore[arg-type]


def test_tiers_are_named_presets() -> None:
    """free = 5/min queued (max 20), premium = 75/min + 10 burst, enterprise = 1000/min."""
    free, premium, enterprise = Rate.tier("free"), Rate.tier("premium"), Rate.tier("ENTERPRISE")
    assert free.windows == (RateWindow(5, 60.0, 1),)
    assert (free.strategy, free.max_queue, free.tier_name) == ("queue", 20, "free")
    assert premium.windows == (RateWindow(75, 60.0, 10),)
    assert premium.tier_name == "premium"
    assert enterprise.windows == (RateWindow(1000, 60.0, 1),)
    assert Rate.tier("premium", strategy="wait").strategy == "wait"
    with pytest.raises(ValueError, match="known tiers: free, premium, enterprise"):
        Rate.tier("platinum")


# --- GCRA precision ----------------------------------------------------------------------------


async def test_premium_sends_ten_at_once_then_one_every_0_8_seconds(
    env: PolicyEnv, script: Callable[..., object], make_request: MakeRequest
) -> None:
    """75/min + 10 burst: the first ten go at t=0, the next at 0.8, 1.6, 2.4 s."""
    policy = Rate("75/minute", burst=10).build(env)
    upstream = script(200)
    await call_many(policy, upstream, make_request, 13)
    times = upstream.times  # type: ignore[attr-defined]
    assert times[:10] == [0.0] * 10
    assert times[10:] == pytest.approx([0.8, 1.6, 2.4])


async def test_ten_thousand_calls_never_exceed_85_in_any_minute_and_keep_the_rate(
    env: PolicyEnv, script: Callable[..., object], make_request: MakeRequest
) -> None:
    """10,000 calls at once through 75/min + 10 burst ('wait'): ≤ 85 in any 60 s, ≥ 99 % of 75/min."""
    policy = Rate("75/minute", burst=10, strategy="wait").build(env)
    upstream = script(200)
    results = await call_many(policy, upstream, make_request, 10_000)
    assert all(isinstance(r, httpx2.Response) for r in results)
    times: list[float] = upstream.times  # type: ignore[attr-defined]
    assert len(times) == 10_000
    assert most_in_any_span(times, 60.0) <= 85
    per_minute = (len(times) - 1) / (max(times) - min(times)) * 60.0
    assert per_minute >= 0.99 * 75


async def test_every_window_holds_when_several_apply(
    env: PolicyEnv, script: Callable[..., object], make_request: MakeRequest
) -> None:
    """10/s and 100/min together: no second above 10 (+1 at the closed edge), no minute above 100 (+1)."""
    policy = Rate("10/second", "100/minute", strategy="wait").build(env)
    upstream = script(200)
    await call_many(policy, upstream, make_request, 250)
    times = upstream.times  # type: ignore[attr-defined]
    assert most_in_any_span(times, 1.0) <= 11
    assert most_in_any_span(times, 60.0) <= 101
    assert max(times) == pytest.approx(249 * 0.6)


async def test_two_policies_sharing_a_limiter_split_one_budget(
    clock: VirtualClock,
    recorder: EventRecorder,
    store: MemoryStore,
    script: Callable[..., object],
    make_request: MakeRequest,
) -> None:
    """With shared='acct', two clients' sends together keep to one 60/min limit."""
    a = Rate("60/minute", shared="acct", strategy="wait").build(PolicyEnv("a", clock=clock, store=store))
    b = Rate("60/minute", shared="acct", strategy="wait").build(PolicyEnv("b", clock=clock, store=store))
    upstream = script(200)
    await asyncio.gather(*(p(make_request(), upstream) for _ in range(30) for p in (a, b)))  # type: ignore[arg-type]
    assert most_in_any_span(upstream.times, 60.0) <= 61  # type: ignore[attr-defined]
    assert a.key == b.key == "rate:acct"


# --- strategies ------------------------------------------------------------------------------


async def test_queue_strategy_rejects_the_twenty_first_waiter_without_sending(
    env: PolicyEnv, script: Callable[..., object], make_request: MakeRequest, recorder: EventRecorder
) -> None:
    """60/min, max_queue=20: one goes now, twenty wait, the next is refused at once (retry_after 21 s)."""
    policy = Rate("60/minute", strategy="queue").build(env)
    upstream = script(200)
    results = await call_many(policy, upstream, make_request, 22)
    rejected = [r for r in results if isinstance(r, RateLimitRejected)]
    assert len(rejected) == 1
    assert results[21] is rejected[0]
    assert rejected[0].retry_after == pytest.approx(21.0)
    assert upstream.calls == 21  # type: ignore[attr-defined]
    assert recorder.of(ev.LIMITER_REJECTED)[0].fields["reason"] == "queue_full"
    assert len(recorder.of(ev.LIMITER_QUEUED)) == 20


async def test_reject_strategy_refuses_as_soon_as_no_slot_is_free(
    env: PolicyEnv, script: Callable[..., object], make_request: MakeRequest, clock: VirtualClock
) -> None:
    """Burst 2 at 60/min with 'reject': two go, the third raises RateLimitRejected(retry_after=1)."""
    policy = Rate("60/minute", burst=2, strategy="reject").build(env)
    upstream = script(200)
    await policy(make_request(), upstream)  # type: ignore[arg-type]
    await policy(make_request(), upstream)  # type: ignore[arg-type]
    with pytest.raises(RateLimitRejected) as info:
        await policy(make_request(), upstream)  # type: ignore[arg-type]
    assert info.value.retry_after == pytest.approx(1.0)
    assert info.value.error_code == "RATE_001"
    assert upstream.calls == 2  # type: ignore[attr-defined]
    assert clock.monotonic() == 0.0


@pytest.mark.parametrize("strategy", ["queue", "wait"])
async def test_a_wait_longer_than_the_deadline_fails_at_once(
    strategy: str,
    env: PolicyEnv,
    script: Callable[..., object],
    make_request: MakeRequest,
    clock: VirtualClock,
) -> None:
    """With 5 s left and the next slot 12 s away, the call fails now; with 30 s left it waits 12 s."""
    policy = Rate("5/minute", strategy=strategy).build(env)  # type: ignore[arg-type]
    upstream = script(200)
    await policy(make_request(), upstream)  # type: ignore[arg-type]
    with pytest.raises(RateLimitRejected, match="deadline") as info:
        await policy(make_request(deadline=clock.monotonic() + 5.0), upstream)  # type: ignore[arg-type]
    assert info.value.retry_after == pytest.approx(12.0)
    assert clock.monotonic() == 0.0
    await policy(make_request(deadline=clock.monotonic() + 30.0), upstream)  # type: ignore[arg-type]
    assert upstream.times == [0.0, pytest.approx(12.0)]  # type: ignore[attr-defined]


# --- learning from responses -----------------------------------------------------------------


async def test_a_429_with_retry_after_pauses_every_caller_until_then(
    env: PolicyEnv,
    script: Callable[..., object],
    reply: type,
    make_request: MakeRequest,
    recorder: EventRecorder,
) -> None:
    """A 429 with Retry-After: 7 holds every following caller until t=7."""
    policy = Rate("100/second", burst=10).build(env)
    upstream = script(reply(429, headers={"Retry-After": "7"}), 200)
    with pytest.raises(RateLimitExceeded):
        await policy(make_request(), upstream)  # type: ignore[arg-type]
    await call_many(policy, upstream, make_request, 5)
    assert upstream.times[1:] == [pytest.approx(7.0)] * 5  # type: ignore[attr-defined]
    paused = recorder.of(ev.LIMITER_PAUSED)[0]
    assert paused.fields["reason"] == "429"
    assert paused.fields["seconds"] == 7.0


async def test_callers_already_queued_do_not_send_before_a_later_pause_ends(
    env: PolicyEnv, script: Callable[..., object], reply: type, make_request: MakeRequest
) -> None:
    """Callers holding slots at 1 s and 2 s wait out a pause (429 at 0.5 s, Retry-After 10)."""
    policy = Rate("60/minute", strategy="wait").build(env)
    upstream = script(reply(429, headers={"Retry-After": "10"}, delay=0.5), 200)
    results = await call_many(policy, upstream, make_request, 3)
    assert isinstance(results[0], RateLimitExceeded)
    assert all(t >= 10.5 for t in upstream.times[1:])  # type: ignore[attr-defined]


async def test_remaining_zero_with_a_delta_reset_pauses(
    env: PolicyEnv,
    script: Callable[..., object],
    reply: type,
    make_request: MakeRequest,
    recorder: EventRecorder,
) -> None:
    """X-RateLimit-Remaining: 0 and X-RateLimit-Reset: 5 on a 200 pause the limiter 5 s."""
    policy = Rate("100/second", burst=10).build(env)
    headers = {"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "5"}
    upstream = script(reply(200, headers=headers), 200)
    await policy(make_request(), upstream)  # type: ignore[arg-type]
    await policy(make_request(), upstream)  # type: ignore[arg-type]
    assert upstream.times == [0.0, pytest.approx(5.0)]  # type: ignore[attr-defined]
    learned = recorder.of(ev.LIMITER_LEARNED)[0]
    assert (learned.fields["limit"], learned.fields["remaining"]) == (60, 0)
    assert recorder.of(ev.LIMITER_PAUSED)[0].fields["reason"] == "remaining_exhausted"


async def test_an_epoch_reset_and_custom_header_names_are_understood(
    env: PolicyEnv, script: Callable[..., object], reply: type, make_request: MakeRequest, clock: VirtualClock
) -> None:
    """Provider headers X-Quota-Left / X-Quota-Reset (epoch) pause until that epoch."""
    names = RateLimitHeaderNames("X-Quota-Limit", "X-Quota-Left", "X-Quota-Reset", reset_kind="epoch")
    policy = Rate("100/second", burst=10, headers=names).build(env)
    headers = {"X-Quota-Left": "0", "X-Quota-Reset": str(int(clock.time()) + 9)}
    upstream = script(reply(200, headers=headers), 200)
    await policy(make_request(), upstream)  # type: ignore[arg-type]
    await policy(make_request(), upstream)  # type: ignore[arg-type]
    assert upstream.times == [0.0, pytest.approx(9.0)]  # type: ignore[attr-defined]


async def test_ietf_ratelimit_headers_pause_and_are_learned(
    env: PolicyEnv,
    script: Callable[..., object],
    reply: type,
    make_request: MakeRequest,
    recorder: EventRecorder,
) -> None:
    """RateLimit: "default";r=0;t=4 with RateLimit-Policy q=100;w=60 pauses 4 s and reports the quota."""
    policy = Rate("100/second", burst=10).build(env)
    headers = {"RateLimit": '"default";r=0;t=4', "RateLimit-Policy": '"default";q=100;w=60'}
    upstream = script(reply(200, headers=headers), 200)
    await policy(make_request(), upstream)  # type: ignore[arg-type]
    await policy(make_request(), upstream)  # type: ignore[arg-type]
    assert upstream.times == [0.0, pytest.approx(4.0)]  # type: ignore[attr-defined]
    learned = recorder.of(ev.LIMITER_LEARNED)[0].fields
    assert (learned["limit"], learned["window"], learned["source"]) == (100, 60.0, "RateLimit")
    server = policy.status().server
    assert server is not None
    assert server.remaining == 0


async def test_remaining_headers_without_exhaustion_do_not_pause(
    env: PolicyEnv, script: Callable[..., object], reply: type, make_request: MakeRequest
) -> None:
    """Remaining: 3 (or Remaining: 0 with no reset) is learned but holds nobody back."""
    policy = Rate("100/second", burst=10).build(env)
    upstream = script(
        reply(200, headers={"X-RateLimit-Remaining": "3", "X-RateLimit-Reset": "30"}),
        reply(200, headers={"X-RateLimit-Remaining": "0"}),
        200,
    )
    for _ in range(3):
        await policy(make_request(), upstream)  # type: ignore[arg-type]
    assert upstream.times == [0.0, 0.0, 0.0]  # type: ignore[attr-defined]


async def test_a_bare_429_pauses_for_the_default(
    env: PolicyEnv, script: Callable[..., object], make_request: MakeRequest
) -> None:
    """A 429 with no wait headers pauses for pause_on_429 (here 2 s)."""
    policy = Rate("100/second", burst=10, pause_on_429="2s").build(env)
    upstream = script(429, 200)
    with pytest.raises(RateLimitExceeded):
        await policy(make_request(), upstream)  # type: ignore[arg-type]
    await policy(make_request(), upstream)  # type: ignore[arg-type]
    assert upstream.times == [0.0, pytest.approx(2.0)]  # type: ignore[attr-defined]


async def test_learning_can_be_switched_off(
    env: PolicyEnv, script: Callable[..., object], reply: type, make_request: MakeRequest
) -> None:
    """With learn=False a 429 with Retry-After does not pause the limiter."""
    policy = Rate("100/second", burst=10, learn=False).build(env)
    upstream = script(reply(429, headers={"Retry-After": "30"}), 200)
    with pytest.raises(RateLimitExceeded):
        await policy(make_request(), upstream)  # type: ignore[arg-type]
    await policy(make_request(), upstream)  # type: ignore[arg-type]
    assert upstream.times == [0.0, 0.0]  # type: ignore[attr-defined]


# --- every attempt spends a slot; status -----------------------------------------------------


async def test_every_retry_attempt_spends_a_slot(
    env: PolicyEnv, script: Callable[..., object], make_request: MakeRequest
) -> None:
    """Through retry → breaker → rate, a call that needs three attempts spends three slots."""
    upstream = script(503, 503, 200)
    pipeline = Pipeline.build(
        [Retry(attempts=3, initial=1.0, jitter=False, budget=None), Breaker(), Rate("1/hour", burst=10)],
        env,
        upstream,  # type: ignore[arg-type]
    )
    response = await pipeline(make_request())
    assert response.status_code == 200
    assert upstream.calls == 3  # type: ignore[attr-defined]
    status = await pipeline.policy("rate").fetch_status()
    assert (status.remaining, status.requests_made) == (7, 3)


async def test_status_reports_the_req001_fields(
    env: PolicyEnv, script: Callable[..., object], make_request: MakeRequest, clock: VirtualClock
) -> None:
    """Premium status: 10 remaining fresh; after ten sends 0 remaining, reset in 8 s, queue counted."""
    policy = Rate.tier("premium").build(env)
    fresh = policy.status()
    assert (fresh.tier, fresh.limit, fresh.remaining, fresh.queued) == ("premium", 75, 10, 0)
    assert fresh.window_size_seconds == 60
    upstream = script(200)
    await call_many(policy, upstream, make_request, 10)
    after = policy.status()
    assert (after.remaining, after.requests_made, after.requests_remaining) == (0, 10, 0)
    assert after.reset_at == datetime.fromtimestamp(clock.time() + 8.0, UTC)
    assert after.reset_time == after.reset_at
    waiters = [asyncio.create_task(policy(make_request(), upstream)) for _ in range(3)]  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert policy.status().queued == 3
    assert (await policy.fetch_status()).queued == 3
    await asyncio.gather(*waiters)
    assert policy.status().queued == 0


async def test_status_shows_a_pause(
    env: PolicyEnv, script: Callable[..., object], reply: type, make_request: MakeRequest, clock: VirtualClock
) -> None:
    """After a 429 with Retry-After: 20, status() shows paused_until and 0 remaining."""
    policy = Rate("100/second", burst=10).build(env)
    upstream = script(reply(429, headers={"Retry-After": "20"}))
    with pytest.raises(RateLimitExceeded):
        await policy(make_request(), upstream)  # type: ignore[arg-type]
    status = await policy.fetch_status()
    assert status.paused_until == datetime.fromtimestamp(clock.time() + 20.0, UTC)
    assert status.remaining == 0


def test_rate_options_build_a_rate_policy_keyed_by_service() -> None:
    """Rate is a 'rate' policy option; without a store its policy keeps a private memory store."""
    policy = Rate("10/second").build(PolicyEnv(service="fred"))
    assert isinstance(policy, RatePolicy)
    assert policy.key == "fred:rate"
    assert Rate.kind == "rate"


# --- end to end, real time -------------------------------------------------------------------


@pytest.mark.realtime
async def test_a_600_per_minute_limit_holds_on_the_wire(fault_server: FaultServer) -> None:
    """60 calls at once through 600/min + burst 10 reach the server with no 1 s window above 10 + 10."""
    fault_server.route("GET", "/limited", Fault.ok(json={"ok": True}))
    rate = Rate("600/minute", burst=10, strategy="wait")
    async with Client(fault_server.url, policies=[rate], service="e2e") as client:
        responses = await asyncio.gather(*(client.get("/limited") for _ in range(60)))
    assert all(r.status_code == 200 for r in responses)
    arrivals = sorted(r.monotonic for r in fault_server.requests("GET", "/limited"))
    assert len(arrivals) == 60
    busiest = max(sum(1 for t in arrivals if start <= t < start + 1.0) for start in arrivals)
    assert busiest <= 10 + 10
