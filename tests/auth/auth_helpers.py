"""Helpers for the auth tests: a client factory and a loopback OAuth 2.0 provider (aiohttp.web)
that issues distinct tokens and checks them."""

from __future__ import annotations

import asyncio
import base64
import inspect
import itertools
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import web

import tether
from tether import Timeouts
from tether.pipeline._base import PolicyOptions


def make_client(base_url: str | None, *policies: PolicyOptions, **kwargs: Any) -> tether.Client:
    """A client with just these policies (no default retry/breaker; no total deadline on a virtual clock)."""
    params = inspect.signature(tether.Client).parameters
    for name in ("retry", "breaker"):
        if name in params:
            kwargs.setdefault(name, None)
    if "clock" in kwargs:
        # A virtual clock would run a total deadline out while real sockets are pending.
        kwargs.setdefault("timeout", Timeouts(total=None))
    return tether.Client(base_url, policies=list(policies), **kwargs)


@dataclass
class TokenCall:
    """One request the provider's token endpoint received."""

    form: dict[str, str]
    authorization: str | None


@dataclass
class Provider:
    """A loopback OAuth 2.0 provider: ``POST /token`` and a protected ``GET /api``."""

    client_id: str = "client-1"
    client_secret: str = "client-secret-1"
    expires_in: int | None = 3600
    rotate_refresh: bool = False
    reject_api: bool = False
    token_error: tuple[int, dict[str, Any]] | None = None
    token_delay: float = 0.0
    access_prefix: str = "at"
    url: str = ""
    token_calls: list[TokenCall] = field(default_factory=list)
    api_calls: list[str | None] = field(default_factory=list)
    valid_access: set[str] = field(default_factory=set)
    valid_refresh: set[str] = field(default_factory=lambda: {"rt-0"})
    _counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    def revoke_access(self) -> None:
        """Every access token issued so far stops working (the API answers 401)."""
        self.valid_access.clear()

    def _client_ok(self, form: dict[str, str], authorization: str | None) -> bool:
        if authorization and authorization.startswith("Basic "):
            raw = base64.b64decode(authorization[6:]).decode()
            user, _, password = raw.partition(":")
            return unquote(user) == self.client_id and unquote(password) == self.client_secret
        if "client_secret" in form:
            return form.get("client_id") == self.client_id and form["client_secret"] == self.client_secret
        return form.get("client_id") == self.client_id  # a public client

    async def token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        authorization = request.headers.get("Authorization")
        self.token_calls.append(TokenCall(form, authorization))
        if self.token_delay:
            await asyncio.sleep(self.token_delay)
        if self.token_error is not None:
            status, body = self.token_error
            return web.json_response(body, status=status)
        if not self._client_ok(form, authorization):
            return web.json_response(
                {"error": "invalid_client", "error_description": "Client authentication failed"}, status=401
            )
        n = next(self._counter)
        body: dict[str, Any] = {"token_type": "Bearer"}
        grant = form.get("grant_type")
        if grant == "refresh_token":
            presented = form.get("refresh_token", "")
            if presented not in self.valid_refresh:
                refusal = {"error": "invalid_grant", "error_description": "The refresh token is invalid"}
                return web.json_response(refusal, status=400)
            if self.rotate_refresh:
                self.valid_refresh.discard(presented)
                fresh = f"rt-{n}"
                self.valid_refresh.add(fresh)
                body["refresh_token"] = fresh
        elif grant != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        access = f"{self.access_prefix}-{n}"
        self.valid_access.add(access)
        body["access_token"] = access
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return web.json_response(body)

    async def api(self, request: web.Request) -> web.Response:
        authorization = request.headers.get("Authorization")
        self.api_calls.append(authorization)
        token = authorization[7:] if authorization and authorization.startswith("Bearer ") else None
        if self.reject_api or token not in self.valid_access:
            return web.json_response({"error": "invalid_token"}, status=401)
        return web.json_response({"ok": True, "token": token})


@asynccontextmanager
async def running_provider() -> AsyncIterator[Provider]:
    """A started loopback OAuth 2.0 provider, stopped on exit."""
    state = Provider()
    app = web.Application()
    app.router.add_post("/token", state.token)
    app.router.add_get("/api", state.api)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    state.url = f"http://{host}:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()
