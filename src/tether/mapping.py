"""Data mappings: records out of a body, their fields into ours, ours into theirs.

Everything here is data, never code (DESIGN 7): records are selected with JMESPath, fields are
addressed by dotted paths (or, on the reading side, JMESPath), and values are converted by a
closed set of named transforms::

    float int decimal str bool date datetime epoch_ms epoch_s lower upper strip

```python
from tether.mapping import Mapper, select_records

records = select_records(body, "observations")           # the endpoint's ``records:``
mapper = Mapper(spec.data_mappings.inbound)              # compiled once, reused per page
rows = mapper.map_records(records)                       # ValidationError names record and field
```

A transform works in a direction. **Inbound** (their response → our record) it parses: ``"1.5"``
becomes ``1.5``, ``1700000000000`` with ``epoch_ms`` becomes an aware UTC ``datetime``.
**Outbound** (our input → their request) it produces JSON-ready values: ``date`` / ``datetime``
become ISO 8601 strings, ``epoch_ms`` / ``epoch_s`` become numbers, ``decimal`` becomes an exact
decimal string. Naive datetimes are taken as UTC when turned into epoch numbers; an epoch that
is not a whole number of seconds (milliseconds) is written as a float, with a float's precision.

A rule's ``null_values`` (FRED writes ``"."``) make a value count as missing before any transform
runs. A missing value takes the rule's ``default`` when one is written; otherwise a ``required``
rule fails, and an optional one yields ``None`` (inbound) or is left out (outbound).
"""

from __future__ import annotations

import json
import math
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from typing import Any, Final, Literal

import jmespath
import jmespath.exceptions

from tether._redact import MASK, redact_text, registry
from tether.errors import SpecError, ValidationError
from tether.spec._endpoint import MappingRule, Transform

__all__ = [
    "TRANSFORMS",
    "Direction",
    "Mapper",
    "compile_jmespath",
    "mapper_for",
    "sample",
    "search",
    "select_records",
    "transform",
]

Direction = Literal["inbound", "outbound"]

#: Every transform a spec may name (the spec model's closed set).
TRANSFORMS: Final[tuple[str, ...]] = Transform.__args__  # type: ignore[attr-defined]

_SAMPLE_MAX: Final = 40
_MISSING: Final = object()

# --- JMESPath ------------------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def compile_jmespath(expression: str) -> Any:
    """The compiled JMESPath expression (cached: each expression is parsed once per process).

    A malformed expression is a ``SpecError`` (the spec loader already rejects them).
    """
    try:
        return jmespath.compile(expression)
    except (jmespath.exceptions.JMESPathError, ValueError, TypeError, RecursionError) as exc:
        raise SpecError(f"{expression!r} is not a valid JMESPath expression ({exc})") from None


def search(expression: str, data: Any) -> Any:
    """Evaluate a JMESPath ``expression`` over ``data`` (``None`` when nothing matches)."""
    try:
        return compile_jmespath(expression).search(data)
    except jmespath.exceptions.JMESPathError as exc:  # e.g. a function applied to the wrong type
        raise ValidationError(f"JMESPath {expression!r} failed on the response body: {exc}") from None


def select_records(body: Any, expression: str | None) -> list[Any]:
    """The records of a response body: what the endpoint's ``records:`` JMESPath selects.

    Without an expression, a list body is the records and any other body is one record. An
    expression that selects nothing (``null``) gives no records; one that selects something other
    than a list is a ``ValidationError`` (the spec points at the wrong place).
    """
    if expression is None:
        if body is None:
            return []
        return list(body) if isinstance(body, list) else [body]
    selected = search(expression, body)
    if selected is None:
        return []
    if not isinstance(selected, list):
        kind = _type_name(selected)
        article = "an" if kind[0] in "aeiou" else "a"
        raise ValidationError(
            f"records expression {expression!r} selected {article} {kind}, not a list of records"
        )
    return selected


# --- samples for error messages ------------------------------------------------------------------


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def sample(value: Any, *, name: str | None = None) -> str:
    """A short, redacted rendering of ``value`` for an error message."""
    if name is not None and registry.is_sensitive_param(name.rsplit(".", 1)[-1]):
        return MASK
    text = redact_text(repr(value))
    if len(text) > _SAMPLE_MAX:
        text = text[: _SAMPLE_MAX - 3] + "..."
    return text


# --- transforms ----------------------------------------------------------------------------------

