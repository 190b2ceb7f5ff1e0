"""Parsing what servers say about waiting: ``Retry-After`` and rate-limit headers.

Pure functions (no clock reads, no I/O): every function that needs "now" takes it as an argument
(epoch seconds from the injected clock), so the retry policy and the rate limiter share one
parser and tests can pin time.

Header families understood:

- ``Retry-After`` (RFC 9110 §10.2.3): delay-seconds (``120``) or an HTTP-date
  (``Sun, 06 Nov 1994 08:49:37 GMT``; the obsolete RFC 850 and asctime forms are accepted too).
  A decimal delay (``1.5``) is accepted as well, since some servers send one.
- ``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` (de facto; names configurable). The reset
  is a delta in seconds or an epoch timestamp depending on the provider: ``ResetKind`` says which,
  and ``"auto"`` guesses (``>= 1e12``: epoch milliseconds, ``>= 1e9``: epoch seconds, otherwise a
  delta; a delta of 31 years is not plausible, an epoch before 2001 neither).
- IETF ``RateLimit`` / ``RateLimit-Policy`` (draft-ietf-httpapi-ratelimit-headers), every
  revision seen in the wild: the structured-field lists ``RateLimit-Policy: "default";q=100;w=60``
  with ``RateLimit: "default";r=50;t=30``, the draft-07 dictionary ``RateLimit: limit=100,
  remaining=50, reset=30``, the legacy ``RateLimit-Policy: 10;w=1, 50;w=60`` and the legacy trio
  ``RateLimit-Limit`` / ``RateLimit-Remaining`` / ``RateLimit-Reset`` (reset as a delta).

Malformed values never raise: they read as "not said" (``None`` or an empty tuple).
"""

from __future__ import annotations

import calendar
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Final, Literal

__all__ = [
    "IETF_LEGACY_NAMES",
    "X_RATELIMIT_NAMES",
    "QuotaPolicy",
    "QuotaState",
    "RateLimitHeaderNames",
    "RateLimitSnapshot",
    "ResetKind",
    "ServerWait",
    "format_http_date",
    "parse_http_date",
    "parse_ratelimit",
    "parse_ratelimit_policy",
    "parse_reset",
    "parse_retry_after",
    "read_rate_limit",
    "server_wait",
]

ResetKind = Literal["delta", "epoch", "auto"]
RESET_KINDS: Final[tuple[str, ...]] = ("delta", "epoch", "auto")

#: ``auto``: a reset at or above this is an epoch timestamp in seconds (2001-09-09 onwards).
EPOCH_SECONDS_FLOOR: Final = 1e9
#: ``auto``: a reset at or above this is an epoch timestamp in milliseconds.
EPOCH_MILLIS_FLOOR: Final = 1e12


# --- HTTP dates ------------------------------------------------------------------------------

_MONTHS: Final = {m: i for i, m in enumerate(calendar.month_abbr) if m}
_MONTHS_LOWER: Final = {m.lower(): i for m, i in _MONTHS.items()}
_WEEKDAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_TIME = r"(\d{2}):(\d{2}):(\d{2})"
_MONTH = r"([A-Za-z]{3})"
# IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT (day may be one digit; zone GMT or UTC)
_IMF_RE: Final = re.compile(
    rf"^[A-Za-z]{{3}},\s+(\d{{1,2}})\s+{_MONTH}\s+(\d{{4}})\s+{_TIME}\s+(?:GMT|UTC)$", re.I
)
# RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
_RFC850_RE: Final = re.compile(
    rf"^[A-Za-z]+,\s+(\d{{1,2}})-{_MONTH}-(\d{{2}})\s+{_TIME}\s+(?:GMT|UTC)$", re.I
)
# asctime: Sun Nov  6 08:49:37 1994
_ASCTIME_RE: Final = re.compile(rf"^[A-Za-z]{{3}}\s+{_MONTH}\s+(\d{{1,2}})\s+{_TIME}\s+(\d{{4}})$", re.I)


