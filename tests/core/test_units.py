"""Durations and sizes: loose input normalised, bad input named."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tether._config import Timeouts
from tether._units import parse_duration, parse_size


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (5, 5.0),
        (0.5, 0.5),
        ("500ms", 0.5),
        ("5s", 5.0),
        ("2m", 120.0),
        ("24h", 86400.0),
        ("7d", 604800.0),
        ("1.5 s", 1.5),
        (timedelta(minutes=1), 60.0),
        ("10", 10.0),
    ],
)
def test_durations(value: object, seconds: float) -> None:
    """Numbers, timedeltas and unit strings all become seconds."""
    assert parse_duration(value) == seconds  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["5 parsecs", "abc", "-1s", -1, float("nan"), True, None])
def test_bad_durations_are_named(value: object) -> None:
    """Bad durations raise ValueError naming the option and the value."""
    with pytest.raises(ValueError, match="read"):
        parse_duration(value, name="read")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (100, 100),
        ("10MB", 10_000_000),
        ("512KiB", 524_288),
        ("50GB", 50_000_000_000),
        ("1.5kb", 1500),
        ("7", 7),
    ],
)
def test_sizes(value: object, size: int) -> None:
    """Numbers and unit strings become bytes (decimal and binary units)."""
    assert parse_size(value) == size  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["10 parsecs", "-1MB", "MB", False])
def test_bad_sizes_are_named(value: object) -> None:
    """Bad sizes raise ValueError naming the value."""
    with pytest.raises(ValueError, match="max_bytes"):
        parse_size(value, name="max_bytes")  # type: ignore[arg-type]


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False))
def test_millisecond_strings_round_trip(seconds: float) -> None:
    """A duration written in ms parses back to the same number of seconds."""
    ms = round(seconds * 1000, 3)
    assert parse_duration(f"{ms}ms") == pytest.approx(ms / 1000)


def test_timeouts_defaults_follow_design() -> None:
    """Default timeouts: connect 5 s, read 30 s, write 30 s, total 60 s."""
    t = Timeouts()
    assert (t.connect, t.read, t.write, t.total) == (5.0, 30.0, 30.0, 60.0)


def test_attempt_timeout_may_not_exceed_total() -> None:
    """An attempt timeout above the total deadline is refused with both values named."""
    with pytest.raises(ValueError, match=r"attempt \(90s\).*total \(60s\)"):
        Timeouts(attempt=90, total=60)


def test_timeouts_accept_loose_input() -> None:
    """One number sets every network phase; None switches every limit off."""
    assert Timeouts.of(2).read == 2.0
    assert Timeouts.of(2).total == 60.0
    off = Timeouts.of(None)
    assert off.total is None and off.connect is None
