"""Parsing Retry-After and rate-limit headers (pure functions; examples and properties)."""

from __future__ import annotations

import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tether.pipeline._headers import (
    IETF_LEGACY_NAMES,
    QuotaPolicy,
    QuotaState,
    RateLimitHeaderNames,
    format_http_date,
    parse_http_date,
    parse_ratelimit,
    parse_ratelimit_policy,
    parse_reset,
    parse_retry_after,
    read_rate_limit,
    server_wait,
)

NOW = 1_800_000_000.0
RFC_EXAMPLE = 784111777.0  # Sun, 06 Nov 1994 08:49:37 GMT (RFC 9110's example)

epochs = st.integers(min_value=0, max_value=4_000_000_000)


# --- HTTP dates ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
        "sun, 06 nov 1994 08:49:37 gmt",
    ],
)
def test_http_date_accepts_all_three_rfc_9110_forms(text: str) -> None:
    """IMF-fixdate, RFC 850 and asctime all read as the same instant."""
    assert parse_http_date(text, now=NOW) == RFC_EXAMPLE


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "Sun, 31 Feb 2024 00:00:00 GMT",
        "Sun, 06 Nov 1994 25:00:00 GMT",
        "Sun, 06 Foo 1994 08:49:37 GMT",
    ],
)
def test_http_date_rejects_nonsense(text: str) -> None:
    """Impossible dates and free text read as None."""
    assert parse_http_date(text) is None


def test_rfc850_two_digit_year_is_never_more_than_fifty_years_ahead() -> None:
    """A two-digit year that would be over 50 years in the future means the past century."""
    now_2030 = float(parse_http_date("Tue, 01 Jan 2030 00:00:00 GMT") or 0)
    assert parse_http_date("Friday, 01-Jan-99 00:00:00 GMT", now=now_2030) == parse_http_date(
        "Fri, 01 Jan 1999 00:00:00 GMT"
    )
    assert parse_http_date("Sunday, 01-Jan-79 00:00:00 GMT", now=now_2030) == parse_http_date(
        "Mon, 01 Jan 2079 00:00:00 GMT"
    )


@given(epochs)
def test_http_date_round_trips(epoch: int) -> None:
    """Formatting an epoch as an HTTP-date and parsing it back gives the same second."""
    assert parse_http_date(format_http_date(epoch)) == float(epoch)


# --- Retry-After -----------------------------------------------------------------------------


def test_retry_after_seconds() -> None:
    """Retry-After: 3 asks for three seconds."""
    assert parse_retry_after("3", now=NOW) == 3.0
    assert parse_retry_after(" 120 ", now=NOW) == 120.0


def test_retry_after_http_date_is_relative_to_now() -> None:
    """Retry-After as an HTTP-date asks for the time until that date; a past date means now."""
    assert parse_retry_after(format_http_date(NOW + 42), now=NOW) == 42.0
    assert parse_retry_after(format_http_date(NOW - 42), now=NOW) == 0.0


@pytest.mark.parametrize("text", ["", "-1", "soon", "1e3", "inf", "nan", "3 s"])
def test_retry_after_garbage_is_ignored(text: str) -> None:
    """Negative, exponent, infinite and free-text values read as None."""
    assert parse_retry_after(text, now=NOW) is None


@given(st.integers(min_value=0, max_value=10**9))
def test_retry_after_delta_round_trips(seconds: int) -> None:
    """Any non-negative integer of delay-seconds is read back exactly."""
    assert parse_retry_after(str(seconds), now=NOW) == float(seconds)


@given(epochs, epochs)
def test_retry_after_date_is_never_negative(when: int, now: int) -> None:
    """The wait from an HTTP-date is the distance to it, and never below zero."""
    assert parse_retry_after(format_http_date(when), now=float(now)) == max(0.0, float(when - now))


@given(st.text(max_size=40))
def test_retry_after_never_raises(text: str) -> None:
    """Arbitrary header text never raises; a result is always a non-negative number."""
    result = parse_retry_after(text, now=NOW)
    assert result is None or result >= 0


# --- rate-limit reset ------------------------------------------------------------------------


