"""``tether.Client``: the code-first door.

A thin request builder in front of the pipeline: it turns ``get(...)`` into an ``httpx2.Request``
with a ``CallContext``, passes it through the policies (in the fixed order of
``tether.pipeline.ORDER``) and finally to the engine. It returns ``httpx2.Response`` objects; error
statuses become typed ``tether.errors`` exceptions (``raise_for_status=False`` returns them).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal, Self

import httpx2

from tether import events as ev
from tether._clock import Clock, system_clock
from tether._config import DEFAULT, Default, Timeouts
from tether._context import CONTEXT_KEY, CallContext
from tether._redact import redact_url
from tether._units import Duration
from tether.auth import AuthLike, as_auth
from tether.cassette import Cassette, CassetteTransport, RecordMode, as_cassette
from tether.errors import Rejected, TetherError, error_for_status
from tether.events import EventBus, Listener
from tether.pipeline._base import Pipeline, PolicyEnv, PolicyOptions
from tether.pipeline.breaker import Breaker
from tether.pipeline.bulkhead import Bulkhead
from tether.pipeline.cache import Cache
from tether.pipeline.deadline import AttemptTimeout, Deadline
from tether.pipeline.fallback import Fallback
from tether.pipeline.rate import Rate
from tether.pipeline.retry import Retry
from tether.state import StateStore, open_store
from tether.telemetry._tracing import TRACER_KEY, attempt_span, end_attempt
from tether.transport import EngineOptions
from tether.transport._factory import create_transport
from tether.transport._redirects import send_following_redirects

__all__ = ["Client", "ResponseClassifier"]

ResponseClassifier = Callable[[httpx2.Response, CallContext], bool | None]
"""Looks at every response (body read, unless streamed) before the default status mapping.

