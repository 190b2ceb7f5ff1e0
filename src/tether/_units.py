"""Loose duration and size inputs normalised to one unit: seconds (float) and bytes (int).

Durations accept a number of seconds, a ``timedelta``, or a string with a unit (``"500ms"``,
``"5s"``, ``"2m"``, ``"24h"``, ``"7d"``). Sizes accept a number of bytes or a string (``"10MB"``,
``"512KiB"``, ``"50GB"``). Bad input raises ``ValueError`` naming the value and the rule.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

__all__ = ["Duration", "Size", "parse_duration", "parse_size"]

Duration = float | int | timedelta | str
Size = int | float | str

_DURATION_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]+)?\s*$", re.IGNORECASE)

_SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}


def parse_duration(value: Duration, *, name: str = "duration", allow_zero: bool = True) -> float:
    """Seconds from a number, ``timedelta`` or ``"<number><unit>"`` string (units: ms s m h d w)."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a duration, got {value!r}")
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION_RE.match(value)
        if not match:
            raise ValueError(f"{name} must look like '500ms', '5s', '2m', '24h' or a number, got {value!r}")
        unit = (match.group(2) or "s").lower()
        if unit not in _DURATION_UNITS:
            raise ValueError(f"{name} has unknown unit {unit!r} in {value!r}; use one of ms, s, m, h, d, w")
        seconds = float(match.group(1)) * _DURATION_UNITS[unit]
    else:
        raise ValueError(f"{name} must be a duration, got {type(value).__name__} {value!r}")
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        rule = "positive" if not allow_zero else "zero or positive"
        raise ValueError(f"{name} must be {rule} and finite, got {value!r}")
    return seconds


def parse_size(value: Size, *, name: str = "size") -> int:
    """Bytes from a number or ``"<number><unit>"`` string (units: B KB MB GB TB KiB MiB GiB TiB)."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a size, got {value!r}")
    if isinstance(value, int | float):
        size = float(value)
    elif isinstance(value, str):
        match = _DURATION_RE.match(value)
        unit = (match.group(2) or "b").lower() if match else ""
        if not match or unit not in _SIZE_UNITS:
            raise ValueError(
                f"{name} must look like '10MB', '512KiB', '50GB' or a number of bytes, got {value!r}"
            )
        size = float(match.group(1)) * _SIZE_UNITS[unit]
    else:
        raise ValueError(f"{name} must be a size, got {type(value).__name__} {value!r}")
    if math.isnan(size) or math.isinf(size) or size < 0:
        raise ValueError(f"{name} must be zero or positive and finite, got {value!r}")
    return int(size)
