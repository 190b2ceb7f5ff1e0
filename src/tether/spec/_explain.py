"""The effective settings of a spec: what the spec wrote, with tether's defaults filled in.

``tether check --explain`` prints these lines. Timeouts, retry and the circuit breaker apply with
their defaults when a spec leaves them out (DESIGN 2.2: resilient by default); policies that need
a number only the user knows (rate limits, bulkhead, cache, DLQ, budgets, fallback) are off until
their section is given. Each value is tagged ``spec`` (written in the spec) or ``default``.
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
    HttpOptions,
    Retry,
    State,
    Streaming,
    Throttling,
    Timeouts,
)
from tether.spec._types import SecretRef, format_duration

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
    lines += _section("timeouts", spec.timeouts, Timeouts(), "")
    lines += _section("http", spec.http, HttpOptions(), "")
    lines += _section("retry", spec.retry, Retry(), "")
    lines += _section("circuit_breaker", spec.circuit_breaker, CircuitBreaker(), "")
    if spec.rate_limits is None:
        lines += _section(
            "rate_limits", None, None, "no rate_limits section: calls are not limited client-side"
        )
    else:
        effective = spec.rate_limits.effective()
        lines += [ExplainLine(0, "rate_limits:")]
        if spec.rate_limits.tier is not None:
            lines.append(ExplainLine(1, f"tier: {_value(spec.rate_limits.tier)}", "spec"))
        for window, limit in effective.windows().items():
            lines.append(ExplainLine(1, f"{window}: {limit}", "spec"))
        lines.append(
            ExplainLine(
                1,
                f"burst_size: {effective.burst_size or 0}",
                "spec" if effective.burst_size is not None else "default",
            )
        )
        lines.append(
            ExplainLine(
                1,
                f"pause_on_429: {_value(spec.rate_limits.pause_on_429)}",
                "spec" if spec.rate_limits.given("pause_on_429") else "default",
            )
        )
        lines += _section("throttling", spec.throttling, Throttling(), "")
    lines += _section("bulkhead", spec.bulkhead, None, "no bulkhead section: concurrency is not limited")
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
