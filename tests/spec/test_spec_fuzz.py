"""Fuzzing the loader: whatever the text, the result is a Spec or a located SpecError."""

from __future__ import annotations

import copy
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spec_helpers import SPECS

from tether.errors import SpecError
from tether.spec import Spec, load
from tether.spec._yaml import parse

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_BASE, _, _ = parse((SPECS / "int-template-filled.yaml").read_text(encoding="utf-8"), "base")

TOKENS = [
    "service:",
    "name: x",
    "base_url: https://x.example",
    "endpoints:",
    "path: /a/{id}",
    "method: GET",
    "parameters:",
    "- {name: id, in: path}",
    "retry:",
    "max_attempts: 3",
    "timeouts:",
    "connect: 5s",
    "rate_limits:",
    "tier: premium",
    "tiers: {premium: {requests_per_minute: 5}}",
    "$ref: '#/components'",
    "$ref: '#/a/b'",
    "components:",
    "schemas:",
    "${VAR}",
    "${VAR:-d}",
    "${",
    "&a",
    "*a",
    "<<: *a",
    "!!python/object:os.system",
    "!!binary aGk=",
    "!custom",
    "[",
    "]",
    "{",
    "}",
    ":",
    "- ",
    "? ",
    "'",
    '"',
    "#",
    "|",
    ">",
    "---",
    "...",
    "null",
    "~",
    "true",
    "1e400",
    ".nan",
    "-1",
    "0x1F",
    "2025-01-01",
    "on:",
    "é",
    "\t",
    "\x00",
    "\ufeff",
    "endpoint:",
    "request:",
    "error_handling:",
    "inbound:",
    "pagination: {type: cursor}",
    "condition: error_rate > 5%",
    "monitoring:",
    "alerts:",
]


def _outcome(text: str) -> Spec | SpecError:
    try:
        return load(text, environ={})
    except SpecError as exc:
        return exc


def _assert_spec_or_located_error(text: str) -> None:
    outcome = _outcome(text)
    if isinstance(outcome, Spec):
        return
    assert outcome.location, f"SpecError without a location: {outcome!r}"
    problems = getattr(outcome, "problems", ())
    assert problems, "a SpecLoadError lists its problems"
    assert all(p.location.line >= 1 and p.location.column >= 1 for p in problems)


@FUZZ
@given(st.text(max_size=400))
def test_random_text(text: str) -> None:
    """Random unicode text loads or fails with a located SpecError, nothing else."""
    _assert_spec_or_located_error(text)


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=6), st.sampled_from(TOKENS), st.sampled_from(["\n", " ", ""])
        ),
        max_size=40,
    )
)
def test_yaml_shaped_text(pieces: list[tuple[int, str, str]]) -> None:
    """Text assembled from YAML and spec fragments loads or fails with a located SpecError."""
    text = "".join(" " * indent + token + end for indent, token, end in pieces)
    _assert_spec_or_located_error(text)


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += _paths(value, (*path, index))
    return out


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        node = node[part]
    return node


JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def mutated_spec(draw: st.DrawFn) -> str:
    data = copy.deepcopy(_BASE)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        paths = _paths(data)
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["delete", "retype", "unknown_key", "unicode"]))
        target = _get(data, path)
        if action == "delete" and path:
            parent = _get(data, path[:-1])
            del parent[path[-1]]
        elif action == "retype" and path:
            _get(data, path[:-1])[path[-1]] = draw(JSONISH)
        elif action == "unknown_key" and isinstance(target, dict):
            target[draw(st.text(min_size=1, max_size=12))] = draw(JSONISH)
        elif action == "unicode" and path:
            _get(data, path[:-1])[path[-1]] = draw(st.text(max_size=20))
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(data, Dumper=dumper, allow_unicode=True, sort_keys=False)


@FUZZ
@given(mutated_spec())
def test_mutations_of_the_bundled_spec(text: str) -> None:
    """Deleted keys, changed types, unknown keys and random unicode never escape as other errors."""
    _assert_spec_or_located_error(text)


def test_deep_nesting_is_a_problem_not_a_crash() -> None:
    """100 000 nested brackets or block dashes give a located problem (no stack overflow)."""
    for text in ("[" * 100_000, "- " * 100_000 + "x", "a: {" * 5_000):
        outcome = _outcome(text)
        assert isinstance(outcome, SpecError)
        assert "too deep" in str(outcome)


def test_alias_tricks_are_problems_not_hangs() -> None:
    """A recursive alias and an exponential alias expansion are reported, not followed."""
    recursive = _outcome("service: &s {name: x, base_url: 'https://x.example', headers: *s}\n")
    assert isinstance(recursive, SpecError) and "recursive alias" in str(recursive)
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(6)
    )
    outcome = _outcome(bomb)
    assert isinstance(outcome, SpecError) and "too large" in str(outcome)
