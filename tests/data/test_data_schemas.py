"""Request bodies and responses validated against JSON Schema, reported by JSON path."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from tether._redact import registry
from tether.errors import Rejected, RequestValidationError, SpecError, ValidationError
from tether.spec import load
from tether.spec._endpoint import Endpoint
from tether.validation import compile_schema, first_violation, json_path, validate_body, validate_response

ORDER = {
    "type": "object",
    "required": ["items"],
    "properties": {
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["sku", "price"],
                "properties": {"sku": {"type": "string"}, "price": {"type": "number", "minimum": 0}},
            },
        },
        "ship_on": {"type": "string", "format": "date"},
    },
}


def body_endpoint(schema: dict[str, Any] | None = ORDER, **body: Any) -> Endpoint:
    return Endpoint.model_validate({"path": "/orders", "method": "POST", "body": {"schema": schema, **body}})


def test_valid_body_passes() -> None:
    """A body that matches its schema is accepted."""
    validate_body(body_endpoint(), {"items": [{"sku": "a", "price": 1}], "ship_on": date(2024, 1, 2)})


def test_body_violation_names_the_json_path_and_rule() -> None:
    """The first violation is reported with its JSON path ($.items[2].price) and rule."""
    body = {"items": [{"sku": "a", "price": 1}, {"sku": "b", "price": 2}, {"sku": "c", "price": -1}]}
    with pytest.raises(RequestValidationError) as info:
        validate_body(body_endpoint(), body, endpoint_name="create_order")
    error = info.value
    assert isinstance(error, Rejected)
    assert error.parameter == "body" and error.endpoint == "create_order"
    assert error.details == [{"parameter": "body", "path": "$.items[2].price", "rule": "minimum"}]
    assert "$.items[2].price" in str(error) and "(minimum)" in str(error)


def test_first_violation_is_first_in_document_order() -> None:
    """With several violations, the earliest in the document is named and the rest counted."""
    body = {"items": [{"sku": 1, "price": 1}, {"sku": "b", "price": "x"}], "ship_on": "soon"}
    violation = first_violation(ORDER, body)
    assert violation is not None
    assert (violation.path, violation.rule, violation.count) == ("$.items[0].sku", "type", 3)
    assert "(and 2 more)" in violation.describe()


def test_missing_required_property_points_at_its_object() -> None:
    """A missing required property is reported at the object that lacks it."""
    violation = first_violation(ORDER, {"items": [{"sku": "a"}]})
    assert violation is not None
    assert (violation.path, violation.rule) == ("$.items[0]", "required")
    assert "'price' is a required property" in violation.message


def test_required_body_must_be_given() -> None:
    """A required body that is missing is rejected; an optional one may be left out."""
    with pytest.raises(RequestValidationError, match="request body is required"):
        validate_body(body_endpoint(), None)
    validate_body(body_endpoint(required=False), None)


def test_form_body_must_be_flat_and_match_its_schema() -> None:
    """A form body is an object of scalar fields, validated against its schema."""
    ep = body_endpoint({"type": "object", "properties": {"qty": {"type": "integer"}}}, content_type="form")
    validate_body(ep, {"qty": 2, "tags": ["a", "b"]})
    with pytest.raises(RequestValidationError, match=r"\$\.qty"):
        validate_body(ep, {"qty": "two"})
    with pytest.raises(RequestValidationError, match="form field"):
        validate_body(ep, {"qty": {"n": 2}})
    with pytest.raises(RequestValidationError, match="object of fields"):
        validate_body(ep, [1, 2])


def test_body_without_schema_is_not_checked() -> None:
    """A body spec without a schema only checks presence."""
    validate_body(body_endpoint(None), {"anything": True})


def test_response_violation_is_a_validation_error_not_a_rejection() -> None:
    """A response that breaks its schema is a ValidationError (it came back) naming path and rule."""
    schema = {"type": "object", "properties": {"data": {"type": "array", "items": {"type": "number"}}}}
    with pytest.raises(ValidationError) as info:
        validate_response(schema, {"data": [1, 2, "3"]}, endpoint="quotes", service="fmp")
    error = info.value
    assert not isinstance(error, Rejected)
    assert error.details is not None and error.details[0]["path"] == "$.data[2]"
    assert error.details[0]["rule"] == "type"
    assert str(error).startswith("response body does not match its schema at $.data[2]: '3' is not of type")
    validate_response(schema, {"data": [1.5]})
    validate_response(None, "anything")


@pytest.mark.parametrize(
    ("fmt", "good", "bad"),
    [
        ("date", "2024-02-29", "2023-02-29"),
        ("date-time", "2024-01-02T03:04:05.123Z", "2024-01-02 25:00"),
        ("date-time", "2024-01-02T03:04:05+05:30", "2024-01-02T03:04:05"),
        ("time", "10:20:30Z", "10:20"),
        ("email", "a@example.com", "not-an-email"),
        ("ipv4", "10.0.0.1", "10.0.0.256"),
        ("uuid", "12345678-1234-5678-1234-567812345678", "1234"),
        ("uri", "https://example.com/a?b=1", "no scheme here"),
        ("hostname", "api.example.com", "-bad-.example"),
    ],
)
def test_formats_are_checked(fmt: str, good: str, bad: str) -> None:
    """Format checking is on, date-time, time, uri and hostname included."""
    schema = {"type": "string", "format": fmt}
    validate_response(schema, good)
    with pytest.raises(ValidationError, match=r"\(format\)"):
        validate_response(schema, bad)


def test_any_of_reports_the_most_relevant_branch() -> None:
    """For anyOf, the cause inside the best-matching branch is named."""
    schema = {
        "type": "object",
        "properties": {
            "v": {"anyOf": [{"type": "object", "properties": {"n": {"type": "integer"}}}, {"type": "null"}]}
        },
    }
    violation = first_violation(schema, {"v": {"n": "x"}})
    assert violation is not None and (violation.path, violation.rule) == ("$.v.n", "type")


def test_validators_are_compiled_once_per_schema() -> None:
    """The same schema object gets the same compiled validator back."""
    schema = {"type": "integer"}
    assert compile_schema(schema) is compile_schema(schema)
    assert compile_schema(dict(schema)) is not compile_schema(schema)


def test_schema_declaring_another_draft_uses_it() -> None:
    """A schema's $schema picks its draft (draft 7 here: items as a list is a tuple)."""
    schema = {"$schema": "http://json-schema.org/draft-07/schema#", "items": [{"type": "string"}]}
    assert type(compile_schema(schema)).__name__ == "Draft7Validator"
    with pytest.raises(ValidationError, match=r"\$\[0\]"):
        validate_response(schema, [1])


