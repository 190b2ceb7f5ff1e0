"""The retry policy, in virtual time: what is retried, when, how long it waits, and what stops it."""

from __future__ import annotations

import asyncio
import random

import httpx2
import pytest

from tether import errors
from tether._config import Timeouts
from tether._context import context_of
from tether.events import (
    RETRY_BUDGET_EXHAUSTED,
    RETRY_GAVE_UP,
    RETRY_REFUSED_WAIT,
    RETRY_SCHEDULED,
)
from tether.pipeline._headers import format_http_date
from tether.pipeline.retry import (
    AttemptOutcome,
    Retry,
    RetryBudget,
    RetryPolicy,
    retry_if,
    retry_on,
    retry_on_status,
)

NO_JITTER = Retry(jitter=False, budget=None)


def policy(env, options: Retry = NO_JITTER, seed: int = 0) -> RetryPolicy:  # type: ignore[no-untyped-def]
    return options.build(env, rng=random.Random(seed))


# --- options ---------------------------------------------------------------------------------


def test_defaults_are_the_documented_ones() -> None:
    """Retry() carries DESIGN 4's defaults, also as DEFAULT_* class constants."""
    r = Retry()
    assert (r.attempts, r.initial, r.multiplier, r.max_delay, r.backoff, r.jitter) == (
        5,
        1.0,
        2.0,
        60.0,
        "exponential",
        True,
    )
    assert r.retry_on == Retry.DEFAULT_RETRY_ON == frozenset({429, 500, 502, 503, 504})
    assert r.never_retry_on == frozenset({400, 401, 403, 404, 422})
    assert r.max_retry_after == r.max_delay == 60.0
    assert (r.respect_retry_after, r.retry_non_idempotent, r.auto_idempotency_key) == (True, False, False)
    assert r.budget == RetryBudget(ratio=0.1, window=10.0, min_per_second=10.0)
    assert Retry.kind == "retry"


def test_options_normalise_loose_inputs() -> None:
    """Durations take strings; status and kind lists become frozensets; max_retry_after follows max_delay."""
    r = Retry(initial="500ms", max_delay="30s", retry_on=[503], retry_on_errors=["network_error"])
    assert (r.initial, r.max_delay, r.max_retry_after) == (0.5, 30.0, 30.0)
    assert r.retry_on == frozenset({503})
    assert r.retry_on_errors == frozenset({"network_error"})
    assert Retry(max_retry_after="2m").max_retry_after == 120.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"attempts": 0}, "Retry.attempts must be at least 1, got 0"),
        ({"attempts": 2.5}, "Retry.attempts must be an integer, got 2.5"),
        ({"multiplier": 0.5}, "Retry.multiplier must be a finite number of at least 1, got 0.5"),
        (
            {"initial": 10, "max_delay": 5},
            r"Retry.max_delay \(5s\) must not be less than Retry.initial \(10s\)",
        ),
        ({"backoff": "random"}, "Retry.backoff must be one of exponential, linear, fixed, got 'random'"),
        ({"retry_on": [404]}, r"must not share a status, got \[404\] in both"),
        ({"retry_on": [99]}, r"Retry.retry_on takes HTTP status codes \(100-599\), got 99"),
        ({"retry_on_errors": ["dns"]}, "got unknown dns"),
        ({"initial": -1}, "Retry.initial must be zero or positive"),
        (
            {"reset_header_kind": "weeks"},
            "Retry.reset_header_kind must be one of delta, epoch, auto, got 'weeks'",
        ),
        ({"idempotency_header": ""}, "Retry.idempotency_header must be a header name, got ''"),
        ({"when": "503"}, "Retry.when must be a RetryPredicate"),
    ],
)
def test_invalid_options_state_the_rule_and_the_value(kwargs, message) -> None:  # type: ignore[no-untyped-def]
    """Each bad option raises ValueError naming the option, the rule and the bad value."""
    with pytest.raises(ValueError, match=message):
        Retry(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ratio": -0.1}, "RetryBudget.ratio must be zero or positive, got -0.1"),
        ({"window": 0.5}, "RetryBudget.window must be at least 1 second"),
        ({"min_per_second": float("inf")}, "RetryBudget.min_per_second must be zero or positive, got inf"),
    ],
)
def test_invalid_budget_states_the_rule(kwargs, message) -> None:  # type: ignore[no-untyped-def]
    """Budget options are validated with the rule and the bad value."""
    with pytest.raises(ValueError, match=message):
        RetryBudget(**kwargs)


