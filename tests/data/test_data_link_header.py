"""The RFC 8288 Link header parser: quoted parameters, several links, tolerance, round trips."""

from __future__ import annotations

import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.paginate import Link, find_link, format_link_header, parse_link_header

SETTINGS = settings(max_examples=200, deadline=None)


def test_github_style_header() -> None:
    """A GitHub pagination header yields each link with its rel."""
    value = (
        '<https://api.github.com/repositories/1/issues?page=2>; rel="next", '
        '<https://api.github.com/repositories/1/issues?page=5>; rel="last"'
    )
    links = parse_link_header(value)
    assert [(link.target, link.rels) for link in links] == [
        ("https://api.github.com/repositories/1/issues?page=2", ("next",)),
        ("https://api.github.com/repositories/1/issues?page=5", ("last",)),
    ]


def test_commas_and_semicolons_inside_quotes_do_not_split() -> None:
    """Commas, semicolons and escaped quotes inside a quoted value stay in the value."""
    links = parse_link_header('<a>; title="x, y; \\"z\\""; rel=next, <b>; rel="prev"')
    assert links[0].param("title") == 'x, y; "z"'
    assert links[0].rels == ("next",)
    assert links[1].target == "b" and links[1].rels == ("prev",)


def test_targets_may_contain_commas_and_semicolons() -> None:
    """A target URI with commas and semicolons is read up to its closing bracket."""
    (link,) = parse_link_header("<https://h/p;v=1?ids=1,2,3>;rel=next")
    assert link.target == "https://h/p;v=1?ids=1,2,3"


def test_several_relations_and_case_insensitive_names() -> None:
    """rel may list several relations; parameter names and relations match in any case."""
    (link,) = parse_link_header('<x>; REL="Next Last"; Type=text/html')
    assert link.rels == ("next", "last")
    assert link.param("type") == "text/html"


def test_first_duplicate_parameter_wins() -> None:
    """A repeated rel parameter is ignored after the first (RFC 8288 3.3)."""
    (link,) = parse_link_header("<x>; rel=prev; rel=next")
    assert link.rels == ("prev",)


def test_parameters_without_values() -> None:
    """A parameter written without '=' has no value."""
    (link,) = parse_link_header("<x>; crossorigin; rel=next")
    assert link.params == (("crossorigin", None), ("rel", "next"))


@pytest.mark.parametrize(
    ("value", "targets"),
    [
        ("", []),
        ("garbage", []),
        ("junk, <a>; rel=next", ["a"]),
        ("<a>; rel=next junk; title=t, <b>", ["a", "b"]),
        ("<unterminated; rel=next", []),
        ('<a>; title="never closed, <b>; rel=next', ["a"]),
        (",,, <a>,,", ["a"]),
        ("<a>; =x; rel=next", ["a"]),
    ],
)
def test_malformed_input_is_tolerated(value: str, targets: list[str]) -> None:
    """Malformed pieces are skipped; the well-formed links around them are kept."""
    assert [link.target for link in parse_link_header(value)] == targets


def test_find_link_reads_every_link_header_line() -> None:
    """find_link looks through several Link header lines (httpx2 headers or a plain mapping)."""
    headers = httpx2.Headers([("Link", '<p1>; rel="prev"'), ("link", '<p3>; rel="next"')])
    assert find_link(headers, "next") == "p3"
    assert find_link({"LINK": '<p3>; rel="next"'}, "NEXT") == "p3"
    assert find_link({"Content-Type": "x"}, "next") is None
    assert find_link({"Link": '<p1>; rel="prev"'}, "next") is None


tokens = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~", min_size=1, max_size=8)
targets = st.text(
    alphabet=st.characters(blacklist_characters=">", blacklist_categories=("Cs",)), max_size=30
).map(str.strip)
values = st.one_of(st.none(), st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20))
links = st.builds(Link, targets, st.lists(st.tuples(tokens, values), max_size=4).map(tuple))


@SETTINGS
@given(st.lists(links, max_size=5))
def test_generated_links_round_trip(generated: list[Link]) -> None:
    """Any links, formatted as a header, parse back to the same links."""
    assert parse_link_header(format_link_header(generated)) == generated


@SETTINGS
@given(st.text(max_size=200))
def test_parser_never_crashes(value: str) -> None:
    """Arbitrary text parses to a list of links without raising."""
    for link in parse_link_header(value):
        assert isinstance(link.target, str)
        assert all(name == name.lower() for name, _ in link.params)


@SETTINGS
@given(st.text(alphabet='<>;,="\\ abrelnxt', max_size=60))
def test_parser_never_crashes_on_delimiter_soup(value: str) -> None:
    """Text made of the header's own delimiters parses without raising."""
    parse_link_header(value)
