"""Fallback: when a call fails, serve it another way — an ordered chain of steps.

::

    tether.Fallback(
        StaleCache(),                                   # an expired cache entry, if the cache has one
        Default(json={"items": []}),                    # a static answer
        Alternate(backup_client, name="backup"),        # another provider of the same endpoint
        Enqueue(dlq),                                   # park the call in the dead-letter queue
        endpoints={"create_order": [Enqueue(dlq)]},     # a chain of its own for one endpoint
    )

Where it sits (``kind = "fallback"``): outside the cache, deadline, retry and breaker, so it sees
the call's *final* failure — after every retry, or the breaker failing fast — and inside the
rights and budget checks, so a refused call is never served another way.

Which failures trigger it (``on=``; default ``DEFAULT_ON``): ``ConnectionError``,
``TimeoutError``, ``CircuitOpenError``, ``RateLimitExceeded`` and any error with a 5xx status
(``"5xx"``). ``on`` takes error classes, HTTP statuses (``503``), error codes (``"CONN_001"``, as
a spec's ``fallback_behavior.on_errors`` lists them) and ``"5xx"``. Whatever ``on``
says, these are never served another way (``NEVER``): ``ValidationError`` (the request is wrong
wherever it goes), ``NotFoundError``, ``AuthenticationError``, ``BudgetExceeded``,
``RightsViolationError``. Any other failure is raised unchanged.

The steps are tried in order; the first that produces a response serves the call. A step that
cannot serve (no stale entry, the alternate failed, the call is not marked for the DLQ) passes to
the next. When none serves, the original error is raised (from the DLQ step: marked with
``dlq_id``). ``ctx.meta["served_by"]`` says who answered: ``"primary"``, ``"stale_cache"``,
``"default"``, ``"alternate:<name>"`` or ``"dlq"``; each step that serves emits
``fallback.served``.

How the stale-cache step and the cache compose
    The cache policy (``kind = "cache"``, just inside this one) serves an expired entry itself when
    it has ``stale_if_error`` and the upstream fails; the call then *succeeds* here and
    ``served_by`` is ``"stale_cache"`` (the cache sets ``ctx.meta["stale"]``). For a failure the
    cache let through, ``StaleCache()`` asks it once more: the cache leaves an
    ``async () -> httpx2.Response | None`` under ``ctx.extras["cache.stale_lookup"]``
    (``STALE_LOOKUP_KEY``) for every call it has a key for, returning the stored entry however old
    it is (or ``None``). Without a cache (or without that hook) the step passes.

The DLQ step and idempotency
    ``Enqueue`` marks calls by method / endpoint (or per call with ``tether.dlq.mark_dlq``). A
    marked POST or PATCH without an idempotency key gets one *before it is sent*
    (``Idempotency-Key`` header and ``ctx.idempotency_key``): the first attempt, its retries and
    every replay carry the same key, so the upstream can drop duplicates — and, as the retry
    policy allows for keyed calls, the POST is retried. A marked call that fails is stored (see
    ``tether.dlq``) *before* the error is raised, so a caller told "failed" can count on the
    entry. ``placeholder=True`` returns ``202 Accepted`` with ``{"queued": true, "dlq_id": …}``
    instead of raising.

A replay of a dead letter (``tether.dlq.Replayer``) skips the whole chain: its failure is the
replayer's to record, and a default answer would not deliver it.
"""

from __future__ import annotations

import abc
import random
import re
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Protocol, runtime_checkable

import httpx2

from tether import events as ev
from tether._context import CallContext, new_request_id
from tether._redact import redact_text, registry
from tether.dlq._capture import (
    REPLAY_KEY,
    SecretInBody,
    capture_request,
    credential_ref,
    current_unit,
    entry_id_for,
    is_marked,
)
from tether.dlq._protocol import DeadLetter, DLQBackend, new_entry_id
from tether.dlq._replay import ReplaySchedule
from tether.errors import (
    AuthenticationError,
    BudgetExceeded,
    CircuitOpenError,
    ConnectionError,
    NotFoundError,
    RateLimitExceeded,
    RightsViolationError,
    TetherError,
    TimeoutError,
    ValidationError,
)
from tether.pipeline._base import Handler, PolicyEnv

