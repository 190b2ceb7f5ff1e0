"""Turning a failed call into a ``DeadLetter`` without keeping a secret.

What is removed before anything is stored:

- headers that carry credentials: every name ``tether._redact`` treats as sensitive
  (``Authorization``, ``X-API-Key``, ``Cookie`` …, plus the names auth schemes register), the
  header names the call's auth scheme used (``ctx.extras["auth.credential_headers"]``), and any
  header whose value contains a registered secret value;
- query parameters that carry credentials (``api_key``, ``token`` … and the scheme's names), and
  any whose value contains a registered secret; userinfo (``user:pass@``) in the URL;
- hop-by-hop and framing headers (``Host``, ``Content-Length``, ``Transfer-Encoding``,
  ``Connection``): the replay recomputes them.

A body that contains a registered secret value is not stored at all (``SecretInBody``): it cannot
be replayed without the secret, and the secret must not be written to disk.

``credential_ref`` names the credentials (``"<service>@<origin>"``), never their value: on replay
the client's auth scheme signs the request again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Final

import httpx2

from tether._context import CallContext
from tether._redact import redact_text, registry
from tether.dlq._protocol import StoredRequest

__all__ = [
    "MARK_KEY",
    "REPLAY_KEY",
    "SecretInBody",
    "capture_request",
    "credential_ref",
    "entry_id_for",
    "is_marked",
    "mark_dlq",
    "unit_of_work",
]

#: ``ctx.extras`` key: ``True`` / ``False`` marks one call for the DLQ (or keeps it out).
MARK_KEY: Final = "dlq"
#: ``ctx.extras`` key set on a replay (the entry id): fallback steps and the DLQ stay out of it.
REPLAY_KEY: Final = "dlq.replay"

# The auth stage's ctx.extras keys (tether.auth._base.EXTRA_*), read here without importing auth.
_AUTH_ORIGIN: Final = "auth.origin"
_AUTH_HEADERS: Final = "auth.credential_headers"
_AUTH_PARAMS: Final = "auth.credential_params"

_DROPPED_HEADERS: Final = frozenset({"host", "content-length", "transfer-encoding", "connection"})


class SecretInBody(ValueError):
    """The request body holds a registered secret value: it is not written to the DLQ."""


def mark_dlq(request: httpx2.Request, on: bool = True) -> httpx2.Request:
    """Mark one call (a request from ``client.build_request``) for the DLQ, or keep it out.

    Returns the request, so ``await client.send(mark_dlq(client.build_request(...)))`` reads well.
    """
    ctx = request.extensions.get("tether")
    if not isinstance(ctx, CallContext):
        raise LookupError("mark_dlq needs a request made by tether.Client.build_request")
    ctx.extras[MARK_KEY] = bool(on)
    return request


_UNIT: ContextVar[str | None] = ContextVar("tether.dlq.unit_of_work", default=None)


@contextmanager
def unit_of_work(key: str) -> Iterator[str]:
    """Name the unit of work the calls made inside belong to (``"job:…|row:…"``).

    A call parked in the DLQ inside it gets an entry id derived from ``key``, so however many of
    the unit's calls fail (retried rows, waits for an open circuit, a resumed job), the unit is
    parked once: ``DLQBackend.add`` of an id already stored changes nothing. Context-local
    (``contextvars``): concurrent tasks each keep their own.
    """
    token = _UNIT.set(key)
    try:
        yield key
    finally:
        _UNIT.reset(token)


def entry_id_for(key: str) -> str:
    """The dead-letter id of the unit of work ``key`` (32 hex characters, like ``new_entry_id``)."""
    return hashlib.sha256(b"tether.dlq.unit\0" + key.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def current_unit() -> str | None:
    """The unit of work the current context is in (``unit_of_work``), else ``None``."""
    return _UNIT.get()


def is_marked(ctx: CallContext) -> bool | None:
    """The per-call mark: ``True``/``False`` when the caller set one, ``None`` otherwise."""
    mark = ctx.extras.get(MARK_KEY)
    return None if mark is None else bool(mark)


def _holds_secret(text: str) -> bool:
    return redact_text(text) != text


def capture_request(request: httpx2.Request, ctx: CallContext | None) -> StoredRequest:
    """The request as the DLQ keeps it (see the module docstring).

    Raises ``httpx2.RequestNotRead`` for a streamed body (nothing to store) and ``SecretInBody``.
    """
    scheme_headers: set[str] = set()
    scheme_params: set[str] = set()
    if ctx is not None:
        scheme_headers = {h.lower() for h in ctx.extras.get(_AUTH_HEADERS, ())}
        scheme_params = {p.lower() for p in ctx.extras.get(_AUTH_PARAMS, ())}
    headers = tuple(
        (name, value)
        for name, value in request.headers.multi_items()
        if name.lower() not in _DROPPED_HEADERS
        and name.lower() not in scheme_headers
        and not registry.is_sensitive_header(name)
        and not _holds_secret(value)
    )
    url = request.url
    if url.userinfo:
        url = url.copy_with(userinfo=b"")
    params = [
        (k, v)
        for k, v in url.params.multi_items()
        if k.lower() not in scheme_params
        and not registry.is_sensitive_param(k)
        and not _holds_secret(k)
        and not _holds_secret(v)
    ]
    if len(params) != len(url.params.multi_items()):
        url = url.copy_with(params=httpx2.QueryParams(tuple(params))) if params else url.copy_with(query=None)
    body = request.content
    if body and _holds_secret(body.decode("utf-8", errors="replace")):
        raise SecretInBody("the request body holds a credential; it is not written to the DLQ")
    return StoredRequest(method=request.method, url=str(url), headers=headers, body=body)


def credential_ref(ctx: CallContext | None, service: str) -> str | None:
    """Which credentials signed the call (``"<service>@<origin>"``), never their value.

    ``None`` when no auth scheme signed it (no auth configured, or the call failed before the
    auth stage, e.g. at an open breaker).
    """
    origin = ctx.extras.get(_AUTH_ORIGIN) if ctx is not None else None
    return f"{service}@{origin}" if origin else None
