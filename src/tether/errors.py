"""The tether error tree.

Every error tether raises is a ``TetherError``. Backend errors (aiohttp, httpx2, redis, sqlite3)
are translated once, at the boundary where they happen, with ``raise ... from exc``.

::

    TetherError                         .error_code  retried by Retry?
    ├── ConnectionError                 CONN_001     yes
    ├── TimeoutError                    TIMEOUT_001  yes
    ├── ResponseError                   API_001      (a response that could not be read: size, decoding)
    ├── AuthenticationError             AUTH_001     refresh once (auth policy), then no
    ├── RateLimitExceeded               RATE_001     yes, after the wait the server asked for
    │   └── RateLimitRejected           RATE_001     no: rejected locally, never sent
    ├── ValidationError                 VALID_001    no (request or response validation, HTTP 400/422)
    │   └── RequestValidationError      VALID_001    no: rejected before sending
    ├── APIError                        API_001      5xx yes; other statuses no
    ├── NotFoundError                   NOTFOUND_001 no
    ├── Rejected  (never reached the network; nothing was sent)
    │   ├── CircuitOpenError            CIRCUIT_001  no (fallback)
    │   ├── BulkheadFull                BULKHEAD_001 no
    │   ├── BudgetExceeded              BUDGET_001   no
    │   ├── RightsViolationError        RIGHTS_001   no
    │   ├── BlockedDestinationError     SSRF_001     no
    │   ├── CassetteError               CASSETTE_001 no: a cassette has no recorded answer
    │   ├── RateLimitRejected           (also a RateLimitExceeded)
    │   └── RequestValidationError      (also a ValidationError)
    ├── SpecError                       SPEC_001     no: a spec or configuration problem
    ├── StateStoreError                 STATE_001    no: the shared state store failed
    └── JobError                        JOB_001      the bulk job cannot start or go on

Every error carries ``error_code``, ``service``, ``endpoint``, ``request_id``, ``retry_after``
(seconds, when known), ``status_code`` and ``response`` (when an HTTP response caused it), and
``title`` / ``detail`` / ``type`` (filled from an RFC 9457 ``application/problem+json`` body).
``to_error_response()`` gives the REQ-001 ``ErrorResponse`` shape.

Messages never contain secrets: they are built from redacted values only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from tether._redact import redact_url, scrub

if TYPE_CHECKING:
    import httpx2

__all__ = [
    "APIError",
    "AuthenticationError",
    "BackendError",
    "BlockedDestinationError",
    "BudgetExceeded",
    "BulkheadFull",
    "CassetteError",
    "CircuitOpenError",
    "ConnectionError",
    "JobError",
    "NotFoundError",
    "RateLimitExceeded",
    "RateLimitRejected",
    "Rejected",
    "RequestValidationError",
    "ResponseError",
    "RightsViolationError",
    "SpecError",
    "StateStoreError",
    "TetherError",
    "TimeoutError",
    "ValidationError",
    "backend_cause",
    "error_for_status",
]

# The error_type names of the REQ-001 ErrorResponse; other errors report their nearest kin.
_SEED_ERROR_TYPES = frozenset(
    {
        "ConnectionError",
        "AuthenticationError",
        "RateLimitExceeded",
        "ValidationError",
        "APIError",
        "TimeoutError",
        "CircuitOpenError",
        "NotFoundError",
    }
)


class TetherError(Exception):
    """Base of every error tether raises."""

    error_code: ClassVar[str] = "TETHER_001"
    #: The REQ-001 ``error_type`` this error reports as.
    error_type: ClassVar[str] = "APIError"

    def __init__(
        self,
        message: str,
        *,
        service: str | None = None,
        endpoint: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        response: httpx2.Response | None = None,
        status_code: int | None = None,
        title: str | None = None,
        detail: str | None = None,
        type: str | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        self.message = scrub(message)
        super().__init__(self.message)
        self.service = service
        self.endpoint = endpoint
        self.request_id = request_id
        self.retry_after = retry_after
        self.response = response
        self.status_code = (
            status_code
            if status_code is not None
            else (response.status_code if response is not None else None)
        )
        self.title = title
        self.detail = scrub(detail) if detail else detail
        self.type = type
        self.details = details
        self.timestamp = datetime.now(UTC)

    def __str__(self) -> str:
        parts = [self.message]
        where = ".".join(p for p in (self.service, self.endpoint) if p)
        if where:
            parts.append(f"[{where}]")
        if self.detail and self.detail not in self.message:
            parts.append(f"- {self.detail}")
        return " ".join(parts)

    def __repr__(self) -> str:
        fields = [f"{self.message!r}", f"error_code={self.error_code!r}"]
        for name in ("service", "endpoint", "status_code", "retry_after", "request_id"):
            value = getattr(self, name)
            if value is not None:
                fields.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(fields)})"

    def to_error_response(self) -> dict[str, Any]:
        """The REQ-001 ``ErrorResponse`` shape, as a plain dict (JSON-ready)."""
        error_type = self.error_type if self.error_type in _SEED_ERROR_TYPES else "APIError"
        return {
            "error_code": self.error_code,
            "error_message": str(self),
            "error_type": error_type,
            "timestamp": self.timestamp.isoformat(),
            "request_id": self.request_id or "",
            "retry_after": None if self.retry_after is None else int(-(-self.retry_after // 1)),
            "details": self.details,
        }


class Rejected(TetherError):
    """Base of rejections decided locally: the request never reached the network."""

    error_code = "REJECTED_001"


class ConnectionError(TetherError):
    """The connection could not be made or was lost (refused, reset, DNS, TLS)."""

    error_code = "CONN_001"
    error_type = "ConnectionError"


class TimeoutError(TetherError):
    """A connect, read, write, pool, attempt or total deadline ran out.

    ``phase`` says which: ``connect``, ``read``, ``write``, ``pool``, ``attempt`` or ``total``.
    """

    error_code = "TIMEOUT_001"
    error_type = "TimeoutError"

    def __init__(self, message: str, *, phase: str = "read", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.phase = phase


class ResponseError(TetherError):
    """The response could not be read: too large, malformed, truncated, or badly encoded.

    ``reason`` is one of ``too_large``, ``decoding``, ``truncated``, ``protocol``.
    """

    error_code = "API_001"
    error_type = "APIError"

    #: Reasons a new attempt may cure (the body broke off, the framing was bad); the others
    #: (too large, a bad encoding, a redirect or pagination loop, an unreplayable body) repeat.
    TRANSIENT_REASONS: ClassVar[frozenset[str]] = frozenset({"truncated", "protocol"})

    def __init__(self, message: str, *, reason: str = "protocol", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.reason = reason


class AuthenticationError(TetherError):
    """Credentials were refused (401/403) or could not be obtained (token endpoint, secret source)."""

    error_code = "AUTH_001"
    error_type = "AuthenticationError"


class RateLimitExceeded(TetherError):
    """The rate limit was hit: the server said 429, or the wait it asked for is too long."""

    error_code = "RATE_001"
    error_type = "RateLimitExceeded"


class ValidationError(TetherError):
    """A request or response did not match its schema, or the server answered 400/422."""

    error_code = "VALID_001"
    error_type = "ValidationError"


class RequestValidationError(ValidationError, Rejected):
    """The request was invalid and was not sent. ``parameter`` names what was wrong."""

    error_code = "VALID_001"
    error_type = "ValidationError"

    def __init__(self, message: str, *, parameter: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.parameter = parameter


class RateLimitRejected(RateLimitExceeded, Rejected):
    """The local rate limiter refused the call (queue full, or strategy ``reject``); nothing was sent."""

    error_code = "RATE_001"
    error_type = "RateLimitExceeded"


class APIError(TetherError):
    """The API answered with an error status (5xx, or a 4xx with no more specific error)."""

    error_code = "API_001"
    error_type = "APIError"


class NotFoundError(TetherError):
    """The API answered 404."""

    error_code = "NOTFOUND_001"
    error_type = "NotFoundError"


class CircuitOpenError(Rejected):
    """The circuit breaker is open: failing fast. ``retry_after`` is the time until half-open."""

    error_code = "CIRCUIT_001"
    error_type = "CircuitOpenError"


class BulkheadFull(Rejected):
    """Every concurrency slot is taken and the wait queue is full."""

    error_code = "BULKHEAD_001"


class BudgetExceeded(Rejected):
    """A cost or bandwidth budget with ``hard_stop`` is spent."""

    error_code = "BUDGET_001"


class RightsViolationError(Rejected):
    """The integration's rights profile does not grant a right the endpoint requires."""

    error_code = "RIGHTS_001"


