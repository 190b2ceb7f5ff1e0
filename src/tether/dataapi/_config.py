"""The data API client's own configuration file (``external_api:``) and environment variables.

``DataAPIClient.from_config("config/external_api_client.yaml")`` reads this format::

    external_api:
      connection:      {base_url, timeout_seconds, max_connections, keepalive_seconds, http_version}
      authentication:  {type, credentials_source, secret_name, secret_project, refresh_interval_hours}
      rate_limits:     {tier, requests_per_minute: {free, premium, enterprise}, burst_allowance,
                        throttle_strategy, max_queue_size}
      retry:           {enabled, max_attempts, initial_delay_seconds, max_delay_seconds,
                        backoff_multiplier, add_jitter, jitter_max_seconds, retryable_status_codes,
                        retryable_exceptions}
      circuit_breaker: {enabled, failure_threshold, failure_window_seconds, success_threshold,
                        open_timeout_seconds, half_open_max_calls, alert_on_open}
      cache:           {enabled, backend, redis_url, ttl_seconds: {data, historical_daily,
                        historical_weekly, metadata}, max_size_mb, eviction_policy}
      monitoring:      {metrics_enabled, logging_level, trace_sampling_rate, alert_on_errors,
                        error_threshold_percent, latency_p95_threshold_ms}

Every key has an effect (``CONFIG_EFFECTS`` says which, and ``docs/guides/dataapi.md`` prints it)
or is refused with a ``SpecError`` that names it (``authentication.type: oauth2``: the format has
no token endpoint or client id). Unknown keys are refused too. The file is turned into the
bundled integration spec with the configured values laid over it, so the same engine runs it
and ``tether check`` validates it with ``file:line:column`` errors.

Environment variables override the file (``ENV_OVERRIDES``); a value that does not parse is an
error naming the variable and the key it overrides.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import BeforeValidator, Field, NonNegativeInt, PositiveInt, ValidationError, model_validator

from tether.spec._base import SpecModel, Text, Url
from tether.spec._errors import Problem, SpecLoadError, dotted, problems_from_validation
from tether.spec._model import Spec
from tether.spec._types import FieldRuleError, HttpStatus, Ratio
from tether.spec._yaml import KeyPath, Location, parse

__all__ = [
    "CONFIG_EFFECTS",
    "ENV_OVERRIDES",
    "ClientConfig",
    "ExternalAPIConfig",
    "is_client_config",
    "load_config",
]

ROOT: Final = "external_api"


@dataclass(frozen=True, slots=True)
class EnvOverride:
    """An environment variable and the configuration key it replaces."""

    variable: str
    path: tuple[str, ...]
    description: str


#: The variables that override the file, and what each replaces.
ENV_OVERRIDES: Final[tuple[EnvOverride, ...]] = (
    EnvOverride("EXTERNAL_API_URL", ("connection", "base_url"), "base URL of the API"),
    EnvOverride("EXTERNAL_API_TIMEOUT", ("connection", "timeout_seconds"), "request timeout, seconds"),
    EnvOverride(
        "EXTERNAL_API_RATE_LIMIT",
        ("rate_limits", "requests_per_minute", "<tier>"),
        "requests per minute of the selected tier",
    ),
    EnvOverride(
        "EXTERNAL_API_RATE_TIER", ("rate_limits", "tier"), "rate limit tier: free, premium, enterprise"
    ),
    EnvOverride("EXTERNAL_API_RETRY_ENABLED", ("retry", "enabled"), "retry on or off (true/false)"),
    EnvOverride("EXTERNAL_API_CACHE_TTL", ("cache", "ttl_seconds", "data"), "TTL of data responses, seconds"),
    EnvOverride("EXTERNAL_API_CIRCUIT_ENABLED", ("circuit_breaker", "enabled"), "breaker on or off"),
    EnvOverride("SECRET_PROJECT", ("authentication", "secret_project"), "project that holds the secret"),
    EnvOverride("SECRET_NAME", ("authentication", "secret_name"), "name of the API-key secret"),
    EnvOverride("EXTERNAL_API_REDIS_URL", ("cache", "redis_url"), "the Redis of the redis cache backend"),
    EnvOverride(
        "EXTERNAL_API_SECRET_ENDPOINT",
        ("authentication", "secret_endpoint"),
        "secret manager API endpoint (a private endpoint or an emulator)",
    ),
)

#: What each key of the file does, in the engine's terms (the guide prints this table).
CONFIG_EFFECTS: Final[Mapping[str, str]] = {
    "connection.base_url": "service.base_url (every environment)",
    "connection.timeout_seconds": "timeouts.read and timeouts.attempt; total = max(60 s, it)",
    "connection.max_connections": "http.max_connections (pool size)",
    "connection.keepalive_seconds": "http.keepalive",
    "connection.http_version": 'http.version "2" (HTTP/1.1 where the server has no h2) or "1.1"',
    "authentication.type": "api_key (X-API-Key); oauth2 is refused (no token URL or client id)",
    "authentication.credentials_source": (
        "secret_manager: the key is read from the secret manager; env: from the variable secret_name"
    ),
    "authentication.secret_name": "the secret (credentials_source env: the variable) with the key",
    "authentication.secret_project": "the Google Cloud project of the secret (selects gcp)",
    "authentication.refresh_interval_hours": "authentication.config.refresh_interval (the key is re-read)",
    "authentication.secret_manager": "tether's: gcp or aws (default gcp with secret_project, else aws)",
    "authentication.secret_region": "tether's: the AWS region of the secret",
    "authentication.secret_endpoint": "tether's: the secret manager's endpoint (private endpoint, emulator)",
    "rate_limits.tier": "rate_limits.tier (the API key's plan)",
    "rate_limits.requests_per_minute": "rate_limits.tiers.<tier>.requests_per_minute",
    "rate_limits.burst_allowance": "rate_limits.tiers.<selected tier>.burst_size",
    "rate_limits.throttle_strategy": "throttling.on_limit (queue, reject, wait)",
    "rate_limits.max_queue_size": "throttling.max_queue",
    "retry.enabled": "retry.enabled",
    "retry.max_attempts": "retry.max_attempts",
    "retry.initial_delay_seconds": "retry.initial_delay",
    "retry.max_delay_seconds": "retry.max_delay",
    "retry.backoff_multiplier": "retry.backoff_multiplier (exponential backoff)",
    "retry.add_jitter": "retry.jitter",
    "retry.jitter_max_seconds": "retry.jitter_max (each delay + up to this much)",
    "retry.retryable_status_codes": "retry.retry_on",
    "retry.retryable_exceptions": (
        "retry.retry_conditions: ConnectionError → connection_error, TimeoutError → timeout, "
        "RateLimitExceeded → rate_limited, APIError → server_error"
    ),
    "circuit_breaker.enabled": "circuit_breaker.enabled",
    "circuit_breaker.failure_threshold": "circuit_breaker.failure_threshold",
    "circuit_breaker.failure_window_seconds": "circuit_breaker.window",
    "circuit_breaker.success_threshold": "circuit_breaker.success_threshold",
    "circuit_breaker.open_timeout_seconds": "circuit_breaker.timeout",
    "circuit_breaker.half_open_max_calls": "circuit_breaker.half_open_requests",
    "circuit_breaker.alert_on_open": "monitoring.alert_on_open (an alert event when it opens)",
    "cache.enabled": "cache.enabled",
    "cache.backend": "cache.backend (redis: shared by every instance)",
    "cache.redis_url": "cache.redis_url (used by backend redis)",
    "cache.ttl_seconds.data": "cache.ttl and get_data's TTL",
    "cache.ttl_seconds.historical_daily": "get_historical's TTL, and for interval=daily (and monthly)",
    "cache.ttl_seconds.historical_weekly": "get_historical's TTL for interval=weekly",
    "cache.ttl_seconds.metadata": "list_identifiers' TTL, and cache.ttl_by_path /metadata/*",
    "cache.max_size_mb": "cache.max_size_mb (byte bound, 10^6 bytes per MB)",
    "cache.eviction_policy": "cache.eviction_policy (lfu and ttl need backend redis)",
    "monitoring.metrics_enabled": "monitoring.metrics_enabled (Prometheus metrics)",
    "monitoring.logging_level": "monitoring.logging.level",
    "monitoring.trace_sampling_rate": "monitoring.tracing.sample_rate",
    "monitoring.alert_on_errors": "an alert rule error_rate > error_threshold_percent",
    "monitoring.error_threshold_percent": "that rule's threshold",
    "monitoring.latency_p95_threshold_ms": "an alert rule response_time_p95 > it",
}


def _http_version(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str):
        text = value.strip().upper().removeprefix("HTTP/")
        return {"2": "HTTP/2", "2.0": "HTTP/2", "1.1": "HTTP/1.1", "1": "HTTP/1.1"}.get(text, value)
    return value


Seconds = Annotated[float, Field(ge=0)]
PositiveSeconds = Annotated[float, Field(gt=0)]


class Connection(SpecModel):
    """Where and how the client connects."""

    base_url: Url | None = None
    """The API's base URL (``EXTERNAL_API_URL`` overrides it; one of the two is required)."""
    timeout_seconds: PositiveSeconds = 30.0
    """Bound on one request attempt, seconds."""
    max_connections: PositiveInt = 100
    """Connection pool size."""
    keepalive_seconds: Seconds = 60.0
    """How long an idle connection is kept."""
    http_version: Annotated[Literal["HTTP/2", "HTTP/1.1"], BeforeValidator(_http_version)] = "HTTP/2"
    """``HTTP/2`` (negotiated by ALPN; HTTP/1.1 where the server has no h2) or ``HTTP/1.1``."""


