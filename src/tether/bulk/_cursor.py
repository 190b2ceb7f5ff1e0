"""Cursor values of incremental runs: dates, timestamps and increasing numbers.

A cursor value is what a record holds in its cursor field (``"2024-03-01"``,
``"2024-03-01T12:00:00Z"``, ``1714"``, ``1714``). Values are compared by what they mean (a date
as a date, a number as a number), stepped back by a lookback (a duration for dates and times,
the amount itself for numbers), and written back in the record's own spelling, so the start
parameter the next run sends looks like what the API sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Final

__all__ = ["CursorValue", "chunks", "parse_cursor"]

_DAY: Final = 86400.0


@dataclass(frozen=True, slots=True)
class CursorValue:
    """A parsed cursor value: ``kind`` (``date``, ``datetime``, ``number``, ``text``), the value
    to compare, and the ``raw`` value as the record spelled it."""

    kind: str
    value: Any
    raw: Any

    def __lt__(self, other: CursorValue) -> bool:
        if self.kind == other.kind and self.kind != "text":
            return bool(self.value < other.value)
        return str(self.raw) < str(other.raw)

    def __le__(self, other: CursorValue) -> bool:
        return self == other or self < other

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CursorValue):
            return NotImplemented
        if self.kind == other.kind:
            return bool(self.value == other.value)
        return str(self.raw) == str(other.raw)

    def __hash__(self) -> int:
        return hash((self.kind, self.value if self.kind != "text" else str(self.raw)))

    def minus(self, amount: float) -> CursorValue:
        """This value moved back by ``amount`` (seconds for dates and times: whole days for a
        date, rounded up; the amount itself for a number). Text cannot move: returned as is."""
        if amount <= 0 or self.kind == "text":
            return self
        if self.kind == "date":
            moved_date = self.value - timedelta(days=math.ceil(amount / _DAY))
            return CursorValue("date", moved_date, moved_date.isoformat())
        if self.kind == "datetime":
            moved = self.value - timedelta(seconds=amount)
            text = moved.isoformat()
            if isinstance(self.raw, str) and self.raw.endswith("Z") and text.endswith("+00:00"):
                text = text[: -len("+00:00")] + "Z"
            return CursorValue("datetime", moved, text)
        number = self.value - Decimal(str(amount))
        raw: Any = int(number) if number == number.to_integral_value() else float(number)
        return CursorValue("number", number, str(raw) if isinstance(self.raw, str) else raw)


def parse_cursor(raw: Any) -> CursorValue | None:
    """A record's cursor value parsed, or ``None`` when the record has none."""
    if raw is None or isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        if isinstance(raw, float) and not math.isfinite(raw):
            return None
        return CursorValue("number", Decimal(str(raw)), raw)
    if isinstance(raw, date) and not isinstance(raw, datetime):
        return CursorValue("date", raw, raw.isoformat())
    if isinstance(raw, datetime):
        return CursorValue("datetime", raw, raw.isoformat())
    if not isinstance(raw, str) or not raw.strip():
        return None
    text = raw.strip()
    if len(text) == 10:
        try:
            return CursorValue("date", date.fromisoformat(text), raw)
        except ValueError:
            pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        pass
    else:
        return CursorValue("datetime", moment, raw)
    try:
        number = Decimal(text)
    except InvalidOperation:
        return CursorValue("text", text, raw)
    return CursorValue("number", number, raw) if number.is_finite() else CursorValue("text", text, raw)


def chunks(since: CursorValue, until: CursorValue, size: float | None) -> list[tuple[Any, Any]]:
    """``[since, until]`` cut into consecutive, non-overlapping ``(start, end)`` pairs, ends
    inclusive: each chunk ends one step (a day, a second, 1) before the next begins. ``size`` is
    seconds for dates and times, an amount for numbers; ``None`` (or text values): one chunk."""
    if size is None or size <= 0 or since.kind != until.kind or since.kind == "text" or until < since:
        return [(since.raw, until.raw)]
    out: list[tuple[Any, Any]] = []
    if since.kind == "date":
        days = max(1, math.ceil(size / _DAY))
        day = since.value
        while day <= until.value:
            last = min(day + timedelta(days=days - 1), until.value)
            out.append((day.isoformat(), last.isoformat()))
            day = last + timedelta(days=1)
        return out
    if since.kind == "datetime":
        step = timedelta(seconds=size)
        moment = since.value
        while moment <= until.value:
            last = min(moment + step - timedelta(seconds=1), until.value)
            out.append((moment.isoformat(), last.isoformat()))
            moment = last + timedelta(seconds=1)
        return out
    amount = Decimal(str(size))
    number = since.value
    while number <= until.value:
        last = min(number + amount - 1, until.value)
        out.append((_plain(number), _plain(last)))
        number = last + 1
    return out


def _plain(number: Decimal) -> int | float:
    return int(number) if number == number.to_integral_value() else float(number)
