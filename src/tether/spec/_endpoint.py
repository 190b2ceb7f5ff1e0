"""Endpoints: request parameters, headers and body, responses, pagination, records, mappings."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import BeforeValidator, Field, NonNegativeInt, PositiveInt, model_validator
from pydantic.json_schema import WithJsonSchema

from tether.spec._base import AlsoAccepts, HeaderName, SpecModel, any_case, lower_text
from tether.spec._normalize import normalize_endpoint, raise_on_problems
from tether.spec._sections import Streaming, Timeouts
from tether.spec._types import (
    FieldRuleError,
    HttpStatus,
    JMESPath,
    JsonSchema,
    Kind,
    PerfMillis,
    Regex,
    Seconds,
    _jmespath,
)

__all__ = [
    "Body",
    "Components",
    "CursorPagination",
    "DataMappings",
    "Endpoint",
    "EndpointCache",
    "ErrorResponseSpec",
    "FieldRef",
    "HeaderSpec",
    "Incremental",
    "LinkHeaderPagination",
    "MappingRule",
    "NextUrlPagination",
    "OffsetPagination",
    "PagePagination",
    "Pagination",
    "PaginationStop",
    "Parameter",
    "Parent",
    "Performance",
    "Response",
    "SuccessResponse",
    "Transform",
    "WaitSource",
]

# --- parameters and headers ------------------------------------------------------------------------

ParamType = Literal["string", "number", "integer", "boolean", "array", "object", "date", "datetime"]
_NUMERIC: Final = ("number", "integer")


class Parameter(SpecModel):
    """One request parameter, validated before the request is sent."""

    name: Annotated[str, Field(min_length=1)]
    """The parameter's name as the API spells it."""
    in_: Literal["path", "query", "header", "body"] = Field("query", alias="in")
    """Where it goes: ``path`` (fills ``{name}`` in the path), ``query``, ``header`` or ``body``."""
    type: Annotated[ParamType, BeforeValidator(lower_text), any_case(*ParamType.__args__)] = "string"
    """Its type; values are checked (and dates formatted) before sending."""
    required: bool | None = None
    """Whether a value must be given (path parameters always are)."""
    enum: tuple[Any, ...] | None = None
    """The allowed values."""
    pattern: Regex | None = None
    """A regular expression a string value must match in full."""
    minimum: float | None = None
    """Smallest allowed number."""
    maximum: float | None = None
    """Largest allowed number."""
    min_length: NonNegativeInt | None = None
    """Shortest allowed string (or array)."""
    max_length: NonNegativeInt | None = None
    """Longest allowed string (or array)."""
    default: Any = None
    """The value sent when the caller gives none."""
    description: str | None = None
    """What the parameter means."""

    @property
    def is_required(self) -> bool:
        """Required, with path parameters required by nature."""
        return self.in_ == "path" or bool(self.required)

    @model_validator(mode="after")
    def _consistent(self) -> Parameter:
        if self.in_ == "path" and self.required is False:
            raise FieldRuleError(("required",), f"path parameter {self.name!r} cannot be optional")
        if self.pattern is not None and self.type not in ("string", "date", "datetime"):
            raise FieldRuleError(("pattern",), f"pattern applies to string parameters, not {self.type}")
        for key in ("minimum", "maximum"):
            if getattr(self, key) is not None and self.type not in _NUMERIC:
                raise FieldRuleError(
                    (key,), f"{key} applies to number and integer parameters, not {self.type}"
                )
        for key in ("min_length", "max_length"):
            if getattr(self, key) is not None and self.type not in ("string", "array"):
                raise FieldRuleError((key,), f"{key} applies to string and array parameters, not {self.type}")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise FieldRuleError(("minimum",), f"minimum {self.minimum:g} is above maximum {self.maximum:g}")
        if self.min_length is not None and self.max_length is not None and self.min_length > self.max_length:
            raise FieldRuleError(
                ("min_length",), f"min_length {self.min_length} is above max_length {self.max_length}"
            )
        if self.enum is not None and not self.enum:
            raise FieldRuleError(("enum",), "enum must list at least one value")
        if "default" in self.model_fields_set and self.enum is not None and self.default not in self.enum:
            raise FieldRuleError(
                ("default",), f"default {self.default!r} is not one of enum {list(self.enum)}"
            )
        given_default = "default" in self.model_fields_set and isinstance(self.default, str)
        if given_default and self.pattern is not None and not re.fullmatch(self.pattern, self.default):
            raise FieldRuleError(
                ("default",), f"default {self.default!r} does not match pattern {self.pattern!r}"
            )
        return self


