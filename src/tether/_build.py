"""Spec → the exact objects a code-first user builds: one engine, two doors.

``client_options(spec)`` returns the keyword arguments of ``tether.Client`` for a loaded spec:
``Timeouts``, ``Retry``, ``Breaker``, ``Rate``, ``Bulkhead``, ``EngineOptions``, auth options from
``tether.auth.from_spec``, the service name, the state URL and the response classifier of the
spec's ``error_mapping``. Only the keys a spec *writes* are passed on; everything else takes the
option classes' own ``DEFAULT_*`` values, so a spec section and the code-first object with the
same numbers are equal (``tether check --explain`` prints these same objects).

Spec key → option, per section (durations are seconds after loading)::

    timeouts.{connect,read,write,pool,attempt,total}  Timeouts(same names)
    retry.max_attempts / initial_delay / max_delay     Retry(attempts / initial / max_delay)
    retry.backoff / backoff_multiplier / jitter / jitter_max
                                                       Retry(backoff / multiplier / jitter / jitter_max)
    retry.retry_on / never_retry_on                    Retry(retry_on / never_retry_on)
    retry.retry_conditions                             Retry(retry_on_errors)
    retry.respect_retry_after / max_retry_after        Retry(same names)
    retry.budget {ratio, min_per_second} | null        Retry(budget=RetryBudget(...) | None)
    retry.idempotency_header / auto_idempotency_key    Retry(same names)
    circuit_breaker.failure_threshold / success_threshold / timeout / half_open_requests
                                                       Breaker(failures / close_after / open_for /
                                                               half_open_calls)
    circuit_breaker.mode (consecutive|failure_rate) / window / failure_rate_threshold /
      minimum_calls / half_open_timeout / shared       Breaker(mode (consecutive|rate) / window /
                                                               failure_rate / min_calls /
                                                               half_open_timeout / shared=service)
    rate_limits windows (+ the selected tier's)        Rate("N/second", "N/minute", …, burst=,
                                                            tier=)
    rate_limits.headers {limit,remaining,reset,reset_format}
                                                       Rate(headers=...) and Retry(*_header)
    throttling.on_limit / max_queue / retry_after      Rate(strategy / max_queue / pause_on_429)
    bulkhead.max_concurrent / max_queue / queue_timeout
                                                       Bulkhead(same names)
    http.version / max_connections / keepalive / follow_redirects / max_redirects /
      max_response_size / verify_tls                   EngineOptions(http_version, …, verify)
    security.block_private_networks / tls_min_version  EngineOptions(block_private / min_tls_version)
    service.name / service.headers                     Client(service= / headers=)
    state.url / state.on_state_error                   Client(state=URL); on_state_error goes into
                                                       a Redis URL's query (the store's FallbackStore)
    cache.ttl / stale_if_error / max_entries / max_bytes / vary_headers / revalidate / coalesce
                                                       Cache(same names)
    cache.backend / url / redis_url                    Cache(backend="memory" | "state" |
                                                             "sqlite:///<url>" | <redis_url>)
    cache.max_size_mb / eviction_policy                Cache(max_bytes=MB × 10^6 / eviction)
    endpoints.*.cache.ttl                              Cache(ttl_by_endpoint={name: ttl})
    cache.ttl_by_path / ttl_by_param                   Cache(ttl_by_endpoint={glob: ttl} / ttl_by_param)
    monitoring.tracing.enabled / sample_rate           Tracing(sample_rate=)
    endpoints.*.cache: false                           the Integration bypasses the cache for it
    fallback_behavior.strategy (in order)              Fallback(StaleCache() | Default(json=
                                                       default_response) | Alternate(target) |
                                                       Enqueue(dlq); circuit_break / fail: none)
    fallback_behavior.cache_ttl                        Cache(keep_expired=cache_ttl)
    fallback_behavior.on_errors                        Fallback(on=codes)
    dlq.backend / path                                 the Enqueue step's backend (open_dlq)
    dlq.max_replays / schedule / jitter                ReplaySchedule(attempts / delays / jitter)
    endpoints.*.dlq                                    Enqueue(endpoints={marked names})
    costs.pricing_model / tiers / subscription_fee     Budget(pricing=Pricing.per_request | per_gb |
                                                              tiered | subscription)
    costs.budget.monthly_limit / alert_at / hard_stop  Budget(monthly_limit / alert_at / hard_stop)
    bandwidth.monthly_limit / alert_at / hard_stop / count / serve_from_cache_at
                                                       Budget(bandwidth_limit / bandwidth_alert_at /
                                                              bandwidth_hard_stop / bandwidth_count /
                                                              prefer_cache_at)
    rights.profile / granted + endpoints.*.rights      Rights(name / profile / required_by_endpoint)

``enabled: false`` turns retry or the breaker off (``None``); an absent section leaves tether's
defaults (timeouts, retry and breaker on; rate limiter, bulkhead, cache, fallback, DLQ, budgets
and rights off).

The sections written in ``tether.spec._ops`` (``fallback_behavior``, ``costs``, ``bandwidth``,
``rights``) are passed on whole, defaults included: those models carry their own documented
defaults (``FallbackBehavior.DEFAULT_ON``, ``Bandwidth.count``), and passing them keeps the runtime
equal to what ``docs/spec.md`` and ``tether check --explain`` show.

Fallback and the DLQ
    ``fallback_from`` needs what the ``Integration`` opens: the alternate provider (another
    integration: ``fallback_behavior.alternate`` names a spec file, relative to this spec's
    folder, or a name given to ``tether.open(..., alternates={name: integration})``) and the DLQ
    backend (``dlq_location``). ``client_options`` therefore leaves ``fallback`` out.

    The cache strategy without a cache section (or with ``cache.enabled: false``) still works: the
    cache is built with ``ttl=0`` (never answers fresh), no coalescing, and ``keep_expired`` =
    ``cache_ttl`` (default ``FALLBACK_CACHE_KEEP``), so the ``StaleCache`` step has the last good
    response to serve. The DLQ step is in the chain where ``queue`` is written, or last when the
    spec has an enabled ``dlq`` section and endpoints marked ``dlq: true``; it parks the marked
    endpoints' failures (with ``queue`` and no endpoint marked: every endpoint not marked
    ``dlq: false``).

Error mapping (``error_mapping``)
    ``ErrorClassifier`` is the ``classify=`` hook of ``tether.Client``: it runs in the innermost
    stage on every response, before the default status mapping, so an API that reports errors
    with a 200 (or with codes in the body) is retried, counted by the breaker and refreshed by
    auth exactly like an error status. Rules are tried in order; the first that matches decides:

    ==========================  ====================================================================
    ``retry``                   raise the ``internal_code``'s error (a ``MappedError``); retried
    ``fail``                    raise it; never retried
    ``fallback``                raise it with ``.action == "fallback"`` (for the fallback policy)
    ``ignore``                  accept the response as a success, whatever its status
    ``rate_limited``            raise ``RateLimitExceeded`` (status 429 semantics) whose
                                ``retry_after`` is read where the rule's ``retry_after`` says (a
                                header or a body path; default the response's own headers); the
                                limiter pauses every caller for that long and retry waits it
    ``refresh_auth_then_retry`` raise ``AuthenticationError`` with status 401, so the auth stage
                                renews the credential and replays once
    ==========================  ====================================================================

    With rules present, ``Retry.when`` is set to a predicate that obeys the rules' actions and
    falls back to ``retry_on`` / ``retry_conditions`` for everything else (``never_retry_on``
    still wins), and ``Breaker.is_failure`` counts ``retry`` / ``rate_limited`` / ``fallback``
    answers as failures and ``ignore``-d ones as successes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx2

from tether._clock import Clock, system_clock
from tether._config import Timeouts
from tether._context import CallContext
from tether._redact import redact_url
from tether._redact import registry as redaction
from tether.auth import AuthOptions, from_spec
from tether.dlq import DLQBackend, ReplaySchedule
from tether.errors import (
    APIError,
    AuthenticationError,
    BudgetExceeded,
    BulkheadFull,
    CircuitOpenError,
    ConnectionError,
    NotFoundError,
    RateLimitExceeded,
    RightsViolationError,
    SpecError,
    TetherError,
    TimeoutError,
    ValidationError,
    error_for_status,
)
from tether.mapping import search
from tether.pipeline._headers import (
    X_RATELIMIT_NAMES,
    RateLimitHeaderNames,
    ResetKind,
    parse_http_date,
    parse_retry_after,
    server_wait,
)
from tether.pipeline.breaker import Breaker
from tether.pipeline.budget import Budget, Pricing
from tether.pipeline.bulkhead import Bulkhead
from tether.pipeline.cache import Cache
from tether.pipeline.fallback import Alternate, Default, Enqueue, Fallback, FallbackStep, StaleCache
from tether.pipeline.rate import Rate
from tether.pipeline.retry import (
    AttemptOutcome,
    Retry,
    RetryBudget,
    RetryPredicate,
    _error_kinds,
    retry_if,
    retry_on_status,
)
from tether.pipeline.rights import Rights
from tether.spec._endpoint import Endpoint, WaitSource
from tether.spec._model import SANDBOX
from tether.spec._ops import Costs, ErrorMapping, FallbackBehavior
from tether.spec._sections import Dlq as SpecDlq
from tether.spec._sections import Timeouts as SpecTimeouts
from tether.telemetry import (
    AlertEvaluator,
    AlertRule,
    AuditLog,
    PrometheusListener,
    StructlogListener,
    Tracing,
)
from tether.telemetry._sla import LatencyTargets, SlaTargets
from tether.transport import EngineOptions

if TYPE_CHECKING:
    from tether.spec._model import Spec

__all__ = [
    "BREAKER_KEYS",
    "CACHE_KEYS",
    "ENGINE_KEYS",
    "FALLBACK_CACHE_KEEP",
    "RETRY_KEYS",
    "TIMEOUT_KEYS",
    "ErrorClassifier",
    "MappedError",
    "auth_from",
    "breaker_from",
    "budget_from",
    "bulkhead_from",
    "cache_from",
    "client_options",
    "dlq_location",
    "dlq_marked",
    "dlq_schedule",
    "dlq_wanted",
    "engine_from",
    "fallback_from",
    "pricing_from",
    "rate_from",
    "retry_from",
    "rights_from",
    "state_from",
    "timeouts_from",
]

# --- spec key → option attribute -------------------------------------------------------------------

TIMEOUT_KEYS: Final[tuple[tuple[str, str], ...]] = tuple(
    (k, k) for k in ("connect", "read", "write", "pool", "attempt", "total")
)
RETRY_KEYS: Final[tuple[tuple[str, str], ...]] = (
    ("max_attempts", "attempts"),
    ("initial_delay", "initial"),
    ("max_delay", "max_delay"),
    ("backoff", "backoff"),
    ("backoff_multiplier", "multiplier"),
    ("jitter", "jitter"),
    ("jitter_max", "jitter_max"),
    ("retry_on", "retry_on"),
    ("never_retry_on", "never_retry_on"),
    ("retry_conditions", "retry_on_errors"),
    ("respect_retry_after", "respect_retry_after"),
    ("max_retry_after", "max_retry_after"),
    ("budget", "budget"),
    ("idempotency_header", "idempotency_header"),
    ("auto_idempotency_key", "auto_idempotency_key"),
)
BREAKER_KEYS: Final[tuple[tuple[str, str], ...]] = (
    ("failure_threshold", "failures"),
    ("success_threshold", "close_after"),
    ("timeout", "open_for"),
    ("half_open_requests", "half_open_calls"),
    ("mode", "mode"),
    ("window", "window"),
    ("failure_rate_threshold", "failure_rate"),
    ("minimum_calls", "min_calls"),
    ("half_open_timeout", "half_open_timeout"),
)
BULKHEAD_KEYS: Final[tuple[tuple[str, str], ...]] = (
    ("max_concurrent", "max_concurrent"),
    ("max_queue", "max_queue"),
    ("queue_timeout", "queue_timeout"),
)
ENGINE_KEYS: Final[tuple[tuple[str, str], ...]] = (
    ("version", "http_version"),
    ("max_connections", "max_connections"),
    ("keepalive", "keepalive"),
    ("follow_redirects", "follow_redirects"),
    ("max_redirects", "max_redirects"),
    ("max_response_size", "max_response_size"),
    ("verify_tls", "verify"),
)
CACHE_KEYS: Final[tuple[tuple[str, str], ...]] = tuple(
    (k, k)
    for k in ("ttl", "stale_if_error", "max_entries", "max_bytes", "vary_headers", "revalidate", "coalesce")
)
DLQ_KEYS: Final[tuple[tuple[str, str], ...]] = (
    ("max_replays", "attempts"),
    ("schedule", "delays"),
    ("jitter", "jitter"),
)
#: How long expired responses are kept for the fallback's ``cache`` strategy when
#: ``fallback_behavior.cache_ttl`` does not say (seconds).
FALLBACK_CACHE_KEEP: Final = 86400.0
_WINDOW_UNITS: Final[dict[str, str]] = {
    "requests_per_second": "second",
    "requests_per_minute": "minute",
    "requests_per_hour": "hour",
    "requests_per_day": "day",
    "requests_per_month": "month",
}
_RESET_KINDS: Final[dict[str, ResetKind]] = {
    "seconds": "delta",
    "epoch_s": "epoch",
    "epoch_ms": "auto",  # epoch milliseconds are told apart by size
    "http_date": "auto",  # a non-numeric reset is read as an HTTP-date
}
_TLS_VERSIONS: Final[dict[str, ssl.TLSVersion]] = {
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}


def _given(model: Any, keys: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """``{option: value}`` for the spec keys ``model`` writes (the rest keep the option defaults)."""
    if model is None:
        return {}
    return {option: getattr(model, key) for key, option in keys if model.given(key)}


# --- timeouts ----------------------------------------------------------------------------------------


def timeouts_from(spec_timeouts: SpecTimeouts | None, override: SpecTimeouts | None = None) -> Timeouts:
    """``Timeouts`` from a spec's ``timeouts`` (and an endpoint's, laid over it)."""
    values = _given(spec_timeouts, TIMEOUT_KEYS)
    values.update(_given(override, TIMEOUT_KEYS))
    return Timeouts(**values)


# --- retry -------------------------------------------------------------------------------------------


def header_names(spec: Spec) -> RateLimitHeaderNames:
    """The provider's rate-limit header names (``rate_limits.headers``), else ``X-RateLimit-*``."""
    limits = spec.rate_limits
    names = limits.headers if limits is not None else None
    if names is None:
        return X_RATELIMIT_NAMES
    return RateLimitHeaderNames(
        limit=names.limit or X_RATELIMIT_NAMES.limit,
        remaining=names.remaining or X_RATELIMIT_NAMES.remaining,
        reset=names.reset or X_RATELIMIT_NAMES.reset,
        reset_kind=_RESET_KINDS[names.reset_format],
    )