class Authentication(SpecModel):
    """Where the API key comes from."""

    type: Literal["api_key", "oauth2"] = "api_key"
    """``api_key`` (sent as ``X-API-Key``). ``oauth2`` is not supported by this format."""
    credentials_source: Literal["secret_manager", "env"] = "secret_manager"
    """``secret_manager``, or ``env`` (the variable named by ``secret_name``)."""
    secret_name: Text | None = None
    """The secret holding the key (``SECRET_NAME``)."""
    secret_project: Text | None = None
    """The Google Cloud project of the secret (``SECRET_PROJECT``)."""
    refresh_interval_hours: PositiveSeconds = 24.0
    """Re-read the key this often (hours); it is also re-read after a 401."""
    secret_manager: Literal["gcp", "aws"] | None = None
    """tether's key: which secret manager (default gcp with ``secret_project``, else aws)."""
    secret_region: Text | None = None
    """tether's key: the AWS region."""
    secret_endpoint: Url | None = None
    """tether's key: the secret manager's endpoint (``EXTERNAL_API_SECRET_ENDPOINT``)."""

    @model_validator(mode="after")
    def _supported(self) -> Authentication:
        if self.type == "oauth2":
            raise FieldRuleError(
                ("type",),
                "authentication type oauth2 is not supported in this file: it has no token URL or client "
                "id; use type api_key, or an integration spec's authentication section for OAuth2",
            )
        if self.secret_name is None:
            raise FieldRuleError(("secret_name",), "authentication needs secret_name (or SECRET_NAME)")
        if self.credentials_source == "env":
            for key in ("secret_project", "secret_manager", "secret_region", "secret_endpoint"):
                if getattr(self, key) is not None:
                    raise FieldRuleError((key,), f"{key} applies to credentials_source secret_manager")
        elif self.manager == "gcp" and self.secret_project is None:
            raise FieldRuleError(("secret_project",), "the gcp secret manager needs secret_project")
        return self

    @property
    def manager(self) -> Literal["gcp", "aws"]:
        if self.secret_manager is not None:
            return self.secret_manager
        return "gcp" if self.secret_project is not None else "aws"


