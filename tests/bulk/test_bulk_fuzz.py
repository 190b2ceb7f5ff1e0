"""Fuzzing `tether fetch` input files: whatever the bytes, a TetherError or rows that check out,
never another exception and never a hang (each example has a 10 s deadline)."""

from __future__ import annotations

import json
from pathlib import Path

from bulk_helpers import SPEC, closed_port, spec_environ
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import tether
from tether.bulk import FetchJob, parse_destination, read_inputs
from tether.cli import _register, app
from tether.errors import TetherError

SUFFIXES = (".csv", ".jsonl", ".ndjson", ".json")
PIECES = [
    "identifier", "start", "end", "interval", "identifer", ",", ",,", '"', '""', "\n", "\r\n", "\r", "\ufeff",
    "\x00", "A-1", "2024-01-01", "2024-13-45", "daily", "hourly", "{", "}", "[", "]", ":", '"identifier"',
    "null", "true", "1e999", "NaN", "-0", "9" * 50, "é", "\udcff", " ", "\t", "#", "'", "\\", "x" * 300,
]  # fmt: skip

texts = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)
nested = st.integers(min_value=1, max_value=100_000).map(lambda n: "[" * n + "]" * (n % 3))
objects = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(PIECES[:5]), inner, max_size=4)
    ),
    max_leaves=20,
)
documents = (
    st.binary(max_size=400)
    | texts.map(lambda t: t.encode("utf-8", "surrogatepass"))
    | nested.map(str.encode)
    | st.lists(objects, max_size=5).map(lambda xs: "\n".join(json.dumps(x) for x in xs).encode())
    | st.lists(objects, max_size=5).map(lambda xs: json.dumps(xs).encode())
)
FUZZ = settings(max_examples=1000, deadline=10_000, suppress_health_check=list(HealthCheck))

_API = tether.open(SPEC, environ=spec_environ(), base_url=f"http://127.0.0.1:{closed_port()}/v1")


@FUZZ
@given(data=documents, suffix=st.sampled_from(SUFFIXES))
def test_hostile_input_files_read_and_check_to_rows_or_a_tether_error(
    tmp_path_factory, data: bytes, suffix: str
) -> None:  # type: ignore[no-untyped-def]
    """1,000 hostile files through reading, unit building and the input check: only TetherErrors."""
    path = tmp_path_factory.mktemp("fuzz") / f"in{suffix}"
    path.write_bytes(data)
    try:
        rows = read_inputs(path)
        job = FetchJob(_API, "get_historical", parse_destination(str(path.with_suffix(".out"))), rows=rows)
        units, _ = job._units(rows)
        job._check(units)
    except TetherError:
        pass


@settings(max_examples=40, deadline=10_000, suppress_health_check=list(HealthCheck))
@given(data=documents, suffix=st.sampled_from(SUFFIXES))
def test_hostile_input_files_through_the_cli_exit_cleanly(tmp_path_factory, data: bytes, suffix: str) -> None:  # type: ignore[no-untyped-def]
    """40 hostile files through `tether fetch` against a closed port with --fail-fast: exit 0, 1 or 2
    with a message, never a traceback."""
    folder: Path = tmp_path_factory.mktemp("cli")
    spec = folder / "vendor.yaml"
    spec.write_text(
        f'service: {{name: v, base_url: "http://127.0.0.1:{closed_port()}"}}\n'
        "retry: {max_attempts: 1}\ncircuit_breaker: {enabled: false}\n"
        "endpoints:\n  get:\n    path: /items/{identifier}\n"
        "    parameters:\n"
        "      - {name: identifier, in: path, type: string, required: true, pattern: '^[A-Z0-9-]{1,20}$'}\n",
        encoding="utf-8",
    )
    each = folder / f"in{suffix}"
    each.write_bytes(data)
    _register()
    result = CliRunner().invoke(
        app, ["fetch", str(spec), "get", "--each", str(each), "--out", str(folder / "o.jsonl"), "--fail-fast"]
    )
    assert result.exit_code in (0, 1, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
