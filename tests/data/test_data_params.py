"""Request parameter validation: defaults, each rule, all problems in one error, did-you-mean."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest

from tether._redact import MASK
from tether.errors import Rejected, RequestValidationError
from tether.spec._endpoint import Endpoint
from tether.validation import PreparedParams, validate_params


def endpoint(*parameters: dict[str, Any], path: str = "/series", **extra: Any) -> Endpoint:
    return Endpoint.model_validate({"path": path, "parameters": list(parameters), **extra})


def problems(ep: Endpoint, params: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(RequestValidationError) as info:
        validate_params(ep, params)
    assert info.value.details is not None
    return info.value.details


def rules_broken(ep: Endpoint, params: dict[str, Any]) -> list[tuple[str, str]]:
    return [(d["parameter"], d["rule"]) for d in problems(ep, params)]


def test_values_are_split_by_location_and_written_as_text() -> None:
    """Path, query, header and body parameters land in their own places; URL values are text."""
    ep = endpoint(
        {"name": "id", "in": "path"},
        {"name": "active", "type": "boolean"},
        {"name": "since", "type": "date"},
        {"name": "at", "type": "datetime", "in": "header"},
        {"name": "ids", "type": "array"},
        {"name": "count", "type": "integer", "in": "body"},
        {"name": "when", "type": "date", "in": "body"},
        path="/series/{id}",
    )
    out = validate_params(
        ep,
        {
            "id": "GDP",
            "active": False,
            "since": date(2024, 1, 2),
            "at": datetime(2024, 1, 2, 3, 4, 5),
            "ids": ["a", 1, True],
            "count": 3,
            "when": "2024-05-06",
        },
    )
    assert out == PreparedParams(
        path={"id": "GDP"},
        query={"active": "false", "since": "2024-01-02", "ids": ["a", "1", "true"]},
        headers={"at": "2024-01-02T03:04:05"},
        body={"count": 3, "when": "2024-05-06"},
    )


def test_render_path_percent_encodes_values() -> None:
    """Path values are percent-encoded into their placeholders (a slash cannot change the path)."""
    ep = endpoint({"name": "id", "in": "path"}, path="/items/{id}/history")
    out = validate_params(ep, {"id": "a/b c"})
    assert out.render_path(ep.path) == "/items/a%2Fb%20c/history"


def test_array_in_a_path_or_header_is_comma_joined() -> None:
    """An array in a path or header is written comma-separated."""
    ep = endpoint({"name": "ids", "in": "path", "type": "array"}, path="/q/{ids}")
    assert validate_params(ep, {"ids": ["a", "b"]}).path == {"ids": "a,b"}


def test_defaults_fill_missing_and_none_values() -> None:
    """A missing or None value takes the parameter's default."""
    ep = endpoint({"name": "limit", "type": "integer", "default": 100}, {"name": "units", "default": "lin"})
    assert validate_params(ep, {"limit": None}).query == {"limit": "100", "units": "lin"}


def test_optional_parameters_without_values_are_left_out() -> None:
    """An optional parameter with no value and no default is not sent."""
    ep = endpoint({"name": "q"})
    assert validate_params(ep, {}).query == {}


def test_required_parameters_must_be_given() -> None:
    """A required query parameter and a path parameter without values are both reported."""
    ep = endpoint({"name": "id", "in": "path"}, {"name": "q", "required": True}, path="/x/{id}")
    assert rules_broken(ep, {}) == [("id", "required"), ("q", "required")]


@pytest.mark.parametrize(
    ("kind", "good", "expected", "bad"),
    [
        ("integer", "42", "42", "4.2"),
        ("integer", 7.0, "7", True),
        ("number", "1.5", "1.5", "one"),
        ("number", Decimal("2.25"), "2.25", float("nan")),
        ("boolean", "TRUE", "true", "maybe"),
        ("string", 12, "12", ["x"]),
        ("date", "2024-02-29", "2024-02-29", "2023-02-29"),
        ("datetime", "2024-01-02T03:04:05Z", "2024-01-02T03:04:05+00:00", "tomorrow"),
        ("array", ("a", "b"), ["a", "b"], "a,b"),
    ],
)
def test_types_are_checked_and_coerced(kind: str, good: Any, expected: Any, bad: Any) -> None:
    """Each type accepts its values (and their text from a command line) and refuses others."""
    ep = endpoint({"name": "p", "type": kind})
    assert validate_params(ep, {"p": good}).query == {"p": expected}
    assert rules_broken(ep, {"p": bad}) == [("p", "type")]


def test_object_parameters_go_into_json_bodies() -> None:
    """An object parameter in the body keeps its structure."""
    ep = endpoint({"name": "filter", "type": "object", "in": "body"})
    assert validate_params(ep, {"filter": {"a": [1]}}).body == {"filter": {"a": [1]}}
    assert rules_broken(ep, {"filter": "a=1"}) == [("filter", "type")]


def test_enum_accepts_listed_values_only() -> None:
    """enum accepts the listed values (numbers match their text) and rejects others, listing them."""
    ep = endpoint(
        {"name": "units", "enum": ["lin", "chg"]}, {"name": "freq", "type": "integer", "enum": [1, 7]}
    )
    assert validate_params(ep, {"units": "chg", "freq": "7"}).query == {"units": "chg", "freq": "7"}
    details = problems(ep, {"units": "pct", "freq": 2})
    assert [(d["parameter"], d["rule"]) for d in details] == [("units", "enum"), ("freq", "enum")]
    assert "lin, chg" in details[0]["message"]


