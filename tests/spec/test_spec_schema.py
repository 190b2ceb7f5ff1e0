"""The JSON Schema is generated from the models and validates specs as they are written."""

from __future__ import annotations

import jsonschema
import pytest
from spec_helpers import SPECS

from tether.spec import json_schema
from tether.spec._yaml import parse


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    """A validator for the generated schema."""
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _read(text: str) -> object:
    data, _, problems = parse(text, "x")
    assert problems == []
    return data


@pytest.mark.parametrize("name", ["dataapi.yaml", "int-template-filled.yaml"])
def test_bundled_specs_validate(validator: jsonschema.Draft202012Validator, name: str) -> None:
    """Both bundled specs, as written, are valid under the schema."""
    errors = [e.message for e in validator.iter_errors(_read((SPECS / name).read_text()))]
    assert errors == []


def test_unknown_keys_are_invalid(validator: jsonschema.Draft202012Validator) -> None:
    """additionalProperties is false: a misspelt section fails."""
    data = _read("service: {name: x, base_url: 'https://x.example'}\nretyr: {}\n")
    assert not validator.is_valid(data)


def test_both_endpoint_forms_validate(validator: jsonschema.Draft202012Validator) -> None:
    """The nested template form and the flat form are both valid; an endpoint without a path is not."""
    head = "service: {name: x, base_url: 'https://x.example'}\nendpoints:\n"
    assert validator.is_valid(
        _read(head + "  a: {endpoint: {path: /a, method: GET}, request: {parameters: []}}\n")
    )
    assert validator.is_valid(_read(head + "  a: {path: /a, method: GET}\n"))
    assert not validator.is_valid(_read(head + "  a: {method: GET}\n"))


def test_duration_defaults_carry_units() -> None:
    """Defaults of duration fields are written with units, never as ambiguous bare numbers."""
    defs = json_schema()["$defs"]
    assert defs["Timeouts"]["properties"]["connect"]["default"] == "5s"
    assert defs["CircuitBreaker"]["properties"]["timeout"]["default"] == "30s"
    assert defs["Cache"]["properties"]["max_bytes"]["default"] == "512MB"
