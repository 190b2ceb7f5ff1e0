"""Masking of credentials in everything tether prints, logs, raises or exports.

Two layers, so that a secret is masked even where nobody thought to mask it:

1. By *name*: headers (``Authorization``, ``X-API-Key``, ``Cookie`` …) and query or form
   parameters (``api_key``, ``token``, ``client_secret`` …) that look like credentials.
2. By *value*: every secret value tether resolves (``tether.secret`` sources, auth schemes) is
   registered here; any text that contains one has it replaced by ``***``. This catches a key
   echoed in an error body, a URL, or a message built by a third-party library.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"

SENSITIVE_HEADERS: frozenset[str] = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "apikey",
        "x-auth-token",
        "x-access-token",
        "x-csrf-token",
        "x-amz-security-token",
        "private-token",
    }
)

SENSITIVE_PARAMS: frozenset[str] = frozenset(
    {
        "api_key",
        "apikey",
        "api-key",
        "key",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "client_secret",
        "password",
        "passwd",
        "secret",
        "signature",
        "sig",
        "auth",
        "session",
        "code",
        "assertion",
    }
)

# Shorter values would mask ordinary words; real credentials are longer than this.
_MIN_SECRET_LENGTH = 4


class _SecretRegistry:
    """The process-wide set of secret values to mask wherever they appear."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None
        self._extra_headers: frozenset[str] = frozenset()
        self._extra_params: frozenset[str] = frozenset()

    def add(self, value: str) -> None:
        if len(value) < _MIN_SECRET_LENGTH or value in self._values:
            return
        with self._lock:
            self._values = self._values | {value}
            # Longest first so that a secret containing another is masked whole.
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def add_names(self, *, headers: Iterable[str] = (), params: Iterable[str] = ()) -> None:
        with self._lock:
            self._extra_headers = self._extra_headers | {h.lower() for h in headers}
            self._extra_params = self._extra_params | {p.lower() for p in params}

    def is_sensitive_header(self, name: str) -> bool:
        lowered = name.lower()
        return lowered in SENSITIVE_HEADERS or lowered in self._extra_headers

    def is_sensitive_param(self, name: str) -> bool:
        lowered = name.lower()
        return lowered in SENSITIVE_PARAMS or lowered in self._extra_params

    def mask(self, text: str) -> str:
        pattern = self._pattern
        if pattern is None or not text:
            return text
        return pattern.sub(MASK, text)

    @contextmanager
    def isolated(self) -> Iterator[None]:
        """Restore the registry afterwards (for tests)."""
        saved = (self._values, self._pattern, self._extra_headers, self._extra_params)
        try:
            yield
        finally:
            with self._lock:
                self._values, self._pattern, self._extra_headers, self._extra_params = saved


registry = _SecretRegistry()


def register_secret(value: str) -> None:
    """Mask ``value`` from now on in every log line, event, exception and repr tether makes."""
    registry.add(value)


def redact_text(text: str) -> str:
    """``text`` with every registered secret value replaced by ``***``."""
    return registry.mask(text)


_URL_IN_TEXT = re.compile(r"""https?://[^\s'"<>]+""")


def scrub(text: str) -> str:
    """Free text (a backend's error message) with URLs redacted and secret values masked."""
    if "://" in text:
        text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
    return redact_text(text)


def redact_url(url: str) -> str:
    """A URL with credential-like query parameters, userinfo and secret values masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(registry.is_sensitive_param(k) for k, _ in pairs):
            pairs = [(k, MASK if registry.is_sensitive_param(k) else v) for k, v in pairs]
            query = urlencode(pairs, safe="*")
    return redact_text(urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)))


def redact_headers(headers: Iterable[tuple[str, str]] | Mapping[str, str]) -> dict[str, str]:
    """Headers as a dict with credential headers masked (and secret values masked in the rest)."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, str] = {}
    for name, value in items:
        out[name] = MASK if registry.is_sensitive_header(name) else redact_text(value)
    return out


def redact_value(key: str, value: Any) -> Any:
    """Mask a structured value for logs and events: by key name, by URL shape, by secret value."""
    lowered = key.lower()
    if registry.is_sensitive_param(lowered) or registry.is_sensitive_header(lowered):
        return MASK
    if isinstance(value, str):
        if lowered in ("url", "next_url", "location") or value.startswith(("http://", "https://")):
            return redact_url(value)
        return redact_text(value)
    if isinstance(value, Mapping):
        return {str(k): redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(key, v) for v in value]
    if isinstance(value, BaseException):
        return redact_text(f"{type(value).__name__}: {value}")
    return value