class RequestsPerMinute(SpecModel):
    """Requests per minute of each tier."""

    free: PositiveInt = 5
    """The free tier."""
    premium: PositiveInt = 75
    """The premium tier."""
    enterprise: PositiveInt = 1000
    """The enterprise tier."""


Tier = Literal["free", "premium", "enterprise"]


class RateLimits(SpecModel):
    """Client-side rate limits."""

    tier: Tier = "premium"
    """The API key's plan (``EXTERNAL_API_RATE_TIER``)."""
    requests_per_minute: RequestsPerMinute = RequestsPerMinute()
    """Requests per minute per tier (``EXTERNAL_API_RATE_LIMIT`` replaces the selected tier's)."""
    burst_allowance: NonNegativeInt = 10
    """Extra requests allowed at once above the steady rate, for the selected tier."""
    throttle_strategy: Literal["queue", "reject", "wait"] = "queue"
    """When the budget is spent: queue (bounded), reject at once, or wait without a bound."""
    max_queue_size: NonNegativeInt = 20
    """Callers that may queue; one more is rejected with RateLimitExceeded."""


_EXCEPTIONS: Final[Mapping[str, str]] = {
    "ConnectionError": "connection_error",
    "TimeoutError": "timeout",
    "RateLimitExceeded": "rate_limited",
    "APIError": "server_error",
}
_NEVER_RETRIED: Final = (400, 401, 403, 404)


