"""Durations (ms where the template writes ms, s where it writes s, or a unit) and sizes."""

from __future__ import annotations

import pytest

from tether.spec import SpecLoadError, load

BASE = "service: {name: x, base_url: 'https://x.example'}\n"


def test_bare_numbers_in_timeouts_and_retry_delays_are_milliseconds() -> None:
    """timeouts.connect: 5000 is 5 s; retry.initial_delay: 1000 is 1 s."""
    spec = load(
        BASE + "timeouts: {connect: 5000, total: 60000}\nretry: {initial_delay: 1000, max_delay: 60000}\n",
        environ={},
    )
    assert spec.timeouts is not None and spec.timeouts.connect == 5.0 and spec.timeouts.total == 60.0
    assert spec.retry is not None and spec.retry.initial_delay == 1.0 and spec.retry.max_delay == 60.0


def test_bare_numbers_in_second_fields_are_seconds() -> None:
    """circuit_breaker.timeout: 30 is 30 s, as the template writes it."""
    spec = load(BASE + "circuit_breaker: {timeout: 30}\nthrottling: {retry_after: 60}\n", environ={})
    assert spec.circuit_breaker is not None and spec.circuit_breaker.timeout == 30.0
    assert spec.throttling is not None and spec.throttling.retry_after == 60.0


@pytest.mark.parametrize(
    ("written", "seconds"),
    [("500ms", 0.5), ("5s", 5.0), ("2m", 120.0), ("24h", 86400.0), ("'1500'", 1.5), ("250", 0.25)],
)
def test_duration_strings_carry_their_unit(written: str, seconds: float) -> None:
    """'500ms', '5s', '2m', '24h' mean what they say; a numeric string is ms like a number."""
    spec = load(BASE + f"timeouts: {{read: {written}}}\n", environ={})
    assert spec.timeouts is not None and spec.timeouts.read == pytest.approx(seconds)


def test_latency_targets_accept_the_template_spelling() -> None:
    """performance p95: '< 500' is 500 ms."""
    spec = load(
        BASE + "endpoints:\n  a: {path: /a, performance: {p50: '<150', p95: < 500, p99: 1s}}\n", environ={}
    )
    perf = spec.endpoints["a"].performance
    assert perf is not None
    assert (perf.p50, perf.p95, perf.p99) == pytest.approx((0.15, 0.5, 1.0))


def test_bad_duration_is_reported_at_its_value() -> None:
    """'5 parsecs' is a problem at its line naming the key."""
    with pytest.raises(SpecLoadError) as caught:
        load(BASE + "timeouts:\n  read: 5 parsecs\n", environ={})
    (problem,) = caught.value.problems
    assert problem.location.line == 3
    assert "timeouts.read" in problem.message


def test_negative_duration_is_refused() -> None:
    """A negative delay is not a duration."""
    with pytest.raises(SpecLoadError, match=r"retry\.initial_delay"):
        load(BASE + "retry: {initial_delay: -5}\n", environ={})


def test_sizes_accept_units() -> None:
    """bandwidth.monthly_limit: 50GB is 50e9 bytes; cache.max_bytes: 512MiB is binary."""
    spec = load(BASE + "bandwidth: {monthly_limit: 50GB}\ncache: {max_bytes: 512MiB}\n", environ={})
    assert spec.bandwidth is not None and spec.bandwidth.monthly_limit == 50 * 1000**3
    assert spec.cache is not None and spec.cache.max_bytes == 512 * 1024**2


def test_sizes_and_durations_dump_as_written_units() -> None:
    """The JSON dump writes durations and sizes back with units."""
    spec = load(BASE + "bandwidth: {monthly_limit: 50GB}\ntimeouts: {connect: 5000}\n", environ={})
    dumped = spec.model_dump(mode="json", exclude_unset=True)
    assert dumped["bandwidth"]["monthly_limit"] == "50GB"
    assert dumped["timeouts"]["connect"] == "5s"


def test_attempt_timeout_may_not_exceed_total() -> None:
    """timeouts.attempt above timeouts.total is refused at the attempt key."""
    with pytest.raises(SpecLoadError) as caught:
        load(BASE + "timeouts:\n  total: 10s\n  attempt: 20s\n", environ={})
    (problem,) = caught.value.problems
    assert "must not exceed" in problem.message
    assert problem.location.line == 4


def test_endpoint_attempt_timeout_is_checked_against_the_spec_total() -> None:
    """An endpoint's attempt timeout above the spec's total is refused."""
    text = BASE + "timeouts: {total: 10s}\nendpoints:\n  a:\n    path: /a\n    timeouts: {attempt: 20s}\n"
    with pytest.raises(SpecLoadError, match="attempt timeout"):
        load(text, environ={})
    assert load(text.replace("total: 10s", "total: 30s"), environ={}).endpoints["a"].timeouts is not None
