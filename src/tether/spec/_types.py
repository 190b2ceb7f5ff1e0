"""Value types of the spec: durations, sizes, percentages, secrets, expressions, statuses.

Each is an ``Annotated`` type: a validator that normalises loose input, a JSON serializer that
writes the value back the way a user would (``"5s"``, ``"50GB"``), a JSON Schema for editors, and
a ``Kind`` marker the docs generator reads.

Durations normalise to seconds (float). A bare number means **milliseconds** in ``Millis`` fields
(the INT template's unit for timeouts, delays and latency targets) and **seconds** in ``Seconds``
fields (TTLs, cooldowns, expiries: the template writes those in seconds); a string always carries
its unit: ``"500ms"``, ``"5s"``, ``"2m"``, ``"24h"``, ``"7d"``.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

import jmespath
import jmespath.exceptions
import jsonschema
import jsonschema.exceptions
import jsonschema.validators
from pydantic import AfterValidator, BeforeValidator, Field, GetCoreSchemaHandler, PlainSerializer
from pydantic.json_schema import JsonSchemaValue, WithJsonSchema
from pydantic_core import core_schema

from tether._redact import MASK, register_secret
from tether._units import parse_duration, parse_size
from tether.errors import AuthenticationError

__all__ = [
    "DURATION_PATTERN",
    "INTERNAL_CODES",
    "SIZE_PATTERN",
    "FieldRuleError",
    "HttpStatus",
    "InternalCode",
    "JMESPath",
    "JsonSchema",
    "Kind",
    "Millis",
    "Percent",
    "PerfMillis",
    "Ratio",
    "Regex",
    "Seconds",
    "SecretRef",
    "Size",
    "StatusPattern",
    "format_duration",
    "format_size",
    "status_matches",
]


class FieldRuleError(ValueError):
    """A rule broken by a value below the one being validated; ``path`` says which (for locations)."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path


@dataclass(frozen=True, slots=True)
class Kind:
    """Marks a value type for the docs generator: its name and how to write it."""

    name: str
    doc: str


# --- durations ------------------------------------------------------------------------------------

DURATION_PATTERN: Final = r"^\s*\d+(\.\d+)?\s*(ms|s|sec|m|min|h|d|w)?\s*$"
_NUMBER = re.compile(r"^\s*\d+(\.\d+)?\s*$")


def format_duration(seconds: float) -> str:
    """A duration the way a user writes it: ``"500ms"``, ``"5s"``, ``"2m"``, ``"24h"``, ``"7d"``."""
    if seconds == 0:
        return "0s"
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        count = seconds / size
        if count >= 1 and math.isclose(count, round(count), abs_tol=1e-9):
            return f"{round(count)}{unit}"
    millis = seconds * 1000
    if math.isclose(millis, round(millis), abs_tol=1e-6):
        return f"{round(millis)}ms"
    return f"{seconds:g}s"