class RetrySection(SpecModel):
    """Retrying failed attempts."""

    enabled: bool = True
    """Retry at all (``EXTERNAL_API_RETRY_ENABLED``)."""
    max_attempts: PositiveInt = 5
    """Attempts in all, the first included."""
    initial_delay_seconds: Seconds = 1.0
    """The first backoff delay."""
    max_delay_seconds: Seconds = 60.0
    """Cap on any delay."""
    backoff_multiplier: Annotated[float, Field(ge=1)] = 2.0
    """Growth of the delay per attempt."""
    add_jitter: bool = True
    """Add random jitter to each delay."""
    jitter_max_seconds: Seconds | None = 0.5
    """Up to this much jitter is added (``null``: full jitter, uniform over the delay)."""
    retryable_status_codes: tuple[HttpStatus, ...] = (429, 500, 502, 503, 504)
    """Statuses retried (400, 401, 403 and 404 never are)."""
    retryable_exceptions: tuple[
        Literal["ConnectionError", "TimeoutError", "RateLimitExceeded", "APIError"], ...
    ] = (
        "ConnectionError",
        "TimeoutError",
        "RateLimitExceeded",
    )
    """Failures retried: ConnectionError, TimeoutError, RateLimitExceeded, APIError."""

    @model_validator(mode="after")
    def _consistent(self) -> RetrySection:
        if self.initial_delay_seconds > self.max_delay_seconds:
            raise FieldRuleError(
                ("initial_delay_seconds",),
                f"initial_delay_seconds ({self.initial_delay_seconds:g}) must not exceed max_delay_seconds "
                f"({self.max_delay_seconds:g})",
            )
        never = sorted(set(self.retryable_status_codes) & set(_NEVER_RETRIED))
        if never:
            raise FieldRuleError(
                ("retryable_status_codes",), f"statuses {never} are never retried (client errors)"
            )
        return self


class CircuitBreakerSection(SpecModel):
    """The circuit breaker."""

    enabled: bool = True
    """Use the breaker at all (``EXTERNAL_API_CIRCUIT_ENABLED``)."""
    failure_threshold: PositiveInt = 5
    """Consecutive failures that open it …"""
    failure_window_seconds: PositiveSeconds = 60.0
    """… within this window."""
    success_threshold: PositiveInt = 2
    """Consecutive successes in half-open that close it."""
    open_timeout_seconds: PositiveSeconds = 30.0
    """How long it stays open."""
    half_open_max_calls: PositiveInt = 1
    """Probes admitted in half-open."""
    alert_on_open: bool = True
    """Emit an alert event when it opens."""


class TtlSeconds(SpecModel):
    """TTL per kind of data, seconds."""

    data: Seconds = 30.0
    """Real-time data (``get_data``; ``EXTERNAL_API_CACHE_TTL``)."""
    historical_daily: Seconds = 3600.0
    """Daily (and monthly) history."""
    historical_weekly: Seconds = 86400.0
    """Weekly history."""
    metadata: Seconds = 86400.0
    """Metadata (``/metadata/*`` requests)."""


class CacheSection(SpecModel):
    """The response cache."""

    enabled: bool = True
    """Cache at all."""
    backend: Literal["redis", "memory"] = "memory"
    """``memory`` (one process) or ``redis`` (shared by every instance)."""
    redis_url: str | None = None
    """The Redis of the ``redis`` backend."""
    ttl_seconds: TtlSeconds = TtlSeconds()
    """TTLs per kind of data."""
    max_size_mb: PositiveSeconds = 512.0
    """Byte bound, MB (10^6 bytes)."""
    eviction_policy: Literal["lru", "lfu", "ttl"] = "lru"
    """lru, lfu or ttl (lfu and ttl need backend redis)."""

    @model_validator(mode="after")
    def _backend(self) -> CacheSection:
        if self.backend == "redis" and not self.redis_url:
            raise FieldRuleError(("redis_url",), "cache backend redis needs redis_url")
        if self.redis_url is not None and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise FieldRuleError(("redis_url",), "redis_url must start with redis://, rediss:// or unix://")
        if self.eviction_policy != "lru" and self.backend != "redis":
            raise FieldRuleError(
                ("eviction_policy",),
                f"eviction_policy {self.eviction_policy} needs backend redis; the memory backend evicts lru",
            )
        return self