_NUMERIC = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_TRUE: Final = frozenset({"true", "t", "yes", "y", "on", "1"})
_FALSE: Final = frozenset({"false", "f", "no", "n", "off", "0"})
_MAX_EXPONENT: Final = 4000  # beyond this an int would have thousands of digits


class _TransformFailed(ValueError):
    """A transform could not convert a value; the message says why."""


def _decimal(value: Any) -> Decimal:
    """An exact decimal from a number or a numeric string (never from a bool)."""
    if isinstance(value, bool):
        raise _TransformFailed("a boolean is not a number")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value)) if math.isfinite(value) else Decimal(value)
    elif isinstance(value, str):
        text = value.strip()
        if not _NUMERIC.match(text):
            raise _TransformFailed("not a number")
        number = Decimal(text)
    else:
        raise _TransformFailed(f"expects a number or a numeric string, got {_type_name(value)}")
    if not number.is_finite():
        raise _TransformFailed("not a finite number")
    if abs(number.adjusted()) > _MAX_EXPONENT:
        raise _TransformFailed("number out of range")
    return number


def _to_float(value: Any, direction: Direction) -> float:
    if isinstance(value, str) and value.strip().lower() in ("nan", "inf", "+inf", "-inf", "infinity"):
        return float(value.strip())
    if isinstance(value, float):
        return value
    number = _decimal(value)
    result = float(number)
    if math.isinf(result):
        raise _TransformFailed("number out of range for a float")
    return result


def _to_int(value: Any, direction: Direction) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = _decimal(value)
    if number != number.to_integral_value():
        raise _TransformFailed("not a whole number")
    return int(number)


def _to_decimal(value: Any, direction: Direction) -> Decimal | str:
    number = _decimal(value)
    return str(number) if direction == "outbound" else number


def _to_str(value: Any, direction: Direction) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):  # datetime too
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, Mapping | list | tuple):
        try:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
        except (TypeError, ValueError) as exc:
            raise _TransformFailed(f"cannot write {_type_name(value)} as text ({exc})") from None
    raise _TransformFailed(f"cannot write {_type_name(value)} as text")


def _to_bool(value: Any, direction: Direction) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | Decimal):
        if value in (0, 1):
            return bool(value)
        raise _TransformFailed("only 0 and 1 are booleans among numbers")
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise _TransformFailed("not a boolean (true/false, yes/no, 1/0, on/off)")
    raise _TransformFailed(f"expects a boolean, got {_type_name(value)}")