__all__ = [
    "DEFAULT_ON",
    "NEVER",
    "PRIMARY_ERROR_KEY",
    "STALE_LOOKUP_KEY",
    "Alternate",
    "Default",
    "Enqueue",
    "FailedCall",
    "Fallback",
    "FallbackPolicy",
    "FallbackStep",
    "StaleCache",
]

#: ``ctx.extras`` key under which the cache policy leaves ``async () -> Response | None``.
STALE_LOOKUP_KEY: Final = "cache.stale_lookup"
#: ``ctx.extras`` key: the error the chain was asked to serve (the budget reads it).
PRIMARY_ERROR_KEY: Final = "fallback.primary_error"

Trigger = type[BaseException] | int | str

DEFAULT_ON: Final[tuple[Trigger, ...]] = (
    ConnectionError,
    TimeoutError,
    CircuitOpenError,
    RateLimitExceeded,
    "5xx",
)
NEVER: Final[tuple[type[TetherError], ...]] = (
    ValidationError,
    NotFoundError,
    AuthenticationError,
    BudgetExceeded,
    RightsViolationError,
)

_ERROR_CODE: Final = re.compile(r"[A-Z][A-Z0-9]*_[0-9]{3}")
_HOP_HEADERS: Final = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_NON_IDEMPOTENT: Final = frozenset({"POST", "PATCH"})
_DEFAULT_IDEMPOTENCY_HEADER: Final = "Idempotency-Key"


# --- what a step gets --------------------------------------------------------------------------


@dataclass(slots=True)
class FailedCall:
    """The call a step is asked to serve: the request, its context, the error, the policy's env."""

    request: httpx2.Request
    ctx: CallContext
    error: TetherError
    env: PolicyEnv
    rng: random.Random


class FallbackStep(abc.ABC):
    """One link of the chain: serve the failed call (a response) or pass (``None``)."""

    #: What ``ctx.meta["served_by"]`` says when this step serves.
    @property
    @abc.abstractmethod
    def served_by(self) -> str: ...

    @abc.abstractmethod
    async def serve(self, call: FailedCall) -> httpx2.Response | None:
        """A response for ``call``, or ``None`` to let the next step try. Errors also pass."""

    def prepare(self, request: httpx2.Request, ctx: CallContext) -> None:  # noqa: B027 - optional hook
        """Called before the call is sent (the DLQ step gives marked POSTs an idempotency key)."""


# --- the steps ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StaleCache(FallbackStep):
    """Serve the cache's stored entry for this call, however old (see the module docstring)."""

    @property
    def served_by(self) -> str:
        return "stale_cache"

    async def serve(self, call: FailedCall) -> httpx2.Response | None:
        lookup = call.ctx.extras.get(STALE_LOOKUP_KEY)
        if not callable(lookup):
            return None
        response = await lookup()
        if not isinstance(response, httpx2.Response):
            return None
        call.ctx.meta["from_cache"] = True
        call.ctx.meta["stale"] = True
        return response


@dataclass(frozen=True, slots=True)
class Default(FallbackStep):
    """Answer with a static response: ``json=`` or ``content=`` (bytes/str), ``status``, ``headers``."""

    json: Any = None
    content: bytes | str | None = None
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.json is not None and self.content is not None:
            raise ValueError("Default takes json= or content=, not both")
        if isinstance(self.status, bool) or not isinstance(self.status, int) or not 200 <= self.status <= 399:
            raise ValueError(f"Default.status must be a success status (200-399), got {self.status!r}")
        object.__setattr__(self, "headers", dict(self.headers))

    @property
    def served_by(self) -> str:
        return "default"

    async def serve(self, call: FailedCall) -> httpx2.Response | None:
        response = httpx2.Response(
            self.status,
            headers=dict(self.headers),
            json=self.json,
            content=self.content,
            request=call.request,
        )
        await response.aread()
        return response


