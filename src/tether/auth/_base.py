"""What every auth scheme shares: options → runtime policy, the origin rule, 401 handling.

An auth *options* object (``ApiKey``, ``OAuth2ClientCredentials`` …) is frozen configuration with
``kind = "auth"``; ``build(env)`` makes an ``AuthPolicy``, the runtime box that sits in the
pipeline's ``auth`` slot (below retry, breaker, rate limiter and bulkhead, so every attempt is
signed afresh).

The ``AuthPolicy`` enforces the one rule every scheme shares: credentials go only to the
configured origin (scheme, host, port). A request for any other origin (a pagination link, a CDN
URL, an ``http://`` downgrade) is sent without them, with the scheme's header and parameter names
removed, and an ``auth.credentials_stripped`` event. The scheme itself is an ``Authenticator``:
it signs a *copy* of the request (the caller's request never holds a credential), sends it, and
on a 401 may renew its credential and replay once.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final

import httpx2

from tether import events as ev
from tether._context import CONTEXT_KEY, CallContext
from tether._redact import redact_url, registry
from tether.auth._secrets import Secret, SecretSource
from tether.errors import AuthenticationError
from tether.pipeline._base import Handler, PolicyEnv

if TYPE_CHECKING:
    from tether.events import EventBus

__all__ = [
    "AuthOptions",
    "AuthPolicy",
    "Authenticator",
    "Origin",
    "SecretRef",
    "clone_request",
    "origin_of",
    "parse_origin",
]

#: ``CallContext.extras`` keys the auth stage sets on each signed attempt. The redirect follower
#: reads them to drop these credentials when a redirect leaves the origin.
EXTRA_ORIGIN: Final = "auth.origin"
EXTRA_HEADERS: Final = "auth.credential_headers"
EXTRA_PARAMS: Final = "auth.credential_params"

Origin = tuple[str, str, int]

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def origin_of(url: httpx2.URL) -> Origin:
    """(scheme, host, port) with the default port filled in."""
    scheme = url.scheme.lower()
    port = url.port if url.port is not None else _DEFAULT_PORTS.get(scheme, 0)
    return scheme, url.host.lower(), port


def parse_origin(value: str | httpx2.URL, *, name: str = "origin") -> Origin:
    """The origin of an absolute http(s) URL; ``ValueError`` naming the rule otherwise."""
    try:
        url = httpx2.URL(value)
    except Exception as exc:  # httpx2.InvalidURL and friends
        raise ValueError(f"{name} must be an absolute http(s) URL, got {redact_url(str(value))!r}") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"{name} must be an absolute http(s) URL, got {redact_url(str(value))!r}")
    return origin_of(url)


def format_origin(origin: Origin) -> str:
    scheme, host, port = origin
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}" if _DEFAULT_PORTS.get(scheme) == port else f"{scheme}://{shown}:{port}"


def clone_request(
    request: httpx2.Request,
    *,
    url: httpx2.URL | None = None,
    headers: httpx2.Headers | None = None,
    content: bytes | None = None,
) -> httpx2.Request:
    """A copy of ``request`` to sign (or strip), sharing its body stream and extensions."""
    new_headers = headers if headers is not None else request.headers.copy()
    new_url = url if url is not None else request.url
    if content is not None:
        new_headers["Content-Length"] = str(len(content))
        new_headers.pop("Transfer-Encoding", None)
    else:
        try:
            content = request.content
        except httpx2.RequestNotRead:
            # A streamed body: share the stream (replayable when it is a ByteStream).
            return httpx2.Request(
                request.method,
                new_url,
                headers=new_headers,
                stream=request.stream,
                extensions=request.extensions,
            )
    return httpx2.Request(
        request.method, new_url, headers=new_headers, content=content, extensions=request.extensions
    )


def is_replayable(exc: AuthenticationError) -> bool:
    """A refusal worth renewing the credential for: 401 (a 403 is a known credential that is not allowed)."""
    return exc.status_code == 401


class SecretRef:
    """A policy's handle on a source: notices rotation and reports it on the policy's event bus."""

    __slots__ = ("_events", "_last", "source")

    def __init__(self, source: SecretSource, env: PolicyEnv) -> None:
        source.use_clock(env.clock)
        self.source = source
        self._events: EventBus = env.events
        self._last: Secret | None = None

    async def get(self) -> Secret:
        return self._seen(await self.source.get())

    async def renew(self, used: Secret) -> bool:
        """Re-read after a refusal; ``True`` when the value changed (worth a replay)."""
        fresh = self._seen(await self.source.refresh_if_current(used))
        return fresh is not used and fresh != used

    def _seen(self, secret: Secret) -> Secret:
        last = self._last
        if last is not None and secret is not last and secret != last:
            self._events.emit(ev.AUTH_SECRET_ROTATED, source=self.source.describe())
        self._last = secret
        return secret


class Authenticator(abc.ABC):
    """The runtime of one scheme: sign and send, and handle a 401 (renew, replay once)."""

    #: Header and query/body parameter names this scheme puts credentials in (lower-case).
    header_names: frozenset[str] = frozenset()
    param_names: frozenset[str] = frozenset()

    async def check(self) -> None:  # noqa: B027 - most schemes have secrets to resolve, some don't
        """Resolve every secret now (``AuthenticationError`` naming a missing source)."""

    @abc.abstractmethod
    async def authenticate(self, request: httpx2.Request, next: Handler) -> httpx2.Response:
        """Send ``request`` signed (a signed copy) through ``next``."""

    async def preview(self, request: httpx2.Request) -> httpx2.Request | None:
        """A copy of ``request`` signed as ``authenticate`` would sign it, without sending it;
        ``None`` when signing needs the network (e.g. a token not fetched yet)."""
        return None

    def status(self) -> dict[str, Any]:
        return {}


class SigningAuthenticator(Authenticator):
    """A scheme whose credentials come from secret sources: sign; on 401 re-read them, replay once."""

    def __init__(self, refs: Sequence[SecretRef]) -> None:
        self._refs = tuple(refs)

    async def check(self) -> None:
        for ref in self._refs:
            await ref.source.check()

    @abc.abstractmethod
    async def sign(self, request: httpx2.Request, secrets: Sequence[Secret]) -> httpx2.Request:
        """A signed copy of ``request`` made with ``secrets`` (one per ref, in order)."""

    async def preview(self, request: httpx2.Request) -> httpx2.Request | None:
        return await self.sign(request, [await ref.get() for ref in self._refs])

    async def authenticate(self, request: httpx2.Request, next: Handler) -> httpx2.Response:
        used = [await ref.get() for ref in self._refs]
        try:
            return await next(await self.sign(request, used))
        except AuthenticationError as exc:
            if not is_replayable(exc) or not self._refs:
                raise
            changed = False
            for ref, secret in zip(self._refs, used, strict=True):
                changed = await ref.renew(secret) or changed
            if not changed:
                raise  # nothing new to send; an outer scheme (Combined) may still renew its part
        fresh = [await ref.get() for ref in self._refs]
        return await next(await self.sign(request, fresh))  # a second 401 is raised: no loop


class AuthOptions(abc.ABC):
    """Base of the auth options objects: ``kind = "auth"``, ``build(env)`` → ``AuthPolicy``."""

    __slots__ = ()

    kind: ClassVar[str] = "auth"

    @property
    @abc.abstractmethod
    def sources(self) -> tuple[SecretSource, ...]:
        """Every secret source these options read."""

    @property
    def configured_origin(self) -> str | None:
        return getattr(self, "origin", None)

    @abc.abstractmethod
    def authenticator(self, env: PolicyEnv) -> Authenticator:
        """The runtime scheme (without the origin rule; ``build`` adds it)."""

    def build(self, env: PolicyEnv) -> AuthPolicy:
        auth = self.authenticator(env)
        registry.add_names(headers=auth.header_names, params=auth.param_names)
        return AuthPolicy(auth, env, origin=self.configured_origin, scheme=type(self).__name__)

    async def check(self) -> None:
        """Resolve every secret now: ``AuthenticationError`` naming the first missing source."""
        for source in self.sources:
            await source.check()


class AuthPolicy:
    """The ``auth`` box of the pipeline: the origin rule around one scheme.

    The origin is, in order: the options' ``origin=``; the client's base URL (``env.base_url``
    when the client provides it); otherwise the origin of the first request signed.
    """

    __slots__ = ("_auth", "_checked", "_env", "_origin", "scheme")

    def __init__(self, auth: Authenticator, env: PolicyEnv, *, origin: str | None, scheme: str) -> None:
        self._auth = auth
        self._env = env
        self.scheme = scheme
        self._checked = False
        if origin is not None:
            self._origin: Origin | None = parse_origin(origin)
        else:
            base = getattr(env, "base_url", None)
            self._origin = parse_origin(base, name="base_url") if base else None

    @property
    def origin(self) -> str | None:
        """The origin credentials are sent to (``None`` until known)."""
        return format_origin(self._origin) if self._origin is not None else None

    @property
    def authenticator(self) -> Authenticator:
        return self._auth

    async def check(self) -> None:
        """Resolve every secret now. The client calls this when it starts."""
        await self._auth.check()
        self._checked = True

    async def __call__(self, request: httpx2.Request, next: Handler) -> httpx2.Response:
        target = origin_of(request.url)
        if self._origin is None:
            self._origin = target
        if target != self._origin:
            return await next(self._strip(request, target))
        if not self._checked:
            await self.check()
        ctx = request.extensions.get(CONTEXT_KEY)
        if isinstance(ctx, CallContext):
            ctx.extras[EXTRA_ORIGIN] = format_origin(self._origin)
            ctx.extras[EXTRA_HEADERS] = tuple(sorted(self._auth.header_names))
            ctx.extras[EXTRA_PARAMS] = tuple(sorted(self._auth.param_names))
        return await self._auth.authenticate(request, next)

    async def credential_material(self, request: httpx2.Request) -> list[tuple[str, str, str]] | None:
        """The credential values this stage would put on ``request`` (for the cache's key, which
        hashes them and never stores them): ``[]`` for another origin, ``None`` when the scheme
        cannot sign without the network."""
        if self._origin is not None and origin_of(request.url) != self._origin:
            return []
        signed = await self._auth.preview(request)
        if signed is None:
            return None
        material = [
            ("h", name, value)
            for name in sorted(self._auth.header_names)
            for value in signed.headers.get_list(name)
        ]
        material += [
            ("q", name, value)
            for name in sorted(self._auth.param_names)
            for value in signed.url.params.get_list(name)
        ]
        return material

    def _strip(self, request: httpx2.Request, target: Origin) -> httpx2.Request:
        ctx = request.extensions.get(CONTEXT_KEY)
        if isinstance(ctx, CallContext):
            for key in (EXTRA_ORIGIN, EXTRA_HEADERS, EXTRA_PARAMS):
                ctx.extras.pop(key, None)
        headers = [h for h in self._auth.header_names if h in request.headers]
        params = [p for p in self._auth.param_names if p in request.url.params]
        self._env.events.emit(
            ev.CREDENTIALS_STRIPPED,
            endpoint=ctx.endpoint if isinstance(ctx, CallContext) else None,
            level=logging.INFO,
            reason="cross_origin",
            origin=format_origin(self._origin) if self._origin else None,
            destination=format_origin(target),
            removed_headers=sorted(headers),
            removed_params=sorted(params),
        )
        if not headers and not params:
            return request
        new_headers = request.headers.copy()
        for name in headers:
            del new_headers[name]
        url = request.url
        for name in params:
            url = url.copy_remove_param(name)
        return clone_request(request, url=url, headers=new_headers)

    def status(self) -> dict[str, Any]:
        """What ``Integration.status()`` shows: scheme, origin, token state. Never a value."""
        return {"scheme": self.scheme, "origin": self.origin, **self._auth.status()}

    def __repr__(self) -> str:
        return f"AuthPolicy({self.scheme}, origin={self.origin!r})"


def lower_names(names: Iterable[str]) -> frozenset[str]:
    return frozenset(n.lower() for n in names)
