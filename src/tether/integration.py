"""``tether.open(spec)`` → ``Integration``: the spec-first door.

::

    async with tether.open("specs/fred.yaml", env="production") as fred:
        res = await fred.call("series_observations", series_id="GDP")     # -> tether.Result
        async for rec in fred.paginate("series_observations", series_id="GDP"): ...
        async for out in fred.call_many("series_observations", inputs, concurrency=10): ...
        async for event in api.stream("chat", prompt="hi"): ...   # endpoints with streaming:
        fred.status()

An ``Integration`` is a ``tether.Client`` built from the spec (``tether._build.client_options``:
the same policy objects a code-first user would build) plus what the spec says about each
endpoint. One call's path:

1. outbound mapping (``data_mappings.outbound``) of the caller's values;
2. parameter, header and body validation (``tether.validation``): a bad value raises
   ``RequestValidationError`` naming it, and nothing is sent;
3. versioning (``versioning``: a header, a URL path prefix or a query parameter) and the sunset
   check (``refuse_after_sunset=True``: a call past the endpoint's sunset is ``Rejected``);
4. the request (method, path with its path parameters, query, headers, JSON or form body; the
   endpoint's ``idempotent`` marking and ``timeouts``) goes through the client's pipeline, where
   ``error_mapping`` classifies every response;
5. ``Deprecation`` (RFC 9745) / ``Sunset`` (RFC 8594) headers, ``endpoints.*.deprecated`` and
   ``versioning.deprecation_schedule`` emit one ``api.deprecated`` warning event per endpoint;
6. the success status and response schema are checked (``ValidationError`` naming the JSON
   path), ``records`` selects the records and ``data_mappings.inbound`` maps them (fields that
   no rule names are kept as they are).

The resilience sections become the client's policies too (``tether._build``): ``cache`` (and
``endpoints.*.cache``: a TTL, or ``false`` to send that endpoint past the cache), ``fallback_behavior``
(stale cache, default response, alternate provider, DLQ), ``dlq``, ``costs`` / ``bandwidth``
(``Budget``), ``rights`` and ``state``. ``Result.meta`` says who answered: ``from_cache``, ``stale``
and ``served_by`` (``network``, ``cache``, ``stale_cache``, ``default``, ``alternate:<name>``).
A ``default`` answer is the spec's ``default_response`` as written: it is not checked against the
response schema, and ``records`` and the inbound mapping are not applied to it.

The alternate provider (``fallback_behavior.alternate``) is another integration: a spec file,
relative to this spec's folder, opened with this one's environment (when it has it), clock and
listeners, and closed with it; or a name given to ``tether.open(..., alternates={name: other})``
(an ``Integration`` or a ``tether.Client``, which the caller keeps open and closes). The DLQ is
``integration.dlq`` (a ``tether.dlq`` backend; ``dlq=`` replaces it), and
``integration.replayer()`` replays its entries through this integration's client on the spec's
schedule.

``paginate`` runs step 4-6 per page (``tether.paginate``), and a next URL on another origin is
sent without credentials (the auth stage strips them). ``call_many`` runs calls with bounded
concurrency and yields an ``Outcome`` per input as each completes; one failure never stops the
batch, and dropping or cancelling the iterator cancels the calls still running.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import logging
import math
import os
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, Final, Self, cast

import httpx2

from tether import events as ev
from tether._build import (
    IGNORED,
    MappedError,
    client_options,
    dlq_location,
    dlq_schedule,
    dlq_wanted,
    fallback_from,
    header_names,
    monitoring_from,
    sla_from,
    with_error_mapping,
)
from tether._clock import Clock, system_clock
from tether._config import DEFAULT, Timeouts
from tether._context import CallContext, context_of
from tether._redact import redact_url
from tether.client import Client
from tether.dlq import DLQBackend, Replayer, ReplaySchedule, open_dlq
from tether.dlq._replay import ReplayClient
from tether.errors import Rejected, SpecError, TetherError, ValidationError
from tether.mapping import Mapper, select_records
from tether.paginate import (
    Page,
    PageCheckpoint,
    PageRequest,
    Paginator,
    iterate_checkpointed,
    iterate_pages,
    paginator_for,
)
from tether.pipeline._headers import RateLimitHeaderNames, parse_http_date, read_rate_limit
from tether.pipeline.cache import CACHE_MODE_KEY
from tether.result import Meta, Outcome, Result
from tether.spec._endpoint import Endpoint, MappingRule
from tether.spec._loader import load
from tether.spec._model import Spec
from tether.spec._sections import Streaming
from tether.spec._testing import cassette_path
from tether.stream import SSEEvent, stream_events
from tether.telemetry._sla import SlaRecorder
from tether.validation import PreparedParams, validate_body, validate_params, validate_response

__all__ = ["FetchedPage", "Integration", "MappedError", "open"]

#: A deprecation schedule warns this long before the version's retirement date.
DEPRECATION_NOTICE: Final = 90 * 86400.0
#: Latency samples kept per endpoint for ``status()``.
LATENCY_SAMPLES: Final = 1000
_JSON_TYPES: Final = ("application/json",)
_CONTROL_PARAMS: Final = ("page_param", "offset_param", "cursor_param")
_CLIENT_KEYWORDS: Final = frozenset(inspect.signature(Client.__init__).parameters) - {"self"}
#: Overrides an alternate integration opened from a spec file inherits from this one.
_INHERITED: Final = ("clock", "listeners")
#: ``served_by`` of a fallback's static answer (``fallback_behavior.default_response``).
_DEFAULT_ANSWER: Final = "default"


def _utc_midnight(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat()


def _plain(value: Any) -> Any:
    """A status value as plain data: dataclasses as dicts, datetimes as ISO text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _is_json(content_type: str) -> bool:
    main = content_type.split(";", 1)[0].strip().lower()
    return main in _JSON_TYPES or main.endswith("+json")


