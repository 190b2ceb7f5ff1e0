"""Fault and Chaos values: rendered bytes, JSON form round trips, and argument validation."""

from __future__ import annotations

import json
import zlib
from datetime import UTC, datetime

import pytest

from tether.mock import Chaos, Fault, pattern_bytes
from tether.mock._bodies import PATTERN, bomb_pieces, large_pieces
from tether.mock._routes import parse_rate

ALL_FAULTS = [
    Fault.ok(),
    Fault.ok(json={"a": [1, 2]}, status=201, headers={"X-A": "1"}, latency=0.5, encoding="gzip"),
    Fault.ok(text="héllo", content_type="text/html"),
    Fault.ok(body=b"\x00\xffbinary"),
    Fault.status(503, json={"e": 1}, retry_after=3),
    Fault.status(503, retry_after=datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)),
    Fault.status(500, body=b"oops", headers=[("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]),
    Fault.rate_limited(),
    Fault.rate_limited(retry_after=5, http_date=True, limit=10, remaining=0, reset=60),
    Fault.rate_limited(retry_after=None),
    Fault.problem(400, "Bad", detail="why", type="https://example.com/bad"),
    Fault.reset(),
    Fault.reset_mid_body(total=2000, sent=10),
    Fault.truncated(),
    Fault.malformed("bad_chunked"),
    Fault.delay(1.5),
    Fault.delay(2, then=Fault.status(504)),
    Fault.hang(),
    Fault.large(1_000_000, chunk=4096, encoding="br"),
    Fault.large("2MB", chunked=True),
    Fault.bomb(10_000_000, encoding="deflate"),
    Fault.redirect("https://example.com/x", status=307),
    Fault.echo(),
    Fault.sse([{"event": "tick", "data": "a\nb", "id": "1", "retry": 500}, {"data": "c"}], drop_after=1),
    Fault.sse([{"data": "x"}], honour_last_event_id=False),
]


@pytest.mark.parametrize("fault", ALL_FAULTS, ids=repr)
def test_every_fault_round_trips_through_json(fault: Fault) -> None:
    """Fault.from_dict(json(to_dict())) is the same fault, rendering the same bytes."""
    data = json.loads(json.dumps(fault.to_dict()))
    again = Fault.from_dict(data)
    assert again == fault
    assert again.head == fault.head
    assert again.wire == fault.wire


def test_fixed_responses_are_rendered_once_to_exact_bytes() -> None:
    """A fixed response's wire bytes are the status line, headers, blank line and body."""
    fault = Fault.ok(json={"ok": True}, headers={"X-Id": "7"})
    assert fault.wire == (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Id: 7\r\nContent-Length: 11\r\n\r\n"
        b'{"ok":true}'
    )


def test_a_given_content_length_is_sent_as_is() -> None:
    """A Content-Length given in headers is not replaced (so a test can make it lie)."""
    fault = Fault.ok(body=b"abc", headers={"Content-Length": "10"})
    assert fault.head.count(b"Content-Length") == 1
    assert b"Content-Length: 10\r\n" in fault.head


def test_no_content_statuses_have_no_body_or_length() -> None:
    """204 responses carry neither a body nor a Content-Length."""
    fault = Fault.status(204, json={"ignored": True})
    assert fault.body == b""
    assert b"Content-Length" not in fault.head


def test_repr_shows_the_constructor_call() -> None:
    """repr(fault) reads like the call that made it."""
    assert repr(Fault.status(503, retry_after=2)) == "Fault.status(code=503, retry_after=2)"


def test_chaos_round_trips_through_json() -> None:
    """Chaos.from_dict(to_dict()) restores rate, faults and seed."""
    chaos = Chaos(rate=0.3, faults=[Fault.status(503), Fault.reset(), Fault.delay(5.0)], seed=1)
    assert Chaos.from_dict(json.loads(json.dumps(chaos.to_dict()))) == chaos


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Fault.status(99), "200..999"),
        (lambda: Fault.ok(json={}, text="x"), "at most one"),
        (lambda: Fault.ok(encoding="zip"), "encoding"),
        (lambda: Fault.redirect("/x", status=200), "redirect status"),
        (lambda: Fault.truncated(total=10, sent=10), "less than total"),
        (lambda: Fault.malformed("weird"), "malformed kind"),
        (lambda: Fault.large(10, chunk=0), "chunk"),
        (lambda: Fault.delay(-1), "delay seconds"),
        (lambda: Fault.ok(headers={"Bad\nName": "x"}), "header"),
        (lambda: Fault.from_dict({"kind": "explode"}), "unknown fault kind"),
        (lambda: Fault.from_dict({"kind": "status", "code": 500, "colour": "red"}), "colour"),
        (lambda: Chaos(rate=1.5, faults=[Fault.reset()]), "between 0 and 1"),
        (lambda: Chaos(rate=0.5, faults=[]), "at least one fault"),
        (lambda: parse_rate("fast"), "600/minute"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_rule(make, message: str) -> None:  # type: ignore[no-untyped-def]
    """Invalid fault, chaos and rate arguments raise ValueError saying what was wrong."""
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    ("rate", "expected"),
    [("600/minute", (600, 60.0)), ("10/second", (10, 1.0)), ("5/min", (5, 60.0)), ("10/5s", (10, 5.0))],
)
def test_rate_strings_parse_to_count_and_period(rate: str, expected: tuple[int, float]) -> None:
    """Rate limits read as count per period."""
    assert parse_rate(rate) == expected


def test_pattern_bytes_are_consistent_at_any_offset() -> None:
    """pattern_bytes(offset, n) is the slice of one long repetition of PATTERN."""
    long = PATTERN * 10
    for offset in (0, 1, 63, 64, 100, 300):
        assert pattern_bytes(offset, 200) == long[offset : offset + 200]


def test_large_pieces_never_exceed_the_chunk_size() -> None:
    """An unencoded large body is produced in pieces of at most `chunk` bytes."""
    pieces = list(large_pieces(10_000, 999))
    assert max(len(p) for p in pieces) <= 999
    assert b"".join(pieces) == pattern_bytes(0, 10_000)


def test_gzip_bomb_pieces_stay_small_and_decode_to_the_promised_size() -> None:
    """A 96 MiB gzip bomb is a stream of pieces of about 1 KiB that decodes to the promised size,
    checked by its gzip trailer (CRC and size) without keeping the output."""
    size = 96 * 1024**2 + 5
    pieces = list(bomb_pieces(size, "gzip"))
    assert max(len(p) for p in pieces) < 2048
    z = zlib.decompressobj(31)
    decoded = 0
    for piece in pieces:
        pending = piece
        while pending:
            decoded += len(z.decompress(pending, 1 << 24))
            pending = z.unconsumed_tail
    assert z.eof
    assert decoded == size