class HeaderSpec(SpecModel):
    """A request header the endpoint sends or expects."""

    name: HeaderName
    """The header's name."""
    required: bool = False
    """Whether the caller must supply it (when it has no ``value``)."""
    value: str | None = None
    """A fixed value sent with every request (``${VAR}`` is interpolated at load time)."""
    pattern: Regex | None = None
    """A regular expression a caller-supplied value must match."""
    description: str | None = None
    """What the header is for."""


# --- body and responses ----------------------------------------------------------------------------

_CONTENT_TYPES: Final = {
    "json": "application/json",
    "form": "application/x-www-form-urlencoded",
    "multipart": "multipart/form-data",
}


def _content_type(value: Any) -> Any:
    if isinstance(value, str):
        lowered = value.strip().lower()
        return _CONTENT_TYPES.get(lowered, lowered)
    return value


class Body(SpecModel):
    """The request body."""

    content_type: Annotated[
        Literal["application/json", "application/x-www-form-urlencoded", "multipart/form-data"],
        BeforeValidator(_content_type),
        WithJsonSchema({"type": "string", "enum": [*_CONTENT_TYPES.values(), *_CONTENT_TYPES]}),
    ] = "application/json"
    """How the body is encoded: ``json`` (application/json) or ``form``
    (application/x-www-form-urlencoded), or ``multipart/form-data``."""
    schema_: JsonSchema | None = Field(None, alias="schema")
    """JSON Schema the body is validated against before sending (``$ref`` allowed)."""
    required: bool = True
    """Whether a body must be given."""


def _wait_source(value: Any) -> Any:
    return {"header": value} if isinstance(value, str) else value


class WaitSource(SpecModel):
    """Where to read how long to wait before trying again."""

    header: HeaderName | None = None
    """A response header (e.g. ``Retry-After``, ``X-RateLimit-Reset``)."""
    body: JMESPath | None = None
    """A JMESPath into the response body (e.g. ``error.retry_in``)."""
    format: Literal["seconds", "milliseconds", "epoch_s", "epoch_ms", "http_date"] = "seconds"
    """How the value is written (``Retry-After`` accepts seconds and HTTP dates either way)."""

    @model_validator(mode="after")
    def _one(self) -> WaitSource:
        if (self.header is None) == (self.body is None):
            raise ValueError("give exactly one of header or body")
        return self


WaitFrom = Annotated[
    WaitSource, BeforeValidator(_wait_source), AlsoAccepts({"type": "string", "description": "a header name"})
]


def _statuses(value: Any) -> Any:
    return (value,) if isinstance(value, int | str) and not isinstance(value, bool) else value


class SuccessResponse(SpecModel):
    """What a successful response looks like."""

    status: Annotated[
        tuple[HttpStatus, ...], BeforeValidator(_statuses), AlsoAccepts({"type": "integer"})
    ] = (200,)
    """Success status (or statuses)."""
    content_type: str = "application/json"
    """Expected content type."""
    schema_: JsonSchema | None = Field(None, alias="schema")
    """JSON Schema the body is validated against (``ValidationError`` when it does not match)."""


class ErrorResponseSpec(SpecModel):
    """A documented error response."""

    description: str | None = None
    """What the error means."""
    schema_: JsonSchema | None = Field(None, alias="schema")
    """JSON Schema of the error body."""
    retry_after: WaitFrom | None = None
    """Where the wait is (a header name, or ``{header|body, format}``), e.g. for 429."""


_ERROR_KEY = re.compile(r"^([1-5][0-9]{2}|[1-5][xX]{2}|default)$")


class Response(SpecModel):
    """The endpoint's responses."""

    success: SuccessResponse = SuccessResponse()
    """The success response."""
    errors: dict[str, ErrorResponseSpec] = Field(default_factory=dict)
    """Documented errors by status (``'400'``, ``'429'``), class (``'5xx'``) or ``default``."""

    @model_validator(mode="after")
    def _keys(self) -> Response:
        for key in self.errors:
            if not _ERROR_KEY.match(key):
                raise FieldRuleError(
                    ("errors", key),
                    f"error response key {key!r} must be a status ('429'), a class ('5xx') or 'default'",
                )
        return self


class Performance(SpecModel):
    """Latency targets (bare numbers are milliseconds; ``"< 200"`` as the template writes it works)."""

    p50: PerfMillis | None = None
    """Median latency target."""
    p95: PerfMillis | None = None
    """95th percentile latency target."""
    p99: PerfMillis | None = None
    """99th percentile latency target."""


