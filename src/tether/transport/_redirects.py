"""Following redirects: a bounded, origin-aware loop over the engine.

Rules (RFC 9110 §15.4, and the security rules of DESIGN 4 "auth"):

- at most ``EngineOptions.max_redirects`` hops, then ``ResponseError(reason="too_many_redirects")``;
- 301/302 turn a method other than GET/HEAD into GET without a body; 303 does so for every method
  but HEAD; 307/308 keep method and body, which must be replayable bytes
  (``ResponseError(reason="unreplayable_body")`` otherwise);
- never from https to http (``ResponseError(reason="insecure_redirect")``), never to a non-http(s)
  scheme (``reason="protocol"``);
- when the origin (scheme, host, port) changes, credential headers are removed before the request
  leaves (``Authorization``, ``Proxy-Authorization``, ``Cookie`` and every header the redaction
  registry calls sensitive) and ``auth.credentials_stripped`` is emitted; each hop emits
  ``redirect.followed``.

The final response's ``.request`` is the last request sent. The URLs redirected from are kept in
``response.extensions["tether.redirects"]`` (a ``RedirectHistory``, which prints redacted).
"""

from __future__ import annotations

from typing import Final

import httpx2

from tether import events as ev
from tether._context import CONTEXT_KEY
from tether._redact import redact_url, registry
from tether.errors import ResponseError
from tether.events import EventBus
from tether.transport._errors import describe
from tether.transport._options import EngineOptions

__all__ = ["HISTORY_KEY", "RedirectHistory", "send_following_redirects"]

#: ``response.extensions`` key of the redirect history.
HISTORY_KEY: Final = "tether.redirects"
REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
_ALWAYS_STRIPPED: Final = frozenset({"authorization", "proxy-authorization", "cookie"})
_BODY_HEADERS: Final = ("content-length", "content-type", "transfer-encoding", "content-encoding")


class RedirectHistory(list[str]):
    """The URLs a call was redirected from, in order. Printing it masks credentials."""

    def __repr__(self) -> str:
        return repr([redact_url(url) for url in self])

    __str__ = __repr__


async def send_following_redirects(
    transport: httpx2.AsyncBaseTransport,
    request: httpx2.Request,
    options: EngineOptions,
    events: EventBus,
) -> httpx2.Response:
    """Send ``request`` through ``transport``, following redirects by the rules above."""
    ctx = request.extensions.get(CONTEXT_KEY)
    endpoint: str | None = getattr(ctx, "endpoint", None)
    history = RedirectHistory()
    current = request
    while True:
        response = await transport.handle_async_request(current)
        response.request = current
        location = response.headers.get("location")
        if response.status_code not in REDIRECT_STATUSES or location is None:
            if history:
                response.extensions[HISTORY_KEY] = history
            return response
        try:
            if len(history) >= options.max_redirects:
                raise ResponseError(
                    f"too many redirects: {describe(request)} was redirected more than "
                    f"{options.max_redirects} times",
                    reason="too_many_redirects",
                )
            following = _next_request(current, response.status_code, location, events, endpoint)
        finally:
            await response.aclose()
        history.append(str(current.url))
        current = following


def _next_request(
    current: httpx2.Request, status: int, location: str, events: EventBus, endpoint: str | None
) -> httpx2.Request:
    where = describe(current)
    try:
        target = current.url.join(location)
    except (httpx2.InvalidURL, ValueError):
        raise ResponseError(
            f"redirect from {where} has an invalid Location header", reason="protocol"
        ) from None
    if target.scheme not in ("http", "https") or not target.host:
        raise ResponseError(
            f"redirect from {where} points to an unsupported URL ({redact_url(str(target))})",
            reason="protocol",
        )
    if current.url.scheme == "https" and target.scheme == "http":
        raise ResponseError(
            f"refused a redirect from https to http: {where} -> {redact_url(str(target))}",
            reason="insecure_redirect",
        )

    method = current.method
    headers = current.headers.copy()
    headers.pop("host", None)  # httpx2 sets the new one from the URL
    body: bytes | None = None
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method not in ("GET", "HEAD")):
        method = "GET"
        for name in _BODY_HEADERS:
            headers.pop(name, None)
    else:
        body = _replayable_body(current, status)

    if target.origin != current.url.origin:
        stripped = [
            name for name in headers if name.lower() in _ALWAYS_STRIPPED or registry.is_sensitive_header(name)
        ]
        for name in stripped:
            headers.pop(name, None)
        if stripped and events.active:
            events.emit(
                ev.CREDENTIALS_STRIPPED,
                endpoint=endpoint,
                from_url=str(current.url),
                url=str(target),
                headers=sorted(stripped),
            )
    if events.active:
        events.emit(
            ev.REDIRECT_FOLLOWED,
            endpoint=endpoint,
            status=status,
            method=method,
            from_url=str(current.url),
            url=str(target),
        )
    return httpx2.Request(method, target, headers=headers, content=body, extensions=current.extensions)


def _replayable_body(request: httpx2.Request, status: int) -> bytes | None:
    stream = request.stream
    if isinstance(stream, httpx2.ByteStream):
        try:
            content = request.content
        except httpx2.RequestNotRead:
            content = b"".join(stream)
        return content or None
    raise ResponseError(
        f"cannot follow the {status} redirect of {describe(request)}: its body was a stream and "
        "cannot be sent again",
        reason="unreplayable_body",
    )
