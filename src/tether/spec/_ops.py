"""Spec sections for errors, fallback, monitoring, budgets, rights, versioning, SLA and the
template's descriptive sections (security, testing, dependencies, documentation …)."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from datetime import date
from typing import Annotated, Any, ClassVar, Final, Literal

import jmespath
import jmespath.exceptions
from pydantic import (
    BeforeValidator,
    Field,
    GetJsonSchemaHandler,
    model_serializer,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from tether.spec._base import AlsoAccepts, HeaderName, SpecModel, Text, Url, any_case, lower_text
from tether.spec._endpoint import WaitFrom
from tether.spec._types import (
    FieldRuleError,
    InternalCode,
    JMESPath,
    Percent,
    PerfMillis,
    Ratio,
    Seconds,
    SecretRef,
    Size,
    StatusPattern,
    status_matches,
)

__all__ = [
    "Alert",
    "Bandwidth",
    "BodyMatch",
    "Budget",
    "Condition",
    "ContractTests",
    "CostTier",
    "Costs",
    "Dependencies",
    "Documentation",
    "ErrorMapping",
    "FallbackBehavior",
    "HeaderMatch",
    "ImplementationReferences",
    "IntegrationTests",
    "IntegrationType",
    "LoggingSpec",
    "Monitoring",
    "ResponseTimeTargets",
    "Rights",
    "Security",
    "Sla",
    "Testing",
    "Tracing",
    "UnitTests",
    "ValidationCase",
    "ValidationCases",
    "Versioning",
]


def _one_or_many(value: Any) -> Any:
    return (value,) if isinstance(value, str | int | float) and not isinstance(value, bool) else value


# --- error mapping ---------------------------------------------------------------------------------


class BodyMatch(SpecModel):
    """A condition on the response body."""

    path: JMESPath
    """JMESPath into the JSON body."""
    equals: Any = None
    """The value found must equal this."""
    contains: str | None = None
    """The value found (as text) must contain this."""
    exists: bool | None = None
    """The path must (true) or must not (false) yield a value."""

    @model_validator(mode="after")
    def _some(self) -> BodyMatch:
        if not ({"equals", "contains", "exists"} & self.model_fields_set):
            raise ValueError("a body match needs equals, contains or exists")
        return self

    def matches(self, body: Any) -> bool:
        try:
            found = jmespath.search(self.path, body)
        except jmespath.exceptions.JMESPathError:
            return False
        if self.exists is not None and (found is not None) != self.exists:
            return False
        if "equals" in self.model_fields_set and found != self.equals:
            return False
        return not (self.contains is not None and (found is None or self.contains not in str(found)))


class HeaderMatch(SpecModel):
    """A condition on a response header."""

    name: HeaderName
    """The header's name (case-insensitive)."""
    equals: str | None = None
    """The header's value must equal this."""
    contains: str | None = None
    """The header's value must contain this."""
    present: bool | None = None
    """The header must (true) or must not (false) be present."""

    def matches(self, headers: Mapping[str, str]) -> bool:
        lowered = {k.lower(): v for k, v in headers.items()}
        value = lowered.get(self.name.lower())
        if self.present is not None and (value is not None) != self.present:
            return False
        if self.equals is not None and value != self.equals:
            return False
        return not (self.contains is not None and (value is None or self.contains not in value))


ErrorAction = Literal["retry", "fail", "fallback", "ignore", "rate_limited", "refresh_auth_then_retry"]
_WAIT_ACTIONS: Final = frozenset({"retry", "rate_limited"})


