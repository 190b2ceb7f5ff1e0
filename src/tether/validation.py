"""Validation: request parameters before sending, bodies and responses against their JSON Schema.

```python
from tether.validation import validate_body, validate_params, validate_response

prepared = validate_params(endpoint, {"series_id": "GDP", "limit": 10})
prepared.render_path(endpoint.path), prepared.query, prepared.headers, prepared.body
validate_body(endpoint, {"items": [...]})     # RequestValidationError at $.items[2].price
validate_response(schema, response.json())    # ValidationError at $.data[0].close
```

Parameter problems are collected, not stopped at: one ``RequestValidationError`` lists every
problem (``details`` holds one entry per problem with ``parameter``, ``rule`` and ``message``),
and ``parameter`` names the first. Nothing in a message shows a credential: samples of values are
short, masked by parameter name, and masked again by secret value.

Schemas are JSON Schema, draft 2020-12 unless their ``$schema`` says otherwise, with format
checking on (``date``, ``date-time``, ``time``, ``email``, ``ipv4``, ``ipv6``, ``uuid``, ``uri``,
``hostname``, ``regex`` …). ``$ref`` to the spec's components is inlined by the spec loader. Each
schema's validator is compiled once and cached.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Final
from urllib.parse import quote, urlsplit

import jsonschema
import jsonschema.exceptions
import jsonschema.protocols
import jsonschema.validators
import referencing.exceptions

from tether._redact import MASK, redact_text, registry
from tether.errors import RequestValidationError, SpecError, ValidationError
from tether.spec._endpoint import Endpoint, HeaderSpec, Parameter

__all__ = [
    "FORMAT_CHECKER",
    "PreparedParams",
    "Violation",
    "compile_schema",
    "first_violation",
    "json_path",
    "validate_body",
    "validate_params",
    "validate_response",
]

_SAMPLE_MAX: Final = 40
_MESSAGE_MAX: Final = 300

# --- value rendering -----------------------------------------------------------------------------


def _sample(value: Any, name: str | None = None) -> str:
    if name is not None and (registry.is_sensitive_param(name) or registry.is_sensitive_header(name)):
        return MASK
    text = redact_text(repr(value))
    return text if len(text) <= _SAMPLE_MAX else text[: _SAMPLE_MAX - 3] + "..."


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def _scalar_text(value: Any) -> str:
    """How a scalar is written in a URL or header: booleans lower-case, dates ISO 8601."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date | time):  # datetime is a date
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


# --- parameters ----------------------------------------------------------------------------------

_INTEGER_TEXT = re.compile(r"^[+-]?\d+$")
_NUMBER_TEXT = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_BOOL_TEXT: Final = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}
_DATE_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True, slots=True)
class _Problem:
    parameter: str
    rule: str
    message: str


class _Invalid(Exception):
    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message


def _coerce(param: Parameter, value: Any) -> Any:
    """The value in the parameter's type (strings from a command line are accepted)."""
    kind = param.type
    if kind == "string":
        if isinstance(value, str):
            return value
        if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
            return _scalar_text(value)
        raise _Invalid("type", f"expected a string, got {_type_name(value)}")
    if kind == "integer":
        if isinstance(value, bool):
            raise _Invalid("type", "expected an integer, got boolean")
        if isinstance(value, int):
            return value
        if isinstance(value, float | Decimal) and math.isfinite(value) and value == int(value):
            return int(value)
        if isinstance(value, str) and _INTEGER_TEXT.match(value.strip()):
            return int(value.strip())
        raise _Invalid("type", f"expected an integer, got {_sample(value, param.name)}")
    if kind == "number":
        if isinstance(value, bool):
            raise _Invalid("type", "expected a number, got boolean")
        if isinstance(value, int | float | Decimal):
            if isinstance(value, float | Decimal) and not math.isfinite(value):
                raise _Invalid("type", "expected a finite number")
            return value
        if isinstance(value, str) and _NUMBER_TEXT.match(value.strip()):
            text = value.strip()
            return int(text) if _INTEGER_TEXT.match(text) else float(text)
        raise _Invalid("type", f"expected a number, got {_sample(value, param.name)}")
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _BOOL_TEXT:
            return _BOOL_TEXT[value.strip().lower()]
        raise _Invalid("type", f"expected a boolean, got {_sample(value, param.name)}")
    if kind == "array":
        if isinstance(value, list | tuple):
            return list(value)
        raise _Invalid("type", f"expected an array, got {_type_name(value)}")
    if kind == "object":
        if isinstance(value, Mapping):
            return dict(value)
        raise _Invalid("type", f"expected an object, got {_type_name(value)}")
    if kind == "date":
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        if isinstance(value, str) and _DATE_TEXT.match(value.strip()):
            try:
                return date.fromisoformat(value.strip())
            except ValueError:
                pass
        raise _Invalid("type", f"expected a date (YYYY-MM-DD), got {_sample(value, param.name)}")
    # datetime
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            pass
    raise _Invalid("type", f"expected an ISO 8601 date-time, got {_sample(value, param.name)}")