def _epoch(year: int, month_name: str, day: int, hour: int, minute: int, second: int) -> float | None:
    month = _MONTHS_LOWER.get(month_name.lower())
    if month is None or hour > 23 or minute > 59 or second > 60:
        return None
    try:
        date(year, month, day)
    except ValueError:
        return None
    return float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))


def _two_digit_year(yy: int, now: float | None) -> int:
    if now is None:
        return 2000 + yy if yy < 70 else 1900 + yy
    # RFC 9110 §5.6.7: a two-digit year more than 50 years in the future is the most recent past
    # year with the same last two digits.
    current = time.gmtime(math.floor(now)).tm_year
    year = current - current % 100 + yy
    if year > current + 50:
        year -= 100
    return year


def parse_http_date(value: str, *, now: float | None = None) -> float | None:
    """Epoch seconds of an HTTP-date (IMF-fixdate, RFC 850 or asctime), or ``None``.

    ``now`` (epoch seconds) resolves the two-digit year of the RFC 850 form as RFC 9110 asks;
    without it, years 00-69 are 2000-2069.
    """
    text = value.strip()
    if m := _IMF_RE.match(text):
        day, mon, year, hh, mm, ss = m.groups()
        return _epoch(int(year), mon, int(day), int(hh), int(mm), int(ss))
    if m := _RFC850_RE.match(text):
        day, mon, yy, hh, mm, ss = m.groups()
        return _epoch(_two_digit_year(int(yy), now), mon, int(day), int(hh), int(mm), int(ss))
    if m := _ASCTIME_RE.match(text):
        mon, day, hh, mm, ss, year = m.groups()
        return _epoch(int(year), mon, int(day), int(hh), int(mm), int(ss))
    return None


def format_http_date(epoch: float) -> str:
    """The IMF-fixdate for ``epoch`` (whole seconds, rounded down): ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    g = time.gmtime(math.floor(epoch))
    return (
        f"{_WEEKDAYS[g.tm_wday]}, {g.tm_mday:02d} {calendar.month_abbr[g.tm_mon]} {g.tm_year:04d} "
        f"{g.tm_hour:02d}:{g.tm_min:02d}:{g.tm_sec:02d} GMT"
    )


# --- numbers ---------------------------------------------------------------------------------

_NUMBER_RE: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*$")
_INT_RE: Final = re.compile(r"^\s*(\d+)\s*$")


def _number(value: str) -> float | None:
    m = _NUMBER_RE.match(value)
    if not m:
        return None
    number = float(m.group(1))
    return number if math.isfinite(number) else None


def _int(value: str) -> int | None:
    m = _INT_RE.match(value)
    return int(m.group(1)) if m else None


def parse_retry_after(value: str, *, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay-seconds or HTTP-date), or ``None``.

    ``now`` is the current epoch time (``clock.time()``); a date in the past means "now" (``0.0``).
    """
    seconds = _number(value)
    if seconds is not None:
        return seconds
    when = parse_http_date(value, now=now)
    if when is None:
        return None
    return max(0.0, when - now)


def parse_reset(value: str, *, now: float, kind: ResetKind = "auto") -> float | None:
    """Seconds until a rate-limit window resets, from an ``X-RateLimit-Reset``-style value.

    ``kind``: ``"delta"`` (seconds from now), ``"epoch"`` (epoch seconds), or ``"auto"``
    (epoch milliseconds at or above 1e12, epoch seconds at or above 1e9, otherwise a delta; a
    non-numeric value is tried as an HTTP-date). A reset in the past means ``0.0``.
    """
    if kind not in RESET_KINDS:
        raise ValueError(f"reset kind must be one of {', '.join(RESET_KINDS)}, got {kind!r}")
    number = _number(value)
    if number is None:
        if kind != "auto":
            return None
        when = parse_http_date(value, now=now)
        return None if when is None else max(0.0, when - now)
    if kind == "delta":
        return number
    if kind == "auto":
        if number >= EPOCH_MILLIS_FLOOR:
            return max(0.0, number / 1000.0 - now)
        if number < EPOCH_SECONDS_FLOOR:
            return number
    return max(0.0, number - now)


