"""The audit log: one JSON line per call with the call's facts, and no credential or body."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

import tether
from tether.errors import APIError, CircuitOpenError
from tether.mock import Fault, FaultServer
from tether.telemetry import AuditLog
from tether.telemetry._audit import AUDIT_FIELDS

KEY = "sk-audit-7d0e3b-canary"
BODY_MARK = "payload-that-must-not-be-logged"


async def test_each_call_is_one_line_with_outcome_status_attempts_and_served_by(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    """Success, a cache hit, a failure after retries and a breaker rejection: four lines, in
    order, with exactly the audit fields; no key, URL or body anywhere in the file."""
    fault_server.route("GET", "/ok", Fault.ok(json={"v": BODY_MARK}))
    fault_server.route("GET", "/down", Fault.status(503, body=BODY_MARK.encode()))
    path = tmp_path / "audit" / "calls.jsonl"
    audit = AuditLog(path)
    async with tether.Client(
        fault_server.url,
        auth=tether.ApiKey(KEY),
        cache=tether.Cache(ttl=60),
        retry=tether.Retry(attempts=2, initial=0.01, jitter=False),
        breaker=tether.Breaker(failures=2, open_for=60),
        listeners=[audit],
    ) as client:
        await client.get("/ok", endpoint="ok")
        await client.get("/ok", endpoint="ok")
        with pytest.raises(APIError):
            await client.get("/down", endpoint="down")
        with pytest.raises(CircuitOpenError):
            await client.get("/down", endpoint="down")
    audit.close()
    text = path.read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    assert [tuple(line) for line in lines] == [AUDIT_FIELDS] * 4
    assert [(x["endpoint"], x["outcome"], x["status"], x["served_by"]) for x in lines] == [
        ("ok", "success", 200, "network"),
        ("ok", "success", 200, "cache"),
        ("down", "failure", 503, None),
        ("down", "rejected", None, None),
    ]
    assert [x["attempts"] for x in lines[:3]] == [1, 1, 2]
    assert [x["error_code"] for x in lines] == [None, None, "API_001", "CIRCUIT_001"]
    assert all(len(x["request_id"]) == 32 for x in lines)
    assert len({x["request_id"] for x in lines}) == 4
    assert all(x["time"].endswith("Z") and x["service"] == "127.0.0.1" for x in lines)
    assert KEY not in text and BODY_MARK not in text and "/down" not in text


async def test_the_spec_sends_the_audit_log_to_a_logger(
    fault_server: FaultServer, caplog: pytest.LogCaptureFixture
) -> None:
    """monitoring.audit: {logger: …} logs each call's JSON line at INFO on that logger."""
    fault_server.route("GET", "/item", Fault.ok(json={}))
    spec = f"""
service: {{name: audited, base_url: "{fault_server.url}"}}
monitoring: {{audit: {{logger: app.audit}}}}
endpoints: {{item: {{path: /item, method: GET}}}}
"""
    caplog.set_level(logging.INFO, logger="app.audit")
    async with tether.open(spec) as api:
        result = await api.call("item")
    records = [r for r in caplog.records if r.name == "app.audit"]
    assert len(records) == 1
    line = json.loads(records[0].getMessage())
    assert (line["service"], line["endpoint"], line["outcome"]) == ("audited", "item", "success")
    assert line["request_id"] == result.meta.request_id


def test_an_audit_log_needs_exactly_one_target() -> None:
    """AuditLog() and AuditLog(path, logger=…) are refused, naming the rule."""
    with pytest.raises(ValueError, match="give one of them"):
        AuditLog()
    with pytest.raises(ValueError, match="give one of them"):
        AuditLog("a.jsonl", logger="x")