def _duration(value: Any, *, bare_unit: float, bare_name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(
            f"must be a duration: a number of {bare_name} or a string with a unit such as "
            f"'500ms', '5s', '2m', '24h'; got {value!r}"
        )
    try:
        if isinstance(value, int | float) or _NUMBER.match(value):
            seconds = float(value) * bare_unit
        else:
            seconds = parse_duration(value, name="duration")
    except OverflowError:
        raise ValueError(f"duration {value!r} is too large") from None
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        raise ValueError(f"duration must be zero or positive and finite, got {value!r}")
    return seconds


def _millis(value: Any) -> Any:
    return _duration(value, bare_unit=0.001, bare_name="milliseconds")


def _seconds(value: Any) -> Any:
    return _duration(value, bare_unit=1.0, bare_name="seconds")


def _perf_millis(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip().removeprefix("<=").removeprefix("<").strip()
    return _millis(value)


def _duration_schema(unit: str) -> dict[str, Any]:
    return {
        "anyOf": [
            {"type": "number", "minimum": 0, "description": f"a number of {unit}"},
            {"type": "string", "pattern": DURATION_PATTERN},
        ]
    }


_DURATION_SERIALIZER = PlainSerializer(format_duration, return_type=str, when_used="json")

Millis = Annotated[
    float,
    BeforeValidator(_millis),
    _DURATION_SERIALIZER,
    WithJsonSchema(_duration_schema("milliseconds")),
    Kind("duration (ms)", "a duration; a bare number is milliseconds, or '500ms', '5s', '2m', '24h'"),
]
Seconds = Annotated[
    float,
    BeforeValidator(_seconds),
    _DURATION_SERIALIZER,
    WithJsonSchema(_duration_schema("seconds")),
    Kind("duration (s)", "a duration; a bare number is seconds, or '500ms', '5s', '2m', '24h'"),
]
PerfMillis = Annotated[
    float,
    BeforeValidator(_perf_millis),
    _DURATION_SERIALIZER,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": r"^\s*(<=?)?\s*\d+(\.\d+)?\s*(ms|s|sec|m|min|h|d|w)?\s*$"},
            ]
        }
    ),
    Kind("latency (ms)", "a latency target; a bare number is milliseconds; '< 200', '200ms', '1s'"),
]

# --- sizes ------------------------------------------------------------------------------------------

SIZE_PATTERN: Final = r"^\s*\d+(\.\d+)?\s*([kKmMgGtT]i?)?[bB]?\s*$"
_SIZE_UNITS: Final = (("TB", 1000**4), ("GB", 1000**3), ("MB", 1000**2), ("KB", 1000))
_BINARY_UNITS: Final = (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024))


def format_size(size: int) -> str:
    """A byte count the way a user writes it: ``"50GB"``, ``"512MiB"``, ``"100B"``."""
    for units in (_SIZE_UNITS, _BINARY_UNITS):
        for unit, factor in units:
            if size >= factor and size % factor == 0:
                return f"{size // factor}{unit}"
    return f"{size}B"


def _size(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"must be a size such as '50GB', '512MiB' or a number of bytes, got {value!r}")
    try:
        return parse_size(value)
    except OverflowError:
        raise ValueError(f"size {value!r} is too large") from None