# --- the retry matrix ------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
async def test_retried_statuses_are_retried(env, script, make_request, status) -> None:  # type: ignore[no-untyped-def]
    """Each status in the default retry_on is retried, and the later success is returned."""
    handler = script(status, 200)
    response = await policy(env)(make_request(), handler)
    assert response.status_code == 200
    assert handler.calls == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422, 409, 501])
async def test_other_statuses_are_sent_once(env, script, make_request, status) -> None:  # type: ignore[no-untyped-def]
    """The never-retried statuses (and any not in retry_on) fail after one attempt with the typed error."""
    handler = script(status, 200)
    with pytest.raises(errors.TetherError) as info:
        await policy(env)(make_request(), handler)
    assert info.value.status_code == status
    assert handler.calls == 1


@pytest.mark.parametrize(
    "error",
    [
        errors.ConnectionError("connection reset"),
        errors.TimeoutError("connect", phase="connect"),
        errors.TimeoutError("read", phase="read"),
        errors.TimeoutError("write", phase="write"),
        errors.TimeoutError("pool", phase="pool"),
        errors.TimeoutError("attempt", phase="attempt"),
        errors.ResponseError("truncated", reason="truncated"),
        errors.ResponseError("bad framing", reason="protocol"),
    ],
    ids=lambda e: f"{type(e).__name__}-{getattr(e, 'phase', getattr(e, 'reason', ''))}",
)
async def test_retried_errors_are_retried(env, script, make_request, error) -> None:  # type: ignore[no-untyped-def]
    """Connection errors, timeouts of every phase but total, and body-read errors are retried."""
    handler = script(error, 200)
    response = await policy(env)(make_request(), handler)
    assert response.status_code == 200
    assert handler.calls == 2


@pytest.mark.parametrize(
    "error",
    [
        errors.CircuitOpenError("open", retry_after=30),
        errors.RateLimitRejected("local limiter"),
        errors.BulkheadFull("full"),
        errors.BudgetExceeded("spent"),
        errors.RequestValidationError("bad param"),
        errors.ValidationError("response schema"),
        errors.NotFoundError("gone"),
        errors.AuthenticationError("token endpoint refused"),
        errors.TimeoutError("deadline", phase="total"),
        errors.ResponseError("too big", reason="too_large"),
        errors.ResponseError("redirect loop", reason="too_many_redirects"),
        errors.ResponseError("https to http", reason="insecure_redirect"),
        errors.ResponseError("bomb", reason="decoding"),
        errors.ResponseError("cursor repeats", reason="pagination_loop"),
        errors.SpecError("bad spec"),
    ],
    ids=lambda e: f"{type(e).__name__}-{getattr(e, 'reason', '')}",
)
async def test_never_retried_errors_are_sent_once(env, script, make_request, error) -> None:  # type: ignore[no-untyped-def]
    """Rejections, validation, not-found, auth, the spent deadline and response errors that would
    repeat (oversize, bad encoding, redirect and pagination loops) are not retried."""
    handler = script(error, 200)
    with pytest.raises(type(error)):
        await policy(env)(make_request(), handler)
    assert handler.calls == 1


