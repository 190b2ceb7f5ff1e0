"""The REQ-001 load test's report: resources against their targets, every service level, status."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.dataapi_load import SECTION, link_section, render  # noqa: E402

from tether.telemetry._sla import LatencyTargets, SlaRecorder, SlaTargets  # noqa: E402
from tether.testing import VirtualClock  # noqa: E402


def _result() -> dict[str, object]:
    recorder = SlaRecorder(
        "dataapi",
        SlaTargets(
            latency={"get_data": LatencyTargets(0.15, 0.5, 1.0)}, error_rate=0.005, breaker_recovery=60
        ),
        operations=["get_data"],
        clock=VirtualClock(),
    )
    for _ in range(20):
        recorder.record("get_data", 0.05, from_cache=True)
    return {
        "args": {"duration": 60.0, "scale": 20, "workers": 6, "outage": 3.0, "pause": 0.5},
        "cpu": 9.0,
        "wall": 60.0,
        "rss": 700 * 1000**2,
        "levels": recorder.report(),
        "outcomes": {"get_data": 20},
        "requests_seen_by_mock": 5,
        "status_output": "service levels (every instance, last 10 min)",
    }


def test_the_report_marks_resources_and_lists_every_service_level() -> None:
    """CPU share 15 % passes 20 %, 700 MB is short of 512 MB; each figure has its target and mark."""
    text = render(_result())
    assert "| CPU share (CPU s / wall s, one core = 100 %) | 15.0 % | < 20 % | pass |" in text
    assert "| peak RSS | 700 MB | < 512 MB | short |" in text
    assert "| get_data (20 calls) | p95 | 50 ms | 500 ms | pass |" in text
    assert "| breaker (0 recoveries) | breaker_recovery | — | 60 s | no data |" in text
    assert "service levels (every instance" in text


def test_the_main_report_links_the_load_test_once(tmp_path: Path) -> None:
    """The link section is appended to benchmarks.md once, whatever the number of runs."""
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n")
    link_section(doc)
    link_section(doc)
    assert doc.read_text().count(SECTION) == 1