class ErrorMapping(SpecModel):
    """One rule mapping an error response to tether's error and an action; the first rule that
    matches wins. Every condition given must hold."""

    DEFAULT_CODE_PATH: ClassVar[str] = "error.code || code"

    external_code: int | str | None = None
    """Their error: an HTTP status (``404``) or an error code found at ``code_path`` in the body."""
    code_path: JMESPath = DEFAULT_CODE_PATH
    """Where a string ``external_code`` is read in the body."""
    status: (
        Annotated[
            tuple[StatusPattern, ...],
            BeforeValidator(_one_or_many),
            AlsoAccepts({"type": ["integer", "string"]}),
        ]
        | None
    ) = None
    """Status(es), classes (``5xx``) or ranges (``500-504``) that match."""
    body: BodyMatch | None = None
    """A condition on the JSON body (JMESPath with equals / contains / exists)."""
    header: HeaderMatch | None = None
    """A condition on a response header."""
    internal_code: InternalCode
    """tether's error code; picks the error raised (e.g. ``NOTFOUND_001`` → ``NotFoundError``)."""
    message: str | None = None
    """A user-facing message for the error."""
    action: ErrorAction = "fail"
    """``retry``, ``fail``, ``fallback`` (run the fallback chain), ``ignore`` (treat as success),
    ``rate_limited`` (wait, then retry) or ``refresh_auth_then_retry``."""
    retry_after: WaitFrom | None = None
    """Where to read the wait for ``retry`` / ``rate_limited``: a header name, or
    ``{header|body, format}``."""

    @model_validator(mode="after")
    def _consistent(self) -> ErrorMapping:
        if self.external_code is None and self.status is None and self.body is None and self.header is None:
            raise ValueError("an error mapping needs at least one of external_code, status, body or header")
        if isinstance(self.external_code, int) and not 100 <= self.external_code <= 599:
            raise FieldRuleError(("external_code",), f"HTTP status {self.external_code} is outside 100-599")
        if self.retry_after is not None and self.action not in _WAIT_ACTIONS:
            raise FieldRuleError(
                ("retry_after",), f"retry_after applies to action retry or rate_limited, not {self.action}"
            )
        return self

    def matches(self, status: int, body: Any = None, headers: Mapping[str, str] | None = None) -> bool:
        """Whether a response with this status, JSON body and headers is matched by the rule."""
        code = self.external_code
        if isinstance(code, int) or (isinstance(code, str) and code.isdigit()):
            if int(code) != status:
                return False
        elif isinstance(code, str):
            try:
                found = jmespath.search(self.code_path, body)
            except jmespath.exceptions.JMESPathError:
                return False
            if found is None or str(found) != code:
                return False
        if self.status is not None and not any(status_matches(p, status) for p in self.status):
            return False
        if self.body is not None and not self.body.matches(body):
            return False
        return not (self.header is not None and not self.header.matches(headers or {}))


FallbackStrategy = Literal["cache", "default", "alternate", "queue", "circuit_break", "fail"]


class FallbackBehavior(SpecModel):
    """What to return when a call fails for good: an ordered chain tried in turn."""

    DEFAULT_ON: ClassVar[tuple[InternalCode, ...]] = (
        "CONN_001",
        "TIMEOUT_001",
        "API_001",
        "CIRCUIT_001",
        "RATE_001",
    )

    strategy: Annotated[
        tuple[FallbackStrategy, ...],
        BeforeValidator(_one_or_many),
        AlsoAccepts({"enum": list(FallbackStrategy.__args__)}),
    ]
    """One strategy or a chain: ``cache`` (a stale cached response), ``default``
    (``default_response``), ``alternate`` (another integration), ``queue`` (park in the DLQ),
    ``circuit_break`` / ``fail`` (no fallback: fail fast)."""
    cache_ttl: Seconds | None = None
    """How old a cached response may be and still be served (bare numbers are seconds)."""
    default_response: Any = None
    """The response returned by the ``default`` strategy."""
    alternate: str | None = None
    """The ``alternate`` strategy's integration: a spec path with the same endpoint names."""
    on_errors: tuple[InternalCode, ...] = DEFAULT_ON
    """Errors that trigger the fallback."""

    @model_validator(mode="after")
    def _consistent(self) -> FallbackBehavior:
        if not self.strategy:
            raise FieldRuleError(("strategy",), "strategy must name at least one fallback")
        if "default" in self.strategy and "default_response" not in self.model_fields_set:
            raise FieldRuleError(("strategy",), "the default strategy needs default_response")
        if "alternate" in self.strategy and self.alternate is None:
            raise FieldRuleError(("strategy",), "the alternate strategy needs alternate (a spec path)")
        return self