async def test_open_breaker_mid_retry_stops_at_once(env, script, make_request) -> None:
    """When the breaker opens between attempts, its CircuitOpenError ends the call, unretried."""
    handler = script(503, errors.CircuitOpenError("open"), 200)
    with pytest.raises(errors.CircuitOpenError):
        await policy(env)(make_request(), handler)
    assert handler.calls == 2


async def test_returned_error_responses_are_retried_and_the_last_returned(env, script, make_request) -> None:
    """A returned (not raised) 503 is retried; after the last attempt that response comes back."""

    async def returns_503(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(503, request=request)

    handler = script(returns_503)
    response = await policy(env, Retry(attempts=3, jitter=False, budget=None))(make_request(), handler)
    assert response.status_code == 503
    assert handler.calls == 3


async def test_attempts_exhausted_raises_the_last_error(env, script, make_request, recorder) -> None:
    """After `attempts` failures the last typed error is raised and retry.gave_up says why."""
    handler = script(500, 502, 503, 504, 500)
    with pytest.raises(errors.APIError) as info:
        await policy(env)(make_request(), handler)
    assert info.value.status_code == 500
    assert handler.calls == 5
    [gave_up] = recorder.of(RETRY_GAVE_UP)
    assert (gave_up.fields["attempts"], gave_up.fields["reason"]) == (5, "attempts_exhausted")


async def test_context_counts_attempts(env, script, make_request) -> None:
    """ctx.attempt is 1, 2, 3 on successive attempts and ctx.meta['attempts'] the total made."""
    handler = script(503, 503, 200)
    request = make_request()
    await policy(env)(request, handler)
    assert handler.attempts == [1, 2, 3]
    assert context_of(request).meta["attempts"] == 3


async def test_retry_scheduled_events(env, script, make_request, recorder) -> None:
    """Each retry emits retry.scheduled with the coming attempt, its delay and the reason."""
    await policy(env)(make_request(), script(503, errors.ConnectionError("reset"), 200))
    fields = [dict(e.fields) for e in recorder.of(RETRY_SCHEDULED)]
    assert [(f["attempt"], f["delay"], f["reason"], f["source"]) for f in fields] == [
        (2, 1.0, "APIError (status 503)", "backoff"),
        (3, 2.0, "ConnectionError", "backoff"),
    ]


# --- schedules -------------------------------------------------------------------------------


async def test_exponential_schedule_without_jitter(env, script, make_request, clock) -> None:
    """Exponential backoff waits exactly 1, 2, 4, 8 s between the five attempts."""
    handler = script(503)
    with pytest.raises(errors.APIError):
        await policy(env)(make_request(), handler)
    assert handler.times == [0.0, 1.0, 3.0, 7.0, 15.0]


async def test_backoff_is_capped_by_max_delay(env, script, make_request) -> None:
    """No computed wait exceeds max_delay."""
    handler = script(503)
    with pytest.raises(errors.APIError):
        await policy(env, Retry(attempts=6, max_delay=5, jitter=False, budget=None))(make_request(), handler)
    gaps = [b - a for a, b in zip(handler.times, handler.times[1:], strict=False)]
    assert gaps == [1.0, 2.0, 4.0, 5.0, 5.0]


@pytest.mark.parametrize(
    ("backoff", "expected"),
    [
        ("exponential", [1.0, 2.0, 4.0, 8.0]),
        ("linear", [1.0, 2.0, 3.0, 4.0]),
        ("fixed", [1.0, 1.0, 1.0, 1.0]),
    ],
)
async def test_schedules(env, script, make_request, backoff, expected) -> None:  # type: ignore[no-untyped-def]
    """Exponential, linear and fixed backoff give their documented gaps."""
    handler = script(503)
    with pytest.raises(errors.APIError):
        await policy(env, Retry(backoff=backoff, jitter=False, budget=None))(make_request(), handler)
    assert [b - a for a, b in zip(handler.times, handler.times[1:], strict=False)] == expected


def test_delay_formula_with_multiplier_and_cap(env) -> None:  # type: ignore[no-untyped-def]
    """delay(n) = min(max_delay, initial × multiplier^(n−1)), also for huge n."""
    p = policy(env, Retry(initial=0.5, multiplier=3, max_delay=10, jitter=False))
    assert [p.delay(n) for n in (1, 2, 3, 4, 5000)] == [0.5, 1.5, 4.5, 10.0, 10.0]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
async def test_full_jitter_stays_within_zero_and_the_computed_delay(env, script, make_request, seed) -> None:  # type: ignore[no-untyped-def]
    """With jitter each wait is uniform(0, delay(n)), drawn from the injected RNG."""
    handler = script(503)
    p = policy(env, Retry(budget=None), seed=seed)
    with pytest.raises(errors.APIError):
        await p(make_request(), handler)
    gaps = [b - a for a, b in zip(handler.times, handler.times[1:], strict=False)]
    same = random.Random(seed)
    expected = [same.uniform(0.0, d) for d in (1.0, 2.0, 4.0, 8.0)]
    assert gaps == pytest.approx(expected)
    assert all(0.0 <= g <= d for g, d in zip(gaps, (1.0, 2.0, 4.0, 8.0), strict=True))
    assert gaps != [1.0, 2.0, 4.0, 8.0]


# --- waits the server asks for ---------------------------------------------------------------


async def test_retry_after_seconds_waits_exactly_that(env, script, make_request, reply, clock) -> None:
    """A 429 with Retry-After: 3 waits exactly 3 s of virtual time, not the (jittered) backoff."""
    handler = script(reply(429, headers={"Retry-After": "3"}), 200)
    response = await policy(env, Retry(budget=None))(make_request(), handler)
    assert response.status_code == 200
    assert handler.times == [0.0, 3.0]


async def test_retry_after_http_date(env, script, make_request, reply, clock, recorder) -> None:
    """Retry-After as an HTTP-date waits until that time on the clock's wall time."""
    handler = script(reply(503, headers={"Retry-After": format_http_date(clock.time() + 7)}), 200)
    await policy(env)(make_request(), handler)
    assert handler.times == [0.0, 7.0]
    assert recorder.of(RETRY_SCHEDULED)[0].fields["source"] == "Retry-After"


async def test_x_ratelimit_reset_epoch(env, script, make_request, reply, clock) -> None:
    """A 429 with X-RateLimit-Reset as an epoch timestamp waits until then."""
    headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(clock.time()) + 12)}
    handler = script(reply(429, headers=headers), 200)
    await policy(env)(make_request(), handler)
    assert handler.times == [0.0, 12.0]