Raise a ``TetherError`` to fail the attempt (the policies above see it like any other error);
return ``True`` to accept the response as a success whatever its status; return ``None`` (or
``False``) to apply the default mapping (``error_for_status`` for statuses >= 400). The spec door
uses it for ``error_mapping`` (errors reported with a 200, or with codes in the body).
"""

_URL_CACHE_SIZE = 512

_VERSION = "0.1.0"
_DEFAULT_HEADERS: Mapping[str, str] = {
    "User-Agent": f"tether/{_VERSION}",
    "Accept": "*/*",
    "Accept-Encoding": "gzip, deflate, br",
}


class Client:
    """An async HTTP client with a resilience pipeline.

    ``policies`` are options objects (``tether.Retry(...)``, ``tether.Breaker(...)`` …); each is
    built once for this client and placed in the pipeline by its kind, whatever the list order.
    The client starts lazily (on the first request) and must be closed with ``aclose()`` or used
    as ``async with``. ``classify`` (a ``ResponseClassifier``) sees every response before the
    default status mapping, in the innermost stage, so what it raises is retried, counted by the
    breaker and refreshed by auth like an error status; unset, it costs nothing. ``cassette``
    (a path or a ``tether.cassette.Cassette``) records the exchanges under the whole pipeline and
    replays them offline; ``record`` is its mode (``once``, ``new``, ``none``, ``all``).
    """

    def __init__(
        self,
        base_url: str | httpx2.URL | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        timeout: Timeouts | Duration | Default | None = DEFAULT,
        auth: AuthLike | None = None,
        retry: Retry | Default | None = DEFAULT,
        breaker: Breaker | Default | None = DEFAULT,
        rate: Rate | str | None = None,
        bulkhead: Bulkhead | int | None = None,
        cache: Cache | None = None,
        fallback: Fallback | None = None,
        policies: Sequence[PolicyOptions] = (),
        state: StateStore | str | None = None,
        engine: EngineOptions | None = None,
        http_version: Literal["1.1", "2"] | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
        follow_redirects: bool | None = None,
        raise_for_status: bool = True,
        service: str | None = None,
        listeners: Iterable[Listener] = (),
        clock: Clock | None = None,
        classify: ResponseClassifier | None = None,
        cassette: Cassette | str | os.PathLike[str] | None = None,
        record: RecordMode | None = None,
    ) -> None:
        self._base_url = _normalise_base(base_url)
        self._headers = httpx2.Headers(_DEFAULT_HEADERS)
        if headers:
            self._headers.update(headers)
        self._params = dict(params or {})
        self._url_cache: dict[str, httpx2.URL] = {}
        self.timeouts = Timeouts() if timeout is DEFAULT else Timeouts.of(timeout)
        engine = engine or EngineOptions()
        if http_version is not None or follow_redirects is not None:
            engine = dataclasses.replace(
                engine,
                http_version=http_version if http_version is not None else engine.http_version,
                follow_redirects=follow_redirects
                if follow_redirects is not None
                else engine.follow_redirects,
            )
        self.engine = engine
        self.service = service or (self._base_url.host if self._base_url is not None else "default")
        self.events = EventBus(listeners, service=self.service)
        self._clock = clock or system_clock
        self._raise_for_status = raise_for_status
        self._classify = classify
        self._transport = transport
        self._owns_transport = transport is None
        #: The cassette this client records to and replays from (``cassette=``), else ``None``.
        self.cassette: Cassette | None = None
        if cassette is not None:
            self.cassette = as_cassette(cassette, record)
            self._transport = CassetteTransport(
                self.cassette,
                connect=lambda: create_transport(self.engine),
                inner=transport,
                base_url=str(self._base_url) if self._base_url is not None else None,
                service=self.service,
            )
            self._owns_transport = True  # it saves the cassette; it closes only an engine it made
        elif record is not None:
            raise ValueError("record= needs a cassette= to record to")
        self._closed = False
        self.store = open_store(state)
        self._owns_store = not isinstance(state, StateStore)
        bind = getattr(self.store, "bind_events", None)
        if callable(bind):  # a shared store that can fall back to local state reports its switches
            bind(self.events)
        self._env = PolicyEnv(
            service=self.service,
            clock=self._clock,
            events=self.events,
            store=self.store,
            base_url=str(self._base_url) if self._base_url is not None else None,
        )
        options = _resilience_policies(
            retry=retry,
            breaker=breaker,
            rate=rate,
            bulkhead=bulkhead,
            optional=(cache, fallback),
            auth=as_auth(auth) if auth is not None else None,
            timeouts=self.timeouts,
            extra=policies,
        )
        self._pipeline = Pipeline.build(options, self._env, self._send)
        cache_stage, auth_stage = self._pipeline.policy("cache"), self._pipeline.policy("auth")
        if auth_stage is not None and callable(getattr(cache_stage, "identify_with", None)):
            cache_stage.identify_with(auth_stage.credential_material)  # keys the first call by its credential

    # --- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._ensure_open()
        await self.check()
        return self

    async def check(self) -> None:
        """Resolve what must exist before the first request (secrets): fail now, naming the source."""
        auth = self._pipeline.policy("auth")
        if auth is not None:
            await auth.check()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close pooled connections and the state store. The client cannot be used afterwards."""
        if self._closed:
            return
        self._closed = True
        transport, self._transport = self._transport, None
        try:
            for policy in self._pipeline.policies():
                closer = getattr(policy, "aclose", None)
                if closer is not None:  # e.g. a cache's SQLite backend
                    await closer()
        finally:
            try:
                if transport is not None and self._owns_transport:
                    await transport.aclose()
            finally:
                if self._owns_store:
                    await self.store.aclose()

    def _ensure_open(self) -> httpx2.AsyncBaseTransport:
        if self._closed:
            raise RuntimeError("this tether.Client is closed; create a new one")
        if self._transport is None:
            self._transport = create_transport(self.engine)
        return self._transport

    # --- introspection -----------------------------------------------------------------------

    @property
    def clock(self) -> Clock:
        """The clock the pipeline reads and sleeps with."""
        return self._clock

    @property
    def closed(self) -> bool:
        """Whether ``aclose()`` was called."""
        return self._closed

    @property
    def pipeline(self) -> Pipeline:
        return self._pipeline

    def describe(self) -> list[str]:
        """The pipeline's policy kinds, outermost first (see ``tether.pipeline.ORDER``)."""
        return self._pipeline.describe()

    def __repr__(self) -> str:
        base = redact_url(str(self._base_url)) if self._base_url is not None else None
        return f"Client(base_url={base!r}, service={self.service!r}, pipeline={self.describe()!r})"

    # --- requests ----------------------------------------------------------------------------

    def build_request(
        self,
        method: str,
        url: str | httpx2.URL,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | str | None = None,
        data: Mapping[str, Any] | None = None,
        timeout: Timeouts | Duration | Default | None = DEFAULT,
        endpoint: str | None = None,
        idempotent: bool | None = None,
        idempotency_key: str | None = None,
        stream: bool = False,
    ) -> httpx2.Request:
        """The request ``request()`` would send, with its ``CallContext`` attached."""
        merged_headers = self._headers
        if headers:
            merged_headers = self._headers.copy()
            merged_headers.update(headers)
        merged_params: Mapping[str, Any] | None = params
        if self._params:
            merged_params = {**self._params, **(params or {})}
        timeouts = self.timeouts if timeout is DEFAULT else Timeouts.of(timeout)
        ctx = CallContext(
            service=self.service,
            timeouts=timeouts,
            endpoint=endpoint,
            idempotent=idempotent,
            idempotency_key=idempotency_key,
            stream=stream,
        )
        return httpx2.Request(
            method,
            self._merge_url(url),
            params=merged_params,
            headers=merged_headers,
            json=json,
            content=content,
            data=data,
            extensions={CONTEXT_KEY: ctx, "timeout": timeouts.as_extension()},
        )

    async def send(self, request: httpx2.Request) -> httpx2.Response:
        """Send a request made by ``build_request`` through the pipeline."""
        self._ensure_open()
        if not self.events.active:
            try:
                return await self._pipeline(request)
            except TetherError as exc:
                if not self._raise_for_status and exc.response is not None and exc.status_code is not None:
                    return exc.response
                raise
        return await self._send_observed(request)

    async def _send_observed(self, request: httpx2.Request) -> httpx2.Response:
        """``send`` with the call's outcome reported (``call.succeeded`` / ``call.failed``)."""
        ctx: CallContext = request.extensions[CONTEXT_KEY]
        started = self._clock.monotonic()
        try:
            response = await self._pipeline(request)
        except TetherError as exc:
            self._report_call(
                ev.CALL_FAILED,
                ctx,
                started,
                error_type=type(exc).__name__,
                error_code=exc.error_code,
                status=exc.status_code,
                rejected=isinstance(exc, Rejected),
            )
            if not self._raise_for_status and exc.response is not None and exc.status_code is not None:
                return exc.response
            raise
        self._report_call(ev.CALL_SUCCEEDED, ctx, started, status=response.status_code)
        return response

    def _report_call(self, name: str, ctx: CallContext, started: float, **fields: Any) -> None:
        self.events.emit(
            name,
            endpoint=ctx.endpoint,
            elapsed=round(self._clock.monotonic() - started, 6),
            attempts=ctx.meta.get("attempts", max(ctx.attempt, 1)),
            from_cache=bool(ctx.meta.get("from_cache")),
            request_id=ctx.request_id,
            served_by=_served_by(ctx.meta, failed=name == ev.CALL_FAILED),
            **fields,
        )

    async def request(self, method: str, url: str | httpx2.URL, **kwargs: Any) -> httpx2.Response:
        """Send one request through the pipeline and read the whole body.

        Keywords: ``params``, ``headers``, ``json``, ``content``, ``data``, ``timeout``,
        ``endpoint`` (a name for telemetry), ``idempotent``, ``idempotency_key``.
        """
        return await self.send(self.build_request(method, url, **kwargs))

    async def get(self, url: str | httpx2.URL, **kwargs: Any) -> httpx2.Response:
        return await self.request("GET", url, **kwargs)

    async def head(self, url: str | httpx2.URL, **kwargs: Any) -> httpx2.Response:
        return await self.request("HEAD", url, **kwargs)

    async def post(self, url: str | httpx2.URL, **kwargs: Any) -> httpx2.Response:
        return await self.request("POST", url, **kwargs)

    async def put(self, url: str | httpx2.URL, **kwargs: Any) -> httpx2.Response:
        return await self.request("PUT", url, **kwargs)

    async def patch(self, url: str | httpx2.URL, **kwargs: Any) -> httpx2.Response:
        return await self.request("PATCH", url, **kwargs)

    async def delete(self, url: str | httpx2.URL, **kwargs: Any) -> httpx2.Response:
        return await self.request("DELETE", url, **kwargs)

    @asynccontextmanager
    async def stream(
        self, method: str, url: str | httpx2.URL, **kwargs: Any
    ) -> AsyncIterator[httpx2.Response]:
        """Send a request and yield the response with its body unread (``aiter_bytes()`` etc.).

        The body is not size-limited. The response is closed when the block exits.
        """
        response = await self.send(self.build_request(method, url, stream=True, **kwargs))
        try:
            yield response
        finally:
            await response.aclose()

    # --- the terminal handler ----------------------------------------------------------------

    async def _send(self, request: httpx2.Request) -> httpx2.Response:
        """Innermost stage: the engine (following redirects if enabled), body read, status mapping."""
        transport = self._ensure_open()
        ctx: CallContext = request.extensions[CONTEXT_KEY]
        if ctx.attempt == 0:
            ctx.attempt = 1
        events = self.events
        if events.active:
            events.emit(
                ev.REQUEST_SENT,
                endpoint=ctx.endpoint,
                level=logging.DEBUG,
                method=request.method,
                url=str(request.url),
                attempt=ctx.attempt,
            )
        started = self._clock.monotonic()
        try:
            traced = ctx.extras.get(TRACER_KEY) if ctx.extras else None
            if traced is None:
                response = await self._exchange(transport, request, ctx)
            else:
                with attempt_span(request, ctx) as span:
                    try:
                        response = await self._exchange(transport, request, ctx)
                    except BaseException as exc:
                        end_attempt(span, None, exc)
                        raise
                    end_attempt(span, response, None)
            status = response.status_code
        except TetherError as exc:
            if events.active:
                events.emit(
                    ev.REQUEST_FAILED,
                    endpoint=ctx.endpoint,
                    level=logging.DEBUG,
                    method=request.method,
                    url=str(request.url),
                    attempt=ctx.attempt,
                    error_type=type(exc).__name__,
                    elapsed=round(self._clock.monotonic() - started, 6),
                )
            raise
        if events.active:
            events.emit(
                ev.RESPONSE_RECEIVED,
                endpoint=ctx.endpoint,
                level=logging.DEBUG,
                method=request.method,
                url=str(request.url),
                status=status,
                attempt=ctx.attempt,
                elapsed=round(self._clock.monotonic() - started, 6),
                bytes_in=len(response.content) if not ctx.stream else None,
            )
        classify = self._classify
        if classify is not None:
            try:
                accepted = classify(response, ctx)
            except BaseException:
                await response.aclose()
                raise
            if accepted:
                return response
        if status >= 400:
            raise error_for_status(
                response, service=ctx.service, endpoint=ctx.endpoint, request_id=ctx.request_id
            )
        return response

    async def _exchange(
        self, transport: httpx2.AsyncBaseTransport, request: httpx2.Request, ctx: CallContext
    ) -> httpx2.Response:
        """One exchange with the server (following redirects if enabled); the body is read."""
        if self.engine.follow_redirects:
            # .request is the last request of the chain (set by send_following_redirects)
            response = await send_following_redirects(transport, request, self.engine, self.events)
        else:
            response = await transport.handle_async_request(request)
            response.request = request
        try:
            if not ctx.stream or response.status_code >= 400:
                await response.aread()
        except BaseException:
            await response.aclose()
            raise
        return response

    def _merge_url(self, url: str | httpx2.URL) -> httpx2.URL:
        # URL parsing is a large share of a request's CPU cost; callers reuse a handful of paths.
        if isinstance(url, str):
            cached = self._url_cache.get(url)
            if cached is not None:
                return cached
        merged = self._merge_url_uncached(url)
        if isinstance(url, str):
            if len(self._url_cache) >= _URL_CACHE_SIZE:
                self._url_cache.pop(next(iter(self._url_cache)))
            self._url_cache[url] = merged
        return merged

    def _merge_url_uncached(self, url: str | httpx2.URL) -> httpx2.URL:
        target = httpx2.URL(url)
        if not target.is_relative_url or self._base_url is None:
            if target.is_relative_url:
                raise ValueError(f"relative URL {str(target)!r} needs a base_url on the client")
            return target
        base = self._base_url
        path = base.raw_path.split(b"?", 1)[0] + target.raw_path.lstrip(b"/")
        return base.copy_with(raw_path=path)