def _parse_datetime(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise _TransformFailed("not an ISO 8601 date-time") from None


def _to_date(value: Any, direction: Direction) -> date | str:
    if isinstance(value, datetime):
        result = value.date()
    elif isinstance(value, date):
        result = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            result = date.fromisoformat(text)
        except ValueError:
            try:
                result = datetime.fromisoformat(text).date()
            except ValueError:
                raise _TransformFailed("not an ISO 8601 date (YYYY-MM-DD)") from None
    else:
        raise _TransformFailed(f"expects a date or an ISO 8601 string, got {_type_name(value)}")
    return result.isoformat() if direction == "outbound" else result


def _to_datetime(value: Any, direction: Direction) -> datetime | str:
    if isinstance(value, datetime):
        result = value
    elif isinstance(value, date):
        result = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        result = _parse_datetime(value)
    else:
        raise _TransformFailed(f"expects a date-time or an ISO 8601 string, got {_type_name(value)}")
    return result.isoformat() if direction == "outbound" else result


def _from_epoch(value: Any, scale: int) -> datetime:
    """An aware UTC datetime from a number of seconds (scale 1) or milliseconds (scale 1000)."""
    if isinstance(value, datetime):
        return value
    number = _decimal(value)
    micros = int((number * (1_000_000 // scale)).to_integral_value(ROUND_HALF_EVEN))
    try:
        return _EPOCH + timedelta(microseconds=micros)
    except OverflowError:
        raise _TransformFailed("epoch value out of the date range (years 1-9999)") from None


def _to_epoch(value: Any, scale: int) -> int | float:
    """A number of seconds (scale 1) or milliseconds (scale 1000) since the epoch."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str) and not _NUMERIC.match(value.strip()):
        moment = _parse_datetime(value)
    else:  # already a number: checked and passed on
        number = _decimal(value)
        return int(number) if number == number.to_integral_value() else float(number)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    micros = (moment - _EPOCH) // timedelta(microseconds=1)
    unit = 1_000_000 // scale
    whole, rest = divmod(micros, unit)
    return whole if rest == 0 else micros / unit


def _epoch(scale: int) -> Callable[[Any, Direction], Any]:
    def convert(value: Any, direction: Direction) -> Any:
        if direction == "outbound":
            return _to_epoch(value, scale)
        return _from_epoch(value, scale)

    return convert


def _text(method: Callable[[str], str]) -> Callable[[Any, Direction], str]:
    def convert(value: Any, direction: Direction) -> str:
        if not isinstance(value, str):
            raise _TransformFailed(f"expects a string, got {_type_name(value)}")
        return method(value)

    return convert


_FUNCTIONS: Final[Mapping[str, Callable[[Any, Direction], Any]]] = {
    "float": _to_float,
    "int": _to_int,
    "decimal": _to_decimal,
    "str": _to_str,
    "bool": _to_bool,
    "date": _to_date,
    "datetime": _to_datetime,
    "epoch_ms": _epoch(1000),
    "epoch_s": _epoch(1),
    "lower": _text(str.lower),
    "upper": _text(str.upper),
    "strip": _text(str.strip),
}
if set(_FUNCTIONS) != set(TRANSFORMS):  # pragma: no cover - caught at import by any test
    _drift = sorted(set(TRANSFORMS) ^ set(_FUNCTIONS))
    raise RuntimeError(f"transforms out of step with the spec model: {_drift}")


def _function(name: str) -> Callable[[Any, Direction], Any]:
    try:
        return _FUNCTIONS[name]
    except KeyError:
        raise SpecError(f"unknown transform {name!r}; transforms: {', '.join(TRANSFORMS)}") from None


def transform(name: str, value: Any, *, direction: Direction = "inbound") -> Any:
    """Apply the named transform to one value.

    A value the transform cannot convert is a ``ValidationError`` naming the transform and a
    redacted sample of the value; an unknown name is a ``SpecError``.
    """
    function = _function(name)
    try:
        return function(value, direction)
    except _TransformFailed as exc:
        raise ValidationError(f"transform {name} cannot convert {sample(value)}: {exc}") from None


# --- field paths ---------------------------------------------------------------------------------

_PLAIN_FIELD = re.compile(r"^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*$")


@dataclass(frozen=True, slots=True)
class _Getter:
    """Reads a field: a dotted path (digits index lists) or a JMESPath expression."""

    text: str
    parts: tuple[str, ...] | None  # None: JMESPath

    @classmethod
    def of(cls, text: str) -> _Getter:
        if _PLAIN_FIELD.match(text):
            return cls(text, tuple(text.split(".")))
        compile_jmespath(text)
        return cls(text, None)

    @property
    def top(self) -> str | None:
        """The top-level key this getter consumes (for ``keep_unmapped``), if it is plain."""
        return self.parts[0] if self.parts is not None else None

    def get(self, record: Any) -> Any:
        """The value, or ``_MISSING`` when the path does not exist."""
        if self.parts is None:
            found = compile_jmespath(self.text).search(record)
            return _MISSING if found is None else found
        node = record
        for part in self.parts:
            if isinstance(node, Mapping):
                if part not in node:
                    return _MISSING
                node = node[part]
            elif isinstance(node, list | tuple) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return _MISSING
        return node


def _put(target: dict[str, Any], parts: Sequence[str], value: Any) -> None:
    node = target
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def _is_null(value: Any, nulls: tuple[Any, ...]) -> bool:
    if value is None:
        return True
    for null in nulls:
        if isinstance(null, bool) or isinstance(value, bool):
            if isinstance(null, bool) and isinstance(value, bool) and null is value:
                return True
        elif isinstance(null, int | float) and isinstance(value, int | float):
            if null == value:
                return True
        elif type(null) is type(value) and null == value:
            return True
    return False


# --- the mapper ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rule:
    source: _Getter
    target: tuple[str, ...]
    target_name: str
    transforms: tuple[tuple[str, Callable[[Any, Direction], Any]], ...]
    nulls: tuple[Any, ...]
    required: bool
    has_default: bool
    default: Any


class Mapper:
    """A compiled set of mapping rules for one direction; immutable and safe to share.

    ``direction="inbound"`` reads each rule's ``external_field`` from their record and writes its
    ``internal_field``; ``"outbound"`` reads ``internal_field`` from our data and writes
    ``external_field``. The output holds the mapped fields only, unless ``keep_unmapped`` copies
    the other top-level keys of the input as they are. An empty rule list maps every record to a
    copy of itself.
    """

    __slots__ = ("_keep_unmapped", "_rules", "_used", "direction")

    def __init__(
        self,
        rules: Iterable[MappingRule],
        *,
        direction: Direction = "inbound",
        keep_unmapped: bool = False,
    ) -> None:
        if direction not in ("inbound", "outbound"):
            raise ValueError(f"direction must be 'inbound' or 'outbound', got {direction!r}")
        self.direction: Direction = direction
        compiled: list[_Rule] = []
        for rule in rules:
            source, target = (
                (rule.external_field, rule.internal_field)
                if direction == "inbound"
                else (rule.internal_field, rule.external_field)
            )
            if not _PLAIN_FIELD.match(target):
                raise SpecError(f"mapping target {target!r} must be a dotted field name")
            compiled.append(
                _Rule(
                    source=_Getter.of(source),
                    target=tuple(target.split(".")),
                    target_name=target,
                    transforms=tuple((name, _function(name)) for name in rule.transform),
                    nulls=tuple(rule.null_values),
                    required=rule.required,
                    has_default=rule.given("default"),
                    default=rule.default,
                )
            )
        self._rules = tuple(compiled)
        self._keep_unmapped = keep_unmapped or not compiled
        self._used = frozenset(r.source.top for r in compiled if r.source.top is not None)

    def __repr__(self) -> str:
        return f"Mapper({self.direction}, rules={len(self._rules)}, keep_unmapped={self._keep_unmapped})"

    def map_record(self, record: Any, index: int = 0) -> dict[str, Any]:
        """One record mapped; ``index`` is named in errors (the record's place in its page)."""
        if not isinstance(record, Mapping):
            raise ValidationError(
                f"record {index}: expected an object to map, got {_type_name(record)}",
                details=[{"record": index, "rule": "type"}],
            )
        out: dict[str, Any] = {}
        if self._keep_unmapped:
            for key, value in record.items():
                if key not in self._used:
                    out[str(key)] = value
        for rule in self._rules:
            value = rule.source.get(record)
            missing = value is _MISSING or _is_null(value, rule.nulls)
            if missing:
                if rule.has_default:
                    _put(out, rule.target, rule.default)
                elif rule.required:
                    state = "missing" if value is _MISSING else f"null ({sample(value)})"
                    raise ValidationError(
                        f"record {index}: required field {rule.source.text!r} is {state}",
                        details=[{"record": index, "field": rule.source.text, "rule": "required"}],
                    )
                elif self.direction == "inbound":
                    _put(out, rule.target, None)
                continue
            for name, function in rule.transforms:
                try:
                    value = function(value, self.direction)
                except _TransformFailed as exc:
                    shown = sample(value, name=rule.source.text)
                    raise ValidationError(
                        f"record {index}, field {rule.source.text!r}: transform {name} cannot convert "
                        f"{shown}: {exc}",
                        details=[
                            {
                                "record": index,
                                "field": rule.source.text,
                                "transform": name,
                                "value": shown,
                                "rule": "transform",
                            }
                        ],
                    ) from None
            _put(out, rule.target, value)
        return out

    def map_records(self, records: Iterable[Any], *, start: int = 0) -> list[dict[str, Any]]:
        """Every record mapped; errors name the record's index (counted from ``start``)."""
        return [self.map_record(record, index) for index, record in enumerate(records, start)]


_MAPPER_CACHE: OrderedDict[tuple[int, str, bool], tuple[object, Mapper]] = OrderedDict()
_MAPPER_CACHE_SIZE: Final = 256


def mapper_for(
    rules: Sequence[MappingRule], *, direction: Direction = "inbound", keep_unmapped: bool = False
) -> Mapper:
    """The ``Mapper`` for a rule tuple from a spec, compiled once and cached by identity."""
    key = (id(rules), direction, keep_unmapped)
    entry = _MAPPER_CACHE.get(key)
    if entry is not None and entry[0] is rules:
        _MAPPER_CACHE.move_to_end(key)
        return entry[1]
    mapper = Mapper(rules, direction=direction, keep_unmapped=keep_unmapped)
    _MAPPER_CACHE[key] = (rules, mapper)  # holding ``rules`` keeps its id from being reused
    if len(_MAPPER_CACHE) > _MAPPER_CACHE_SIZE:
        _MAPPER_CACHE.popitem(last=False)
    return mapper