# --- structured-field lists (just what the RateLimit fields use) -----------------------------


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\" and quoted:
            current.append(ch)
            escaped = True
        elif ch == '"':
            current.append(ch)
            quoted = not quoted
        elif ch == sep and not quoted:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    parts.append("".join(current).strip())
    return parts


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def _member(text: str) -> tuple[str, dict[str, str]]:
    """``item;key=value;flag`` → (item, {key: value, flag: ""}) with quotes removed, keys lowercased."""
    pieces = _split_outside_quotes(text, ";")
    params: dict[str, str] = {}
    for piece in pieces[1:]:
        if not piece:
            continue
        key, _, raw = piece.partition("=")
        params.setdefault(key.strip().lower(), _unquote(raw))
    return _unquote(pieces[0]), params


@dataclass(frozen=True, slots=True)
class QuotaPolicy:
    """One quota policy from ``RateLimit-Policy`` (or a legacy ``RateLimit-Limit`` list)."""

    #: The policy's identifier; ``None`` in the legacy ``10;w=1`` form.
    name: str | None
    #: Quota units per window (``q``; ``l`` in some drafts; the item itself in the legacy form).
    quota: int
    #: Window length in seconds (``w``), when given.
    window: float | None = None
    #: Quota unit (``qu``): ``requests`` (default), ``content-bytes``, ``concurrent-requests``.
    unit: str | None = None
    #: Partition key (``pk``), when given.
    partition: str | None = None


@dataclass(frozen=True, slots=True)
class QuotaState:
    """The live state of one quota from ``RateLimit``."""

    #: The policy identifier it refers to; ``None`` in the dictionary form.
    name: str | None
    #: Quota units left (``r``; ``remaining`` in the dictionary form).
    remaining: int | None
    #: Seconds until the quota resets (``t``; ``reset`` in the dictionary form).
    reset: float | None
    #: The limit, only in the draft-07 dictionary form (``limit``).
    limit: int | None = None
    #: Partition key (``pk``), when given.
    partition: str | None = None


def parse_ratelimit_policy(value: str) -> tuple[QuotaPolicy, ...]:
    """Quota policies from a ``RateLimit-Policy`` value; malformed members are skipped.

    ``"default";q=100;w=60, "burst";q=10;w=1`` (current drafts), ``default;l=100;w=60`` (draft 08)
    and ``100;w=60`` (legacy: the item is the quota).
    """
    out: list[QuotaPolicy] = []
    for member in _split_outside_quotes(value, ","):
        if not member:
            continue
        item, params = _member(member)
        legacy_quota = _int(item)
        quota_text = params.get("q", params.get("l"))
        if quota_text is not None:
            quota = _int(quota_text)
            name: str | None = item or None
        else:
            quota, name = legacy_quota, None
        if quota is None:
            continue
        window = _number(params["w"]) if "w" in params else None
        out.append(
            QuotaPolicy(
                name=name,
                quota=quota,
                window=window,
                unit=params.get("qu") or None,
                partition=params.get("pk") or None,
            )
        )
    return tuple(out)


def parse_ratelimit(value: str) -> tuple[QuotaState, ...]:
    """Quota states from a ``RateLimit`` value; malformed members are skipped.

    ``"default";r=50;t=30`` (structured list, one member per policy) or
    ``limit=100, remaining=50, reset=30`` (draft-07 dictionary: one quota).
    """
    members = [m for m in _split_outside_quotes(value, ",") if m]
    if not members:
        return ()
    first_key = members[0].split(";", 1)[0].split("=", 1)[0].strip().lower()
    if "=" in members[0].split(";", 1)[0] and first_key in ("limit", "remaining", "reset", "policy"):
        fields: dict[str, str] = {}
        for member in members:
            key, _, raw = member.split(";", 1)[0].partition("=")
            fields.setdefault(key.strip().lower(), _unquote(raw))
        remaining = _int(fields["remaining"]) if "remaining" in fields else None
        reset = _number(fields["reset"]) if "reset" in fields else None
        limit = _int(fields["limit"]) if "limit" in fields else None
        if remaining is None and reset is None and limit is None:
            return ()
        return (QuotaState(name=None, remaining=remaining, reset=reset, limit=limit),)
    out: list[QuotaState] = []
    for member in members:
        item, params = _member(member)
        remaining = _int(params["r"]) if "r" in params else None
        reset = _number(params["t"]) if "t" in params else None
        if remaining is None and reset is None:
            continue
        out.append(
            QuotaState(
                name=item or None,
                remaining=remaining,
                reset=reset,
                partition=params.get("pk") or None,
            )
        )
    return tuple(out)


