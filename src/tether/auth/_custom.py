"""Schemes brought by the user: a function (``Custom``), any ``httpx2.Auth`` (``HttpxAuth``), and
several schemes at once (``Combined``).

``as_auth(obj)`` turns loose input into auth options: options as they are, an ``httpx2.Auth``
into ``HttpxAuth``, a ``(username, password)`` pair into ``Basic``, a callable into ``Custom``.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final, NoReturn

import httpx2

from tether._context import CONTEXT_KEY
from tether.auth._base import Authenticator, AuthOptions, clone_request, lower_names, origin_of, parse_origin
from tether.auth._secrets import SecretSource
from tether.auth._static import Basic
from tether.errors import AuthenticationError, TetherError
from tether.pipeline._base import Handler, PolicyEnv

__all__ = ["AuthLike", "Combined", "Custom", "HttpxAuth", "as_auth"]

SignResult = httpx2.Request | None
SignFunction = Callable[[httpx2.Request], SignResult | Awaitable[SignResult]]


class _Frozen:
    """``__setattr__`` refuses: these options are immutable like the dataclass ones."""

    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable; build a new one")


def _adopt(outgoing: httpx2.Request, original: httpx2.Request) -> httpx2.Request:
    """Give a request made by user code the call's context (when it dropped it)."""
    if CONTEXT_KEY not in outgoing.extensions:
        outgoing.extensions = {**original.extensions, **outgoing.extensions}
    return outgoing


# --- Custom ------------------------------------------------------------------------------------


class Custom(_Frozen, AuthOptions):
    """A function that signs a request: ``def sign(request) -> request | None`` (sync or async).

    It gets a copy of the request to change in place (or returns a new one). Name the headers and
    parameters it sets in ``headers=`` / ``params=`` so they are masked in logs and removed from
    requests to other origins.
    """

    __slots__ = ("func", "headers", "origin", "params")

    func: SignFunction
    headers: tuple[str, ...]
    params: tuple[str, ...]
    origin: str | None

    def __init__(
        self,
        func: SignFunction,
        *,
        headers: Iterable[str] = (),
        params: Iterable[str] = (),
        origin: str | None = None,
    ) -> None:
        if not callable(func):
            raise ValueError(f"Custom needs a callable, got {type(func).__name__}")
        if origin is not None:
            parse_origin(origin)
        object.__setattr__(self, "func", func)
        object.__setattr__(self, "headers", tuple(headers))
        object.__setattr__(self, "params", tuple(params))
        object.__setattr__(self, "origin", origin)

    @property
    def sources(self) -> tuple[SecretSource, ...]:
        return ()

    def authenticator(self, env: PolicyEnv) -> Authenticator:
        return _CustomAuth(self)

    def __repr__(self) -> str:
        name = getattr(self.func, "__qualname__", type(self.func).__name__)
        return f"Custom({name}, origin={self.origin!r})"


class _CustomAuth(Authenticator):
    def __init__(self, options: Custom) -> None:
        self._func = options.func
        self.header_names = lower_names(options.headers)
        self.param_names = frozenset(options.params)

    async def authenticate(self, request: httpx2.Request, next: Handler) -> httpx2.Response:
        copy = clone_request(request)
        result = self._func(copy)
        if inspect.isawaitable(result):
            result = await result
        signed = result if isinstance(result, httpx2.Request) else copy
        return await next(_adopt(signed, request))


# --- HttpxAuth ---------------------------------------------------------------------------------


class HttpxAuth(_Frozen, AuthOptions):
    """Any ``httpx2.Auth`` (Digest, NetRC, a third-party flow), driven by tether.

    Its generator flow is run as httpx runs it: the flow yields a request, tether sends it through
    the rest of the pipeline and sends the response back (error responses too, so a flow can answer
    a 401 challenge); follow-up requests must stay on the same origin (at most
    ``MAX_FLOW_REQUESTS`` per attempt). When the flow ends on an error response, that error is raised.
    """

    MAX_FLOW_REQUESTS: Final = 10

    __slots__ = ("auth", "headers", "origin")

    auth: httpx2.Auth
    headers: tuple[str, ...]
    origin: str | None

    def __init__(
        self, auth: httpx2.Auth, *, headers: Iterable[str] = ("Authorization",), origin: str | None = None
    ):
        if not isinstance(auth, httpx2.Auth):
            raise ValueError(f"HttpxAuth needs an httpx2.Auth, got {type(auth).__name__}")
        if origin is not None:
            parse_origin(origin)
        object.__setattr__(self, "auth", auth)
        object.__setattr__(self, "headers", tuple(headers))
        object.__setattr__(self, "origin", origin)

    @property
    def sources(self) -> tuple[SecretSource, ...]:
        return ()

    def authenticator(self, env: PolicyEnv) -> Authenticator:
        return _HttpxFlowAuth(self)

    def __repr__(self) -> str:
        return f"HttpxAuth({type(self.auth).__name__}, origin={self.origin!r})"


