"""The benchmark harness still runs end to end (``python -m bench --smoke``) and writes a sane report.

No timing is asserted: the smoke run only proves that every contender can be built and measured
and that the table, ratios, plot and raw JSON come out well-formed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLIENT_KEYS = ["a", "b", "c", "d", "e", "f"]
LEVELS = [1, 32, 256]
SMOKE_REQUESTS = 50
RATE_CELL = re.compile(r"^(?P<median>[\d,]+) \[(?P<low>[\d,]+)–(?P<high>[\d,]+)\]$")
RATIO_ROW = re.compile(
    r"^\| \((?P<num>[a-f])\) .+ ÷ \((?P<den>[a-f])\) .+ "
    r"\| (?P<value>[\d.]+)× \| ≥ [\d.]+× \| (?P<verdict>PASS|BELOW) \| (?P<cpu>[\d.]+)× \|$"
)


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _section(doc: str, title: str) -> list[str]:
    lines = doc.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("## ") and title in line)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return lines[start:end]


def test_smoke_run_writes_a_well_formed_report(tmp_path: Path) -> None:
    """A smoke run writes a well-formed table, ratios, PNG and JSON; --render rebuilds the same report."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--smoke",
            "--out-dir",
            str(tmp_path),
            "--results-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]

    doc = (tmp_path / "benchmarks.md").read_text()
    table = [line for line in _section(doc, "Throughput") if re.match(r"^\| \([a-f]\) ", line)]
    assert [row[3] for row in table] == CLIENT_KEYS
    for row in table:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 1 + 2 * len(LEVELS), row
        for rate, cpu in zip(cells[1::2], cells[2::2], strict=True):
            m = RATE_CELL.match(rate)
            assert m is not None, rate
            assert 0 < _number(m["low"]) <= _number(m["median"]) <= _number(m["high"])
            assert _number(cpu) > 0

    ratios = [RATIO_ROW.match(line) for line in _section(doc, "Ratios at concurrency 32")]
    found = [(m["num"], m["den"]) for m in ratios if m is not None]
    assert found == [("a", "c"), ("a", "b"), ("a", "e"), ("f", "c"), ("f", "e")]
    assert "![throughput and CPU per request](benchmarks.png)" in doc
    assert (tmp_path / "benchmarks.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    (raw_path,) = tmp_path.glob("bench-smoke-*.json")
    raw = json.loads(raw_path.read_text())
    runs = raw["measurements"]
    assert sorted((m["client"], m["concurrency"]) for m in runs) == sorted(
        (k, c) for k in CLIENT_KEYS for c in LEVELS
    )
    assert all(m["requests"] == SMOKE_REQUESTS and m["errors"] == 0 for m in runs), [
        (m["client"], m["concurrency"], m["first_error"]) for m in runs if m["errors"]
    ]
    assert {c["mode"] for c in raw["capacity"]} == {"keep-alive", "pipelined"}
    assert all(c["responses"] > 0 for c in raw["capacity"])
    pipelines = {k: v["pipeline"] for k, v in raw["meta"]["tether_clients"].items()}
    assert pipelines["a"] == []
    assert {"deadline", "retry", "breaker", "rate", "bulkhead"} <= set(pipelines["f"])

    again = tmp_path / "again"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--render", str(raw_path), "--out-dir", str(again)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (again / "benchmarks.md").read_text() == doc