# --- reading a response's headers ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateLimitHeaderNames:
    """Names of a provider's limit / remaining / reset headers and how its reset is written."""

    limit: str = "X-RateLimit-Limit"
    remaining: str = "X-RateLimit-Remaining"
    reset: str = "X-RateLimit-Reset"
    reset_kind: ResetKind = "auto"

    def __post_init__(self) -> None:
        for field_name in ("limit", "remaining", "reset"):
            if not getattr(self, field_name).strip():
                raise ValueError(f"RateLimitHeaderNames.{field_name} must be a header name, got ''")
        if self.reset_kind not in RESET_KINDS:
            raise ValueError(
                f"RateLimitHeaderNames.reset_kind must be one of {', '.join(RESET_KINDS)}, "
                f"got {self.reset_kind!r}"
            )


#: The de facto ``X-RateLimit-*`` family (reset written as delta or epoch: guessed).
X_RATELIMIT_NAMES: Final = RateLimitHeaderNames()
#: The legacy IETF trio (drafts up to 06): reset is always a delta.
IETF_LEGACY_NAMES: Final = RateLimitHeaderNames(
    "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", reset_kind="delta"
)


@dataclass(frozen=True, slots=True)
class RateLimitSnapshot:
    """What a response says about the most constraining quota (fewest units left)."""

    limit: int | None
    remaining: int | None
    #: Seconds from ``now`` until the quota resets.
    reset_after: float | None
    #: Window length in seconds, when the server said.
    window: float | None
    #: Policy identifier (IETF ``RateLimit``), when given.
    policy: str | None
    #: Which header family it came from: ``"RateLimit"`` or the ``remaining`` header's name.
    source: str

    @property
    def exhausted(self) -> bool:
        return self.remaining is not None and self.remaining <= 0


@dataclass(frozen=True, slots=True)
class ServerWait:
    """A wait the server asked for, and which header asked."""

    seconds: float
    #: ``"Retry-After"`` or the name of the rate-limit header family (``"RateLimit"``, the
    #: configured reset header).
    source: str


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    # httpx2.Headers.items() re-joins and re-decodes per key; its raw pairs are much cheaper, and
    # this runs on every response the limiter and retry see.
    raw = getattr(headers, "raw", None)
    pairs = (
        ((k.decode("latin-1"), v.decode("latin-1")) for k, v in raw)
        if isinstance(raw, list)
        else headers.items()
    )
    for key, value in pairs:
        k = key.lower()
        out[k] = f"{out[k]}, {value}" if k in out else value
    return out


def _first_int(value: str | None) -> int | None:
    if value is None:
        return None
    return _int(value.split(",", 1)[0].split(";", 1)[0])


def _trio(h: Mapping[str, str], names: RateLimitHeaderNames, *, now: float) -> RateLimitSnapshot | None:
    limit = _first_int(h.get(names.limit.lower()))
    remaining = _first_int(h.get(names.remaining.lower()))
    raw_reset = h.get(names.reset.lower())
    reset = None if raw_reset is None else parse_reset(raw_reset, now=now, kind=names.reset_kind)
    if limit is None and remaining is None and reset is None:
        return None
    return RateLimitSnapshot(limit, remaining, reset, None, None, names.remaining)


