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
    """Every enforced key lies in a section something acts on (none is enforced by forgetting it)."""
    # The loader (environments, components) and the spec-driven runtime (tether._build and
    # tether.integration) act on these; everything else is informational or registered.
    wired = (
        "service",
        "authentication",
        "timeouts",
        "http",
        "rate_limits",
        "throttling",
        "retry",
        "circuit_breaker",
        "bulkhead",
        "state",
        "cache",
        "fallback_behavior",
        "dlq",
        "costs",
        "bandwidth",
        "rights",
        "endpoints",
        "components",
        "data_mappings",
        "error_mapping",
        "versioning",
        "monitoring",
        "security",
        "streaming",
        "testing",
        "sla",
    )
    enforced = sorted(path for path in _doc_paths() if classify(path) == "enforced")
    stray = [p for p in enforced if not any(p == w or p.startswith(w + ".") for w in wired)]
    assert stray == []
    assert classify("retry.max_attempts") == "enforced"
    assert classify("endpoints.<name>.pagination.stop.max_records") == "enforced"
    assert classify("endpoints.<name>.cache") == "enforced"
    assert classify("endpoints.<name>.cache.stale_if_error") == "not_enforced"
    assert classify("costs.currency") == "informational"
    assert classify("testing.unit_tests.fixtures_location") == "enforced"
    assert classify("testing.integration_tests.use_sandbox") == "not_enforced"


def test_present_keys_are_reported_at_their_registry_depth() -> None:
    """circuit_breaker.monitoring is reported not enforced once, at its depth, not key by key."""
    spec = load(MINIMAL + "circuit_breaker: {monitoring: {metrics_enabled: true}}\nretry: {}\n", environ={})
    reported = not_enforced(spec)
    assert "circuit_breaker.monitoring" in reported
    assert "circuit_breaker.monitoring.metrics_enabled" not in reported
    assert "circuit_breaker" not in reported
    assert "retry" not in reported
    assert "endpoints.get_item.path" not in reported


def test_absent_and_informational_keys_are_not_reported() -> None:
    """Sections the spec does not write, and descriptive keys, are not warned about."""
    spec = load("id: INT-9\nname: n\nservice: {name: x, base_url: 'https://x.example'}\n", environ={})
    assert not_enforced(spec) == []


def test_keys_are_reported_in_spec_order() -> None:
    """Warnings follow the order the keys are written in."""
    text = MINIMAL + "throttling: {max_wait: 5s}\ntesting: {integration_tests: {use_sandbox: true}}\n"
    spec = load(text, environ={})
    reported = not_enforced(spec)
    assert reported.index("throttling.max_wait") < reported.index("testing.integration_tests.use_sandbox")


def test_bundled_spec_reports_its_policies() -> None:
    """The filled template reports the policy keys nothing acts on yet, and not the wired ones."""
    reported = set(not_enforced(load(SPECS / "int-template-filled.yaml", environ={})))
    for key in ("dlq.retention", "state.key_prefix"):
        assert key in reported
    wired = ("timeouts", "retry", "circuit_breaker", "rate_limits", "error_mapping")
    resilience = (
        "cache",
        "dlq",
        "fallback_behavior",
        "costs",
        "bandwidth",
        "rights",
        "state.on_state_error",
        "streaming",
    )
    for section in (*wired, *resilience):
        assert section not in reported


def test_model_built_specs_report_from_set_fields() -> None:
    """A Spec built in code reports the fields it was given."""
    spec = Spec.model_validate(
        {"service": {"name": "x", "base_url": "https://x.example"}, "dlq": {"retention": "7d"}}
    )
    assert "dlq.retention" in not_enforced(spec)