# --- deprecation headers -----------------------------------------------------------------------------


def parse_deprecation(value: str, *, now: float) -> tuple[bool, float | None]:
    """``(deprecated, since)`` from a ``Deprecation`` header: RFC 9745 ``@<epoch>``, or the
    legacy ``true`` / HTTP-date forms. A malformed value counts as deprecated with no date."""
    text = value.strip()
    if text.startswith("@"):
        try:
            return True, float(int(text[1:]))
        except ValueError:
            return True, None
    if text.lower() in ("true", "?1"):
        return True, None
    if text.lower() in ("false", "?0"):
        return False, None
    return True, parse_http_date(text, now=now)


# --- per-endpoint plan --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Plan:
    """What the spec says about one endpoint, worked out once."""

    name: str
    endpoint: Endpoint
    declared: frozenset[str]
    header_params: frozenset[str]
    param_mapper: Mapper | None
    body_mapper: Mapper | None
    inbound: Mapper | None
    timeouts: Timeouts | None
    success: frozenset[int] | None
    schema: dict[str, Any] | None
    body_kwargs: bool
    cache_bypass: bool

    @property
    def takes_body(self) -> bool:
        return self.endpoint.body is not None


@dataclass(slots=True)
class _Latency:
    samples: deque[float] = dataclasses.field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    calls: int = 0

    def add(self, seconds: float) -> None:
        self.samples.append(seconds)
        self.calls += 1

    def percentile(self, q: float) -> float | None:
        if not self.samples:
            return None
        ordered = sorted(self.samples)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


# --- the integration --------------------------------------------------------------------------------