@runtime_checkable
class AlternateTarget(Protocol):
    """Anything with an async ``send(request)``: a ``tether.Client``, an ``httpx2.AsyncClient`` …"""

    async def send(self, request: httpx2.Request) -> httpx2.Response: ...


@dataclass(frozen=True, slots=True)
class Alternate(FallbackStep):
    """Send the call to another provider of the same endpoint.

    The request's URL is re-based: its path below this client's base URL (and its query) is put
    under the alternate's base URL — ``base_url=`` or, for a ``tether.Client``, the client's own
    (its ``build_request`` does it, and its own pipeline and auth run). Headers and query
    parameters that carry this client's credentials are removed first: the alternate signs with
    its own. ``name`` (default: the alternate's service name or host) appears in ``served_by``.
    """

    target: AlternateTarget
    name: str | None = None
    base_url: str | None = None

    def __post_init__(self) -> None:
        if not callable(getattr(self.target, "send", None)):
            raise ValueError(f"Alternate needs an object with an async send(request), got {self.target!r}")
        if self.base_url is None and not callable(getattr(self.target, "build_request", None)):
            raise ValueError("Alternate needs base_url= for a target that is not a tether.Client")
        if self.base_url is not None:
            url = httpx2.URL(self.base_url)
            if url.scheme not in ("http", "https") or not url.host:
                raise ValueError(f"Alternate.base_url must be an absolute http(s) URL, got {self.base_url!r}")

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        service = getattr(self.target, "service", None)
        if isinstance(service, str) and service:
            return service
        return httpx2.URL(self.base_url).host if self.base_url else type(self.target).__name__

    @property
    def served_by(self) -> str:
        return f"alternate:{self.label}"

    async def serve(self, call: FailedCall) -> httpx2.Response | None:
        request, ctx = call.request, call.ctx
        relative = _relative_target(request.url, call.env.base_url)
        headers = _without_credentials(request.headers, ctx)
        body = request.content
        build = getattr(self.target, "build_request", None)
        if self.base_url is None and callable(build):
            alt_request = build(
                request.method,
                relative,
                headers=headers,
                content=body or None,
                endpoint=ctx.endpoint,
                idempotent=ctx.idempotent,
                idempotency_key=ctx.idempotency_key,
            )
        else:
            base = httpx2.URL(self.base_url or "")
            raw = base.raw_path.split(b"?", 1)[0]
            if not raw.endswith(b"/"):
                raw += b"/"
            url = base.copy_with(raw_path=raw + relative.encode("ascii"))
            alt_request = httpx2.Request(request.method, url, headers=headers, content=body)
        try:
            response = await self.target.send(alt_request)
        except httpx2.HTTPError:  # a plain httpx2 client: its errors mean "not served"
            return None
        if response.status_code >= 400:  # a target that does not raise on error statuses
            await response.aclose()
            return None
        await response.aread()
        return response