Size = Annotated[
    int,
    BeforeValidator(_size),
    PlainSerializer(format_size, return_type=str, when_used="json"),
    WithJsonSchema(
        {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": SIZE_PATTERN}]}
    ),
    Kind("size", "a size: '50GB', '512MiB', '10MB' or a number of bytes"),
]

# --- percentages and ratios -----------------------------------------------------------------------

_PERCENT_RE = re.compile(r"^\s*(<=?|>=?)?\s*(\d+(?:\.\d+)?)\s*(%)?\s*$")


def _percent(value: Any) -> Any:
    if isinstance(value, str):
        match = _PERCENT_RE.match(value)
        if not match:
            raise ValueError(f"must be a percentage such as 95 or '99.9%', got {value!r}")
        value = float(match.group(2))
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a percentage such as 95 or '99.9%', got {value!r}")
    if not 0 <= value <= 100:
        raise ValueError(f"a percentage must be between 0 and 100, got {value!r}")
    return float(value)


def _ratio(value: Any) -> Any:
    if isinstance(value, str):
        match = _PERCENT_RE.match(value)
        if not match:
            raise ValueError(f"must be a ratio such as 0.05 or a percentage such as '5%', got {value!r}")
        number = float(match.group(2))
        value = number / 100 if match.group(3) else number
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a ratio such as 0.05 or a percentage such as '5%', got {value!r}")
    if not 0 <= value <= 1:
        raise ValueError(f"a ratio must be between 0 and 1 (or a percentage like '5%'), got {value!r}")
    return float(value)


Percent = Annotated[
    float,
    BeforeValidator(_percent),
    WithJsonSchema(
        {"anyOf": [{"type": "number", "minimum": 0, "maximum": 100}, {"type": "string", "pattern": r"%\s*$"}]}
    ),
    Kind("percent", "a percentage 0-100: 95 or '99.9%'"),
]
Ratio = Annotated[
    float,
    BeforeValidator(_ratio),
    WithJsonSchema(
        {"anyOf": [{"type": "number", "minimum": 0, "maximum": 1}, {"type": "string", "pattern": r"%\s*$"}]}
    ),
    Kind("ratio", "a ratio 0-1 (0.05) or a percentage ('5%')"),
]

# --- expressions ----------------------------------------------------------------------------------


def _jmespath(value: str) -> str:
    try:
        jmespath.compile(value)
    except (jmespath.exceptions.JMESPathError, ValueError, TypeError, RecursionError) as exc:
        raise ValueError(f"{value!r} is not a valid JMESPath expression ({exc})") from None
    return value


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except (re.error, RecursionError, OverflowError, ValueError) as exc:
        raise ValueError(f"{value!r} is not a valid regular expression ({exc})") from None
    return value


JMESPath = Annotated[
    str,
    AfterValidator(_jmespath),
    Kind("JMESPath", "a JMESPath expression evaluated over the response body (data, not code)"),
]
Regex = Annotated[str, AfterValidator(_regex), Kind("regex", "a regular expression (Python syntax)")]


def _json_schema(value: dict[str, Any]) -> dict[str, Any]:
    try:
        key = json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        key = None
    if key is not None and key in _CHECKED_SCHEMAS:
        return value
    _check_schema(value)
    if key is not None:
        if len(_CHECKED_SCHEMAS) >= _CHECKED_MAX:
            _CHECKED_SCHEMAS.clear()
        _CHECKED_SCHEMAS.add(key)
    return value


_CHECKED_SCHEMAS: set[str] = set()  # schemas already found valid (the same one is often inlined many times)
_CHECKED_MAX: Final = 1024


def _check_schema(value: dict[str, Any]) -> None:
    declared = value.get("$schema")
    if declared is not None and not isinstance(declared, str):
        raise ValueError("$schema must be a string")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        validator = jsonschema.validators.validator_for(value, default=jsonschema.Draft202012Validator)
    try:
        validator.check_schema(value)
    except jsonschema.exceptions.SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        raise ValueError(f"not a valid JSON Schema{f' at {where}' if where else ''}: {exc.message}") from None


JsonSchema = Annotated[
    dict[str, Any],
    AfterValidator(_json_schema),
    Kind("JSON Schema", "a JSON Schema (draft 2020-12 unless $schema says otherwise); $ref allowed"),
]

# --- HTTP statuses and error codes ----------------------------------------------------------------

HttpStatus = Annotated[int, Field(ge=100, le=599)]

_STATUS_RE = re.compile(r"^\s*(?:([1-5])[xX]{2}|(\d{3})(?:\s*-\s*(\d{3}))?)\s*$")


def _status_pattern(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"must be a status (404), a class ('5xx') or a range ('500-504'), got {value!r}")
    match = _STATUS_RE.match(str(value))
    if not match:
        raise ValueError(f"must be a status (404), a class ('5xx') or a range ('500-504'), got {value!r}")
    if match.group(1):
        return f"{match.group(1)}xx"
    low = int(match.group(2))
    high = int(match.group(3)) if match.group(3) else low
    if not 100 <= low <= high <= 599:
        raise ValueError(f"status range {value!r} must lie within 100-599 and run low to high")
    return str(low) if low == high else f"{low}-{high}"


StatusPattern = Annotated[
    str,
    BeforeValidator(_status_pattern),
    WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 100, "maximum": 599}, {"type": "string"}]}),
    Kind("status", "an HTTP status (404), a class ('5xx') or a range ('500-504')"),
]


def status_matches(pattern: str, status: int) -> bool:
    """Whether ``status`` is matched by a normalised ``StatusPattern``."""
    if pattern.endswith("xx"):
        return status // 100 == int(pattern[0])
    low, _, high = pattern.partition("-")
    return int(low) <= status <= int(high or low)


