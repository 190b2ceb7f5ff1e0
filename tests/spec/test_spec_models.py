"""Section rules: auth per type, conditions, error matchers, rate tiers, pagination, mappings."""

from __future__ import annotations

import pytest
from spec_helpers import MINIMAL

from tether import errors
from tether.spec import SpecLoadError, load
from tether.spec._ops import Condition, ErrorMapping
from tether.spec._types import INTERNAL_CODES, status_matches


def test_api_key_needs_a_secret() -> None:
    """api_key authentication without config.secret is refused."""
    with pytest.raises(SpecLoadError, match=r"api_key authentication needs config.secret"):
        load(MINIMAL + "authentication: {type: api_key, config: {key_name: X-Key}}\n", environ={})


def test_keys_of_another_scheme_are_refused() -> None:
    """token_url on api_key authentication is a problem at token_url's line."""
    text = (
        MINIMAL
        + "authentication:\n  type: api_key\n  config:\n    secret: ${K}\n    token_url: https://t.example\n"
    )
    with pytest.raises(SpecLoadError) as caught:
        load(text, environ={})
    (problem,) = caught.value.problems
    assert "token_url does not apply to api_key authentication" in problem.message
    assert problem.location.line == 13


def test_oauth_is_oauth2_and_needs_client_credentials() -> None:
    """The template's 'oauth' is oauth2; client_credentials needs client_id and client_secret."""
    text = MINIMAL + (
        "authentication:\n  type: oauth\n  config:\n    token_url: https://auth.example/token\n"
        "    client_id: abc\n    client_secret: ${CLIENT_SECRET}\n    scopes: read write\n    audience: api\n"
    )
    auth = load(text, environ={}).authentication
    assert auth is not None and auth.scheme == "oauth2"
    assert auth.config.scopes == ("read", "write")
    effective = auth.effective()
    assert effective["grant_type"] == ("client_credentials", False)
    assert effective["client_id"] == ("abc", True)
    with pytest.raises(SpecLoadError, match=r"needs config\.client_secret"):
        load(text.replace("    client_secret: ${CLIENT_SECRET}\n", ""), environ={})


def test_value_template_placeholders_are_checked() -> None:
    """A value template may use {secret} or {token} only."""
    good = MINIMAL + "authentication: {type: bearer, config: {secret: '${T}', value: 'Token {secret}'}}\n"
    assert load(good, environ={}).authentication is not None
    with pytest.raises(SpecLoadError, match=r"not \{user\}"):
        load(good.replace("{secret}'}}", "{user}'}}"), environ={})


@pytest.mark.parametrize(
    ("text", "metric", "op", "threshold"),
    [
        ("error_rate > 0.05", "error_rate", ">", 0.05),
        ("error_rate >= 5%", "error_rate", ">=", 0.05),
        ("response_time > 500", "response_time", ">", 0.5),
        ("response_time_p95 > 2s", "response_time_p95", ">", 2.0),
        ("throughput < 10/s", "throughput", "<", 10.0),
        ("dlq_size != 0", "dlq_size", "!=", 0.0),
    ],
)
def test_alert_conditions_parse_into_the_closed_grammar(
    text: str, metric: str, op: str, threshold: float
) -> None:
    """Conditions parse into metric, comparison and a threshold in canonical units."""
    condition = Condition.model_validate(text)
    assert (condition.metric, condition.op) == (metric, op)
    assert condition.threshold == pytest.approx(threshold)


@pytest.mark.parametrize(
    "text", ["error_rate > 5ms", "cpu > 5", "error_rate ~ 5", "__import__('os') > 1", "response_time > 5%"]
)
def test_conditions_outside_the_grammar_are_refused(text: str) -> None:
    """Unknown metrics, operators and mismatched units are spec problems."""
    with pytest.raises(SpecLoadError, match=r"monitoring\.alerts"):
        load(MINIMAL + f"monitoring:\n  alerts:\n    - condition: {text!r}\n", environ={})


def test_condition_holds_compares_measured_values() -> None:
    """holds() compares a measurement with the threshold."""
    condition = Condition.model_validate("error_rate > 5%")
    assert condition.holds(0.06) and not condition.holds(0.05)
    assert str(Condition.model_validate("response_time > 500")) == "response_time > 500ms"


def test_error_mapping_matches_status_body_and_header() -> None:
    """Every given condition must hold; string external codes are read from the body."""
    by_code = ErrorMapping.model_validate({"external_code": "QUOTA", "internal_code": "RATE_001"})
    assert by_code.matches(403, {"error": {"code": "QUOTA"}})
    assert not by_code.matches(403, {"error": {"code": "OTHER"}})
    in_200 = ErrorMapping.model_validate(
        {
            "status": 200,
            "body": {"path": "status", "equals": "error"},
            "internal_code": "API_001",
            "action": "retry",
        }
    )
    assert in_200.matches(200, {"status": "error"})
    assert not in_200.matches(200, {"status": "ok"})
    maintenance = ErrorMapping.model_validate(
        {"status": "5xx", "header": {"name": "X-Maintenance", "present": True}, "internal_code": "API_001"}
    )
    assert maintenance.matches(503, None, {"x-maintenance": "1"})
    assert not maintenance.matches(503, None, {})
    assert not maintenance.matches(404, None, {"X-Maintenance": "1"})


