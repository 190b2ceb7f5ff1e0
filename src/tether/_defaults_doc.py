"""Generate ``docs/defaults.md`` from the option classes: the one source of truth for defaults.

``python -m tether._defaults_doc --write`` rewrites the file; ``--check`` exits 1 when it is stale
(a test runs the same comparison). Values are read from the classes' signatures, never typed here;
only the one-line meanings live in this module.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tether._config import Default, Timeouts
from tether.pipeline._base import ORDER
from tether.pipeline.breaker import Breaker
from tether.pipeline.bulkhead import Bulkhead
from tether.pipeline.rate import Rate
from tether.pipeline.retry import Retry, RetryBudget
from tether.transport import EngineOptions

__all__ = ["render"]

_OUT = Path(__file__).resolve().parents[2] / "docs" / "defaults.md"

_MEANING: dict[str, dict[str, str]] = {
    "Timeouts": {
        "connect": "establish a TCP/TLS connection",
        "read": "wait for each chunk of the response",
        "write": "send the request body",
        "pool": "wait for a free pooled connection",
        "attempt": "one whole attempt (send + read the body); off unless set",
        "total": "the call's deadline: queueing, backoff and every attempt",
    },
    "Retry": {
        "attempts": "attempts in all, the first included",
        "initial": "first backoff delay (seconds)",
        "multiplier": "growth per attempt (exponential)",
        "max_delay": "cap on one backoff delay (seconds)",
        "backoff": "exponential, linear or fixed",
        "jitter": "full jitter: uniform(0, delay)",
        "retry_on": "statuses retried",
        "never_retry_on": "statuses never retried",
        "retry_on_errors": "error kinds retried",
        "max_retry_after": "longest server-asked wait honoured; longer fails at once",
        "respect_retry_after": "Retry-After / reset headers outrank the backoff",
        "retry_non_idempotent": "retry POST/PATCH without an idempotency key",
        "auto_idempotency_key": "add an Idempotency-Key to POST/PATCH",
        "budget": "retries allowed per window (see RetryBudget)",
    },
    "RetryBudget": {
        "ratio": "retries may be at most this share of calls",
        "window": "sliding window the ratio is counted over (seconds)",
        "min_per_second": "retries always allowed per second, whatever the ratio",
    },
    "Breaker": {
        "failures": "consecutive failures that open the circuit",
        "window": "the failures must fall within this many seconds",
        "open_for": "seconds the circuit stays open before a probe",
        "half_open_calls": "probes admitted at a time while half-open",
        "close_after": "consecutive probe successes that close it",
        "half_open_timeout": "a probe with no outcome after this frees its slot",
        "mode": "consecutive failures, or failure rate over a window",
        "failure_rate": "rate mode: the share of failures that opens it",
        "min_calls": "rate mode: calls needed before the rate counts",
        "count_statuses": "statuses counted as failures",
        "count_errors": "error kinds counted as failures",
    },
    "Rate": {
        "burst": "requests that may go back to back after an idle spell",
        "strategy": "queue (FIFO), wait, or reject",
        "max_queue": "queue strategy: callers allowed to wait",
        "learn": "learn limits and pauses from response headers",
        "pause_on_429": "pause after a 429 that names no wait (seconds)",
    },
    "Bulkhead": {
        "max_concurrent": "attempts in flight at once",
        "max_queue": "callers allowed to wait for a slot",
        "queue_timeout": "longest wait for a slot (None: the deadline)",
    },
    "EngineOptions": {
        "http_version": "1.1 (aiohttp engine) or 2 (httpx2's HTTP/2)",
        "max_connections": "connection pool size",
        "keepalive": "idle keep-alive of a pooled connection (seconds)",
        "max_response_size": "largest body read, after decoding (bytes)",
        "max_decompression_ratio": "decompression-bomb guard",
        "verify": "TLS certificate verification",
        "follow_redirects": "follow redirects (never https → http)",
        "max_redirects": "redirect hops",
        "block_private": "refuse private/loopback/link-local destinations",
    },
}

_TIERS = ("free", "premium", "enterprise")


# What ``None`` means where it does not mean "off".
_NONE_MEANS = {("Rate", "burst"): "1 (evenly spaced)", ("Bulkhead", "queue_timeout"): "None (the deadline)"}


def _ranges(values: Iterable[int]) -> str:
    """``429, 500–599`` rather than a hundred numbers."""
    ordered = sorted(values)
    parts: list[str] = []
    start = prev = ordered[0]
    for v in [*ordered[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(str(start) if start == prev else f"{start}–{prev}")
        if v is not None:
            start = prev = v
    return ", ".join(parts)


def _fmt(value: Any) -> str:
    if isinstance(value, Default):
        return "(see meaning)"
    if isinstance(value, frozenset | set):
        if value and all(isinstance(v, int) for v in value):
            return _ranges(value)
        return ", ".join(str(v) for v in sorted(value, key=str)) or "—"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return type(value).__name__ + "()"
    if value is None:
        return "None (off)"
    return f"`{value}`" if isinstance(value, str) else str(value)


def _defaults(cls: type) -> Iterable[tuple[str, Any]]:
    """(name, default) for each documented parameter of ``cls``, read from its signature."""
    meanings = _MEANING[cls.__name__]
    params = inspect.signature(cls).parameters
    for name in meanings:
        param = params.get(name)
        if param is not None and param.default is not inspect.Parameter.empty:
            yield name, param.default
        elif hasattr(cls, f"DEFAULT_{name.upper()}"):
            yield name, getattr(cls, f"DEFAULT_{name.upper()}")


def _table(cls: type) -> list[str]:
    lines = [f"### `{cls.__name__}`", "", "| option | default | meaning |", "|---|---|---|"]
    meanings = _MEANING[cls.__name__]
    for name, default in _defaults(cls):
        shown = _NONE_MEANS.get((cls.__name__, name)) if default is None else None
        lines.append(f"| `{name}` | {shown or _fmt(default)} | {meanings[name]} |")
    return [*lines, ""]


def render() -> str:
    """The whole defaults page."""
    out = [
        "# Defaults",
        "",
        "Generated from the option classes by `python -m tether._defaults_doc --write`; a test",
        "fails when this page and the code disagree. Durations are seconds.",
        "",
        "Resilient by default: a `tether.Client` (and every spec-built integration) runs the",
        "timeouts, retry and circuit breaker below unless told otherwise; `None` turns one off.",
        "Policies that need a number only you know (rate limits, bulkhead, cache, budgets,",
        "fallback, DLQ) are off until configured.",
        "",
        "## Pipeline order",
        "",
        "Outermost first (see [guides/call-flow.md](guides/call-flow.md)):",
        "",
        " → ".join(f"`{k}`" for k in ORDER),
        "",
        "## Options",
        "",
    ]
    for cls in (Timeouts, Retry, RetryBudget, Breaker, Rate, Bulkhead, EngineOptions):
        out += _table(cls)
    out += ["## Rate tiers (REQ-001)", "", "| tier | limits |", "|---|---|"]
    for tier in _TIERS:
        rate = Rate.tier(tier)
        windows = ", ".join(f"{w.limit}/{w.period:g}s (burst {w.burst})" for w in rate.windows)
        out.append(f"| `{tier}` | {windows} |")
    out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite docs/defaults.md")
    mode.add_argument("--check", action="store_true", help="exit 1 when docs/defaults.md is stale")
    parser.add_argument("--path", type=Path, default=_OUT)
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        args.path.write_text(text, encoding="utf-8")
        return 0
    current = args.path.read_text(encoding="utf-8") if args.path.exists() else ""
    if current != text:
        print(f"{args.path} is stale: run python -m tether._defaults_doc --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
