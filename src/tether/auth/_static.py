"""Schemes with a static credential: ``ApiKey``, ``Bearer``, ``Basic`` and ``Headers``.

The credential comes from a secret source; it is read when the client starts, re-read on the
source's interval, and re-read once when the server answers 401 (if the value changed, the request
is replayed once with the new value; if not, the 401 is raised at once).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from types import MappingProxyType
from typing import ClassVar, Final
from urllib.parse import parse_qsl, quote, urlencode

import httpx2

from tether._redact import register_secret
from tether.auth._base import (
    Authenticator,
    AuthOptions,
    SecretRef,
    SigningAuthenticator,
    clone_request,
    lower_names,
    parse_origin,
)
from tether.auth._secrets import Secret, SecretLike, SecretSource, as_source
from tether.errors import RequestValidationError
from tether.pipeline._base import PolicyEnv

__all__ = ["ApiKey", "Basic", "Bearer", "Headers"]

_TOKEN_RE: Final = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_PLACEHOLDER: Final = "{secret}"


def _check_header_name(name: str, *, what: str = "header") -> str:
    if not _TOKEN_RE.match(name):
        raise ValueError(f"{what} must be an HTTP header name (letters, digits, '-' …), got {name!r}")
    return name


def _check_origin(origin: str | None) -> None:
    if origin is not None:
        parse_origin(origin)


def _render(template: str, secret: Secret) -> str:
    return template.replace(_PLACEHOLDER, secret.reveal())


async def _read_body(request: httpx2.Request) -> bytes:
    try:
        return request.content
    except httpx2.RequestNotRead:
        return await request.aread()


# --- ApiKey ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class ApiKey(AuthOptions):
    """An API key in a header (default ``X-API-Key``), a query parameter, or a body field.

    ``template`` formats the value, for APIs with their own formats:
    ``ApiKey(key, header="Authorization", template="Discogs token={secret}")``.
    """

    DEFAULT_HEADER: ClassVar[str] = "X-API-Key"

    secret: SecretLike
    _: KW_ONLY
    header: str | None = None
    query: str | None = None
    body_field: str | None = None
    template: str = _PLACEHOLDER
    origin: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "secret", as_source(self.secret))
        places = (("header", self.header), ("query", self.query), ("body_field", self.body_field))
        given = [k for k, v in places if v is not None]
        if len(given) > 1:
            raise ValueError(
                f"an ApiKey goes in one place: give one of header=, query=, body_field=; got {given}"
            )
        if not given:
            object.__setattr__(self, "header", self.DEFAULT_HEADER)
        if self.header is not None:
            _check_header_name(self.header)
        for name in ("query", "body_field"):
            value = getattr(self, name)
            if value is not None and not value:
                raise ValueError(f"{name} must be a non-empty parameter name")
        if _PLACEHOLDER not in self.template:
            raise ValueError(
                f"template must contain {_PLACEHOLDER!r} where the key goes, got {self.template!r}"
            )
        _check_origin(self.origin)

    @property
    def location(self) -> str:
        """``header``, ``query`` or ``body``."""
        return "header" if self.header is not None else "query" if self.query is not None else "body"

    @property
    def sources(self) -> tuple[SecretSource, ...]:
        return (as_source(self.secret),)

    def authenticator(self, env: PolicyEnv) -> Authenticator:
        return _ApiKeyAuth(self, env)


class _ApiKeyAuth(SigningAuthenticator):
    def __init__(self, options: ApiKey, env: PolicyEnv) -> None:
        super().__init__([SecretRef(as_source(options.secret), env)])
        self._header = options.header
        self._query = options.query
        self._body_field = options.body_field
        self._template = options.template
        if options.header is not None:
            self.header_names = lower_names([options.header])
        else:
            self.param_names = frozenset(n for n in (options.query, options.body_field) if n is not None)

    async def sign(self, request: httpx2.Request, secrets: Sequence[Secret]) -> httpx2.Request:
        value = _render(self._template, secrets[0])
        if self._header is not None:
            headers = request.headers.copy()
            headers[self._header] = value
            return clone_request(request, headers=headers)
        if self._query is not None:
            return clone_request(request, url=request.url.copy_set_param(self._query, value))
        assert self._body_field is not None
        return await _sign_body(request, self._body_field, value)


async def _sign_body(request: httpx2.Request, field: str, value: str) -> httpx2.Request:
    body = await _read_body(request)
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    headers = request.headers.copy()
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise RequestValidationError(
                f"an API key in body field {field!r} needs a JSON object body", parameter=field
            )
        data[field] = value
        content = json.dumps(data, separators=(",", ":")).encode()
    elif content_type == "application/x-www-form-urlencoded" or not body:
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            pairs = None
        if pairs is None:
            raise RequestValidationError(f"the form body cannot carry body field {field!r}", parameter=field)
        pairs = [(k, v) for k, v in pairs if k != field]
        pairs.append((field, value))
        content = urlencode(pairs).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    else:
        raise RequestValidationError(
            f"an API key in body field {field!r} needs a JSON or form body, not {content_type!r}",
            parameter=field,
        )
    return clone_request(request, headers=headers, content=content)


# --- Bearer ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class Bearer(AuthOptions):
    """A bearer token (``Authorization: Bearer <secret>``), e.g. a personal access token or a JWT."""

    secret: SecretLike
    _: KW_ONLY
    origin: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "secret", as_source(self.secret))
        _check_origin(self.origin)

    @property
    def sources(self) -> tuple[SecretSource, ...]:
        return (as_source(self.secret),)

    def authenticator(self, env: PolicyEnv) -> Authenticator:
        return _HeaderAuth([SecretRef(as_source(self.secret), env)], "Authorization", "Bearer {secret}")


class _HeaderAuth(SigningAuthenticator):
    def __init__(self, refs: Sequence[SecretRef], header: str, template: str) -> None:
        super().__init__(refs)
        self._header = header
        self._template = template
        self.header_names = lower_names([header])

    async def sign(self, request: httpx2.Request, secrets: Sequence[Secret]) -> httpx2.Request:
        headers = request.headers.copy()
        headers[self._header] = _render(self._template, secrets[0])
        return clone_request(request, headers=headers)


# --- Basic -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class Basic(AuthOptions):
    """HTTP Basic (RFC 7617). A plain-``str`` username is not treated as secret; the password is."""

    username: str | Secret | SecretSource
    password: SecretLike
    _: KW_ONLY
    origin: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.username, str) and ":" in self.username:
            raise ValueError("a Basic username must not contain ':' (RFC 7617)")
        if isinstance(self.username, Secret):
            object.__setattr__(self, "username", as_source(self.username))
        object.__setattr__(self, "password", as_source(self.password))
        _check_origin(self.origin)

    @property
    def sources(self) -> tuple[SecretSource, ...]:
        user = (self.username,) if isinstance(self.username, SecretSource) else ()
        return (*user, as_source(self.password))

    def authenticator(self, env: PolicyEnv) -> Authenticator:
        return _BasicAuth(self, env)


class _BasicAuth(SigningAuthenticator):
    header_names = frozenset({"authorization"})

    def __init__(self, options: Basic, env: PolicyEnv) -> None:
        self._user = options.username if isinstance(options.username, str) else None
        super().__init__([SecretRef(s, env) for s in options.sources])

    async def sign(self, request: httpx2.Request, secrets: Sequence[Secret]) -> httpx2.Request:
        if self._user is not None:
            user, password = self._user, secrets[0].reveal()
        else:
            user, password = secrets[0].reveal(), secrets[1].reveal()
        value = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        register_secret(value[len("Basic ") :])
        headers = request.headers.copy()
        headers["Authorization"] = value
        return clone_request(request, headers=headers)


def basic_credentials(client_id: str, secret: str) -> str:
    """An ``Authorization: Basic`` value for an OAuth2 client (RFC 6749 2.3.1: form-encode both first)."""
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}"
    encoded = base64.b64encode(raw.encode()).decode("ascii")
    register_secret(encoded)
    return f"Basic {encoded}"


# --- Headers -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class Headers(AuthOptions):
    """Fixed headers to add to every request to the origin (a required ``User-Agent``, a tenant id …).

    A plain ``str`` value is not secret; pass a ``Secret`` or a ``tether.secret`` source for a
    value that is (it is then masked, re-read and stripped from cross-origin requests).
    """

    values: Mapping[str, str | Secret | SecretSource]
    _: KW_ONLY
    origin: str | None = None

    def __post_init__(self) -> None:
        clean: dict[str, str | Secret | SecretSource] = {}
        for name, value in self.values.items():
            _check_header_name(name)
            if isinstance(value, Secret):
                value = as_source(value)
            elif not isinstance(value, str | SecretSource):
                raise ValueError(f"header {name!r} must be a str, a Secret or a secret source")
            clean[name] = value
        object.__setattr__(self, "values", MappingProxyType(clean))
        _check_origin(self.origin)

    @property
    def sources(self) -> tuple[SecretSource, ...]:
        return tuple(v for v in self.values.values() if isinstance(v, SecretSource))

    def authenticator(self, env: PolicyEnv) -> Authenticator:
        return _HeadersAuth(self, env)

    def __repr__(self) -> str:
        shown = {k: (v if isinstance(v, str) else "***") for k, v in self.values.items()}
        return f"Headers({shown!r}, origin={self.origin!r})"


class _HeadersAuth(SigningAuthenticator):
    def __init__(self, options: Headers, env: PolicyEnv) -> None:
        secret_names = [k for k, v in options.values.items() if isinstance(v, SecretSource)]
        super().__init__([SecretRef(s, env) for s in options.sources])
        self._plain = {k: v for k, v in options.values.items() if isinstance(v, str)}
        self._secret_names = secret_names
        self.header_names = lower_names(secret_names)

    async def sign(self, request: httpx2.Request, secrets: Sequence[Secret]) -> httpx2.Request:
        headers = request.headers.copy()
        headers.update(self._plain)
        for name, secret in zip(self._secret_names, secrets, strict=True):
            headers[name] = secret.reveal()
        return clone_request(request, headers=headers)