#: tether's error codes (``tether.errors``) an error mapping may name as ``internal_code``.
InternalCode = Literal[
    "CONN_001",
    "AUTH_001",
    "RATE_001",
    "VALID_001",
    "API_001",
    "TIMEOUT_001",
    "CIRCUIT_001",
    "NOTFOUND_001",
    "BULKHEAD_001",
    "BUDGET_001",
    "RIGHTS_001",
]
INTERNAL_CODES: Final[tuple[str, ...]] = InternalCode.__args__  # type: ignore[attr-defined]

# --- secrets --------------------------------------------------------------------------------------

_REF_RE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_BAD_REF_RE = re.compile(r"(?<!\$)\$\{")


class SecretRef:
    """A secret written in a spec: a literal, or a template of ``${VAR}`` / ``${VAR:-default}``.

    The loader keeps secret-bearing values (``authentication.config.secret``, ``client_secret``,
    ``password``, ``refresh_token``, ``private_key``) as references instead of reading
    the environment at load time, so a spec can be checked without its credentials and a rotated
    variable is picked up by the next ``resolve()``. A missing variable is reported when the
    auth layer resolves it, as ``AuthenticationError`` naming the variable and the spec location.
    The repr and the JSON form never show a literal secret or a default.
    """

    __slots__ = ("location", "template")

    def __init__(self, template: str, *, location: str | None = None) -> None:
        check_interpolation(template)
        self.template = template
        self.location = location

    @property
    def variables(self) -> tuple[str, ...]:
        """The environment variables this secret reads."""
        return tuple(m.group(1) for m in _REF_RE.finditer(self.template) if m.group(1))

    @property
    def is_literal(self) -> bool:
        """True when the secret is written in the spec itself (no ``${VAR}``)."""
        return not self.variables

    def resolve(self, environ: Mapping[str, str] | None = None) -> str:
        """The secret's value now; registered for masking. A missing variable is an auth error."""
        env = os.environ if environ is None else environ

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name is None:
                return "${"
            if name in env:
                return env[name]
            if default is not None:
                return default
            where = f" (spec {self.location})" if self.location else ""
            raise AuthenticationError(f"secret environment variable {name} is not set{where}")

        value = _REF_RE.sub(substitute, self.template)
        register_secret(value)
        return value

    def redacted(self) -> str:
        """The template with literals and defaults masked: safe to print."""
        if self.is_literal:
            return MASK

        def mask(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name is None:
                return "$${"
            return f"${{{name}:-{MASK}}}" if default is not None else f"${{{name}}}"

        pieces: list[str] = []
        last = 0
        for match in _REF_RE.finditer(self.template):
            pieces.append(MASK if match.start() > last else "")
            pieces.append(mask(match))
            last = match.end()
        if last < len(self.template):
            pieces.append(MASK)
        return "".join(pieces)

    def __repr__(self) -> str:
        return f"SecretRef({self.redacted()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretRef) and other.template == self.template

    def __hash__(self) -> int:
        return hash(("SecretRef", self.template))

    @classmethod
    def _validate(cls, value: Any) -> SecretRef:
        if isinstance(value, SecretRef):
            return value
        if isinstance(value, str):
            return cls(value)
        raise ValueError(f"a secret must be a string such as '${{API_KEY}}', got {type(value).__name__}")

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._validate,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda ref: ref.redacted(), return_schema=core_schema.str_schema()
            ),
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: core_schema.CoreSchema, handler: Any) -> JsonSchemaValue:
        return {
            "type": "string",
            "description": "a secret: '${ENV_VAR}' (read when the integration starts) or a literal",
        }


def check_interpolation(text: str) -> None:
    """Raise ``ValueError`` when ``text`` has a ``${`` that is not a well-formed reference."""
    stripped = _REF_RE.sub("", text)
    if _BAD_REF_RE.search(stripped):
        raise ValueError(
            f"malformed ${{...}} reference in {text!r}: write ${{NAME}} or ${{NAME:-default}} "
            "(NAME is letters, digits and _), or $${ for a literal ${"
        )


REF_PATTERN: Final = _REF_RE
