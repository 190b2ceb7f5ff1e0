"""The effective settings of a spec: what the spec wrote, with tether's defaults filled in.

``tether check --explain`` prints these lines. Timeouts, retry and the circuit breaker apply with
their defaults when a spec leaves them out (DESIGN 2.2: resilient by default); policies that need
a number only the user knows (rate limits, bulkhead, cache, DLQ, budgets, fallback) are off until
their section is given. Each value is tagged ``spec`` (written in the spec) or ``default``.

The policy sections (timeouts, http, retry, circuit_breaker, rate_limits, throttling, bulkhead)
are read from the option objects the runtime builds (``tether._build``), so a default shown here
is the option class's own ``DEFAULT_*`` constant, never a number repeated in the spec models.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from tether._redact import redact_url
from tether.spec._base import SpecModel
from tether.spec._model import Spec
from tether.spec._sections import (
    CircuitBreaker,
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


def _section(
    title: str, model: SpecModel | None, fallback: SpecModel | None, off_reason: str
) -> list[ExplainLine]:
    if model is None and fallback is None:
        return [ExplainLine(0, f"{title}: off", "off"), ExplainLine(1, off_reason, "note")]
    if model is not None and getattr(model, "enabled", True) is False:
        return [ExplainLine(0, f"{title}: off", "off"), ExplainLine(1, "enabled: false in the spec", "note")]
    chosen = model if model is not None else fallback
    assert chosen is not None
    return [ExplainLine(0, f"{title}:"), *_model_lines(chosen, 1, all_default=model is None)]


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
    lines += _section("cache", spec.cache, None, "no cache section: responses are not cached")
    lines += _section("state", spec.state, State(), "")
    lines += _section("dlq", spec.dlq, None, "no dlq section: failed work is not parked")
    lines += _section(
        "fallback_behavior", spec.fallback_behavior, None, "no fallback_behavior: failures raise"
    )
    lines += _section("costs", spec.costs, None, "no costs section: spending is not metered")
    lines += _section("bandwidth", spec.bandwidth, None, "no bandwidth section: transfer is not metered")
    lines += _section("rights", spec.rights, None, "no rights profile: endpoints may not require rights")
    lines += [ExplainLine(0, "endpoints:")]
    base_timeouts = spec.timeouts or Timeouts()
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