async def test_x_ratelimit_reset_delta(env, script, make_request, reply) -> None:
    """A 429 with X-RateLimit-Reset as a delta (configured) waits that many seconds."""
    handler = script(reply(429, headers={"X-RateLimit-Reset": "5"}), 200)
    await policy(env, Retry(jitter=False, budget=None, reset_header_kind="delta"))(make_request(), handler)
    assert handler.times == [0.0, 5.0]


async def test_custom_reset_header_name(env, script, make_request, reply) -> None:
    """A provider-specific reset header, named in the options, is honoured."""
    handler = script(reply(429, headers={"X-Quota-Reset": "6"}), 200)
    options = Retry(budget=None, reset_header="X-Quota-Reset", remaining_header="X-Quota-Left")
    await policy(env, options)(make_request(), handler)
    assert handler.times == [0.0, 6.0]


async def test_ietf_ratelimit_reset_on_429(env, script, make_request, reply) -> None:
    """The IETF RateLimit field's t= is the wait on a 429."""
    headers = {"RateLimit-Policy": '"default";q=10;w=60', "RateLimit": '"default";r=0;t=9'}
    handler = script(reply(429, headers=headers), 200)
    await policy(env)(make_request(), handler)
    assert handler.times == [0.0, 9.0]


async def test_reset_header_on_ordinary_503_does_not_replace_backoff(
    env, script, make_request, reply
) -> None:
    """A reset header on a 503 with quota left is not a request to wait: backoff applies."""
    headers = {"X-RateLimit-Remaining": "40", "X-RateLimit-Reset": "30"}
    handler = script(reply(503, headers=headers), 200)
    await policy(env)(make_request(), handler)
    assert handler.times == [0.0, 1.0]


