"""Paginators driven by hand: requests they ask for, stop conditions, loops, origins."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from tether.errors import RequestValidationError, ResponseError
from tether.paginate import (
    CursorPaginator,
    LinkHeaderPaginator,
    NextUrlPaginator,
    OffsetPaginator,
    Page,
    PagePaginator,
    PageRequest,
    Paginator,
    paginator_for,
)
from tether.spec._endpoint import Pagination

BASE = "https://api.example.com/v1"
ADAPTER: TypeAdapter[Any] = TypeAdapter(Pagination)


def make(options: dict[str, Any], base_url: str | None = BASE, **kwargs: Any) -> Paginator:
    return paginator_for(ADAPTER.validate_python(options), base_url=base_url, **kwargs)


def page(
    records: int | list[Any] = 1,
    body: Any = None,
    headers: dict[str, str] | None = None,
    url: str = BASE + "/items",
) -> Page:
    items = list(range(records)) if isinstance(records, int) else records
    return Page(
        body=body if body is not None else {"items": items}, headers=headers or {}, records=items, url=url
    )


def run(paginator: Paginator, pages: list[Page], params: dict[str, Any] | None = None) -> list[PageRequest]:
    """Drive the paginator over scripted pages; the requests it asked for, in order."""
    asked = [paginator.first(params)]
    for scripted in pages:
        following = paginator.next(asked[-1], scripted)
        if following is None:
            break
        asked.append(following)
    return asked


def test_factory_picks_the_paginator_for_each_type() -> None:
    """paginator_for builds the paginator matching the spec's type."""
    assert isinstance(make({"type": "page"}), PagePaginator)
    assert isinstance(make({"type": "offset"}), OffsetPaginator)
    assert isinstance(make({"type": "cursor", "cursor_path": "next"}), CursorPaginator)
    assert isinstance(make({"type": "next_url", "next_url_path": "next"}), NextUrlPaginator)
    assert isinstance(make({"type": "link_header"}), LinkHeaderPaginator)


def test_page_numbers_count_up_from_start_page_with_size() -> None:
    """Page pagination asks for page 1, 2, 3 … with the page size."""
    paginator = make({"type": "page", "page_size": 2})
    asked = run(paginator, [page(2), page(2), page(0)])
    assert [r.params for r in asked] == [
        {"page": "1", "per_page": "2"},
        {"page": "2", "per_page": "2"},
        {"page": "3", "per_page": "2"},
    ]
    assert [r.index for r in asked] == [0, 1, 2]
    assert paginator.stop_reason == "empty" and paginator.pages == 3 and paginator.records == 4


def test_page_run_starts_where_the_call_asks() -> None:
    """A page number in the call's params starts the run there; start_page 0 is honoured."""
    assert run(make({"type": "page", "size_param": None}), [page(1)], {"page": "4"})[1].params == {
        "page": "5"
    }
    assert make({"type": "page", "start_page": 0}).first().params == {"page": "0"}


@pytest.mark.parametrize("start", ["two", -1, True])
def test_bad_starting_page_or_offset_is_rejected(start: Any) -> None:
    """A starting page or offset that is not a whole number is a RequestValidationError naming it."""
    with pytest.raises(RequestValidationError) as info:
        make({"type": "offset"}).first({"offset": start})
    assert info.value.parameter == "offset"


def test_offset_advances_by_records_received() -> None:
    """Offset pagination advances by what arrived, so a server capping the page skips nothing."""
    asked = run(make({"type": "offset", "limit": 100}), [page(100), page(40), page(0)])
    assert [r.params for r in asked] == [
        {"offset": "0", "limit": "100"},
        {"offset": "100", "limit": "100"},
        {"offset": "140", "limit": "100"},
    ]


def test_short_page_stops_when_asked() -> None:
    """on_short_page stops at a page with fewer records than the page size."""
    paginator = make({"type": "offset", "limit": 10, "stop": {"on_short_page": True}})
    assert len(run(paginator, [page(10), page(3), page(10)])) == 2
    assert paginator.stop_reason == "short_page"