# --- pagination ------------------------------------------------------------------------------------


class PaginationStop(SpecModel):
    """When to stop fetching pages (any condition that holds stops)."""

    on_empty: bool = True
    """Stop at a page with no records."""
    on_short_page: bool = False
    """Stop at a page with fewer records than the page size."""
    has_more_path: JMESPath | None = None
    """JMESPath to a boolean in the body; stop when it is false."""
    total_path: JMESPath | None = None
    """JMESPath to the total record count; stop once that many were read."""
    total_pages_path: JMESPath | None = None
    """JMESPath to the total page count; stop after the last page."""
    max_records: PositiveInt | None = None
    """Stop after this many records."""


class _PaginationBase(SpecModel):
    DEFAULT_MAX_PAGES: ClassVar[int] = 100

    max_pages: PositiveInt = DEFAULT_MAX_PAGES
    """Never fetch more pages than this (a repeated cursor or URL also stops)."""
    stop: PaginationStop = PaginationStop()
    """Stop conditions."""


class PagePagination(_PaginationBase):
    """Page-number pagination: ``?page=1&per_page=100``."""

    type: Literal["page"]
    """``page``."""
    page_param: str = "page"
    """Query parameter carrying the page number."""
    size_param: str | None = "per_page"
    """Query parameter carrying the page size (sent when ``page_size`` is set)."""
    page_size: PositiveInt | None = None
    """Records per page to ask for."""
    start_page: NonNegativeInt = 1
    """Number of the first page."""


class OffsetPagination(_PaginationBase):
    """Offset/limit pagination: ``?offset=0&limit=100``."""

    type: Literal["offset"]
    """``offset``."""
    offset_param: str = "offset"
    """Query parameter carrying the offset."""
    limit_param: str = "limit"
    """Query parameter carrying the limit."""
    limit: PositiveInt = 100
    """Records per page."""
    start: NonNegativeInt = 0
    """The first offset."""


class CursorPagination(_PaginationBase):
    """Cursor pagination: the next cursor is read from the body and sent as a parameter."""

    type: Literal["cursor"]
    """``cursor``."""
    cursor_param: str = "cursor"
    """Query parameter carrying the cursor."""
    cursor_path: JMESPath
    """JMESPath to the next cursor in the body (missing or null: last page)."""
    size_param: str | None = None
    """Query parameter carrying the page size."""
    page_size: PositiveInt | None = None
    """Records per page to ask for."""


class NextUrlPagination(_PaginationBase):
    """The body names the next page's URL (same origin only: credentials never leave it)."""

    type: Literal["next_url"]
    """``next_url``."""
    next_url_path: JMESPath
    """JMESPath to the next page's URL in the body."""


class LinkHeaderPagination(_PaginationBase):
    """RFC 8288 ``Link`` header pagination (GitHub style)."""

    type: Literal["link_header"]
    """``link_header``."""
    rel: str = "next"
    """The link relation of the next page."""


Pagination = Annotated[
    PagePagination | OffsetPagination | CursorPagination | NextUrlPagination | LinkHeaderPagination,
    Field(discriminator="type"),
]

# --- data mappings ---------------------------------------------------------------------------------

Transform = Literal[
    "float",
    "int",
    "decimal",
    "str",
    "bool",
    "date",
    "datetime",
    "epoch_ms",
    "epoch_s",
    "lower",
    "upper",
    "strip",
]
_PLAIN_FIELD = re.compile(r"^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*$")


def _field_ref(value: str) -> str:
    if _PLAIN_FIELD.match(value):
        return value
    return _jmespath(value)


FieldRef = Annotated[
    str,
    BeforeValidator(lambda v: str(v) if isinstance(v, int) and not isinstance(v, bool) else v),
    Field(min_length=1),
]


def _transforms(value: Any) -> Any:
    return (value,) if isinstance(value, str) else value


class MappingRule(SpecModel):
    """One field mapping between their shape and ours."""

    external_field: FieldRef
    """Their field: a dotted path (``quote.price``) or, inbound, a JMESPath expression."""
    internal_field: FieldRef
    """Our field: a dotted path."""
    transform: Annotated[
        tuple[Transform, ...], BeforeValidator(_transforms), AlsoAccepts({"enum": list(Transform.__args__)})
    ] = ()
    """A named transform or a list applied in order; the set is closed (no code in specs):
    float int decimal str bool date datetime epoch_ms epoch_s lower upper strip."""
    null_values: tuple[Any, ...] = ()
    """Values that mean "no value" (e.g. ``""``, ``"N/A"``, ``"."``)."""
    required: bool = False
    """A missing (or null) value is a ``ValidationError``."""
    default: Any = None
    """The value used when theirs is missing or null."""