# --- monitoring ------------------------------------------------------------------------------------

MetricName = Literal[
    "request_count",
    "error_rate",
    "response_time",
    "throughput",
    "retry_count",
    "cache_hit_rate",
    "circuit_state",
    "rate_limit_hits",
    "bandwidth",
    "cost",
    "dlq_size",
]

_CONDITION_METRICS: Final[dict[str, str]] = {
    "error_rate": "ratio",
    "retry_rate": "ratio",
    "cache_hit_rate": "ratio",
    "availability": "ratio",
    "budget_used": "ratio",
    "bandwidth_used": "ratio",
    "response_time": "time",
    "response_time_p50": "time",
    "response_time_p95": "time",
    "response_time_p99": "time",
    "throughput": "rate",
    "request_count": "count",
    "error_count": "count",
    "rate_limit_hits": "count",
    "dlq_size": "count",
}
_OPERATORS: Final[dict[str, Callable[[float, float], bool]]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
_CONDITION_RE = re.compile(r"^\s*([a-z_0-9]+)\s*(>=|<=|==|!=|>|<)\s*(\d+(?:\.\d+)?)\s*(%|ms|s|m|/s)?\s*$")
_CONDITION_PATTERN: Final = _CONDITION_RE.pattern
_TIME_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 0.001}


def _parse_condition(text: str) -> dict[str, Any]:
    match = _CONDITION_RE.match(text)
    metrics = ", ".join(_CONDITION_METRICS)
    if not match:
        raise ValueError(
            f"condition {text!r} must read '<metric> <op> <number>[unit]', e.g. 'error_rate > 0.05' "
            f"or 'response_time > 500ms'; op is one of > >= < <= == !="
        )
    metric, op, number, unit = match.group(1), match.group(2), float(match.group(3)), match.group(4)
    kind = _CONDITION_METRICS.get(metric)
    if kind is None:
        raise ValueError(f"condition metric {metric!r} is not one of: {metrics}")
    if kind == "ratio":
        if unit not in (None, "%"):
            raise ValueError(f"{metric} is a ratio: write 0.05 or 5%, not {unit}")
        threshold = number / 100 if unit == "%" else number
    elif kind == "time":
        if unit not in _TIME_UNITS:
            raise ValueError(f"{metric} is a time: write 500 (ms), 500ms or 2s, not {unit}")
        threshold = number * _TIME_UNITS[unit]
    elif kind == "rate":
        if unit not in (None, "/s"):
            raise ValueError(f"{metric} is requests per second: write 50 or 50/s, not {unit}")
        threshold = number
    else:
        if unit is not None:
            raise ValueError(f"{metric} is a count: write a bare number, not {unit}")
        threshold = number
    return {"metric": metric, "op": op, "threshold": threshold}


class Condition(SpecModel):
    """An alert condition from a closed grammar: ``<metric> <op> <number>[unit]``. Ratios take
    ``0.05`` or ``5%``, times a bare number of milliseconds or ``500ms`` / ``2s`` (stored in
    seconds), throughput requests per second, counts a bare number. Nothing is evaluated as code."""

    LEAF: ClassVar[bool] = True  # written as one string; the docs do not list its parts

    metric: str
    """The metric compared (error_rate, response_time, response_time_p95, throughput …)."""
    op: Literal[">", ">=", "<", "<=", "==", "!="]
    """The comparison."""
    threshold: float
    """The value compared against (ratios as fractions, times in seconds)."""

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: Any) -> Any:
        if isinstance(data, str):
            return _parse_condition(data)
        return data

    @model_validator(mode="after")
    def _known(self) -> Condition:
        if self.metric not in _CONDITION_METRICS:
            raise ValueError(
                f"condition metric {self.metric!r} is not one of: {', '.join(_CONDITION_METRICS)}"
            )
        return self

    def holds(self, value: float) -> bool:
        """Whether the condition is met by a measured value (in the same units as ``threshold``)."""
        return _OPERATORS[self.op](value, self.threshold)

    def __str__(self) -> str:
        kind = _CONDITION_METRICS[self.metric]
        if kind == "time":
            return f"{self.metric} {self.op} {self.threshold * 1000:g}ms"
        return f"{self.metric} {self.op} {self.threshold:g}"

    @model_serializer(mode="plain")
    def _as_text(self) -> str:
        return str(self)

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "type": "string",
            "pattern": _CONDITION_PATTERN,
            "description": f"'<metric> <op> <number>[unit]'; metrics: {', '.join(_CONDITION_METRICS)}",
        }