def test_empty_page_continues_when_on_empty_is_off() -> None:
    """With on_empty off, an empty page does not stop the run (max_pages still does)."""
    paginator = make({"type": "page", "max_pages": 3, "stop": {"on_empty": False}})
    assert len(run(paginator, [page(0), page(0), page(0), page(0)])) == 3
    assert paginator.stop_reason == "max_pages"


def test_max_pages_stops_the_run() -> None:
    """No more than max_pages pages are asked for."""
    paginator = make({"type": "cursor", "cursor_path": "next", "max_pages": 2})
    asked = run(paginator, [page(1, {"next": "a"}), page(1, {"next": "b"}), page(1, {"next": "c"})])
    assert len(asked) == 2 and paginator.stop_reason == "max_pages"


def test_total_from_the_body_stops_once_read() -> None:
    """total_path stops once that many records were read."""
    paginator = make({"type": "page", "stop": {"total_path": "meta.total"}})
    body = {"meta": {"total": "5"}}
    asked = run(paginator, [page([1, 2], body), page([3, 4], body), page([5], body), page([6], body)])
    assert len(asked) == 3 and paginator.stop_reason == "total"


def test_offset_total_counts_from_the_starting_offset() -> None:
    """An offset run started midway stops when offset plus page reaches the total."""
    paginator = make({"type": "offset", "limit": 2, "stop": {"total_path": "total"}})
    asked = run(paginator, [page([1, 2], {"total": 10}), page([3], {"total": 10})], {"offset": 8})
    assert len(asked) == 1 and paginator.stop_reason == "total"


def test_total_pages_and_has_more_stop() -> None:
    """total_pages_path stops after the last page; has_more_path false stops at once."""
    by_pages = make({"type": "page", "stop": {"total_pages_path": "pages"}})
    assert len(run(by_pages, [page(1, {"pages": 2})] * 5)) == 2
    assert by_pages.stop_reason == "total_pages"
    by_flag = make({"type": "cursor", "cursor_path": "next", "stop": {"has_more_path": "has_more"}})
    pages = [page(1, {"has_more": True, "next": "a"}), page(1, {"has_more": False, "next": "b"})]
    assert len(run(by_flag, pages)) == 2 and by_flag.stop_reason == "has_more"


def test_max_records_stops_the_run() -> None:
    """max_records stops once that many records were read."""
    paginator = make({"type": "page", "stop": {"max_records": 3}})
    assert len(run(paginator, [page(2), page(2), page(2)])) == 2
    assert paginator.stop_reason == "max_records"


def test_malformed_total_is_a_response_error() -> None:
    """A total that is not a number is reported, not guessed."""
    paginator = make({"type": "page", "stop": {"total_path": "total"}})
    paginator.first()
    with pytest.raises(ResponseError, match="total at 'total' is not a number") as info:
        paginator.next(PageRequest(0), page(1, {"total": "lots"}))
    assert info.value.reason == "pagination"


def test_cursor_is_read_from_the_body_and_sent() -> None:
    """Cursor pagination sends the body's cursor as the cursor parameter, with the page size."""
    paginator = make(
        {"type": "cursor", "cursor_path": "meta.next_cursor", "size_param": "limit", "page_size": 50}
    )
    pages = [
        page(1, {"meta": {"next_cursor": "c2"}}),
        page(1, {"meta": {"next_cursor": 3}}),
        page(1, {"meta": {}}),
    ]
    asked = run(paginator, pages)
    assert [r.params for r in asked] == [
        {"limit": "50"},
        {"cursor": "c2", "limit": "50"},
        {"cursor": "3", "limit": "50"},
    ]
    assert paginator.stop_reason == "no_next"


def test_empty_cursor_ends_the_run() -> None:
    """An empty or null cursor means the last page."""
    paginator = make({"type": "cursor", "cursor_path": "next"})
    assert len(run(paginator, [page(1, {"next": ""})])) == 1
    assert paginator.stop_reason == "no_next"


