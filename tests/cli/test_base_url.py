"""--base-url (and --env) point call, status, stream and fetch at another server without editing the spec."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bulk"))

from bulk_helpers import closed_port, run_tether

from tether.mock import Fault, FaultServer

SPEC = """
service:
  name: vendor
  base_url: "http://127.0.0.1:{port}"
  environments: {{sandbox: "{sandbox}"}}
retry: {{max_attempts: 1}}
endpoints:
  get_item:
    path: "/items/{{id}}"
    parameters: [{{name: id, in: path, type: string, required: true}}]
  events:
    path: /events
    streaming: {{type: sse}}
"""


def _spec(tmp_path: Path, sandbox: str) -> Path:
    path = tmp_path / "vendor.yaml"
    path.write_text(SPEC.format(port=closed_port(), sandbox=sandbox), encoding="utf-8")
    return path


async def test_call_goes_to_the_base_url_given_or_to_the_environment(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    """The spec's own base URL is a closed port: --base-url and --env sandbox both reach the mock."""
    fault_server.route("GET", "/items/{id}", Fault.echo())
    spec = _spec(tmp_path, fault_server.url)
    code, out, err = await run_tether(
        "call", str(spec), "get_item", "-p", "id=A-1", "--base-url", fault_server.url
    )
    assert code == 0, err
    assert json.loads(out)["path"] == "/items/A-1"
    code, out, err = await run_tether("call", str(spec), "get_item", "-p", "id=A-2", "--env", "sandbox")
    assert code == 0, err
    code, _, err = await run_tether("call", str(spec), "get_item", "-p", "id=A-3")
    assert code == 1 and "CONN_001" in err


async def test_stream_prints_each_event_from_the_base_url(fault_server: FaultServer, tmp_path: Path) -> None:
    """tether stream SPEC ENDPOINT --base-url URL prints the events as JSON lines."""
    fault_server.route(
        "GET", "/events", Fault.sse([{"event": "tick", "data": "1", "id": "a"}, {"data": "2"}])
    )
    code, out, err = await run_tether(
        "stream", str(_spec(tmp_path, "http://127.0.0.1:9")), "events", "--base-url", fault_server.url
    )
    assert code == 0, err
    assert [json.loads(line) for line in out.splitlines()] == [
        {"event": "tick", "data": "1", "id": "a"},
        {"event": "message", "data": "2", "id": "a"},
    ]


async def test_status_reports_the_base_url_given(tmp_path: Path) -> None:
    """tether status --base-url shows that base URL (nothing is sent to it)."""
    code, out, err = await run_tether(
        "status", str(_spec(tmp_path, "http://127.0.0.1:9")), "--base-url", "http://127.0.0.1:9/v9", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["base_url"] == "http://127.0.0.1:9/v9"