class Integration:
    """A spec made executable: ``call``, ``paginate``, ``call_many``, ``status``.

    Build one with ``tether.open(spec, env=…, **overrides)``. ``overrides`` are ``tether.Client``
    keywords (``base_url``, ``retry``, ``rate``, ``listeners``, ``clock``, ``transport``,
    ``cassette`` / ``record`` …) that replace what the spec says; a relative ``cassette`` name
    lives in the spec's ``testing.unit_tests.fixtures_location``. ``refuse_after_sunset=True``
    refuses calls past an endpoint's sunset (``Sunset`` header or
    ``versioning.deprecation_schedule``) with ``Rejected``.
    ``alternates`` maps the names a spec's ``fallback_behavior.alternate`` may use to open
    integrations or clients; ``dlq`` replaces the spec's DLQ (a backend, or a location for
    ``tether.dlq.open_dlq``).
    """

    def __init__(
        self,
        spec: Spec,
        *,
        environ: Mapping[str, str] | None = None,
        refuse_after_sunset: bool = False,
        alternates: Mapping[str, Any] | None = None,
        dlq: DLQBackend | str | os.PathLike[str] | None = None,
        _opening: frozenset[str] = frozenset(),
        **overrides: Any,
    ) -> None:
        unknown = sorted(set(overrides) - _CLIENT_KEYWORDS)
        if unknown:
            raise TypeError(
                f"unknown tether.open() keywords {unknown}; tether.Client takes {sorted(_CLIENT_KEYWORDS)}"
            )
        self.spec = spec
        cassette = overrides.get("cassette")
        if isinstance(cassette, str | os.PathLike):  # a relative name lives in fixtures_location
            overrides["cassette"] = cassette_path(spec, cassette)
        self._clock: Clock = overrides.get("clock") or system_clock
        #: The dead-letter queue (``dlq`` section or ``queue`` strategy), else ``None``.
        self.dlq: DLQBackend | None = None
        self._owns_dlq = False
        if isinstance(dlq, str | os.PathLike):
            self.dlq = open_dlq(dlq if isinstance(dlq, str) else Path(dlq))
            self._owns_dlq = True
        elif dlq is not None:
            self.dlq = dlq  # the caller's backend: the caller closes it
        elif dlq_wanted(spec):
            self.dlq = open_dlq(dlq_location(spec))
            self._owns_dlq = True
        #: The replay schedule of ``dlq`` (``dlq.max_replays`` / ``schedule`` / ``jitter``).
        self.dlq_schedule: ReplaySchedule = dlq_schedule(spec)
        self._alternate: Integration | None = None
        options = client_options(spec, environ=environ, clock=self._clock)
        if "fallback" not in overrides:
            target, name = self._alternate_for(alternates, environ, overrides, _opening)
            options["fallback"] = fallback_from(spec, alternate=target, alternate_name=name, dlq=self.dlq)
        monitoring = monitoring_from(spec, clock=self._clock)
        options["policies"] = [*options.get("policies", ()), *monitoring.policies]
        options.update(overrides)
        if monitoring.listeners:
            options["listeners"] = [*options.get("listeners", ()), *monitoring.listeners]
        if spec.error_mapping and "classify" not in overrides:
            options = with_error_mapping(options)  # overridden retry / breaker still obey the mapping
        self.options: Mapping[str, Any] = MappingProxyType(options)
        self.client = Client(**options)  # binds a falling-back store's events to its bus
        #: The ``monitoring.alerts`` evaluator (``None`` without alerts): ``alerts.firing``.
        self.alerts = monitoring.alerts
        if self.alerts is not None:
            self.alerts.bind(self.client.events)
        self._base_url = str(options["base_url"]) if options.get("base_url") else None
        self._names: RateLimitHeaderNames = header_names(spec)
        self._refuse_after_sunset = refuse_after_sunset
        self._plans: dict[str, _Plan] = {}
        self._warned: set[str] = set()
        self._sunsets: dict[str, float] = {}
        self._latency: dict[str, _Latency] = {}
        #: The ``sla:`` section's recorder (``None`` without one): per-operation service levels.
        self.sla: SlaRecorder | None = None
        targets = sla_from(spec)
        if targets is not None:
            self.sla = SlaRecorder(
                spec.service.name,
                targets,
                operations=spec.endpoints,
                store=self.client.store,
                clock=self._clock,
            )
            self.client.events.add(self.sla)
            self.sla.bind(self.client.events)
        versioning = spec.versioning
        self._schedule_sunset: float | None = None
        if versioning is not None and versioning.current in versioning.deprecation_schedule:
            self._schedule_sunset = _utc_midnight(versioning.deprecation_schedule[versioning.current])

    def _alternate_for(
        self,
        alternates: Mapping[str, Any] | None,
        environ: Mapping[str, str] | None,
        overrides: Mapping[str, Any],
        opening: frozenset[str],
    ) -> tuple[Any, str | None]:
        """The alternate provider the fallback's ``alternate`` strategy names, and its name."""
        behavior = self.spec.fallback_behavior
        if behavior is None or "alternate" not in behavior.strategy or behavior.alternate is None:
            return None, None
        ref = behavior.alternate
        given = (alternates or {}).get(ref)
        if given is not None:
            return (given.client if isinstance(given, Integration) else given), ref
        source = self.spec.source
        own = None if source.startswith("<") else Path(source).resolve()
        path = ((own.parent if own is not None else Path.cwd()) / ref).resolve()
        if not path.is_file():
            raise SpecError(
                f"fallback_behavior.alternate {ref!r}: no spec file at {path}; name a spec file or "
                f"give tether.open(..., alternates={{{ref!r}: integration}})",
                service=self.spec.service.name,
            )
        chain = opening | ({str(own)} if own is not None else frozenset())
        if str(path) in chain:
            raise SpecError(
                f"fallback_behavior.alternate {ref!r} leads back to {path}: alternates form a loop",
                service=self.spec.service.name,
            )
        loaded = load(path, environ=environ)
        passed = {key: overrides[key] for key in _INHERITED if key in overrides}
        environment = self.spec.environment
        if environment is not None and environment in loaded.service.environments:
            passed["base_url"] = loaded.base_url_for(environment)
        self._alternate = Integration(
            loaded, environ=environ, alternates=alternates, _opening=chain | {str(path)}, **passed
        )
        return self._alternate.client, None

    # --- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        try:
            if self._alternate is not None:
                await self._alternate.__aenter__()
            await self.client.__aenter__()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client (pooled connections, the state store), the alternate integration this
        one opened, and the DLQ it opened."""
        try:
            if self.sla is not None and not self.client.closed:
                await self.sla.flush()
            await self.client.aclose()
        finally:
            try:
                if self._alternate is not None:
                    await self._alternate.aclose()
            finally:
                if self._owns_dlq and self.dlq is not None:
                    self._owns_dlq = False
                    await self.dlq.aclose()

    def replayer(self, **options: Any) -> Replayer:
        """A ``tether.dlq.Replayer`` for ``dlq`` that sends through this integration's client
        (signed again by its auth) on the spec's schedule; ``options`` are ``Replayer``'s
        keywords (``lease``, ``batch``, ``rng`` …). ``SpecError`` when there is no DLQ."""
        if self.dlq is None:
            raise SpecError(
                "this integration has no dead-letter queue (no dlq section, no queue fallback)",
                service=self.service,
            )
        options.setdefault("schedule", self.dlq_schedule)
        options.setdefault("clock", self._clock)
        # Client.build_request takes its keywords by name; ReplayClient declares them as **kwargs.
        return Replayer(cast(ReplayClient, self.client), self.dlq, **options)

    def __repr__(self) -> str:
        base = redact_url(self._base_url) if self._base_url else None
        return (
            f"Integration({self.spec.service.name!r}, environment={self.spec.environment!r}, "
            f"base_url={base!r}, endpoints={list(self.spec.endpoints)!r})"
        )

    @property
    def service(self) -> str:
        return self.client.service

    # --- planning -----------------------------------------------------------------------------

    def _plan(self, name: str) -> _Plan:
        plan = self._plans.get(name)
        if plan is not None:
            return plan
        endpoint = self.spec.endpoints.get(name)
        if endpoint is None:
            known = ", ".join(self.spec.endpoints) or "none"
            raise SpecError(f"unknown endpoint {name!r}; endpoints: {known}", service=self.service)
        if endpoint.body is not None and endpoint.body.content_type == "multipart/form-data":
            raise SpecError(
                f"{name}: multipart/form-data bodies are not supported yet (json and form are)",
                service=self.service,
                endpoint=name,
            )
        declared = frozenset(p.name for p in endpoint.parameters)
        header_params = frozenset(h.name.lower() for h in endpoint.headers if h.value is None)
        mappings = endpoint.data_mappings if endpoint.data_mappings is not None else self.spec.data_mappings
        outbound: tuple[MappingRule, ...] = mappings.outbound if mappings is not None else ()
        inbound: tuple[MappingRule, ...] = mappings.inbound if mappings is not None else ()
        names = declared | {h.name for h in endpoint.headers}
        to_params = tuple(r for r in outbound if r.external_field in names)
        to_body = tuple(r for r in outbound if r.external_field not in names) if endpoint.body else ()
        timeouts = None
        if endpoint.timeouts is not None:
            base = dataclasses.asdict(self.client.timeouts)
            base.update({k: getattr(endpoint.timeouts, k) for k in endpoint.timeouts.model_fields_set})
            timeouts = Timeouts(**base)
        success = endpoint.response.success if endpoint.response is not None else None
        in_body = any(p.in_ == "body" for p in endpoint.parameters)
        plan = _Plan(
            name=name,
            endpoint=endpoint,
            declared=declared,
            header_params=header_params,
            param_mapper=Mapper(to_params, direction="outbound", keep_unmapped=True) if to_params else None,
            body_mapper=Mapper(to_body, direction="outbound", keep_unmapped=True) if to_body else None,
            inbound=Mapper(inbound, direction="inbound", keep_unmapped=True) if inbound else None,
            timeouts=timeouts,
            success=frozenset(success.status) if success is not None and success.given("status") else None,
            schema=success.schema_ if success is not None else None,
            body_kwargs=endpoint.body is not None and not in_body,
            cache_bypass=endpoint.cache is not None and not endpoint.cache.enabled,
        )
        self._plans[name] = plan
        return plan

    # --- building requests --------------------------------------------------------------------

    def _validate(self, plan: _Plan, params: Mapping[str, Any]) -> tuple[PreparedParams, Any]:
        """Map, validate and split the caller's values: ``(prepared params, body)``. Raises
        ``RequestValidationError`` before anything is sent."""
        values = dict(params)
        body: Any = None
        explicit_body = "body" in values and "body" not in plan.declared and plan.takes_body
        if explicit_body:
            body = values.pop("body")
        if plan.param_mapper is not None:
            values = plan.param_mapper.map_record(values)
        if plan.body_kwargs and not explicit_body:
            extra = {
                k: values.pop(k)
                for k in list(values)
                if k not in plan.declared and k.lower() not in plan.header_params
            }
            body = extra if extra else None
        prepared = validate_params(plan.endpoint, values, endpoint_name=plan.name, service=self.service)
        if prepared.body:
            body = {**body, **prepared.body} if isinstance(body, Mapping) else dict(prepared.body)
        if plan.body_mapper is not None and isinstance(body, Mapping):
            body = plan.body_mapper.map_record(body)
        if plan.takes_body:
            validate_body(plan.endpoint, body, endpoint_name=plan.name, service=self.service)
        return prepared, body

    def _url_and_query(self, plan: _Plan, prepared: PreparedParams) -> tuple[str, dict[str, Any]]:
        path = prepared.render_path(plan.endpoint.path)
        query: dict[str, Any] = dict(prepared.query)
        versioning = self.spec.versioning
        if versioning is not None:
            if versioning.strategy == "url":
                segments = (httpx2.URL(self._base_url).path if self._base_url else "").strip("/").split("/")
                if versioning.current not in segments:
                    path = f"/{versioning.current}{path}"
            elif versioning.strategy == "query":
                query.setdefault(versioning.query_param, versioning.current)
        return path.lstrip("/"), query

    def _headers(self, prepared: PreparedParams) -> dict[str, str]:
        headers = dict(prepared.headers)
        versioning = self.spec.versioning
        if versioning is not None and versioning.strategy == "header":
            headers.setdefault(versioning.header_name, versioning.current)
        return headers

    def _build(
        self,
        plan: _Plan,
        prepared: PreparedParams,
        body: Any,
        *,
        page: PageRequest | None = None,
    ) -> httpx2.Request:
        headers = self._headers(prepared)
        url: str
        query: dict[str, Any] | None
        if page is not None and page.url is not None:
            url, query = page.url, None  # a next URL's query is complete
        else:
            url, query = self._url_and_query(plan, prepared)
            if page is not None:
                query.update(page.params)
        endpoint = plan.endpoint
        json_body: Any = None
        form_body: Mapping[str, Any] | None = None
        if body is not None:
            if endpoint.body is not None and endpoint.body.content_type != "application/json":
                form_body = body
            else:
                json_body = body
        request = self.client.build_request(
            endpoint.method,
            url,
            params=query or None,
            headers=headers,
            json=json_body,
            data=form_body,
            endpoint=plan.name,
            idempotent=endpoint.idempotent,
            timeout=plan.timeouts if plan.timeouts is not None else DEFAULT,
        )
        if plan.cache_bypass:
            context_of(request).extras[CACHE_MODE_KEY] = "bypass"
        return request

    # --- deprecation and sunset ---------------------------------------------------------------

    def _warn(self, endpoint: str, **fields: Any) -> None:
        if endpoint in self._warned:
            return
        self._warned.add(endpoint)
        self.client.events.emit(ev.API_DEPRECATED, endpoint=endpoint, level=logging.WARNING, **fields)

    def _before(self, plan: _Plan) -> None:
        """Spec-declared deprecation warnings, and the sunset refusal (nothing is sent)."""
        now = self._clock.time()
        versioning = self.spec.versioning
        if plan.endpoint.deprecated:
            self._warn(plan.name, source="spec", sunset=_iso(self._sunset(plan.name)))
        schedule = self._schedule_sunset
        if schedule is not None and now >= schedule - DEPRECATION_NOTICE and versioning is not None:
            self._warn(
                plan.name, source="deprecation_schedule", version=versioning.current, sunset=_iso(schedule)
            )
        sunset = self._sunset(plan.name)
        if self._refuse_after_sunset and sunset is not None and now >= sunset:
            raise Rejected(
                f"{plan.name} is past its sunset ({_iso(sunset)}); refused without sending "
                "(refuse_after_sunset=True)",
                service=self.service,
                endpoint=plan.name,
            )

    def _sunset(self, endpoint: str) -> float | None:
        candidates = [t for t in (self._sunsets.get(endpoint), self._schedule_sunset) if t is not None]
        return min(candidates) if candidates else None

    def _after(self, plan: _Plan, response: httpx2.Response) -> None:
        """Read ``Deprecation`` / ``Sunset`` from a response."""
        headers = response.headers
        raw_deprecation = headers.get("deprecation")
        raw_sunset = headers.get("sunset")
        if raw_deprecation is None and raw_sunset is None:
            return
        now = self._clock.time()
        sunset = parse_http_date(raw_sunset, now=now) if raw_sunset is not None else None
        if sunset is not None:
            self._sunsets[plan.name] = sunset
        deprecated, since = (
            (False, None) if raw_deprecation is None else parse_deprecation(raw_deprecation, now=now)
        )
        if deprecated or sunset is not None:
            self._warn(
                plan.name,
                source="headers",
                deprecated_since=_iso(since),
                sunset=_iso(sunset),
                link=headers.get("link"),
            )

    # --- sending and reading ------------------------------------------------------------------

    async def _send(self, plan: _Plan, request: httpx2.Request) -> tuple[httpx2.Response, Any, CallContext]:
        """Send through the pipeline; the decoded, schema-checked body (records not selected)."""
        ctx = context_of(request)
        started = self._clock.monotonic()
        try:
            response = await self.client.send(request)
        except TetherError as exc:
            if exc.response is not None:
                self._after(plan, exc.response)
            raise
        finally:
            self._latency.setdefault(plan.name, _Latency()).add(self._clock.monotonic() - started)
            if self.sla is not None:
                await self.sla.maybe_flush()
        self._after(plan, response)
        if _served_by(ctx) == _DEFAULT_ANSWER:  # the spec's default_response: used as written
            return response, self._decode(plan, response, ctx), ctx
        ignored = IGNORED in response.extensions
        status = response.status_code
        if not ignored and plan.success is not None and status not in plan.success:
            expected = ", ".join(map(str, sorted(plan.success)))
            raise ValidationError(
                f"unexpected status {status} for {plan.name}; the spec expects {expected}",
                service=self.service,
                endpoint=plan.name,
                request_id=ctx.request_id,
                response=response,
            )
        body = self._decode(plan, response, ctx)
        if not ignored:
            validate_response(
                plan.schema, body, endpoint=plan.name, service=self.service, request_id=ctx.request_id
            )
        return response, body, ctx

    def _decode(self, plan: _Plan, response: httpx2.Response, ctx: CallContext) -> Any:
        content = response.content
        if not content:
            return None
        header = response.headers.get("content-type")
        expected = (
            plan.endpoint.response.success.content_type if plan.endpoint.response else "application/json"
        )
        if (header is not None and _is_json(header)) or (header is None and _is_json(expected)):
            try:
                return json.loads(content)
            except (ValueError, UnicodeDecodeError):
                raise ValidationError(
                    f"response of {plan.name} is not valid JSON",
                    service=self.service,
                    endpoint=plan.name,
                    request_id=ctx.request_id,
                    response=response,
                ) from None
        return response.text

    def _map(self, plan: _Plan, data: Any) -> Any:
        mapper = plan.inbound
        if mapper is None:
            return data
        if isinstance(data, list):
            return mapper.map_records(data)
        if isinstance(data, Mapping):
            return mapper.map_record(data)
        return data

    def _result(
        self, plan: _Plan, response: httpx2.Response, data: Any, ctx: CallContext, started: float
    ) -> Result:
        meta = ctx.meta
        known = {"attempts", "from_cache", "stale", "served_by"}
        from_cache = bool(meta.get("from_cache", False))
        stale = bool(meta.get("stale", False))
        served_by = _served_by(ctx)
        if served_by is None or served_by == "primary":  # the fallback's word for "not a fallback"
            served_by = ("stale_cache" if stale else "cache") if from_cache else "network"
        meta_obj = Meta(
            attempts=int(meta.get("attempts", ctx.attempt)),
            from_cache=from_cache,
            stale=stale,
            elapsed=self._clock.monotonic() - started,
            request_id=ctx.request_id,
            rate_limit=read_rate_limit(response.headers, now=self._clock.time(), names=self._names),
            served_by=served_by,
            status=response.status_code,
            extra=MappingProxyType({k: v for k, v in meta.items() if k not in known}),
        )
        return Result(data=data, response=response, meta=meta_obj, endpoint=plan.name)

    # --- the public calls ---------------------------------------------------------------------

    async def call(self, endpoint: str, /, **params: Any) -> Result:
        """One call of ``endpoint`` with ``params`` (path, query, header and body parameters by
        name; ``body=`` or the undeclared keywords form the body of an endpoint with ``body:``).

        Returns a ``Result``; raises a ``tether.errors`` error (``RequestValidationError`` before
        anything is sent when a parameter is wrong).
        """
        started = self._clock.monotonic()
        plan = self._plan(endpoint)
        prepared, body = self._validate(plan, params)
        self._before(plan)
        request = self._build(plan, prepared, body)
        response, data, ctx = await self._send(plan, request)
        if _served_by(ctx) == _DEFAULT_ANSWER:
            return self._result(plan, response, data, ctx, started)
        if plan.endpoint.records is not None and IGNORED not in response.extensions:
            data = select_records(data, plan.endpoint.records)
        return self._result(plan, response, self._map(plan, data), ctx, started)

    def validate(self, endpoint: str, /, **params: Any) -> None:
        """Check ``params`` as ``call`` would (mapping, parameters, body) without sending
        anything: ``RequestValidationError`` names what is wrong. Pagination's own controls
        (a start page, offset or cursor) are accepted."""
        plan = self._plan(endpoint)
        values = dict(params)
        pagination = plan.endpoint.pagination
        if pagination is not None:
            for attribute in _CONTROL_PARAMS:
                name = getattr(pagination, attribute, None)
                if name is not None and name not in plan.declared:
                    values.pop(name, None)
        self._validate(plan, values)

    async def paginate(self, endpoint: str, /, **params: Any) -> AsyncIterator[Any]:
        """The records of every page of ``endpoint``, in order, each page through the whole
        pipeline. An endpoint without ``pagination:`` is one page."""
        plan = self._plan(endpoint)
        if plan.endpoint.pagination is None:
            result = await self.call(endpoint, **params)
            for record in _as_records(result.data):
                yield record
            return
        paginator, fetch, control, answered = self._paging(plan, params)
        async for page in iterate_pages(paginator, fetch, control):
            for record in self._page_records(plan, page, answered):
                yield record
            if answered:
                return

    async def pages(
        self, endpoint: str, /, *, resume: PageCheckpoint | None = None, **params: Any
    ) -> AsyncIterator[FetchedPage]:
        """The pages of ``endpoint`` one by one (each through the whole pipeline), each with the
        checkpoint to resume after it: what a resumable job keeps with the records it wrote.

        ``resume`` (a ``PageCheckpoint`` from an earlier page of the same call) starts at the
        page after it. An endpoint without ``pagination:`` is one page. The last page's
        ``checkpoint`` is ``None``. A pagination loop raises without yielding the page that
        led to it, so no checkpoint points into a loop.
        """
        plan = self._plan(endpoint)
        if plan.endpoint.pagination is None:
            result = await self.call(endpoint, **params)
            yield FetchedPage(_as_records(result.data), 0, None, result.meta.status)
            return
        paginator, fetch, control, answered = self._paging(plan, params)
        async for page, checkpoint in iterate_checkpointed(paginator, fetch, control, resume=resume):
            records = self._page_records(plan, page, answered)
            index = checkpoint.next.index - 1 if checkpoint is not None else paginator.pages - 1
            status = page.response.status_code if isinstance(page.response, httpx2.Response) else None
            yield FetchedPage(records, index, None if answered else checkpoint, status)
            if answered:
                return

    def _paging(
        self, plan: _Plan, params: Mapping[str, Any]
    ) -> tuple[Paginator, Callable[[PageRequest], Awaitable[Page]], dict[str, Any], list[bool]]:
        """A paginator, its fetch function, the control parameters (a start page, offset or
        cursor the caller gave) and the flag list a default answer sets (it is the last page)."""
        pagination = plan.endpoint.pagination
        assert pagination is not None
        values = dict(params)
        control: dict[str, Any] = {}
        for attribute in _CONTROL_PARAMS:
            name = getattr(pagination, attribute, None)
            if name is not None and name in values and name not in plan.declared:
                control[name] = values.pop(name)
        prepared, body = self._validate(plan, values)
        paginator = paginator_for(pagination, base_url=self._base_url)
        answered: list[bool] = []  # a page the fallback answered with the default: the last page

        async def fetch(page_request: PageRequest) -> Page:
            self._before(plan)
            request = self._build(plan, prepared, body, page=page_request)
            response, data, ctx = await self._send(plan, request)
            if _served_by(ctx) == _DEFAULT_ANSWER:
                answered.append(True)
                records = data if isinstance(data, list) else ([] if data is None else [data])
                return Page(data, response.headers, records, str(response.request.url), response)
            records = select_records(data, plan.endpoint.records)
            return Page(data, response.headers, records, str(response.request.url), response)

        return paginator, fetch, control, answered

    def _page_records(self, plan: _Plan, page: Page, answered: list[bool]) -> list[Any]:
        if answered or plan.inbound is None:
            return list(page.records)
        return list(plan.inbound.map_records(page.records))

    def stream(self, endpoint: str, /, **params: Any) -> AsyncIterator[SSEEvent]:
        """The server-sent events of ``endpoint`` (one with ``streaming:``), as
        ``tether.stream.SSEEvent`` values: ``async for event in api.stream("chat", q="hi")``.

        The request is built like ``call``'s (mapping, validation, versioning, sunset) and sent
        through the pipeline; the endpoint's ``streaming`` keys over the spec's ``streaming``
        section (``timeout``, ``reconnect``, ``max_reconnects``, ``reconnect_delay``,
        ``error_events``) drive ``tether.stream``: reconnects with ``Last-Event-ID`` after the
        server's ``retry:``, error events raised as typed errors, the whole stream bounded by
        ``timeout``. A bad parameter raises ``RequestValidationError`` here, before iterating.
        """
        plan = self._plan(endpoint)
        own = plan.endpoint.streaming
        if own is None:
            raise SpecError(
                f"{plan.name} has no streaming: section; use call() or give it streaming: {{type: sse}}",
                service=self.service,
                endpoint=plan.name,
            )
        base = self.spec.streaming or Streaming()
        settings = base.model_copy(update={k: getattr(own, k) for k in own.model_fields_set})
        prepared, body = self._validate(plan, params)
        self._before(plan)

        @asynccontextmanager
        async def opener(headers: Mapping[str, str]) -> AsyncIterator[httpx2.Response]:
            request = self._build(plan, prepared, body)
            context_of(request).stream = True
            request.headers.update(headers)
            response = await self.client.send(request)
            try:
                yield response
            finally:
                await response.aclose()

        return stream_events(
            self.client,
            opener,
            endpoint=plan.name,
            timeout=settings.timeout,
            reconnect=settings.reconnect,
            max_reconnects=settings.max_reconnects,
            reconnect_delay=settings.reconnect_delay,
            error_events=settings.error_events,
            clock=self._clock,
            on_response=lambda response: self._after(plan, response),
        )

    def call_many(
        self, endpoint: str, inputs: Iterable[Mapping[str, Any]], *, concurrency: int = 10
    ) -> CallMany:
        """Call ``endpoint`` once per input (a mapping of params), at most ``concurrency`` at a time.

        ``async for outcome in api.call_many(...)`` yields an ``Outcome`` per input as each
        completes. A failed call is an ``Outcome`` with ``error``; the batch goes on. Leaving the
        loop early (``break``, an exception, cancellation) cancels the calls still running; use
        ``async with api.call_many(...) as outcomes`` to also wait until they have ended.
        """
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be a whole number >= 1, got {concurrency!r}")
        self._plan(endpoint)  # an unknown endpoint fails here, not per input
        return CallMany(self, endpoint, inputs, concurrency)

    # --- status -------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """A snapshot as plain data: the pipeline's policies (``breaker``, ``limiter``,
        ``bulkhead``, ``auth``, and ``cache`` / ``budget`` / ``dlq`` … when configured), each
        endpoint's latency against its ``performance`` targets, and deprecations seen."""
        out: dict[str, Any] = {
            "service": self.service,
            "environment": self.spec.environment,
            "base_url": redact_url(self._base_url) if self._base_url else None,
            "pipeline": self.client.describe(),
        }
        pipeline = self.client.pipeline
        for kind in pipeline.describe():
            policy = pipeline.policy(kind)
            status = getattr(policy, "status", None)
            if not callable(status) or inspect.iscoroutinefunction(status):
                continue
            out["limiter" if kind == "rate" else kind] = _plain(status())
        endpoints: dict[str, Any] = {}
        for name, latency in self._latency.items():
            performance = self.spec.endpoints[name].performance
            entry: dict[str, Any] = {"calls": latency.calls}
            breaching: list[str] = []
            for key, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
                measured = latency.percentile(q)
                entry[key] = measured
                target = getattr(performance, key, None) if performance is not None else None
                if target is not None:
                    entry.setdefault("targets", {})[key] = target
                    if measured is not None and measured > target:
                        breaching.append(key)
            if performance is not None:
                entry["breaching"] = breaching
            endpoints[name] = entry
        if self.dlq is not None:
            out["dlq"] = {"backend": repr(self.dlq), "max_replays": self.dlq_schedule.attempts}
        out["endpoints"] = endpoints
        if self.sla is not None:
            out["sla"] = self.sla.report()
        out["deprecated"] = {name: {"sunset": _iso(self._sunset(name))} for name in sorted(self._warned)}
        return out

    async def fetch_status(self) -> dict[str, Any]:
        """``status()`` read from the state store: with a shared store (SQLite, Redis) the breaker,
        limiter and budget are what every worker sees, not only this process; with a DLQ, its
        entry counts."""
        out = self.status()
        pipeline = self.client.pipeline
        for kind in pipeline.describe():
            fetch = getattr(pipeline.policy(kind), "fetch_status", None)
            if callable(fetch):
                out["limiter" if kind == "rate" else kind] = _plain(await fetch())
        if self.dlq is not None:
            out["dlq"]["counts"] = _plain(await self.dlq.counts())
        if self.sla is not None:
            out["sla"] = await self.sla.fetch_report()  # every instance's figures
        return out


