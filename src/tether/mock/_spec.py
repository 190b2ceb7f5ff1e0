"""A mock of a spec's API: one ``FaultServer`` route per endpoint, answering with an example body.

::

    from tether.mock import serve_spec
    from tether.spec import load

    server = await serve_spec(load("specs/dataapi.yaml"), fault_rate=0.1, seed=7)
    ...  # call server.url + "/v1/data/ITEM-1"
    await server.stop()

Each endpoint's success body is generated from its success schema by a small, deterministic
example generator (``example_for``): ``examples`` / ``example`` / ``default`` / ``const`` /
``enum`` first, then objects with every property, arrays of 3 items, strings honouring ``format``
and ``pattern``, numbers within their bounds. Paginated endpoints answer one last page (records at
the ``records`` path; ``has_more`` false, ``total_pages`` 1, no next cursor). With ``fault_rate``
a seeded ``Chaos`` replaces answers with the chosen faults; with ``enforce_limits`` the spec's own
rate limit is enforced per route by the server (429 with ``Retry-After`` over it).
"""

from __future__ import annotations

import importlib
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from tether._units import Duration, parse_duration
from tether.mock._faults import Chaos, Fault
from tether.mock._server import FaultServer
from tether.spec import Spec
from tether.spec._endpoint import Endpoint, MappingRule

__all__ = [
    "FAULT_KINDS",
    "MockRoute",
    "check_loopback",
    "example_for",
    "fault_for",
    "routes_for",
    "serve_spec",
]

#: The fault kinds ``--faults`` accepts: an HTTP status (400..599), ``reset`` or ``timeout``.
FAULT_KINDS: Final = ("500", "503", "429", "reset", "timeout")
ARRAY_ITEMS: Final = 3
_EXAMPLE_DATE: Final = "2024-01-01"
_EXAMPLE_DATETIME: Final = "2024-01-01T00:00:00Z"
_FORMATS: Final = {
    "date": _EXAMPLE_DATE,
    "date-time": _EXAMPLE_DATETIME,
    "time": "00:00:00Z",
    "email": "user@example.com",
    "idn-email": "user@example.com",
    "uri": "https://example.com/",
    "iri": "https://example.com/",
    "uri-reference": "https://example.com/",
    "url": "https://example.com/",
    "hostname": "example.com",
    "idn-hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "duration": "P1D",
}
_TRANSFORM_EXAMPLES: Final[dict[str, Any]] = {
    "date": _EXAMPLE_DATE,
    "datetime": _EXAMPLE_DATETIME,
    "epoch_s": 1704067200,
    "epoch_ms": 1704067200000,
    "float": "1.5",
    "decimal": "1.5",
    "int": "1",
    "bool": True,
}
_DOTTED: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
# The regex parser of the standard library (``re._parser``; ``sre_parse`` warns on import).
_RE_PARSER: Final[Any] = importlib.import_module("re._parser")


