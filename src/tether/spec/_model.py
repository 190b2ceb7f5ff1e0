"""The root of an integration spec: the INT template's sections plus tether's own."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

from pydantic import Field, PrivateAttr, model_validator

from tether.errors import SpecError
from tether.spec._base import SpecModel, Text
from tether.spec._endpoint import Components, DataMappings, Endpoint
from tether.spec._normalize import normalize_spec, raise_on_problems
from tether.spec._ops import (
    Bandwidth,
    Costs,
    Dependencies,
    Documentation,
    ErrorMapping,
    FallbackBehavior,
    ImplementationReferences,
    IntegrationType,
    Monitoring,
    Rights,
    Security,
    Sla,
    Testing,
    ValidationCases,
    Versioning,
)
from tether.spec._sections import (
    Authentication,
    Bulkhead,
    Cache,
    CircuitBreaker,
    Dlq,
    HttpOptions,
    RateLimits,
    Retry,
    Service,
    State,
    Streaming,
    Throttling,
    Timeouts,
)
from tether.spec._types import FieldRuleError
from tether.spec._yaml import KeyPath, Location

__all__ = ["SANDBOX", "Spec"]

#: The environment ``testing.integration_tests.sandbox_url`` (and ``test_credentials``) define.
SANDBOX: Final = "sandbox"

Status = Literal["draft", "review", "approved", "active", "deprecated", "retired"]


class Spec(SpecModel):
    """An integration spec: the INT template (seed 001) made executable, plus tether's sections.

    Build one with ``tether.spec.load(path_or_text, env=…)``; ``Spec.model_validate(dict)``
    works too (no file locations, no interpolation).
    """

    # front matter
    id: Text | None = None
    """The spec's id, e.g. ``INT-001``."""
    type: Literal["Integration"] = "Integration"
    """Always ``Integration`` (the template's document type)."""
    name: str | None = None
    """The integration's human name."""
    status: Status = "draft"
    """Lifecycle: draft, review, approved, active, deprecated, retired."""
    related: tuple[str, ...] = ()
    """Related documents (REQ-001, ADR-004 …)."""
    overview: str | None = None
    """Service Overview: what the service is and why we use it."""
    integration_type: IntegrationType | None = None
    """Integration Type: protocol, authentication, data format, communication."""

    # service configuration
    service: Service
    """The service and its base URL per environment."""
    authentication: Authentication | None = None
    """How requests authenticate (none when absent)."""
    timeouts: Timeouts | None = None
    """Timeouts (tether's defaults apply when absent)."""
    http: HttpOptions | None = None
    """The HTTP connection (tether's own)."""

    # rate limits, retry, breaker
    rate_limits: RateLimits | None = None
    """Client-side rate limits (off when absent)."""
    throttling: Throttling | None = None
    """What the limiter does when the budget is spent."""
    retry: Retry | None = None
    """Retry policy (tether's defaults apply when absent; ``enabled: false`` turns it off)."""
    circuit_breaker: CircuitBreaker | None = None
    """Circuit breaker (tether's defaults apply when absent; ``enabled: false`` turns it off)."""

    # endpoints and mappings
    endpoints: dict[str, Endpoint] = Field(default_factory=dict)
    """The API's operations by name (the name is what ``Integration.call`` takes)."""
    components: Components | None = None
    """Reusable schemas and parameters for ``$ref``."""
    data_mappings: DataMappings | None = None
    """Field mappings (the template's inbound / outbound sections may also sit at the top level)."""

    # error handling
    error_mapping: tuple[ErrorMapping, ...] = ()
    """Ordered error rules; the first that matches decides (also accepted inside ``error_handling``)."""
    fallback_behavior: FallbackBehavior | None = None
    """What to return when a call fails for good."""

    # operations
    monitoring: Monitoring | None = None
    """Metrics, logging, tracing, alerts."""
    costs: Costs | None = None
    """Pricing and the monthly cost budget."""
    bandwidth: Bandwidth | None = None
    """The monthly bandwidth budget."""
    rights: Rights | None = None
    """The rights profile (endpoints list the rights they need)."""
    security: Security | None = None
    """Security considerations and destination guards."""
    testing: Testing | None = None
    """Testing strategy."""
    dependencies: Dependencies | None = None
    """Dependencies."""
    versioning: Versioning | None = None
    """API versioning and deprecation schedule."""
    sla: Sla | None = None
    """Service-level objectives."""
    documentation: Documentation | None = None
    """Links to documentation and support."""
    validation_cases: ValidationCases | None = None
    """Test and scenario cases validating the spec."""
    implementation_references: ImplementationReferences | None = None
    """Where the implementation lives."""
    uncertainties: tuple[str, ...] = ()
    """Open questions about the integration."""

    # tether's own
    cache: Cache | None = None
    """Response cache (off when absent)."""
    bulkhead: Bulkhead | None = None
    """Concurrency limit (off when absent)."""
    state: State | None = None
    """Shared state store (``memory://`` when absent)."""
    streaming: Streaming | None = None
    """Defaults for streaming (SSE) endpoints."""
    dlq: Dlq | None = None
    """Dead-letter queue (off when absent)."""

    _source: str = PrivateAttr("<model>")
    _environment: str | None = PrivateAttr(None)
    _base_url: str | None = PrivateAttr(None)
    _keys: frozenset[KeyPath] = PrivateAttr(frozenset())
    _key_locations: Mapping[KeyPath, Location] = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        normal, _, problems = normalize_spec(data)
        raise_on_problems(problems)
        return normal

    @model_validator(mode="after")
    def _cross_checks(self) -> Spec:
        for name, endpoint in self.endpoints.items():
            if endpoint.rights and self.rights is None:
                raise FieldRuleError(
                    ("endpoints", name, "rights"),
                    "endpoint requires rights but the spec has no rights profile",
                )
            base = self.timeouts or Timeouts()
            merged = _merge_timeouts(base, endpoint.timeouts)
            if merged.attempt is not None and merged.total is not None and merged.attempt > merged.total:
                raise FieldRuleError(
                    ("endpoints", name, "timeouts"),
                    f"attempt timeout ({merged.attempt:g}s) must not exceed total ({merged.total:g}s)",
                )
            if (
                endpoint.cache is not None
                and endpoint.cache.enabled
                and endpoint.cache.given("ttl")
                and self.cache is None
            ):
                raise FieldRuleError(
                    ("endpoints", name, "cache"),
                    "endpoint sets a cache ttl but the spec has no cache section",
                )
        for name, endpoint in self.endpoints.items():
            parent = endpoint.parent
            if parent is None:
                continue
            if parent.endpoint not in self.endpoints:
                known = ", ".join(sorted(self.endpoints))
                raise FieldRuleError(
                    ("endpoints", name, "parent", "endpoint"),
                    f"no endpoint {parent.endpoint!r} in this spec (endpoints: {known})",
                )
            if parent.endpoint == name:
                raise FieldRuleError(
                    ("endpoints", name, "parent", "endpoint"), "an endpoint cannot be its own parent"
                )
        costs = self.costs
        unpriced = costs is not None and costs.subscription_fee is None and not costs.tiers
        if unpriced and costs is not None and costs.pricing_model == "subscription":
            raise FieldRuleError(
                ("costs", "subscription_fee"), "the subscription model needs subscription_fee or tiers"
            )
        return self

    # --- what the loader recorded -------------------------------------------------------------

    @property
    def source(self) -> str:
        """The file the spec was loaded from (``<string>`` for text, ``<model>`` when built in code)."""
        return self._source

    @property
    def environment(self) -> str | None:
        """The environment selected at load time (None when the spec defines none)."""
        if self._base_url is None:
            return self._select(None)[0]
        return self._environment

    @property
    def base_url(self) -> str:
        """The base URL of the selected environment."""
        if self._base_url is None:
            return self._select(None)[1]
        return self._base_url

    @property
    def keys(self) -> frozenset[KeyPath]:
        """Every key path written in the spec (after normalising), for not-enforced reporting."""
        return self._keys

    def locate(self, *path: str | int) -> Location | None:
        """Where a key path was written, when the spec came from a file."""
        return self._key_locations.get(tuple(path))

    @property
    def sandbox_url(self) -> str | None:
        """``testing.integration_tests.sandbox_url``: the ``sandbox`` environment's base URL."""
        tests = self.testing.integration_tests if self.testing is not None else None
        return tests.sandbox_url if tests is not None else None

    def environment_urls(self) -> dict[str, str]:
        """Every environment's base URL: ``service.environments``, plus ``sandbox`` when
        ``testing.integration_tests.sandbox_url`` defines it."""
        urls = dict(self.service.environments)
        sandbox = self.sandbox_url
        if sandbox is not None:
            urls.setdefault(SANDBOX, sandbox)
        return urls

    def base_url_for(self, env: str) -> str:
        """The base URL of environment ``env``; an unknown one is a ``SpecError`` listing the known ones."""
        return self._select(env)[1]

    def _select(self, env: str | None) -> tuple[str | None, str]:
        environments = self.service.environments
        if env == SANDBOX and env not in environments and self.sandbox_url is not None:
            return env, self.sandbox_url
        if env is None:
            env = self.service.default_environment
            if env is None and Service.DEFAULT_ENVIRONMENT in environments:
                env = Service.DEFAULT_ENVIRONMENT
            if env is None:
                if self.service.base_url is not None:
                    return None, self.service.base_url
                raise SpecError(
                    "no environment selected and no service.base_url; known environments: "
                    + ", ".join(environments)
                )
        if not environments:
            assert self.service.base_url is not None  # the Service validator guarantees one of them
            return env, self.service.base_url
        if env not in environments:
            raise SpecError(f"unknown environment {env!r}; known environments: {', '.join(environments)}")
        return env, environments[env]


def _merge_timeouts(base: Timeouts, override: Timeouts | None) -> Timeouts:
    if override is None:
        return base
    return base.model_copy(update={name: getattr(override, name) for name in override.model_fields_set})