class DataMappings(SpecModel):
    """Field mappings: inbound (their response → our record) and outbound (our input → their request)."""

    inbound: tuple[MappingRule, ...] = ()
    """Applied to each response record."""
    outbound: tuple[MappingRule, ...] = ()
    """Applied to request parameters and bodies."""

    @model_validator(mode="after")
    def _fields(self) -> DataMappings:
        for direction in ("inbound", "outbound"):
            for index, rule in enumerate(getattr(self, direction)):
                plain_side = "internal_field" if direction == "inbound" else "external_field"
                expr_side = "external_field" if direction == "inbound" else "internal_field"
                if not _PLAIN_FIELD.match(getattr(rule, plain_side)):
                    raise FieldRuleError(
                        (direction, index, plain_side),
                        f"{plain_side} must be a dotted field name, got {getattr(rule, plain_side)!r}",
                    )
                try:
                    _field_ref(getattr(rule, expr_side))
                except ValueError as exc:
                    raise FieldRuleError((direction, index, expr_side), str(exc)) from None
        return self


# --- the endpoint ----------------------------------------------------------------------------------


def _endpoint_cache(value: Any) -> Any:
    if isinstance(value, bool):
        return {"enabled": value}
    if isinstance(value, int | float | str):
        return {"ttl": value}
    return value


class EndpointCache(SpecModel):
    """Per-endpoint cache settings (``cache: false`` turns it off, ``cache: 1h`` sets the TTL)."""

    enabled: bool = True
    """Cache this endpoint's responses (when the spec's cache is configured)."""
    ttl: Seconds | None = None
    """Freshness for this endpoint (e.g. data 30 s, daily history 1 h, metadata 24 h)."""
    stale_if_error: Seconds | None = None
    """Overrides the spec's ``cache.stale_if_error`` for this endpoint."""


class Incremental(SpecModel):
    """Incremental runs of the bulk job (``tether fetch``): only records newer than the last run's.

    The job keeps, per input row, the highest ``cursor_field`` value it wrote, and the next run
    sends it as ``start_param`` (less ``lookback``); records at or below the kept value that
    were already written are skipped, so a run never writes a record twice.
    """

    cursor_field: JMESPath
    """Where each record holds its cursor: a date, a timestamp or an increasing id (``date``)."""
    start_param: str
    """The request parameter that starts the records from a cursor value (``start``, ``since``)."""
    end_param: str | None = None
    """The request parameter that ends them (for ``--until`` and chunked backfills)."""
    initial_value: Any = None
    """The start of the first run, when no state is kept yet and ``--since`` is not given."""
    lookback: Seconds | None = None
    """Start this much before the kept value, to pick up late or changed records (a duration for
    date and time cursors, ``3d``; the amount itself for numeric ones). Records in the window
    are written again."""
    chunk: Seconds | None = None
    """Split a ``--since``/``--until`` range into chunks this long (a duration, or an amount for
    numeric cursors) that run as separate units of work, in parallel."""


class Parent(SpecModel):
    """Fan-out: this endpoint's input rows are the records of another endpoint (across all its
    pages), like a list of series whose observations are then fetched one series at a time."""

    endpoint: str
    """The parent endpoint of the same spec (``list_series``)."""
    fields: Annotated[dict[str, str], Field(min_length=1)]
    """Which field of each parent record fills which parameter of this endpoint (``{id: series_id}``)."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Parameters for the parent's calls."""