@dataclass(frozen=True, slots=True)
class Enqueue(FallbackStep):
    """Park a failed call in the dead-letter queue, then raise its error marked with ``dlq_id``.

    Which calls: ``methods`` and ``endpoints`` (``None``: any) select the marked calls; a per-call
    mark (``tether.dlq.mark_dlq(request, on)``) overrides both. ``placeholder=True`` (or a dict to
    merge into the body) answers ``202 Accepted`` with ``{"queued": true, "dlq_id": …}`` instead
    of raising. The entry is due for its first replay after ``schedule.delay(1)`` (1 s ± 20 %).
    Inside ``tether.dlq.unit_of_work(key)`` the entry's id comes from ``key``: a unit of work
    whose calls fail again and again is parked once.
    """

    backend: DLQBackend
    methods: Collection[str] | None = None
    endpoints: Collection[str] | None = None
    placeholder: bool | Mapping[str, Any] = False
    idempotency_header: str = _DEFAULT_IDEMPOTENCY_HEADER
    schedule: ReplaySchedule = field(default_factory=ReplaySchedule)

    def __post_init__(self) -> None:
        if not callable(getattr(self.backend, "add", None)):
            raise ValueError(f"Enqueue needs a DLQ backend (tether.dlq), got {self.backend!r}")
        if isinstance(self.methods, str) or isinstance(self.endpoints, str):
            raise ValueError("Enqueue.methods and Enqueue.endpoints take collections of names, not a string")
        if self.methods is not None:
            object.__setattr__(self, "methods", frozenset(m.upper() for m in self.methods))
        if self.endpoints is not None:
            object.__setattr__(self, "endpoints", frozenset(self.endpoints))

    @property
    def served_by(self) -> str:
        return "dlq"

    def marks(self, request: httpx2.Request, ctx: CallContext) -> bool:
        """Whether this call goes to the DLQ when it fails."""
        mark = is_marked(ctx)
        if mark is not None:
            return mark
        if self.methods is not None and request.method.upper() not in self.methods:
            return False
        return self.endpoints is None or ctx.endpoint in self.endpoints

    def prepare(self, request: httpx2.Request, ctx: CallContext) -> None:
        if not self.marks(request, ctx):
            return
        header = self.idempotency_header
        sent = request.headers.get(header)
        if ctx.idempotency_key is None and sent:
            ctx.idempotency_key = sent
        if ctx.idempotency_key is None and request.method.upper() in _NON_IDEMPOTENT:
            ctx.idempotency_key = new_request_id()
        if ctx.idempotency_key is not None and sent is None:
            request.headers[header] = ctx.idempotency_key

    async def serve(self, call: FailedCall) -> httpx2.Response | None:
        request, ctx, env = call.request, call.ctx, call.env
        if not self.marks(request, ctx):
            return None
        try:
            stored = capture_request(request, ctx)
        except (httpx2.RequestNotRead, SecretInBody) as exc:
            env.events.emit(ev.DLQ_FAILED, endpoint=ctx.endpoint, stage="enqueue", reason=str(exc))
            return None
        now = env.clock.time()
        error = call.error
        unit = current_unit()  # inside tether.dlq.unit_of_work: one entry per unit, however often it fails
        entry = DeadLetter(
            id=entry_id_for(unit) if unit is not None else new_entry_id(),
            service=env.service,
            endpoint=ctx.endpoint,
            request=stored,
            idempotency_key=ctx.idempotency_key,
            credential_ref=credential_ref(ctx, env.service),
            attempts=int(ctx.meta.get("attempts") or ctx.attempt or 1),
            error_code=error.error_code,
            error_message=redact_text(str(error)),
            created_at=now,
            due_at=now + self.schedule.delay(1, call.rng),
        )
        try:
            entry_id = await self.backend.add(entry)
        except TetherError as exc:
            # Not stored: the caller gets the original error *without* a dlq_id.
            env.events.emit(ev.DLQ_FAILED, endpoint=ctx.endpoint, stage="enqueue", reason=str(exc))
            return None
        setattr(error, "dlq_id", entry_id)  # noqa: B010 - documented attribute on the raised error
        ctx.meta["dlq_id"] = entry_id
        env.events.emit(
            ev.DLQ_ENQUEUED,
            endpoint=ctx.endpoint,
            id=entry_id,
            method=stored.method,
            url=stored.url,
            error_code=error.error_code,
        )
        if self.placeholder is False:
            return None
        body: dict[str, Any] = {"queued": True, "dlq_id": entry_id}
        if isinstance(self.placeholder, Mapping):
            body = {**self.placeholder, **body}
        response = httpx2.Response(202, json=body, request=request)
        await response.aread()
        return response


# --- options -----------------------------------------------------------------------------------


