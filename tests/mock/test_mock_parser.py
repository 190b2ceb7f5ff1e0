"""The mock server's incremental HTTP/1.1 request parser."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.mock._http import BadRequest, Request, RequestParser

PIPELINE = (
    b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\nX-Token: abc\r\n\r\n"
    b"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
    b"PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3;ext=1\r\nabc\r\n4\r\ndefg\r\n0\r\nTrailer-X: 1\r\n\r\n"
    b"DELETE /d HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
)


def _summary(requests: list[Request]) -> list[tuple[str, str, bytes, bool]]:
    return [(r.method, r.target, r.body, r.keep_alive) for r in requests]


EXPECTED = [
    ("GET", "/a?x=1", b"", True),
    ("POST", "/b", b"hello", True),
    ("PUT", "/c", b"abcdefg", True),
    ("DELETE", "/d", b"", False),
]


def test_pipelined_requests_in_one_read_are_all_framed_in_order() -> None:
    """Four pipelined requests (no body, Content-Length, chunked, close) in one read frame in order."""
    assert _summary(RequestParser().feed(PIPELINE)) == EXPECTED


def test_byte_by_byte_feeding_frames_the_same_requests() -> None:
    """Feeding one byte at a time yields the same requests as one big read."""
    parser = RequestParser()
    out: list[Request] = []
    for i in range(len(PIPELINE)):
        out += parser.feed(PIPELINE[i : i + 1])
    assert _summary(out) == EXPECTED
    assert parser.idle


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(PIPELINE)), max_size=12))
def test_any_fragmentation_frames_the_same_requests(cuts: list[int]) -> None:
    """However the bytes are split across reads, the framed requests are the same."""
    points = sorted(set(cuts))
    pieces = [PIPELINE[a:b] for a, b in zip([0, *points], [*points, len(PIPELINE)], strict=True)]
    parser = RequestParser()
    out: list[Request] = []
    for piece in pieces:
        out += parser.feed(piece)
    assert _summary(out) == EXPECTED


def test_header_names_are_lower_cased_and_values_trimmed() -> None:
    """Header names come out lower-cased, values without surrounding whitespace, in order."""
    (req,) = RequestParser().feed(b"GET / HTTP/1.1\r\nX-One:  1 \r\nx-one: 2\r\nHOST: h\r\n\r\n")
    assert req.headers == [("x-one", "1"), ("x-one", "2"), ("host", "h")]


def test_http10_requests_are_not_kept_alive() -> None:
    """An HTTP/1.0 request is answered once and the connection closed."""
    (req,) = RequestParser().feed(b"GET / HTTP/1.0\r\n\r\n")
    assert req.version == "HTTP/1.0"
    assert req.keep_alive is False


def test_expect_continue_is_flagged_until_the_body_arrives() -> None:
    """A request with Expect: 100-continue and a pending body sets wants_continue."""
    parser = RequestParser()
    assert parser.feed(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n") == []
    assert parser.wants_continue
    (req,) = parser.feed(b"ok")
    assert req.body == b"ok"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n folded: x\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXX", 400),
    ],
)
def test_unframeable_requests_raise_bad_request_with_a_status(data: bytes, status: int) -> None:
    """Bytes that cannot be framed raise BadRequest carrying the status to answer."""
    with pytest.raises(BadRequest) as info:
        RequestParser().feed(data)
    assert info.value.status == status


def test_bodies_over_the_limit_are_refused_with_413() -> None:
    """A Content-Length or chunked total above max_body raises BadRequest(413)."""
    with pytest.raises(BadRequest) as info:
        RequestParser(max_body=10).feed(b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n")
    assert info.value.status == 413
    with pytest.raises(BadRequest) as info:
        RequestParser(max_body=10).feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n")
    assert info.value.status == 413