class Alert(SpecModel):
    """An alert evaluated over a rolling window and emitted as an alert event."""

    DEFAULT_WINDOW: ClassVar[float] = 300.0

    condition: Condition
    """E.g. ``error_rate > 0.05``, ``response_time > 500`` (ms), ``response_time_p95 > 1s``."""
    severity: Annotated[
        Literal["critical", "warning", "info"],
        BeforeValidator(lower_text),
        any_case("critical", "warning", "info"),
    ] = "warning"
    """How bad it is."""
    channel: Annotated[
        Literal["email", "slack", "pagerduty", "webhook", "log"],
        BeforeValidator(lower_text),
        any_case("email", "slack", "pagerduty", "webhook", "log"),
    ] = "log"
    """Where the alert event is meant to go (listeners route it)."""
    window: Seconds = DEFAULT_WINDOW
    """The rolling window the metric is computed over."""
    description: str | None = None
    """What the alert means."""


class LoggingSpec(SpecModel):
    """Request logging. Credentials are masked always, whatever these say."""

    level: Annotated[
        Literal["debug", "info", "warn", "warning", "error"],
        BeforeValidator(lower_text),
        any_case("debug", "info", "warn", "warning", "error"),
    ] = "info"
    """Level of per-request log events."""
    include_headers: bool = False
    """Log request and response headers (credential headers masked)."""
    include_body: bool = False
    """Log bodies (truncated, secret values masked)."""
    mask_sensitive: bool = True
    """Also mask the body fields named in ``mask_fields`` (credentials are masked regardless)."""
    mask_fields: tuple[str, ...] = ()
    """Extra field, header or parameter names to mask (PII …)."""


class Tracing(SpecModel):
    """OpenTelemetry tracing: one span per call, a child span per attempt."""

    enabled: bool = True
    """Create spans when an OpenTelemetry SDK is configured."""
    sample_rate: Ratio = 1.0
    """Fraction of calls traced."""


class AuditSpec(SpecModel):
    """Where the audit log goes: a file (relative to the spec's folder) or a logger."""

    file: str | None = None
    """A JSON-lines file, appended to."""
    logger: str | None = None
    """A ``logging`` logger name; each line is logged at INFO."""

    @model_validator(mode="after")
    def _one_target(self) -> AuditSpec:
        if (self.file is None) == (self.logger is None):
            raise ValueError("monitoring.audit takes one of file or logger")
        return self


class Monitoring(SpecModel):
    """Metrics, logs, traces and alerts."""

    DEFAULT_METRICS: ClassVar[tuple[MetricName, ...]] = (
        "request_count",
        "error_rate",
        "response_time",
        "throughput",
    )

    metrics_enabled: bool = True
    """Export Prometheus metrics (and OpenTelemetry meters)."""
    alert_on_open: bool = True
    """Emit an alert event when the circuit breaker opens (the template's breaker block)."""
    metrics: tuple[MetricName, ...] = DEFAULT_METRICS
    """Which metric families to export."""
    logging: LoggingSpec = LoggingSpec()
    """Request logging."""
    alerts: tuple[Alert, ...] = ()
    """Alert rules."""
    tracing: Tracing = Tracing()
    """Tracing."""
    audit: AuditSpec | None = None
    """An audit log: one JSON line per call (time, request id, endpoint, status, attempts,
    outcome, served_by; never a credential or a body) to a file or a logger."""


