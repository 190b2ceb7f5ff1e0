"""Scrubbing: what is removed from an exchange before a cassette holds it.

Every value goes through two layers, like tether's logs:

1. by *name*: credential headers (``Authorization``, ``X-API-Key``, ``Cookie``, ``Set-Cookie`` …,
   plus the header and parameter names an auth scheme registers), credential query and form
   parameters (``api_key``, ``token``, ``client_secret`` …), and token fields of JSON bodies
   (``access_token``, ``refresh_token``, ``password`` …) become ``***``;
2. by *value*: every secret tether has resolved (the process-wide registry) is replaced by ``***``
   wherever it appears: in a URL (percent-decoded first), a header, a JSON string, a text body,
   or the bytes of a binary body.

``Filters`` adds the user's own names (``filter_headers``, ``filter_params``, ``filter_fields``).
Scrubbing is deterministic, so a live request scrubbed the same way matches its recording.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from tether._redact import MASK, redact_text, registry

__all__ = ["Filters", "scrub_bytes", "scrub_form", "scrub_headers", "scrub_json", "scrub_text", "scrub_url"]

#: JSON body keys that hold credentials (a response's token fields, a request's password). Narrower
#: than the query-parameter list: a body's ``code`` or ``key`` is usually data, not a credential.
BODY_SECRET_KEYS: Final = frozenset(
    {
        "access_token",
        "refresh_token",
        "id_token",
        "client_secret",
        "password",
        "passwd",
        "secret",
        "api_key",
        "apikey",
        "api-key",
        "token",
        "private_key",
    }
)


@dataclass(frozen=True, slots=True)
class Filters:
    """The user's additions to what is scrubbed (names compared without case)."""

    headers: frozenset[str] = frozenset()
    params: frozenset[str] = frozenset()
    fields: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls, headers: Iterable[str] = (), params: Iterable[str] = (), fields: Iterable[str] = ()
    ) -> Filters:
        for group, names in (
            ("filter_headers", headers),
            ("filter_params", params),
            ("filter_fields", fields),
        ):
            if isinstance(names, str):
                raise TypeError(f"{group} takes a list of names, not the string {names!r}")
        return cls(
            frozenset(h.lower() for h in headers),
            frozenset(p.lower() for p in params),
            frozenset(f.lower() for f in fields),
        )

    def header(self, name: str) -> bool:
        return registry.is_sensitive_header(name) or name.lower() in self.headers

    def param(self, name: str) -> bool:
        return registry.is_sensitive_param(name) or name.lower() in self.params

    def field(self, name: str) -> bool:
        lowered = name.lower()
        return lowered in BODY_SECRET_KEYS or lowered in self.fields or registry.is_sensitive_header(lowered)


def scrub_text(text: str) -> str:
    """``text`` with every registered secret value replaced by ``***``."""
    return redact_text(text)


def scrub_headers(pairs: Iterable[tuple[str, str]], filters: Filters) -> list[tuple[str, str]]:
    """Header pairs with credential headers masked and secret values masked in the rest."""
    return [(name, MASK if filters.header(name) else redact_text(value)) for name, value in pairs]


def _scrub_pairs(pairs: Sequence[tuple[str, str]], filters: Filters) -> list[tuple[str, str]]:
    return [(redact_text(k), MASK if filters.param(k) else redact_text(v)) for k, v in pairs]


def scrub_url(url: str, filters: Filters) -> str:
    """A URL with userinfo, credential parameters and secret values (also percent-encoded) masked.

    The query is rewritten only when something in it was masked, so an untouched URL keeps its
    own encoding.
    """
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    path = parts.path
    decoded_path = unquote(path)
    if redact_text(decoded_path) != decoded_path:
        path = quote(redact_text(decoded_path), safe="/*:@!$&'()+,;=-._~")
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        scrubbed = _scrub_pairs(pairs, filters)
        if scrubbed != pairs:
            query = urlencode(scrubbed, safe="*")
    return redact_text(urlunsplit((parts.scheme, netloc, path, query, parts.fragment)))


def scrub_form(body: str, filters: Filters) -> str:
    """A form-encoded body with credential fields and secret values masked."""
    pairs = parse_qsl(body, keep_blank_values=True)
    scrubbed = _scrub_pairs(pairs, filters)
    return urlencode(scrubbed, safe="*") if scrubbed != pairs else redact_text(body)


def scrub_json(value: Any, filters: Filters) -> Any:
    """A JSON value with credential fields masked and secret values masked in every string."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, child in value.items():
            name = redact_text(str(key))
            out[name] = MASK if filters.field(str(key)) and child is not None else scrub_json(child, filters)
        return out
    if isinstance(value, list):
        return [scrub_json(item, filters) for item in value]
    return value


def scrub_bytes(data: bytes) -> bytes:
    """Binary data with the bytes of every registered secret replaced by ``***``."""
    if not data:
        return data
    text = data.decode("latin-1")  # one byte per character: a lossless view for the search
    masked = redact_text(text)
    return data if masked == text else masked.encode("latin-1")
