"""The response cache: fresh hits skip the network, stale entries answer when the upstream fails.

The cache sits above the total deadline, retry, breaker and rate limiter (``ORDER``), so a fresh
hit costs no token, no slot and no attempt, and everything those layers raise reaches it: when
the upstream is down — connection errors, timeouts, 5xx, 429, or the breaker failing fast with
``CircuitOpenError`` — an expired entry younger than ``stale_if_error`` is served instead,
marked ``meta["stale"] = True``.

Per call::

    method not cached / streamed ──────────────────────────────► next (unsafe methods invalidate the URL)
    Cache-Control: no-store (request) ─────────────────────────► next, nothing stored        (bypass)
    Cache-Control: no-cache / max-age=0 ───────────────────────► next, response stored        (refresh)
    otherwise: one leader per key (concurrent callers wait for it and share its outcome)
        fresh entry ───────────────────────────────────────────► cached copy                  (hit)
        expired entry with a validator and revalidate=True ────► If-None-Match / If-Modified-Since
              304 ─────────────────────────────────────────────► cached copy, TTL renewed     (revalidated)
        no entry / 200 ────────────────────────────────────────► response, stored             (miss)
        upstream failure and an entry within stale_if_error ───► cached copy                  (stale)

The cache key is ``method + normalised URL (sorted query, credential parameters removed) + vary
headers + credential identity``; see ``docs/guides/cache.md`` for how the identity is derived and
why two API keys never share an entry.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fnmatch
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Final, Literal, Protocol, runtime_checkable
from urllib.parse import urlencode

import httpx2

from tether import events as ev
from tether._context import CONTEXT_KEY, CallContext
from tether._redact import redact_url, registry
from tether._units import Duration, Size, parse_duration
from tether.auth._base import EXTRA_HEADERS, EXTRA_ORIGIN, EXTRA_PARAMS, Origin, clone_request, origin_of
from tether.cache import CacheBackend, CacheEntry, check_backend_name, open_backend
from tether.cache._base import DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, check_bounds
from tether.errors import (
    APIError,
    BulkheadFull,
    CircuitOpenError,
    ConnectionError,
    RateLimitExceeded,
    ResponseError,
    StateStoreError,
    TetherError,
    TimeoutError,
)
from tether.pipeline._base import Handler, PolicyEnv

__all__ = ["CACHE_MODE_KEY", "STALE_LOOKUP_KEY", "TTL_PRESETS", "Cache", "CachePolicy", "CacheStatus"]

#: Named TTLs (DESIGN 4): usable wherever a TTL is given (``ttl="metadata"``).
TTL_PRESETS: Final[Mapping[str, float]] = MappingProxyType(
    {"data": 30.0, "historical_daily": 3600.0, "historical_weekly": 86400.0, "metadata": 86400.0}
)

#: ``CallContext.extras`` key a caller (the Integration) may set to ``"use"``, ``"refresh"`` (skip
#: the lookup, store the response) or ``"bypass"`` (skip the cache entirely) for one call.
CACHE_MODE_KEY: Final = "cache.mode"
#: ``CallContext.extras`` key where the cache leaves the call's cache key (a hex digest).
CACHE_KEY_KEY: Final = "cache.key"
#: ``CallContext.extras`` key where the cache leaves ``async () -> httpx2.Response | None``: the
#: stored entry of the call however old (until the backend drops it), for the fallback's
#: ``StaleCache`` step when the cache itself let a failure through.
STALE_LOOKUP_KEY: Final = "cache.stale_lookup"
#: ``CallContext.extras`` key an auth stage may set to a stable, non-secret identity of the
#: credential it signs with; the cache prefers it to hashing the signed headers itself.
AUTH_IDENTITY_KEY: Final = "auth.identity"
#: Emitted when the backend fails; the call goes on as if the cache were empty.
CACHE_ERROR: Final = "cache.error"

#: Statuses stored (RFC 9110 15.1 "heuristically cacheable", minus the errors tether raises).
CACHEABLE_STATUSES: Final = frozenset({200, 203, 204, 300, 301, 308})

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
#: Response headers never stored: hop-by-hop, framing of the already-decoded body, and cookies
#: (a session credential must not be persisted or replayed to another caller).
_DROP_HEADERS: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-encoding",
        "set-cookie",
        "set-cookie2",
    }
)
#: Request headers that make a call the caller's own conditional or partial request: not cached.
_CALLER_CONDITIONALS: Final = (
    "if-none-match",
    "if-modified-since",
    "if-match",
    "if-unmodified-since",
    "range",
)
#: Headers a 304 may not change in the stored response.
_KEEP_ON_304: Final = frozenset({"content-length", "content-type", "content-encoding", "content-range"})
_HEX_KEY: Final = re.compile(r"[0-9a-f]{64}")
#: Polling for another instance's fill: the first pause and the longest (seconds).
_FIRST_POLL: Final = 0.005
_LAST_POLL: Final = 0.05

CredentialMaterial = Callable[[httpx2.Request], Awaitable[Sequence[tuple[str, str, str]] | None]]
"""What the auth stage offers the cache: the credential material it would sign ``request`` with
(``("h", header, value)`` / ``("q", param, value)``), ``None`` when it cannot tell without the
network (an OAuth2 token not fetched yet)."""


@runtime_checkable
class SharedFill(Protocol):
    """A backend shared by processes that can coalesce their identical misses (``RedisCache``)."""

    async def claim(self, key: str, owner: str, *, ttl: float) -> bool: ...

    async def release(self, key: str, owner: str) -> None: ...

    async def peek(self, key: str, *, now: float) -> tuple[CacheEntry | None, bool]: ...


CacheState = Literal["hit", "miss", "stale", "revalidated", "bypass", "refresh"]
Mode = Literal["use", "refresh", "bypass"]
_MODES: Final[Mapping[str, Mode]] = MappingProxyType({"use": "use", "refresh": "refresh", "bypass": "bypass"})


def _parse_ttl(value: Duration, name: str) -> float:
    if isinstance(value, str) and value.strip().lower() in TTL_PRESETS:
        return TTL_PRESETS[value.strip().lower()]
    return parse_duration(value, name=name)


def _is_stale_worthy(exc: BaseException) -> bool:
    """An upstream failure that a stale entry may answer (see ``Cache.STALE_ON``)."""
    if isinstance(exc, APIError):
        return exc.status_code is None or exc.status_code >= 500
    return isinstance(exc, Cache.STALE_ON)


@dataclass(frozen=True, slots=True)
class CacheSettings:
    """``Cache`` options, validated and normalised (seconds, bytes, lower-case names)."""

    ttl: float
    stale_if_error: float | None
    keep_expired: float
    endpoint_ttls: Mapping[str, float]
    path_ttls: tuple[tuple[str, float], ...]
    param_ttls: tuple[tuple[str, str, float], ...]
    max_entries: int
    max_bytes: int
    eviction: str
    vary_headers: tuple[str, ...]
    revalidate: bool
    coalesce: bool
    methods: frozenset[str]
    fill_timeout: float


@dataclass(frozen=True, slots=True)
class Cache:
    """Response cache options (``kind = "cache"``).

    ``ttl``: how long a response is fresh (seconds, ``"5m"``, or a preset name: ``data`` 30 s,
    ``historical_daily`` 1 h, ``historical_weekly`` 24 h, ``metadata`` 24 h).
    ``ttl_by_endpoint``: per-endpoint TTLs, keyed by endpoint name (``endpoint=`` of the call, or
    the spec's endpoint) or by a path glob starting with ``/`` (relative to the client's base
    URL, e.g. ``"/historical/*"``); names win over globs, globs are tried in order.
    ``ttl_by_param``: TTLs chosen by the value of a query parameter, for APIs where one endpoint
    serves several kinds of data (``{"interval": {"daily": "historical_daily", "weekly":
    "historical_weekly"}}``); tried before ``ttl_by_endpoint``.
    ``stale_if_error``: how long past expiry an entry may still answer when the upstream fails
    (``None``: never).
    ``keep_expired``: keep expired entries at least this long, for the fallback's ``StaleCache``
    step (which serves them however old); they are kept anyway for ``stale_if_error``, and one
    more TTL when revalidating.
    ``max_entries`` / ``max_bytes``: bounds of the backend the policy makes.
    ``eviction``: which entry goes when a bound is reached: ``lru`` (every backend), ``lfu`` or
    ``ttl`` (the Redis backend; see ``tether.cache.RedisCache``).
    ``vary_headers``: request headers that are part of the key.
    ``revalidate``: send ``If-None-Match`` / ``If-Modified-Since`` for an expired entry with a
    validator, and reuse it on a 304.
    ``coalesce``: concurrent identical calls share one upstream call.
    ``methods``: what is cached (GET and HEAD).
    ``backend``: ``"memory"``, ``"sqlite:///path"``, ``"redis://host:port/db"`` (shared by every
    instance: entries, bounds, and coalescing of identical misses across processes), ``"state"``
    (the state store's SQLite file), or a ``CacheBackend`` object (its own bounds apply; it may
    be shared by clients).
    ``fill_timeout``: with a shared backend, how long a caller waits for another instance that
    is fetching the same key before fetching itself (also the fill lock's lifetime).
    """

    kind: ClassVar[str] = "cache"

    DEFAULT_TTL: ClassVar[float] = 30.0
    DEFAULT_MAX_ENTRIES: ClassVar[int] = DEFAULT_MAX_ENTRIES
    DEFAULT_MAX_BYTES: ClassVar[int] = DEFAULT_MAX_BYTES
    DEFAULT_METHODS: ClassVar[frozenset[str]] = frozenset({"GET", "HEAD"})
    DEFAULT_FILL_TIMEOUT: ClassVar[float] = 30.0
    PRESETS: ClassVar[Mapping[str, float]] = TTL_PRESETS
    #: Failures a stale entry answers, besides ``APIError`` with a 5xx status.
    STALE_ON: ClassVar[tuple[type[TetherError], ...]] = (
        ConnectionError,
        TimeoutError,
        ResponseError,
        RateLimitExceeded,
        CircuitOpenError,
        BulkheadFull,
    )

    ttl: Duration = DEFAULT_TTL
    stale_if_error: Duration | None = None
    keep_expired: Duration = 0.0
    ttl_by_endpoint: Mapping[str, Duration] = field(default_factory=dict)
    ttl_by_param: Mapping[str, Mapping[str, Duration]] = field(default_factory=dict)
    max_entries: int = DEFAULT_MAX_ENTRIES
    max_bytes: Size = DEFAULT_MAX_BYTES
    eviction: Literal["lru", "lfu", "ttl"] = "lru"
    vary_headers: Iterable[str] = ()
    revalidate: bool = False
    coalesce: bool = True
    methods: Iterable[str] = DEFAULT_METHODS
    backend: CacheBackend | str = "memory"
    fill_timeout: Duration = DEFAULT_FILL_TIMEOUT

    def __post_init__(self) -> None:
        object.__setattr__(self, "ttl_by_endpoint", MappingProxyType(dict(self.ttl_by_endpoint)))
        object.__setattr__(
            self,
            "ttl_by_param",
            MappingProxyType({k: MappingProxyType(dict(v)) for k, v in dict(self.ttl_by_param).items()}),
        )
        object.__setattr__(self, "vary_headers", tuple(self.vary_headers))
        object.__setattr__(self, "methods", frozenset(m.upper() for m in self.methods))
        self.settings()  # validates

    def settings(self) -> CacheSettings:
        """The options validated and normalised (``ValueError`` naming the rule and the value)."""
        ttl = _parse_ttl(self.ttl, "Cache.ttl")
        stale = (
            None
            if self.stale_if_error is None
            else parse_duration(self.stale_if_error, name="stale_if_error")
        )
        names: dict[str, float] = {}
        globs: list[tuple[str, float]] = []
        for key, value in self.ttl_by_endpoint.items():
            if not isinstance(key, str) or not key.strip():
                raise ValueError(
                    f"Cache.ttl_by_endpoint keys are endpoint names or '/path' globs, got {key!r}"
                )
            seconds = _parse_ttl(value, f"Cache.ttl_by_endpoint[{key!r}]")
            if key.startswith("/"):
                globs.append((key, seconds))
            else:
                names[key] = seconds
        by_param: list[tuple[str, str, float]] = []
        for param, values in self.ttl_by_param.items():
            if not isinstance(param, str) or not param or not isinstance(values, Mapping):
                raise ValueError(
                    "Cache.ttl_by_param maps a query parameter name to {value: ttl}, "
                    f"got {param!r}: {values!r}"
                )
            for value, given in values.items():
                by_param.append(
                    (param, str(value), _parse_ttl(given, f"Cache.ttl_by_param[{param!r}][{value!r}]"))
                )
        max_entries, max_bytes = check_bounds(self.max_entries, self.max_bytes)
        vary = []
        for name in self.vary_headers:
            if not isinstance(name, str) or not re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", name):
                raise ValueError(f"Cache.vary_headers must hold HTTP header names, got {name!r}")
            vary.append(name.lower())
        methods = frozenset(self.methods)
        if not methods:
            raise ValueError("Cache.methods must name at least one method, got none")
        if isinstance(self.backend, str):
            check_backend_name(self.backend, self.eviction)
        elif not isinstance(self.backend, CacheBackend):
            raise ValueError(f"Cache.backend must be a name, a URL or a CacheBackend, got {self.backend!r}")
        return CacheSettings(
            ttl=ttl,
            stale_if_error=stale,
            keep_expired=parse_duration(self.keep_expired, name="keep_expired"),
            endpoint_ttls=MappingProxyType(names),
            path_ttls=tuple(globs),
            param_ttls=tuple(by_param),
            max_entries=max_entries,
            max_bytes=max_bytes,
            eviction=self.eviction,
            vary_headers=tuple(sorted(set(vary))),
            revalidate=bool(self.revalidate),
            coalesce=bool(self.coalesce),
            methods=methods,
            fill_timeout=parse_duration(self.fill_timeout, name="fill_timeout", allow_zero=False),
        )

    def build(self, env: PolicyEnv) -> CachePolicy:
        return CachePolicy(self, env)


@dataclass(frozen=True, slots=True)
class CacheStatus:
    """The cache at one instant: size (as of the backend's last operation here) and counters."""

    entries: int
    bytes: int
    max_entries: int
    max_bytes: int
    hits: int
    misses: int
    stale_served: int
    revalidated: int
    coalesced: int
    #: Misses answered by another instance's fetch (a shared backend's fill lock).
    shared_fills: int = 0

    @property
    def hit_ratio(self) -> float:
        looked = self.hits + self.misses
        return self.hits / looked if looked else 0.0


# --- per-call values ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Key:
    """What identifies a call in the cache, before and after the auth identity is known."""

    base: str  # method, URL, vary values and visible credential identity (hashed), as JSON
    url: str  # normalised URL without credentials (stored; invalidation matches prefixes of it)
    origin: Origin
    auth: str  # the auth stage's identity used for the lookup ("" = none known)

    @property
    def key(self) -> str:
        return self.with_auth(self.auth)

    def with_auth(self, auth: str) -> str:
        return hashlib.sha256(f"{self.base}\x00{auth}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class _Shared:
    """A response as coalesced callers receive it: each gets its own ``httpx2.Response``."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    meta: Mapping[str, Any]

    def respond(self, request: httpx2.Request, ctx: CallContext | None, **extra: Any) -> httpx2.Response:
        if ctx is not None:
            ctx.meta.update(self.meta)
            ctx.meta.update(extra)
        return httpx2.Response(self.status, headers=list(self.headers), content=self.body, request=request)


@dataclass(frozen=True, slots=True)
class _Served:
    response: httpx2.Response
    shared: _Shared


class _LeaderGone(Exception):
    """The caller fetching for a key was cancelled: a waiter takes over."""


def _ctx(request: httpx2.Request) -> CallContext | None:
    raw = request.extensions.get(CONTEXT_KEY)
    return raw if isinstance(raw, CallContext) else None


def _directives(values: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for value in values:
        for part in value.split(","):
            token = part.strip().lower().replace(" ", "")
            if token:
                out.add(token)
    return out


def _request_of(response: httpx2.Response | None) -> httpx2.Request | None:
    if response is None:
        return None
    try:
        return response.request
    except RuntimeError:  # a response made without a request
        return None


def _normalise(url: httpx2.URL) -> tuple[str, list[tuple[str, str, str]]]:
    """The URL to key and store (lower-case scheme and host, default port dropped, query sorted,
    fragment and credential parameters removed) and the credential material removed from it."""
    material: list[tuple[str, str, str]] = []
    scheme = url.scheme.lower()
    host = url.host.lower()
    netloc = f"[{host}]" if ":" in host else host
    if url.port is not None and url.port != _DEFAULT_PORTS.get(scheme):
        netloc = f"{netloc}:{url.port}"
    if url.userinfo:
        material.append(("u", "", url.userinfo.decode("latin-1")))
    path = url.raw_path.split(b"?", 1)[0].decode("ascii", errors="replace") or "/"
    plain: list[tuple[str, str]] = []
    for name, value in url.params.multi_items():
        if registry.is_sensitive_param(name):
            material.append(("q", name, value))
        else:
            plain.append((name, value))
    plain.sort()
    query = urlencode(plain)
    text = f"{scheme}://{netloc}{path}"
    return (f"{text}?{query}" if query else text), material


def _stored_headers(response: httpx2.Response, method: str) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for raw_name, raw_value in response.headers.raw:
        name = raw_name.decode("latin-1")
        lowered = name.lower()
        if lowered in _DROP_HEADERS or (lowered == "content-length" and method != "HEAD"):
            continue
        out.append((name, raw_value.decode("latin-1")))
    return tuple(out)


def _wire(headers: Iterable[tuple[str, str]]) -> tuple[tuple[bytes, bytes], ...]:
    return tuple((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers)


# --- the policy --------------------------------------------------------------------------------


class CachePolicy:
    """The runtime cache of one client: a backend, the in-flight table and the counters."""

    __slots__ = (
        "_auth_ids",
        "_backend",
        "_base_path",
        "_base_url",
        "_clock",
        "_coalesced",
        "_events",
        "_hits",
        "_hmac_key",
        "_inflight",
        "_misses",
        "_owns_backend",
        "_revalidated",
        "_settings",
        "_shared_fills",
        "_signer",
        "_stale",
    )

    def __init__(self, options: Cache, env: PolicyEnv) -> None:
        settings = options.settings()
        self._settings = settings
        self._clock = env.clock
        self._events = env.events
        if isinstance(options.backend, str):
            self._backend: CacheBackend = open_backend(
                options.backend,
                store=env.store,
                max_entries=settings.max_entries,
                max_bytes=settings.max_bytes,
                eviction=settings.eviction,
            )
            self._owns_backend = True
        else:
            self._backend = options.backend
            self._owns_backend = False
        self._base_url = httpx2.URL(env.base_url) if env.base_url else None
        self._base_path = self._base_url.path if self._base_url is not None else "/"
        self._inflight: dict[str, asyncio.Future[_Shared]] = {}
        self._auth_ids: dict[Origin, str] = {}
        self._hmac_key: bytes | None = None
        self._hits = self._misses = self._stale = self._revalidated = self._coalesced = 0
        self._shared_fills = 0
        self._signer: CredentialMaterial | None = None

    def identify_with(self, signer: CredentialMaterial) -> None:
        """Let the auth stage below say, before a call is sent, which credential signs it (the
        client wires this). The cache then keys even a new client's first call by its
        credential, and may share a fill lock with other instances."""
        self._signer = signer

    def __repr__(self) -> str:
        return f"CachePolicy(backend={self._backend!r})"

    @property
    def backend(self) -> CacheBackend:
        return self._backend

    # --- the call ----------------------------------------------------------------------------

    async def __call__(self, request: httpx2.Request, next: Handler) -> httpx2.Response:
        ctx = _ctx(request)
        method = request.method.upper()
        if method not in self._settings.methods or (ctx is not None and ctx.stream):
            response = await next(request)
            if method not in _SAFE_METHODS and response.status_code < 400:
                await self._forget(_normalise(request.url)[0])
            return response
        mode = self._mode(request, ctx)
        if mode == "bypass":
            if ctx is not None:
                ctx.meta.update(from_cache=False, stale=False, cache="bypass")
            return await next(request)
        try:
            key = await self._key(request)
        except StateStoreError as exc:  # the backend is away: carry on uncached
            self._backend_failed("identity_key", exc)
            return await next(request)
        if ctx is not None:
            ctx.extras[CACHE_KEY_KEY] = key.key
            ctx.extras[STALE_LOOKUP_KEY] = self._stale_lookup(request, key, ctx)
        if mode == "refresh":
            return (await self._fetch(request, next, key, ctx, None, looked_up=False)).response
        if not self._settings.coalesce:
            return (await self._serve(request, next, key, ctx)).response
        return await self._coalesced_call(request, next, key, ctx)

    async def _coalesced_call(
        self, request: httpx2.Request, next: Handler, key: _Key, ctx: CallContext | None
    ) -> httpx2.Response:
        name = key.key
        while True:
            waiting = self._inflight.get(name)
            if waiting is not None:
                try:
                    shared = await asyncio.shield(waiting)
                except _LeaderGone:
                    continue  # the leader was cancelled: try again (one of us leads now)
                self._coalesced += 1
                return shared.respond(request, ctx, coalesced=True)
            future: asyncio.Future[_Shared] = asyncio.get_running_loop().create_future()
            self._inflight[name] = future
            try:
                served = await self._serve(request, next, key, ctx)
            except BaseException as exc:
                future.set_exception(exc if isinstance(exc, Exception) else _LeaderGone())
                future.exception()  # marks it retrieved: no warning when nobody was waiting
                raise
            else:
                future.set_result(served.shared)
                return served.response
            finally:
                if self._inflight.get(name) is future:
                    del self._inflight[name]

    async def _serve(
        self, request: httpx2.Request, next: Handler, key: _Key, ctx: CallContext | None
    ) -> _Served:
        now = self._clock.time()
        entry = await self._lookup(key.key, request, now)
        if entry is not None and entry.fresh(now):
            self._hits += 1
            self._emit(ev.CACHE_HIT, ctx, key, age=round(now - entry.stored_at, 6))
            return self._from_entry(entry, request, ctx, "hit", now)
        backend = self._backend
        if self._settings.coalesce and isinstance(backend, SharedFill) and self._identity_known(key):
            return await self._serve_shared(backend, request, next, key, ctx, entry)
        self._misses += 1
        self._emit(ev.CACHE_MISS, ctx, key, expired=entry is not None)
        return await self._fetch(request, next, key, ctx, entry, looked_up=True)

    def _identity_known(self, key: _Key) -> bool:
        """Whether the key names the credential that will sign the call: no auth stage, or one
        that told us (sharing a fill with another credential's caller would hand it their data)."""
        return self._signer is None or key.origin in self._auth_ids

    async def _serve_shared(
        self,
        backend: SharedFill,
        request: httpx2.Request,
        next: Handler,
        key: _Key,
        ctx: CallContext | None,
        entry: CacheEntry | None,
    ) -> _Served:
        """A miss with a shared backend: one instance fetches (it holds the key's fill lock), the
        others poll for its entry; without an entry when the lock goes, they fetch themselves."""
        name = key.key
        owner = uuid.uuid4().hex
        fill = self._settings.fill_timeout
        owned = False
        started = self._clock.monotonic()
        try:
            for _ in range(2):  # lead, or wait for the leader once and then lead
                owned = await backend.claim(name, owner, ttl=fill)
                if owned:
                    break
                waited = await self._await_fill(backend, name, request, started + fill)
                if waited is not None:
                    now = self._clock.time()
                    self._hits += 1
                    self._coalesced += 1
                    self._shared_fills += 1
                    self._emit(ev.CACHE_HIT, ctx, key, age=round(now - waited.stored_at, 6), shared=True)
                    served = self._from_entry(waited, request, ctx, "hit", now)
                    if ctx is not None:
                        ctx.meta["coalesced"] = True
                    return served
                if self._clock.monotonic() >= started + fill:
                    break
        except StateStoreError as exc:
            self._backend_failed("claim", exc)
        self._misses += 1
        self._emit(ev.CACHE_MISS, ctx, key, expired=entry is not None)
        try:
            return await self._fetch(request, next, key, ctx, entry, looked_up=True)
        finally:
            if owned:
                try:
                    await backend.release(name, owner)
                except StateStoreError as exc:
                    self._backend_failed("release", exc)

    async def _await_fill(
        self, backend: SharedFill, name: str, request: httpx2.Request, until: float
    ) -> CacheEntry | None:
        """Poll until the key's entry is fresh (returned), its fill lock is gone, or ``until``."""
        pause = _FIRST_POLL
        while True:
            await self._clock.sleep(pause)
            now = self._clock.time()
            found, locked = await backend.peek(name, now=now)
            if found is not None and self._matches(found, request) and found.fresh(now):
                return found
            if not locked or self._clock.monotonic() >= until:
                return None
            pause = min(_LAST_POLL, pause * 2)

    async def _fetch(
        self,
        request: httpx2.Request,
        next: Handler,
        key: _Key,
        ctx: CallContext | None,
        entry: CacheEntry | None,
        *,
        looked_up: bool,
    ) -> _Served:
        settings = self._settings
        conditional = (
            settings.revalidate
            and entry is not None
            and (entry.header("etag") is not None or entry.header("last-modified") is not None)
        )
        send = self._with_validators(request, entry) if conditional and entry is not None else request
        try:
            response = await next(send)
        except TetherError as exc:
            served = await self._stale_for(exc, request, key, ctx, entry, looked_up=looked_up)
            if served is None:
                raise
            return served
        auth = self._learn(request, response, ctx)
        ttl = self._ttl_for(request, ctx)
        now = self._clock.time()
        if conditional and entry is not None and response.status_code == 304:
            renewed = self._renewed(entry, response, key.with_auth(auth), ttl, now)
            await self._store(renewed, now)
            self._revalidated += 1
            self._emit(ev.CACHE_REVALIDATED, ctx, key, ttl=ttl)
            return self._from_entry(renewed, request, ctx, "revalidated", now)
        await response.aread()
        fresh = self._entry_for(request, response, key, key.with_auth(auth), ttl, now)
        if fresh is not None:
            await self._store(fresh, now)
        meta = {"from_cache": False, "stale": False, "revalidated": False, "cache": "miss"}
        if ctx is not None:
            ctx.meta.update(meta, cache="refresh" if not looked_up else "miss")
        shared = _Shared(
            response.status_code,
            _wire(_stored_headers(response, request.method.upper())),
            response.content,
            MappingProxyType(meta),
        )
        return _Served(response, shared)

    async def _stale_for(
        self,
        exc: TetherError,
        request: httpx2.Request,
        key: _Key,
        ctx: CallContext | None,
        entry: CacheEntry | None,
        *,
        looked_up: bool,
    ) -> _Served | None:
        window = self._settings.stale_if_error
        if window is None or not _is_stale_worthy(exc):
            return None
        now = self._clock.time()
        candidate = entry
        if exc.response is not None:
            learned = self._learn(request, exc.response, ctx)
            if key.with_auth(learned) != key.key:
                candidate = await self._lookup(key.with_auth(learned), request, now)
        if candidate is None and not looked_up:
            candidate = await self._lookup(key.key, request, now)
        if candidate is None or now >= candidate.expires + window:
            return None
        self._stale += 1
        self._emit(
            ev.CACHE_STALE_SERVED,
            ctx,
            key,
            error=type(exc).__name__,
            error_code=exc.error_code,
            status=exc.status_code,
            age=round(now - candidate.stored_at, 6),
            stale_for=round(max(0.0, now - candidate.expires), 6),
        )
        return self._from_entry(candidate, request, ctx, "stale", now)

    def _stale_lookup(
        self, request: httpx2.Request, key: _Key, ctx: CallContext
    ) -> Callable[[], Awaitable[httpx2.Response | None]]:
        async def lookup() -> httpx2.Response | None:
            now = self._clock.time()
            learned = self._auth_ids.get(key.origin, key.auth)  # the call may have taught us it
            entry = await self._lookup(key.with_auth(learned), request, now)
            if entry is None and learned != key.auth:
                entry = await self._lookup(key.key, request, now)
            if entry is None:
                return None
            self._stale += 1
            self._emit(
                ev.CACHE_STALE_SERVED,
                ctx,
                key,
                error="fallback",
                age=round(now - entry.stored_at, 6),
                stale_for=round(max(0.0, now - entry.expires), 6),
            )
            return self._from_entry(entry, request, ctx, "stale", now).response

        return lookup

    # --- entries -----------------------------------------------------------------------------

    def _from_entry(
        self,
        entry: CacheEntry,
        request: httpx2.Request,
        ctx: CallContext | None,
        state: CacheState,
        now: float,
    ) -> _Served:
        meta: dict[str, Any] = {
            "from_cache": True,
            "stale": state == "stale",
            "revalidated": state == "revalidated",
            "cache": state,
            "cache_age": round(max(0.0, now - entry.stored_at), 6),
        }
        shared = _Shared(entry.status, _wire(entry.headers), entry.body, MappingProxyType(meta))
        return _Served(shared.respond(request, ctx), shared)

    def _entry_for(
        self,
        request: httpx2.Request,
        response: httpx2.Response,
        key: _Key,
        name: str,
        ttl: float,
        now: float,
    ) -> CacheEntry | None:
        """The entry to store for ``response``, or ``None`` when it must not be stored."""
        if response.status_code not in CACHEABLE_STATUSES:
            return None
        directives = _directives(response.headers.get_list("cache-control"))
        if "no-store" in directives:
            return None
        varies = sorted(_directives(response.headers.get_list("vary")))
        if "*" in varies:
            return None
        expires = now if "no-cache" in directives else now + ttl
        headers = _stored_headers(response, request.method.upper())
        entry = CacheEntry(
            key=name,
            url=key.url,
            method=request.method.upper(),
            status=response.status_code,
            headers=headers,
            body=response.content,
            stored_at=now,
            expires=expires,
            keep_until=expires,
            vary=tuple((v, ", ".join(request.headers.get_list(v))) for v in varies),
        )
        keep_until = expires + self._retention(entry, ttl)
        if keep_until <= now:
            return None
        return _replace(entry, keep_until=keep_until)

    def _renewed(
        self, entry: CacheEntry, response: httpx2.Response, name: str, ttl: float, now: float
    ) -> CacheEntry:
        """``entry`` refreshed by a 304: new expiry, headers updated from the 304."""
        updates = {
            k.decode("latin-1").lower(): v.decode("latin-1")
            for k, v in response.headers.raw
            if k.decode("latin-1").lower() not in _DROP_HEADERS | _KEEP_ON_304
        }
        headers = [(k, updates.pop(k.lower(), v)) for k, v in entry.headers]
        headers.extend(updates.items())
        directives = _directives(v for k, v in headers if k.lower() == "cache-control")
        expires = now if "no-cache" in directives else now + ttl
        renewed = _replace(entry, key=name, headers=tuple(headers), stored_at=now, expires=expires)
        return _replace(renewed, keep_until=expires + self._retention(renewed, ttl))

    def _retention(self, entry: CacheEntry, ttl: float) -> float:
        """How long past expiry an entry is kept: ``keep_expired``, at least ``stale_if_error``, and
        (with a validator and ``revalidate``) at least one more TTL to revalidate it."""
        settings = self._settings
        keep = max(settings.stale_if_error or 0.0, settings.keep_expired)
        if settings.revalidate and (entry.header("etag") or entry.header("last-modified")):
            keep = max(keep, ttl)
        return keep

    def _with_validators(self, request: httpx2.Request, entry: CacheEntry) -> httpx2.Request:
        headers = request.headers.copy()
        etag = entry.header("etag")
        modified = entry.header("last-modified")
        if etag is not None:
            headers["If-None-Match"] = etag
        if modified is not None:
            headers["If-Modified-Since"] = modified
        return clone_request(request, headers=headers)

    async def _lookup(self, name: str, request: httpx2.Request, now: float) -> CacheEntry | None:
        try:
            entry = await self._backend.get(name, now=now)
        except StateStoreError as exc:
            self._backend_failed("get", exc)
            return None
        if entry is None or not self._matches(entry, request):
            return None
        return entry

    @staticmethod
    def _matches(entry: CacheEntry, request: httpx2.Request) -> bool:
        if entry.method != request.method.upper():
            return False
        return all(", ".join(request.headers.get_list(header)) == value for header, value in entry.vary)

    async def _store(self, entry: CacheEntry, now: float) -> None:
        try:
            await self._backend.put(entry, now=now)
        except StateStoreError as exc:
            self._backend_failed("put", exc)

    async def _forget(self, url: str) -> None:
        """An unsafe method succeeded on ``url``: its cached responses are out of date (RFC 9111 4.4)."""
        try:
            await self._backend.invalidate(url, exact=True)
        except StateStoreError as exc:
            self._backend_failed("invalidate", exc)

    def _backend_failed(self, operation: str, exc: StateStoreError) -> None:
        self._events.emit(CACHE_ERROR, operation=operation, error=str(exc))

    # --- keys and identity -------------------------------------------------------------------

    def _mode(self, request: httpx2.Request, ctx: CallContext | None) -> Mode:
        asked = ctx.extras.get(CACHE_MODE_KEY) if ctx is not None else None
        if isinstance(asked, str) and asked in _MODES:
            return _MODES[asked]
        headers = request.headers
        if any(h in headers for h in _CALLER_CONDITIONALS):
            return "bypass"
        directives = _directives(headers.get_list("cache-control"))
        if "no-store" in directives:
            return "bypass"
        if "no-cache" in directives or "max-age=0" in directives:
            return "refresh"
        if "no-cache" in _directives(headers.get_list("pragma")):
            return "refresh"
        return "use"

    async def _key(self, request: httpx2.Request) -> _Key:
        if self._hmac_key is None:
            self._hmac_key = await self._backend.identity_key()
        url, material = _normalise(request.url)
        for name, value in request.headers.multi_items():
            if registry.is_sensitive_header(name):
                material.append(("h", name.lower(), value))
        vary = [[h, ", ".join(request.headers.get_list(h))] for h in self._settings.vary_headers]
        base = json.dumps(
            [request.method.upper(), url, vary, self._identity(material)], separators=(",", ":")
        )
        origin = origin_of(request.url)
        if origin not in self._auth_ids and self._signer is not None:
            await self._prime_identity(origin, request)
        return _Key(base=base, url=url, origin=origin, auth=self._auth_ids.get(origin, ""))

    async def _prime_identity(self, origin: Origin, request: httpx2.Request) -> None:
        """The auth stage's identity for ``origin`` before the first call is sent (when the stage
        can sign without the network), derived exactly as ``_learn`` derives it afterwards."""
        assert self._signer is not None
        try:
            material = await self._signer(request)
        except TetherError:
            return  # a missing secret fails the call below, where the auth stage says which
        if material is not None:
            self._auth_ids[origin] = self._identity(list(material))

    def _identity(self, material: list[tuple[str, str, str]]) -> str:
        """A keyed hash (HMAC-SHA-256 with the backend's random key) of credential material:
        stable across processes sharing the backend, useless to anyone without the key, and never
        the secret itself. ``""`` when there is no credential."""
        if not material:
            return ""
        assert self._hmac_key is not None
        message = json.dumps(sorted(material), separators=(",", ":")).encode()
        return hmac.new(self._hmac_key, message, hashlib.sha256).hexdigest()[:32]

    def _learn(
        self, request: httpx2.Request, response: httpx2.Response | None, ctx: CallContext | None
    ) -> str:
        """The auth stage's identity for ``request``'s origin, learned from the signed request
        that produced ``response`` (the auth stage below the cache signs a copy we never see)."""
        origin = origin_of(request.url)
        if ctx is None or EXTRA_ORIGIN not in ctx.extras:
            identity = ""  # no auth stage, or it sent no credentials to this origin
        elif isinstance(ctx.extras.get(AUTH_IDENTITY_KEY), str):
            identity = str(ctx.extras[AUTH_IDENTITY_KEY])
        else:
            signed = _request_of(response)
            if signed is None or origin_of(signed.url) != origin:
                return self._auth_ids.get(origin, "")  # cannot tell: keep what we knew
            material = [
                ("h", name, value)
                for name in ctx.extras.get(EXTRA_HEADERS, ())
                for value in signed.headers.get_list(name)
            ]
            material += [
                ("q", name, value)
                for name in ctx.extras.get(EXTRA_PARAMS, ())
                for value in signed.url.params.get_list(name)
            ]
            identity = self._identity(material)
        self._auth_ids[origin] = identity
        return identity

    def _ttl_for(self, request: httpx2.Request, ctx: CallContext | None) -> float:
        settings = self._settings
        if settings.param_ttls:
            params = request.url.params
            for param, value, ttl in settings.param_ttls:
                if params.get(param) == value:
                    return ttl
        if ctx is not None and ctx.endpoint is not None and ctx.endpoint in settings.endpoint_ttls:
            return settings.endpoint_ttls[ctx.endpoint]
        if settings.path_ttls:
            path = request.url.path
            relative = "/" + path[len(self._base_path) :] if path.startswith(self._base_path) else path
            for pattern, ttl in settings.path_ttls:
                if fnmatch.fnmatchcase(relative, pattern) or fnmatch.fnmatchcase(path, pattern):
                    return ttl
        return settings.ttl

    def _emit(self, name: str, ctx: CallContext | None, key: _Key, **fields: Any) -> None:
        if self._events.active:
            self._events.emit(
                name,
                endpoint=ctx.endpoint if ctx is not None else None,
                url=redact_url(key.url),
                key=key.key[:16],
                **fields,
            )

    # --- management --------------------------------------------------------------------------

    async def invalidate(self, target: str) -> int:
        """Drop entries: ``target`` is a cache key (64 hex digits, see ``ctx.extras["cache.key"]``)
        or a URL prefix (absolute, or a path relative to the client's base URL, e.g.
        ``"/data/"``). Returns how many entries were removed."""
        if _HEX_KEY.fullmatch(target):
            return int(await self._backend.delete(target))
        url = httpx2.URL(target)
        if url.is_relative_url:
            if self._base_url is None:
                raise ValueError(f"a relative prefix {target!r} needs a client base_url; give a full URL")
            base = self._base_url
            url = base.copy_with(raw_path=base.raw_path.split(b"?", 1)[0] + target.lstrip("/").encode())
        prefix = _normalise(url)[0]
        return await self._backend.invalidate(prefix)

    async def clear(self) -> int:
        """Drop every entry of the backend (shared backends: every client's)."""
        return await self._backend.clear()

    def status(self) -> CacheStatus:
        """Entries and bytes held, hits, misses, stale answers, revalidations, coalesced calls."""
        stats = self._backend.stats()
        return CacheStatus(
            entries=stats.entries,
            bytes=stats.bytes,
            max_entries=stats.max_entries,
            max_bytes=stats.max_bytes,
            hits=self._hits,
            misses=self._misses,
            stale_served=self._stale,
            revalidated=self._revalidated,
            coalesced=self._coalesced,
            shared_fills=self._shared_fills,
        )

    async def aclose(self) -> None:
        """Close the backend if this policy made it (a backend object passed in is the caller's)."""
        if self._owns_backend:
            await self._backend.aclose()


def _replace(entry: CacheEntry, **changes: Any) -> CacheEntry:
    return dataclasses.replace(entry, **changes)
