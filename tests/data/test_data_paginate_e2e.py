"""Paginators end to end: scripted pages from a loopback FaultServer fetched through tether.Client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import aclosing
from typing import Any

import pytest
from pydantic import TypeAdapter

import tether
from tether.errors import ResponseError
from tether.mapping import select_records
from tether.mock import Fault, FaultServer
from tether.paginate import Page, PageRequest, Paginator, iterate_pages, paginator_for
from tether.spec._endpoint import Pagination

ADAPTER: TypeAdapter[Any] = TypeAdapter(Pagination)
Fetch = Callable[[PageRequest], Awaitable[Page]]


def make(options: dict[str, Any], base_url: str) -> Paginator:
    return paginator_for(ADAPTER.validate_python(options), base_url=base_url)


def fetcher(
    client: tether.Client, path: str, *, bare: tether.Client | None = None, records: str | None = "items"
) -> Fetch:
    """A fetch function the way an integration writes one: params or URL, no credentials off-origin."""

    async def fetch(request: PageRequest) -> Page:
        if request.url is not None:
            sender = bare if (request.cross_origin or not request.readd_credentials) and bare else client
            response = await sender.get(request.url)
        else:
            response = await client.get(path, params=dict(request.params))
        body = response.json()
        return Page(
            body, response.headers, select_records(body, records), str(response.request.url), response
        )

    return fetch


async def collect(paginator: Paginator, fetch: Fetch, params: dict[str, Any] | None = None) -> list[Any]:
    records: list[Any] = []
    async for fetched in iterate_pages(paginator, fetch, params):
        records.extend(fetched.records)
    return records


def plain(server: FaultServer, **kwargs: Any) -> tether.Client:
    return tether.Client(server.url, retry=None, breaker=None, **kwargs)


async def test_page_numbers_over_http(fault_server: FaultServer) -> None:
    """Page pagination fetches pages 1..3 with per_page and stops at the empty page."""
    fault_server.route(
        "GET",
        "/items",
        Fault.ok(json={"items": [1, 2]}),
        Fault.ok(json={"items": [3, 4]}),
        Fault.ok(json={"items": []}),
    )
    async with plain(fault_server) as client:
        paginator = make({"type": "page", "page_size": 2}, fault_server.url)
        records = await collect(paginator, fetcher(client, "/items"), {"q": "x"})
    assert records == [1, 2, 3, 4]
    assert [(r.param("page"), r.param("per_page")) for r in fault_server.log] == [
        ("1", "2"),
        ("2", "2"),
        ("3", "2"),
    ]


async def test_offset_with_total_over_http(fault_server: FaultServer) -> None:
    """Offset pagination stops when the body's total is reached, without an extra request."""
    fault_server.route(
        "GET",
        "/rows",
        Fault.ok(json={"data": {"rows": ["a", "b"], "total": 3}}),
        Fault.ok(json={"data": {"rows": ["c"], "total": 3}}),
        Fault.ok(json={"data": {"rows": ["never"], "total": 3}}),
    )
    async with plain(fault_server) as client:
        paginator = make(
            {"type": "offset", "limit": 2, "stop": {"total_path": "data.total"}}, fault_server.url
        )
        records = await collect(paginator, fetcher(client, "/rows", records="data.rows"))
    assert records == ["a", "b", "c"]
    assert [r.param("offset") for r in fault_server.log] == ["0", "2"]
    assert paginator.stop_reason == "total"


async def test_cursor_over_http(fault_server: FaultServer) -> None:
    """Cursor pagination sends each body cursor back until the cursor is null."""
    fault_server.route(
        "GET",
        "/events",
        Fault.ok(json={"items": [1], "meta": {"next": "c-2"}}),
        Fault.ok(json={"items": [2], "meta": {"next": "c-3"}}),
        Fault.ok(json={"items": [3], "meta": {"next": None}}),
    )
    async with plain(fault_server) as client:
        paginator = make({"type": "cursor", "cursor_path": "meta.next"}, fault_server.url)
        records = await collect(paginator, fetcher(client, "/events"))
    assert records == [1, 2, 3]
    assert [r.query.get("cursor") for r in fault_server.log] == [None, ["c-2"], ["c-3"]]


async def test_cursor_loop_over_http(fault_server: FaultServer) -> None:
    """A server that hands back a cursor already used ends in a pagination_loop error, not forever."""
    fault_server.route(
        "GET",
        "/events",
        Fault.ok(json={"items": [1], "next": "same"}),
        Fault.ok(json={"items": [2], "next": "same"}),
    )
    seen: list[Any] = []
    async with plain(fault_server) as client:
        paginator = make({"type": "cursor", "cursor_path": "next"}, fault_server.url)

        async def consume() -> None:
            async for fetched in iterate_pages(paginator, fetcher(client, "/events")):
                seen.extend(fetched.records)

        with pytest.raises(ResponseError, match="cursor 'same'") as info:
            await consume()
    assert info.value.reason == "pagination_loop"
    assert seen == [1, 2] and len(fault_server.log) == 2