def retry_from(spec: Spec) -> Retry | None:
    """``Retry`` from ``retry:`` (``None`` when ``enabled: false``; the defaults when absent)."""
    section = spec.retry
    if section is not None and not section.enabled:
        return None
    kwargs = _given(section, RETRY_KEYS)
    if "budget" in kwargs:
        budget = kwargs["budget"]
        kwargs["budget"] = (
            None
            if budget is None
            else RetryBudget(
                **{k: getattr(budget, k) for k in ("ratio", "min_per_second") if budget.given(k)}
            )
        )
    if kwargs.get("max_retry_after", 0) is None:
        del kwargs["max_retry_after"]  # null: the default (max_delay)
    limits = spec.rate_limits
    if limits is not None and limits.headers is not None:
        names = header_names(spec)
        kwargs.update(
            limit_header=names.limit,
            remaining_header=names.remaining,
            reset_header=names.reset,
            reset_header_kind=names.reset_kind,
        )
    options = Retry(**kwargs)
    if spec.error_mapping:
        options = Retry(**{**kwargs, "when": mapped_retry_predicate(options)})
    return options


def mapped_retry_predicate(options: Retry) -> RetryPredicate:
    """``retry_on`` + ``retry_on_errors`` of ``options``, overruled by error-mapping actions."""
    base = retry_on_status(*options.retry_on) | _error_kinds(options.retry_on_errors)

    def decide(outcome: AttemptOutcome) -> bool:
        error = outcome.error
        if isinstance(error, MappedError):
            return error.action in _RETRIED_ACTIONS
        response = outcome.response
        if response is not None and response.extensions.get(IGNORED) is not None:
            return False
        return base(outcome)

    return retry_if(decide, name=f"error_mapping | {base!r}")


