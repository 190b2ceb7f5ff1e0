"""What a spec-driven call returns: ``Result`` (data, raw response, meta) and ``Outcome`` (one
input of a batch, succeeded or failed).

Both are frozen. Their reprs are safe to log: URLs are redacted, data and inputs are summarised
with credential-looking values masked, and a secret value tether knows about never appears.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

import httpx2

from tether._redact import redact_text, redact_url, redact_value
from tether.pipeline._headers import RateLimitSnapshot

__all__ = ["Meta", "Outcome", "Result"]

_PREVIEW: Final = 120


def _summary(value: Any) -> str:
    """A short, masked description of a value: its shape, never a long or secret text."""
    if isinstance(value, Mapping):
        keys = list(value)[:6]
        more = ", …" if len(value) > len(keys) else ""
        return f"<dict {len(value)} keys: {', '.join(map(str, keys))}{more}>"
    if isinstance(value, list | tuple):
        return f"<{type(value).__name__} of {len(value)}>"
    text = repr(value)
    if len(text) > _PREVIEW:
        text = text[: _PREVIEW - 1] + "…"
    return redact_text(text)


@dataclass(frozen=True, slots=True)
class Meta:
    """How a result was obtained.

    ``attempts``: attempts made (1 when the first one succeeded, 0 when nothing was sent, e.g. a
    cache hit); ``from_cache`` / ``stale``: served from the cache (an expired entry, for
    ``stale``); ``elapsed``: seconds the call took, waits included; ``request_id``: tether's id of
    the call (sent nowhere; it names the call in events and errors); ``rate_limit``: the quota the
    response reported (``X-RateLimit-*``, IETF ``RateLimit``), ``None`` when it reported none;
    ``served_by``: ``"network"``, ``"cache"``, ``"stale_cache"``, ``"default"``,
    ``"alternate:<name>"`` or ``"dlq"``; ``status``: the HTTP status;
    ``extra``: anything else policies recorded for this call.
    """

    attempts: int = 1
    from_cache: bool = False
    stale: bool = False
    elapsed: float = 0.0
    request_id: str = ""
    rate_limit: RateLimitSnapshot | None = None
    served_by: str = "network"
    status: int | None = None
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __repr__(self) -> str:
        parts = [
            f"attempts={self.attempts}",
            f"status={self.status}",
            f"served_by={self.served_by!r}",
            f"elapsed={self.elapsed:.3f}",
        ]
        if self.from_cache:
            parts.append("from_cache=True")
        if self.stale:
            parts.append("stale=True")
        if self.rate_limit is not None:
            parts.append(f"rate_limit_remaining={self.rate_limit.remaining}")
        parts.append(f"request_id={self.request_id!r}")
        return f"Meta({', '.join(parts)})"


@dataclass(frozen=True, slots=True, repr=False)
class Result:
    """One call's outcome: ``data`` (validated, records selected, mapped), the raw ``response``
    (an ``httpx2.Response`` whose body has been read) and ``meta``."""

    data: Any
    response: httpx2.Response
    meta: Meta
    endpoint: str | None = None

    @property
    def status_code(self) -> int:
        return self.response.status_code

    def __repr__(self) -> str:
        try:
            url = redact_url(str(self.response.request.url))
        except RuntimeError:  # a response built without a request
            url = ""
        return (
            f"Result(endpoint={self.endpoint!r}, status={self.response.status_code}, url={url!r}, "
            f"data={_summary(self.data)}, meta={self.meta!r})"
        )


@dataclass(frozen=True, slots=True, repr=False)
class Outcome:
    """One input of ``Integration.call_many``: ``ok`` with its ``result``, or its ``error``."""

    input: Any
    result: Result | None = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def __repr__(self) -> str:
        if isinstance(self.input, Mapping):
            shown = "{" + ", ".join(
                f"{k}: {_summary(redact_value(str(k), v))}" for k, v in self.input.items()
            )
            shown += "}"
        else:
            shown = _summary(self.input)
        if self.error is None:
            return f"Outcome(ok=True, input={shown}, result={self.result!r})"
        code = getattr(self.error, "error_code", type(self.error).__name__)
        message = redact_text(str(self.error))
        return f"Outcome(ok=False, input={shown}, error={code}: {message})"