def _check_triggers(on: Iterable[Trigger]) -> tuple[Trigger, ...]:
    out: list[Trigger] = []
    for item in on:
        is_type = isinstance(item, type) and issubclass(item, BaseException)
        is_status = isinstance(item, int) and not isinstance(item, bool) and 100 <= item <= 599
        is_code = isinstance(item, str) and _ERROR_CODE.fullmatch(item) is not None
        if is_type or is_status or is_code or item == "5xx":
            out.append(item)
        else:
            raise ValueError(
                f"Fallback.on takes error classes, HTTP statuses, error codes ('CONN_001') or '5xx', "
                f"got {item!r}"
            )
    return tuple(out)


def _check_chain(steps: Iterable[FallbackStep], where: str) -> tuple[FallbackStep, ...]:
    chain = tuple(steps)
    for step in chain:
        if not isinstance(step, FallbackStep):
            raise ValueError(
                f"{where} takes fallback steps (StaleCache, Default, Alternate, Enqueue), got {step!r}"
            )
    return chain


@dataclass(frozen=True, slots=True, init=False)
class Fallback:
    """Fallback options (DESIGN 4): the client-wide chain, per-endpoint chains, the triggers.

    ``Fallback(*steps, endpoints={name: [steps]}, on=DEFAULT_ON)``. An endpoint listed in
    ``endpoints`` uses its own chain instead of the client-wide one (an empty list: no fallback).
    """

    kind: ClassVar[str] = "fallback"

    steps: tuple[FallbackStep, ...]
    endpoints: Mapping[str, tuple[FallbackStep, ...]]
    on: tuple[Trigger, ...]

    def __init__(
        self,
        *steps: FallbackStep,
        endpoints: Mapping[str, Sequence[FallbackStep]] | None = None,
        on: Iterable[Trigger] = DEFAULT_ON,
    ) -> None:
        put = object.__setattr__
        put(self, "steps", _check_chain(steps, "Fallback"))
        per_endpoint = {
            str(name): _check_chain(chain, f"Fallback.endpoints[{name!r}]")
            for name, chain in (endpoints or {}).items()
        }
        put(self, "endpoints", per_endpoint)
        if isinstance(on, str):
            on = (on,)
        put(self, "on", _check_triggers(on))
        if not self.steps and not any(self.endpoints.values()):
            raise ValueError("Fallback needs at least one step (StaleCache, Default, Alternate, Enqueue)")

    def build(self, env: PolicyEnv, *, rng: random.Random | None = None) -> FallbackPolicy:
        """The runtime policy; ``rng`` (the DLQ schedule's jitter) is injectable for tests."""
        return FallbackPolicy(self, env, rng=rng)


# --- the runtime policy --------------------------------------------------------------------------