@dataclass(frozen=True)
class MockRoute:
    """One endpoint's route on the mock: what ``FaultServer.route`` is called with."""

    endpoint: str
    method: str
    path: str
    responses: tuple[Fault, ...]
    rate_limit: str | None = None
    burst: int | None = None
    chaos: Chaos | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON route spec (``FaultServer.load_routes`` / ``python -m tether.mock --routes``)."""
        spec: dict[str, Any] = {
            "method": self.method,
            "path": self.path,
            "responses": [f.to_dict() for f in self.responses],
        }
        if self.rate_limit is not None:
            spec["rate_limit"] = self.rate_limit
        if self.burst is not None:
            spec["burst"] = self.burst
        if self.chaos is not None:
            spec["chaos"] = self.chaos.to_dict()
        return spec

    def install(self, server: FaultServer) -> None:
        """Add this route to ``server``."""
        server.route(
            self.method,
            self.path,
            *self.responses,
            rate_limit=self.rate_limit,
            burst=self.burst,
            chaos=self.chaos,
        )


# --- loopback ---------------------------------------------------------------------------------------


def check_loopback(host: str) -> str:
    """``host`` when it is a loopback address (``localhost``, 127.0.0.0/8, ``::1``); else ValueError."""
    text = host.strip().strip("[]")
    if text.lower() == "localhost":
        return host
    try:
        loopback = ipaddress.ip_address(text).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the mock binds loopback addresses only (127.0.0.1, ::1, localhost), not {host!r}")
    return host


# --- faults -----------------------------------------------------------------------------------------


def fault_for(kind: str) -> Fault:
    """The fault for one ``--faults`` entry: a status (``503``), ``429``, ``reset`` or ``timeout``."""
    name = kind.strip().lower()
    if name == "reset":
        return Fault.reset()
    if name == "timeout":
        return Fault.hang()
    if name == "429":
        return Fault.rate_limited(retry_after=1)
    if name.isdigit() and 400 <= int(name) <= 599:
        code = int(name)
        return Fault.status(code, json={"error": "injected fault", "status": code})
    raise ValueError(f"unknown fault {kind!r}: use an HTTP status 400..599, 'reset' or 'timeout'")


def _chaos(fault_rate: float, faults: Iterable[str], seed: int | None) -> Chaos | None:
    if isinstance(fault_rate, bool) or not 0.0 <= fault_rate <= 1.0:
        raise ValueError(f"fault_rate must be between 0 and 1, got {fault_rate!r}")
    chosen = tuple(fault_for(k) for k in faults)
    if fault_rate == 0.0:
        return None
    if not chosen:
        raise ValueError("a fault_rate above 0 needs at least one fault kind")
    return Chaos(fault_rate, chosen, seed)


# --- rate limit -------------------------------------------------------------------------------------

_WINDOW_SECONDS: Final = {
    "requests_per_second": 1,
    "requests_per_minute": 60,
    "requests_per_hour": 3600,
    "requests_per_day": 86400,
    "requests_per_month": 30 * 86400,
}
_WINDOW_NAMES: Final = {1: "second", 60: "minute", 3600: "hour", 86400: "day"}


def rate_limit_for(spec: Spec) -> tuple[str | None, int | None]:
    """The spec's tightest sustained rate as a ``FaultServer`` rate limit, and its burst."""
    if spec.rate_limits is None:
        return None, None
    effective = spec.rate_limits.effective()
    best: tuple[float, int, int] | None = None
    for window, count in effective.windows().items():
        period = _WINDOW_SECONDS[window]
        rate = count / period
        if best is None or rate < best[0]:
            best = (rate, count, period)
    if best is None:
        return None, None
    _, count, period = best
    rate_limit = f"{count}/{_WINDOW_NAMES.get(period, f'{period}s')}"
    burst = effective.burst_size or None
    return rate_limit, burst


# --- example bodies ---------------------------------------------------------------------------------


def example_for(schema: Any) -> Any:
    """A deterministic example value that satisfies ``schema`` (a JSON Schema, ``$ref``s resolved)."""
    if not isinstance(schema, Mapping):
        return None
    examples = schema.get("examples")
    if isinstance(examples, Sequence) and not isinstance(examples, str) and examples:
        return examples[0]
    for key in ("example", "default", "const"):
        if key in schema:
            return schema[key]
    enum = schema.get("enum")
    if isinstance(enum, Sequence) and not isinstance(enum, str) and enum:
        return enum[0]
    for key in ("oneOf", "anyOf"):
        options = schema.get(key)
        if isinstance(options, Sequence) and options:
            usable = [o for o in options if not (isinstance(o, Mapping) and o.get("type") == "null")]
            return example_for({**_without(schema, key), **(usable or list(options))[0]})
    all_of = schema.get("allOf")
    if isinstance(all_of, Sequence) and all_of:
        return example_for(_merge([_without(schema, "allOf"), *all_of]))
    kind = _type_of(schema)
    if kind == "object":
        return _object(schema)
    if kind == "array":
        return _array(schema)
    if kind == "string":
        return _string(schema)
    if kind in ("integer", "number"):
        return _number(schema, integer=kind == "integer")
    if kind == "boolean":
        return True
    return None


