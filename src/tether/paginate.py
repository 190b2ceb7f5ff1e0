"""Pagination: page number, offset/limit, cursor, next URL and RFC 8288 ``Link`` header.

A paginator decides *what* to fetch; the caller fetches it (through the whole pipeline) and
hands the page back. One paginator serves one run: ``first()`` starts (and resets) it.

```python
paginator = paginator_for(endpoint.pagination, base_url=spec.base_url)
request = paginator.first(params)                  # -> PageRequest
while request is not None:
    page = await fetch(request)                    # -> Page(body, headers, records, url)
    ...
    request = paginator.next(request, page)        # None: stop (paginator.stop_reason says why)

async for page in iterate_pages(paginator, fetch, params): ...   # the same loop
```

A ``PageRequest`` carries either query-parameter overrides (``params``, merged over the call's
own query) or an absolute ``url`` whose query is complete (next URL and ``Link`` pagination).
For a URL, ``cross_origin`` says whether its origin (scheme, host, port) differs from the
integration's base URL: such a request must go out **without credentials**.
``readd_credentials`` says whether to attach the integration's credentials (never for a
cross-origin URL; for a same-origin one when the paginator's ``readd_credentials`` is on, which
it is unless the spec turns it off).

Stop conditions, from the spec's ``stop:`` block (any one that holds stops): ``max_pages``
pages fetched, ``max_records`` records read, an empty page (``on_empty``), a short page
(``on_short_page``), ``has_more_path`` false, ``total_path`` records read,
``total_pages_path`` pages read, and no next cursor / URL / link. A cursor or URL that was
already fetched is a ``ResponseError(reason="pagination_loop")`` instead of an endless loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, Final

import httpx2

from tether._redact import redact_text, redact_url, registry
from tether.errors import RequestValidationError, ResponseError
from tether.mapping import search
from tether.spec._endpoint import (
    CursorPagination,
    LinkHeaderPagination,
    NextUrlPagination,
    OffsetPagination,
    PagePagination,
)

__all__ = [
    "CursorPaginator",
    "Link",
    "LinkHeaderPaginator",
    "NextUrlPaginator",
    "OffsetPaginator",
    "Page",
    "PageCheckpoint",
    "PagePaginator",
    "PageRequest",
    "Paginator",
    "find_link",
    "format_link_header",
    "iterate_checkpointed",
    "iterate_pages",
    "paginator_for",
    "parse_link_header",
]

PaginationOptions = (
    PagePagination | OffsetPagination | CursorPagination | NextUrlPagination | LinkHeaderPagination
)
Origin = tuple[str, str, int]

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_SAMPLE_MAX: Final = 80

# --- what the caller fetches and hands back ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PageRequest:
    """What to fetch next.

    ``index`` counts pages from 0. ``params`` are query parameters to lay over the call's own
    (page number, offset, cursor, size). ``url``, when set, is the absolute URL to fetch instead
    of the endpoint's (its query is complete: send it as it is). ``cross_origin`` is true when
    that URL leaves the base origin; ``readd_credentials`` says whether to sign the request with
    the integration's credentials (always false when ``cross_origin``).
    """

    index: int
    params: Mapping[str, str] = field(default_factory=dict)
    url: str | None = None
    cross_origin: bool = False
    readd_credentials: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data; a URL's credential-like query parameters are left out (the auth
        stage adds the integration's own again when the request goes to its origin)."""
        url = None
        if self.url is not None:
            parsed = httpx2.URL(self.url)
            kept = [(k, v) for k, v in parsed.params.multi_items() if not registry.is_sensitive_param(k)]
            url = str(parsed.copy_with(params=kept))
        return {
            "index": self.index,
            "params": dict(self.params),
            "url": url,
            "cross_origin": self.cross_origin,
            "readd_credentials": self.readd_credentials,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PageRequest:
        """The inverse of ``to_dict``; ``ValueError`` when ``data`` is not one."""
        try:
            index = data["index"]
            params = data.get("params") or {}
            url = data.get("url")
            if isinstance(index, bool) or not isinstance(index, int) or index < 0:
                raise ValueError(f"index must be a whole number >= 0, got {index!r}")
            if not isinstance(params, Mapping) or (url is not None and not isinstance(url, str)):
                raise ValueError("params must be an object and url a string")
            return cls(
                index,
                {str(k): str(v) for k, v in params.items()},
                url,
                bool(data.get("cross_origin", False)),
                bool(data.get("readd_credentials", True)),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a page request: {exc}") from None


@dataclass(frozen=True, slots=True)
class PageCheckpoint:
    """Where a paginated run stands after a completed page: the ``next`` page to fetch and how
    many pages and records were read before it. Plain data (``to_dict`` / ``from_dict``) so a
    job can keep it with the records it wrote and ``Paginator.resume`` from it after a crash."""

    next: PageRequest
    pages: int
    records: int

    def to_dict(self) -> dict[str, Any]:
        return {"next": self.next.to_dict(), "pages": self.pages, "records": self.records}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PageCheckpoint:
        """The inverse of ``to_dict``; ``ValueError`` when ``data`` is not one."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a page checkpoint is an object, got {type(data).__name__}")
        pages, records = data.get("pages"), data.get("records")
        for name, value in (("pages", pages), ("records", records)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
        assert isinstance(pages, int) and isinstance(records, int)
        return cls(PageRequest.from_dict(data.get("next") or {}), pages, records)


@dataclass(frozen=True, slots=True)
class Page:
    """One fetched page: the parsed ``body``, the response ``headers``, the ``records`` selected
    from the body, and the ``url`` actually fetched (relative next links resolve against it).
    ``response`` carries whatever the fetch function wants along (an ``httpx2.Response``, a
    ``tether.Result``)."""

    body: Any
    headers: Mapping[str, str]
    records: Sequence[Any]
    url: str
    response: Any = None


# --- helpers -------------------------------------------------------------------------------------


def _origin(url: httpx2.URL) -> Origin:
    scheme = url.scheme.lower()
    port = url.port if url.port is not None else _DEFAULT_PORTS.get(scheme, 0)
    return scheme, url.host.lower(), port


def _short(value: str) -> str:
    text = redact_text(value)
    return text if len(text) <= _SAMPLE_MAX else text[: _SAMPLE_MAX - 3] + "..."


def _loop_key(url: httpx2.URL) -> str:
    """A URL for loop detection: no fragment, credential-like query parameters left out (the
    auth layer may add them to what was fetched but not to the links in the body)."""
    params = [(k, v) for k, v in url.params.multi_items() if not registry.is_sensitive_param(k)]
    return str(url.copy_with(fragment=None, params=params))


def _as_number(value: Any, what: str, expression: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ResponseError(
            f"pagination: {what} at {expression!r} is not a number ({type(value).__name__})",
            reason="pagination",
        )
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ResponseError(
            f"pagination: {what} at {expression!r} is not a number ({_short(repr(value))})",
            reason="pagination",
        ) from None
    if not number.is_finite():
        raise ResponseError(f"pagination: {what} at {expression!r} is not finite", reason="pagination")
    return number


def _as_flag(value: Any, expression: str) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ResponseError(
        f"pagination: has_more at {expression!r} is not a boolean ({_short(repr(value))})",
        reason="pagination",
    )


def _header_values(headers: Mapping[str, str], name: str) -> list[str]:
    get_list = getattr(headers, "get_list", None)
    if callable(get_list):
        return [str(v) for v in get_list(name)]
    out: list[str] = []
    for key, value in headers.items():
        if key.lower() == name:
            out.extend(value if isinstance(value, list | tuple) else [value])
    return [str(v) for v in out]


# --- paginators ----------------------------------------------------------------------------------


class Paginator:
    """Base of the paginators: counting, the shared stop conditions, URL safety, loop detection.

    A paginator is stateful and serves one run at a time; ``first()`` resets it. After ``next()``
    returns ``None``, ``stop_reason`` says which condition stopped it (``max_pages``,
    ``max_records``, ``empty``, ``short_page``, ``has_more``, ``total``, ``total_pages``,
    ``no_next``).
    """

    kind: ClassVar[str] = ""

    def __init__(
        self,
        options: PaginationOptions,
        *,
        base_url: str | httpx2.URL | None = None,
        readd_credentials: bool | None = None,
    ) -> None:
        self.options = options
        self.base_url = httpx2.URL(base_url) if base_url is not None else None
        if readd_credentials is None:
            # The spec model has no such field yet; read it when a spec carries it.
            readd_credentials = bool(getattr(options, "readd_credentials", True))
        self.readd_credentials = readd_credentials
        self.pages = 0
        self.records = 0
        self.stop_reason: str | None = None
        self._base_origin: Origin | None = None
        self._seen: set[str] = set()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(pages={self.pages}, records={self.records}, stop={self.stop_reason!r})"

    @property
    def page_size(self) -> int | None:
        """Records a full page holds, when known (for ``on_short_page``)."""
        return None

    def first(self, params: Mapping[str, Any] | None = None) -> PageRequest:
        """The first page's request; ``params`` are the call's (a page, offset or cursor among
        them starts the run there)."""
        self.pages = 0
        self.records = 0
        self.stop_reason = None
        self._seen = set()
        self._base_origin = _origin(self.base_url) if self.base_url is not None else None
        return self._first(dict(params or {}))

    def resume(self, checkpoint: PageCheckpoint, params: Mapping[str, Any] | None = None) -> PageRequest:
        """Start again where ``checkpoint`` left off (``params`` are the run's, as for ``first``):
        the page and record counts carry on, so ``max_pages`` and totals still hold."""
        self.first(params)
        self.pages = checkpoint.pages
        self.records = checkpoint.records
        self._resume(checkpoint.next)
        return checkpoint.next

    def checkpoint(self, following: PageRequest) -> PageCheckpoint:
        """The checkpoint of a run whose next page is ``following``."""
        return PageCheckpoint(following, self.pages, self.records)

    def next(self, request: PageRequest, page: Page) -> PageRequest | None:
        """The next page's request after ``page`` (fetched for ``request``), or ``None`` to stop."""
        self.pages += 1
        self.records += len(page.records)
        self._observe(page)
        reason = self._stop(page)
        if reason is None:
            following = self._next(request, page)
            if following is not None:
                return following
            reason = "no_next"
        self.stop_reason = reason
        return None

    # -- shared rules --------------------------------------------------------------------------

    def _stop(self, page: Page) -> str | None:
        opts = self.options
        stop = opts.stop
        if self.pages >= opts.max_pages:
            return "max_pages"
        if stop.max_records is not None and self.records >= stop.max_records:
            return "max_records"
        count = len(page.records)
        if stop.on_empty and count == 0:
            return "empty"
        size = self.page_size
        if stop.on_short_page and size is not None and count < size:
            return "short_page"
        has_more = stop.has_more_path
        if has_more is not None and _as_flag(search(has_more, page.body), has_more) is False:
            return "has_more"
        if stop.total_path is not None:
            total = _as_number(search(stop.total_path, page.body), "total", stop.total_path)
            if total is not None and self._read_past(total):
                return "total"
        if stop.total_pages_path is not None:
            pages = _as_number(search(stop.total_pages_path, page.body), "total pages", stop.total_pages_path)
            if pages is not None and self.pages >= pages:
                return "total_pages"
        return None

    def _read_past(self, total: Decimal) -> bool:
        return self.records >= total

    def _observe(self, page: Page) -> None:
        """Note the fetched page (URL paginators remember its URL for loop detection)."""

    def _resume(self, request: PageRequest) -> None:
        """Take up the type-specific position of ``request`` (the next page after a checkpoint)."""

    # -- type-specific -------------------------------------------------------------------------

    def _first(self, params: dict[str, Any]) -> PageRequest:
        return PageRequest(0)

    def _next(self, request: PageRequest, page: Page) -> PageRequest | None:
        return None


def _start_number(params: Mapping[str, Any], name: str, default: int) -> int:
    value = params.get(name)
    if value is None:
        return default
    try:
        number = int(str(value).strip())
    except ValueError:
        number = -1
    if isinstance(value, bool) or number < 0:
        raise RequestValidationError(
            f"{name} must be a whole number, zero or more, to start pagination at; got {_short(repr(value))}",
            parameter=name,
        )
    return number


class PagePaginator(Paginator):
    """``?page=N`` (and ``per_page`` when ``page_size`` is set), counting up from ``start_page``."""

    kind = "page"
    options: PagePagination

    def __init__(self, options: PagePagination, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        self._start = options.start_page

    @property
    def page_size(self) -> int | None:
        return self.options.page_size

    def _params(self, number: int) -> dict[str, str]:
        opts = self.options
        params = {opts.page_param: str(number)}
        if opts.page_size is not None and opts.size_param is not None:
            params[opts.size_param] = str(opts.page_size)
        return params

    def _first(self, params: dict[str, Any]) -> PageRequest:
        self._start = _start_number(params, self.options.page_param, self.options.start_page)
        return PageRequest(0, self._params(self._start))

    def _next(self, request: PageRequest, page: Page) -> PageRequest | None:
        index = request.index + 1
        return PageRequest(index, self._params(self._start + index))


class OffsetPaginator(Paginator):
    """``?offset=N&limit=L``; the offset advances by the records received (by ``limit`` on an
    empty page), so a server that caps the page below ``limit`` skips nothing."""

    kind = "offset"
    options: OffsetPagination

    def __init__(self, options: OffsetPagination, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        self._offset = options.start
        self._last_count = 0

    @property
    def page_size(self) -> int | None:
        return self.options.limit

    def _params(self, offset: int) -> dict[str, str]:
        return {self.options.offset_param: str(offset), self.options.limit_param: str(self.options.limit)}

    def _first(self, params: dict[str, Any]) -> PageRequest:
        self._offset = _start_number(params, self.options.offset_param, self.options.start)
        return PageRequest(0, self._params(self._offset))

    def _read_past(self, total: Decimal) -> bool:
        return self._offset + self._last_count >= total or self.records >= total

    def _resume(self, request: PageRequest) -> None:
        self._offset = _start_number(request.params, self.options.offset_param, self.options.start)

    def _observe(self, page: Page) -> None:
        self._last_count = len(page.records)

    def _next(self, request: PageRequest, page: Page) -> PageRequest | None:
        self._offset += len(page.records) or self.options.limit
        return PageRequest(request.index + 1, self._params(self._offset))


class CursorPaginator(Paginator):
    """The next cursor is read from the body (``cursor_path``) and sent as ``cursor_param``; a
    missing, null or empty cursor ends the run, a repeated one is a pagination loop."""

    kind = "cursor"
    options: CursorPagination

    @property
    def page_size(self) -> int | None:
        return self.options.page_size

    def _params(self, cursor: str | None) -> dict[str, str]:
        opts = self.options
        params: dict[str, str] = {}
        if cursor is not None:
            params[opts.cursor_param] = cursor
        if opts.page_size is not None and opts.size_param is not None:
            params[opts.size_param] = str(opts.page_size)
        return params

    def _first(self, params: dict[str, Any]) -> PageRequest:
        start = params.get(self.options.cursor_param)
        cursor = None if start is None else str(start)
        if cursor is not None:
            self._seen.add(cursor)
        return PageRequest(0, self._params(cursor))

    def _resume(self, request: PageRequest) -> None:
        cursor = request.params.get(self.options.cursor_param)
        if cursor is not None:
            self._seen.add(cursor)

    def _next(self, request: PageRequest, page: Page) -> PageRequest | None:
        path = self.options.cursor_path
        value = search(path, page.body)
        if value is None or value == "":
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ResponseError(
                f"pagination: the cursor at {path!r} is a {type(value).__name__}, not a string or number",
                reason="pagination",
            )
        cursor = value if isinstance(value, str) else str(value)
        if cursor in self._seen:
            raise ResponseError(
                f"pagination loop: the cursor {_short(cursor)!r} (at {path!r}) was already fetched",
                reason="pagination_loop",
                details=[{"repeated": _short(cursor), "page": self.pages}],
            )
        self._seen.add(cursor)
        return PageRequest(request.index + 1, self._params(cursor))


class _UrlPaginator(Paginator):
    """Shared by next URL and Link header: resolve, check the scheme, flag cross-origin, loops."""

    def _observe(self, page: Page) -> None:
        if not page.url:
            return
        try:
            url = httpx2.URL(page.url)
        except httpx2.InvalidURL:
            return
        if self._base_origin is None and url.scheme in ("http", "https") and url.host:
            self._base_origin = _origin(url)
        self._seen.add(_loop_key(url))

    def _resume(self, request: PageRequest) -> None:
        if request.url is not None:
            self._seen.add(_loop_key(httpx2.URL(request.url)))

    def _target(self, request: PageRequest, page: Page, reference: str, where: str) -> PageRequest:
        context = page.url or (str(self.base_url) if self.base_url is not None else "")
        try:
            url = httpx2.URL(context).join(reference.strip()) if context else httpx2.URL(reference.strip())
        except (httpx2.InvalidURL, ValueError):
            raise ResponseError(
                f"pagination: the next page's URL from {where} is not a URL: {_short(reference)!r}",
                reason="pagination",
            ) from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ResponseError(
                f"pagination: the next page's URL from {where} must be an absolute http(s) URL, "
                f"got {redact_url(str(url))!r}",
                reason="pagination",
            )
        url = url.copy_with(fragment=None)
        key = _loop_key(url)
        if key in self._seen:
            raise ResponseError(
                f"pagination loop: {redact_url(str(url))} (from {where}) was already fetched",
                reason="pagination_loop",
                details=[{"repeated": redact_url(str(url)), "page": self.pages}],
            )
        self._seen.add(key)
        cross = self._base_origin is not None and _origin(url) != self._base_origin
        return PageRequest(
            request.index + 1,
            url=str(url),
            cross_origin=cross,
            readd_credentials=self.readd_credentials and not cross,
        )


class NextUrlPaginator(_UrlPaginator):
    """The body names the next page's URL (``next_url_path``); relative URLs resolve against the
    page's URL; a missing, null or empty one ends the run."""

    kind = "next_url"
    options: NextUrlPagination

    def _next(self, request: PageRequest, page: Page) -> PageRequest | None:
        path = self.options.next_url_path
        value = search(path, page.body)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise ResponseError(
                f"pagination: the next URL at {path!r} is a {type(value).__name__}, not a string",
                reason="pagination",
            )
        return self._target(request, page, value, f"the body at {path!r}")


class LinkHeaderPaginator(_UrlPaginator):
    """The ``Link`` response header (RFC 8288) names the next page with ``rel`` (``next``)."""

    kind = "link_header"
    options: LinkHeaderPagination

    def _next(self, request: PageRequest, page: Page) -> PageRequest | None:
        target = find_link(page.headers, self.options.rel)
        if target is None or not target.strip():
            return None
        return self._target(request, page, target, f'the Link header (rel="{self.options.rel}")')


_PAGINATORS: Final[Mapping[str, type[Paginator]]] = {
    "page": PagePaginator,
    "offset": OffsetPaginator,
    "cursor": CursorPaginator,
    "next_url": NextUrlPaginator,
    "link_header": LinkHeaderPaginator,
}


def paginator_for(
    options: PaginationOptions,
    *,
    base_url: str | httpx2.URL | None = None,
    readd_credentials: bool | None = None,
) -> Paginator:
    """A fresh paginator for an endpoint's ``pagination:`` block.

    ``base_url`` is the integration's: next URLs on another origin are flagged ``cross_origin``
    (without it, the first page's URL sets the origin). ``readd_credentials`` overrides the
    spec's choice for same-origin next URLs (default: re-add).
    """
    cls = _PAGINATORS[options.type]
    return cls(options, base_url=base_url, readd_credentials=readd_credentials)


async def iterate_pages(
    paginator: Paginator,
    fetch: Callable[[PageRequest], Awaitable[Page]],
    params: Mapping[str, Any] | None = None,
) -> AsyncIterator[Page]:
    """Fetch pages with ``fetch`` until the paginator stops; yield each page as it arrives.

    The next request is only worked out after the consumer asks for the next page, so breaking
    out of the loop fetches nothing more. With ``stop.max_records`` the last page's records are
    cut so that no more than that many are yielded in all. A pagination loop raises
    ``ResponseError`` after the pages before it were yielded.
    """
    request: PageRequest | None = paginator.first(params)
    limit = paginator.options.stop.max_records
    yielded = 0
    while request is not None:
        page = await fetch(request)
        if limit is not None and yielded + len(page.records) > limit:
            page = dataclasses.replace(page, records=list(page.records)[: max(limit - yielded, 0)])
        yielded += len(page.records)
        yield page
        request = paginator.next(request, page)


async def iterate_checkpointed(
    paginator: Paginator,
    fetch: Callable[[PageRequest], Awaitable[Page]],
    params: Mapping[str, Any] | None = None,
    *,
    resume: PageCheckpoint | None = None,
) -> AsyncIterator[tuple[Page, PageCheckpoint | None]]:
    """Like ``iterate_pages``, but each page comes with the checkpoint to resume *after* it
    (``None`` after the last page), and ``resume`` starts from a checkpoint instead of page one.

    The next request is worked out before the page is yielded (its checkpoint needs it), so a
    pagination loop raises here without yielding the page that led to it: a job that keeps the
    page's records with its checkpoint never records a position it cannot resume from.
    """
    request: PageRequest | None
    request = paginator.first(params) if resume is None else paginator.resume(resume, params)
    limit = paginator.options.stop.max_records
    yielded = resume.records if resume is not None else 0
    while request is not None:
        page = await fetch(request)
        if limit is not None and yielded + len(page.records) > limit:
            page = dataclasses.replace(page, records=list(page.records)[: max(limit - yielded, 0)])
        yielded += len(page.records)
        following = paginator.next(request, page)
        yield page, (paginator.checkpoint(following) if following is not None else None)
        request = following


# --- RFC 8288 Link header ------------------------------------------------------------------------

_TOKEN_CHARS: Final = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
_OWS: Final = " \t\r\n"


@dataclass(frozen=True, slots=True)
class Link:
    """One link of a ``Link`` header: its target URI reference and its parameters in order
    (names lower-cased; a parameter written without ``=`` has the value ``None``)."""

    target: str
    params: tuple[tuple[str, str | None], ...] = ()

    def param(self, name: str) -> str | None:
        """The first value of parameter ``name`` (RFC 8288: later duplicates are ignored)."""
        lowered = name.lower()
        for key, value in self.params:
            if key == lowered:
                return value
        return None

    @property
    def rels(self) -> tuple[str, ...]:
        """The link's relation types, lower-cased (``rel="next last"`` names two)."""
        rel = self.param("rel")
        return tuple(r.lower() for r in rel.split()) if rel else ()


def _skip_ows(text: str, i: int) -> int:
    while i < len(text) and text[i] in _OWS:
        i += 1
    return i


def _quoted(text: str, i: int) -> tuple[str, int]:
    """A quoted-string starting at ``text[i] == '"'``: its unescaped value and the index after it
    (an unterminated string runs to the end)."""
    out: list[str] = []
    i += 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if char == '"':
            return "".join(out), i + 1
        out.append(char)
        i += 1
    return "".join(out), i


def _skip_to(text: str, i: int, stops: str) -> int:
    """Skip to the next character in ``stops`` that is outside a quoted string."""
    while i < len(text) and text[i] not in stops:
        if text[i] == '"':
            _, i = _quoted(text, i)
        else:
            i += 1
    return i


def parse_link_header(value: str) -> list[Link]:
    """The links of a ``Link`` header value (RFC 8288), in order.

    Tolerant: quoted parameter values may hold commas, semicolons and escaped quotes; several
    links (or several header lines joined with ``,``) are read in turn; parameter names are
    case-insensitive; malformed pieces are skipped rather than failing the whole header.
    """
    links: list[Link] = []
    text = value
    n = len(text)
    i = 0
    while i < n:
        while i < n and (text[i] in _OWS or text[i] == ","):
            i += 1
        if i >= n:
            break
        if text[i] != "<":  # not a link: skip to the next one
            i = _skip_to(text, i, ",")
            continue
        end = text.find(">", i + 1)
        if end < 0:
            break
        target = text[i + 1 : end].strip()
        i = end + 1
        params: list[tuple[str, str | None]] = []
        while True:
            i = _skip_ows(text, i)
            if i >= n or text[i] == ",":
                break
            if text[i] != ";":  # stray text after the link: skip it
                i = _skip_to(text, i, ";,")
                continue
            i = _skip_ows(text, i + 1)
            start = i
            while i < n and text[i] in _TOKEN_CHARS:
                i += 1
            name = text[start:i].lower()
            i = _skip_ows(text, i)
            param_value: str | None = None
            if i < n and text[i] == "=":
                i = _skip_ows(text, i + 1)
                if i < n and text[i] == '"':
                    param_value, i = _quoted(text, i)
                else:
                    start = i
                    i = _skip_to(text, i, ";,")
                    param_value = text[start:i].strip()
            if name:
                params.append((name, param_value))
            else:
                i = _skip_to(text, i, ";,")
        links.append(Link(target, tuple(params)))
    return links


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_link_header(links: Iterable[Link]) -> str:
    """A ``Link`` header value for ``links`` (every parameter value quoted and escaped)."""
    parts = []
    for link in links:
        pieces = [f"<{link.target}>"]
        for name, value in link.params:
            pieces.append(name if value is None else f"{name}={_quote(value)}")
        parts.append("; ".join(pieces))
    return ", ".join(parts)


def find_link(headers: Mapping[str, str], rel: str) -> str | None:
    """The target of the first link with relation ``rel`` in the ``Link`` headers, or ``None``."""
    wanted = rel.lower()
    for value in _header_values(headers, "link"):
        for link in parse_link_header(value):
            if wanted in link.rels:
                return link.target
    return None