async def test_asked_wait_above_max_retry_after_fails_at_once(
    env, script, make_request, reply, clock, recorder
) -> None:
    """A server asking for more than max_retry_after gets RateLimitExceeded(retry_after) with no sleep."""
    handler = script(reply(429, headers={"Retry-After": "120"}), 200)
    with pytest.raises(errors.RateLimitExceeded) as info:
        await policy(env)(make_request(), handler)
    assert info.value.retry_after == 120.0
    assert info.value.status_code == 429
    assert handler.calls == 1
    assert clock.monotonic() == 0.0
    [refused] = recorder.of(RETRY_REFUSED_WAIT)
    assert (refused.fields["limit"], refused.fields["retry_after"]) == ("max_retry_after", 120.0)


async def test_asked_wait_beyond_the_deadline_fails_at_once(env, script, make_request, reply, clock) -> None:
    """A server asking for more time than the call has left fails now with RateLimitExceeded."""
    handler = script(reply(503, headers={"Retry-After": "10"}), 200)
    with pytest.raises(errors.RateLimitExceeded) as info:
        await policy(env)(make_request(deadline=5.0), handler)
    assert info.value.retry_after == 10.0
    assert isinstance(info.value.__cause__, errors.APIError)
    assert handler.calls == 1
    assert clock.monotonic() == 0.0


async def test_respect_retry_after_off_uses_backoff(env, script, make_request, reply) -> None:
    """With respect_retry_after=False the server's wait is ignored in favour of backoff."""
    handler = script(reply(429, headers={"Retry-After": "120"}), 200)
    await policy(env, Retry(jitter=False, budget=None, respect_retry_after=False))(make_request(), handler)
    assert handler.times == [0.0, 1.0]


async def test_given_up_error_carries_the_asked_wait(env, script, make_request, reply) -> None:
    """When attempts run out on a 429, the raised error carries the server's retry_after."""
    handler = script(reply(429, headers={"Retry-After": "2"}))
    with pytest.raises(errors.RateLimitExceeded) as info:
        await policy(env, Retry(attempts=2, budget=None))(make_request(), handler)
    assert info.value.retry_after == 2.0


# --- idempotency -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_non_idempotent_without_key_is_sent_once(env, script, make_request, recorder, method) -> None:  # type: ignore[no-untyped-def]
    """POST and PATCH without an idempotency key are not retried."""
    handler = script(503, 200)
    with pytest.raises(errors.APIError):
        await policy(env)(make_request(method, json={"a": 1}), handler)
    assert handler.calls == 1
    assert recorder.of(RETRY_GAVE_UP)[0].fields["reason"] == "not_idempotent"


async def test_post_with_key_is_retried_with_the_same_key(env, script, make_request) -> None:
    """A POST with ctx.idempotency_key is retried; every attempt sends the same Idempotency-Key."""
    handler = script(503, 503, 201)
    response = await policy(env)(make_request("POST", json={"a": 1}, idempotency_key="k-123"), handler)
    assert response.status_code == 201
    assert [r.headers["Idempotency-Key"] for r in handler.requests] == ["k-123"] * 3
    assert [r.content for r in handler.requests] == [b'{"a":1}'] * 3


async def test_post_with_key_header_is_retried(env, script, make_request) -> None:
    """A caller-set Idempotency-Key header counts as a key."""
    handler = script(503, 201)
    request = make_request("POST", json={}, headers={"Idempotency-Key": "hdr-1"})
    await policy(env)(request, handler)
    assert handler.calls == 2
    assert context_of(request).idempotency_key == "hdr-1"