def test_repeated_cursor_is_a_pagination_loop() -> None:
    """A cursor that was already sent raises ResponseError(pagination_loop) naming it."""
    paginator = make({"type": "cursor", "cursor_path": "next"})
    first = paginator.first()
    second = paginator.next(first, page(1, {"next": "abc"}))
    assert second is not None
    third = paginator.next(second, page(1, {"next": "def"}))
    assert third is not None
    with pytest.raises(ResponseError, match="cursor 'abc'") as info:
        paginator.next(third, page(1, {"next": "abc"}))
    assert info.value.reason == "pagination_loop"


def test_starting_cursor_counts_for_loop_detection() -> None:
    """A run resumed from a cursor detects the server handing the same cursor back."""
    paginator = make({"type": "cursor", "cursor_path": "next"})
    first = paginator.first({"cursor": "resume-here"})
    assert first.params == {"cursor": "resume-here"}
    with pytest.raises(ResponseError, match="pagination loop"):
        paginator.next(first, page(1, {"next": "resume-here"}))


def test_cursor_of_the_wrong_type_is_reported() -> None:
    """A cursor that is an object is a ResponseError, not sent as text."""
    paginator = make({"type": "cursor", "cursor_path": "next"})
    with pytest.raises(ResponseError, match="not a string or number"):
        paginator.next(paginator.first(), page(1, {"next": {"a": 1}}))


def test_first_resets_the_run() -> None:
    """first() starts afresh: counts and seen cursors are forgotten."""
    paginator = make({"type": "cursor", "cursor_path": "next"})
    paginator.next(paginator.first(), page(1, {"next": "abc"}))
    again = paginator.first()
    assert paginator.pages == 0 and paginator.stop_reason is None
    assert paginator.next(again, page(1, {"next": "abc"})) is not None


def test_next_url_is_resolved_against_the_page_url() -> None:
    """A relative next URL resolves against the URL of the page it came from."""
    paginator = make({"type": "next_url", "next_url_path": "links.next"})
    first = paginator.first()
    assert first.url is None and first.params == {}
    following = paginator.next(
        first, page(1, {"links": {"next": "items?page=2#frag"}}, url=BASE + "/items?page=1")
    )
    assert following is not None
    assert following.url == BASE + "/items?page=2"
    assert not following.cross_origin and following.readd_credentials


def test_next_url_on_another_origin_is_flagged_without_credentials() -> None:
    """A next URL on another scheme, host or port is cross-origin and gets no credentials."""
    for other in (
        "https://cdn.example.com/p2",
        "http://api.example.com/v1/p2",
        "https://api.example.com:8443/p2",
    ):
        paginator = make({"type": "next_url", "next_url_path": "next"})
        following = paginator.next(paginator.first(), page(1, {"next": other}))
        assert following is not None and following.cross_origin, other
        assert not following.readd_credentials


def test_same_origin_with_explicit_default_port_is_not_cross_origin() -> None:
    """https://host:443 is the same origin as https://host."""
    paginator = make({"type": "next_url", "next_url_path": "next"})
    following = paginator.next(paginator.first(), page(1, {"next": "HTTPS://API.example.com:443/v1/x"}))
    assert following is not None and not following.cross_origin


def test_readd_credentials_can_be_turned_off() -> None:
    """With readd_credentials off, same-origin next URLs go out unsigned."""
    paginator = make({"type": "next_url", "next_url_path": "next"}, readd_credentials=False)
    following = paginator.next(paginator.first(), page(1, {"next": "/v1/items?cursor=x"}))
    assert following is not None and not following.cross_origin and not following.readd_credentials


