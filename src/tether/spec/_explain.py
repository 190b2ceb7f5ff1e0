"""The effective settings of a spec: what the spec wrote, with tether's defaults filled in.

``tether check --explain`` prints these lines. Timeouts, retry and the circuit breaker apply with
their defaults when a spec leaves them out (DESIGN 2.2: resilient by default); policies that need
a number only the user knows (rate limits, bulkhead, cache, DLQ, budgets, fallback) are off until
their section is given. Each value is tagged ``spec`` (written in the spec) or ``default``.

The policy sections (timeouts, http, retry, circuit_breaker, rate_limits, throttling, bulkhead,
cache, dlq, costs, bandwidth, rights) are read from the option objects the runtime builds
(``tether._build``), so a default shown here is the option class's own ``DEFAULT_*`` constant,
never a number repeated in the spec models; ``fallback_behavior`` shows the chain the runtime
builds (``stale_cache``, ``default``, ``alternate (…)``, ``dlq``) and ``dlq`` the endpoints it parks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, cast

from tether._redact import redact_url
from tether.errors import SpecError
from tether.spec._base import SpecModel
from tether.spec._model import Spec
from tether.spec._ops import FallbackBehavior
from tether.spec._sections import (
    CircuitBreaker,
    Dlq,
    State,
    Streaming,
    Throttling,
    Timeouts,
)
from tether.spec._types import SecretRef, format_duration, format_size

__all__ = ["ExplainLine", "explain", "explain_text"]

Source = Literal["spec", "default", "off", "note"]


@dataclass(frozen=True, slots=True)
class ExplainLine:
    """One line of the effective settings: its depth, text and where the value came from."""

    depth: int
    text: str
    source: Source | None = None


def _value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _model_lines(model: SpecModel, depth: int, *, all_default: bool = False) -> list[ExplainLine]:
    dumped = model.model_dump(mode="json", by_alias=True)
    lines: list[ExplainLine] = []
    for name, info in type(model).model_fields.items():
        key = info.alias or name
        given = name in model.model_fields_set and not all_default
        current = getattr(model, name)
        if isinstance(current, SpecModel):
            lines.append(ExplainLine(depth, f"{key}:"))
            lines.extend(_model_lines(current, depth + 1, all_default=not given))
            continue
        value = dumped[key]
        if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            lines.append(ExplainLine(depth, f"{key}:", "spec" if given else "default"))
            for sub_key, sub_value in value.items():
                lines.append(
                    ExplainLine(depth + 1, f"{sub_key}: {_value(sub_value)}", "spec" if given else "default")
                )
            continue
        lines.append(ExplainLine(depth, f"{key}: {_value(value)}", "spec" if given else "default"))
    return lines


_DURATION_KEYS = frozenset(
    {
        "connect",
        "read",
        "write",
        "pool",
        "attempt",
        "total",
        "initial_delay",
        "max_delay",
        "max_retry_after",
        "timeout",
        "window",
        "half_open_timeout",
        "keepalive",
        "queue_timeout",
        "retry_after",
        "max_wait",
    }
)
#: Retry's canonical failure kinds, as the spec's ``retry_conditions`` name them.
_CONDITION_NAMES = {"connection": "network_error", "body_read": "body_read_error"}
_PERIOD_KEYS = {
    1.0: "requests_per_second",
    60.0: "requests_per_minute",
    3600.0: "requests_per_hour",
    86400.0: "requests_per_day",
    2_592_000.0: "requests_per_month",
}


def _shown(key: str, value: Any) -> Any:
    """An option value the way the spec writes it."""
    if value is None or isinstance(value, bool):
        return value
    if key in _DURATION_KEYS and isinstance(value, int | float):
        return format_duration(float(value))
    if key == "max_response_size" and isinstance(value, int):
        return format_size(value)
    if key == "retry_conditions" and isinstance(value, frozenset | set):
        return sorted(_CONDITION_NAMES.get(v, v) for v in value)
    if isinstance(value, frozenset | set):
        return sorted(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _option_lines(
    model: SpecModel | None, keys: tuple[tuple[str, str], ...], built: Any, depth: int
) -> list[ExplainLine]:
    """``spec_key: value`` for each mapped key, the value read from the built option object (so
    defaults are the option classes' ``DEFAULT_*``), tagged by whether the spec wrote it."""
    lines: list[ExplainLine] = []
    for key, attribute in keys:
        value = getattr(built, attribute)
        source: Source = "spec" if model is not None and model.given(key) else "default"
        if key == "budget":
            if value is None:
                lines.append(ExplainLine(depth, "budget: null", source))
                continue
            lines.append(ExplainLine(depth, "budget:"))
            for sub in ("ratio", "min_per_second"):
                sub_model = getattr(model, "budget", None) if model is not None else None
                sub_source: Source = "spec" if sub_model is not None and sub_model.given(sub) else "default"
                lines.append(ExplainLine(depth + 1, f"{sub}: {_value(getattr(value, sub))}", sub_source))
            continue
        if key == "mode" and value == "rate":
            value = "failure_rate"
        lines.append(ExplainLine(depth, f"{key}: {_value(_shown(key, value))}", source))
    return lines


def _spec_only(
    model: SpecModel | None, default: SpecModel, keys: tuple[str, ...], depth: int
) -> list[ExplainLine]:
    """Keys of a section that no option object carries, read from the spec model."""
    chosen = model if model is not None else default
    lines = []
    for key in keys:
        given = model is not None and model.given(key)
        value = getattr(chosen, key)
        if isinstance(value, SpecModel):
            lines.append(ExplainLine(depth, f"{key}:"))
            lines.extend(_model_lines(value, depth + 1, all_default=not given))
            continue
        lines.append(
            ExplainLine(depth, f"{key}: {_value(_shown(key, value))}", "spec" if given else "default")
        )
    return lines


def _policies(spec: Spec) -> list[ExplainLine]:
    """Timeouts, the connection, retry, breaker, rate limits and bulkhead as the runtime builds
    them (``tether._build``): the same option objects a code-first user would write."""
    from tether import _build  # the runtime side; imported late (it imports tether.spec)

    lines: list[ExplainLine] = [ExplainLine(0, "timeouts:")]
    lines += _option_lines(spec.timeouts, _build.TIMEOUT_KEYS, _build.timeouts_from(spec.timeouts), 1)
    lines.append(ExplainLine(0, "http:"))
    lines += _option_lines(spec.http, _build.ENGINE_KEYS, _build.engine_from(spec), 1)
    retry = _build.retry_from(spec)
    if retry is None:
        lines += [ExplainLine(0, "retry: off", "off"), ExplainLine(1, "enabled: false in the spec", "note")]
    else:
        lines.append(ExplainLine(0, "retry:"))
        lines += _option_lines(spec.retry, _build.RETRY_KEYS, retry, 1)
    breaker = _build.breaker_from(spec)
    if breaker is None:
        lines += [
            ExplainLine(0, "circuit_breaker: off", "off"),
            ExplainLine(1, "enabled: false in the spec", "note"),
        ]
    else:
        lines.append(ExplainLine(0, "circuit_breaker:"))
        lines += _option_lines(spec.circuit_breaker, _build.BREAKER_KEYS, breaker, 1)
        lines += _spec_only(spec.circuit_breaker, CircuitBreaker(), ("shared", "monitoring"), 1)
    rate = _build.rate_from(spec)
    limits = spec.rate_limits
    if rate is None or limits is None:
        lines += [
            ExplainLine(0, "rate_limits: off", "off"),
            ExplainLine(1, "no rate_limits section: calls are not limited client-side", "note"),
        ]
    else:
        lines.append(ExplainLine(0, "rate_limits:"))
        if limits.tier is not None:
            lines.append(ExplainLine(1, f"tier: {_value(limits.tier)}", "spec"))
        for window in rate.windows:
            key = _PERIOD_KEYS.get(window.period, f"requests_per_{format_duration(window.period)}")
            lines.append(ExplainLine(1, f"{key}: {window.limit}", "spec"))
        burst_given = limits.effective().burst_size is not None
        lines.append(
            ExplainLine(1, f"burst_size: {rate.windows[0].burst}", "spec" if burst_given else "default")
        )
        headers = rate.headers
        headers_source: Source = "spec" if limits.headers is not None else "default"
        lines.append(ExplainLine(1, "headers:"))
        for key in ("limit", "remaining", "reset"):
            lines.append(ExplainLine(2, f"{key}: {_value(getattr(headers, key))}", headers_source))
        lines.append(
            ExplainLine(
                1,
                f"pause_on_429: {_value(limits.pause_on_429)}",
                "spec" if limits.given("pause_on_429") else "default",
            )
        )
        throttling = spec.throttling
        lines.append(ExplainLine(0, "throttling:"))
        lines += _option_lines(throttling, (("on_limit", "strategy"), ("max_queue", "max_queue")), rate, 1)
        lines.append(
            ExplainLine(
                1,
                f"retry_after: {_value(format_duration(rate.pause_on_429))}",
                "spec" if throttling is not None and throttling.retry_after is not None else "default",
            )
        )
        lines += _spec_only(throttling, Throttling(), ("strategy", "backoff_multiplier", "max_wait"), 1)
    bulkhead = _build.bulkhead_from(spec)
    if bulkhead is None:
        lines += [
            ExplainLine(0, "bulkhead: off", "off"),
            ExplainLine(1, "no bulkhead section: concurrency is not limited", "note"),
        ]
    else:
        lines.append(ExplainLine(0, "bulkhead:"))
        lines += _option_lines(spec.bulkhead, _build.BULKHEAD_KEYS, bulkhead, 1)
    return lines


def _line(depth: int, key: str, value: Any, given: bool) -> ExplainLine:
    return ExplainLine(depth, f"{key}: {_value(value)}", "spec" if given else "default")


def _shown_url(url: str) -> str:
    """A state or DLQ location with a Redis URL's password masked (files and memory as written)."""
    return redact_url(url) if url.startswith(("redis://", "rediss://")) else url


def _off(title: str, why: str) -> list[ExplainLine]:
    return [ExplainLine(0, f"{title}: off", "off"), ExplainLine(1, why, "note")]


def _resilience(spec: Spec) -> list[ExplainLine]:
    """Cache, state, DLQ, fallback, budgets and rights as the runtime builds them
    (``tether._build``): the option objects' values, the spec's keys and what they turned into."""
    from tether import _build  # the runtime side; imported late (it imports tether.spec)

    lines: list[ExplainLine] = []
    section = spec.cache
    refused: str | None = None
    try:
        cache = _build.cache_from(spec)
    except SpecError as exc:
        cache, refused = None, str(exc)
    if refused is not None:
        lines += [ExplainLine(0, "cache:"), ExplainLine(1, f"refused by tether.open: {refused}", "note")]
    elif cache is None:
        why = (
            "enabled: false in the spec"
            if section is not None
            else "no cache section: responses are not cached"
        )
        lines += _off("cache", why)
    elif section is None or not section.enabled:
        lines += [
            ExplainLine(0, "cache: kept for the fallback only"),
            ExplainLine(
                1, "responses are stored but never answer fresh (the fallback's cache strategy)", "note"
            ),
            _line(1, "ttl", format_duration(float(cast(float, cache.ttl))), False),
            _line(1, "keep_expired", format_duration(float(cast(float, cache.keep_expired))), True),
        ]
    else:
        settings = cache.settings()
        lines.append(ExplainLine(0, "cache:"))
        lines.append(_line(1, "backend", str(cache.backend), section.given("backend")))
        lines.append(_line(1, "ttl", format_duration(settings.ttl), section.given("ttl")))
        stale = settings.stale_if_error
        lines.append(
            _line(
                1,
                "stale_if_error",
                None if stale is None else format_duration(stale),
                section.given("stale_if_error"),
            )
        )
        lines.append(_line(1, "max_entries", settings.max_entries, section.given("max_entries")))
        lines.append(_line(1, "max_bytes", format_size(settings.max_bytes), section.given("max_bytes")))
        lines.append(_line(1, "vary_headers", list(section.vary_headers), section.given("vary_headers")))
        for key in ("revalidate", "coalesce"):
            lines.append(_line(1, key, getattr(settings, key), section.given(key)))
        if settings.keep_expired:
            lines.append(_line(1, "keep_expired", format_duration(settings.keep_expired), True))
            lines.append(ExplainLine(2, "from fallback_behavior.cache_ttl", "note"))
    state = spec.state
    chosen = state if state is not None else State()
    url = _build.state_from(spec) or chosen.url
    lines.append(ExplainLine(0, "state:"))
    lines.append(_line(1, "url", _shown_url(url), state is not None and state.given("url")))
    for key in ("on_state_error", "key_prefix"):
        lines.append(_line(1, key, getattr(chosen, key), state is not None and state.given(key)))
    lines += _dlq_lines(spec)
    lines += _fallback_lines(spec)
    lines += _budget_lines(spec)
    rights = _build.rights_from(spec)
    if rights is None or spec.rights is None:
        lines += _off("rights", "no rights profile: endpoints may not require rights")
    else:
        lines += [
            ExplainLine(0, "rights:"),
            _line(1, "profile", spec.rights.profile, True),
            _line(1, "granted", sorted(rights.granted), spec.rights.given("granted")),
        ]
    return lines


def _dlq_lines(spec: Spec) -> list[ExplainLine]:
    from tether import _build

    section = spec.dlq
    if not _build.dlq_wanted(spec):
        why = (
            "enabled: false in the spec"
            if section is not None
            else "no dlq section: failed work is not parked"
        )
        return _off("dlq", why)
    given = section.given if section is not None else (lambda key: False)
    schedule = _build.dlq_schedule(spec)
    marked = sorted(_build.dlq_marked(spec))
    lines = [ExplainLine(0, "dlq:")]
    backend = section.backend if section is not None else Dlq().backend
    lines.append(_line(1, "backend", backend, given("backend")))
    try:
        location = _shown_url(_build.dlq_location(spec))
    except SpecError as exc:
        return [ExplainLine(0, "dlq:"), ExplainLine(1, f"refused by tether.open: {exc}", "note")]
    lines.append(_line(1, "location", location, given("path")))
    lines.append(_line(1, "max_replays", schedule.attempts, given("max_replays")))
    delays = [format_duration(schedule.base(k)) for k in range(1, schedule.attempts + 1)]
    lines.append(_line(1, "schedule", delays, given("schedule")))
    lines.append(_line(1, "jitter", schedule.jitter, given("jitter")))
    lines.append(ExplainLine(1, f"parks: {_value(marked)}", "spec" if marked else "default"))
    if not marked:
        lines.append(ExplainLine(2, "no endpoint is marked dlq: true (nothing is parked)", "note"))
    return lines


def _fallback_lines(spec: Spec) -> list[ExplainLine]:
    from tether import _build

    behavior = spec.fallback_behavior
    parks = _build.dlq_wanted(spec) and bool(_build.dlq_marked(spec))
    if behavior is None and not parks:
        return _off("fallback_behavior", "no fallback_behavior: failures raise")
    lines = [ExplainLine(0, "fallback_behavior:")]
    strategies = list(behavior.strategy) if behavior is not None else []
    chain = []
    for strategy in strategies:
        if strategy == "cache":
            chain.append("stale_cache")
        elif strategy == "default":
            chain.append("default")
        elif strategy == "alternate":
            chain.append(f"alternate ({behavior.alternate})" if behavior is not None else "alternate")
        elif strategy == "queue" and parks:
            chain.append("dlq")
    if "queue" not in strategies and parks:
        chain.append("dlq")
    lines.append(ExplainLine(1, f"chain: {_value(chain)}", "spec"))
    if behavior is not None:
        if "cache" in strategies:
            keep = behavior.cache_ttl if behavior.cache_ttl is not None else _build.FALLBACK_CACHE_KEEP
            lines.append(_line(1, "cache_ttl", format_duration(keep), behavior.cache_ttl is not None))
        if "default" in strategies:
            lines.append(_line(1, "default_response", behavior.default_response, True))
    on = behavior.on_errors if behavior is not None else FallbackBehavior.DEFAULT_ON
    lines.append(_line(1, "on_errors", list(on), behavior is not None and behavior.given("on_errors")))
    return lines


def _budget_lines(spec: Spec) -> list[ExplainLine]:
    from tether import _build

    try:
        budget = _build.budget_from(spec)
    except SpecError as exc:
        return [ExplainLine(0, "costs:"), ExplainLine(1, f"refused by tether.open: {exc}", "note")]
    lines: list[ExplainLine] = []
    costs = spec.costs
    if budget is None or budget.monthly_limit is None or costs is None or costs.budget is None:
        why = "no costs section: spending is not metered"
        if costs is not None:
            why = "costs without a budget: prices are described, spending is not metered"
        lines += _off("costs", why)
    else:
        pricing = budget.pricing
        assert pricing is not None
        lines.append(ExplainLine(0, "costs:"))
        lines.append(_line(1, "pricing_model", costs.pricing_model, True))
        if pricing.model == "tiered":
            shown: Any = [[bound, price] for bound, price in pricing.tiers]
            lines.append(ExplainLine(1, f"tiers (up to request n, price): {_value(shown)}", "spec"))
        elif pricing.model == "subscription":
            lines.append(_line(1, "subscription_fee", pricing.flat, costs.given("subscription_fee")))
            lines.append(_line(1, "included_requests", pricing.included, bool(costs.tiers)))
            lines.append(_line(1, "overage", pricing.price, bool(costs.tiers)))
        else:
            unit = "GB" if pricing.model == "per_gb" else "request"
            lines.append(ExplainLine(1, f"price per {unit}: {_value(pricing.price)}", "spec"))
        lines.append(_line(1, "currency", costs.currency, costs.given("currency")))
        lines.append(_line(1, "monthly_limit", budget.monthly_limit, True))
        lines.append(_line(1, "alert_at", list(budget.alert_at), costs.budget.given("alert_at")))
        lines.append(_line(1, "hard_stop", budget.hard_stop, costs.budget.given("hard_stop")))
    bandwidth = spec.bandwidth
    if budget is None or budget.bandwidth_limit is None or bandwidth is None:
        lines += _off("bandwidth", "no bandwidth section: transfer is not metered")
    else:
        lines.append(ExplainLine(0, "bandwidth:"))
        lines.append(_line(1, "monthly_limit", format_size(int(budget.bandwidth_limit)), True))
        lines.append(_line(1, "alert_at", list(budget.bandwidth_alert_at), bandwidth.given("alert_at")))
        lines.append(_line(1, "hard_stop", budget.bandwidth_hard_stop, bandwidth.given("hard_stop")))
        lines.append(_line(1, "count", budget.bandwidth_count, bandwidth.given("count")))
        lines.append(
            _line(1, "serve_from_cache_at", budget.prefer_cache_at, bandwidth.given("serve_from_cache_at"))
        )
    return lines


def _dlq_parks(spec: Spec) -> frozenset[str]:
    from tether import _build

    return _build.dlq_marked(spec) if _build.dlq_wanted(spec) else frozenset()


def explain(spec: Spec) -> list[ExplainLine]:
    """The effective settings of ``spec``, section by section."""
    lines: list[ExplainLine] = [
        ExplainLine(0, "service:"),
        ExplainLine(1, f"name: {_value(spec.service.name)}", "spec"),
        ExplainLine(1, f"environment: {_value(spec.environment)}", "spec" if spec.environment else "default"),
        ExplainLine(1, f"base_url: {_value(redact_url(spec.base_url))}", "spec"),
    ]
    if spec.authentication is None or spec.authentication.type == "none":
        lines += [
            ExplainLine(0, "authentication: none", "default" if spec.authentication is None else "spec")
        ]
    else:
        lines += [
            ExplainLine(0, "authentication:"),
            ExplainLine(1, f"type: {_value(spec.authentication.type)}", "spec"),
        ]
        for key, (value, given) in spec.authentication.effective().items():
            shown = value.redacted() if isinstance(value, SecretRef) else value
            if isinstance(shown, float) and key in ("expires_in", "refresh_before", "refresh_interval"):
                shown = format_duration(shown)
            lines.append(ExplainLine(1, f"{key}: {_value(shown)}", "spec" if given else "default"))
    lines += _policies(spec)
    lines += _resilience(spec)
    lines += [ExplainLine(0, "endpoints:")]
    base_timeouts = spec.timeouts or Timeouts()
    marked = _dlq_parks(spec)
    stream_defaults = spec.streaming or Streaming()
    for name, endpoint in spec.endpoints.items():
        lines.append(ExplainLine(1, f"{name}: {endpoint.method} {endpoint.path}"))
        lines.append(
            ExplainLine(
                2,
                f"idempotent: {_value(endpoint.is_idempotent)}",
                "spec" if endpoint.idempotent is not None else "default",
            )
        )
        if endpoint.timeouts is not None:
            merged = base_timeouts.model_copy(
                update={k: getattr(endpoint.timeouts, k) for k in endpoint.timeouts.model_fields_set}
            )
            lines.append(ExplainLine(2, "timeouts:"))
            lines.extend(_model_lines(merged, 3))
        if endpoint.rights:
            lines.append(ExplainLine(2, f"rights: {_value(list(endpoint.rights))}", "spec"))
        if name in marked:
            lines.append(ExplainLine(2, "dlq: true", "spec" if endpoint.dlq else "default"))
        if spec.cache is not None and spec.cache.enabled:
            on = endpoint.cache is None or endpoint.cache.enabled
            ttl = (
                endpoint.cache.ttl
                if endpoint.cache is not None and endpoint.cache.ttl is not None
                else spec.cache.ttl
            )
            source: Source = "spec" if endpoint.cache is not None else "default"
            text = f"cache: ttl {format_duration(ttl)}" if on else "cache: off"
            lines.append(ExplainLine(2, text, source))
        if endpoint.pagination is not None:
            lines.append(ExplainLine(2, "pagination:"))
            lines.extend(_model_lines(endpoint.pagination, 3))
        if endpoint.streaming is not None:
            merged_stream = stream_defaults.model_copy(
                update={k: getattr(endpoint.streaming, k) for k in endpoint.streaming.model_fields_set}
            )
            lines.append(ExplainLine(2, "streaming:"))
            lines.extend(_model_lines(merged_stream, 3))
    return lines


def explain_text(spec: Spec) -> str:
    """The effective settings as text, ``# default`` marking values tether filled in."""
    out = []
    for line in explain(spec):
        suffix = "  # default" if line.source == "default" else ""
        if line.source == "note":
            out.append(f"{'  ' * line.depth}# {line.text}")
        else:
            out.append(f"{'  ' * line.depth}{line.text}{suffix}")
    return "\n".join(out) + "\n"