def _enum_matches(value: Any, allowed: tuple[Any, ...]) -> bool:
    text = _scalar_text(value)
    for option in allowed:
        if isinstance(option, bool) != isinstance(value, bool):
            if _scalar_text(option) == text:
                return True
            continue
        if option == value or _scalar_text(option) == text:
            return True
    return False


def _check(param: Parameter, value: Any) -> list[_Invalid]:
    """Every rule (beyond the type) the coerced value breaks."""
    problems: list[_Invalid] = []
    name = param.name
    if param.enum is not None and not _enum_matches(value, param.enum):
        options = ", ".join(_scalar_text(o) for o in param.enum)
        problems.append(_Invalid("enum", f"{_sample(value, name)} is not one of: {options}"))
    if param.pattern is not None:
        text = _scalar_text(value)
        if not re.fullmatch(param.pattern, text):
            problems.append(
                _Invalid("pattern", f"{_sample(text, name)} does not match pattern {param.pattern!r}")
            )
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        if param.minimum is not None and value < param.minimum:
            problems.append(_Invalid("minimum", f"{_sample(value, name)} is below minimum {param.minimum:g}"))
        if param.maximum is not None and value > param.maximum:
            problems.append(_Invalid("maximum", f"{_sample(value, name)} is above maximum {param.maximum:g}"))
    if isinstance(value, str | list):
        unit = "characters" if isinstance(value, str) else "items"
        if param.min_length is not None and len(value) < param.min_length:
            problems.append(
                _Invalid("min_length", f"has {len(value)} {unit}, fewer than min_length {param.min_length}")
            )
        if param.max_length is not None and len(value) > param.max_length:
            problems.append(
                _Invalid("max_length", f"has {len(value)} {unit}, more than max_length {param.max_length}")
            )
    return problems


def _json_ready(value: Any) -> Any:
    """A value as it goes into a JSON or form body."""
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


@dataclass(frozen=True, slots=True)
class PreparedParams:
    """Validated parameters, split by where they go.

    ``path``, ``query`` and ``headers`` hold text (booleans ``true``/``false``, dates ISO 8601,
    arrays as repeated query values or comma-joined in paths and headers); ``body`` holds the
    JSON-ready values of ``in: body`` parameters (form or JSON fields). ``headers`` includes the
    endpoint's fixed header values.
    """

    path: dict[str, str] = field(default_factory=dict)
    query: dict[str, str | list[str]] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)

    def render_path(self, template: str) -> str:
        """``template`` with each ``{name}`` replaced by its percent-encoded path value."""

        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in self.path:
                raise RequestValidationError(f"no value for path parameter {name!r}", parameter=name)
            return quote(self.path[name], safe="")

        return re.sub(r"\{([^{}]*)\}", fill, template)


def _place(prepared: PreparedParams, param: Parameter, value: Any) -> None:
    where = param.in_
    if where == "body":
        prepared.body[param.name] = (
            [_json_ready(v) for v in value] if isinstance(value, list) else _json_ready(value)
        )
    elif where == "query":
        prepared.query[param.name] = (
            [_scalar_text(v) for v in value] if isinstance(value, list) else _scalar_text(value)
        )
    else:
        text = ",".join(_scalar_text(v) for v in value) if isinstance(value, list) else _scalar_text(value)
        if where == "path":
            prepared.path[param.name] = text
        else:
            prepared.headers[param.name] = text