def test_origin_defaults_to_the_first_page() -> None:
    """Without a base URL, the first fetched page's origin is the one credentials belong to."""
    paginator = make({"type": "next_url", "next_url_path": "next"}, base_url=None)
    first = paginator.first()
    same = paginator.next(first, page(1, {"next": "/p2"}, url="http://127.0.0.1:9000/p1"))
    assert same is not None and not same.cross_origin
    other = paginator.next(
        same, page(1, {"next": "http://127.0.0.1:9001/p3"}, url="http://127.0.0.1:9000/p2")
    )
    assert other is not None and other.cross_origin


@pytest.mark.parametrize("bad", ["javascript:alert(1)", "file:///etc/passwd", "ftp://h/x"])
def test_next_url_must_be_http(bad: str) -> None:
    """A next URL that is not http(s) is refused."""
    paginator = make({"type": "next_url", "next_url_path": "next"})
    with pytest.raises(ResponseError, match="absolute http"):
        paginator.next(paginator.first(), page(1, {"next": bad}))


def test_repeated_next_url_is_a_loop_named_redacted() -> None:
    """A next URL already fetched raises a pagination loop naming the URL with credentials masked."""
    paginator = make({"type": "next_url", "next_url_path": "next"})
    first = paginator.first()
    url1 = BASE + "/items?page=1&api_key=SEKRET"
    second = paginator.next(first, page(1, {"next": "/v1/items?page=2&api_key=SEKRET"}, url=url1))
    assert second is not None and second.url is not None
    with pytest.raises(ResponseError) as info:
        paginator.next(second, page(1, {"next": "/v1/items?page=1"}, url=second.url))
    assert info.value.reason == "pagination_loop"
    assert "page=1" in str(info.value) and "SEKRET" not in str(info.value)


def test_link_header_next_is_followed_and_stops_without_it() -> None:
    """Link pagination follows rel=next (relative links resolved) and stops when none is left."""
    paginator = make({"type": "link_header"})
    first = paginator.first()
    headers = {"Link": '</v1/items?page=2>; rel="next", </v1/items?page=9>; rel="last"'}
    following = paginator.next(first, page(1, headers=headers))
    assert following is not None and following.url == BASE + "/items?page=2"
    assert paginator.next(following, page(1, headers={"Link": '</v1/items?page=1>; rel="prev"'})) is None
    assert paginator.stop_reason == "no_next"


def test_link_header_custom_rel_and_loop() -> None:
    """A custom rel is honoured, and a Link back to a fetched page is a loop."""
    paginator = make({"type": "link_header", "rel": "more"})
    first = paginator.first()
    following = paginator.next(first, page(1, headers={"link": "<p2>; rel=more"}, url=BASE + "/p1"))
    assert following is not None and following.url == BASE + "/p2"
    with pytest.raises(ResponseError, match="pagination loop"):
        paginator.next(following, page(1, headers={"link": "<p1>; rel=more"}, url=BASE + "/p2"))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=12), st.integers(1, 8))
def test_page_runs_never_exceed_max_pages(sizes: list[int], max_pages: int) -> None:
    """Whatever the pages hold, a run asks for at most max_pages pages and at least one."""
    paginator = make({"type": "page", "max_pages": max_pages, "stop": {"on_empty": False}})
    asked = run(paginator, [page(n) for n in sizes])
    assert 1 <= len(asked) <= max_pages
    assert [int(r.params["page"]) for r in asked] == list(range(1, len(asked) + 1))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(alphabet="abc", min_size=1, max_size=3), min_size=1, max_size=15))
def test_cursor_runs_end_or_detect_loops(cursors: list[str]) -> None:
    """A cursor run either ends or raises a pagination loop exactly when a cursor repeats."""
    paginator = make({"type": "cursor", "cursor_path": "next", "max_pages": 100})
    pages = [page(1, {"next": c}) for c in cursors] + [page(1, {})]
    repeats = len(set(cursors)) < len(cursors)
    if repeats:
        with pytest.raises(ResponseError, match="pagination loop"):
            run(paginator, pages)
    else:
        assert len(run(paginator, pages)) == len(cursors) + 1