# --- costs, bandwidth, rights ----------------------------------------------------------------------


class CostTier(SpecModel):
    """A pricing tier: ``cost`` per ``unit`` up to ``limit`` units a month."""

    name: str
    """The tier's name."""
    limit: Annotated[float, Field(ge=0)] | None = None
    """Units a month in this tier (none: unlimited)."""
    cost: Annotated[float, Field(ge=0)]
    """Price per unit in this tier."""
    unit: Annotated[
        Literal["request", "gb", "minute"], BeforeValidator(lower_text), any_case("request", "gb", "minute")
    ] = "request"
    """What a unit is."""


class Budget(SpecModel):
    """A monthly spending budget."""

    DEFAULT_ALERT_AT: ClassVar[tuple[float, ...]] = (70.0, 85.0, 95.0)

    monthly_limit: Annotated[float, Field(gt=0)]
    """The budget per calendar month, in ``costs.currency``."""
    alert_at: Annotated[
        tuple[Percent, ...], BeforeValidator(_one_or_many), AlsoAccepts({"type": ["number", "string"]})
    ] = DEFAULT_ALERT_AT
    """Percentages of the budget that emit ``budget.alert`` events."""
    hard_stop: bool = False
    """Refuse calls (``BudgetExceeded``, before sending) once the budget is spent."""


class Costs(SpecModel):
    """What calls cost, metered against a budget."""

    pricing_model: Annotated[
        Literal["per_request", "per_gb", "per_minute", "tiered", "subscription"],
        BeforeValidator(lower_text),
        any_case("per_request", "per_gb", "per_minute", "tiered", "subscription"),
    ]
    """How the provider charges."""
    currency: str = "USD"
    """Currency of costs and budget."""
    tiers: tuple[CostTier, ...] = ()
    """Pricing tiers, in order."""
    subscription_fee: Annotated[float, Field(ge=0)] | None = None
    """Monthly fee of the subscription model (counted against the budget)."""
    budget: Budget | None = None
    """The monthly budget."""


class Bandwidth(SpecModel):
    """A monthly data-transfer budget (e.g. FMP's 50 GB)."""

    DEFAULT_ALERT_AT: ClassVar[tuple[float, ...]] = (70.0, 85.0, 95.0)
    DEFAULT_SERVE_FROM_CACHE_AT: ClassVar[float] = 95.0

    monthly_limit: Size
    """Bytes per calendar month: ``50GB``, ``512MiB``."""
    alert_at: Annotated[
        tuple[Percent, ...], BeforeValidator(_one_or_many), AlsoAccepts({"type": ["number", "string"]})
    ] = DEFAULT_ALERT_AT
    """Percentages that emit ``budget.alert`` events."""
    serve_from_cache_at: Percent | None = DEFAULT_SERVE_FROM_CACHE_AT
    """From this percentage on, serve from the cache when possible."""
    hard_stop: bool = False
    """Refuse calls once the budget is spent."""
    count: Literal["response", "request_and_response"] = "response"
    """Which bytes count."""


class Rights(SpecModel):
    """The integration's licence: the rights its profile grants (endpoints list what they need)."""

    profile: str
    """The rights profile's name (e.g. ``newsapi_developer``)."""
    granted: tuple[str, ...] = ()
    """Rights the profile grants (e.g. ``read``, ``display``); an endpoint needing another raises
    ``RightsViolationError`` before anything is sent."""


# --- security, testing, dependencies, versioning, SLA, documentation -------------------------------


class Security(SpecModel):
    """Security considerations (the template's prose fields) and tether's destination guards."""

    data_encryption: str | None = None
    """In-transit / at-rest requirements."""
    secret_management: str | None = None
    """How keys and secrets are stored."""
    audit_logging: str | None = None
    """What is logged for compliance."""
    data_retention: str | None = None
    """How long external data is kept or cached."""
    privacy: str | None = None
    """GDPR / privacy handling."""
    block_private_networks: bool = False
    """Refuse private, loopback and link-local destinations (checked after DNS; address pinned)."""
    tls_min_version: (
        Annotated[
            Literal["1.2", "1.3"],
            BeforeValidator(lambda v: str(v) if isinstance(v, float) else v),
            AlsoAccepts({"type": "number"}),
        ]
        | None
    ) = None
    """Lowest TLS version accepted."""