def _without(schema: Mapping[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k != key}


def _merge(schemas: Sequence[Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for part in schemas:
        if not isinstance(part, Mapping):
            continue
        for key, value in part.items():
            if key == "properties" and isinstance(value, Mapping):
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required" and isinstance(value, Sequence):
                merged["required"] = [*merged.get("required", []), *value]
            else:
                merged[key] = value
    return merged


def _type_of(schema: Mapping[str, Any]) -> str | None:
    declared = schema.get("type")
    if isinstance(declared, str):
        return declared
    if isinstance(declared, Sequence) and declared:
        non_null = [t for t in declared if t != "null"]
        return str(non_null[0]) if non_null else "null"
    if "properties" in schema or "required" in schema or "additionalProperties" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    if "pattern" in schema or "format" in schema or "minLength" in schema:
        return "string"
    if "minimum" in schema or "maximum" in schema:
        return "number"
    return None


def _object(schema: Mapping[str, Any]) -> dict[str, Any]:
    properties = schema.get("properties")
    result: dict[str, Any] = {}
    if isinstance(properties, Mapping):
        for name, sub in properties.items():
            result[str(name)] = example_for(sub)
    required = schema.get("required")
    if isinstance(required, Sequence) and not isinstance(required, str):
        extra = schema.get("additionalProperties")
        for name in required:
            if name not in result:
                result[str(name)] = example_for(extra) if isinstance(extra, Mapping) else "example"
    return result


def _array(schema: Mapping[str, Any]) -> list[Any]:
    count = ARRAY_ITEMS
    low, high = schema.get("minItems"), schema.get("maxItems")
    if isinstance(low, int):
        count = max(count, low)
    if isinstance(high, int):
        count = min(count, high)
    prefix = schema.get("prefixItems")
    head = [example_for(s) for s in prefix] if isinstance(prefix, Sequence) else []
    items = schema.get("items")
    if head and (items is False or items is None):
        return head[:count] if len(head) >= count else head
    tail = [example_for(items) for _ in range(max(0, count - len(head)))]
    values = head + tail
    if schema.get("uniqueItems") and values:
        return values[:1]
    return values


def _string(schema: Mapping[str, Any]) -> str:
    fmt = schema.get("format")
    pattern = schema.get("pattern")
    if isinstance(fmt, str) and fmt in _FORMATS:
        value = _FORMATS[fmt]
    elif isinstance(pattern, str):
        value = _from_pattern(pattern)
    else:
        value = "example"
    low, high = schema.get("minLength"), schema.get("maxLength")
    if isinstance(low, int) and len(value) < low:
        value = value + "x" * (low - len(value))
    if isinstance(high, int) and len(value) > high:
        value = value[:high]
    return value


def _number(schema: Mapping[str, Any], *, integer: bool) -> int | float:
    value: float = 1 if integer else 1.5
    low = schema.get("minimum")
    high = schema.get("maximum")
    ex_low = schema.get("exclusiveMinimum")
    ex_high = schema.get("exclusiveMaximum")
    step = 1 if integer else 0.5
    if isinstance(ex_low, int | float) and not isinstance(ex_low, bool) and value <= ex_low:
        value = ex_low + step
    if isinstance(low, int | float) and not isinstance(low, bool) and value < low:
        value = low
    if isinstance(ex_high, int | float) and not isinstance(ex_high, bool) and value >= ex_high:
        value = ex_high - step
    if isinstance(high, int | float) and not isinstance(high, bool) and value > high:
        value = high
    if integer:
        return int(value) if float(value).is_integer() else int(value) + 1
    return float(value)


def _from_pattern(pattern: str) -> str:
    """A string matching ``pattern`` (common regexes; ``"example"`` when it cannot make one)."""
    try:
        parsed = _RE_PARSER.parse(pattern)
        candidate = _render(parsed)
        if re.search(pattern, candidate):
            return candidate
    except (re.error, ValueError, TypeError, RecursionError):
        pass
    return "example"


def _render(items: Iterable[Any]) -> str:
    out: list[str] = []
    for op, arg in items:
        name = str(op)
        if name == "LITERAL":
            out.append(chr(arg))
        elif name == "NOT_LITERAL":
            out.append("a" if chr(arg) != "a" else "b")
        elif name == "ANY":
            out.append("a")
        elif name == "IN":
            out.append(_from_set(arg))
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, sub = arg
            count = max(low, 1)
            if high is not None and high != _RE_PARSER.MAXREPEAT:
                count = min(count, high)
            out.append(_render(sub) * count)
        elif name in ("SUBPATTERN", "ATOMIC_GROUP"):
            out.append(_render(arg[-1]))
        elif name == "BRANCH":
            out.append(_render(arg[1][0]))
        # AT (anchors), ASSERT, ASSERT_NOT, GROUPREF: nothing to emit
    return "".join(out)


def _from_set(items: Sequence[Any]) -> str:
    negate = any(str(op) == "NEGATE" for op, _ in items)
    if negate:
        chars = "".join(c for c in "aA0_-x" if _set_has(items, c))
        return next((c for c in "aA0x_-" if c not in chars), "~")
    for op, arg in items:
        name = str(op)
        if name == "LITERAL":
            return chr(arg)
        if name == "RANGE":
            return chr(arg[0])
        if name == "CATEGORY":
            category = str(arg)
            if "DIGIT" in category and "NOT" not in category:
                return "0"
            if "SPACE" in category and "NOT" not in category:
                return " "
            return "a"
    return "a"


def _set_has(items: Sequence[Any], char: str) -> bool:
    code = ord(char)
    for op, arg in items:
        name = str(op)
        if name == "LITERAL" and arg == code:
            return True
        if name == "RANGE" and arg[0] <= code <= arg[1]:
            return True
        if name == "CATEGORY":
            category = str(arg)
            if "DIGIT" in category and char.isdigit():
                return True
            if "WORD" in category and (char.isalnum() or char == "_"):
                return True
    return False


# --- bodies per endpoint ------------------------------------------------------------------------------


def _get(body: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(body, Mapping) or part not in body:
            return None
        body = body[part]
    return body


def _set(body: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    here = body
    for part in parts[:-1]:
        nxt = here.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            here[part] = nxt
        here = nxt
    here[parts[-1]] = value


def _fill_mapped(record: Any, rules: Sequence[MappingRule]) -> Any:
    """Give a record the external fields the inbound mapping needs (when the record lacks them)."""
    if not isinstance(record, dict):
        return record
    for rule in rules:
        field = rule.external_field
        if not _DOTTED.match(field) or _get(record, field) is not None:
            continue
        typed = [str(t) for t in rule.transform if str(t) in _TRANSFORM_EXAMPLES]
        if rule.default is not None:
            value = rule.default
        else:
            value = _TRANSFORM_EXAMPLES[typed[0]] if typed else "example"
        _set(record, field, value)
    return record


def _records_schema(schema: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(schema, Mapping):
            return None
        properties = schema.get("properties")
        if not isinstance(properties, Mapping) or part not in properties:
            return None
        schema = properties[part]
    return schema.get("items") if isinstance(schema, Mapping) else None


def body_for(spec: Spec, endpoint: Endpoint) -> Any:
    """The example success body of ``endpoint`` (JSON-ready)."""
    success = endpoint.response.success if endpoint.response is not None else None
    schema = success.schema_ if success is not None else None
    mappings = endpoint.data_mappings if endpoint.data_mappings is not None else spec.data_mappings
    rules = mappings.inbound if mappings is not None else ()
    body = example_for(schema) if schema is not None else None
    records_path = endpoint.records
    if records_path is not None and _DOTTED.match(records_path):
        if not isinstance(body, dict):
            body = {}
        records = _get(body, records_path)
        if not isinstance(records, list) or not records:
            item_schema = _records_schema(schema, records_path)
            records = [
                example_for(item_schema) if item_schema is not None else {"id": i + 1}
                for i in range(ARRAY_ITEMS)
            ]
        _set(body, records_path, [_fill_mapped(r, rules) for r in records])
        _last_page(body, endpoint, len(records))
    elif schema is None:
        body = {"ok": True}
    elif isinstance(body, list):
        body = [_fill_mapped(item, rules) for item in body]
    else:
        body = _fill_mapped(body, rules)
    return body


def _last_page(body: dict[str, Any], endpoint: Endpoint, count: int) -> None:
    """Make ``body`` say it is the last page, so a paginating client stops after it."""
    pagination = endpoint.pagination
    if pagination is None:
        return
    stop = pagination.stop
    for path, value in (
        (stop.has_more_path, False),
        (stop.total_path, count),
        (stop.total_pages_path, 1),
        (getattr(pagination, "cursor_path", None), None),
        (getattr(pagination, "next_url_path", None), None),
    ):
        if isinstance(path, str) and _DOTTED.match(path):
            _set(body, path, value)


def _success_fault(spec: Spec, endpoint: Endpoint, latency: float) -> Fault:
    success = endpoint.response.success if endpoint.response is not None else None
    status = success.status[0] if success is not None and success.status else 200
    content_type = success.content_type if success is not None else "application/json"
    if status in (204, 304):
        return Fault.ok(status=status, latency=latency)
    body = body_for(spec, endpoint)
    if endpoint.streaming is not None:
        text = f"event: message\ndata: {_compact(body)}\n\n"
        return Fault.ok(text=text, status=status, content_type="text/event-stream", latency=latency)
    if "json" not in content_type.lower():
        text = body if isinstance(body, str) else _compact(body)
        return Fault.ok(text=text, status=status, content_type=content_type, latency=latency)
    return Fault.ok(json=body, status=status, latency=latency)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def mock_path(spec: Spec, endpoint: Endpoint) -> str:
    """The route path: the base URL's path prefix + the endpoint's path (``{name}`` kept)."""
    prefix = urlsplit(spec.base_url).path.rstrip("/")
    return prefix + endpoint.path


# --- routes and the server -----------------------------------------------------------------------------


def routes_for(
    spec: Spec,
    *,
    fault_rate: float = 0.0,
    faults: Iterable[str] = FAULT_KINDS,
    latency: Duration = 0.0,
    seed: int | None = None,
    enforce_limits: bool = True,
) -> list[MockRoute]:
    """One ``MockRoute`` per endpoint of ``spec``, in spec order.

    ``fault_rate`` (0..1) of the requests get one of ``faults`` (``"503"``, ``"429"``, ``"reset"``,
    ``"timeout"`` …) at random, seeded by ``seed`` (each route gets its own derived seed);
    ``latency`` delays every success; ``enforce_limits`` makes each route enforce the spec's
    tightest rate limit and burst.
    """
    seconds = parse_duration(latency, name="latency")
    kinds = tuple(faults)
    rate_limit, burst = rate_limit_for(spec) if enforce_limits else (None, None)
    routes: list[MockRoute] = []
    for index, (name, endpoint) in enumerate(spec.endpoints.items()):
        route_seed = None if seed is None else seed + index
        routes.append(
            MockRoute(
                endpoint=name,
                method=endpoint.method,
                path=mock_path(spec, endpoint),
                responses=(_success_fault(spec, endpoint, seconds),),
                rate_limit=rate_limit,
                burst=burst if rate_limit is not None else None,
                chaos=_chaos(fault_rate, kinds, route_seed),
            )
        )
    return routes


async def serve_spec(
    spec: Spec,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    record: bool = True,
    fault_rate: float = 0.0,
    faults: Iterable[str] = FAULT_KINDS,
    latency: Duration = 0.0,
    seed: int | None = None,
    enforce_limits: bool = True,
) -> FaultServer:
    """A started ``FaultServer`` on loopback answering every endpoint of ``spec`` (stop it with
    ``await server.stop()``). A non-loopback ``host`` is a ``ValueError``."""
    check_loopback(host)
    routes = routes_for(
        spec,
        fault_rate=fault_rate,
        faults=faults,
        latency=latency,
        seed=seed,
        enforce_limits=enforce_limits,
    )
    server = FaultServer(host, port, record=record)
    for route in routes:
        route.install(server)
    await server.start()
    return server
