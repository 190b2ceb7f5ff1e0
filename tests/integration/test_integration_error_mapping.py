"""error_mapping end to end: every action against a loopback server, errors in 200s and in bodies."""

from __future__ import annotations

import pytest
from integration_helpers import spec_text

import tether
from tether._build import MappedError
from tether.events import EventRecorder
from tether.mock import Fault, FaultServer
from tether.testing import VirtualClock

SPEC = """\
service: {name: maperr, base_url: "@URL@"}
authentication: {type: api_key, config: {key_name: X-Key, secret: "${MAPERR_KEY}"}}
retry: {initial_delay: 1, max_delay: 20, max_retry_after: 60s, jitter: false, budget: null}
timeouts: {total: null}
endpoints:
  thing: {path: /thing}
  documented:
    path: /documented
    response:
      errors:
        '502': {retry_after: X-Wait}
error_mapping:
  - {status: 200, body: {path: status, equals: error}, internal_code: API_001, action: retry,
     message: upstream hiccup}
  - {external_code: GONE, code_path: error.code, internal_code: NOTFOUND_001, action: fail,
     message: no such thing}
  - {status: 5xx, header: {name: X-Maintenance, present: true}, internal_code: API_001, action: fallback}
  - {status: 404, internal_code: NOTFOUND_001, action: ignore}
  - {status: 200, body: {path: error, equals: slow_down}, internal_code: RATE_001, action: rate_limited,
     retry_after: {body: retry_in_ms, format: milliseconds}}
  - {status: 429, internal_code: RATE_001, action: rate_limited,
     retry_after: {header: X-Reset, format: epoch_s}}
  - {status: 200, body: {path: error, equals: token_expired}, internal_code: AUTH_001,
     action: refresh_auth_then_retry}
  - {status: 503, internal_code: API_001, action: fail}
"""

KEY_1 = "key-one-1234567"
KEY_2 = "key-two-7654321"


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The key the spec reads from MAPERR_KEY."""
    monkeypatch.setenv("MAPERR_KEY", KEY_1)


def _open(server: FaultServer, **overrides: object) -> tether.Integration:
    return tether.open(spec_text(SPEC, server.url), **overrides)  # type: ignore[arg-type]


async def test_retry_action_retries_an_error_reported_with_a_200(fault_server: FaultServer) -> None:
    """A 200 whose body says status: error is retried like a 503, then the good answer returns."""
    fault_server.route("GET", "/thing", Fault.ok(json={"status": "error"}), Fault.ok(json={"status": "ok"}))
    recorder = EventRecorder()
    async with _open(fault_server, listeners=[recorder]) as api:
        result = await api.call("thing")
    assert result.data == {"status": "ok"}
    assert result.meta.attempts == 2
    (scheduled,) = recorder.of("retry.scheduled")
    assert "MappedAPIError" in scheduled.fields["reason"]


async def test_retry_answers_count_as_breaker_failures(fault_server: FaultServer) -> None:
    """Errors inside 200s open the circuit breaker like failing statuses do."""
    fault_server.route("GET", "/thing", Fault.ok(json={"status": "error"}))
    recorder = EventRecorder()
    breaker = tether.Breaker(failures=2)
    retry = tether.Retry(attempts=2, initial=0.001, jitter=False, budget=None)
    async with _open(fault_server, listeners=[recorder], breaker=breaker, retry=retry) as api:
        with pytest.raises(tether.APIError) as caught:
            await api.call("thing")
        assert api.status()["breaker"]["state"] == "open"
    assert isinstance(caught.value, MappedError)
    assert caught.value.action == "retry"
    assert recorder.of("breaker.opened")


async def test_fail_action_on_a_body_code_is_not_retried(fault_server: FaultServer) -> None:
    """external_code read at code_path picks NotFoundError with the rule's message; sent once."""
    fault_server.route("GET", "/thing", Fault.ok(json={"error": {"code": "GONE"}}))
    async with _open(fault_server) as api:
        with pytest.raises(tether.NotFoundError) as caught:
            await api.call("thing")
    error = caught.value
    assert isinstance(error, MappedError)
    assert error.action == "fail"
    assert error.error_code == "NOTFOUND_001"
    assert error.internal_code == "NOTFOUND_001"
    assert "no such thing" in str(error)
    assert error.status_code == 200
    assert len(fault_server.log) == 1


async def test_fail_action_overrides_the_default_retry_of_a_503(fault_server: FaultServer) -> None:
    """A 503 mapped to fail is raised at once, though retry_on lists 503."""
    fault_server.route("GET", "/thing", Fault.status(503), Fault.ok(json={}))
    async with _open(fault_server) as api:
        with pytest.raises(tether.APIError) as caught:
            await api.call("thing")
    assert getattr(caught.value, "action", None) == "fail"
    assert len(fault_server.log) == 1