def _served_by(meta: Mapping[str, Any], *, failed: bool) -> str | None:
    """Who answered the call: the fallback's step, the cache, the network (``None``: nobody)."""
    served = meta.get("served_by")
    if isinstance(served, str) and served != "primary":
        return served
    if meta.get("from_cache"):
        return "stale_cache" if meta.get("stale") else "cache"
    return None if failed else "network"


def _resilience_policies(
    *,
    retry: Retry | Default | None,
    breaker: Breaker | Default | None,
    rate: Rate | str | None,
    bulkhead: Bulkhead | int | None,
    optional: Sequence[PolicyOptions | None],
    auth: PolicyOptions | None,
    timeouts: Timeouts,
    extra: Sequence[PolicyOptions],
) -> list[PolicyOptions]:
    """The pipeline's policies: the keywords' (timeouts, retry and breaker on by default, DESIGN 2.2)
    plus ``extra``. A policy in ``extra`` replaces the *default* of its kind; a kind given both by
    keyword and in ``extra`` is an error (the pipeline refuses duplicates)."""
    given = {p.kind for p in extra}
    out: list[PolicyOptions] = []
    if timeouts.total is not None and "deadline" not in given:
        out.append(Deadline())
    if timeouts.attempt is not None and "attempt_timeout" not in given:
        out.append(AttemptTimeout())
    if retry is not None and not (retry is DEFAULT and "retry" in given):
        out.append(Retry() if retry is DEFAULT else retry)
    if breaker is not None and not (breaker is DEFAULT and "breaker" in given):
        out.append(Breaker() if breaker is DEFAULT else breaker)
    if rate is not None:
        out.append(Rate(rate) if isinstance(rate, str) else rate)
    if bulkhead is not None:
        out.append(Bulkhead(max_concurrent=bulkhead) if isinstance(bulkhead, int) else bulkhead)
    out.extend(p for p in optional if p is not None)
    if auth is not None:
        out.append(auth)
    return [*out, *extra]


def _normalise_base(base_url: str | httpx2.URL | None) -> httpx2.URL | None:
    if base_url is None or base_url == "":
        return None
    url = httpx2.URL(base_url)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"base_url must be an absolute http(s) URL, got {redact_url(str(base_url))!r}")
    if not url.raw_path.endswith(b"/"):
        url = url.copy_with(raw_path=url.raw_path + b"/")
    return url
