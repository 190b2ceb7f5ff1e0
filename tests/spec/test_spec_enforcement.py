"""Keys tether accepts but does not act on yet are reported, never silently dropped."""

from __future__ import annotations

from spec_helpers import MINIMAL, SPECS

from tether.spec import INFORMATIONAL, NOT_ENFORCED, Spec, load, not_enforced
from tether.spec._enforcement import classify
from tether.spec._introspect import iter_fields


def _doc_paths() -> set[str]:
    return {doc.path.replace("[]", ".*").replace("<name>", "*") for doc in iter_fields(Spec)}


def test_every_registry_entry_names_a_real_key() -> None:
    """Each NOT_ENFORCED and INFORMATIONAL entry is a key path of the models."""
    paths = _doc_paths()
    unknown = sorted(entry for entry in NOT_ENFORCED | INFORMATIONAL if entry not in paths)
    assert unknown == []


def test_every_model_key_is_classified() -> None:
    """Every leaf key is enforced, informational or registered as not enforced (none forgotten)."""
    enforced = sorted(path for path in _doc_paths() if classify(path) == "enforced")
    assert enforced == [
        "components",
        "components.headers",
        "components.headers.*.description",
        "components.headers.*.name",
        "components.headers.*.pattern",
        "components.headers.*.required",
        "components.headers.*.value",
        "components.parameters",
        "components.parameters.*.default",
        "components.parameters.*.description",
        "components.parameters.*.enum",
        "components.parameters.*.in",
        "components.parameters.*.max_length",
        "components.parameters.*.maximum",
        "components.parameters.*.min_length",
        "components.parameters.*.minimum",
        "components.parameters.*.name",
        "components.parameters.*.pattern",
        "components.parameters.*.required",
        "components.parameters.*.type",
        "components.schemas",
        "endpoints",
        "security",
        "service",
        "service.base_url",
        "service.default_environment",
        "service.environments",
    ]


def test_present_keys_are_reported_at_their_registry_depth() -> None:
    """A spec with retry and an endpoint is told that retry and the endpoint's keys are not enforced."""
    spec = load(MINIMAL + "retry: {max_attempts: 3}\n", environ={})
    reported = not_enforced(spec)
    assert "retry" in reported
    assert "retry.max_attempts" not in reported
    assert "endpoints.get_item.path" in reported
    assert "endpoints.get_item.parameters" in reported


def test_absent_and_informational_keys_are_not_reported() -> None:
    """Sections the spec does not write, and descriptive keys, are not warned about."""
    spec = load("id: INT-9\nname: n\nservice: {name: x, base_url: 'https://x.example'}\n", environ={})
    assert not_enforced(spec) == ["service.name"]


def test_keys_are_reported_in_spec_order() -> None:
    """Warnings follow the order the keys are written in."""
    spec = load(MINIMAL + "cache: {ttl: 5s}\nretry: {}\n", environ={})
    reported = not_enforced(spec)
    assert reported.index("cache") < reported.index("retry")


def test_bundled_spec_reports_its_policies() -> None:
    """The filled template reports each of its policy sections as not enforced yet."""
    reported = set(not_enforced(load(SPECS / "int-template-filled.yaml", environ={})))
    for section in ("timeouts", "retry", "circuit_breaker", "rate_limits", "cache", "dlq", "bandwidth"):
        assert section in reported


def test_model_built_specs_report_from_set_fields() -> None:
    """A Spec built in code reports the fields it was given."""
    spec = Spec.model_validate({"service": {"name": "x", "base_url": "https://x.example"}, "retry": {}})
    assert "retry" in not_enforced(spec)
