"""tether demo: the main job (fan-out, every page, a crash and a resume) against a flaky mock, offline."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from tether import events as ev
from tether.cli import _register, app
from tether.cli._demo import run_demo

pytestmark = pytest.mark.realtime


async def test_demo_survives_faults_and_a_crash_with_every_record_exactly_once(tmp_path: Path) -> None:
    """Faults of several kinds reached the job, it was retried through them, crashed and resumed,
    and the output holds the 12 x 366 records once each."""
    report = await run_demo(seed=7, fault_rate=0.15, console=Console(file=io.StringIO()), workdir=tmp_path)
    assert report.exactly_once
    assert report.written == report.expected == 12 * 366
    assert report.written_before_crash > 0
    faults = {kind for kind in report.provider if kind != "answered"}
    assert len(faults) >= 2
    assert report.events[ev.RETRY_SCHEDULED] > 0


def test_demo_command_prints_a_summary_a_newcomer_can_read() -> None:
    """The command prints what was asked, what the provider did, what tether did, and the verdict."""
    _register()
    result = CliRunner().invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    for title in ("What was asked", "What the provider did", "What tether did", "exactly once"):
        assert title in result.output
