"""Backend errors (aiohttp, httpx2/httpcore2, OS) translated to ``tether.errors``, once, here.

The table in ``docs/decisions/0001-http-engine.md`` is the contract. In short:

- nothing came back (refused, DNS, TLS, reset or closed before the first response byte)
  → ``ConnectionError``;
- a deadline ran out → ``TimeoutError`` with ``phase`` ``connect`` / ``pool`` / ``read`` / ``write``;
- a response started but its body ended early → ``ResponseError(reason="truncated")``;
- the bytes were not valid HTTP (status line, header, chunk framing) → ``ResponseError(reason="protocol")``.

Messages name the method and the redacted URL and nothing else from the request.
"""

from __future__ import annotations

import asyncio
from typing import Final, Literal

import aiohttp
import httpx2

from tether._redact import redact_url
from tether.errors import ConnectionError, RequestValidationError, ResponseError, TetherError, TimeoutError
from tether.transport._decoding import DecodingFailed

__all__ = ["body_too_large", "decoding_error", "describe", "map_aiohttp_error", "map_httpx2_error"]

Stage = Literal["send", "body"]

# aiohttp's payload errors say why the body is incomplete only in their text.
_TRUNCATION_HINTS: Final = ("not enough data", "payload is not completed", "connection lost")


def describe(request: httpx2.Request) -> str:
    """``METHOD url`` with credentials masked: what every transport error message names."""
    return f"{request.method} {redact_url(str(request.url))}"


def body_too_large(request: httpx2.Request, limit: int, *, declared: int | None = None) -> ResponseError:
    if declared is not None:
        message = (
            f"response to {describe(request)} declares Content-Length {declared}, "
            f"above max_response_size ({limit} bytes)"
        )
    else:
        message = f"response body of {describe(request)} exceeds max_response_size ({limit} bytes)"
    return ResponseError(message, reason="too_large")


def decoding_error(request: httpx2.Request, exc: DecodingFailed) -> ResponseError:
    return ResponseError(f"{exc.detail} in the response to {describe(request)}", reason=exc.reason)


def _timeout(request: httpx2.Request, phase: str) -> TimeoutError:
    what = {
        "connect": "connecting to",
        "pool": "waiting for a free connection to",
        "read": "reading the response of",
        "write": "sending the request body of",
    }[phase]
    return TimeoutError(f"{phase} timeout {what} {describe(request)}", phase=phase)


def _os_reason(exc: BaseException) -> str:
    os_error = getattr(exc, "os_error", None)
    source = os_error if isinstance(os_error, OSError) else exc
    if isinstance(source, OSError) and source.strerror:
        return source.strerror
    return type(exc).__name__


def map_aiohttp_error(
    exc: BaseException, request: httpx2.Request, *, stage: Stage, body_pending: bool = False
) -> TetherError:
    """The tether error for an aiohttp (or OS / asyncio) error raised at ``stage``.

    ``stage`` is ``send`` until the response head has arrived, ``body`` while the body is read.
    ``body_pending`` says the request body was still being sent (a stall there is a write timeout).
    """
    if isinstance(exc, TetherError):
        return exc
    where = describe(request)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return _timeout(request, "connect")
    if isinstance(exc, aiohttp.ServerTimeoutError | asyncio.TimeoutError):
        return _timeout(request, "write" if body_pending else "read")
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return ConnectionError(f"could not resolve the host of {where} ({_os_reason(exc)})")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return ConnectionError(f"TLS certificate verification failed for {where}")
    if isinstance(exc, aiohttp.ClientConnectorSSLError | aiohttp.ClientSSLError):
        return ConnectionError(f"TLS handshake failed for {where}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ConnectionError(f"could not connect for {where} ({_os_reason(exc)})")
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return RequestValidationError(f"cannot send {where}: not a valid http(s) URL", parameter="url")
    if isinstance(exc, aiohttp.ClientPayloadError):
        text = f"{exc} {exc.__cause__ or ''}".lower()
        if any(hint in text for hint in _TRUNCATION_HINTS):
            return ResponseError(f"response body of {where} ended early (truncated)", reason="truncated")
        return ResponseError(f"malformed response body from {where} (bad framing)", reason="protocol")
    if isinstance(exc, aiohttp.ClientResponseError):
        # aiohttp raises this for an unparsable status line or header.
        return ResponseError(f"malformed response from {where}: {exc.message}", reason="protocol")
    if stage == "body":
        if isinstance(exc, aiohttp.ClientError | OSError):
            return ResponseError(
                f"connection lost while reading the response body of {where} (truncated)",
                reason="truncated",
            )
    elif isinstance(exc, aiohttp.ServerDisconnectedError):
        return ConnectionError(f"server closed the connection without a response to {where}")
    elif isinstance(exc, aiohttp.ClientOSError | OSError):
        return ConnectionError(f"connection failed for {where} ({_os_reason(exc)})")
    if isinstance(exc, aiohttp.ClientError):
        return ConnectionError(f"request {where} failed ({type(exc).__name__})")
    return ConnectionError(f"request {where} failed ({type(exc).__name__})")


def map_httpx2_error(exc: BaseException, request: httpx2.Request, *, stage: Stage) -> TetherError:
    """The tether error for an httpx2 transport error raised at ``stage`` (HTTP/2 engine)."""
    if isinstance(exc, TetherError):
        return exc
    where = describe(request)
    if isinstance(exc, httpx2.ConnectTimeout):
        return _timeout(request, "connect")
    if isinstance(exc, httpx2.PoolTimeout):
        return _timeout(request, "pool")
    if isinstance(exc, httpx2.WriteTimeout):
        return _timeout(request, "write")
    if isinstance(exc, httpx2.TimeoutException | asyncio.TimeoutError):
        return _timeout(request, "read")
    if isinstance(exc, httpx2.ConnectError):
        reason = "TLS" if "ssl" in str(exc).lower() or "certificate" in str(exc).lower() else "connect"
        if reason == "TLS":
            return ConnectionError(f"TLS handshake or certificate verification failed for {where}")
        return ConnectionError(f"could not connect for {where}")
    if isinstance(exc, httpx2.UnsupportedProtocol):
        return RequestValidationError(f"cannot send {where}: not a valid http(s) URL", parameter="url")
    if isinstance(exc, httpx2.RemoteProtocolError):
        text = str(exc).lower()
        if stage == "send" and "without sending" in text:
            return ConnectionError(f"server closed the connection without a response to {where}")
        if stage == "body" and ("incomplete" in text or "without sending complete" in text):
            return ResponseError(f"response body of {where} ended early (truncated)", reason="truncated")
        return ResponseError(f"malformed response from {where} (protocol error)", reason="protocol")
    if isinstance(exc, httpx2.LocalProtocolError):
        return ResponseError(f"protocol error sending {where}", reason="protocol")
    if stage == "body" and isinstance(exc, httpx2.NetworkError | OSError):
        return ResponseError(
            f"connection lost while reading the response body of {where} (truncated)", reason="truncated"
        )
    return ConnectionError(f"request {where} failed ({type(exc).__name__})")