class UnitTests(SpecModel):
    """Unit-test settings."""

    mock_responses: bool = True
    """``tether mock`` answers with the recorded responses of the cassettes in ``fixtures_location``
    (the example bodies where none is recorded); ``false``: example bodies only."""
    fixtures_location: str | None = None
    """Where cassettes live (relative to the spec's folder): ``tether.open(spec, cassette="x.yaml")``
    and the pytest ``tether_cassette`` fixture keep theirs here, ``tether mock`` and ``tether verify``
    read them."""


class IntegrationTests(SpecModel):
    """Integration-test settings."""

    use_sandbox: bool = False
    """Run against the provider's sandbox."""
    sandbox_url: Url | None = None
    """The base URL of the ``sandbox`` environment (``tether.open(spec, env="sandbox")``,
    ``TETHER_ENV=sandbox``)."""
    test_credentials: SecretRef | None = None
    """The credential the ``sandbox`` environment signs with, in place of the main secret
    (``authentication.config.secret``, ``password`` or ``client_secret``): ``${VAR}`` reads an
    environment variable when the integration starts; any other text is the path of a secrets
    file (relative to the spec's folder; ``path#key`` picks a key of a JSON/YAML/.env file).
    Never the credential itself."""


class ContractTests(SpecModel):
    """Contract-test settings."""

    provider: str | None = None
    """The provider's name in the contracts: ``tether verify`` reports a cassette recorded for
    another service (or a Pact file for another provider)."""
    pact_location: str | None = None
    """The folder of recorded contracts ``tether verify`` checks (cassettes and Pact files; relative
    to the spec's folder); default ``unit_tests.fixtures_location``."""


class Testing(SpecModel):
    """Testing strategy."""

    unit_tests: UnitTests | None = None
    """Unit tests."""
    integration_tests: IntegrationTests | None = None
    """Integration tests."""
    contract_tests: ContractTests | None = None
    """Contract tests."""


class Dependencies(SpecModel):
    """What depends on this integration and what it depends on."""

    internal_services: tuple[str, ...] = ()
    """Our services that use this integration."""
    libraries: tuple[str, ...] = ()
    """Client libraries used."""
    infrastructure: tuple[str, ...] = ()
    """Required infrastructure (Redis, …)."""


class Versioning(SpecModel):
    """How the API is versioned and when versions retire."""

    strategy: Literal["header", "url", "query"]
    """Where the version goes: a header, the URL path, or a query parameter."""
    current: Text
    """The version this integration calls."""
    supported: tuple[Text, ...] = ()
    """Versions the provider supports."""
    deprecation_schedule: dict[str, date] = Field(default_factory=dict)
    """Retirement date per version; calls within 90 days of it emit deprecation events."""
    header_name: HeaderName = "API-Version"
    """header strategy: the header's name."""
    query_param: str = "version"
    """query strategy: the parameter's name."""

    @model_validator(mode="after")
    def _current_supported(self) -> Versioning:
        if self.supported and self.current not in self.supported:
            raise FieldRuleError(
                ("current",), f"current version {self.current!r} is not in supported {list(self.supported)}"
            )
        return self


_RESPONSE_TIME_RE = re.compile(r"^\s*(p50|p95|p99)\s*(<=?)\s*(.+)$")


def _response_time(value: Any) -> Any:
    if isinstance(value, str):
        match = _RESPONSE_TIME_RE.match(value)
        if not match:
            raise ValueError(f"response_time must look like 'p99 < 500ms' or {{p95: 500ms}}, got {value!r}")
        return {match.group(1): match.group(3)}
    return value