# --- circuit breaker ---------------------------------------------------------------------------------


def breaker_from(spec: Spec) -> Breaker | None:
    """``Breaker`` from ``circuit_breaker:`` (``None`` when ``enabled: false``)."""
    section = spec.circuit_breaker
    if section is not None and not section.enabled:
        return None
    kwargs = _given(section, BREAKER_KEYS)
    if kwargs.get("mode") == "failure_rate":
        kwargs["mode"] = "rate"
    if section is not None and section.shared:
        kwargs["shared"] = spec.service.name
    if spec.error_mapping:
        kwargs["is_failure"] = _mapped_failure
    return Breaker(**kwargs)


def with_error_mapping(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with a ``retry`` / ``breaker`` given without their own rules made to obey the
    error mapping (for code-door overrides of a spec that has ``error_mapping``)."""
    out = dict(options)
    retry = out.get("retry")
    if isinstance(retry, Retry) and retry.when is None:
        out["retry"] = dataclasses.replace(retry, when=mapped_retry_predicate(retry))
    breaker = out.get("breaker")
    if isinstance(breaker, Breaker) and breaker.is_failure is None:
        out["breaker"] = dataclasses.replace(breaker, is_failure=_mapped_failure)
    return out


def _mapped_failure(outcome: BaseException | httpx2.Response) -> bool | None:
    if isinstance(outcome, MappedError):
        return True if outcome.action in _FAILURE_ACTIONS else None
    if isinstance(outcome, httpx2.Response) and outcome.extensions.get(IGNORED) is not None:
        return False
    return None


# --- rate limiter and bulkhead -----------------------------------------------------------------------


def rate_from(spec: Spec) -> Rate | None:
    """``Rate`` from ``rate_limits`` (the selected tier laid over the top-level windows) and
    ``throttling``; ``None`` when the spec sets no limit."""
    limits = spec.rate_limits
    if limits is None:
        return None
    effective = limits.effective()
    windows = [f"{count}/{_WINDOW_UNITS[key]}" for key, count in effective.windows().items()]
    if not windows:
        return None
    kwargs: dict[str, Any] = {}
    if effective.burst_size is not None:
        kwargs["burst"] = max(1, effective.burst_size)
    if limits.tier is not None:
        kwargs["tier"] = limits.tier
    if limits.headers is not None:
        kwargs["headers"] = header_names(spec)
    throttling = spec.throttling
    if throttling is not None:
        if throttling.given("on_limit"):
            kwargs["strategy"] = throttling.on_limit
        if throttling.given("max_queue"):
            kwargs["max_queue"] = throttling.max_queue
        if throttling.retry_after is not None:
            kwargs["pause_on_429"] = throttling.retry_after
    return Rate(*windows, **kwargs)


def bulkhead_from(spec: Spec) -> Bulkhead | None:
    """``Bulkhead`` from ``bulkhead:`` (off when absent)."""
    if spec.bulkhead is None:
        return None
    return Bulkhead(**_given(spec.bulkhead, BULKHEAD_KEYS))


# --- the engine --------------------------------------------------------------------------------------


def engine_from(spec: Spec) -> EngineOptions:
    """``EngineOptions`` from ``http:`` and the destination guards of ``security:``."""
    kwargs = _given(spec.http, ENGINE_KEYS)
    security = spec.security
    if security is not None:
        if security.given("block_private_networks"):
            kwargs["block_private"] = security.block_private_networks
        if security.tls_min_version is not None:
            kwargs["min_tls_version"] = _TLS_VERSIONS[security.tls_min_version]
    return EngineOptions(**kwargs)


# --- authentication ----------------------------------------------------------------------------------


def _secret_value(ref: Any, environ: Mapping[str, str] | None, interval: float | None) -> Any:
    """A spec ``SecretRef`` as ``from_spec`` takes it: ``{env: NAME}`` for a bare ``${NAME}`` (read
    at start and re-read on rotation), else the value now (registered for masking)."""
    if ref is None:
        return None
    names = ref.variables
    if environ is None and len(names) == 1 and ref.template == "${" + names[0] + "}":
        source: dict[str, Any] = {"env": names[0]}
        if interval is not None:
            source["refresh_interval"] = interval
        return source
    return ref.resolve(environ)


#: The secrets ``testing.integration_tests.test_credentials`` replaces in the sandbox environment.
_SANDBOX_REPLACES: Final = frozenset({"secret", "password", "client_secret"})


def _sandbox_secret(spec: Spec, environ: Mapping[str, str] | None, interval: float | None) -> Any:
    """The sandbox's credential source when the spec was loaded for ``env="sandbox"``: an
    environment variable (``${VAR}``), else a secrets file (``path`` or ``path#key``)."""
    tests = spec.testing.integration_tests if spec.testing is not None else None
    ref = tests.test_credentials if tests is not None else None
    if ref is None or spec.environment != SANDBOX:
        return None
    if ref.variables:
        return _secret_value(ref, environ, interval)
    path, _, key = ref.template.partition("#")
    source: dict[str, Any] = {"file": path}
    if key:
        source["key"] = key
    if interval is not None:
        source["refresh_interval"] = interval
    return source


def _manager_source(config: Any, interval: float | None) -> dict[str, Any]:
    """``credentials_source: secret_manager`` as the source mapping ``from_spec`` reads."""
    source: dict[str, Any]
    if config.secret_manager_kind() == "gcp":
        source = {"gcp_secret_manager": config.secret_name, "project": config.secret_project}
    else:
        source = {"aws_secrets_manager": config.secret_name, "region": config.secret_region}
    if config.secret_endpoint is not None:
        source["endpoint"] = config.secret_endpoint
    if interval is not None:
        source["refresh_interval"] = interval
    return source


def auth_from(
    spec: Spec, *, base_dir: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> AuthOptions | None:
    """Auth options for ``authentication:`` through ``tether.auth.from_spec``.

    ``environ`` (when given) resolves ``${VAR}`` secrets now instead of reading the process
    environment at start. ``jwt`` (minting signed tokens) is refused with a ``SpecError``.
    """
    section = spec.authentication
    if section is None or section.scheme == "none":
        return None
    config = section.config
    scheme = section.scheme
    interval = config.refresh_interval
    sandbox = _sandbox_secret(spec, environ, interval)

    def secret(key: str) -> Any:
        if sandbox is not None and key in _SANDBOX_REPLACES:
            return sandbox
        if key == "secret" and config.credentials_source == "secret_manager":
            return _manager_source(config, interval)
        return _secret_value(getattr(config, key), environ, interval)

    out: dict[str, Any] = {}
    if scheme == "jwt":
        raise SpecError(
            "authentication type jwt (signing tokens with a key) is not supported yet; "
            "use type bearer with a ready token"
        )
    if scheme == "api_key" or (scheme == "bearer" and (config.given("key_name") or config.given("value"))):
        if scheme == "bearer":  # a bearer token in another header or format: an API key template
            out = {
                "key_location": "header",
                "key_name": config.key_name or "Authorization",
                "value": (config.value or "Bearer {token}").replace("{token}", "{secret}"),
            }
        else:
            for key in ("key_location", "key_name"):
                if config.given(key):
                    out[key] = getattr(config, key)
            if config.value is not None:
                out["value"] = config.value.replace("{token}", "{secret}")
        out["secret"] = secret("secret")
        kind = "api_key"
    elif scheme == "bearer":
        out["secret"] = secret("secret")
        kind = "bearer"
    elif scheme == "basic":
        out["username"] = config.username
        out["password"] = secret("password")
        kind = "basic"
    else:  # oauth2
        for key in ("key_name", "value"):
            if config.given(key):
                raise SpecError(f"authentication.config.{key} is not supported for oauth2 yet")
        for key in ("token_url", "client_id", "audience", "grant_type"):
            if getattr(config, key) is not None:
                out[key] = getattr(config, key)
        if config.scopes is not None:
            out["scopes"] = list(config.scopes)
        for key in ("client_secret", "refresh_token"):
            if getattr(config, key) is not None:
                out[key] = secret(key)
        if config.token_refresh is False:
            out["token_refresh"] = False
        elif config.refresh_before is not None:
            out["token_refresh"] = config.refresh_before
        if config.expires_in is not None:
            out["expires_in"] = config.expires_in
        kind = "oauth2"
    return from_spec(kind, out, base_dir=base_dir)


def _base_dir(spec: Spec) -> Path | None:
    source = spec.source
    if source.startswith("<"):
        return None
    return Path(source).resolve().parent


# --- error mapping -----------------------------------------------------------------------------------

#: ``response.extensions`` key set on a response an ``ignore`` rule accepted (value: rule index).
IGNORED: Final = "tether.error_mapping.ignored"
_RETRIED_ACTIONS: Final = frozenset({"retry", "rate_limited"})
_FAILURE_ACTIONS: Final = frozenset({"retry", "rate_limited", "fallback"})


class MappedError(TetherError):
    """An error raised by an ``error_mapping`` rule. Every one is also the ``internal_code``'s
    error class (``NotFoundError``, ``APIError`` …), so ``except`` clauses keep working.

    ``action``: ``retry``, ``fail``, ``fallback``, ``rate_limited`` or ``refresh_auth_then_retry``;
    ``internal_code``: the rule's code; ``rule``: the rule's index in ``error_mapping``.
    """

    action: str = "fail"
    internal_code: str = ""
    rule: int = -1
    #: The response the rule matched (also ``.response``, except for ``rate_limited``).
    mapped_response: httpx2.Response | None = None


def _mapped_class(base: type[TetherError]) -> type[MappedError]:
    doc = f"A ``{base.__name__}`` raised by an error-mapping rule (see ``MappedError``)."
    made = type(f"Mapped{base.__name__}", (MappedError, base), {"__doc__": doc, "__module__": __name__})
    return cast(type[MappedError], made)


_CODE_CLASSES: Final[dict[str, type[TetherError]]] = {
    "CONN_001": ConnectionError,
    "AUTH_001": AuthenticationError,
    "RATE_001": RateLimitExceeded,
    "VALID_001": ValidationError,
    "API_001": APIError,
    "TIMEOUT_001": TimeoutError,
    "CIRCUIT_001": CircuitOpenError,
    "NOTFOUND_001": NotFoundError,
    "BULKHEAD_001": BulkheadFull,
    "BUDGET_001": BudgetExceeded,
    "RIGHTS_001": RightsViolationError,
}
_MAPPED: Final[dict[str, type[MappedError]]] = {
    code: _mapped_class(cls) for code, cls in _CODE_CLASSES.items()
}
_MAPPED_RATE: Final = _MAPPED["RATE_001"]
_MAPPED_AUTH: Final = _MAPPED["AUTH_001"]


def _json_body(response: httpx2.Response) -> Any:
    try:
        content = response.content
    except httpx2.ResponseNotRead:
        return None
    if not content:
        return None
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return None


def read_wait(source: WaitSource, response: httpx2.Response, body: Any, *, now: float) -> float | None:
    """Seconds to wait, read where ``source`` says (a header or a body path, in its format)."""
    if source.header is not None:
        raw: Any = response.headers.get(source.header)
    else:
        try:
            raw = search(source.body or "", body)
        except ValidationError:
            return None
    if raw is None or isinstance(raw, bool):
        return None
    text = str(raw).strip()
    fmt = source.format
    if fmt == "http_date":
        when = parse_http_date(text, now=now)
        return None if when is None else max(0.0, when - now)
    try:
        number = float(text)
    except ValueError:
        # "seconds" in a header may still be an HTTP-date (Retry-After allows both)
        return parse_retry_after(text, now=now) if fmt == "seconds" else None
    if not math.isfinite(number):
        return None
    if fmt == "seconds":
        return max(0.0, number)
    if fmt == "milliseconds":
        return max(0.0, number / 1000.0)
    if fmt == "epoch_ms":
        return max(0.0, number / 1000.0 - now)
    return max(0.0, number - now)  # epoch_s


def _error_key_matches(key: str, status: int) -> int:
    """How well a ``response.errors`` key matches: 2 exact, 1 class (``4xx``), 0 default, -1 no."""
    if key.isdigit():
        return 2 if int(key) == status else -1
    if key.lower().endswith("xx"):
        return 1 if status // 100 == int(key[0]) else -1
    return 0 if key == "default" else -1


def _needs_body(rule: ErrorMapping) -> bool:
    code = rule.external_code
    return rule.body is not None or (isinstance(code, str) and not code.isdigit())


@dataclass(frozen=True, slots=True)
class _Rule:
    index: int
    mapping: ErrorMapping
    needs_body: bool


class ErrorClassifier:
    """The ``classify=`` hook built from a spec's ``error_mapping`` (and the endpoints' documented
    ``response.errors`` waits). See the module docstring for the actions."""

    __slots__ = ("_clock", "_endpoints", "_names", "_rules", "_service")

    def __init__(
        self,
        rules: tuple[ErrorMapping, ...],
        *,
        endpoints: Mapping[str, Endpoint] | None = None,
        service: str | None = None,
        names: RateLimitHeaderNames = X_RATELIMIT_NAMES,
        clock: Clock = system_clock,
    ) -> None:
        self._rules = tuple(_Rule(i, rule, _needs_body(rule)) for i, rule in enumerate(rules))
        self._endpoints = {
            name: ep
            for name, ep in (endpoints or {}).items()
            if ep.response is not None and any(e.retry_after is not None for e in ep.response.errors.values())
        }
        self._service = service
        self._names = names
        self._clock = clock

    def __repr__(self) -> str:
        return f"ErrorClassifier(rules={len(self._rules)})"

    def __bool__(self) -> bool:
        return bool(self._rules or self._endpoints)

    def __call__(self, response: httpx2.Response, ctx: CallContext) -> bool | None:
        status = response.status_code
        body: Any = None
        parsed = False
        for rule in self._rules:
            if rule.needs_body and not parsed:
                body, parsed = _json_body(response), True
            if rule.mapping.matches(status, body, response.headers):
                return self._apply(rule, response, body if parsed else _json_body(response), ctx)
        if status >= 400 and ctx.endpoint in self._endpoints:
            self._documented_wait(response, ctx)
        return None

    def _apply(self, rule: _Rule, response: httpx2.Response, body: Any, ctx: CallContext) -> bool:
        mapping = rule.mapping
        action = mapping.action
        if action == "ignore":
            response.extensions[IGNORED] = rule.index
            return True
        status = response.status_code
        where = f"HTTP {status}"
        try:
            where += f" for {response.request.method} {redact_url(str(response.request.url))}"
        except RuntimeError:
            pass
        message = f"{mapping.message or mapping.internal_code}: {where} (error_mapping[{rule.index}])"
        common: dict[str, Any] = {
            "service": ctx.service,
            "endpoint": ctx.endpoint,
            "request_id": ctx.request_id,
        }
        wait = None
        if mapping.retry_after is not None:
            wait = read_wait(mapping.retry_after, response, body, now=self._clock.time())
        if action == "rate_limited":
            if wait is None:
                asked = server_wait(response.headers, now=self._clock.time(), status=429, names=self._names)
                wait = asked.seconds if asked is not None else self._documented_seconds(response, ctx)
            # No response attached: the limiter then pauses for exactly this wait (not for what the
            # response's own headers say) and retry waits it; the response stays on .mapped_response.
            error: MappedError = _MAPPED_RATE(message, status_code=429, retry_after=wait, **common)
        elif action == "refresh_auth_then_retry":
            error = _MAPPED_AUTH(message, status_code=401, response=response, **common)
        else:
            cls = _MAPPED[mapping.internal_code]
            error = cls(message, response=response, retry_after=wait, **common)
        error.action = action
        error.internal_code = mapping.internal_code
        error.rule = rule.index
        error.mapped_response = response
        raise error

    def _documented_wait(self, response: httpx2.Response, ctx: CallContext) -> None:
        wait = self._documented_seconds(response, ctx)
        if wait is None:
            return
        raise error_for_status(
            response, service=ctx.service, endpoint=ctx.endpoint, request_id=ctx.request_id, retry_after=wait
        )

    def _documented_seconds(self, response: httpx2.Response, ctx: CallContext) -> float | None:
        """The wait the endpoint's ``response.errors`` entry for this status says where to read."""
        endpoint = self._endpoints.get(ctx.endpoint or "")
        if endpoint is None or endpoint.response is None:
            return None
        status = response.status_code
        best: tuple[int, WaitSource] | None = None
        for key, documented in endpoint.response.errors.items():
            score = _error_key_matches(key, status)
            if documented.retry_after is not None and score >= 0 and (best is None or score > best[0]):
                best = (score, documented.retry_after)
        if best is None:
            return None
        return read_wait(best[1], response, _json_body(response), now=self._clock.time())


# --- cache -------------------------------------------------------------------------------------------


def _spec_file(value: str, base_dir: str | os.PathLike[str] | None) -> Path:
    """A file named in a spec: absolute as is, relative to the spec's folder (else the working one)."""
    path = Path(value)
    if path.is_absolute() or base_dir is None:
        return path
    return Path(base_dir) / path


def _cache_backend(spec: Spec, base_dir: str | os.PathLike[str] | None) -> str:
    section = spec.cache
    assert section is not None
    if section.backend == "memory":
        return "memory"
    if section.backend == "state":
        return "state"
    if section.backend == "redis":
        assert section.redis_url is not None  # the model requires it
        return section.redis_url
    url = section.url
    if not url:
        raise SpecError(
            "cache backend sqlite needs url (the cache file, e.g. cache.db)", service=spec.service.name
        )
    if url.startswith("sqlite:///"):
        return url
    return "sqlite:///" + str(_spec_file(url, base_dir).resolve())


def _stale_strategy(spec: Spec) -> bool:
    behavior = spec.fallback_behavior
    return behavior is not None and "cache" in behavior.strategy


def cache_from(spec: Spec, *, base_dir: str | os.PathLike[str] | None = None) -> Cache | None:
    """``Cache`` from ``cache:`` and the endpoints' ``cache.ttl``; ``None`` when off.

    The fallback's ``cache`` strategy keeps expired responses ``cache_ttl`` long
    (``keep_expired``), and without a cache section gets a cache that only keeps them (see the
    module docstring). ``base_dir`` resolves a relative sqlite ``url`` (default: the spec's folder).
    """
    section = spec.cache
    stale = _stale_strategy(spec)
    keep: float | None = None
    if stale:
        behavior = spec.fallback_behavior
        assert behavior is not None
        keep = behavior.cache_ttl if behavior.cache_ttl is not None else FALLBACK_CACHE_KEEP
    if section is None or not section.enabled:
        if keep is None:
            return None
        return Cache(ttl=0.0, keep_expired=keep, coalesce=False)
    folder = base_dir if base_dir is not None else _base_dir(spec)
    kwargs = _given(section, CACHE_KEYS)
    if section.max_size_mb is not None:
        kwargs["max_bytes"] = section.byte_bound()
    if section.given("eviction_policy"):
        kwargs["eviction"] = section.eviction_policy
    backend = _cache_backend(spec, folder)
    if backend != "memory":
        kwargs["backend"] = backend
    ttls: dict[str, float] = dict(section.ttl_by_path)
    ttls.update(
        {
            name: endpoint.cache.ttl
            for name, endpoint in spec.endpoints.items()
            if endpoint.cache is not None and endpoint.cache.ttl is not None
        }
    )
    if section.ttl_by_param:
        kwargs["ttl_by_param"] = {k: dict(v) for k, v in section.ttl_by_param.items()}
    if ttls:
        kwargs["ttl_by_endpoint"] = ttls
    if keep is not None:
        kwargs["keep_expired"] = keep
    return Cache(**kwargs)


# --- the dead-letter queue ---------------------------------------------------------------------------


def _queue_strategy(spec: Spec) -> bool:
    behavior = spec.fallback_behavior
    return behavior is not None and "queue" in behavior.strategy


def dlq_marked(spec: Spec) -> frozenset[str]:
    """The endpoints whose failed calls are parked: those marked ``dlq: true``; with the ``queue``
    strategy and none marked, every endpoint not marked ``dlq: false``."""
    marked = frozenset(name for name, endpoint in spec.endpoints.items() if endpoint.dlq)
    if marked or not _queue_strategy(spec):
        return marked
    return frozenset(name for name, endpoint in spec.endpoints.items() if endpoint.dlq is not False)


def dlq_wanted(spec: Spec) -> bool:
    """Whether the spec has a DLQ: an enabled ``dlq`` section, or the ``queue`` strategy without one."""
    if spec.dlq is not None:
        return spec.dlq.enabled
    return _queue_strategy(spec)


def dlq_location(spec: Spec, *, base_dir: str | os.PathLike[str] | None = None) -> str:
    """Where the spec's DLQ lives, for ``tether.dlq.open_dlq``: ``memory://``, a SQLite file
    (``dlq.path`` relative to the spec's folder; default ``tether-dlq.db`` in the working folder,
    as ``tether dlq`` looks for it) or a Redis URL. Backend ``state`` uses the state store's."""
    section = spec.dlq if spec.dlq is not None else SpecDlq()
    folder = base_dir if base_dir is not None else _base_dir(spec)
    backend = section.backend
    if backend == "state":
        state = spec.state.url if spec.state is not None else "memory://"
        scheme = state.split(":", 1)[0]
        if scheme == "memory":
            return "memory://"
        if scheme == "sqlite":
            return state.split("?", 1)[0]
        if scheme in ("redis", "rediss"):
            return state
        raise SpecError(
            f"dlq backend state: a {scheme}:// state store holds no DLQ", service=spec.service.name
        )
    if backend == "memory":
        return "memory://"
    path = section.path
    if backend == "redis":
        if not path or not path.startswith(("redis://", "rediss://")):
            raise SpecError("dlq backend redis needs path: the Redis URL", service=spec.service.name)
        return path
    if not path:
        return "tether-dlq.db"
    if path.startswith("sqlite:///"):
        return path
    return str(_spec_file(path, folder))


def dlq_schedule(spec: Spec) -> ReplaySchedule:
    """``ReplaySchedule`` from ``dlq.max_replays`` / ``schedule`` / ``jitter``."""
    return ReplaySchedule(**_given(spec.dlq, DLQ_KEYS))


def _enqueue(spec: Spec, dlq: DLQBackend | None) -> Enqueue | None:
    marked = dlq_marked(spec)
    if dlq is None or not marked or not dlq_wanted(spec):
        return None
    kwargs: dict[str, Any] = {"endpoints": marked, "schedule": dlq_schedule(spec)}
    if spec.retry is not None and spec.retry.given("idempotency_header"):
        kwargs["idempotency_header"] = spec.retry.idempotency_header
    return Enqueue(dlq, **kwargs)


# --- fallback ----------------------------------------------------------------------------------------


def fallback_from(
    spec: Spec,
    *,
    alternate: Any = None,
    alternate_name: str | None = None,
    dlq: DLQBackend | None = None,
) -> Fallback | None:
    """``Fallback`` from ``fallback_behavior`` (and a ``dlq`` section with marked endpoints).

    ``alternate`` is the alternate provider (a ``tether.Client``, or anything with an async
    ``send``), required when the strategy names ``alternate``; ``alternate_name`` is what
    ``served_by`` calls it (default: its service name); ``dlq`` is the backend of the DLQ step.
    """
    behavior = spec.fallback_behavior
    strategies = behavior.strategy if behavior is not None else ()
    steps: list[FallbackStep] = []
    for strategy in strategies:
        assert behavior is not None
        if strategy == "cache":
            steps.append(StaleCache())
        elif strategy == "default":
            steps.append(Default(json=behavior.default_response))
        elif strategy == "alternate":
            if alternate is None:
                raise SpecError(
                    f"fallback_behavior.alternate {behavior.alternate!r} is not open "
                    "(tether.open opens a spec file, or takes alternates={name: integration})",
                    service=spec.service.name,
                )
            steps.append(Alternate(alternate, name=alternate_name))
        elif strategy == "queue":
            step = _enqueue(spec, dlq)
            if step is not None:
                steps.append(step)
        # circuit_break / fail: no fallback, the error is raised
    if "queue" not in strategies:
        step = _enqueue(spec, dlq)
        if step is not None:
            steps.append(step)
    if not steps:
        return None
    on = behavior.on_errors if behavior is not None else FallbackBehavior.DEFAULT_ON
    return Fallback(*steps, on=on)


# --- budgets and rights ------------------------------------------------------------------------------


def _request_tiers(costs: Costs) -> list[tuple[int | None, float]]:
    """``costs.tiers`` (per request, each ``limit`` requests long) as ``Pricing.tiered`` bounds."""
    out: list[tuple[int | None, float]] = []
    bound = 0
    for index, tier in enumerate(costs.tiers):
        if tier.limit is None:
            out.append((None, tier.cost))
            continue
        if tier.limit != int(tier.limit):
            raise SpecError(
                f"costs.tiers[{index}].limit must be a whole number of requests, got {tier.limit:g}"
            )
        bound += int(tier.limit)
        out.append((bound, tier.cost))
    return out


def pricing_from(costs: Costs) -> Pricing:
    """``Pricing`` from ``costs``: per_request and tiered take ``tiers`` (per request; one tier is
    a flat price), per_gb one price per GB, subscription the fee plus an included tier (cost 0)
    and an overage tier. Per-minute prices are refused (``SpecError``)."""
    model = costs.pricing_model
    tiers = costs.tiers
    units = {tier.unit for tier in tiers}
    if model == "per_minute" or "minute" in units:
        raise SpecError(
            "costs: per-minute pricing is not supported yet (per_request, per_gb, tiered, subscription)"
        )
    try:
        if model == "per_gb":
            prices = {tier.cost for tier in tiers}
            if units - {"gb"} or len(prices) != 1:
                raise SpecError(
                    "costs: per_gb pricing takes tiers with unit gb and one cost per GB "
                    "(tiered per-GB prices are not supported yet)"
                )
            return Pricing.per_gb(prices.pop())
        if "gb" in units:
            raise SpecError(f"costs: tiers with unit gb need pricing_model per_gb, not {model}")
        bounds = _request_tiers(costs)
        if model == "subscription":
            fee = costs.subscription_fee or 0.0
            if not bounds:
                return Pricing.subscription(fee)
            if len(bounds) == 1 and bounds[0][0] is None:
                return Pricing.subscription(fee, included=0, overage=bounds[0][1])
            first, price = bounds[0]
            if first is not None and price == 0 and len(bounds) <= 2:
                overage = bounds[1][1] if len(bounds) == 2 else 0.0
                return Pricing.subscription(fee, included=first, overage=overage)
            if fee:
                raise SpecError(
                    "costs: subscription pricing takes an included tier (cost 0) and an overage tier"
                )
            return Pricing.tiered(bounds)
        if not bounds:
            raise SpecError(
                f"costs: pricing_model {model} needs the price per request: "
                "tiers: [{name: all, cost: 0.001}]"
            )
        if len(bounds) == 1:
            return Pricing.per_request(bounds[0][1])
        return Pricing.tiered(bounds)
    except ValueError as exc:
        raise SpecError(f"costs.tiers: {exc}") from None


def budget_from(spec: Spec) -> Budget | None:
    """``Budget`` from ``costs`` (with a ``budget``) and ``bandwidth``; ``None`` when neither
    sets a limit (``costs`` without a ``budget`` only describes prices)."""
    kwargs: dict[str, Any] = {}
    costs = spec.costs
    if costs is not None and costs.budget is not None:
        budget = costs.budget
        kwargs.update(
            monthly_limit=budget.monthly_limit,
            pricing=pricing_from(costs),
            alert_at=budget.alert_at,
            hard_stop=budget.hard_stop,
        )
    bandwidth = spec.bandwidth
    if bandwidth is not None:
        kwargs.update(
            bandwidth_limit=bandwidth.monthly_limit,
            bandwidth_alert_at=bandwidth.alert_at,
            bandwidth_hard_stop=bandwidth.hard_stop,
            bandwidth_count=bandwidth.count,
            prefer_cache_at=bandwidth.serve_from_cache_at,
        )
    return Budget(**kwargs) if kwargs else None


def rights_from(spec: Spec) -> Rights | None:
    """``Rights`` from ``rights`` (the profile) and each endpoint's ``rights``."""
    section = spec.rights
    if section is None:
        return None
    required = {name: endpoint.rights for name, endpoint in spec.endpoints.items() if endpoint.rights}
    return Rights(profile=section.granted, required_by_endpoint=required, name=section.profile)


# --- state -------------------------------------------------------------------------------------------


def state_from(spec: Spec) -> str | None:
    """The state URL; a written ``on_state_error`` is put in a Redis URL's query, where the Redis
    store reads it (memory and SQLite stores are local: there is nothing to fall back from)."""
    section = spec.state
    if section is None:
        return None
    url = section.url
    parts = urlsplit(url)
    if section.given("on_state_error") and parts.scheme in ("redis", "rediss", "unix"):
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "on_state_error"]
        query.append(("on_state_error", section.on_state_error))
        url = urlunsplit(parts._replace(query=urlencode(query)))
    return url


# --- the whole client --------------------------------------------------------------------------------


def client_options(
    spec: Spec,
    *,
    base_dir: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    clock: Clock | None = None,
) -> dict[str, Any]:
    """The keyword arguments of ``tether.Client`` that this spec describes (all but ``fallback``,
    which needs the alternate and the DLQ the ``Integration`` opens: ``fallback_from``).

    ``base_dir`` resolves relative secret and cache files (default: the spec file's folder); ``environ``
    resolves ``${VAR}`` secrets now instead of at start; ``clock`` is the classifier's clock.
    """
    folder = base_dir if base_dir is not None else _base_dir(spec)
    options: dict[str, Any] = {
        "base_url": spec.base_url,
        "headers": dict(spec.service.headers),
        "timeout": timeouts_from(spec.timeouts),
        "auth": auth_from(spec, base_dir=folder, environ=environ),
        "retry": retry_from(spec),
        "breaker": breaker_from(spec),
        "rate": rate_from(spec),
        "bulkhead": bulkhead_from(spec),
        "engine": engine_from(spec),
        "service": spec.service.name,
        "state": state_from(spec),
        "cache": cache_from(spec, base_dir=folder),
        "policies": [p for p in (budget_from(spec), rights_from(spec)) if p is not None],
    }
    classifier = ErrorClassifier(
        spec.error_mapping,
        endpoints=spec.endpoints,
        service=spec.service.name,
        names=header_names(spec),
        clock=clock or system_clock,
    )
    options["classify"] = classifier if classifier else None
    return options


# --- service levels ------------------------------------------------------------------------------


def sla_from(spec: Spec) -> SlaTargets | None:
    """``SlaTargets`` from ``sla:`` and the endpoints' ``performance:`` (``None`` without ``sla``)."""
    sla = spec.sla
    if sla is None:
        return None
    times = sla.response_time
    default = LatencyTargets(
        *(getattr(times, q) if times is not None else None for q in ("p50", "p95", "p99"))
    )
    latency = {
        name: LatencyTargets(endpoint.performance.p50, endpoint.performance.p95, endpoint.performance.p99)
        for name, endpoint in spec.endpoints.items()
        if endpoint.performance is not None
    }
    cache = spec.cache
    cached = frozenset(
        name
        for name, endpoint in spec.endpoints.items()
        if cache is not None
        and cache.enabled
        and endpoint.method in ("GET", "HEAD")
        and (endpoint.cache is None or endpoint.cache.enabled)
    )
    return SlaTargets(
        latency=latency,
        default_latency=default,
        error_rate=sla.error_rate,
        availability=None if sla.availability is None else sla.availability / 100.0,
        retry_success_rate=sla.retry_success_rate,
        cache_hit_rate=sla.cache_hit_rate,
        breaker_recovery=sla.breaker_recovery,
        window=sla.window,
        cached=cached,
    )


# --- monitoring ---------------------------------------------------------------------------------

_LOG_LEVELS: Final = {"debug": 10, "info": 20, "warn": 30, "warning": 30, "error": 40}


@dataclass(frozen=True, slots=True)
class MonitoringParts:
    """What a spec's ``monitoring`` section adds to a client: listeners, policies, the evaluator."""

    listeners: tuple[Any, ...] = ()
    policies: tuple[Any, ...] = ()
    alerts: AlertEvaluator | None = None


def monitoring_from(spec: Spec, *, clock: Clock | None = None) -> MonitoringParts:
    """The listeners and policies ``monitoring`` asks for (nothing when the section is absent)."""
    section = spec.monitoring
    if section is None:
        return MonitoringParts()
    listeners: list[Any] = [StructlogListener(min_level=_LOG_LEVELS[section.logging.level])]
    if section.metrics_enabled:
        listeners.append(PrometheusListener())
    if section.audit is not None:
        audit = section.audit
        if audit.file is not None:
            path = Path(audit.file)
            folder = _base_dir(spec)
            listeners.append(AuditLog(path if path.is_absolute() or folder is None else folder / path))
        else:
            listeners.append(AuditLog(logger=audit.logger))
    if section.logging.mask_fields:
        redaction.add_names(headers=section.logging.mask_fields, params=section.logging.mask_fields)
    evaluator: AlertEvaluator | None = None
    if section.alerts or section.alert_on_open:
        rules = [
            AlertRule(
                metric=a.condition.metric,
                op=a.condition.op,
                threshold=a.condition.threshold,
                window=a.window,
                severity=a.severity,
                channel=a.channel,
                description=a.description,
            )
            for a in section.alerts
        ]
        evaluator = AlertEvaluator(rules, clock=clock, alert_on_open=section.alert_on_open)
        listeners.append(evaluator)
    policies = (Tracing(sample_rate=section.tracing.sample_rate),) if section.tracing.enabled else ()
    return MonitoringParts(tuple(listeners), policies, evaluator)