class BlockedDestinationError(Rejected):
    """The destination guard refused a private, loopback or link-local address."""

    error_code = "SSRF_001"
    error_type = "ConnectionError"


class CassetteError(Rejected):
    """A cassette could not answer: no recorded exchange matches the request (the message names
    the closest recorded one), or the cassette file is missing or unreadable. Nothing was sent."""

    error_code = "CASSETTE_001"


class SpecError(TetherError):
    """A spec or configuration is invalid. ``location`` is ``file:line:column`` when known."""

    error_code = "SPEC_001"
    error_type = "ValidationError"

    def __init__(self, message: str, *, location: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.location = location

    def __str__(self) -> str:
        base = super().__str__()
        return f"{self.location}: {base}" if self.location else base


class StateStoreError(TetherError):
    """The shared state store (SQLite, Redis) failed."""

    error_code = "STATE_001"


class JobError(TetherError):
    """The bulk job (``tether fetch``) cannot start or go on: its output or state file is
    unusable, or it stopped on purpose (``reason``: ``max_failures``, ``upstream_down``)."""

    error_code = "JOB_001"

    def __init__(self, message: str, *, reason: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.reason = reason


# --- causes from backends ------------------------------------------------------------------------


class BackendError(Exception):
    """A backend's exception (aiohttp, httpx2, redis, sqlite3) as the cause of a tether error.

    Backend messages are outside our control and may quote a URL with a key in it or a server's
    reply; this keeps the backend's type name and a scrubbed message, so ``raise ... from`` keeps
    the story in tracebacks without carrying a secret. ``backend_type`` names the original type.
    """

    def __init__(self, backend_type: str, message: str) -> None:
        super().__init__(f"{backend_type}: {message}" if message else backend_type)
        self.backend_type = backend_type


def backend_cause(exc: BaseException) -> BackendError:
    """The scrubbed stand-in for ``exc`` to raise a tether error ``from``."""
    kind = type(exc)
    return BackendError(f"{kind.__module__}.{kind.__qualname__}", scrub(str(exc)))


# --- mapping HTTP error responses ---------------------------------------------------------------

_PROBLEM_TYPES = ("application/problem+json",)
_BODY_PREVIEW = 512


def _problem_fields(response: httpx2.Response) -> dict[str, Any]:
    """Title, detail and type from an RFC 9457 problem body, when the response carries one."""
    content_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type not in _PROBLEM_TYPES and not content_type.endswith("+json"):
        return {}
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(body, Mapping):
        return {}
    out: dict[str, Any] = {}
    for key in ("title", "detail", "type"):
        value = body.get(key)
        if isinstance(value, str):
            out[key] = value
    return out


def _status_class(status: int) -> type[TetherError]:
    if status == 404:
        return NotFoundError
    if status in (401, 403):
        return AuthenticationError
    if status == 429:
        return RateLimitExceeded
    if status in (400, 422):
        return ValidationError
    return APIError


def error_for_status(
    response: httpx2.Response,
    *,
    service: str | None = None,
    endpoint: str | None = None,
    request_id: str | None = None,
    retry_after: float | None = None,
) -> TetherError:
    """The typed error for an HTTP error response (whose body has been read)."""
    status = response.status_code
    cls = _status_class(status)
    problem = _problem_fields(response)
    try:
        method, url = response.request.method, redact_url(str(response.request.url))
    except RuntimeError:  # a response built without a request
        method, url = "", ""
    reason = response.reason_phrase or ""
    message = f"HTTP {status} {reason}".rstrip() + (f" for {method} {url}" if url else "")
    if problem.get("title"):
        message += f": {problem['title']}"
    return cls(
        message,
        service=service,
        endpoint=endpoint,
        request_id=request_id,
        retry_after=retry_after,
        response=response,
        title=problem.get("title"),
        detail=problem.get("detail"),
        type=problem.get("type"),
    )