def test_error_mapping_needs_a_matcher_and_a_known_code() -> None:
    """A rule without any matcher, or with an unknown internal code, is refused."""
    with pytest.raises(SpecLoadError, match="at least one of external_code, status, body or header"):
        load(MINIMAL + "error_mapping:\n  - {internal_code: API_001}\n", environ={})
    with pytest.raises(SpecLoadError, match="internal_code"):
        load(MINIMAL + "error_mapping:\n  - {status: 500, internal_code: OOPS_001}\n", environ={})


def test_internal_codes_are_tether_error_codes() -> None:
    """Every internal_code a spec may name is the error_code of a tether.errors class."""
    classes = [getattr(errors, name) for name in errors.__all__]
    codes = {c.error_code for c in classes if isinstance(c, type) and issubclass(c, errors.TetherError)}
    assert set(INTERNAL_CODES) <= codes


@pytest.mark.parametrize(
    ("pattern", "hits", "misses"),
    [("5xx", [500, 599], [499, 600]), ("500-504", [500, 504], [505]), ("429", [429], [428])],
)
def test_status_patterns(pattern: str, hits: list[int], misses: list[int]) -> None:
    """Status classes and ranges match what they say."""
    assert all(status_matches(pattern, s) for s in hits)
    assert not any(status_matches(pattern, s) for s in misses)


def test_rate_tier_overrides_top_level_windows() -> None:
    """The selected tier's windows are laid over the top-level ones."""
    text = MINIMAL + (
        "rate_limits:\n  requests_per_second: 2\n  requests_per_minute: 100\n"
        "  tiers: {premium: {requests_per_minute: 75, burst_size: 10}}\n  tier: premium\n"
    )
    limits = load(text, environ={}).rate_limits
    assert limits is not None
    effective = limits.effective()
    assert effective.windows() == {"requests_per_second": 2, "requests_per_minute": 75}
    assert effective.burst_size == 10


def test_tiers_without_a_selection_are_refused() -> None:
    """Defining tiers but selecting none (and no top-level window) is a problem."""
    with pytest.raises(SpecLoadError, match="no tier is selected"):
        load(MINIMAL + "rate_limits:\n  tiers: {free: {requests_per_minute: 5}}\n", environ={})


def test_pagination_is_chosen_by_type() -> None:
    """pagination.type selects the variant; a cursor needs cursor_path."""
    text = MINIMAL + "  list:\n    path: /list\n    pagination: {type: cursor, cursor_path: meta.next}\n"
    pagination = load(text, environ={}).endpoints["list"].pagination
    assert pagination is not None and pagination.type == "cursor" and pagination.max_pages == 100
    with pytest.raises(SpecLoadError, match="cursor_path"):
        load(text.replace(", cursor_path: meta.next", ""), environ={})
    with pytest.raises(SpecLoadError, match="did you mean 'cursor'"):
        load(text.replace("type: cursor", "type: cursr"), environ={})


def test_transforms_come_from_a_closed_set() -> None:
    """A transform outside the closed list is refused; a list applies in order."""
    text = MINIMAL + "inbound:\n  - {external_field: p, internal_field: price, transform: [strip, float]}\n"
    mappings = load(text, environ={}).data_mappings
    assert mappings is not None and mappings.inbound[0].transform == ("strip", "float")
    with pytest.raises(SpecLoadError, match="transform"):
        load(text.replace("float", "eval"), environ={})


def test_parameter_rules() -> None:
    """Optional path parameters, min above max and a default outside enum are refused."""
    base = (
        "service: {name: x, base_url: 'https://x.example'}\n"
        "endpoints:\n  a:\n    path: /a/{id}\n    parameters:\n"
    )
    path_param = "      - {name: id, in: path}\n"
    cases = {
        "      - {name: id, in: path, required: false}\n": "cannot be optional",
        path_param + "      - {name: n, type: integer, minimum: 5, maximum: 1}\n": "above maximum",
        path_param + "      - {name: i, enum: [a, b], default: c}\n": "not one of enum",
        path_param + "      - {name: s, type: boolean, pattern: x}\n": "pattern applies to string",
        path_param + "      - {name: id, in: path}\n": "declared twice",
    }
    for params, message in cases.items():
        with pytest.raises(SpecLoadError, match=message):
            load(base + params, environ={})


def test_fallback_default_needs_a_response() -> None:
    """The default fallback strategy needs default_response."""
    with pytest.raises(SpecLoadError, match="default_response"):
        load(MINIMAL + "fallback_behavior: {strategy: [cache, default]}\n", environ={})


def test_endpoint_rights_need_a_profile() -> None:
    """An endpoint that requires rights needs the spec's rights profile."""
    text = MINIMAL.replace("    path: /items/{id}\n", "    path: /items/{id}\n    rights: [export]\n")
    with pytest.raises(SpecLoadError, match="no rights profile"):
        load(text, environ={})
    assert load(text + "rights: {profile: p, granted: [read]}\n", environ={}).endpoints[
        "get_item"
    ].rights == ("export",)


def test_versioning_current_must_be_supported() -> None:
    """versioning.current must be among supported."""
    with pytest.raises(SpecLoadError, match="not in supported"):
        load(MINIMAL + "versioning: {strategy: header, current: v3, supported: [v1, v2]}\n", environ={})


def test_models_are_frozen() -> None:
    """A loaded spec cannot be changed in place."""
    spec = load(MINIMAL, environ={})
    with pytest.raises(ValueError, match="frozen"):
        spec.service.name = "other"  # type: ignore[misc]
