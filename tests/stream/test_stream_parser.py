"""SSEParser and error events: the WHATWG field rules, line ends, and chunking that never matters."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tether import errors
from tether.stream import SSEEvent, SSEParser, error_for_event


def _parse(*chunks: bytes) -> list[SSEEvent]:
    parser = SSEParser()
    out: list[SSEEvent] = []
    for chunk in chunks:
        out.extend(parser.feed(chunk))
    return out


def test_fields_make_an_event_and_a_blank_line_dispatches_it() -> None:
    """event, data, id and retry lines form one event, dispatched at the blank line."""
    events = _parse(b"event: tick\ndata: 1\nid: 7\nretry: 1500\n\n")
    assert events == [SSEEvent(event="tick", data="1", id="7", retry=1500)]


def test_data_lines_are_joined_with_newlines() -> None:
    """Several data lines become one data value joined by newlines; a bare 'data' adds an empty line."""
    assert _parse(b"data: a\ndata\ndata: b\n\n") == [SSEEvent(data="a\n\nb")]


def test_one_leading_space_is_stripped_and_no_more() -> None:
    """Only the single space after the colon is dropped; a value with no space is taken as is."""
    assert [e.data for e in _parse(b"data:  two\n\ndata:none\n\n")] == [" two", "none"]


def test_comments_and_unknown_fields_are_ignored() -> None:
    """Lines starting with ':' and unknown field names change nothing."""
    assert _parse(b": keep-alive\nfoo: bar\ndata: x\n:\n\n") == [SSEEvent(data="x")]


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"], ids=["lf", "cr", "crlf"])
def test_every_line_ending_is_accepted(eol: bytes) -> None:
    """LF, CR and CRLF all end lines."""
    wire = eol.join([b"event: e", b"data: 1", b"", b"data: 2", b"", b""])
    assert _parse(wire) == [SSEEvent(event="e", data="1"), SSEEvent(data="2")]


def test_a_crlf_split_between_chunks_is_one_line_end() -> None:
    """A CR at the end of one chunk and LF at the start of the next make one line end, not two."""
    assert _parse(b"data: a\r", b"\ndata: b\r\n\r", b"\n") == [SSEEvent(data="a\nb")]


def test_ids_are_sticky_and_an_empty_id_resets() -> None:
    """An event without id: carries the last id; 'id:' with no value clears it."""
    events = _parse(b"id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n")
    assert [e.id for e in events] == ["1", "1", None]


def test_an_id_with_nul_and_a_non_numeric_retry_are_ignored() -> None:
    """id values containing NUL and retry values that are not digits are dropped."""
    parser = SSEParser()
    events = parser.feed(b"id: 5\ndata: a\n\nid: x\x00y\nretry: 1s\ndata: b\n\n")
    assert [(e.id, e.retry) for e in events] == [("5", None), ("5", None)]
    assert parser.retry is None


def test_blocks_without_data_update_state_but_dispatch_nothing() -> None:
    """A block with only id: / retry: sets last_event_id and retry, and yields no event."""
    parser = SSEParser()
    assert parser.feed(b"id: 9\nretry: 200\n\n") == []
    assert (parser.last_event_id, parser.retry) == ("9", 200)


def test_a_leading_bom_is_dropped_and_utf8_may_split_across_chunks() -> None:
    """A UTF-8 BOM at the start is skipped; a multi-byte character cut between chunks decodes whole."""
    wire = "\ufeffdata: héllo\n\n".encode()
    cut = wire.index("é".encode()) + 1
    assert _parse(wire[:cut], wire[cut:]) == [SSEEvent(data="héllo")]


def test_an_unterminated_event_at_the_end_is_not_dispatched() -> None:
    """An event without its blank line is never yielded."""
    assert _parse(b"data: complete\n\ndata: partial\n") == [SSEEvent(data="complete")]


def test_an_oversized_event_is_refused() -> None:
    """An event larger than max_event_size raises ResponseError(too_large) instead of growing."""
    parser = SSEParser(max_event_size=100)
    with pytest.raises(errors.ResponseError) as caught:
        parser.feed(b"data: " + b"x" * 200)
    assert caught.value.reason == "too_large"


_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"), max_size=12)
_event = st.fixed_dictionaries(
    {"data": st.lists(_text, min_size=1, max_size=3)},
    optional={"event": _text.filter(bool), "id": _text, "retry": st.integers(0, 10**6)},
)


def _wire(blocks: list[dict[str, object]], eol: str, comments: bool) -> bytes:
    lines: list[str] = []
    for block in blocks:
        if comments:
            lines.append(": ping")
        if "event" in block:
            lines.append(f"event: {block['event']}")
        if "id" in block:
            lines.append(f"id: {block['id']}")
        if "retry" in block:
            lines.append(f"retry: {block['retry']}")
        lines.extend(f"data: {d}" for d in block["data"])  # type: ignore[attr-defined]
        lines.append("")
    return (eol.join(lines) + eol).encode()


def _expected(blocks: list[dict[str, object]]) -> list[SSEEvent]:
    last = ""
    out = []
    for block in blocks:
        last = str(block.get("id", last))
        retry = block.get("retry")
        out.append(
            SSEEvent(
                event=str(block.get("event", "message")),
                data="\n".join(block["data"]),  # type: ignore[call-overload]
                id=last or None,
                retry=retry if isinstance(retry, int) else None,
            )
        )
    return out


@settings(max_examples=300, deadline=None)
@given(
    blocks=st.lists(_event, max_size=6),
    eol=st.sampled_from(["\n", "\r", "\r\n"]),
    comments=st.booleans(),
    data=st.data(),
)
def test_any_chunking_of_a_valid_stream_yields_the_same_events(
    blocks: list[dict[str, object]], eol: str, comments: bool, data: st.DataObject
) -> None:
    """However the bytes of a valid stream are cut into chunks, the parser yields the same events."""
    wire = _wire(blocks, eol, comments)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=12)))
    chunks = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    assert _parse(*chunks) == _parse(wire) == _expected(blocks)


@pytest.mark.parametrize(
    ("data", "kind", "status"),
    [
        ('{"status": 429, "message": "slow down", "retry_after": 2}', errors.RateLimitExceeded, 429),
        ('{"error": {"code": 503, "message": "overloaded"}}', errors.APIError, 503),
        ('{"code": "401"}', errors.AuthenticationError, 401),
        ('{"type": "error", "error": {"type": "overloaded_error"}}', errors.APIError, None),
        ("something broke", errors.APIError, None),
    ],
)
def test_error_events_map_to_typed_errors(
    data: str, kind: type[errors.TetherError], status: int | None
) -> None:
    """An error event's JSON status or code picks the error class like an HTTP status; else APIError."""
    error = error_for_event(SSEEvent(event="error", data=data), service="svc", endpoint="chat")
    assert type(error) is kind
    assert error.status_code == status
    assert error.endpoint == "chat"


def test_an_error_event_keeps_the_servers_message_and_wait() -> None:
    """The message and retry_after of an error event's JSON reach the raised error."""
    data = '{"status": 429, "message": "slow", "retry_after": 2}'
    error = error_for_event(SSEEvent(event="error", data=data))
    assert "slow" in str(error)
    assert error.retry_after == 2.0
