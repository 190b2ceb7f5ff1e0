"""Client-wide configuration values: timeouts, connection limits, and the "not given" sentinel."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from tether._units import Duration, parse_duration

__all__ = ["DEFAULT", "Default", "Timeouts"]


class Default(enum.Enum):
    """The type of ``DEFAULT``: "not given" (use tether's default), as opposed to ``None`` (off)."""

    token = 0

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Final = Default.token


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per-phase timeouts in seconds (``None`` = no limit).

    ``connect``/``read``/``write``/``pool`` bound each network phase of one attempt;
    ``attempt`` bounds one whole attempt (send + read the body); ``total`` is the call's deadline
    and covers everything: queueing for a rate-limit token, backoff sleeps and every attempt.
    Defaults (DESIGN 4): connect 5 s, read 30 s, write 30 s, total 60 s.
    """

    DEFAULT_CONNECT: ClassVar[float] = 5.0
    DEFAULT_READ: ClassVar[float] = 30.0
    DEFAULT_WRITE: ClassVar[float] = 30.0
    DEFAULT_POOL: ClassVar[float] = 5.0
    DEFAULT_TOTAL: ClassVar[float] = 60.0

    connect: float | None = DEFAULT_CONNECT
    read: float | None = DEFAULT_READ
    write: float | None = DEFAULT_WRITE
    pool: float | None = DEFAULT_POOL
    attempt: float | None = None
    total: float | None = DEFAULT_TOTAL

    def __post_init__(self) -> None:
        for name in ("connect", "read", "write", "pool", "attempt", "total"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(
                    self, name, parse_duration(value, name=f"timeouts.{name}", allow_zero=False)
                )
        if self.attempt is not None and self.total is not None and self.attempt > self.total:
            raise ValueError(
                f"timeouts.attempt ({self.attempt:g}s) must not exceed timeouts.total ({self.total:g}s)"
            )

    @classmethod
    def of(cls, value: Timeouts | Duration | dict[str, Any] | None) -> Timeouts:
        """Normalise loose input: a ``Timeouts``, one number for every network phase, a dict, or None."""
        if isinstance(value, Timeouts):
            return value
        if value is None:
            return cls(connect=None, read=None, write=None, pool=None, attempt=None, total=None)
        if isinstance(value, dict):
            return cls(**value)
        seconds = parse_duration(value, name="timeout", allow_zero=False)
        return cls(connect=seconds, read=seconds, write=seconds, pool=seconds)

    def as_extension(self) -> dict[str, float | None]:
        """The ``request.extensions["timeout"]`` dict that transports read."""
        return {"connect": self.connect, "read": self.read, "write": self.write, "pool": self.pool}
