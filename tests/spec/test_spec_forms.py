"""An endpoint written the INT template's way and written flat load to the same model."""

from __future__ import annotations

import pytest

from tether.spec import Spec, SpecLoadError, load

HEAD = """\
service: {name: example, base_url: "https://api.example.com/v1"}
components:
  schemas:
    Item: {type: object, required: [id]}
endpoints:
"""

NESTED = (
    HEAD
    + """\
  get_item:
    endpoint:
      path: /items/{id}
      method: get
      description: One item.
    request:
      headers:
        - {name: X-Trace, required: false}
      parameters:
        - {name: id, in: path, type: string, pattern: "^[a-z]+$"}
        - {name: fields, in: query, type: string}
      body:
        content_type: json
        schema: {$ref: '#/components/schemas/Item'}
    response:
      success: {status: 200, schema: {$ref: '#/components/schemas/Item'}}
    performance: {p95: < 500}
"""
)

FLAT = (
    HEAD
    + """\
  get_item:
    path: /items/{id}
    method: GET
    description: One item.
    headers:
      - {name: X-Trace, required: false}
    parameters:
      - {name: id, in: path, type: string, pattern: "^[a-z]+$"}
      - {name: fields, in: query, type: string}
    body:
      content_type: application/json
      schema: {type: object, required: [id]}
    response:
      success: {status: [200], schema: {type: object, required: [id]}}
    performance: {p95: 500ms}
"""
)


def test_nested_and_flat_endpoints_are_equal() -> None:
    """The template's nested blocks and tether's flat form give equal Endpoint models."""
    nested = load(NESTED, environ={}).endpoints["get_item"]
    flat = load(FLAT, environ={}).endpoints["get_item"]
    assert nested == flat
    assert nested.method == "GET"
    assert nested.performance is not None and nested.performance.p95 == 0.5


def test_model_validate_accepts_the_nested_form_too() -> None:
    """Spec.model_validate (no loader) normalises the nested form as well."""
    spec = Spec.model_validate(
        {
            "service": {"name": "x", "base_url": "https://x.example"},
            "endpoints": {"a": {"endpoint": {"path": "/a", "method": "POST"}, "request": {"parameters": []}}},
        }
    )
    assert spec.endpoints["a"].path == "/a"
    assert spec.endpoints["a"].method == "POST"


def test_key_given_in_both_forms_is_an_error_with_its_line() -> None:
    """path inside endpoint: and beside it is a problem at the nested key's line."""
    text = HEAD + "  get_item:\n    path: /a\n    endpoint:\n      path: /b\n"
    with pytest.raises(SpecLoadError) as caught:
        load(text, environ={})
    (problem,) = caught.value.problems
    assert "path is given twice" in problem.message
    assert problem.location.line == 9


def test_error_inside_a_nested_block_points_into_the_block() -> None:
    """A bad method inside endpoint: is reported at the line where it is written."""
    text = HEAD + "  get_item:\n    endpoint:\n      path: /a\n      method: FETCH\n"
    with pytest.raises(SpecLoadError) as caught:
        load(text, environ={})
    (problem,) = caught.value.problems
    assert problem.location.line == 9
    assert "method" in problem.message


def test_error_handling_block_and_top_level_error_mapping_are_the_same() -> None:
    """error_handling: {error_mapping, fallback_behavior} loads like the top-level keys."""
    rules = "  - {status: 404, internal_code: NOTFOUND_001}\n"
    nested = load(
        HEAD
        + "  a: {path: /a}\nerror_handling:\n  error_mapping:\n"
        + "  "
        + rules
        + "  fallback_behavior: {strategy: cache}\n",
        environ={},
    )
    flat = load(
        HEAD + "  a: {path: /a}\nerror_mapping:\n" + rules + "fallback_behavior: {strategy: cache}\n",
        environ={},
    )
    assert nested.error_mapping == flat.error_mapping
    assert nested.fallback_behavior == flat.fallback_behavior
