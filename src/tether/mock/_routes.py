"""Routes of the mock server: path patterns, scripted replies, chaos and a server-side rate limit."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from tether._units import parse_duration
from tether.mock._faults import Chaos, Fault

__all__ = ["PathPattern", "RateBucket", "Route", "parse_rate"]

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_PERIODS: Final = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}


class PathPattern:
    """A route path; ``{name}`` matches one non-empty path segment (or part of one)."""

    __slots__ = ("path", "regex", "static")

    def __init__(self, path: str) -> None:
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"a route path must start with '/', got {path!r}")
        self.path = path
        self.static = _PARAM.search(path) is None
        pieces: list[str] = []
        last = 0
        for m in _PARAM.finditer(path):
            pieces.append(re.escape(path[last : m.start()]))
            pieces.append(f"(?P<{m.group(1)}>[^/]+)")
            last = m.end()
        pieces.append(re.escape(path[last:]))
        self.regex = re.compile("".join(pieces))

    def match(self, path: str) -> bool:
        """True when ``path`` (decoded, without query) matches this pattern."""
        if self.static:
            return path == self.path
        return self.regex.fullmatch(path) is not None


def parse_rate(rate: str) -> tuple[int, float]:
    """``"600/minute"`` → ``(600, 60.0)``; periods: second, minute, hour, day, or a duration
    such as ``"10/5s"``."""
    count_text, slash, period_text = str(rate).partition("/")
    period_text = period_text.strip().lower()
    try:
        count = int(count_text.strip())
        if not slash or count <= 0:
            raise ValueError
        if period_text in _PERIODS:
            period = _PERIODS[period_text]
        elif period_text.endswith("s") and period_text[:-1] in _PERIODS:  # "minutes"
            period = _PERIODS[period_text[:-1]]
        else:
            period = parse_duration(period_text, allow_zero=False)
    except ValueError:
        raise ValueError(
            f"rate limit must look like '600/minute', '10/second' or '10/5s', got {rate!r}"
        ) from None
    return count, period


class RateBucket:
    """A token bucket: ``limit`` requests per ``period`` seconds, at most ``burst`` at once
    (``burst`` defaults to ``limit``). Starts full."""

    __slots__ = ("capacity", "limit", "rate", "stamp", "tokens")

    def __init__(self, limit: int, period: float, burst: int | None, now: float) -> None:
        if burst is not None and (isinstance(burst, bool) or not isinstance(burst, int) or burst <= 0):
            raise ValueError(f"burst must be a positive int, got {burst!r}")
        self.limit = limit
        self.rate = limit / period
        self.capacity = float(burst if burst is not None else limit)
        self.tokens = self.capacity
        self.stamp = now

    def take(self, now: float) -> tuple[bool, int, int, int]:
        """Spend one token if there is one: ``(allowed, remaining, reset_s, retry_after_s)``.

        ``reset_s`` is the whole seconds until the bucket is full again; ``retry_after_s`` the
        whole seconds until a token is available (0 when allowed, at least 1 when not).
        """
        tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self.tokens = tokens
        reset = math.ceil((self.capacity - tokens) / self.rate)
        retry = 0 if allowed else max(1, math.ceil((1.0 - tokens) / self.rate))
        return allowed, int(tokens), reset, retry


class Route:
    """One route's script and runtime state (position in the script, chaos RNG, bucket)."""

    __slots__ = ("bucket", "burst", "chaos", "index", "method", "pattern", "rate_limit", "responses", "rng")

    def __init__(
        self,
        method: str,
        path: str,
        responses: Sequence[Fault],
        *,
        rate_limit: str | None,
        burst: int | None,
        chaos: Chaos | None,
        now: float,
    ) -> None:
        if not isinstance(method, str) or not method or not (method == "*" or method.isalpha()):
            raise ValueError(f"route method must be an HTTP method or '*', got {method!r}")
        for fault in responses:
            if not isinstance(fault, Fault):
                raise ValueError(f"route responses must be Fault values, got {fault!r}")
        if chaos is not None and not isinstance(chaos, Chaos):
            raise ValueError(f"chaos must be a Chaos, got {chaos!r}")
        self.method = method.upper()
        self.pattern = PathPattern(path)
        self.responses: tuple[Fault, ...] = tuple(responses) or (Fault.ok(),)
        self.index = 0
        self.rate_limit = rate_limit
        self.burst = burst
        self.bucket: RateBucket | None = None
        if rate_limit is not None:
            limit, period = parse_rate(rate_limit)
            self.bucket = RateBucket(limit, period, burst, now)
        elif burst is not None:
            raise ValueError("burst needs a rate_limit")
        self.chaos = chaos
        self.rng = random.Random(chaos.seed) if chaos is not None else None

    def next(self, now: float) -> tuple[Fault, bytes]:
        """The fault for the next request and extra header lines (rate-limit headers) to send."""
        extra = b""
        bucket = self.bucket
        if bucket is not None:
            allowed, remaining, reset, retry = bucket.take(now)
            headers = (
                f"X-RateLimit-Limit: {bucket.limit}\r\n"
                f"X-RateLimit-Remaining: {remaining}\r\n"
                f"X-RateLimit-Reset: {reset}\r\n"
            )
            if not allowed:
                # Over the limit: neither the script nor the chaos dice advance.
                return _limited(retry), headers.encode()
            extra = headers.encode()
        chaos = self.chaos
        if chaos is not None and self.rng is not None and chaos.rate > 0 and self.rng.random() < chaos.rate:
            return self.rng.choice(chaos.faults), extra
        responses = self.responses
        index = self.index
        self.index = index + 1
        return responses[index if index < len(responses) else -1], extra

    def to_dict(self) -> dict[str, Any]:
        """The JSON route spec this route was (or could have been) made from."""
        spec: dict[str, Any] = {
            "method": self.method,
            "path": self.pattern.path,
            "responses": [f.to_dict() for f in self.responses],
        }
        if self.rate_limit is not None:
            spec["rate_limit"] = self.rate_limit
        if self.burst is not None:
            spec["burst"] = self.burst
        if self.chaos is not None:
            spec["chaos"] = self.chaos.to_dict()
        return spec


