"""Spec sections for the connection and the resilience policies.

Defaults are tether's (DESIGN section 4) and live as ``DEFAULT_*`` class constants so that
``tether check --explain`` and the docs print the same numbers the models fill in. Where a section
becomes a runtime option object (``tether._build``), its constants *are* that class's own
(``Bulkhead.DEFAULT_MAX_QUEUE``, ``EngineOptions.DEFAULT_MAX_RESPONSE_SIZE`` …), so the docs'
Default column cannot drift from what the runtime does.
"""

from __future__ import annotations

import dataclasses
import string
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import BeforeValidator, Field, NonNegativeInt, PositiveInt, field_validator, model_validator

from tether._config import Timeouts as TimeoutOptions
from tether.dlq._replay import ReplaySchedule
from tether.pipeline.breaker import Breaker as BreakerOptions
from tether.pipeline.bulkhead import Bulkhead as BulkheadOptions
from tether.pipeline.cache import Cache as CacheOptions
from tether.pipeline.rate import Rate as RateOptions
from tether.pipeline.retry import Retry as RetryOptions
from tether.pipeline.retry import RetryBudget as RetryBudgetOptions
from tether.spec._base import AlsoAccepts, HeaderName, Name, SpecModel, Text, Url, any_case
from tether.spec._types import (
    FieldRuleError,
    HttpStatus,
    Millis,
    Ratio,
    Seconds,
    SecretRef,
    Size,
)
from tether.transport._options import EngineOptions

__all__ = [
    "AuthConfig",
    "Authentication",
    "Bulkhead",
    "Cache",
    "CircuitBreaker",
    "CircuitBreakerMonitoring",
    "Dlq",
    "HttpOptions",
    "RateLimitHeaders",
    "RateLimits",
    "RateWindows",
    "Retry",
    "RetryBudget",
    "Service",
    "State",
    "Streaming",
    "Throttling",
    "Timeouts",
]


# --- service ---------------------------------------------------------------------------------------


class Service(SpecModel):
    """The external service: its name, version and where it lives in each environment."""

    DEFAULT_ENVIRONMENT: ClassVar[str] = "production"

    name: Name
    """The service's name; used in errors, events, metric labels and state-store keys."""
    version: Text | None = None
    """The version of the service's API this spec describes (informational; see ``versioning``)."""
    base_url: Url | None = None
    """The API's base URL; endpoint paths are appended to it. Used when no environment is selected."""
    environments: dict[Name, Url] = Field(default_factory=dict)
    """Base URL per environment (development, staging, production …). The loader picks one by
    ``load(env=…)``, else ``TETHER_ENV``, else ``default_environment``, else ``production``."""
    default_environment: Name | None = None
    """The environment used when neither ``env=`` nor ``TETHER_ENV`` names one."""
    headers: dict[HeaderName, str] = Field(default_factory=dict)
    """Headers sent with every request (e.g. ``Accept``, ``User-Agent``)."""

    @model_validator(mode="after")
    def _where(self) -> Service:
        if self.base_url is None and not self.environments:
            raise ValueError("service needs base_url or environments (a base URL per environment)")
        if self.default_environment is not None and self.default_environment not in self.environments:
            known = ", ".join(self.environments) or "none"
            raise FieldRuleError(
                ("default_environment",),
                f"default_environment {self.default_environment!r} is not in environments (known: {known})",
            )
        return self


# --- authentication --------------------------------------------------------------------------------