def _suggest(name: str, candidates: Sequence[str]) -> str:
    lowered = {c.lower(): c for c in candidates}
    if name.lower() in lowered:
        return f"; did you mean {lowered[name.lower()]!r}?"
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    if candidates:
        return f"; parameters: {', '.join(sorted(candidates))}"
    return "; this endpoint takes no parameters"


def _header_problems(spec: HeaderSpec, value: Any) -> list[_Problem]:
    if not isinstance(value, str):
        return [_Problem(spec.name, "type", f"expected a string, got {_type_name(value)}")]
    if spec.pattern is not None and not re.fullmatch(spec.pattern, value):
        shown = _sample(value, spec.name)
        return [_Problem(spec.name, "pattern", f"{shown} does not match pattern {spec.pattern!r}")]
    return []


def validate_params(
    endpoint: Endpoint,
    params: Mapping[str, Any],
    *,
    endpoint_name: str | None = None,
    service: str | None = None,
) -> PreparedParams:
    """Check ``params`` against the endpoint's parameters and split them by location.

    Defaults are applied to missing (or ``None``) values; then required, type, enum, pattern,
    minimum / maximum and min_length / max_length are checked. A name the endpoint does not
    declare is rejected with the closest declared name. Caller-supplied headers the endpoint
    declares (``headers:`` without a fixed ``value``) are accepted by their header name. Every
    problem is reported in one ``RequestValidationError``.
    """
    prepared = PreparedParams()
    problems: list[_Problem] = []
    declared: dict[str, None] = {}
    for param in endpoint.parameters:
        declared.setdefault(param.name, None)
        value = params.get(param.name)
        if value is None and param.default is not None:
            value = param.default
        if value is None:
            if param.is_required:
                problems.append(
                    _Problem(param.name, "required", f"required {param.in_} parameter is missing")
                )
            continue
        try:
            coerced = _coerce(param, value)
        except _Invalid as exc:
            problems.append(_Problem(param.name, exc.rule, exc.message))
            continue
        broken = _check(param, coerced)
        problems.extend(_Problem(param.name, b.rule, b.message) for b in broken)
        if not broken:
            _place(prepared, param, coerced)
    header_names: dict[str, HeaderSpec] = {}
    for spec in endpoint.headers:
        if spec.value is not None:
            prepared.headers[spec.name] = spec.value
            continue
        header_names[spec.name.lower()] = spec
    given_headers: dict[str, str] = {}
    for key in params:
        if key in declared:
            continue
        spec_for = header_names.get(key.lower())
        if spec_for is not None:
            given_headers[spec_for.name] = key
    for spec in header_names.values():
        given_key = given_headers.get(spec.name)
        value = params.get(given_key) if given_key is not None else None
        if value is None:
            if spec.required:
                problems.append(_Problem(spec.name, "required", "required header is missing"))
            continue
        found = _header_problems(spec, value)
        problems.extend(found)
        if not found:
            prepared.headers[spec.name] = value
    known = [*declared, *(s.name for s in header_names.values())]
    used_headers = set(given_headers.values())
    for key in params:
        if key in declared or key in used_headers:
            continue
        problems.append(_Problem(key, "unknown", f"unknown parameter{_suggest(key, known)}"))
    if problems:
        where = f" for {endpoint_name}" if endpoint_name else ""
        listed = "; ".join(f"{p.parameter}: {p.message} ({p.rule})" for p in problems)
        count = f"{len(problems)} problems" if len(problems) > 1 else "1 problem"
        raise RequestValidationError(
            f"invalid parameters{where} ({count}): {listed}",
            parameter=problems[0].parameter,
            endpoint=endpoint_name,
            service=service,
            details=[{"parameter": p.parameter, "rule": p.rule, "message": p.message} for p in problems],
        )
    return prepared


# --- JSON Schema ---------------------------------------------------------------------------------

_RFC3339_DATE_TIME = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)
_RFC3339_TIME = re.compile(r"^(\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_HOSTNAME_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")


def _offset_ok(offset: str) -> bool:
    return offset in ("Z", "z") or (int(offset[1:3]) < 24 and int(offset[4:6]) < 60)


def _clock_ok(hour: str, minute: str, second: str) -> bool:
    return int(hour) < 24 and int(minute) < 60 and int(second) <= 60  # 60: a leap second


