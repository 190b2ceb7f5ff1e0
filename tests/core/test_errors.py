"""The error tree: codes, fields, problem+json, ErrorResponse conversion, masking."""

from __future__ import annotations

import httpx2
import pytest

from tether import errors
from tether._redact import registry


def _response(status: int, *, json: object = None, headers: dict[str, str] | None = None) -> httpx2.Response:
    request = httpx2.Request("GET", "https://api.example.com/v1/data/X?api_key=k3y-v4lue")
    return httpx2.Response(status, json=json, headers=headers, request=request)


@pytest.mark.parametrize(
    ("status", "cls", "code"),
    [
        (404, errors.NotFoundError, "NOTFOUND_001"),
        (401, errors.AuthenticationError, "AUTH_001"),
        (403, errors.AuthenticationError, "AUTH_001"),
        (429, errors.RateLimitExceeded, "RATE_001"),
        (400, errors.ValidationError, "VALID_001"),
        (422, errors.ValidationError, "VALID_001"),
        (500, errors.APIError, "API_001"),
        (503, errors.APIError, "API_001"),
        (409, errors.APIError, "API_001"),
    ],
)
def test_status_maps_to_typed_error(status: int, cls: type[errors.TetherError], code: str) -> None:
    """Each HTTP error status becomes the error class and code of the seed's catalog."""
    err = errors.error_for_status(_response(status), service="svc", endpoint="get_data", request_id="r1")
    assert type(err) is cls
    assert err.error_code == code
    assert err.status_code == status
    assert err.service == "svc" and err.endpoint == "get_data" and err.request_id == "r1"
    assert err.response is not None


def test_problem_json_fills_title_detail_type() -> None:
    """An RFC 9457 problem body fills the error's title, detail and type."""
    body = {
        "type": "https://example.com/probs/out-of-credit",
        "title": "Out of credit",
        "detail": "Balance 30",
    }
    response = _response(403, json=body, headers={"content-type": "application/problem+json"})
    err = errors.error_for_status(response)
    assert err.title == "Out of credit"
    assert err.detail == "Balance 30"
    assert err.type == "https://example.com/probs/out-of-credit"
    assert "Out of credit" in str(err)


def test_plain_json_body_is_not_taken_as_problem() -> None:
    """A non-problem JSON body leaves title and detail empty."""
    err = errors.error_for_status(_response(500, json={"title": "x"}))
    assert err.title is None


def test_error_message_masks_credential_query_parameters() -> None:
    """The URL in an error message has api_key masked."""
    err = errors.error_for_status(_response(500))
    assert "k3y-v4lue" not in str(err)
    assert "k3y-v4lue" not in repr(err)
    assert "api_key=***" in str(err)


def test_error_message_masks_registered_secret_values() -> None:
    """A registered secret value is masked wherever it appears in a message or detail."""
    with registry.isolated():
        registry.add("sup3r-s3cret-t0ken")
        err = errors.APIError("upstream said sup3r-s3cret-t0ken is bad", detail="sup3r-s3cret-t0ken")
        assert "sup3r-s3cret-t0ken" not in str(err)
        assert "sup3r-s3cret-t0ken" not in repr(err)
        assert "***" in str(err)


def test_to_error_response_has_seed_shape() -> None:
    """to_error_response gives the REQ-001 ErrorResponse fields, retry_after rounded up."""
    err = errors.RateLimitExceeded("slow down", request_id="abc", retry_after=2.2)
    out = err.to_error_response()
    assert set(out) == {
        "error_code",
        "error_message",
        "error_type",
        "timestamp",
        "request_id",
        "retry_after",
        "details",
    }
    assert out["error_code"] == "RATE_001"
    assert out["error_type"] == "RateLimitExceeded"
    assert out["retry_after"] == 3
    assert out["request_id"] == "abc"


def test_non_seed_errors_report_a_seed_error_type() -> None:
    """Errors outside the seed's catalog still report one of its error_type values."""
    assert errors.BulkheadFull("full").to_error_response()["error_type"] == "APIError"
    assert errors.SpecError("bad").to_error_response()["error_type"] == "ValidationError"


def test_local_rejections_share_a_base_class() -> None:
    """Rejections decided before the network share the Rejected base; remote ones do not."""
    for cls in (
        errors.CircuitOpenError,
        errors.BulkheadFull,
        errors.BudgetExceeded,
        errors.RightsViolationError,
        errors.RateLimitRejected,
        errors.RequestValidationError,
        errors.BlockedDestinationError,
    ):
        assert issubclass(cls, errors.Rejected), cls
    assert issubclass(errors.RateLimitRejected, errors.RateLimitExceeded)
    assert issubclass(errors.RequestValidationError, errors.ValidationError)
    for cls in (errors.APIError, errors.ConnectionError, errors.TimeoutError, errors.RateLimitExceeded):
        assert not issubclass(cls, errors.Rejected), cls


def test_spec_error_shows_location() -> None:
    """A SpecError names file:line:column before its message."""
    err = errors.SpecError("unknown key 'retyr'", location="spec.yaml:3:1")
    assert str(err).startswith("spec.yaml:3:1: unknown key")


def test_every_error_has_a_code() -> None:
    """Every public error class has a CATEGORY_NNN code."""
    import re

    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type) and issubclass(obj, errors.TetherError):
            assert re.fullmatch(r"[A-Z]+_\d{3}", obj.error_code), name
