"""Which spec keys tether acts on: the single registry of keys accepted but NOT enforced yet.

Every key of the spec is in exactly one of three states:

* **enforced**: tether acts on it: the loader (environment selection, ``$ref`` components) and
  the spec-driven runtime (``tether.open``: ``tether._build`` turns the policy sections into the
  code door's option objects; ``tether.integration`` acts on endpoints, mappings, error mapping
  and versioning);
* **informational**: descriptive by nature (ids, prose, links); shown, never acted on;
* **not enforced**: accepted and validated, but no runtime behaviour is wired to it yet.
  ``tether check`` warns ``not enforced: <key>`` for each such key present in a spec, so nothing
  a user writes is silently dropped.

Entries are dotted key paths; ``*`` matches one endpoint name, map key or list index, and an entry
covers every key below it. Work that wires a key removes its entry from ``NOT_ENFORCED`` (and
regenerates ``docs/spec.md`` with ``python -m tether.spec.docs``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final, Literal

from tether.spec._errors import dotted
from tether.spec._yaml import KeyPath

__all__ = ["INFORMATIONAL", "NOT_ENFORCED", "classify", "not_enforced"]

NOT_ENFORCED: Final[frozenset[str]] = frozenset(
    {
        # authentication: jwt (minting signed tokens) is refused by tether.open; keys only it uses
        "authentication.config.private_key",
        "authentication.config.algorithm",
        "authentication.config.issuer",
        "authentication.config.subject",
        "authentication.config.claims",
        # rate limiting and resilience
        "rate_limits.pause_on_429",
        "throttling.strategy",
        "throttling.backoff_multiplier",
        "throttling.max_wait",
        "circuit_breaker.monitoring",
        "state.key_prefix",
        "dlq.retention",
        # endpoints
        "endpoints.*.cache.stale_if_error",
        # operations (monitoring: logging level, mask_fields, metrics_enabled, alerts,
        # alert_on_open and tracing.enabled are wired by tether._build.monitoring_from)
        "monitoring.metrics",
        "monitoring.logging.include_headers",
        "monitoring.logging.include_body",
        # testing: fixtures_location, mock_responses, sandbox_url, test_credentials and
        # contract_tests are wired (cassettes, tether mock, the sandbox environment, tether verify)
        "testing.integration_tests.use_sandbox",
    }
)

INFORMATIONAL: Final[frozenset[str]] = frozenset(
    {
        "id",
        "type",
        "name",
        "status",
        "related",
        "overview",
        "integration_type",
        "service.version",
        "costs.currency",
        "costs.tiers.*.name",
        "endpoints.*.description",
        "endpoints.*.parameters.*.description",
        "endpoints.*.headers.*.description",
        "endpoints.*.response.errors.*.description",
        "monitoring.alerts.*.description",
        "security.data_encryption",
        "security.secret_management",
        "security.audit_logging",
        "security.data_retention",
        "security.privacy",
        "dependencies",
        "documentation",
        "validation_cases",
        "implementation_references",
        "uncertainties",
        "sla.support_hours",
    }
)

State = Literal["enforced", "informational", "not_enforced"]


def _segments(entry: str) -> tuple[str, ...]:
    return tuple(entry.split("."))


def _match(entries: Iterable[str], path: KeyPath) -> int | None:
    """Length of the shortest entry that covers ``path`` (None when none does)."""
    best: int | None = None
    for entry in entries:
        parts = _segments(entry)
        if len(parts) > len(path):
            continue
        covers = all(p == "*" or p == str(k) for p, k in zip(parts, path, strict=False))
        if covers and (best is None or len(parts) < best):
            best = len(parts)
    return best


def classify(path: KeyPath | str) -> State:
    """The state of a key path (a tuple, or a dotted path where ``*`` / ``<name>`` / ``[]`` are wildcards)."""
    if isinstance(path, str):
        text = path.replace("[]", ".*").replace("<name>", "*")
        path = tuple(part for part in text.split(".") if part)
    if _match(INFORMATIONAL, path) is not None:
        return "informational"
    if _match(NOT_ENFORCED, path) is not None:
        return "not_enforced"
    return "enforced"


def _paths_of(value: Any, path: KeyPath = ()) -> list[KeyPath]:
    out: list[KeyPath] = []
    if isinstance(value, dict):
        for key, child in value.items():
            out.append((*path, key))
            out.extend(_paths_of(child, (*path, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            out.extend(_paths_of(child, (*path, index)))
    return out


def not_enforced(spec: Any) -> list[str]:
    """The keys written in ``spec`` that tether accepts but does not act on yet (dotted, in spec
    order, each reported at the depth of its registry entry)."""
    keys: Iterable[KeyPath] = spec.keys
    if not keys:
        keys = _paths_of(spec.model_dump(mode="json", by_alias=True, exclude_unset=True))

    def order(path: KeyPath) -> tuple[Any, ...]:
        location = spec.locate(*path)
        return (location.line, location.column) if location is not None else (0, 0)

    found: dict[str, tuple[Any, ...]] = {}
    for path in keys:
        if _match(INFORMATIONAL, path) is not None:
            continue
        depth = _match(NOT_ENFORCED, path)
        if depth is None:
            continue
        key = dotted(path[:depth])
        where = order(path[:depth])
        if key not in found or where < found[key]:
            found[key] = where
    return sorted(found, key=lambda k: (found[k], k))