def _check_date_time(instance: object) -> bool:
    if not isinstance(instance, str):
        return True
    match = _RFC3339_DATE_TIME.match(instance)
    if not match:
        return False
    day, hour, minute, second, _, offset = match.groups()
    try:
        date.fromisoformat(day)
    except ValueError:
        return False
    return _clock_ok(hour, minute, second) and _offset_ok(offset)


def _check_time(instance: object) -> bool:
    if not isinstance(instance, str):
        return True
    match = _RFC3339_TIME.match(instance)
    if not match:
        return False
    hour, minute, second, _, offset = match.groups()
    return _clock_ok(hour, minute, second) and _offset_ok(offset)


def _check_hostname(instance: object) -> bool:
    if not isinstance(instance, str):
        return True
    name = instance[:-1] if instance.endswith(".") else instance
    return 0 < len(name) <= 253 and all(_HOSTNAME_LABEL.match(label) for label in name.split("."))


def _check_uri(instance: object) -> bool:
    if not isinstance(instance, str):
        return True
    if any(c.isspace() or ord(c) < 32 for c in instance):
        return False
    try:
        parts = urlsplit(instance)
    except ValueError:
        return False
    return bool(parts.scheme) and bool(_URI_SCHEME.match(parts.scheme))


def _format_checker() -> jsonschema.FormatChecker:
    base = jsonschema.Draft202012Validator.FORMAT_CHECKER
    checker = jsonschema.FormatChecker(formats=())
    checker.checkers = dict(base.checkers)
    # jsonschema needs optional packages for these; tether checks them itself.
    for name, check in (
        ("date-time", _check_date_time),
        ("time", _check_time),
        ("hostname", _check_hostname),
        ("uri", _check_uri),
    ):
        checker.checkers.setdefault(name, (check, ()))
    return checker


#: The format checker used for every schema (draft 2020-12 formats plus date-time, time, uri, hostname).
FORMAT_CHECKER: Final = _format_checker()

_CACHE_SIZE: Final = 512
_cache: OrderedDict[int, tuple[dict[str, Any], jsonschema.protocols.Validator]] = OrderedDict()
_cache_lock = threading.Lock()


def compile_schema(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    """The validator for ``schema``: draft 2020-12 (or its ``$schema``), format checking on.

    Compiled once per schema object and cached (a bounded LRU that holds the schema, so its
    identity stays valid). An invalid schema is a ``SpecError``.
    """
    key = id(schema)
    with _cache_lock:
        entry = _cache.get(key)
        if entry is not None and entry[0] is schema:
            _cache.move_to_end(key)
            return entry[1]
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        raise SpecError(f"not a valid JSON Schema: {exc.message}") from None
    validator = cls(schema, format_checker=FORMAT_CHECKER)
    with _cache_lock:
        _cache[key] = (schema, validator)
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return validator


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def json_path(parts: Sequence[str | int]) -> str:
    """A JSONPath for a location: ``$``, ``$.items[2].price``, ``$['odd key']``."""
    out = ["$"]
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _IDENTIFIER.match(part):
            out.append(f".{part}")
        else:
            escaped = part.replace("\\", "\\\\").replace("'", "\\'")
            out.append(f"['{escaped}']")
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Violation:
    """The first place a document breaks its schema."""

    path: str
    """JSONPath of the offending value (``$.items[2].price``)."""
    rule: str
    """The schema keyword broken (``type``, ``minimum``, ``required``, ``format`` …)."""
    message: str
    """What is wrong, with a short redacted sample of the value."""
    count: int
    """How many violations there are in all."""

    def describe(self) -> str:
        """``$.items[2].price: -1 is less than the minimum of 0 (minimum)``, plus the others' count."""
        more = f" (and {self.count - 1} more)" if self.count > 1 else ""
        return f"{self.path}: {self.message} ({self.rule}){more}"


def _deepest(error: jsonschema.exceptions.ValidationError) -> jsonschema.exceptions.ValidationError:
    """For anyOf / oneOf, the most relevant error among the branches (jsonschema's heuristics)."""
    if not error.context:
        return error
    return jsonschema.exceptions.best_match([error]) or error


def _error_message(error: jsonschema.exceptions.ValidationError) -> str:
    message = error.message
    instance_repr = repr(error.instance)
    last = error.absolute_path[-1] if error.absolute_path else None
    shown = _sample(error.instance, last if isinstance(last, str) else None)
    if message.startswith(instance_repr):
        message = shown + message[len(instance_repr) :]
    elif instance_repr in message:
        message = message.replace(instance_repr, shown)
    message = redact_text(message)
    return message if len(message) <= _MESSAGE_MAX else message[: _MESSAGE_MAX - 3] + "..."


def _errors(schema: dict[str, Any], data: Any) -> Iterator[jsonschema.exceptions.ValidationError]:
    validator = compile_schema(schema)
    try:
        yield from validator.iter_errors(data)
    except referencing.exceptions.Unresolvable as exc:
        raise SpecError(f"schema has an unresolvable $ref: {exc}") from None


def first_violation(schema: dict[str, Any], data: Any) -> Violation | None:
    """The first violation of ``schema`` by ``data`` in document order, or ``None`` when valid."""
    errors = list(_errors(schema, data))
    if not errors:
        return None
    first = min(errors, key=lambda e: _document_order(e, data))
    cause = _deepest(first)
    return Violation(
        path=json_path(list(cause.absolute_path)),
        rule=str(cause.validator),
        message=_error_message(cause),
        count=len(errors),
    )


def _document_order(error: jsonschema.exceptions.ValidationError, data: Any) -> tuple[Any, ...]:
    """A sort key placing errors in the order their values appear in the document."""
    key: list[Any] = []
    node = data
    for part in error.absolute_path:
        if isinstance(node, Mapping):
            keys = list(node)
            key.append(keys.index(part) if part in node else len(keys))
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int):
            key.append(part)
            node = node[part] if part < len(node) else None
        else:
            key.append(0)
    # A problem with a container (e.g. a missing property) comes before its children's.
    return (*key, -1)