def test_enum_does_not_confuse_booleans_and_numbers() -> None:
    """True is not the enum value 1."""
    ep = endpoint({"name": "level", "type": "number", "enum": [1, 2]})
    assert rules_broken(ep, {"level": True}) == [("level", "type")]
    assert validate_params(ep, {"level": 1.0}).query == {"level": "1.0"}


def test_pattern_must_match_in_full() -> None:
    """pattern is matched against the whole value."""
    ep = endpoint({"name": "id", "pattern": "[A-Z]{3}"})
    assert validate_params(ep, {"id": "GDP"}).query == {"id": "GDP"}
    details = problems(ep, {"id": "GDPX"})
    assert details[0]["rule"] == "pattern" and "[A-Z]{3}" in details[0]["message"]


def test_pattern_applies_to_the_iso_text_of_dates() -> None:
    """A date's pattern is checked against its ISO 8601 text."""
    ep = endpoint({"name": "d", "type": "date", "pattern": "2024-.*"})
    assert validate_params(ep, {"d": date(2024, 5, 1)}).query == {"d": "2024-05-01"}
    assert rules_broken(ep, {"d": date(2023, 5, 1)}) == [("d", "pattern")]


def test_minimum_and_maximum_bound_numbers() -> None:
    """minimum and maximum are inclusive bounds."""
    ep = endpoint({"name": "limit", "type": "integer", "minimum": 1, "maximum": 1000})
    assert validate_params(ep, {"limit": 1000}).query == {"limit": "1000"}
    assert rules_broken(ep, {"limit": 0}) == [("limit", "minimum")]
    details = problems(ep, {"limit": 1001})
    assert details[0]["rule"] == "maximum" and "1000" in details[0]["message"]


def test_min_and_max_length_bound_strings_and_arrays() -> None:
    """min_length and max_length count characters of strings and items of arrays."""
    ep = endpoint(
        {"name": "q", "min_length": 2, "max_length": 3},
        {"name": "ids", "type": "array", "max_length": 2},
    )
    assert validate_params(ep, {"q": "abc", "ids": [1, 2]}).query == {"q": "abc", "ids": ["1", "2"]}
    assert rules_broken(ep, {"q": "a"}) == [("q", "min_length")]
    assert rules_broken(ep, {"q": "abcd", "ids": [1, 2, 3]}) == [("q", "max_length"), ("ids", "max_length")]


def test_unknown_parameter_suggests_the_closest_name() -> None:
    """An undeclared name is rejected with a did-you-mean."""
    ep = endpoint({"name": "series_id"}, {"name": "frequency"})
    details = problems(ep, {"seires_id": "GDP"})
    assert details == [
        {
            "parameter": "seires_id",
            "rule": "unknown",
            "message": "unknown parameter; did you mean 'series_id'?",
        }
    ]
    assert "did you mean 'frequency'" in problems(ep, {"Frequency": "m"})[0]["message"]
    assert "parameters: frequency, series_id" in problems(ep, {"zzz": 1})[0]["message"]


def test_all_problems_are_collected_in_one_error() -> None:
    """Every problem is listed in one RequestValidationError; parameter names the first."""
    ep = endpoint(
        {"name": "id", "in": "path", "pattern": "^[A-Z]+$"},
        {"name": "limit", "type": "integer", "maximum": 10},
        {"name": "units", "enum": ["lin"]},
        path="/s/{id}",
    )
    with pytest.raises(RequestValidationError) as info:
        validate_params(ep, {"id": "gdp", "limit": "x", "units": "pct", "extra": 1}, endpoint_name="obs")
    error = info.value
    assert isinstance(error, Rejected)
    assert error.parameter == "id" and error.endpoint == "obs"
    message = str(error)
    assert "4 problems" in message
    for piece in ("id:", "(pattern)", "limit:", "(type)", "units:", "(enum)", "extra:", "(unknown)"):
        assert piece in message


def test_fixed_and_caller_headers_are_prepared() -> None:
    """Fixed header values are sent; declared caller headers are validated and accepted by name."""
    ep = endpoint(
        headers=[
            {"name": "Accept-Version", "value": "v2"},
            {"name": "X-Request-Source", "required": True, "pattern": "^[a-z]+$"},
        ]
    )
    out = validate_params(ep, {"x-request-source": "batch"})
    assert out.headers == {"Accept-Version": "v2", "X-Request-Source": "batch"}
    assert rules_broken(ep, {}) == [("X-Request-Source", "required")]
    assert rules_broken(ep, {"X-Request-Source": "BATCH"}) == [("X-Request-Source", "pattern")]


def test_credential_values_are_masked_in_errors() -> None:
    """A bad value of a credential-named parameter never appears in the error."""
    ep = endpoint({"name": "api_key", "pattern": "^[a-f0-9]{32}$"})
    with pytest.raises(RequestValidationError) as info:
        validate_params(ep, {"api_key": "not-the-right-shape-secret"})
    assert "not-the-right-shape-secret" not in str(info.value)
    assert MASK in str(info.value)