async def test_auto_idempotency_key(env, script, make_request) -> None:
    """auto_idempotency_key adds one generated key to a POST, the same on every attempt."""
    handler = script(503, 201)
    request = make_request("POST", json={})
    await policy(env, Retry(jitter=False, budget=None, auto_idempotency_key=True))(request, handler)
    keys = [r.headers.get("Idempotency-Key") for r in handler.requests]
    assert keys[0] is not None
    assert len(keys[0]) >= 16
    assert keys == [keys[0], keys[0]]
    assert context_of(request).idempotency_key == keys[0]


async def test_auto_idempotency_key_leaves_get_alone(env, script, make_request) -> None:
    """Idempotent methods get no generated key."""
    handler = script(200)
    await policy(env, Retry(auto_idempotency_key=True))(make_request(), handler)
    assert "Idempotency-Key" not in handler.requests[0].headers


async def test_endpoint_marked_idempotent_post_is_retried(env, script, make_request) -> None:
    """A POST to an endpoint marked idempotent is retried without a key."""
    handler = script(503, 200)
    await policy(env)(make_request("POST", json={}, idempotent=True), handler)
    assert handler.calls == 2


async def test_retry_non_idempotent_opt_in(env, script, make_request) -> None:
    """retry_non_idempotent=True retries a POST without a key."""
    handler = script(503, 200)
    await policy(env, Retry(jitter=False, budget=None, retry_non_idempotent=True))(
        make_request("POST", json={}), handler
    )
    assert handler.calls == 2


async def test_streaming_body_is_sent_once(env, script, make_request) -> None:
    """A request whose body is a stream cannot be replayed, so it is not retried."""

    async def body():  # type: ignore[no-untyped-def]
        yield b"chunk"

    request = make_request("PUT")
    request.stream = httpx2.Request("PUT", "https://x.test/", content=body()).stream
    handler = script(503, 200)
    with pytest.raises(errors.APIError):
        await policy(env)(request, handler)
    assert handler.calls == 1


async def test_each_retry_sends_a_fresh_request_from_the_original_headers(env, script, make_request) -> None:
    """Headers added below retry during one attempt (a signature) are not carried into the next."""

    async def sign_then_fail(request: httpx2.Request) -> httpx2.Response:
        request.headers["X-Signature"] = "attempt-1"
        raise errors.ConnectionError("reset")

    handler = script(sign_then_fail, 200)
    await policy(env)(make_request("PUT", content=b"payload"), handler)
    first, second = handler.requests
    assert second is not first
    assert "X-Signature" not in second.headers
    assert second.content == b"payload"
    assert context_of(second) is context_of(first)


# --- predicates ------------------------------------------------------------------------------


def _outcome(*, status: int | None = None, error: BaseException | None = None) -> AttemptOutcome:
    request = httpx2.Request("GET", "https://x.test/")
    response = httpx2.Response(status, request=request) if status is not None else None
    return AttemptOutcome(1, request, response, error)


def test_predicates_compose_with_or_and_not() -> None:
    """retry_on_status(503) | retry_on(ConnectionError), & and ~ combine like booleans."""
    either = retry_on_status(503) | retry_on(errors.ConnectionError)
    assert either(_outcome(status=503))
    assert either(_outcome(error=errors.ConnectionError("x")))
    assert not either(_outcome(status=500))
    timeouts_not_504 = retry_on(errors.TimeoutError) & ~retry_on_status(504)
    assert timeouts_not_504(_outcome(error=errors.TimeoutError("t")))
    assert not timeouts_not_504(_outcome(error=errors.TimeoutError("t", status_code=504)))
    assert repr(either) == "(retry_on_status(503) | retry_on(ConnectionError))"
    assert repr(~retry_if(lambda o: True, name="always")) == "~always"