class MonitoringSection(SpecModel):
    """Metrics, logs, traces and alerts."""

    metrics_enabled: bool = True
    """Export Prometheus metrics."""
    logging_level: Annotated[
        Literal["DEBUG", "INFO", "WARNING", "ERROR"],
        BeforeValidator(lambda v: v.strip().upper() if isinstance(v, str) else v),
    ] = "INFO"
    """Lowest level of tether's event log lines."""
    trace_sampling_rate: Ratio = 0.1
    """Share of calls traced."""
    alert_on_errors: bool = True
    """Alert when the error rate passes ``error_threshold_percent``."""
    error_threshold_percent: Annotated[float, Field(gt=0, le=100)] = 5.0
    """Error-rate alert threshold, percent."""
    latency_p95_threshold_ms: Annotated[float, Field(gt=0)] = 500.0
    """p95 latency alert threshold, milliseconds."""


class ExternalAPIConfig(SpecModel):
    """The ``external_api:`` section."""

    connection: Connection = Connection()
    """Where and how to connect."""
    authentication: Authentication
    """Where the API key comes from."""
    rate_limits: RateLimits = RateLimits()
    """Client-side rate limits."""
    retry: RetrySection = RetrySection()
    """Retrying."""
    circuit_breaker: CircuitBreakerSection = CircuitBreakerSection()
    """The circuit breaker."""
    cache: CacheSection = CacheSection()
    """The response cache."""
    monitoring: MonitoringSection = MonitoringSection()
    """Metrics, logs, traces, alerts."""

    @model_validator(mode="after")
    def _needs_url(self) -> ExternalAPIConfig:
        if self.connection.base_url is None:
            raise FieldRuleError(
                ("connection", "base_url"), "connection.base_url (or EXTERNAL_API_URL) is required"
            )
        return self


class ConfigFile(SpecModel):
    """A data API client configuration file."""

    external_api: ExternalAPIConfig
    """The client's settings."""


# --- loading ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """A loaded configuration: the model, where it came from, and which variables overrode it."""

    model: ExternalAPIConfig
    source: str
    overridden: Mapping[str, str]  # variable -> dotted key

    @property
    def tier(self) -> Tier:
        return self.model.rate_limits.tier

    def spec_document(self) -> dict[str, Any]:
        """The bundled integration spec with this configuration laid over it."""
        return _overlay(_bundled(), self.model)

    def summary(self) -> list[str]:
        """The effective settings, one line per section (for ``tether check``)."""
        m = self.model
        c, a, r, t, b, k, o = (
            m.connection,
            m.authentication,
            m.rate_limits,
            m.retry,
            m.circuit_breaker,
            m.cache,
            m.monitoring,
        )
        where = (
            f"env {a.secret_name}"
            if a.credentials_source == "env"
            else f"{a.manager} secret manager: {a.secret_name}"
            + (f" (project {a.secret_project})" if a.secret_project else "")
        )
        rpm = getattr(r.requests_per_minute, r.tier)
        lines = [
            f"connection: {c.base_url}, {c.http_version}, timeout {c.timeout_seconds:g}s, "
            f"pool {c.max_connections}, keep-alive {c.keepalive_seconds:g}s",
            f"authentication: {a.type} from {where}, re-read every {a.refresh_interval_hours:g}h",
            f"rate limits: tier {r.tier}, {rpm}/minute + {r.burst_allowance} burst, "
            f"{r.throttle_strategy}, max queue {r.max_queue_size}",
            "retry: off"
            if not t.enabled
            else f"retry: {t.max_attempts} attempts, {t.initial_delay_seconds:g}s×{t.backoff_multiplier:g} "
            f"up to {t.max_delay_seconds:g}s, on {list(t.retryable_status_codes)}",
            "circuit breaker: off"
            if not b.enabled
            else f"circuit breaker: {b.failure_threshold} failures in {b.failure_window_seconds:g}s, "
            f"open {b.open_timeout_seconds:g}s, closes after {b.success_threshold}",
            "cache: off"
            if not k.enabled
            else f"cache: {k.backend}, data {k.ttl_seconds.data:g}s, "
            f"daily {k.ttl_seconds.historical_daily:g}s, weekly {k.ttl_seconds.historical_weekly:g}s, "
            f"metadata {k.ttl_seconds.metadata:g}s, "
            f"{k.max_size_mb:g} MB {k.eviction_policy}",
            f"monitoring: metrics {'on' if o.metrics_enabled else 'off'}, log {o.logging_level}, "
            f"traces {o.trace_sampling_rate:.0%}",
        ]
        lines += [f"{variable} overrides {key}" for variable, key in self.overridden.items()]
        return lines

    def spec_text(self) -> str:
        return yaml.safe_dump(self.spec_document(), sort_keys=False)

    def spec(self, *, environ: Mapping[str, str] | None = None) -> Spec:
        """The integration spec this configuration describes (``tether.open`` takes it)."""
        from tether.spec._loader import load

        return load(self.spec_text(), environ=environ if environ is not None else {})