class ResponseTimeTargets(SpecModel):
    """Latency objectives (bare numbers are milliseconds)."""

    p50: PerfMillis | None = None
    """Median latency objective."""
    p95: PerfMillis | None = None
    """95th percentile objective."""
    p99: PerfMillis | None = None
    """99th percentile objective."""


class Sla(SpecModel):
    """Service-level objectives: tracked over a rolling window per operation, reported by
    ``tether status`` and ``Integration.status()`` beside each target, and alerted on when missed.
    Endpoints' ``performance`` targets are their latency objectives; ``response_time`` is the
    default for the others."""

    DEFAULT_WINDOW: ClassVar[float] = 600.0

    availability: Percent | None = None
    """Availability objective (``99.9`` or ``"99.9%"``)."""
    response_time: (
        Annotated[ResponseTimeTargets, BeforeValidator(_response_time), AlsoAccepts({"type": "string"})]
        | None
    ) = None
    """Latency objectives: ``{p95: 500ms}`` or ``"p99 < 1000ms"``."""
    error_rate: Ratio | None = None
    """Error-rate objective (``0.005``, ``"0.5%"``, ``"< 0.5%"``); rate-limit refusals and
    breaker rejections are not counted as calls for it."""
    retry_success_rate: Ratio | None = None
    """Share of calls that needed a retry and then succeeded (``"> 80%"``)."""
    cache_hit_rate: Ratio | None = None
    """Share of calls of cached endpoints answered from the cache (``"> 70%"``)."""
    breaker_recovery: Seconds | None = None
    """Longest time from the breaker opening to closing again (``60s``)."""
    window: Seconds = DEFAULT_WINDOW
    """The rolling window the figures cover."""
    support_hours: str | None = None
    """``24/7``, business hours …"""


class Documentation(SpecModel):
    """Where to read more."""

    api_docs: Url | None = None
    """The provider's API documentation."""
    client_library: str | None = None
    """The provider's client library, if any."""
    support_contact: str | None = None
    """Support e-mail or URL."""


class ValidationCase(SpecModel):
    """A test or scenario case that validates this spec."""

    path: str
    """Its file path."""
    description: str | None = None
    """What it validates."""


class ValidationCases(SpecModel):
    """Test and scenario cases that validate this spec."""

    test_cases: tuple[ValidationCase, ...] = ()
    """Standalone test cases."""
    scenario_cases: tuple[ValidationCase, ...] = ()
    """End-to-end scenarios."""
    notes: tuple[str, ...] = ()
    """Notes."""


class ImplementationReferences(SpecModel):
    """Where the integration's code, configuration and dashboards are."""

    client_library: str | None = None
    """The client code."""
    configuration: str | None = None
    """The configuration file."""
    mocks: str | None = None
    """Mocks / fixtures."""
    monitoring_dashboard: Url | None = None
    """The dashboard."""


class IntegrationType(SpecModel):
    """The template's Integration Type section."""

    protocol: Annotated[
        Literal["rest", "graphql", "websocket", "grpc"],
        BeforeValidator(lower_text),
        any_case("rest", "graphql", "websocket", "grpc"),
    ] = "rest"
    """REST, GraphQL, WebSocket or gRPC (tether speaks REST and SSE today)."""
    authentication: (
        Annotated[
            Literal["api_key", "oauth", "oauth2", "jwt", "basic", "bearer", "none"],
            BeforeValidator(lower_text),
            any_case("api_key", "oauth", "oauth2", "jwt", "basic", "bearer", "none"),
        ]
        | None
    ) = None
    """API key, OAuth, JWT, Basic (the ``authentication`` section configures it)."""
    data_format: Annotated[
        Literal["json", "xml", "binary"], BeforeValidator(lower_text), any_case("json", "xml", "binary")
    ] = "json"
    """JSON, XML or binary."""
    communication: Annotated[
        Literal["synchronous", "asynchronous"],
        BeforeValidator(lower_text),
        any_case("synchronous", "asynchronous"),
    ] = "synchronous"
    """Synchronous or asynchronous."""