def route_args(spec: Mapping[str, Any]) -> tuple[str, str, list[Fault], dict[str, Any]]:
    """``(method, path, responses, options)`` from a JSON route spec; bad specs raise ValueError."""
    if not isinstance(spec, Mapping):
        raise ValueError(f"a route spec must be a JSON object, got {type(spec).__name__}")
    unknown = set(spec) - {"method", "path", "responses", "rate_limit", "burst", "chaos"}
    if unknown:
        raise ValueError(f"route spec has unknown keys: {', '.join(sorted(unknown))}")
    if "path" not in spec:
        raise ValueError("route spec needs a path")
    responses = spec.get("responses", [])
    if not isinstance(responses, list):
        raise ValueError("route spec responses must be a list of faults")
    faults = [r if isinstance(r, Fault) else Fault.from_dict(r) for r in responses]
    chaos = spec.get("chaos")
    options: dict[str, Any] = {
        "rate_limit": spec.get("rate_limit"),
        "burst": spec.get("burst"),
        "chaos": chaos if chaos is None or isinstance(chaos, Chaos) else Chaos.from_dict(chaos),
    }
    return str(spec.get("method", "GET")), spec["path"], faults, options


# The answer to a request over a route's own rate limit; cached per Retry-After value because a
# flood of limited requests should cost the server as little as a successful one.
_LIMITED: dict[int, Fault] = {}


def _limited(retry_after: int) -> Fault:
    fault = _LIMITED.get(retry_after)
    if fault is None:
        fault = Fault.rate_limited(retry_after=retry_after)
        if len(_LIMITED) < 256:
            _LIMITED[retry_after] = fault
    return fault
