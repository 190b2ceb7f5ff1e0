"""tether demo: the main job runs offline and every call ends in a result or a typed error."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from typer.testing import CliRunner

from tether import events as ev
from tether.cli import _register, app
from tether.cli._demo import run_demo

pytestmark = pytest.mark.realtime


async def test_demo_rides_out_faults_and_an_outage() -> None:
    """Transient faults are retried, the outage opens the breaker and it closes again; no call is lost."""
    report = await run_demo(calls=80, concurrency=8, seed=7, console=Console(file=io.StringIO()))
    assert report.calls == 80
    assert report.succeeded + sum(report.failed.values()) == 80
    assert report.upstream_requests > 80  # retries and probes reached the provider
    assert report.events[ev.RETRY_SCHEDULED] > 0
    assert report.events[ev.BREAKER_OPENED] >= 1
    assert report.events[ev.BREAKER_CLOSED] >= 1
    assert report.deferred > 0  # calls refused by the open circuit went again later


def test_demo_command_prints_the_summary() -> None:
    """The CLI command runs the demo and prints the three summary tables."""
    _register()
    result = CliRunner().invoke(app, ["demo", "--calls", "20", "--concurrency", "4"])
    assert result.exit_code == 0, result.output
    for title in ("What the caller saw", "What the provider received", "What the policies did"):
        assert title in result.output
