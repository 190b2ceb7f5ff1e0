"""OpenTelemetry traces: one span per call, one child span per attempt.

``tether.telemetry.Tracing()`` is a policy (kind ``"trace"``, the outermost slot) that opens the
call's span; the engine stage opens a child span for each attempt when the call carries a tracer,
following the HTTP client semantic conventions (``http.request.method``, ``url.full`` with
credentials masked, ``server.address``, ``server.port``, ``http.response.status_code``,
``http.request.resend_count``, ``error.type``). Only ``opentelemetry-api`` is needed: without an
SDK configured, spans are no-ops.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import httpx2
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer, TracerProvider

from tether._context import CONTEXT_KEY, CallContext
from tether._redact import redact_url
from tether.errors import TetherError
from tether.pipeline._base import Handler, PolicyEnv

__all__ = ["TRACER_KEY", "Tracing", "TracingPolicy", "attempt_span"]

#: ``CallContext.extras`` key holding the tracer of a traced call (read by the engine stage).
TRACER_KEY: Final = "otel.tracer"
_VERSION: Final = "0.1.0"


@dataclass(frozen=True, slots=True)
class Tracing:
    """Trace every call. ``tracer_provider``: default the global one; ``propagate``: inject the
    W3C ``traceparent`` header into each attempt so the provider's traces join yours."""

    kind: ClassVar[str] = "trace"

    tracer_provider: TracerProvider | None = None
    propagate: bool = True
    #: The share of calls traced (``0.1``: one in ten, drawn per call); the others pass untraced.
    sample_rate: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.sample_rate, bool) or not 0.0 <= float(self.sample_rate) <= 1.0:
            raise ValueError(f"Tracing.sample_rate must be between 0 and 1, got {self.sample_rate!r}")

    def build(self, env: PolicyEnv) -> TracingPolicy:
        tracer = trace.get_tracer("tether", _VERSION, tracer_provider=self.tracer_provider)
        return TracingPolicy(tracer, env, propagate=self.propagate, sample_rate=float(self.sample_rate))


class TracingPolicy:
    """Runtime of ``Tracing``: the call's span."""

    __slots__ = ("_env", "_propagate", "_rng", "_sample_rate", "_tracer")

    def __init__(
        self,
        tracer: Tracer,
        env: PolicyEnv,
        *,
        propagate: bool,
        sample_rate: float = 1.0,
        rng: random.Random | None = None,
    ) -> None:
        self._tracer = tracer
        self._env = env
        self._propagate = propagate
        self._sample_rate = sample_rate
        self._rng = rng if rng is not None else random.Random()

    async def __call__(self, request: httpx2.Request, next: Handler) -> httpx2.Response:
        if self._sample_rate < 1.0 and self._rng.random() >= self._sample_rate:
            return await next(request)  # not sampled: no span, no traceparent
        ctx = request.extensions.get(CONTEXT_KEY)
        endpoint = ctx.endpoint if isinstance(ctx, CallContext) else None
        name = f"{self._env.service} {endpoint or request.method}"
        attributes: dict[str, Any] = {
            "tether.service": self._env.service,
            "http.request.method": request.method,
        }
        if endpoint:
            attributes["tether.endpoint"] = endpoint
        with self._tracer.start_as_current_span(
            name,
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            if isinstance(ctx, CallContext):
                ctx.extras[TRACER_KEY] = (self._tracer, self._propagate)
            try:
                response = await next(request)
            except TetherError as exc:
                span.set_attribute("error.type", type(exc).__name__)
                span.set_attribute("tether.error_code", exc.error_code)
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                _set_meta(span, ctx)
                raise
            span.set_attribute("http.response.status_code", response.status_code)
            _set_meta(span, ctx)
            return response


def _set_meta(span: trace.Span, ctx: object) -> None:
    if not isinstance(ctx, CallContext):
        return
    for key in ("attempts", "from_cache", "stale", "served_by"):
        value = ctx.meta.get(key)
        if isinstance(value, bool | int | str):
            span.set_attribute(f"tether.{key}", value)


@contextmanager
def attempt_span(request: httpx2.Request, ctx: CallContext) -> Iterator[trace.Span | None]:
    """The attempt's span when the call is traced (else ``None``, at the cost of one lookup)."""
    traced = ctx.extras.get(TRACER_KEY)
    if traced is None:
        yield None
        return
    tracer, inject = traced
    url = request.url
    attributes: dict[str, Any] = {
        "http.request.method": request.method,
        "url.full": redact_url(str(url)),
        "server.address": url.host,
        "server.port": url.port or (443 if url.scheme == "https" else 80),
    }
    if ctx.attempt > 1:
        attributes["http.request.resend_count"] = ctx.attempt - 1
    with tracer.start_as_current_span(
        request.method,
        kind=SpanKind.CLIENT,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        if inject:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            for key, value in carrier.items():
                request.headers[key] = value
        yield span


def end_attempt(
    span: trace.Span | None, response: httpx2.Response | None, error: BaseException | None
) -> None:
    """Record the attempt's outcome on its span."""
    if span is None:
        return
    if response is not None:
        span.set_attribute("http.response.status_code", response.status_code)
        if response.status_code >= 400:
            span.set_attribute("error.type", str(response.status_code))
            span.set_status(Status(StatusCode.ERROR))
    elif error is not None:
        span.set_attribute("error.type", type(error).__name__)
        span.set_status(Status(StatusCode.ERROR, str(error) if isinstance(error, TetherError) else None))