def test_reset_delta_epoch_and_auto() -> None:
    """X-RateLimit-Reset as a delta, epoch seconds, epoch millis, each as configured or guessed."""
    assert parse_reset("30", now=NOW, kind="delta") == 30.0
    assert parse_reset(str(int(NOW + 30)), now=NOW, kind="epoch") == 30.0
    assert parse_reset("30", now=NOW, kind="auto") == 30.0
    assert parse_reset(str(int(NOW + 30)), now=NOW, kind="auto") == 30.0
    assert parse_reset(str(int((NOW + 30) * 1000)), now=NOW, kind="auto") == 30.0
    assert parse_reset(format_http_date(NOW + 30), now=NOW, kind="auto") == 30.0


def test_reset_epoch_in_the_past_means_now() -> None:
    """A reset time already passed is a zero wait, not a negative one."""
    assert parse_reset(str(int(NOW - 5)), now=NOW, kind="epoch") == 0.0


def test_reset_kind_is_validated() -> None:
    """An unknown reset kind names the allowed ones."""
    with pytest.raises(ValueError, match=r"delta, epoch, auto"):
        parse_reset("1", now=NOW, kind="weeks")  # type: ignore[arg-type]


@given(st.integers(min_value=0, max_value=10**8))
def test_reset_auto_reads_plausible_deltas_as_deltas(delta: int) -> None:
    """Under 1e9 (about 31 years), auto reads a reset as seconds from now."""
    assert parse_reset(str(delta), now=NOW, kind="auto") == float(delta)


@given(st.integers(min_value=0, max_value=10**8))
def test_reset_auto_reads_epochs_as_epochs(ahead: int) -> None:
    """An epoch timestamp (seconds) reads as the time until it."""
    assert parse_reset(str(int(NOW) + ahead), now=NOW, kind="auto") == float(ahead)


# --- IETF RateLimit / RateLimit-Policy --------------------------------------------------------


def test_policy_structured_list() -> None:
    """Current drafts: quoted names with q (quota), w (window), qu and pk parameters."""
    assert parse_ratelimit_policy('"default";q=100;w=60, "burst";q=10;w=1;qu="requests";pk=:abc:') == (
        QuotaPolicy("default", 100, 60.0),
        QuotaPolicy("burst", 10, 1.0, unit="requests", partition=":abc:"),
    )


def test_policy_older_forms() -> None:
    """Draft 08 tokens with l=, and the legacy bare quota list, are understood too."""
    assert parse_ratelimit_policy("default;l=100;w=60") == (QuotaPolicy("default", 100, 60.0),)
    assert parse_ratelimit_policy("10;w=1, 50;w=60") == (
        QuotaPolicy(None, 10, 1.0),
        QuotaPolicy(None, 50, 60.0),
    )


def test_ratelimit_structured_and_dictionary_forms() -> None:
    """RateLimit as a structured list (r, t) and as the draft-07 dictionary (limit, remaining, reset)."""
    assert parse_ratelimit('"default";r=50;t=30, "burst";r=0;t=1') == (
        QuotaState("default", 50, 30.0),
        QuotaState("burst", 0, 1.0),
    )
    assert parse_ratelimit("limit=100, remaining=50, reset=30") == (QuotaState(None, 50, 30.0, limit=100),)


@pytest.mark.parametrize("text", ["", ",,,", "garbage", '"x";q=abc', "w=1"])
def test_malformed_policies_are_skipped(text: str) -> None:
    """Members without a usable quota are dropped, never raised on."""
    assert parse_ratelimit_policy(text) == ()


names = st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True)


@given(st.lists(st.tuples(names, st.integers(0, 10**6), st.integers(1, 86400)), min_size=1, max_size=4))
def test_policy_round_trips(items: list[tuple[str, int, int]]) -> None:
    """Any list of named quota policies written as a structured field parses back exactly."""
    text = ", ".join(f'"{n}";q={q};w={w}' for n, q, w in items)
    assert parse_ratelimit_policy(text) == tuple(QuotaPolicy(n, q, float(w)) for n, q, w in items)


@given(st.lists(st.tuples(names, st.integers(0, 10**6), st.integers(0, 86400)), min_size=1, max_size=4))
def test_ratelimit_round_trips(items: list[tuple[str, int, int]]) -> None:
    """Any RateLimit structured list parses back to the same remaining and reset per policy."""
    text = ", ".join(f'"{n}";r={r};t={t}' for n, r, t in items)
    assert parse_ratelimit(text) == tuple(QuotaState(n, r, float(t)) for n, r, t in items)