def _as_records(data: Any) -> list[Any]:
    """A non-paginated answer as records: a list as it is, anything else as one record."""
    return list(data) if isinstance(data, list) else [data]


@dataclass(frozen=True, slots=True)
class FetchedPage:
    """One page from ``Integration.pages``: its (mapped) ``records``, its ``index`` (from 0),
    the ``checkpoint`` to resume after it (``None`` after the last page) and the HTTP ``status``
    it came with (``None`` when the cache or a fallback answered without one)."""

    records: list[Any]
    index: int
    checkpoint: PageCheckpoint | None
    status: int | None = None


def _served_by(ctx: CallContext) -> str | None:
    served = ctx.meta.get("served_by")
    return served if isinstance(served, str) else None


# --- call_many ----------------------------------------------------------------------------------------


async def _call_one(integration: Integration, endpoint: str, item: Any) -> Outcome:
    """One input of a batch as an ``Outcome``: a failure is data, never the batch's end."""
    try:
        if not isinstance(item, Mapping):
            raise TypeError(f"each input of call_many is a mapping of params, got {type(item).__name__}")
        result = await integration.call(endpoint, **item)
    except Exception as exc:  # one failure never aborts the batch
        return Outcome(item, None, exc)
    return Outcome(item, result, None)


class CallMany:
    """The running batch of ``Integration.call_many``: an async iterator of ``Outcome`` and an
    async context manager that cancels and awaits what is still running on exit."""

    def __init__(
        self, integration: Integration, endpoint: str, inputs: Iterable[Mapping[str, Any]], concurrency: int
    ) -> None:
        self._integration = integration
        self._endpoint = endpoint
        self._inputs: Iterator[Mapping[str, Any]] = iter(inputs)
        self._concurrency = concurrency
        self._running: set[asyncio.Task[Outcome]] = set()
        self._exhausted = False

    @property
    def running(self) -> int:
        """Calls in flight now."""
        return len(self._running)

    def _fill(self) -> None:
        while not self._exhausted and len(self._running) < self._concurrency:
            try:
                item = next(self._inputs)
            except StopIteration:
                self._exhausted = True
                return
            # The task must not hold this iterator (``__del__`` cancels the tasks when it is dropped).
            call = _call_one(self._integration, self._endpoint, item)
            self._running.add(asyncio.get_running_loop().create_task(call))

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Outcome:
        try:
            self._fill()
            if not self._running:
                raise StopAsyncIteration
            done, _ = await asyncio.wait(self._running, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            self.cancel()
            raise
        task = done.pop()
        self._running.discard(task)
        return task.result()

    def cancel(self) -> None:
        """Cancel every call still running and start no more."""
        self._exhausted = True
        for task in self._running:
            task.cancel()

    async def aclose(self) -> None:
        """Cancel what is still running and wait until it has ended."""
        self.cancel()
        running, self._running = self._running, set()
        if running:
            await asyncio.gather(*running, return_exceptions=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        # Dropped mid-batch (``break`` without ``async with``): nothing may keep running unowned.
        for task in getattr(self, "_running", ()):
            if not task.done() and not task.get_loop().is_closed():
                task.cancel()


# --- tether.open ----------------------------------------------------------------------------------------


def open(
    spec: str | os.PathLike[str] | Spec,
    env: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    refuse_after_sunset: bool = False,
    alternates: Mapping[str, Any] | None = None,
    dlq: DLQBackend | str | os.PathLike[str] | None = None,
    **overrides: Any,
) -> Integration:
    """An ``Integration`` for a spec file (or YAML text, or a loaded ``Spec``).

    ``env`` selects the environment's base URL (else ``TETHER_ENV``, else the spec's default);
    ``environ`` replaces ``os.environ`` for ``${VAR}`` interpolation (secrets included);
    ``overrides`` are ``tether.Client`` keywords that win over the spec (e.g. ``base_url=``,
    ``listeners=``, ``clock=``); ``alternates`` names the integrations (or clients) a spec's
    ``fallback_behavior.alternate`` may name; ``dlq`` replaces the spec's dead-letter queue.
    Use it as ``async with tether.open(...) as api:``.
    """
    if isinstance(spec, Spec):
        loaded = spec
        if env is not None and "base_url" not in overrides:
            overrides["base_url"] = spec.base_url_for(env)
    else:
        loaded = load(spec, env=env, environ=environ)
    return Integration(
        loaded,
        environ=environ,
        refuse_after_sunset=refuse_after_sunset,
        alternates=alternates,
        dlq=dlq,
        **overrides,
    )