async def test_fallback_action_raises_an_error_marked_for_fallback(fault_server: FaultServer) -> None:
    """A 5xx with X-Maintenance raises an APIError whose action is fallback; not retried."""
    fault_server.route("GET", "/thing", Fault.status(502, headers={"X-Maintenance": "1"}), Fault.ok(json={}))
    async with _open(fault_server) as api:
        with pytest.raises(tether.APIError) as caught:
            await api.call("thing")
    assert isinstance(caught.value, MappedError)
    assert caught.value.action == "fallback"
    assert caught.value.status_code == 502
    assert len(fault_server.log) == 1


async def test_ignore_action_treats_an_error_status_as_success(fault_server: FaultServer) -> None:
    """A 404 mapped to ignore returns a Result with the body, status 404."""
    fault_server.route("GET", "/thing", Fault.status(404, json={"items": []}))
    async with _open(fault_server) as api:
        result = await api.call("thing")
    assert result.data == {"items": []}
    assert result.response.status_code == 404
    assert len(fault_server.log) == 1


async def test_rate_limited_reads_the_wait_from_the_body(fault_server: FaultServer) -> None:
    """retry_after {body: retry_in_ms, format: milliseconds}: the limiter pauses and retry waits 2.5 s."""
    fault_server.route(
        "GET", "/thing", Fault.ok(json={"error": "slow_down", "retry_in_ms": 2500}), Fault.ok(json={"v": 1})
    )
    clock = VirtualClock()
    recorder = EventRecorder()
    rate = tether.Rate("100/second", burst=10)
    async with _open(fault_server, clock=clock, listeners=[recorder], rate=rate) as api:
        result = await api.call("thing")
    assert result.data == {"v": 1}
    (scheduled,) = recorder.of("retry.scheduled")
    assert scheduled.fields["delay"] == 2.5
    (paused,) = recorder.of("limiter.paused")
    assert paused.fields["seconds"] == 2.5
    assert clock.monotonic() == pytest.approx(2.5)


async def test_rate_limited_reads_an_epoch_reset_header(fault_server: FaultServer) -> None:
    """A 429 whose X-Reset (epoch seconds) is 4 s ahead is waited exactly 4 s, then retried."""
    clock = VirtualClock()
    reset = str(int(clock.time()) + 4)
    fault_server.route("GET", "/thing", Fault.status(429, headers={"X-Reset": reset}), Fault.ok(json={}))
    recorder = EventRecorder()
    async with _open(fault_server, clock=clock, listeners=[recorder]) as api:
        await api.call("thing")
    (scheduled,) = recorder.of("retry.scheduled")
    assert scheduled.fields["delay"] == 4.0
    assert len(fault_server.log) == 2


async def test_rate_limited_gives_up_with_rate_limit_exceeded_carrying_the_wait(
    fault_server: FaultServer,
) -> None:
    """A wait longer than max_retry_after fails at once with RateLimitExceeded(retry_after=wait)."""
    fault_server.route("GET", "/thing", Fault.ok(json={"error": "slow_down", "retry_in_ms": 90000}))
    async with _open(fault_server, clock=VirtualClock()) as api:
        with pytest.raises(tether.RateLimitExceeded) as caught:
            await api.call("thing")
    assert caught.value.retry_after == 90.0
    assert len(fault_server.log) == 1


async def test_refresh_auth_then_retry_rereads_the_key_and_replays(
    fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """token_expired inside a 200 makes auth re-read the rotated key and replay once with it."""
    fault_server.route("GET", "/thing", Fault.ok(json={"error": "token_expired"}), Fault.ok(json={"v": 2}))
    async with _open(fault_server) as api:
        monkeypatch.setenv("MAPERR_KEY", KEY_2)  # rotated after the key was read at start
        result = await api.call("thing")
    assert result.data == {"v": 2}
    assert [r.header("x-key") for r in fault_server.log] == [KEY_1, KEY_2]


async def test_refresh_auth_without_a_new_key_fails_as_401(fault_server: FaultServer) -> None:
    """When the key did not change there is nothing to replay: AuthenticationError (status 401)."""
    fault_server.route("GET", "/thing", Fault.ok(json={"error": "token_expired"}))
    async with _open(fault_server) as api:
        with pytest.raises(tether.AuthenticationError) as caught:
            await api.call("thing")
    assert caught.value.status_code == 401
    assert len(fault_server.log) == 1


async def test_documented_error_waits_are_read_from_the_endpoint(fault_server: FaultServer) -> None:
    """response.errors '502' retry_after: X-Wait gives the wait retry honours."""
    fault_server.route("GET", "/documented", Fault.status(502, headers={"X-Wait": "3"}), Fault.ok(json={}))
    clock = VirtualClock()
    recorder = EventRecorder()
    async with _open(fault_server, clock=clock, listeners=[recorder]) as api:
        await api.call("documented")
    (scheduled,) = recorder.of("retry.scheduled")
    assert scheduled.fields["delay"] == 3.0