def validate_body(
    endpoint: Endpoint,
    body: Any,
    *,
    endpoint_name: str | None = None,
    service: str | None = None,
) -> None:
    """Check a request body against the endpoint's ``body:``; a ``RequestValidationError`` if not.

    A missing body where one is required, a form body that is not a flat object, and the first
    schema violation (named by its JSON path) are reported; nothing is sent.
    """
    spec = endpoint.body
    if spec is None:
        return
    common: dict[str, Any] = {"endpoint": endpoint_name, "service": service}
    if body is None:
        if spec.required:
            raise RequestValidationError(
                "request body is required",
                parameter="body",
                details=[{"parameter": "body", "path": "$", "rule": "required"}],
                **common,
            )
        return
    if spec.content_type == "application/x-www-form-urlencoded":
        if not isinstance(body, Mapping):
            raise RequestValidationError(
                f"a form body must be an object of fields, got {_type_name(body)}",
                parameter="body",
                details=[{"parameter": "body", "path": "$", "rule": "type"}],
                **common,
            )
        for key, value in body.items():
            values = value if isinstance(value, list | tuple) else [value]
            if any(isinstance(v, Mapping | list | tuple) for v in values):
                path = json_path([str(key)])
                raise RequestValidationError(
                    f"request body {path}: a form field holds text, numbers or a list of them",
                    parameter="body",
                    details=[{"parameter": "body", "path": path, "rule": "type"}],
                    **common,
                )
    if spec.schema_ is None:
        return
    violation = first_violation(spec.schema_, _plain(body))
    if violation is not None:
        raise RequestValidationError(
            f"request body does not match its schema at {violation.describe()}",
            parameter="body",
            details=[{"parameter": "body", "path": violation.path, "rule": violation.rule}],
            **common,
        )


def _plain(value: Any) -> Any:
    """Python values as the JSON document they will be sent as (tuples as arrays, dates as text)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return _json_ready(value)


def validate_response(
    schema: dict[str, Any] | None,
    data: Any,
    *,
    endpoint: str | None = None,
    service: str | None = None,
    request_id: str | None = None,
) -> None:
    """Check a response body against ``schema``; a ``ValidationError`` naming the first violation.

    The response came back, so this is a ``ValidationError`` and not a rejection: ``details``
    holds the JSON path and the rule.
    """
    if schema is None:
        return
    violation = first_violation(schema, data)
    if violation is not None:
        raise ValidationError(
            f"response body does not match its schema at {violation.describe()}",
            endpoint=endpoint,
            service=service,
            request_id=request_id,
            details=[{"path": violation.path, "rule": violation.rule, "message": violation.message}],
        )