def is_client_config(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a data API client configuration (a mapping with ``external_api``)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return False
    data, _, _ = parse(text, str(path))
    return isinstance(data, dict) and ROOT in data and len(data) == 1


def load_config(path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None) -> ClientConfig:
    """Read and validate a configuration file, with the environment variables laid over it.

    Raises ``SpecLoadError`` (a ``SpecError``) listing every problem as ``file:line:column``;
    a bad variable's problem names the variable and the key it overrides.
    """
    environment = os.environ if environ is None else environ
    file = Path(path)
    label = str(file)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SpecLoadError(
            [Problem(Location(label, 1, 1), f"cannot read configuration: {reason}")], source=label
        ) from None
    data, marks, parse_problems = parse(text, label)
    problems = [Problem(p.location, p.message, dotted(p.path)) for p in parse_problems]
    if not isinstance(data, dict) or not isinstance(data.get(ROOT), dict):
        problems.append(
            Problem(marks.locate(()), f"a client configuration is a mapping with one key, {ROOT}:")
        )
        raise SpecLoadError(problems, source=label)
    section: dict[str, Any] = data[ROOT]
    overridden: dict[str, str] = {}
    tier = environment.get("EXTERNAL_API_RATE_TIER") or _get(section, ("rate_limits", "tier")) or "premium"
    for override in ENV_OVERRIDES:
        raw = environment.get(override.variable)
        if raw is None or raw == "":
            continue
        key = tuple(str(tier).strip().lower() if part == "<tier>" else part for part in override.path)
        _put(section, key, raw.strip())
        overridden[override.variable] = dotted((ROOT, *key))
    model: ConfigFile | None = None
    try:
        model = ConfigFile.model_validate(data)
    except ValidationError as exc:
        for problem in problems_from_validation(exc, ConfigFile, data, marks, skip=set()):
            by = next((v for v, k in overridden.items() if problem.path and problem.path.startswith(k)), None)
            message = f"{problem.message} (from environment variable {by})" if by else problem.message
            problems.append(Problem(problem.location, message, problem.path))
    if problems or model is None:
        raise SpecLoadError(
            problems or [Problem(Location(label, 1, 1), "invalid configuration")], source=label
        )
    return ClientConfig(model.external_api, label, overridden)


def _get(node: Any, path: KeyPath) -> Any:
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _put(node: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[path[-1]] = value


# --- the spec it becomes ----------------------------------------------------------------------------


def _bundled() -> dict[str, Any]:
    text = resources.files("tether.dataapi").joinpath("spec.yaml").read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def _s(seconds: float) -> str:
    return f"{seconds:g}s"


def _overlay(spec: dict[str, Any], config: ExternalAPIConfig) -> dict[str, Any]:
    """Lay ``config`` over the bundled spec document (see ``CONFIG_EFFECTS``)."""
    conn = config.connection
    assert conn.base_url is not None
    spec["service"]["base_url"] = conn.base_url
    spec["service"].pop("environments", None)
    total = max(60.0, conn.timeout_seconds)
    spec["timeouts"].update(read=_s(conn.timeout_seconds), attempt=_s(conn.timeout_seconds), total=_s(total))
    spec["http"].update(
        max_connections=conn.max_connections,
        keepalive=_s(conn.keepalive_seconds),
        version="2" if conn.http_version == "HTTP/2" else "1.1",
    )

    auth = config.authentication
    hours = f"{auth.refresh_interval_hours:g}h"
    auth_config: dict[str, Any] = {
        "key_location": "header",
        "key_name": "X-API-Key",
        "refresh_interval": hours,
    }
    if auth.credentials_source == "env":
        auth_config["secret"] = "${" + str(auth.secret_name) + "}"
    else:
        auth_config.update(
            credentials_source="secret_manager", secret_manager=auth.manager, secret_name=auth.secret_name
        )
        for key in ("secret_project", "secret_region", "secret_endpoint"):
            if getattr(auth, key) is not None:
                auth_config[key] = getattr(auth, key)
    spec["authentication"] = {"type": "api_key", "config": auth_config}

    rates = config.rate_limits
    per_minute = rates.requests_per_minute
    tiers: dict[str, Any] = {
        name: {"requests_per_minute": getattr(per_minute, name)} for name in ("free", "premium", "enterprise")
    }
    if rates.burst_allowance:
        tiers[rates.tier]["burst_size"] = rates.burst_allowance
    spec["rate_limits"]["tiers"] = tiers
    spec["rate_limits"]["tier"] = "${EXTERNAL_API_RATE_TIER:-" + rates.tier + "}"
    spec["throttling"].update(on_limit=rates.throttle_strategy, max_queue=rates.max_queue_size)

    retry = config.retry
    spec["retry"] = {
        "enabled": retry.enabled,
        "max_attempts": retry.max_attempts,
        "initial_delay": _s(retry.initial_delay_seconds),
        "max_delay": _s(retry.max_delay_seconds),
        "backoff": "exponential",
        "backoff_multiplier": retry.backoff_multiplier,
        "jitter": retry.add_jitter,
        "retry_on": list(retry.retryable_status_codes),
        "never_retry_on": list(_NEVER_RETRIED),
        "retry_conditions": [_EXCEPTIONS[name] for name in retry.retryable_exceptions],
    }
    if retry.jitter_max_seconds is not None:
        spec["retry"]["jitter_max"] = _s(retry.jitter_max_seconds)

    breaker = config.circuit_breaker
    spec["circuit_breaker"] = {
        "enabled": breaker.enabled,
        "failure_threshold": breaker.failure_threshold,
        "window": _s(breaker.failure_window_seconds),
        "timeout": _s(breaker.open_timeout_seconds),
        "half_open_requests": breaker.half_open_max_calls,
        "success_threshold": breaker.success_threshold,
    }

    cache = config.cache
    ttl = cache.ttl_seconds
    section: dict[str, Any] = {
        "enabled": cache.enabled,
        "backend": cache.backend,
        "ttl": _s(ttl.data),
        "stale_if_error": spec["cache"].get("stale_if_error", "1h"),
        "max_size_mb": cache.max_size_mb,
        "eviction_policy": cache.eviction_policy,
        "ttl_by_path": {"/metadata/*": _s(ttl.metadata)},
        "ttl_by_param": {
            "interval": {
                "daily": _s(ttl.historical_daily),
                "weekly": _s(ttl.historical_weekly),
                "monthly": _s(ttl.historical_daily),
            }
        },
    }
    if cache.backend == "redis":  # with memory, a redis_url written in the file is unused
        section["redis_url"] = cache.redis_url
    spec["cache"] = section
    spec["endpoints"]["get_data"]["cache"] = {"ttl": _s(ttl.data)}
    spec["endpoints"]["get_historical"]["cache"] = {"ttl": _s(ttl.historical_daily)}
    if "list_identifiers" in spec["endpoints"]:  # the API's metadata: which identifiers exist
        spec["endpoints"]["list_identifiers"]["cache"] = {"ttl": _s(ttl.metadata)}

    monitoring = config.monitoring
    alerts = []
    if monitoring.alert_on_errors:
        alerts.append(
            {"condition": f"error_rate > {monitoring.error_threshold_percent:g}%", "severity": "critical"}
        )
    alerts.append(
        {"condition": f"response_time_p95 > {monitoring.latency_p95_threshold_ms:g}ms", "severity": "warning"}
    )
    spec["monitoring"] = {
        "metrics_enabled": monitoring.metrics_enabled,
        "alert_on_open": breaker.alert_on_open,
        "logging": {"level": monitoring.logging_level.lower(), "mask_sensitive": True},
        "alerts": alerts,
        "tracing": {
            "enabled": monitoring.trace_sampling_rate > 0,
            "sample_rate": monitoring.trace_sampling_rate,
        },
    }
    return spec