def test_predicate_factories_validate_their_arguments() -> None:
    """Statuses must be HTTP codes and error types must be exception classes."""
    with pytest.raises(ValueError, match="got 1000"):
        retry_on_status(1000)
    with pytest.raises(TypeError, match="exception classes"):
        retry_on("ConnectionError")  # type: ignore[arg-type]


async def test_when_predicate_replaces_the_data_rules(env, script, make_request) -> None:
    """Retry(when=...) retries what the predicate says: here 503 yes, 500 no."""
    options = Retry(jitter=False, budget=None, when=retry_on_status(503) | retry_on(errors.ConnectionError))
    retried = script(503, 200)
    await policy(env, options)(make_request(), retried)
    assert retried.calls == 2
    once = script(500, 200)
    with pytest.raises(errors.APIError):
        await policy(env, options)(make_request(), once)
    assert once.calls == 1


async def test_never_rules_beat_the_predicate(env, script, make_request) -> None:
    """A predicate cannot make a Rejected error or a never_retry_on status retryable."""
    options = Retry(budget=None, when=retry_on(errors.CircuitOpenError) | retry_on_status(404))
    for step in (errors.CircuitOpenError("open"), 404):
        handler = script(step, 200)
        with pytest.raises(errors.TetherError):
            await policy(env, options)(make_request(), handler)
        assert handler.calls == 1


async def test_retry_on_errors_data_selects_kinds(env, script, make_request) -> None:
    """retry_on_errors=['timeout'] retries timeouts but no longer connection errors."""
    options = Retry(jitter=False, budget=None, retry_on_errors=["timeout"])
    handler = script(errors.ConnectionError("refused"), 200)
    with pytest.raises(errors.ConnectionError):
        await policy(env, options)(make_request(), handler)
    assert handler.calls == 1


async def test_spec_condition_names_are_understood(env, script, make_request) -> None:
    """The spec's condition names work: server_error retries any 5xx, connection_error is an alias."""
    options = Retry(
        jitter=False, budget=None, retry_on=[], retry_on_errors=["server_error", "connection_error"]
    )
    handler = script(501, errors.ConnectionError("reset"), 200)
    assert (await policy(env, options)(make_request(), handler)).status_code == 200
    assert handler.calls == 3
    limited = script(429, 200)
    with pytest.raises(errors.RateLimitExceeded):
        await policy(env, options)(make_request(), limited)
    assert limited.calls == 1


# --- retry budget ----------------------------------------------------------------------------


async def test_retry_budget_bounds_load_during_an_outage(env, script, make_request, clock, store) -> None:
    """With 100 % upstream failure for 60 s at 50 calls/s, total attempts stay within 1.1 × calls + the floor.

    The floor is ``min_per_second`` retries per second (10/s), so over the 60 s outage it allows
    10 × 60 = 600 retries on top of 10 % of the calls. Attempts are counted while the outage lasts;
    the upstream recovers at 60 s.
    """
    budget = RetryBudget()
    p = policy(env, Retry(budget=budget), seed=7)

    async def upstream(request: httpx2.Request) -> httpx2.Response:
        if clock.monotonic() < 60:
            raise errors.APIError("down", status_code=503)
        return httpx2.Response(200, request=request)

    handler = script(upstream)

    async def one_call() -> None:
        try:
            await p(make_request(), handler)
        except errors.APIError:
            pass

    tasks = []
    for _ in range(600):  # 60 s in 0.1 s ticks, 5 calls per tick = 50 calls/s
        tasks.extend(asyncio.create_task(one_call()) for _ in range(5))
        await clock.sleep(0.1)
    await asyncio.gather(*tasks)
    calls = len(tasks)
    assert calls == 3000
    attempts_during_outage = sum(1 for t in handler.times if t < 60)
    assert attempts_during_outage <= calls + budget.ratio * calls + budget.min_per_second * 60
    assert attempts_during_outage > calls  # the budget allowed some retries, not none


