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
A value masked by name is learned and masked by value in everything after it (``Scrubber``).
Scrubbing a request is deterministic, so a live request scrubbed the same way matches its
recording.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from tether._redact import MASK, SENSITIVE_PARAMS, redact_text, registry

__all__ = ["BODY_SECRET_KEYS", "Filters", "Scrubber"]

#: JSON body keys that hold credentials (a response's token fields, a request's password). Narrower
#: than the query-parameter list: a body's ``code`` or ``key`` is usually data, not a credential.
BODY_SECRET_KEYS: Final = (SENSITIVE_PARAMS - {"key", "code", "session", "auth", "signature", "sig"}) | {
    "private_key"
}


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


#: Query and form parameters whose values are credentials for sure (learned as secrets).
_CREDENTIAL_PARAMS: Final = BODY_SECRET_KEYS | {"key_secret", "client_assertion"}
_MIN_LEARNED: Final = 4


class Scrubber:
    """Scrubs values for one cassette. Every value masked by name is also *learned*: masked by
    value wherever else it shows up (a password echoed inside a JSON string, a token in a URL)."""

    def __init__(self, filters: Filters) -> None:
        self.filters = filters
        self._learned: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def learn(self, value: str) -> None:
        """Mask ``value`` everywhere from now on (the credential part of ``Bearer x`` too)."""
        for piece in (value, value.split(" ", 1)[-1]):
            if len(piece) >= _MIN_LEARNED and piece != MASK and piece not in self._learned:
                self._learned.add(piece)
                ordered = sorted(self._learned, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def text(self, text: str) -> str:
        """``text`` with registered secrets and learned values replaced by ``***``."""
        text = redact_text(text)
        pattern = self._pattern
        return pattern.sub(MASK, text) if pattern is not None and text else text

    def headers(self, pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """Header pairs with credential headers masked and secret values masked in the rest."""
        out: list[tuple[str, str]] = []
        for name, value in pairs:
            if self.filters.header(name):
                self.learn(value)
                out.append((name, MASK))
            else:
                out.append((name, value))
        return [(name, self.text(value)) for name, value in out]

    def _pairs(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for key, value in pairs:
            if self.filters.param(key):
                if key.lower() in _CREDENTIAL_PARAMS or key.lower() in self.filters.params:
                    self.learn(value)
                out.append((key, MASK))
            else:
                out.append((key, value))
        return [(self.text(k), v if v == MASK else self.text(v)) for k, v in out]

    def url(self, url: str) -> str:
        """A URL with userinfo, credential parameters and secret values (also percent-encoded)
        masked. The query is rewritten only when something in it was masked."""
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            self.learn(unquote(userinfo.partition(":")[2]))
            netloc = f"{MASK}@{host}"
        path = parts.path
        decoded_path = unquote(path)
        if self.text(decoded_path) != decoded_path:
            path = quote(self.text(decoded_path), safe="/*:@!$&'()+,;=-._~")
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            scrubbed = self._pairs(pairs)
            if scrubbed != pairs:
                query = urlencode(scrubbed, safe="*")
        return self.text(urlunsplit((parts.scheme, netloc, path, query, parts.fragment)))

    def form(self, body: str) -> str:
        """A form-encoded body with credential fields and secret values masked."""
        pairs = parse_qsl(body, keep_blank_values=True)
        scrubbed = self._pairs(pairs)
        return urlencode(scrubbed, safe="*") if scrubbed != pairs else self.text(body)

    def json(self, value: Any) -> Any:
        """A JSON value with credential fields masked and secret values masked in every string."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for key, child in value.items():
                if self.filters.field(str(key)) and child is not None:
                    if isinstance(child, str | int | float) and not isinstance(child, bool):
                        self.learn(str(child))
                    out[self.text(str(key))] = MASK
                else:
                    out[self.text(str(key))] = child
            return {k: v if v == MASK else self.json(v) for k, v in out.items()}
        if isinstance(value, list):
            return [self.json(item) for item in value]
        return value

    def bytes(self, data: bytes) -> bytes:
        """Binary data with the bytes of every secret replaced by ``***``."""
        if not data:
            return data
        text = data.decode("latin-1")  # one byte per character: a lossless view for the search
        masked = self.text(text)
        return data if masked == text else masked.encode("latin-1")