@given(st.text(max_size=60))
def test_ratelimit_parsers_never_raise(text: str) -> None:
    """Arbitrary header text never raises in either parser."""
    parse_ratelimit(text)
    parse_ratelimit_policy(text)


# --- reading a whole response -----------------------------------------------------------------


def test_read_rate_limit_picks_the_most_constraining_ietf_policy() -> None:
    """With several policies, the snapshot is the one with the fewest units left, joined to its policy."""
    headers = httpx2.Headers(
        {
            "RateLimit-Policy": '"minute";q=100;w=60, "second";q=10;w=1',
            "RateLimit": '"minute";r=40;t=30, "second";r=0;t=1',
        }
    )
    snap = read_rate_limit(headers, now=NOW)
    assert snap is not None
    assert (snap.policy, snap.limit, snap.remaining, snap.reset_after, snap.window) == (
        "second",
        10,
        0,
        1.0,
        1.0,
    )
    assert snap.exhausted


def test_read_rate_limit_x_ratelimit_epoch() -> None:
    """The X-RateLimit trio with an epoch reset reads as seconds from now."""
    headers = {
        "X-RateLimit-Limit": "75",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(int(NOW + 12)),
    }
    snap = read_rate_limit(headers, now=NOW)
    assert snap is not None
    assert (snap.limit, snap.remaining, snap.reset_after, snap.source) == (
        75,
        0,
        12.0,
        "X-RateLimit-Remaining",
    )


def test_read_rate_limit_custom_names() -> None:
    """A provider's own header names and reset kind are honoured."""
    names = RateLimitHeaderNames("X-Quota", "X-Quota-Left", "X-Quota-Reset", reset_kind="delta")
    snap = read_rate_limit({"x-quota": "5", "x-quota-left": "1", "x-quota-reset": "9"}, now=NOW, names=names)
    assert snap is not None
    assert (snap.limit, snap.remaining, snap.reset_after) == (5, 1, 9.0)


def test_read_rate_limit_none_when_silent() -> None:
    """A response without rate-limit headers gives no snapshot."""
    assert read_rate_limit({"content-type": "application/json"}, now=NOW) is None


def test_names_are_validated() -> None:
    """Header names must be non-empty and the reset kind known; the message names the bad value."""
    with pytest.raises(ValueError, match=r"reset_kind must be one of delta, epoch, auto, got 'hours'"):
        RateLimitHeaderNames(reset_kind="hours")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"RateLimitHeaderNames.reset must be a header name"):
        RateLimitHeaderNames(reset=" ")
    assert IETF_LEGACY_NAMES.reset_kind == "delta"


def test_server_wait_prefers_retry_after() -> None:
    """Retry-After wins over a rate-limit reset when both are present."""
    headers = {"Retry-After": "3", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "50"}
    wait = server_wait(headers, now=NOW, status=429)
    assert wait is not None
    assert (wait.seconds, wait.source) == (3.0, "Retry-After")


def test_server_wait_uses_reset_only_when_the_quota_is_spent() -> None:
    """A reset header counts on a 429 or at zero remaining, not on an ordinary error response."""
    assert server_wait({"X-RateLimit-Remaining": "7", "X-RateLimit-Reset": "50"}, now=NOW, status=503) is None
    on_429 = server_wait({"X-RateLimit-Reset": "50"}, now=NOW, status=429)
    assert on_429 is not None
    assert (on_429.seconds, on_429.source) == (50.0, "X-RateLimit-Reset")
    spent = server_wait({"RateLimit": '"d";r=0;t=8'}, now=NOW, status=503)
    assert spent is not None
    assert (spent.seconds, spent.source) == (8.0, "RateLimit")


def test_server_wait_legacy_ietf_trio() -> None:
    """The legacy RateLimit-Remaining/-Reset pair (reset always a delta) is understood."""
    wait = server_wait({"RateLimit-Remaining": "0", "RateLimit-Reset": "4"}, now=NOW, status=429)
    assert wait is not None
    assert (wait.seconds, wait.source) == (4.0, "RateLimit-Reset")