class FallbackPolicy:
    """Runtime of ``Fallback``: immutable after build; per-call state lives in the ``CallContext``."""

    __slots__ = ("_any_5xx", "_codes", "_env", "_never", "_rng", "_statuses", "_types", "options")

    def __init__(self, options: Fallback, env: PolicyEnv, *, rng: random.Random | None = None) -> None:
        self.options = options
        self._env = env
        self._rng = rng if rng is not None else random.Random()
        self._types = tuple(t for t in options.on if isinstance(t, type))
        self._statuses = frozenset(t for t in options.on if isinstance(t, int))
        self._any_5xx = "5xx" in options.on
        self._codes = frozenset(t for t in options.on if isinstance(t, str) and t != "5xx")
        self._never = NEVER

    def __repr__(self) -> str:
        chain = ", ".join(s.served_by for s in self.options.steps)
        return f"FallbackPolicy([{chain}], endpoints={sorted(self.options.endpoints)})"

    def status(self) -> dict[str, Any]:
        """The chains and triggers as plain data (for ``Integration.status()``)."""
        return {
            "steps": [s.served_by for s in self.options.steps],
            "endpoints": {k: [s.served_by for s in v] for k, v in self.options.endpoints.items()},
            "on": [t if isinstance(t, int | str) else t.__name__ for t in self.options.on],
        }

    def chain_for(self, endpoint: str | None) -> tuple[FallbackStep, ...]:
        """The steps that serve a failed call of ``endpoint``."""
        if endpoint is not None and endpoint in self.options.endpoints:
            return self.options.endpoints[endpoint]
        return self.options.steps

    def triggers(self, error: BaseException) -> bool:
        """Whether ``error`` is a failure the chain may serve (see the module docstring)."""
        if not isinstance(error, TetherError) or isinstance(error, self._never):
            return False
        if self._types and isinstance(error, self._types):
            return True
        if error.error_code in self._codes:
            return True
        status = error.status_code
        if status is None:
            return False
        return status in self._statuses or (self._any_5xx and 500 <= status <= 599)

    async def __call__(self, request: httpx2.Request, next: Handler) -> httpx2.Response:
        ctx = request.extensions.get("tether")
        if not isinstance(ctx, CallContext) or REPLAY_KEY in ctx.extras:
            return await next(request)
        chain = self.chain_for(ctx.endpoint)
        if not chain:
            return await next(request)
        for step in chain:
            step.prepare(request, ctx)
        try:
            response = await next(request)
        except TetherError as error:
            if not self.triggers(error):
                raise
            ctx.extras[PRIMARY_ERROR_KEY] = error
            served = await self._serve(chain, FailedCall(request, ctx, error, self._env, self._rng))
            if served is None:
                raise
            return served
        ctx.meta.setdefault("served_by", "stale_cache" if ctx.meta.get("stale") else "primary")
        return response

    async def _serve(self, chain: Sequence[FallbackStep], call: FailedCall) -> httpx2.Response | None:
        ctx, events = call.ctx, self._env.events
        for step in chain:
            try:
                response = await step.serve(call)
            except TetherError as exc:
                events.emit(
                    ev.FALLBACK_SERVED,
                    endpoint=ctx.endpoint,
                    step=step.served_by,
                    outcome="step_failed",
                    error_code=exc.error_code,
                )
                continue
            if response is None:
                continue
            ctx.meta["served_by"] = step.served_by
            ctx.meta["fallback_error"] = call.error.error_code
            events.emit(
                ev.FALLBACK_SERVED,
                endpoint=ctx.endpoint,
                step=step.served_by,
                outcome="served",
                error_code=call.error.error_code,
                status=response.status_code,
            )
            return response
        return None


# --- helpers -------------------------------------------------------------------------------------


def _relative_target(url: httpx2.URL, base_url: str | None) -> str:
    """``url``'s path below ``base_url`` plus its query, without a leading slash (credentials removed)."""
    path = url.raw_path.split(b"?", 1)[0].decode("ascii")
    if base_url:
        base_path = httpx2.URL(base_url).raw_path.split(b"?", 1)[0].decode("ascii")
        if not base_path.endswith("/"):
            base_path += "/"
        if path.startswith(base_path):
            path = path[len(base_path) :]
    path = path.lstrip("/")
    params = [(k, v) for k, v in url.params.multi_items() if not registry.is_sensitive_param(k)]
    if params:
        path += "?" + str(httpx2.QueryParams(tuple(params)))
    return path


def _without_credentials(headers: httpx2.Headers, ctx: CallContext) -> httpx2.Headers:
    """A copy of ``headers`` without credential, hop-by-hop and framing headers."""
    scheme = {h.lower() for h in ctx.extras.get("auth.credential_headers", ())}
    return httpx2.Headers(
        [
            (name, value)
            for name, value in headers.multi_items()
            if name.lower() not in _HOP_HEADERS
            and name.lower() not in scheme
            and not registry.is_sensitive_header(name)
            and redact_text(value) == value
        ]
    )


# Type of the cache's hook, for implementers: ``ctx.extras[STALE_LOOKUP_KEY] = lookup``.
StaleLookup = Callable[[], Awaitable[httpx2.Response | None]]
