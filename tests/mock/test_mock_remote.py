"""Remote control of a FaultServer over HTTP, `python -m tether.mock`, and spawn_server()."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest
from mock_wire import WAIT

import tether.mock
from tether.mock import Chaos, Fault, FaultServer, RecordedRequest, spawn_server

SRC = str(Path(tether.mock.__file__).resolve().parents[2])


async def test_remote_log_returns_every_recorded_request_as_json(fault_server: FaultServer) -> None:
    """GET /__tether/log returns the log with bodies as text and base64; control calls are not logged."""
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{fault_server.url}/echo?x=1", data=b"\xffbin") as resp:
            await resp.read()
        async with s.get(f"{fault_server.url}/__tether/log") as resp:
            doc = await resp.json()
    (entry,) = doc["requests"]
    assert entry["method"] == "POST"
    assert entry["query"] == {"x": ["1"]}
    assert entry["body"] is None  # not UTF-8
    assert base64.b64decode(entry["body_base64"]) == b"\xffbin"
    assert RecordedRequest.from_dict(entry) == fault_server.log[0]


async def test_remote_routes_install_faults_from_their_json_form(fault_server: FaultServer) -> None:
    """POST /__tether/routes installs a scripted route with a rate limit from JSON."""
    spec = {
        "method": "GET",
        "path": "/remote/{id}",
        "responses": [{"kind": "status", "code": 503, "retry_after": 2}, Fault.ok(json={"ok": 1}).to_dict()],
        "rate_limit": "10/hour",
        "burst": 2,
    }
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{fault_server.url}/__tether/routes", json=spec) as resp:
            assert resp.status == 201
            assert (await resp.json())["added"] == 1
        got = []
        for i in range(3):
            async with s.get(f"{fault_server.url}/remote/{i}") as resp:
                got.append((resp.status, resp.headers.get("Retry-After")))
    assert got == [(503, "2"), (200, None), (429, got[2][1])]
    assert int(got[2][1] or 0) >= 1


async def test_remote_routes_accept_lists_and_chaos(fault_server: FaultServer) -> None:
    """POST /__tether/routes accepts {"routes": [...]} including chaos, and GET lists them back."""
    chaos = Chaos(rate=1.0, faults=[Fault.status(502)], seed=3)
    specs = {
        "routes": [
            {"method": "*", "path": "/a", "responses": [{"kind": "ok", "text": "a"}]},
            {"path": "/b", "responses": [{"kind": "ok"}], "chaos": chaos.to_dict()},
        ]
    }
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{fault_server.url}/__tether/routes", json=specs) as resp:
            assert (await resp.json())["added"] == 2
        async with s.get(f"{fault_server.url}/b") as resp:
            assert resp.status == 502
        async with s.get(f"{fault_server.url}/__tether/routes") as resp:
            paths = [r["path"] for r in (await resp.json())["routes"]]
    assert paths == ["/fast", "/echo", "/a", "/b"]


async def test_a_bad_remote_route_spec_gets_a_400_problem_and_adds_nothing(fault_server: FaultServer) -> None:
    """A route spec with an unknown fault kind is refused with problem+json naming the error."""
    bad = [{"path": "/ok", "responses": [{"kind": "ok"}]}, {"path": "/x", "responses": [{"kind": "boom"}]}]
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{fault_server.url}/__tether/routes", json=bad) as resp:
            assert resp.status == 400
            assert "boom" in (await resp.json(content_type=None))["detail"]
        async with s.post(f"{fault_server.url}/__tether/routes", data=b"{not json") as resp:
            assert resp.status == 400
        async with s.get(f"{fault_server.url}/ok") as resp:
            assert resp.status == 404


async def test_remote_reset_and_log_delete(fault_server: FaultServer) -> None:
    """POST /__tether/reset drops routes and log; DELETE /__tether/log only clears the log."""
    fault_server.route("GET", "/mine", Fault.ok())
    async with aiohttp.ClientSession() as s:
        for _ in range(2):
            async with s.get(f"{fault_server.url}/mine") as resp:
                await resp.read()
        async with s.delete(f"{fault_server.url}/__tether/log") as resp:
            assert resp.status == 200
        assert fault_server.log == []
        async with s.post(f"{fault_server.url}/__tether/reset") as resp:
            assert resp.status == 200
        async with s.get(f"{fault_server.url}/mine") as resp:
            assert resp.status == 404
        async with s.get(f"{fault_server.url}/__tether/stats") as resp:
            stats = await resp.json()
    assert stats["requests"] >= 3
    assert stats["log"] == 1


def _run_module(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)}
    return subprocess.Popen(
        [sys.executable, "-m", "tether.mock", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_module_prints_one_listening_line_and_stops_on_signal(tmp_path: Path, sig: signal.Signals) -> None:
    """`python -m tether.mock --port 0 --routes F` prints exactly 'listening URL', serves the
    routes, and exits 0 on SIGTERM or SIGINT."""
    routes = tmp_path / "routes.json"
    routes.write_text(json.dumps([{"path": "/hello", "responses": [{"kind": "ok", "text": "hi"}]}]))
    proc = _run_module("--port", "0", "--routes", str(routes))
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening http://127.0.0.1:")
        url = line.split()[1]
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(f"{url}/hello") as resp:
            assert resp.read() == b"hi"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out == ""  # nothing after the one line


def test_module_exits_2_on_a_bad_routes_file(tmp_path: Path) -> None:
    """A routes file with a bad fault makes `python -m tether.mock` exit 2 with the reason."""
    routes = tmp_path / "routes.json"
    routes.write_text(json.dumps([{"path": "/x", "responses": [{"kind": "nope"}]}]))
    proc = _run_module("--routes", str(routes))
    out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 2
    assert out == ""
    assert "nope" in err


def test_spawn_server_runs_routes_in_a_subprocess_and_fetches_its_log() -> None:
    """spawn_server() starts the child with routes, .log() returns its records, exit stops it."""
    routes = [
        {"method": "GET", "path": "/data/{id}", "responses": [Fault.status(500), Fault.ok(json={"v": 1})]}
    ]
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with spawn_server(routes) as server:
        statuses = []
        for i in range(3):
            try:
                with opener.open(f"{server.url}/data/{i}?k=v") as resp:
                    statuses.append(resp.status)
            except urllib.error.HTTPError as exc:
                statuses.append(exc.code)
        log = server.log()
        server.route("GET", "/later", Fault.ok(text="later"))
        with opener.open(f"{server.url}/later") as resp:
            assert resp.read() == b"later"
        server.reset()
        assert server.log() == []
        process = server.process
    assert statuses == [500, 200, 200]
    assert [r.path for r in log] == ["/data/0", "/data/1", "/data/2"]
    assert log[0].query == {"k": ["v"]}
    assert [r.status for r in log] == [500, 200, 200]
    assert process.poll() is not None