async def test_next_url_over_http(fault_server: FaultServer) -> None:
    """next_url follows relative and absolute URLs from the body, query included."""
    fault_server.route(
        "GET",
        "/v1/items",
        Fault.ok(json={"items": [1], "next": "items?page=2"}),
        Fault.ok(json={"items": [2], "next": f"{fault_server.url}/v1/items?page=3"}),
        Fault.ok(json={"items": [3], "next": None}),
    )
    async with plain(fault_server) as client:
        paginator = make({"type": "next_url", "next_url_path": "next"}, fault_server.url)
        records = await collect(paginator, fetcher(client, "/v1/items"))
    assert records == [1, 2, 3]
    assert [(r.path, r.query.get("page")) for r in fault_server.log] == [
        ("/v1/items", None),
        ("/v1/items", ["2"]),
        ("/v1/items", ["3"]),
    ]


async def test_next_url_loop_over_http(fault_server: FaultServer) -> None:
    """A next URL pointing back at a fetched page raises a pagination loop naming the URL."""
    fault_server.route(
        "GET",
        "/items",
        Fault.ok(json={"items": [1], "next": "/items?page=2"}),
        Fault.ok(json={"items": [2], "next": "/items?page=2"}),
    )
    async with plain(fault_server) as client:
        paginator = make({"type": "next_url", "next_url_path": "next"}, fault_server.url)
        with pytest.raises(ResponseError, match=r"/items\?page=2 \(from the body") as info:
            await collect(paginator, fetcher(client, "/items"))
    assert info.value.reason == "pagination_loop"
    assert len(fault_server.log) == 2


async def test_link_header_over_http(fault_server: FaultServer) -> None:
    """Link pagination follows rel=next from the response header until there is none."""
    base = fault_server.url
    fault_server.route(
        "GET",
        "/repos",
        Fault.ok(
            json=[{"id": 1}],
            headers={"Link": f'<{base}/repos?page=2>; rel="next", <{base}/repos?page=3>; rel="last"'},
        ),
        Fault.ok(
            json=[{"id": 2}], headers={"Link": '</repos?page=3>; rel="next", </repos?page=1>; rel="first"'}
        ),
        Fault.ok(json=[{"id": 3}], headers={"Link": '</repos?page=1>; rel="first"'}),
    )
    async with plain(fault_server) as client:
        paginator = make({"type": "link_header"}, fault_server.url)
        records: list[Any] = []
        async for fetched in iterate_pages(paginator, fetcher(client, "/repos", records=None)):
            records.extend(fetched.records)
    assert records == [{"id": 1}, {"id": 2}, {"id": 3}]
    assert [r.query.get("page") for r in fault_server.log] == [None, ["2"], ["3"]]
    assert paginator.stop_reason == "no_next"


async def test_max_pages_over_http(fault_server: FaultServer) -> None:
    """A server that never runs out of pages is asked max_pages times, no more."""
    fault_server.route("GET", "/items", Fault.ok(json={"items": [1]}))
    async with plain(fault_server) as client:
        paginator = make({"type": "page", "max_pages": 3}, fault_server.url)
        records = await collect(paginator, fetcher(client, "/items"))
    assert records == [1, 1, 1] and len(fault_server.log) == 3
    assert paginator.stop_reason == "max_pages"


async def test_max_records_cuts_the_last_page(fault_server: FaultServer) -> None:
    """max_records yields exactly that many records and fetches no further page."""
    fault_server.route("GET", "/items", Fault.ok(json={"items": [1, 2, 3]}))
    async with plain(fault_server) as client:
        paginator = make({"type": "page", "stop": {"max_records": 5}}, fault_server.url)
        records = await collect(paginator, fetcher(client, "/items"))
    assert records == [1, 2, 3, 1, 2] and len(fault_server.log) == 2


async def test_breaking_out_fetches_nothing_more(fault_server: FaultServer) -> None:
    """A consumer that stops after the first page causes exactly one request."""
    fault_server.route("GET", "/items", Fault.ok(json={"items": [1], "next": "n"}))
    async with plain(fault_server) as client:
        paginator = make({"type": "page"}, fault_server.url)
        async with aclosing(iterate_pages(paginator, fetcher(client, "/items"))) as pages:
            async for _ in pages:
                break
    assert len(fault_server.log) == 1


async def test_cross_origin_next_link_is_flagged_and_sent_without_credentials() -> None:
    """A next link to another origin is flagged; the fetch sends it without the API key."""
    async with FaultServer() as home, FaultServer() as elsewhere:
        home.route(
            "GET",
            "/items",
            Fault.ok(json={"items": [1]}, headers={"Link": f'<{elsewhere.url}/items?page=2>; rel="next"'}),
        )
        elsewhere.route("GET", "/items", Fault.ok(json={"items": [2]}))
        asked: list[PageRequest] = []
        async with plain(home, headers={"X-API-Key": "key-0123456789"}) as client, plain(elsewhere) as bare:
            inner = fetcher(client, "/items", bare=bare)

            async def fetch(request: PageRequest) -> Page:
                asked.append(request)
                return await inner(request)

            paginator = make({"type": "link_header"}, home.url)
            records = await collect(paginator, fetch)
    assert records == [1, 2]
    assert [(r.cross_origin, r.readd_credentials) for r in asked] == [(False, True), (True, False)]
    assert home.log[0].header("x-api-key") == "key-0123456789"
    assert elsewhere.log[0].header("x-api-key") is None
    assert elsewhere.log[0].query == {"page": ["2"]}