def _ietf(h: Mapping[str, str]) -> list[RateLimitSnapshot]:
    raw = h.get("ratelimit")
    if raw is None:
        return []
    policies = parse_ratelimit_policy(h.get("ratelimit-policy", ""))
    by_name = {p.name: p for p in policies}
    out: list[RateLimitSnapshot] = []
    for state in parse_ratelimit(raw):
        policy = by_name.get(state.name)
        if policy is None and state.name is None and len(policies) == 1:
            policy = policies[0]
        limit = state.limit if state.limit is not None else (policy.quota if policy else None)
        window = policy.window if policy else None
        out.append(RateLimitSnapshot(limit, state.remaining, state.reset, window, state.name, "RateLimit"))
    return out


def _constraint(s: RateLimitSnapshot) -> tuple[float, float]:
    remaining = math.inf if s.remaining is None else float(s.remaining)
    return (remaining, -(s.reset_after or 0.0))


_IETF_HEADER_NAMES: Final = frozenset(
    {"ratelimit", "ratelimit-policy", "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"}
)


def rate_limit_header_names(names: RateLimitHeaderNames, retry_after_header: str) -> frozenset[bytes]:
    """Every lower-cased header name (as bytes) that can carry rate-limit information."""
    text = {names.limit, names.remaining, names.reset, retry_after_header} | _IETF_HEADER_NAMES
    return frozenset(n.lower().encode("latin-1") for n in text)


def mentions_any(headers: Mapping[str, str], wanted: frozenset[bytes]) -> bool:
    """Whether any header is named in ``wanted``: a cheap test before parsing anything.

    Most responses carry no rate-limit headers; scanning raw names costs far less than reading
    each family.
    """
    raw = getattr(headers, "raw", None)
    if isinstance(raw, list):
        return any(k.lower() in wanted for k, _ in raw)
    return any(k.lower().encode("latin-1") in wanted for k in headers)


def read_rate_limit(
    headers: Mapping[str, str],
    *,
    now: float,
    names: RateLimitHeaderNames = X_RATELIMIT_NAMES,
) -> RateLimitSnapshot | None:
    """The most constraining quota a response reports, across every header family.

    Looks at IETF ``RateLimit`` (+ ``RateLimit-Policy``), the legacy ``RateLimit-*`` trio and the
    provider's trio named by ``names`` (default ``X-RateLimit-*``). "Most constraining" is the
    fewest units remaining; among equals, the latest reset. ``None`` when no header says anything.
    """
    h = _lower(headers)
    candidates = _ietf(h)
    families = [names]
    if names.remaining.lower() != IETF_LEGACY_NAMES.remaining.lower():
        families.append(IETF_LEGACY_NAMES)
    for family in families:
        snapshot = _trio(h, family, now=now)
        if snapshot is not None:
            candidates.append(snapshot)
    if not candidates:
        return None
    return min(candidates, key=_constraint)


def server_wait(
    headers: Mapping[str, str],
    *,
    now: float,
    status: int | None = None,
    names: RateLimitHeaderNames = X_RATELIMIT_NAMES,
    retry_after_header: str = "Retry-After",
) -> ServerWait | None:
    """How long the server asked the client to wait before trying again, or ``None``.

    ``Retry-After`` wins when present and valid. Otherwise the rate-limit reset counts, but only
    when the response says the quota is spent: status 429, or the most constraining quota has
    nothing remaining (a reset header on an ordinary 500 or 200 is not a request to wait).
    """
    h = _lower(headers)
    raw = h.get(retry_after_header.lower())
    if raw is not None:
        # Several Retry-After lines were joined with ", " (an HTTP-date contains one too).
        seconds = parse_retry_after(raw, now=now)
        if seconds is None:
            seconds = parse_retry_after(raw.split(",", 1)[0], now=now)
        if seconds is not None:
            return ServerWait(seconds, retry_after_header)
    snapshot = read_rate_limit(h, now=now, names=names)
    if snapshot is None or snapshot.reset_after is None:
        return None
    if status == 429 or snapshot.exhausted:
        source = "RateLimit" if snapshot.source == "RateLimit" else _reset_name(snapshot, names)
        return ServerWait(snapshot.reset_after, source)
    return None


def _reset_name(snapshot: RateLimitSnapshot, names: RateLimitHeaderNames) -> str:
    return names.reset if snapshot.source == names.remaining else IETF_LEGACY_NAMES.reset