async def test_budget_exhaustion_gives_up_with_the_last_error(env, script, make_request, recorder) -> None:
    """When the budget is spent the call ends with its last error and retry.budget_exhausted."""
    tight = RetryBudget(ratio=0.0, window=10, min_per_second=0.1)  # one retry per 10 s window
    p = policy(env, Retry(jitter=False, budget=tight))
    first = script(503, 503, 200)
    with pytest.raises(errors.APIError):
        await p(make_request(), first)
    assert first.calls == 2  # one retry allowed, then the budget was spent
    assert [e.fields["reason"] for e in recorder.of(RETRY_GAVE_UP)] == ["budget_exhausted"]
    assert len(recorder.of(RETRY_BUDGET_EXHAUSTED)) == 1


async def test_budget_lives_in_the_state_store(env, script, make_request, store, clock) -> None:
    """Calls and retries are counted in the store under the service's keys, in per-second buckets."""
    second = int(clock.time())  # the call and its retry decision both happen at t=0
    await policy(env, Retry(jitter=False))(make_request(), script(503, 200))
    now = clock.time()
    assert await store.get_counter(f"svc:retry_budget:calls:{second}", now=now) == 1.0
    assert await store.get_counter(f"svc:retry_budget:retries:{second}", now=now) == 1.0


async def test_budget_without_a_store_uses_a_private_memory_store(script, make_request, clock) -> None:
    """With env.store None the budget still works, on a store of its own."""
    from tether.pipeline._base import PolicyEnv

    env = PolicyEnv(service="solo", clock=clock)
    tight = RetryBudget(ratio=0.0, window=10, min_per_second=0.1)
    handler = script(503)
    with pytest.raises(errors.APIError):
        await policy(env, Retry(jitter=False, budget=tight))(make_request(timeouts=Timeouts()), handler)
    assert handler.calls == 2


# --- end to end ------------------------------------------------------------------------------


@pytest.mark.realtime
async def test_end_to_end_retry_through_the_client(fault_server) -> None:  # type: ignore[no-untyped-def]
    """Through tether.Client on loopback, a 503, a reset and a 429 are retried until the 200."""
    import tether
    from tether.events import EventRecorder
    from tether.mock import Fault

    fault_server.route(
        "GET",
        "/flaky",
        Fault.status(503),
        Fault.reset(),
        Fault.rate_limited(retry_after=0),
        Fault.ok(json={"ok": 1}),
    )
    recorder = EventRecorder()
    options = Retry(initial=0.01, max_delay=0.05)
    async with tether.Client(fault_server.url, policies=[options], listeners=[recorder]) as client:
        response = await client.get("/flaky")
    assert response.json() == {"ok": 1}
    assert [r.fault for r in fault_server.requests("GET", "/flaky")] == [
        "status",
        "reset",
        "rate_limited",
        "ok",
    ]
    sources = [e.fields["source"] for e in recorder.of(RETRY_SCHEDULED)]
    assert sources == ["backoff", "backoff", "Retry-After"]


@pytest.mark.realtime
async def test_end_to_end_post_keeps_its_idempotency_key(fault_server) -> None:  # type: ignore[no-untyped-def]
    """A POST with auto_idempotency_key reaches the server twice with the same key and body."""
    import tether
    from tether.mock import Fault

    fault_server.route("POST", "/orders", Fault.status(502), Fault.ok(json={"id": 7}, status=201))
    options = Retry(initial=0.01, max_delay=0.05, auto_idempotency_key=True)
    async with tether.Client(fault_server.url, policies=[options]) as client:
        response = await client.post("/orders", json={"qty": 2})
    assert response.status_code == 201
    seen = fault_server.requests("POST", "/orders")
    keys = {r.header("idempotency-key") for r in seen}
    assert len(seen) == 2
    assert len(keys) == 1
    assert None not in keys
    assert [r.json() for r in seen] == [{"qty": 2}, {"qty": 2}]