_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
Method = Literal["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
_IDEMPOTENT_METHODS: Final = frozenset({"GET", "PUT", "DELETE", "HEAD", "OPTIONS"})


def _method(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


class Endpoint(SpecModel):
    """One operation of the API. Written flat, or nested the template's way (``endpoint:``,
    ``request:``, ``response:``, ``performance:`` blocks); both load to this model."""

    path: Annotated[
        str, Field(pattern=r"^/"), Kind("path", "a path starting with /, {name} for path parameters")
    ]
    """Path below the base URL; ``{name}`` placeholders are filled from path parameters."""
    method: Annotated[Method, BeforeValidator(_method), any_case(*Method.__args__)] = "GET"
    """The HTTP method."""
    description: str | None = None
    """What this endpoint does."""
    headers: tuple[HeaderSpec, ...] = ()
    """Request headers (template: ``request.headers``)."""
    parameters: tuple[Parameter, ...] = ()
    """Request parameters (template: ``request.parameters``)."""
    body: Body | None = None
    """Request body (template: ``request.body``)."""
    response: Response | None = None
    """Expected responses."""
    performance: Performance | None = None
    """Latency targets (reported against measured latency)."""
    idempotent: bool | None = None
    """Safe to retry without an idempotency key (default: true for GET, PUT, DELETE, HEAD, OPTIONS)."""
    deprecated: bool = False
    """Calling it emits a deprecation warning event."""
    pagination: Pagination | None = None
    """How to fetch further pages (``Integration.paginate``)."""
    records: JMESPath | None = None
    """JMESPath to the list of records in the body (e.g. ``data.items``)."""
    cache: (
        Annotated[
            EndpointCache,
            BeforeValidator(_endpoint_cache),
            AlsoAccepts({"type": ["boolean", "number", "string"]}),
        ]
        | None
    ) = None
    """Per-endpoint cache TTL / opt-out."""
    timeouts: Timeouts | None = None
    """Per-endpoint timeouts, laid over the spec's."""
    streaming: Streaming | None = None
    """This endpoint streams (SSE)."""
    rights: tuple[str, ...] = ()
    """Rights the integration's rights profile must grant to call it (e.g. ``export``)."""
    dlq: bool | None = None
    """Park this endpoint's failed calls in the dead-letter queue (the ``dlq`` section, or the
    fallback strategy ``queue``). When no endpoint says ``true``, the ``queue`` strategy parks
    every endpoint's failures except those with ``false``."""
    data_mappings: DataMappings | None = None
    """Per-endpoint field mappings (replacing the spec's)."""
    incremental: Incremental | None = None
    """Incremental runs of the bulk job: the cursor field and the parameter that starts from it."""
    parent: Parent | None = None
    """Fan-out: the endpoint whose records become this endpoint's input rows."""

    @model_validator(mode="before")
    @classmethod
    def _flatten(cls, data: Any) -> Any:
        flat, _, problems = normalize_endpoint(data)
        raise_on_problems(problems)
        return flat

    @property
    def is_idempotent(self) -> bool:
        """Whether a failed call may be retried without an idempotency key."""
        return self.idempotent if self.idempotent is not None else self.method in _IDEMPOTENT_METHODS

    @property
    def path_parameters(self) -> tuple[str, ...]:
        """The ``{name}`` placeholders of the path, in order."""
        return tuple(_PLACEHOLDER.findall(self.path))

    @model_validator(mode="after")
    def _consistent(self) -> Endpoint:
        placeholders = self.path_parameters
        seen: set[tuple[str, str]] = set()
        for index, param in enumerate(self.parameters):
            key = (param.in_, param.name)
            if key in seen:
                raise FieldRuleError(
                    ("parameters", index, "name"), f"parameter {param.name!r} ({param.in_}) is declared twice"
                )
            seen.add(key)
            if param.in_ == "path" and param.name not in placeholders:
                raise FieldRuleError(
                    ("parameters", index, "name"),
                    f"path parameter {param.name!r} has no {{{param.name}}} in {self.path!r}",
                )
        names = {p.name for p in self.parameters}
        incremental = self.incremental
        if incremental is not None:
            for attribute in ("start_param", "end_param"):
                value = getattr(incremental, attribute)
                if value is not None and value not in names:
                    raise FieldRuleError(
                        ("incremental", attribute), f"{value!r} is not a parameter of this endpoint"
                    )
        if self.parent is not None:
            for field_name, target in self.parent.fields.items():
                if target not in names:
                    raise FieldRuleError(
                        ("parent", "fields", field_name), f"{target!r} is not a parameter of this endpoint"
                    )
        declared = {p.name for p in self.parameters if p.in_ == "path"}
        for name in placeholders:
            if name not in declared:
                raise FieldRuleError(
                    ("path",), f"{{{name}}} in {self.path!r} needs a parameter with name: {name}, in: path"
                )
        return self


class Components(SpecModel):
    """Reusable definitions, referenced with ``$ref: '#/components/schemas/Name'``."""

    schemas: dict[str, JsonSchema] = Field(default_factory=dict)
    """JSON Schemas by name."""
    parameters: dict[str, Parameter] = Field(default_factory=dict)
    """Parameters by name (``$ref: '#/components/parameters/Name'`` in a parameter list)."""
    headers: dict[str, HeaderSpec] = Field(default_factory=dict)
    """Headers by name."""