AuthType = Literal["api_key", "oauth", "oauth2", "jwt", "basic", "bearer", "none"]
JwtAlgorithm = Literal["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]

_GENERIC_AUTH_KEYS: Final = frozenset({"token_refresh", "expires_in", "refresh_interval"})
#: Keys that read the api_key / bearer secret from a secret manager instead of ``secret``.
_MANAGER_KEYS: Final = frozenset(
    {
        "credentials_source",
        "secret_manager",
        "secret_name",
        "secret_project",
        "secret_region",
        "secret_endpoint",
    }
)
_AUTH_KEYS: Final[dict[str, frozenset[str]]] = {
    "api_key": frozenset({"key_location", "key_name", "value", "secret"}) | _MANAGER_KEYS,
    "bearer": frozenset({"key_name", "value", "secret"}) | _MANAGER_KEYS,
    "basic": frozenset({"username", "password"}),
    "oauth2": frozenset(
        {
            "token_url",
            "client_id",
            "client_secret",
            "scopes",
            "audience",
            "grant_type",
            "refresh_token",
            "refresh_before",
            "key_name",
            "value",
        }
    ),
    "jwt": frozenset(
        {
            "secret",
            "private_key",
            "algorithm",
            "issuer",
            "subject",
            "audience",
            "claims",
            "refresh_before",
            "key_name",
            "value",
        }
    ),
    "none": frozenset(),
}
_VALUE_FIELDS: Final = frozenset({"secret", "token"})


def _option_default(cls: type, name: str) -> Any:
    """The default of field ``name`` of the option dataclass ``cls`` (for defaults that have no
    ``DEFAULT_*`` constant of their own, e.g. ``EngineOptions.follow_redirects``)."""
    return {f.name: f.default for f in dataclasses.fields(cls)}[name]


def _scopes(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(value.split())
    return value


class AuthConfig(SpecModel):
    """Settings of the authentication scheme; which keys apply depends on ``type``."""

    DEFAULT_KEY_NAME: ClassVar[dict[str, str]] = {
        "header": "X-API-Key",
        "query": "api_key",
        "body": "api_key",
    }
    DEFAULT_BEARER_HEADER: ClassVar[str] = "Authorization"
    DEFAULT_REFRESH_BEFORE: ClassVar[float] = 60.0

    key_location: Literal["header", "query", "body"] | None = None
    """api_key: where the key goes (default ``header``)."""
    key_name: str | None = None
    """The header, query or body field that carries the credential (api_key default ``X-API-Key``
    in a header, ``api_key`` in a query or body; bearer/oauth2/jwt default ``Authorization``)."""
    value: str | None = None
    """Template of the sent value, with ``{secret}`` (api_key, bearer) or ``{token}`` (oauth2, jwt),
    e.g. ``"Token {secret}"``. Default: the bare key for api_key, ``"Bearer {…}"`` otherwise."""
    secret: SecretRef | None = None
    """The API key (api_key), the token (bearer) or the signing key (jwt HS*). ``${VAR}`` is kept
    as a reference and read when the integration starts."""
    credentials_source: Literal["secret_manager"] | None = None
    """api_key/bearer: ``secret_manager`` reads the key from a secret manager (``secret_name``
    …) instead of ``secret``; it is re-read every ``refresh_interval`` and after a 401."""
    secret_manager: Literal["gcp", "aws"] | None = None
    """Which secret manager: ``gcp`` (Google Cloud Secret Manager, the default when
    ``secret_project`` is given) or ``aws`` (AWS Secrets Manager, the default otherwise)."""
    secret_name: Text | None = None
    """The secret's name (AWS: its name or ARN). Often ``${SECRET_NAME}``."""
    secret_project: Text | None = None
    """gcp: the Google Cloud project that holds the secret. Often ``${SECRET_PROJECT}``."""
    secret_region: Text | None = None
    """aws: the region (default: the AWS configuration's, e.g. ``AWS_REGION``)."""
    secret_endpoint: Url | None = None
    """The secret manager's API endpoint, to replace the public one (a private endpoint or a
    local emulator)."""
    token_refresh: bool | None = None
    """oauth2/jwt: refresh the token before it expires (default true)."""
    expires_in: Seconds | None = None
    """Token lifetime when the token endpoint does not say (oauth2), or the lifetime of minted
    tokens (jwt)."""
    refresh_before: Seconds | None = None
    """oauth2/jwt: refresh this long before expiry (default 60 s)."""
    refresh_interval: Seconds | None = None
    """Re-read secrets from their source this often (rotation), e.g. ``24h``."""
    token_url: Url | None = None
    """oauth2: the token endpoint."""
    client_id: Text | None = None
    """oauth2: the client id."""
    client_secret: SecretRef | None = None
    """oauth2: the client secret (kept as a reference, like ``secret``)."""
    scopes: Annotated[tuple[str, ...], BeforeValidator(_scopes), AlsoAccepts({"type": "string"})] | None = (
        None
    )
    """oauth2: scopes to request (a list, or one space-separated string)."""
    audience: str | None = None
    """oauth2/jwt: the audience to request or to put in the token."""
    grant_type: Literal["client_credentials", "refresh_token"] | None = None
    """oauth2: the grant (default ``client_credentials``; ``refresh_token`` needs ``refresh_token``)."""
    refresh_token: SecretRef | None = None
    """oauth2: the refresh token for the ``refresh_token`` grant."""
    username: Text | None = None
    """basic: the user name."""
    password: SecretRef | None = None
    """basic: the password (kept as a reference, like ``secret``)."""
    private_key: SecretRef | None = None
    """jwt: the PEM private key for RS*/ES*/PS* algorithms."""
    algorithm: JwtAlgorithm | None = None
    """jwt: the signing algorithm (default HS256)."""
    issuer: str | None = None
    """jwt: the ``iss`` claim."""
    subject: str | None = None
    """jwt: the ``sub`` claim."""
    claims: dict[str, Any] = Field(default_factory=dict)
    """jwt: extra claims."""

    def secret_manager_kind(self) -> Literal["gcp", "aws"]:
        """The secret manager in use: ``secret_manager``, else gcp with a project, else aws."""
        if self.secret_manager is not None:
            return self.secret_manager
        return "gcp" if self.secret_project is not None else "aws"

    @field_validator("value")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            fields = [name for _, name, _, _ in string.Formatter().parse(value) if name is not None]
        except ValueError as exc:
            raise ValueError(f"value template {value!r} is malformed: {exc}") from None
        unknown = [name for name in fields if name not in _VALUE_FIELDS]
        if unknown:
            raise ValueError(f"value template may use {{secret}} or {{token}}, not {{{unknown[0]}}}")
        return value


class Authentication(SpecModel):
    """How requests are authenticated."""

    type: AuthType
    """The scheme: ``api_key``, ``bearer``, ``basic``, ``oauth2`` (``oauth`` is the same),
    ``jwt`` or ``none``."""
    config: AuthConfig = AuthConfig()
    """The scheme's settings."""

    @property
    def scheme(self) -> str:
        """The type with ``oauth`` spelled ``oauth2``."""
        return "oauth2" if self.type == "oauth" else self.type

    def effective(self) -> dict[str, tuple[Any, bool]]:
        """The keys that apply to this scheme, with defaults filled in: ``{key: (value, given)}``."""
        config = self.config
        defaults: dict[str, Any] = {}
        if self.scheme == "api_key":
            location = config.key_location or "header"
            defaults = {
                "key_location": location,
                "key_name": AuthConfig.DEFAULT_KEY_NAME[location],
                "value": "{secret}",
            }
        elif self.scheme == "bearer":
            defaults = {"key_name": AuthConfig.DEFAULT_BEARER_HEADER, "value": "Bearer {secret}"}
        elif self.scheme in ("oauth2", "jwt"):
            defaults = {
                "key_name": AuthConfig.DEFAULT_BEARER_HEADER,
                "value": "Bearer {token}",
                "token_refresh": True,
                "refresh_before": AuthConfig.DEFAULT_REFRESH_BEFORE,
            }
            defaults.update(
                {"grant_type": "client_credentials"} if self.scheme == "oauth2" else {"algorithm": "HS256"}
            )
        allowed = _AUTH_KEYS[self.scheme] | (_GENERIC_AUTH_KEYS if self.scheme != "none" else frozenset())
        out: dict[str, tuple[Any, bool]] = {}
        for key in AuthConfig.model_fields:
            if key not in allowed:
                continue
            if key in config.model_fields_set:
                out[key] = (getattr(config, key), True)
            elif key in defaults:
                out[key] = (defaults[key], False)
        return out

    @model_validator(mode="after")
    def _per_type(self) -> Authentication:
        allowed = _AUTH_KEYS[self.scheme] | (_GENERIC_AUTH_KEYS if self.scheme != "none" else frozenset())
        for key in sorted(self.config.model_fields_set):
            if key not in allowed:
                raise FieldRuleError(("config", key), f"{key} does not apply to {self.type} authentication")
        config = self.config

        def need(key: str, why: str) -> None:
            if getattr(config, key) is None:
                raise FieldRuleError(("config",), f"{self.type} authentication needs config.{key} ({why})")

        if config.credentials_source == "secret_manager":
            need("secret_name", "the secret to read from the secret manager")
            if config.secret is not None:
                raise FieldRuleError(
                    ("config", "secret"), "give secret or credentials_source: secret_manager, not both"
                )
            if config.secret_manager_kind() == "gcp":
                need("secret_project", "the Google Cloud project of the secret")
            elif config.secret_project is not None:
                raise FieldRuleError(
                    ("config", "secret_project"), "secret_project applies to secret_manager gcp, not aws"
                )
            if config.secret_manager_kind() == "gcp" and config.secret_region is not None:
                raise FieldRuleError(
                    ("config", "secret_region"), "secret_region applies to secret_manager aws, not gcp"
                )
        else:
            for key in sorted(_MANAGER_KEYS - {"credentials_source"}):
                if getattr(config, key) is not None:
                    raise FieldRuleError(("config", key), f"{key} needs credentials_source: secret_manager")
        if self.scheme in ("api_key", "bearer") and config.credentials_source is None:
            need("secret", "the key, e.g. '${API_KEY}'")
        elif self.scheme == "basic":
            need("username", "the user name")
            need("password", "e.g. '${API_PASSWORD}'")
        elif self.scheme == "oauth2":
            need("token_url", "the token endpoint")
            if config.grant_type == "refresh_token":
                need("refresh_token", "the refresh_token grant")
            else:
                need("client_id", "the client_credentials grant")
                need("client_secret", "the client_credentials grant")
        elif self.scheme == "jwt":
            algorithm = config.algorithm or "HS256"
            if algorithm.startswith("HS"):
                need("secret", f"the {algorithm} signing key")
            else:
                need("private_key", f"the {algorithm} private key")
        return self


# --- timeouts and the connection -------------------------------------------------------------------


class Timeouts(SpecModel):
    """Timeouts. A bare number is milliseconds (the template's unit); ``null`` means no limit."""

    DEFAULT_CONNECT: ClassVar[float] = TimeoutOptions.DEFAULT_CONNECT
    DEFAULT_READ: ClassVar[float] = TimeoutOptions.DEFAULT_READ
    DEFAULT_WRITE: ClassVar[float] = TimeoutOptions.DEFAULT_WRITE
    DEFAULT_POOL: ClassVar[float] = TimeoutOptions.DEFAULT_POOL
    DEFAULT_TOTAL: ClassVar[float] = TimeoutOptions.DEFAULT_TOTAL

    connect: Millis | None = DEFAULT_CONNECT
    """Time to open a connection (TCP + TLS)."""
    read: Millis | None = DEFAULT_READ
    """Time to wait for each chunk of the response."""
    write: Millis | None = DEFAULT_WRITE
    """Time to send each chunk of the request."""
    pool: Millis | None = DEFAULT_POOL
    """Time to wait for a free connection from the pool."""
    attempt: Millis | None = None
    """Bound on one whole attempt (send + read the body); must not exceed ``total``."""
    total: Millis | None = DEFAULT_TOTAL
    """The call's deadline: covers rate-limit queueing, backoff sleeps and every attempt."""

    @model_validator(mode="after")
    def _attempt_within_total(self) -> Timeouts:
        if self.attempt is not None and self.total is not None and self.attempt > self.total:
            raise FieldRuleError(
                ("attempt",), f"attempt ({self.attempt:g}s) must not exceed total ({self.total:g}s)"
            )
        for name in ("connect", "read", "write", "pool", "attempt", "total"):
            if getattr(self, name) == 0:
                raise FieldRuleError((name,), f"{name} must be positive (write null for no limit)")
        return self


def _http_version(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str):
        value = value.strip().upper().removeprefix("HTTP/")
        return {"1": "1.1", "2.0": "2"}.get(value, value)
    return value


class HttpOptions(SpecModel):
    """The HTTP connection (tether's own; REQ-001 ``connection`` settings)."""

    DEFAULT_VERSION: ClassVar[Literal["1.1", "2"]] = _option_default(EngineOptions, "http_version")
    DEFAULT_MAX_CONNECTIONS: ClassVar[int] = EngineOptions.DEFAULT_MAX_CONNECTIONS
    DEFAULT_KEEPALIVE: ClassVar[float] = EngineOptions.DEFAULT_KEEPALIVE
    DEFAULT_MAX_REDIRECTS: ClassVar[int] = EngineOptions.DEFAULT_MAX_REDIRECTS
    DEFAULT_FOLLOW_REDIRECTS: ClassVar[bool] = _option_default(EngineOptions, "follow_redirects")
    DEFAULT_MAX_RESPONSE_SIZE: ClassVar[int] = EngineOptions.DEFAULT_MAX_RESPONSE_SIZE

    version: Annotated[
        Literal["1.1", "2"],
        BeforeValidator(_http_version),
        any_case("1.1", "2", "HTTP/1.1", "HTTP/2"),
        AlsoAccepts({"type": "number"}),
    ] = DEFAULT_VERSION
    """``"1.1"`` (the aiohttp engine, default) or ``"2"`` (httpx2's HTTP/2 transport)."""
    max_connections: PositiveInt = DEFAULT_MAX_CONNECTIONS
    """Connection pool size."""
    keepalive: Seconds = DEFAULT_KEEPALIVE
    """How long an idle connection is kept open."""
    follow_redirects: bool = DEFAULT_FOLLOW_REDIRECTS
    """Follow redirects (credentials are never sent to another origin; https→http is refused)."""
    max_redirects: NonNegativeInt = DEFAULT_MAX_REDIRECTS
    """Redirects followed before giving up."""
    max_response_size: Size | None = DEFAULT_MAX_RESPONSE_SIZE
    """Refuse response bodies larger than this (``ResponseError``); ``null`` for no limit."""
    verify_tls: bool = True
    """Verify TLS certificates."""


# --- rate limits and throttling --------------------------------------------------------------------

_WINDOWS: Final = (
    "requests_per_second",
    "requests_per_minute",
    "requests_per_hour",
    "requests_per_day",
    "requests_per_month",
)


class RateWindows(SpecModel):
    """Request budgets over one or more windows, all enforced at once."""

    requests_per_second: PositiveInt | None = None
    """Requests allowed per second."""
    requests_per_minute: PositiveInt | None = None
    """Requests allowed per minute."""
    requests_per_hour: PositiveInt | None = None
    """Requests allowed per hour."""
    requests_per_day: PositiveInt | None = None
    """Requests allowed per day."""
    requests_per_month: PositiveInt | None = None
    """Requests allowed per calendar month."""
    burst_size: NonNegativeInt | None = None
    """Extra requests allowed at once above the steady rate (bucket capacity = rate + burst)."""

    def windows(self) -> dict[str, int]:
        """The windows given, by key."""
        return {name: getattr(self, name) for name in _WINDOWS if getattr(self, name) is not None}


class RateLimitHeaders(SpecModel):
    """Provider-specific rate-limit response headers to learn from (standard ones are always read)."""

    limit: HeaderName | None = None
    """Header with the window's request limit (e.g. ``X-RateLimit-Limit``)."""
    remaining: HeaderName | None = None
    """Header with the requests left in the window."""
    reset: HeaderName | None = None
    """Header saying when the window resets."""
    reset_format: Literal["seconds", "epoch_s", "epoch_ms", "http_date"] = "seconds"
    """How ``reset`` is written: seconds from now, a Unix time (s or ms), or an HTTP date."""


class RateLimits(RateWindows):
    """Client-side rate limits: windows at the top level and/or per tier, with one tier selected."""

    tiers: dict[Name, RateWindows] = Field(default_factory=dict)
    """Named plans (free, premium, enterprise …), each with its own windows and burst."""
    tier: Name | None = None
    """The plan in use; its windows override the top-level ones. Often ``${API_TIER:-free}``."""
    headers: RateLimitHeaders | None = None
    """Provider-specific headers to learn the remaining budget from."""
    pause_on_429: bool = True
    """A 429 pauses every caller of this integration until the reset the server gave."""

    @model_validator(mode="after")
    def _tier(self) -> RateLimits:
        if self.tier is not None and self.tier not in self.tiers:
            known = ", ".join(self.tiers) or "none defined"
            raise FieldRuleError(("tier",), f"tier {self.tier!r} is not one of the tiers ({known})")
        if self.tiers and self.tier is None and not self.windows():
            raise FieldRuleError(
                ("tier",),
                f"tiers are defined but no tier is selected; set tier to one of: {', '.join(self.tiers)}",
            )
        return self

    def effective(self) -> RateWindows:
        """The windows in force: the top-level ones with the selected tier's laid over them."""
        merged = {name: getattr(self, name) for name in (*_WINDOWS, "burst_size")}
        if self.tier is not None:
            chosen = self.tiers[self.tier]
            merged.update({name: getattr(chosen, name) for name in chosen.model_fields_set})
        return RateWindows(**{k: v for k, v in merged.items() if v is not None})


class Throttling(SpecModel):
    """What the rate limiter does when the budget is spent."""

    DEFAULT_MAX_QUEUE: ClassVar[int] = RateOptions.DEFAULT_MAX_QUEUE

    strategy: Literal["fixed_window", "sliding_window", "token_bucket"] = "token_bucket"
    """The limiting algorithm (token bucket / GCRA by default)."""
    retry_after: Seconds | None = None
    """Wait after a 429 that carries no ``Retry-After`` or reset header."""
    backoff_multiplier: Annotated[float, Field(ge=1)] | None = None
    """Grow ``retry_after`` by this factor on consecutive 429s."""
    on_limit: Literal["queue", "wait", "reject"] = "queue"
    """``queue``: wait in FIFO order (bounded by ``max_queue``); ``wait``: wait without a bound;
    ``reject``: fail at once with ``RateLimitExceeded``."""
    max_queue: NonNegativeInt = DEFAULT_MAX_QUEUE
    """Callers that may wait in the queue; one more is rejected."""
    max_wait: Seconds | None = None
    """Longest a caller waits for a token (the call's total deadline also applies)."""


# --- retry and circuit breaker ---------------------------------------------------------------------

RetryCondition = Literal[
    "network_error",
    "connection_error",
    "timeout",
    "body_read_error",
    "service_unavailable",
    "server_error",
    "rate_limited",
]


class RetryBudget(SpecModel):
    """Retries allowed relative to calls, so an outage does not multiply load."""

    DEFAULT_RATIO: ClassVar[float] = RetryBudgetOptions.DEFAULT_RATIO
    DEFAULT_MIN_PER_SECOND: ClassVar[float] = RetryBudgetOptions.DEFAULT_MIN_PER_SECOND

    ratio: Ratio = DEFAULT_RATIO
    """Retries may be at most this fraction of calls …"""
    min_per_second: Annotated[float, Field(ge=0)] = DEFAULT_MIN_PER_SECOND
    """… plus this many per second regardless."""


class Retry(SpecModel):
    """Retrying failed attempts. Delays: bare numbers are milliseconds (the template's unit)."""

    DEFAULT_MAX_ATTEMPTS: ClassVar[int] = RetryOptions.DEFAULT_ATTEMPTS
    DEFAULT_INITIAL_DELAY: ClassVar[float] = RetryOptions.DEFAULT_INITIAL
    DEFAULT_MAX_DELAY: ClassVar[float] = RetryOptions.DEFAULT_MAX_DELAY
    DEFAULT_MULTIPLIER: ClassVar[float] = RetryOptions.DEFAULT_MULTIPLIER
    DEFAULT_RETRY_ON: ClassVar[tuple[int, ...]] = tuple(sorted(RetryOptions.DEFAULT_RETRY_ON))
    DEFAULT_NEVER_RETRY_ON: ClassVar[tuple[int, ...]] = tuple(sorted(RetryOptions.DEFAULT_NEVER_RETRY_ON))
    DEFAULT_CONDITIONS: ClassVar[tuple[RetryCondition, ...]] = ("network_error", "timeout", "body_read_error")

    enabled: bool = True
    """``false`` turns retrying off."""
    max_attempts: PositiveInt = DEFAULT_MAX_ATTEMPTS
    """Attempts in all, the first included."""
    initial_delay: Millis = DEFAULT_INITIAL_DELAY
    """The first backoff delay."""
    max_delay: Millis = DEFAULT_MAX_DELAY
    """Cap on any backoff delay."""
    backoff: Literal["exponential", "linear", "fixed"] = "exponential"
    """How delays grow: ×multiplier, +initial_delay, or constant."""
    backoff_multiplier: Annotated[float, Field(ge=1)] = DEFAULT_MULTIPLIER
    """Growth factor of exponential backoff."""
    jitter: bool = True
    """Full jitter: each delay is drawn uniformly from zero to the computed delay."""
    jitter_max: Millis | None = None
    """Bounded jitter instead: add up to this much to each computed delay (with ``jitter``)."""
    retry_on: tuple[HttpStatus, ...] = DEFAULT_RETRY_ON
    """Response statuses that are retried."""
    never_retry_on: tuple[HttpStatus, ...] = DEFAULT_NEVER_RETRY_ON
    """Statuses never retried, whatever else says so."""
    retry_conditions: tuple[RetryCondition, ...] = DEFAULT_CONDITIONS
    """Failures without a response that are retried."""
    respect_retry_after: bool = True
    """Never retry sooner than ``Retry-After`` or a rate-limit reset header asks."""
    max_retry_after: Millis | None = None
    """A server-asked wait longer than this fails at once with ``RateLimitExceeded`` (default: max_delay)."""
    budget: RetryBudget | None = RetryBudget()
    """Retry budget (``null`` for none)."""
    idempotency_header: str = "Idempotency-Key"
    """Header carrying an idempotency key; POST/PATCH are retried only when it is present."""
    auto_idempotency_key: bool = False
    """Add a fresh idempotency key to POST/PATCH requests that lack one."""

    @model_validator(mode="after")
    def _consistent(self) -> Retry:
        if self.initial_delay > self.max_delay:
            raise FieldRuleError(
                ("initial_delay",),
                f"initial_delay ({self.initial_delay:g}s) must not exceed max_delay ({self.max_delay:g}s)",
            )
        both = sorted(set(self.retry_on) & set(self.never_retry_on))
        if both:
            raise FieldRuleError(("retry_on",), f"statuses {both} are in both retry_on and never_retry_on")
        return self


class CircuitBreakerMonitoring(SpecModel):
    """The template's circuit-breaker monitoring block."""

    metrics_enabled: bool = True
    """Export the breaker state metric (``circuit_breaker_state``)."""
    alert_on_open: bool = True
    """Emit an alert event when the breaker opens."""


class CircuitBreaker(SpecModel):
    """The circuit breaker. ``timeout`` is in seconds when a bare number (the template's unit)."""

    DEFAULT_FAILURE_THRESHOLD: ClassVar[int] = BreakerOptions.DEFAULT_FAILURES
    DEFAULT_SUCCESS_THRESHOLD: ClassVar[int] = BreakerOptions.DEFAULT_CLOSE_AFTER
    DEFAULT_TIMEOUT: ClassVar[float] = BreakerOptions.DEFAULT_OPEN_FOR
    DEFAULT_HALF_OPEN_REQUESTS: ClassVar[int] = BreakerOptions.DEFAULT_HALF_OPEN_CALLS
    DEFAULT_WINDOW: ClassVar[float] = BreakerOptions.DEFAULT_WINDOW
    DEFAULT_FAILURE_RATE: ClassVar[float] = _option_default(BreakerOptions, "failure_rate")
    DEFAULT_MINIMUM_CALLS: ClassVar[int] = _option_default(BreakerOptions, "min_calls")
    DEFAULT_HALF_OPEN_TIMEOUT: ClassVar[float] = BreakerOptions.DEFAULT_HALF_OPEN_TIMEOUT

    enabled: bool = True
    """``false`` turns the breaker off."""
    failure_threshold: PositiveInt = DEFAULT_FAILURE_THRESHOLD
    """Consecutive failures (within ``window``) that open the breaker."""
    success_threshold: PositiveInt = DEFAULT_SUCCESS_THRESHOLD
    """Consecutive successes in half-open that close it."""
    timeout: Seconds = DEFAULT_TIMEOUT
    """How long the breaker stays open before admitting a probe."""
    half_open_requests: PositiveInt = DEFAULT_HALF_OPEN_REQUESTS
    """Probes admitted at once in half-open."""
    mode: Literal["consecutive", "failure_rate"] = "consecutive"
    """``consecutive`` failures, or the ``failure_rate`` over a sliding window."""
    window: Seconds = DEFAULT_WINDOW
    """The window failures are counted in."""
    failure_rate_threshold: Ratio = DEFAULT_FAILURE_RATE
    """failure_rate mode: open when the failure ratio over the window exceeds this …"""
    minimum_calls: PositiveInt = DEFAULT_MINIMUM_CALLS
    """… after at least this many calls in the window."""
    half_open_timeout: Seconds = DEFAULT_HALF_OPEN_TIMEOUT
    """A half-open state whose probe never answers reopens after this long."""
    shared: bool = False
    """Share the breaker state through the state store (every process sees one breaker)."""
    monitoring: CircuitBreakerMonitoring = CircuitBreakerMonitoring()
    """Metrics and alerting for the breaker."""


# --- cache, bulkhead, state, DLQ, streaming --------------------------------------------------------


def _stale(value: Any) -> Any:
    return None if value is False else value


class Cache(SpecModel):
    """Response cache (off until this section is given)."""

    DEFAULT_TTL: ClassVar[float] = CacheOptions.DEFAULT_TTL
    DEFAULT_MAX_ENTRIES: ClassVar[int] = CacheOptions.DEFAULT_MAX_ENTRIES
    DEFAULT_MAX_BYTES: ClassVar[int] = CacheOptions.DEFAULT_MAX_BYTES

    enabled: bool = True
    """``false`` keeps the section but turns caching off."""
    backend: Literal["memory", "sqlite", "redis", "state"] = "memory"
    """Where entries live: ``memory`` (one process), ``sqlite`` (the file ``url``), ``redis``
    (``redis_url``: shared by every instance, with coalescing of identical misses across
    processes), or ``state`` (the state store's SQLite file, or memory with a memory store)."""
    url: str | None = None
    """The sqlite file (a path, relative to the spec's folder, or ``sqlite:///path``) for the
    ``sqlite`` backend."""
    redis_url: str | None = None
    """The Redis of the ``redis`` backend (``redis://host:6379/0``; query options ``namespace``,
    ``name``, ``timeout``)."""
    ttl: Seconds = DEFAULT_TTL
    """How long a response is fresh (per-endpoint ``cache.ttl`` overrides it)."""
    stale_if_error: Annotated[Seconds | None, BeforeValidator(_stale), AlsoAccepts({"const": False})] = None
    """Serve an entry up to this long past expiry when upstream fails or the breaker is open."""
    max_entries: PositiveInt = DEFAULT_MAX_ENTRIES
    """LRU bound on the number of entries."""
    max_bytes: Size = DEFAULT_MAX_BYTES
    """Bound on the bytes held (body, headers and URL of each entry)."""
    max_size_mb: Annotated[float, Field(gt=0)] | None = None
    """The same bound in megabytes (10^6 bytes); give this or ``max_bytes``."""
    eviction_policy: Literal["lru", "lfu", "ttl"] = "lru"
    """Which entry goes when a bound is reached: least recently used, least frequently used, or
    closest to expiry. ``lfu`` and ``ttl`` need the ``redis`` backend."""
    vary_headers: tuple[HeaderName, ...] = ()
    """Request headers that are part of the cache key (credential identity always is)."""
    ttl_by_path: dict[str, Seconds] = Field(default_factory=dict)
    """TTLs for request paths, by glob relative to the base URL (``"/metadata/*": 24h``);
    endpoint ``cache.ttl`` wins."""
    ttl_by_param: dict[str, dict[str, Seconds]] = Field(default_factory=dict)
    """TTLs by the value of a query parameter, for endpoints serving several kinds of data
    (``{interval: {daily: 1h, weekly: 24h}}``); tried before any other TTL."""
    revalidate: bool = False
    """Revalidate expired entries with ETag / Last-Modified."""
    coalesce: bool = True
    """Concurrent identical misses share one upstream call (with ``redis``: across processes)."""

    @model_validator(mode="after")
    def _backend_settings(self) -> Cache:
        if self.backend == "redis" and not self.redis_url:
            raise FieldRuleError(
                ("redis_url",), "backend redis needs redis_url (e.g. redis://localhost:6379/0)"
            )
        if self.redis_url is not None and self.backend != "redis":
            raise FieldRuleError(("redis_url",), f"redis_url applies to backend redis, not {self.backend}")
        if self.redis_url is not None and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise FieldRuleError(("redis_url",), "redis_url must start with redis://, rediss:// or unix://")
        if self.eviction_policy != "lru" and self.backend not in ("redis",):
            raise FieldRuleError(
                ("eviction_policy",),
                f"eviction_policy {self.eviction_policy} needs backend redis; {self.backend} evicts lru",
            )
        for path in self.ttl_by_path:
            if not path.startswith("/"):
                raise FieldRuleError(
                    ("ttl_by_path", path), f"ttl_by_path keys are paths starting with /, got {path!r}"
                )
        if self.max_size_mb is not None and self.given("max_bytes"):
            raise FieldRuleError(("max_size_mb",), "give max_size_mb or max_bytes, not both")
        return self

    def byte_bound(self) -> int:
        """The byte bound in force: ``max_size_mb`` when given, else ``max_bytes``."""
        if self.max_size_mb is not None:
            return int(self.max_size_mb * 1000**2)
        return int(self.max_bytes)


class Bulkhead(SpecModel):
    """Concurrency limit per integration (off until this section is given)."""

    DEFAULT_MAX_CONCURRENT: ClassVar[int] = BulkheadOptions.DEFAULT_MAX_CONCURRENT
    DEFAULT_MAX_QUEUE: ClassVar[int] = BulkheadOptions.DEFAULT_MAX_QUEUE

    max_concurrent: PositiveInt = DEFAULT_MAX_CONCURRENT
    """Calls in flight at once."""
    max_queue: NonNegativeInt = DEFAULT_MAX_QUEUE
    """Calls that may wait for a slot; one more raises ``BulkheadFull``."""
    queue_timeout: Seconds | None = None
    """Longest a call waits for a slot."""


def _state_url(value: str) -> str:
    if "${" in value:
        return value
    scheme = value.split(":", 1)[0] if ":" in value else ""
    if scheme not in ("memory", "sqlite", "redis", "rediss", "unix"):
        raise ValueError(f"state url {value!r} must start with memory://, sqlite:/// or redis://")
    return value


class State(SpecModel):
    """Where shared state lives (rate budgets, breaker, cache, tokens, DLQ, budgets)."""

    DEFAULT_URL: ClassVar[str] = "memory://"

    url: str = DEFAULT_URL
    """``memory://`` (one process), ``sqlite:///path`` (one machine) or ``redis://host:6379/0``."""
    on_state_error: Literal["local", "fail"] = "local"
    """When a shared (Redis) store is unreachable: keep working on in-process state (and say
    so: a ``state.local`` event) or fail with ``StateStoreError``. Memory and SQLite stores are
    local already."""
    key_prefix: str = "tether:"
    """Prefix of every key tether writes in the store."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _state_url(value)


class Dlq(SpecModel):
    """Dead-letter queue for failed work (off until this section is given)."""

    DEFAULT_MAX_REPLAYS: ClassVar[int] = ReplaySchedule.DEFAULT_ATTEMPTS
    DEFAULT_SCHEDULE: ClassVar[tuple[float, ...]] = tuple(
        ReplaySchedule().base(k) for k in range(1, ReplaySchedule.DEFAULT_ATTEMPTS + 1)
    )
    DEFAULT_JITTER: ClassVar[float] = ReplaySchedule.DEFAULT_JITTER

    enabled: bool = True
    """``false`` keeps the section but parks nothing."""
    backend: Literal["sqlite", "redis", "memory", "state"] = "sqlite"
    """Where dead letters are kept; ``state`` uses the state store's location (its SQLite file,
    Redis, or memory)."""
    path: str | None = None
    """sqlite file (relative to the spec's folder; default ``tether-dlq.db`` in the working
    folder) or redis URL."""
    max_replays: PositiveInt = DEFAULT_MAX_REPLAYS
    """Replays before a letter moves to the failed set for manual review."""
    schedule: tuple[Seconds, ...] = DEFAULT_SCHEDULE
    """Replay delays (bare numbers are seconds)."""
    jitter: Ratio = DEFAULT_JITTER
    """± fraction applied to each replay delay."""
    retention: Seconds | None = None
    """Drop letters older than this."""


class Streaming(SpecModel):
    """Server-sent events."""

    DEFAULT_TIMEOUT: ClassVar[float] = 120.0
    DEFAULT_MAX_RECONNECTS: ClassVar[int] = 5
    DEFAULT_RECONNECT_DELAY: ClassVar[float] = 3.0

    type: Literal["sse"] = "sse"
    """The stream protocol (Server-Sent Events)."""
    timeout: Seconds = DEFAULT_TIMEOUT
    """Bound on one streaming operation."""
    reconnect: bool = True
    """Reconnect with ``Last-Event-ID`` when the stream drops."""
    max_reconnects: NonNegativeInt = DEFAULT_MAX_RECONNECTS
    """Reconnects before giving up."""
    reconnect_delay: Millis = DEFAULT_RECONNECT_DELAY
    """Delay before reconnecting unless the server's ``retry:`` says otherwise (ms when bare)."""
    error_events: tuple[str, ...] = ("error",)
    """Event names that carry a mid-stream error (mapped to typed errors)."""
