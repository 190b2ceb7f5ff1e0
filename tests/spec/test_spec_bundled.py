"""The bundled specs load, and say what REQ-001 and the INT template say."""

from __future__ import annotations

from spec_helpers import REPO, SPECS

from tether.spec import load
from tether.spec._normalize import normalize_spec
from tether.spec._yaml import parse

TEMPLATE_SECTIONS = (
    "id",
    "type",
    "name",
    "status",
    "related",
    "overview",
    "integration_type",
    "service",
    "authentication",
    "timeouts",
    "rate_limits",
    "throttling",
    "retry",
    "circuit_breaker",
    "endpoints",
    "inbound",
    "outbound",
    "error_mapping",
    "fallback_behavior",
    "monitoring",
    "costs",
    "security",
    "testing",
    "dependencies",
    "versioning",
    "sla",
    "documentation",
    "validation_cases",
    "implementation_references",
    "uncertainties",
)


def test_dataapi_spec_loads_with_the_req001_endpoints() -> None:
    """The bundled REQ-001 spec loads and has get_data, get_data_batch and get_historical."""
    spec = load(SPECS / "dataapi.yaml", environ={})
    assert spec.endpoints["get_data"].path == "/data/{identifier}"
    assert spec.endpoints["get_data"].method == "GET"
    assert spec.endpoints["get_data_batch"].method == "POST"
    assert spec.endpoints["get_historical"].path == "/historical/{identifier}"
    assert spec.base_url == "https://api.example.com/v1"


def test_dataapi_tiers_match_req001() -> None:
    """Free is 5/min, premium 75/min with a 10-request burst, enterprise 1000/min."""
    limits = load(SPECS / "dataapi.yaml", environ={}).rate_limits
    assert limits is not None
    assert limits.tiers["free"].requests_per_minute == 5
    assert limits.tiers["premium"].requests_per_minute == 75
    assert limits.tiers["premium"].burst_size == 10
    assert limits.tiers["enterprise"].requests_per_minute == 1000


def test_dataapi_tier_is_chosen_by_environment_variable() -> None:
    """EXTERNAL_API_RATE_TIER picks the tier; premium when it is unset."""
    default = load(SPECS / "dataapi.yaml", environ={}).rate_limits
    free = load(SPECS / "dataapi.yaml", environ={"EXTERNAL_API_RATE_TIER": "free"}).rate_limits
    assert default is not None and free is not None
    assert default.tier == "premium"
    assert free.effective().requests_per_minute == 5


def test_dataapi_identifier_pattern_is_the_req001_one() -> None:
    """Every identifier parameter carries the pattern ^[A-Z0-9-]{1,20}$."""
    spec = load(SPECS / "dataapi.yaml", environ={})
    for name in ("get_data", "get_historical"):
        identifier = next(p for p in spec.endpoints[name].parameters if p.name == "identifier")
        assert identifier.pattern == "^[A-Z0-9-]{1,20}$"
        assert identifier.is_required


def test_dataapi_history_paginates_by_page() -> None:
    """get_historical pages with page/page_size and reads records from 'records'."""
    endpoint = load(SPECS / "dataapi.yaml", environ={}).endpoints["get_historical"]
    assert endpoint.pagination is not None
    assert endpoint.pagination.type == "page"
    assert endpoint.records == "records"
    interval = next(p for p in endpoint.parameters if p.name == "interval")
    assert interval.enum == ("daily", "weekly", "monthly")


def test_dataapi_development_environment_is_the_local_mock() -> None:
    """env='development' selects the loopback mock provider's URL."""
    spec = load(SPECS / "dataapi.yaml", env="development", environ={})
    assert spec.base_url == "http://127.0.0.1:8800/v1"
    assert spec.environment == "development"


def test_packaged_dataapi_spec_is_the_bundled_one() -> None:
    """src/tether/dataapi/spec.yaml is byte-for-byte specs/dataapi.yaml."""
    packaged = REPO / "src" / "tether" / "dataapi" / "spec.yaml"
    assert packaged.read_bytes() == (SPECS / "dataapi.yaml").read_bytes()


def test_filled_template_loads() -> None:
    """The hand-filled INT template loads into a Spec."""
    spec = load(SPECS / "int-template-filled.yaml", environ={})
    assert spec.id == "INT-001"
    assert spec.service.name == "data-api"
    assert set(spec.service.environments) == {"development", "staging", "production"}


def test_filled_template_has_every_template_section() -> None:
    """Every section of the INT template is written in the filled-in spec."""
    data, _, problems = parse((SPECS / "int-template-filled.yaml").read_text(), "filled")
    assert problems == []
    missing = [section for section in TEMPLATE_SECTIONS if section not in data]
    assert missing == []


def test_filled_template_uses_the_template_nesting() -> None:
    """get_data is written with the template's endpoint/request/response/performance blocks."""
    data, _, _ = parse((SPECS / "int-template-filled.yaml").read_text(), "filled")
    assert {"endpoint", "request", "response", "performance"} <= set(data["endpoints"]["get_data"])
    normal, _, problems = normalize_spec(data)
    assert problems == []
    assert normal["endpoints"]["get_data"]["path"] == "/data/{identifier}"


def test_filled_template_top_level_mappings_load_as_data_mappings() -> None:
    """The template's top-level inbound/outbound become data_mappings."""
    spec = load(SPECS / "int-template-filled.yaml", environ={})
    assert spec.data_mappings is not None
    assert spec.data_mappings.inbound[0].internal_field == "timestamp"
    assert spec.data_mappings.inbound[1].transform == ("str", "strip", "decimal")
    assert spec.data_mappings.outbound[0].external_field == "id"
