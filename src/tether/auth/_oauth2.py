"""OAuth 2.0: the client-credentials grant and the refresh-token grant (RFC 6749 sections 4.4, 6).

The access token is fetched lazily (on the first call, never at start), cached with its expiry,
and replaced ``leeway`` seconds before it expires. Many calls needing a new token at once cause
exactly one token request:

- in one process, an ``asyncio.Lock`` per policy: one task fetches, the others wait and re-read
  the cache (while the old token is still valid they keep using it instead of waiting);
- across workers, the state store: the token lives in the store (JSON, under a key namespaced by
  service, grant, token URL, client id, scopes and audience), and the fetching worker holds
  ``store.try_lock`` while it fetches; the others poll the store until the new token appears.

A 401 from the API rejects the token that was used: the policy gets a new one (once, shared by
every call refused with the same token) and replays the attempt once; a second 401 is raised.
A token response carrying a new ``refresh_token`` (rotation) replaces the old one, in memory and
in the store.

**The token request** is a new ``httpx2.Request`` with its own ``CallContext`` (endpoint
``auth.token``), sent through the auth policy's ``next`` handler: it reuses the client's engine
and connection pool and its attempt timeout, but not the stages above auth, so it is not
rate-limited against the API's budget, not counted by the API's breaker and not retried by the
API's retry policy. It never carries the API credential (it is built from scratch), and it is
retried here at most ``token_retries`` times (default 1), only on transient failures (connection
errors, timeouts, 429, 5xx), within the call's deadline. Provider refusals (RFC 6749 section 5.2:
``invalid_client``, ``invalid_grant`` …) are never retried.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import ipaddress
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Final, Literal
from urllib.parse import urlencode

import httpx2

from tether import events as ev
from tether._config import Timeouts
from tether._context import CONTEXT_KEY, CallContext
from tether._redact import redact_text, redact_url
from tether._units import Duration, parse_duration
from tether.auth._base import (
    Authenticator,
    AuthOptions,
    SecretRef,
    clone_request,
    is_replayable,
    parse_origin,
)
from tether.auth._secrets import Secret, SecretLike, SecretSource, as_source
from tether.auth._static import basic_credentials
from tether.errors import AuthenticationError, StateStoreError, TetherError
from tether.errors import ConnectionError as TetherConnectionError
from tether.errors import TimeoutError as TetherTimeoutError
from tether.pipeline._base import Handler, PolicyEnv
from tether.state._protocol import StateStore
from tether.state.memory import MemoryStore

__all__ = ["OAuth2ClientCredentials", "OAuth2RefreshToken"]

#: ``CallContext.endpoint`` of token requests (so telemetry can tell them apart).
TOKEN_ENDPOINT: Final = "auth.token"

ClientAuth = Literal["basic", "body"]

_RESERVED_FORM_KEYS: Final = frozenset(
    {"grant_type", "client_id", "client_secret", "refresh_token", "scope", "audience"}
)
_POLL_INTERVAL: Final = 0.05
_TOKEN_RETRY_DELAY: Final = 0.5
_MAX_PROVIDER_TEXT: Final = 300
_MIN_LIFETIME: Final = 1.0


def _scopes(value: str | Sequence[str]) -> tuple[str, ...]:
    items = value.split() if isinstance(value, str) else list(value)
    for scope in items:
        if not isinstance(scope, str) or not scope or any(c.isspace() for c in scope):
            raise ValueError(f"each scope must be a non-empty string without spaces, got {scope!r}")
    return tuple(items)


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True, eq=False)
class _OAuth2Options(AuthOptions):
    """Fields and validation both OAuth2 grants share."""

    DEFAULT_LEEWAY: ClassVar[float] = 60.0
    DEFAULT_EXPIRES_IN: ClassVar[float] = 3600.0
    DEFAULT_TOKEN_RETRIES: ClassVar[int] = 1
    DEFAULT_LOCK_TTL: ClassVar[float] = 30.0
    grant_type: ClassVar[str] = ""

    token_url: str
    client_id: str
    client_secret: SecretLike | None = None
    _: KW_ONLY
    scopes: str | Sequence[str] = ()
    audience: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)
    client_auth: ClientAuth = "basic"
    #: Replace the token this long before it expires (at most half its lifetime).
    leeway: Duration = DEFAULT_LEEWAY
    #: Lifetime assumed when the token response has no ``expires_in``.
    default_expires_in: Duration = DEFAULT_EXPIRES_IN
    #: Extra tries of the token request on transient failures (0 = none).
    token_retries: int = DEFAULT_TOKEN_RETRIES
    #: How long one worker may hold the cross-worker refresh lock.
    lock_ttl: Duration = DEFAULT_LOCK_TTL
    origin: str | None = None
    #: Allow an ``http://`` token URL on a non-loopback host (credentials in clear text).
    allow_insecure_token_url: bool = False

    def __post_init__(self) -> None:
        url = httpx2.URL(self.token_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"token_url must be an absolute http(s) URL, got {redact_url(self.token_url)!r}")
        if url.scheme == "http" and not _is_loopback(url.host) and not self.allow_insecure_token_url:
            raise ValueError(
                "token_url must use https (client credentials travel in it), got "
                f"{redact_url(self.token_url)!r}; pass allow_insecure_token_url=True to accept plain http"
            )
        if not isinstance(self.client_id, str) or not self.client_id:
            raise ValueError("client_id must be a non-empty string")
        if self.client_secret is not None:
            object.__setattr__(self, "client_secret", as_source(self.client_secret))
        object.__setattr__(self, "scopes", _scopes(self.scopes))
        extra = dict(self.extra)
        clash = sorted(_RESERVED_FORM_KEYS & set(extra))
        if clash:
            raise ValueError(f"extra must not set {clash}: tether fills those in itself")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in extra.items()):
            raise ValueError("extra must map str to str")
        object.__setattr__(self, "extra", MappingProxyType(extra))
        if self.client_auth not in ("basic", "body"):
            raise ValueError(f"client_auth must be 'basic' or 'body', got {self.client_auth!r}")
        object.__setattr__(self, "leeway", parse_duration(self.leeway, name="leeway"))
        object.__setattr__(
            self,
            "default_expires_in",
            parse_duration(self.default_expires_in, name="default_expires_in", allow_zero=False),
        )
        object.__setattr__(self, "lock_ttl", parse_duration(self.lock_ttl, name="lock_ttl", allow_zero=False))
        if isinstance(self.token_retries, bool) or not isinstance(self.token_retries, int):
            raise ValueError(f"token_retries must be an integer, got {self.token_retries!r}")
        if not 0 <= self.token_retries <= 5:
            raise ValueError(f"token_retries must be between 0 and 5, got {self.token_retries}")
        if self.origin is not None:
            parse_origin(self.origin)

    @property
    def sources(self) -> tuple[SecretSource, ...]:
        return (as_source(self.client_secret),) if self.client_secret is not None else ()

    def cache_key(self, service: str) -> str:
        """The state-store key of the token: service + a hash of grant, URL, client, scopes, audience."""
        identity = "\n".join(
            (self.grant_type, self.token_url, self.client_id, " ".join(self.scopes), self.audience or "")
        )
        return f"{service}:auth:token:{hashlib.sha256(identity.encode()).hexdigest()[:32]}"

    def authenticator(self, env: PolicyEnv) -> Authenticator:
        return _OAuth2Auth(self, env)

    def grant_form(self) -> list[tuple[str, str]]:
        form = [("grant_type", self.grant_type)]
        if self.scopes:
            form.append(("scope", " ".join(self.scopes)))
        if self.audience:
            form.append(("audience", self.audience))
        form.extend(self.extra.items())
        return form


@dataclass(frozen=True, slots=True, eq=False)
class OAuth2ClientCredentials(_OAuth2Options):
    """OAuth 2.0 client credentials (RFC 6749 4.4): the client authenticates as itself.

    ``client_auth="basic"`` (default) sends the client id and secret in an ``Authorization: Basic``
    header; ``"body"`` sends them as form fields (some providers require it).
    """

    grant_type: ClassVar[str] = "client_credentials"

    def __post_init__(self) -> None:
        _OAuth2Options.__post_init__(self)
        if self.client_secret is None:
            raise ValueError("OAuth2ClientCredentials needs a client_secret")


@dataclass(frozen=True, slots=True, eq=False)
class OAuth2RefreshToken(_OAuth2Options):
    """OAuth 2.0 refresh-token grant (RFC 6749 6): trade a long-lived refresh token for access tokens.

    ``refresh_token`` is a secret source holding the refresh token obtained once (by the
    authorization-code flow, outside tether). When the provider rotates it (a token response
    with a new ``refresh_token``), the new one is kept, in memory and in the state store, and used
    next time. ``client_secret`` is optional (public clients send only ``client_id``).
    """

    grant_type: ClassVar[str] = "refresh_token"

    refresh_token: SecretLike | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        _OAuth2Options.__post_init__(self)
        if self.refresh_token is None:
            raise ValueError("OAuth2RefreshToken needs a refresh_token (a tether.secret source)")
        object.__setattr__(self, "refresh_token", as_source(self.refresh_token))

    @property
    def sources(self) -> tuple[SecretSource, ...]:
        client = (as_source(self.client_secret),) if self.client_secret is not None else ()
        refresh = (as_source(self.refresh_token),) if self.refresh_token is not None else ()
        return (*client, *refresh)


# --- the token ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    access: Secret
    expires_at: float
    refresh_at: float
    refresh: Secret | None = None
    scope: str | None = None
    #: Fingerprint of the source refresh token this token's lineage started from (refresh grant).
    seed: str | None = None

    def to_json(self) -> bytes:
        # The serialised token is a secret: it goes to the state store only, never to a log.
        return json.dumps(
            {
                "access_token": self.access.reveal(),
                "expires_at": self.expires_at,
                "refresh_at": self.refresh_at,
                "refresh_token": self.refresh.reveal() if self.refresh is not None else None,
                "scope": self.scope,
                "seed": self.seed,
            }
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> _Token | None:
        try:
            data = json.loads(raw)
            access = data["access_token"]
            expires_at = float(data["expires_at"])
            refresh_at = float(data.get("refresh_at", expires_at))
            refresh = data.get("refresh_token")
            scope = data.get("scope")
            seed = data.get("seed")
        except (ValueError, KeyError, TypeError):
            return None
        if not isinstance(access, str) or not access:
            return None
        return cls(
            Secret(access),
            expires_at,
            refresh_at,
            Secret(refresh) if isinstance(refresh, str) and refresh else None,
            scope if isinstance(scope, str) else None,
            seed if isinstance(seed, str) else None,
        )

    def __repr__(self) -> str:
        return f"_Token(expires_at={self.expires_at:g})"


def _digest(secret: Secret) -> bytes:
    return hashlib.sha256(secret.reveal().encode()).digest()


def _fingerprint(secret: Secret) -> str:
    return hashlib.sha256(secret.reveal().encode()).hexdigest()[:32]


class _OAuth2Auth(Authenticator):
    header_names = frozenset({"authorization"})

    def __init__(self, options: _OAuth2Options, env: PolicyEnv) -> None:
        self._opts = options
        self._env = env
        self._client_secret = (
            SecretRef(as_source(options.client_secret), env) if options.client_secret is not None else None
        )
        refresh = getattr(options, "refresh_token", None)
        self._initial_refresh = SecretRef(as_source(refresh), env) if refresh is not None else None
        self._store: StateStore = env.store if env.store is not None else MemoryStore()
        self._key = options.cache_key(env.service)
        self._lock_key = f"{self._key}:lock"
        self._shown_url = redact_url(options.token_url)
        self._leeway = parse_duration(options.leeway, name="leeway")
        self._default_lifetime = parse_duration(options.default_expires_in, name="default_expires_in")
        self._lock_ttl = parse_duration(options.lock_ttl, name="lock_ttl")
        self._token: _Token | None = None
        self._rejected: collections.deque[bytes] = collections.deque(maxlen=8)
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        #: Token requests this policy sent (for status and tests).
        self.token_requests = 0

    async def check(self) -> None:
        for ref in (self._client_secret, self._initial_refresh):
            if ref is not None:
                await ref.source.check()

    def status(self) -> dict[str, Any]:
        token = self._token
        if token is None:
            return {"token": "none", "token_requests": self.token_requests}
        left = token.expires_at - self._env.clock.time()
        return {
            "token": "valid" if left > 0 else "expired",
            "expires_in": max(0, int(left)),
            "token_requests": self.token_requests,
        }

    # --- the call -----------------------------------------------------------------------------

    async def authenticate(self, request: httpx2.Request, next: Handler) -> httpx2.Response:
        token = await self._get(request, next, rejected=None)
        try:
            return await next(self._sign(request, token))
        except AuthenticationError as exc:
            if not is_replayable(exc):
                raise
        token = await self._get(request, next, rejected=token)
        return await next(self._sign(request, token))  # a second 401 is raised: no loop

    @staticmethod
    def _sign(request: httpx2.Request, token: _Token) -> httpx2.Request:
        headers = request.headers.copy()
        headers["Authorization"] = f"Bearer {token.access.reveal()}"
        return clone_request(request, headers=headers)

    # --- the cache ----------------------------------------------------------------------------

    def _get_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock = asyncio.Lock()
            self._lock_loop = loop
        return self._lock

    def _is_rejected(self, token: _Token) -> bool:
        return _digest(token.access) in self._rejected

    def _usable(self, token: _Token | None, now: float) -> bool:
        return token is not None and now < token.refresh_at and not self._is_rejected(token)

    async def _get(self, request: httpx2.Request, send: Handler, *, rejected: _Token | None) -> _Token:
        clock = self._env.clock
        if rejected is not None:
            digest = _digest(rejected.access)
            if digest not in self._rejected:
                self._rejected.append(digest)
        token = self._token
        now = clock.time()
        if self._usable(token, now):
            assert token is not None
            return token
        lock = self._get_lock()
        if token is not None and lock.locked() and now < token.expires_at and not self._is_rejected(token):
            return token  # still valid: use it while another task replaces it
        async with lock:
            now = clock.time()
            token = self._token
            if self._usable(token, now):
                assert token is not None
                return token
            stored = await self._load(now)
            if self._usable(stored, now):
                assert stored is not None
                self._token = stored
                return stored
            reason = "rejected" if rejected is not None else "expiring" if token is not None else "initial"
            return await self._refresh_shared(request, send, reason, _newest(stored, token))

    async def _refresh_shared(
        self, request: httpx2.Request, send: Handler, reason: str, previous: _Token | None
    ) -> _Token:
        clock = self._env.clock
        owner = uuid.uuid4().hex
        while True:
            if await self._try_lock(owner):
                try:
                    now = clock.time()
                    stored = await self._load(now)
                    if self._usable(stored, now):
                        assert stored is not None
                        self._token = stored
                        return stored
                    token = await self._fetch(request, send, reason, _newest(stored, previous))
                    await self._save(token, clock.time())
                    self._token = token
                    return token
                finally:
                    await self._unlock(owner)
            # Another worker is fetching. A token that has not expired yet can still be used;
            # otherwise wait for the new one to appear in the store.
            held = previous
            if held is not None and clock.time() < held.expires_at and not self._is_rejected(held):
                return held
            await clock.sleep(_POLL_INTERVAL)
            now = clock.time()
            stored = await self._load(now)
            if self._usable(stored, now):
                assert stored is not None
                self._token = stored
                return stored

    # --- the store (a failing shared store degrades to this process's cache) -------------------

    async def _load(self, now: float) -> _Token | None:
        try:
            raw = await self._store.get(self._key, now=now)
        except StateStoreError:
            return None
        return _Token.from_json(raw) if raw is not None else None

    async def _save(self, token: _Token, now: float) -> None:
        # A refresh token outlives its access token, so such entries do not expire with it.
        ttl = None if token.refresh is not None else max(_MIN_LIFETIME, token.expires_at - now)
        try:
            await self._store.set(self._key, token.to_json(), ttl=ttl, now=now)
        except StateStoreError:
            return

    async def _try_lock(self, owner: str) -> bool:
        try:
            return await self._store.try_lock(
                self._lock_key, owner, ttl=self._lock_ttl, now=self._env.clock.time()
            )
        except StateStoreError:
            return True

    async def _unlock(self, owner: str) -> None:
        try:
            await self._store.unlock(self._lock_key, owner)
        except StateStoreError:
            return

    # --- the token request --------------------------------------------------------------------

    async def _fetch(
        self, request: httpx2.Request, send: Handler, reason: str, previous: _Token | None
    ) -> _Token:
        opts = self._opts
        form = opts.grant_form()
        used_refresh: Secret | None = None
        seed: str | None = None
        if self._initial_refresh is not None:
            if previous is not None and previous.refresh is not None:
                used_refresh, seed = previous.refresh, previous.seed
            else:
                used_refresh = await self._initial_refresh.get()
                seed = _fingerprint(used_refresh)
            form.insert(1, ("refresh_token", used_refresh.reveal()))
        try:
            body = await self._post(request, send, form)
        except AuthenticationError as exc:
            if self._initial_refresh is None or exc.title != "invalid_grant":
                raise
            # The refresh token was refused. If the source now holds a refresh token that this
            # token's lineage did not start from (the user re-authorised the app), try that once.
            # A source still holding the lineage's start is not retried: presenting a consumed
            # refresh token again can make the provider revoke the whole family.
            current = await self._initial_refresh.get()
            await self._initial_refresh.renew(current)
            latest = await self._initial_refresh.get()
            if seed is not None and _fingerprint(latest) == seed:
                raise
            used_refresh, seed = latest, _fingerprint(latest)
            form = [(k, latest.reveal() if k == "refresh_token" else v) for k, v in form]
            body = await self._post(request, send, form)
        return self._parse(body, reason, used_refresh, seed)

    async def _post(
        self, request: httpx2.Request, send: Handler, form: list[tuple[str, str]]
    ) -> Mapping[str, Any]:
        opts = self._opts
        clock = self._env.clock
        headers = {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"}
        if self._client_secret is not None:
            secret = (await self._client_secret.get()).reveal()
            if opts.client_auth == "basic":
                headers["Authorization"] = basic_credentials(opts.client_id, secret)
            else:
                form = [*form, ("client_id", opts.client_id), ("client_secret", secret)]
        else:
            form = [*form, ("client_id", opts.client_id)]
        parent = request.extensions.get(CONTEXT_KEY)
        timeouts = parent.timeouts if isinstance(parent, CallContext) else Timeouts()
        ctx = CallContext(
            service=self._env.service,
            timeouts=timeouts,
            endpoint=TOKEN_ENDPOINT,
            deadline=parent.deadline if isinstance(parent, CallContext) else None,
            idempotent=True,
        )
        token_request = httpx2.Request(
            "POST",
            opts.token_url,
            headers=headers,
            content=urlencode(form).encode(),
            extensions={CONTEXT_KEY: ctx, "timeout": timeouts.as_extension()},
        )
        tries = 1 + opts.token_retries
        for attempt in range(1, tries + 1):
            ctx.attempt = attempt
            self.token_requests += 1
            retry_ok = attempt < tries and self._time_left(ctx) > _TOKEN_RETRY_DELAY * attempt
            try:
                response = await send(token_request)
            except TetherError as exc:
                if exc.response is not None:
                    if retry_ok and _transient_status(exc.response.status_code):
                        await clock.sleep(_TOKEN_RETRY_DELAY * attempt)
                        continue
                    raise self._refusal(exc.response) from exc
                if retry_ok and isinstance(exc, TetherConnectionError | TetherTimeoutError):
                    await clock.sleep(_TOKEN_RETRY_DELAY * attempt)
                    continue
                raise AuthenticationError(
                    f"token request to {self._shown_url} failed: {type(exc).__name__}",
                    service=self._env.service,
                    detail=redact_text(exc.message),
                ) from exc
            except (httpx2.HTTPError, OSError) as exc:  # an engine that does not map its errors
                if retry_ok:
                    await clock.sleep(_TOKEN_RETRY_DELAY * attempt)
                    continue
                raise AuthenticationError(
                    f"token request to {self._shown_url} failed: {type(exc).__name__}",
                    service=self._env.service,
                ) from exc
            if response.status_code >= 400:
                await response.aread()
                if retry_ok and _transient_status(response.status_code):
                    await clock.sleep(_TOKEN_RETRY_DELAY * attempt)
                    continue
                raise self._refusal(response)
            await response.aread()
            return self._json_body(response)
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def _time_left(self, ctx: CallContext) -> float:
        left = ctx.remaining(self._env.clock.monotonic())
        return math.inf if left is None else left

    def _json_body(self, response: httpx2.Response) -> Mapping[str, Any]:
        try:
            body = json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, Mapping):
            raise AuthenticationError(
                f"token endpoint {self._shown_url} answered HTTP {response.status_code}"
                " without a JSON object",
                service=self._env.service,
                status_code=response.status_code,
            )
        return body

    def _refusal(self, response: httpx2.Response) -> AuthenticationError:
        """The provider's RFC 6749 5.2 error (``invalid_client`` …) as an ``AuthenticationError``."""
        status = response.status_code
        error = description = uri = None
        try:
            body = json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            body = None
        if isinstance(body, Mapping):
            error = _short(body.get("error"))
            description = _short(body.get("error_description"))
            uri = _short(body.get("error_uri"))
        if error:
            message = f"token endpoint {self._shown_url} refused the request: {error}"
            if description:
                message += f": {description}"
        else:
            message = f"token endpoint {self._shown_url} answered HTTP {status}"
        return AuthenticationError(
            message,
            service=self._env.service,
            endpoint=TOKEN_ENDPOINT,
            status_code=status,
            title=redact_text(error) if error else None,
            detail=description,
            type=redact_text(uri) if uri else None,
        )

    def _parse(
        self, body: Mapping[str, Any], reason: str, used_refresh: Secret | None, seed: str | None
    ) -> _Token:
        opts = self._opts
        access = body.get("access_token")
        if not isinstance(access, str) or not access:
            raise AuthenticationError(
                f"token endpoint {self._shown_url} answered without an access_token",
                service=self._env.service,
            )
        access_secret = Secret(access)
        token_type = body.get("token_type")
        if isinstance(token_type, str) and token_type.lower() != "bearer":
            raise AuthenticationError(
                f"token endpoint {self._shown_url} issued a {_short(token_type)!r} token;"
                " tether sends bearer tokens",
                service=self._env.service,
            )
        lifetime = _number(body.get("expires_in"))
        if lifetime is None:
            lifetime = self._default_lifetime
        lifetime = max(_MIN_LIFETIME, lifetime)
        leeway = self._leeway
        now = self._env.clock.time()
        new_refresh = body.get("refresh_token")
        rotated = isinstance(new_refresh, str) and bool(new_refresh)
        refresh = Secret(new_refresh) if isinstance(new_refresh, str) and new_refresh else used_refresh
        rotated = rotated and (used_refresh is None or refresh != used_refresh)
        scope = body.get("scope")
        token = _Token(
            access=access_secret,
            expires_at=now + lifetime,
            refresh_at=now + max(lifetime - leeway, lifetime / 2),
            refresh=refresh,
            scope=scope if isinstance(scope, str) else None,
            seed=seed,
        )
        self._env.events.emit(
            ev.AUTH_TOKEN_REFRESHED,
            reason=reason,
            grant=opts.grant_type,
            token_url=self._shown_url,
            expires_in=round(lifetime),
            refresh_token_rotated=rotated,
        )
        return token


def _newest(a: _Token | None, b: _Token | None) -> _Token | None:
    """The later-issued of two tokens (its refresh token is the current one after rotation)."""
    if a is None or b is None:
        return a or b
    return a if a.expires_at >= b.expires_at else b


def _transient_status(status: int) -> bool:
    return status == 429 or status >= 500


def _short(value: object) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    text = " ".join(value.split())
    return text if len(text) <= _MAX_PROVIDER_TEXT else text[: _MAX_PROVIDER_TEXT - 1] + "…"


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None