class _HttpxFlowAuth(Authenticator):
    def __init__(self, options: HttpxAuth) -> None:
        self._auth = options.auth
        self.header_names = lower_names(options.headers)

    async def authenticate(self, request: httpx2.Request, next: Handler) -> httpx2.Response:
        auth = self._auth
        copy = clone_request(request)
        if auth.requires_request_body:
            await copy.aread()
        flow = auth.async_auth_flow(copy)
        home = origin_of(request.url)
        try:
            outgoing = await flow.__anext__()
            for sent in range(1, HttpxAuth.MAX_FLOW_REQUESTS + 1):
                outgoing = _adopt(outgoing, request)
                if origin_of(outgoing.url) != home:
                    raise AuthenticationError(
                        "an httpx2.Auth flow tried to send a request to another origin; refused",
                        service=getattr(request.extensions.get(CONTEXT_KEY), "service", None),
                    )
                error: TetherError | None = None
                try:
                    response = await next(outgoing)
                except TetherError as exc:
                    if exc.response is None:
                        raise
                    response, error = exc.response, exc
                if auth.requires_response_body:
                    await response.aread()
                finished = sent == HttpxAuth.MAX_FLOW_REQUESTS
                if not finished:
                    try:
                        outgoing = await flow.asend(response)
                    except StopAsyncIteration:
                        finished = True
                if finished:
                    if error is not None:
                        raise error
                    return response
            raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover
        except StopAsyncIteration:
            raise AuthenticationError("the httpx2.Auth flow yielded no request") from None
        finally:
            await flow.aclose()


# --- Combined ----------------------------------------------------------------------------------


AuthLike = AuthOptions | httpx2.Auth | tuple[str, str] | SignFunction


class Combined(_Frozen, AuthOptions):
    """Several schemes on one request, applied in order: ``Combined(ApiKey(...), Headers({...}))``.

    The origin rule is applied once, by ``Combined`` (its ``origin=``); the parts' own ``origin``
    values are not used. On a 401 each part may renew its credential; each replays at most once.
    """

    __slots__ = ("origin", "parts")

    parts: tuple[AuthOptions, ...]
    origin: str | None

    def __init__(self, *parts: AuthLike, origin: str | None = None) -> None:
        if not parts:
            raise ValueError("Combined needs at least one auth scheme")
        flat: list[AuthOptions] = []
        for part in parts:
            options = as_auth(part)
            flat.extend(options.parts if isinstance(options, Combined) else (options,))
        if origin is not None:
            parse_origin(origin)
        object.__setattr__(self, "parts", tuple(flat))
        object.__setattr__(self, "origin", origin)

    @property
    def sources(self) -> tuple[SecretSource, ...]:
        return tuple(s for p in self.parts for s in p.sources)

    def authenticator(self, env: PolicyEnv) -> Authenticator:
        return _CombinedAuth([p.authenticator(env) for p in self.parts])

    def __repr__(self) -> str:
        inner = ", ".join(repr(p) for p in self.parts)
        return f"Combined({inner}, origin={self.origin!r})"


class _CombinedAuth(Authenticator):
    def __init__(self, parts: list[Authenticator]) -> None:
        self._parts = tuple(parts)
        self.header_names = frozenset().union(*(p.header_names for p in parts))
        self.param_names = frozenset().union(*(p.param_names for p in parts))

    async def check(self) -> None:
        for part in self._parts:
            await part.check()

    def status(self) -> dict[str, Any]:
        return {"parts": [p.status() for p in self._parts]}

    async def authenticate(self, request: httpx2.Request, next: Handler) -> httpx2.Response:
        handler = next
        for part in reversed(self._parts):
            handler = _bind(part, handler)
        return await handler(request)


def _bind(part: Authenticator, next_handler: Handler) -> Handler:
    async def handler(request: httpx2.Request) -> httpx2.Response:
        return await part.authenticate(request, next_handler)

    return handler


def as_auth(auth: AuthLike) -> AuthOptions:
    """Auth options from loose input (what ``Client(auth=...)`` accepts)."""
    if isinstance(auth, AuthOptions):
        return auth
    if isinstance(auth, httpx2.Auth):
        return HttpxAuth(auth)
    if isinstance(auth, tuple):
        if len(auth) == 2 and all(isinstance(x, str) for x in auth):
            return Basic(auth[0], auth[1])
        raise TypeError("an auth tuple is (username, password)")
    if callable(auth):
        return Custom(auth)
    raise TypeError(
        "auth must be tether auth options (ApiKey, Bearer, Basic, OAuth2…), an httpx2.Auth, "
        f"a (username, password) pair or a signing function; got {type(auth).__name__}"
    )
