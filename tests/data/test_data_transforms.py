"""The closed set of named transforms, inbound (parse) and outbound (JSON-ready)."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tether._redact import registry
from tether.errors import SpecError, ValidationError
from tether.mapping import TRANSFORMS, transform
from tether.spec._endpoint import Transform

SETTINGS = settings(max_examples=200, deadline=None)


def test_every_spec_transform_is_supported() -> None:
    """The mapper knows exactly the transforms the spec model allows."""
    assert set(TRANSFORMS) == set(Transform.__args__)  # type: ignore[attr-defined]
    for name in TRANSFORMS:
        transform(name, "1" if name not in ("date", "datetime") else "2024-01-02")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1.5", 1.5), (" 2 ", 2.0), (3, 3.0), (Decimal("0.25"), 0.25), ("-1e3", -1000.0), (4.5, 4.5)],
)
def test_float_parses_numbers_and_numeric_text(value: Any, expected: float) -> None:
    """float accepts numbers and numeric strings (surrounding spaces ignored)."""
    assert transform("float", value) == expected


def test_float_accepts_nan_and_infinity_words() -> None:
    """float reads 'NaN' and 'inf' the way Python does."""
    assert math.isnan(transform("float", "NaN"))
    assert transform("float", "-inf") == float("-inf")


@pytest.mark.parametrize("value", ["abc", "", "1,5", True, None, [1], {"a": 1}, "1e999999"])
def test_float_rejects_non_numbers(value: Any) -> None:
    """float refuses text that is not a number, booleans, nulls and containers."""
    with pytest.raises(ValidationError, match="transform float"):
        transform("float", value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("42", 42), (" -7 ", -7), (3.0, 3), ("3.0", 3), ("1e3", 1000), (Decimal("12"), 12), (10**30, 10**30)],
)
def test_int_parses_whole_numbers(value: Any, expected: int) -> None:
    """int accepts whole numbers written any usual way."""
    result = transform("int", value)
    assert result == expected and isinstance(result, int)


@pytest.mark.parametrize("value", ["3.5", 2.5, "x", False, float("nan"), "inf"])
def test_int_rejects_fractions_and_non_numbers(value: Any) -> None:
    """int refuses fractions, booleans, non-finite numbers and text."""
    with pytest.raises(ValidationError, match="transform int"):
        transform("int", value)


def test_decimal_is_exact_inbound_and_text_outbound() -> None:
    """decimal keeps every digit: a Decimal inbound, an exact string outbound."""
    assert transform("decimal", "0.10") == Decimal("0.10")
    assert str(transform("decimal", 0.1)) == "0.1"
    assert transform("decimal", Decimal("1.50"), direction="outbound") == "1.50"
    with pytest.raises(ValidationError):
        transform("decimal", "NaN")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("x", "x"),
        (5, "5"),
        (True, "true"),
        (1.5, "1.5"),
        (Decimal("2.50"), "2.50"),
        (date(2024, 1, 2), "2024-01-02"),
        ({"a": [1, 2]}, '{"a":[1,2]}'),
    ],
)
def test_str_writes_values_as_text(value: Any, expected: str) -> None:
    """str writes booleans lower-case, dates ISO and containers as compact JSON."""
    assert transform("str", value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("False", False), ("yes", True), ("n", False), ("1", True), (0, False), (True, True)],
)
def test_bool_reads_common_spellings(value: Any, expected: bool) -> None:
    """bool reads true/false, yes/no, 1/0 in any case."""
    assert transform("bool", value) is expected


@pytest.mark.parametrize("value", ["maybe", 2, 0.5, [True]])
def test_bool_rejects_other_values(value: Any) -> None:
    """bool refuses words and numbers that are not booleans."""
    with pytest.raises(ValidationError, match="transform bool"):
        transform("bool", value)


def test_date_parses_iso_dates_and_date_times() -> None:
    """date reads ISO dates (and the date of an ISO date-time); outbound it writes ISO text."""
    assert transform("date", "2024-03-05") == date(2024, 3, 5)
    assert transform("date", "2024-03-05T10:00:00Z") == date(2024, 3, 5)
    assert transform("date", datetime(2024, 3, 5, 9)) == date(2024, 3, 5)
    assert transform("date", date(2024, 3, 5), direction="outbound") == "2024-03-05"
    with pytest.raises(ValidationError, match="ISO 8601 date"):
        transform("date", "05/03/2024")
    with pytest.raises(ValidationError):
        transform("date", "2024-02-30")


def test_datetime_parses_iso_date_times_with_zones() -> None:
    """datetime reads ISO 8601 (Z and offsets kept); outbound it writes ISO text."""
    assert transform("datetime", "2024-03-05T10:20:30Z") == datetime(2024, 3, 5, 10, 20, 30, tzinfo=UTC)
    parsed = transform("datetime", "2024-03-05T10:20:30+02:00")
    assert parsed.utcoffset() == timedelta(hours=2)
    assert transform("datetime", date(2024, 3, 5)) == datetime(2024, 3, 5)
    out = transform("datetime", datetime(2024, 3, 5, 1, 2, 3, tzinfo=UTC), direction="outbound")
    assert out == "2024-03-05T01:02:03+00:00"
    with pytest.raises(ValidationError, match="transform datetime"):
        transform("datetime", 1700000000)


def test_epoch_ms_and_epoch_s_become_utc_datetimes() -> None:
    """epoch_ms and epoch_s read numbers (and numeric text) as aware UTC datetimes."""
    expected = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert transform("epoch_ms", 1700000000000) == expected
    assert transform("epoch_ms", "1700000000000") == expected
    assert transform("epoch_s", 1700000000) == expected
    assert transform("epoch_s", "1700000000.25") == expected + timedelta(milliseconds=250)
    assert transform("epoch_s", -86400) == datetime(1969, 12, 31, tzinfo=UTC)


def test_epoch_outbound_writes_numbers_and_treats_naive_as_utc() -> None:
    """Outbound epoch transforms write whole numbers when exact; naive datetimes count as UTC."""
    moment = datetime(2023, 11, 14, 22, 13, 20)
    assert transform("epoch_s", moment, direction="outbound") == 1700000000
    assert transform("epoch_ms", moment.replace(tzinfo=UTC), direction="outbound") == 1700000000000
    shifted = datetime(2023, 11, 15, 0, 13, 20, tzinfo=timezone(timedelta(hours=2)))
    assert transform("epoch_s", shifted, direction="outbound") == 1700000000
    assert transform("epoch_s", moment + timedelta(milliseconds=500), direction="outbound") == 1700000000.5


@pytest.mark.parametrize("value", ["soon", True, 10**20, None])
def test_epoch_rejects_non_numbers_and_out_of_range(value: Any) -> None:
    """Epoch transforms refuse text, booleans and values beyond year 9999."""
    with pytest.raises(ValidationError, match="transform epoch_ms"):
        transform("epoch_ms", value)


def test_text_transforms_work_on_strings_only() -> None:
    """lower, upper and strip change strings and refuse anything else."""
    assert transform("lower", "GdP") == "gdp"
    assert transform("upper", "gdp") == "GDP"
    assert transform("strip", "  a b \n") == "a b"
    for name in ("lower", "upper", "strip"):
        with pytest.raises(ValidationError, match="expects a string"):
            transform(name, 5)


def test_unknown_transform_is_a_spec_error() -> None:
    """A transform outside the closed set is a SpecError (no code runs)."""
    with pytest.raises(SpecError, match="unknown transform 'eval'"):
        transform("eval", "1+1")


def test_error_samples_are_short_and_mask_secrets() -> None:
    """A value in an error message is cut short and registered secrets are masked."""
    with registry.isolated():
        registry.add("sk-live-SECRET123")
        with pytest.raises(ValidationError) as info:
            transform("int", "sk-live-SECRET123" + "x" * 200)
    assert "SECRET123" not in str(info.value)
    assert len(str(info.value)) < 150


@SETTINGS
@given(st.integers(min_value=-(10**40), max_value=10**40))
def test_int_round_trips_through_str(number: int) -> None:
    """Any integer written by str is read back by int unchanged."""
    assert transform("int", transform("str", number)) == number


@SETTINGS
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_round_trips_through_str(number: float) -> None:
    """Any finite float written by str is read back by float unchanged."""
    assert transform("float", transform("str", number)) == number


@SETTINGS
@given(st.integers(min_value=-62_135_596_800_000, max_value=253_402_300_799_999))
def test_epoch_ms_round_trips(millis: int) -> None:
    """Any millisecond timestamp in the datetime range survives inbound then outbound."""
    moment = transform("epoch_ms", millis)
    assert moment.tzinfo is UTC
    assert transform("epoch_ms", moment, direction="outbound") == millis


@SETTINGS
@given(st.integers(min_value=-62_135_596_800, max_value=253_402_300_798), st.integers(0, 999))
def test_epoch_s_round_trips_to_the_millisecond(seconds: int, millis: int) -> None:
    """Second timestamps with a millisecond fraction survive inbound then outbound."""
    value = Decimal(seconds) + Decimal(millis) / 1000
    moment = transform("epoch_s", str(value))
    back = transform("epoch_s", moment, direction="outbound")
    assert Decimal(repr(back)) == value if isinstance(back, float) else back == value


@SETTINGS
@given(st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=-(10**9), max_value=10**9))
def test_decimal_round_trips_through_outbound_text(number: Decimal) -> None:
    """A decimal written outbound is read back inbound to the same value."""
    assert transform("decimal", transform("decimal", number, direction="outbound")) == number
