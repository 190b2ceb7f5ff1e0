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
    retry.backoff / backoff_multiplier / jitter        Retry(backoff / multiplier / jitter)
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
    service.name / service.headers / state.url         Client(service= / headers= / state=)

``enabled: false`` turns retry or the breaker off (``None``); an absent section leaves tether's
defaults (timeouts, retry and breaker on; rate limiter and bulkhead off).

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

import httpx2

from tether._clock import Clock, system_clock
from tether._config import Timeouts
from tether._context import CallContext
from tether._redact import redact_url
from tether.auth import AuthOptions, from_spec
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
from tether.pipeline.bulkhead import Bulkhead
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
from tether.spec._endpoint import Endpoint, WaitSource
from tether.spec._ops import ErrorMapping
from tether.spec._sections import Timeouts as SpecTimeouts
from tether.transport import EngineOptions

if TYPE_CHECKING:
    from tether.spec._model import Spec

__all__ = [
    "BREAKER_KEYS",
    "ENGINE_KEYS",
    "RETRY_KEYS",
    "TIMEOUT_KEYS",
    "ErrorClassifier",
    "MappedError",
    "auth_from",
    "breaker_from",
    "bulkhead_from",
    "client_options",
    "engine_from",
    "rate_from",
    "retry_from",
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

    def secret(key: str) -> Any:
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


# --- the whole client --------------------------------------------------------------------------------


def client_options(
    spec: Spec,
    *,
    base_dir: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    clock: Clock | None = None,
) -> dict[str, Any]:
    """The keyword arguments of ``tether.Client`` that this spec describes.

    ``base_dir`` resolves relative secret files (default: the spec file's folder); ``environ``
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
        "state": spec.state.url if spec.state is not None else None,
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