def test_invalid_schema_is_a_spec_error() -> None:
    """A schema that is not valid JSON Schema is a SpecError."""
    with pytest.raises(SpecError, match="not a valid JSON Schema"):
        validate_response({"type": "nonsense"}, 1)


def test_loader_inlines_component_refs_for_validation() -> None:
    """A body schema written as a $ref to components is validated once the spec is loaded."""
    spec = load(
        """
service: {name: shop, base_url: "https://api.example.com"}
endpoints:
  create:
    path: /orders
    method: POST
    body: {schema: {$ref: "#/components/schemas/Order"}}
components:
  schemas:
    Order:
      type: object
      properties: {qty: {type: integer, minimum: 1}}
"""
    )
    with pytest.raises(RequestValidationError, match=r"\$\.qty: 0 is less than the minimum of 1"):
        validate_body(spec.endpoints["create"], {"qty": 0})


def test_samples_in_messages_are_short_and_masked() -> None:
    """A long or secret value is cut short and masked in the error message."""
    with registry.isolated():
        registry.add("SECRETVALUE-123456")
        with pytest.raises(ValidationError) as info:
            validate_response({"type": "integer"}, "SECRETVALUE-123456" + "y" * 500)
    assert "SECRETVALUE-123456" not in str(info.value)
    assert len(str(info.value)) < 200


@pytest.mark.parametrize(
    ("parts", "expected"),
    [((), "$"), (("items", 2, "price"), "$.items[2].price"), (("odd key", "it's"), "$['odd key']['it\\'s']")],
)
def test_json_path_rendering(parts: tuple[str | int, ...], expected: str) -> None:
    """Locations are written as JSONPath; keys that are not identifiers are bracketed."""
    assert json_path(parts) == expected
