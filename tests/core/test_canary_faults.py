"""A canary secret, sent with requests that fail in every way the fault server offers, leaks nowhere."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator

import pytest
import structlog
from structlog.testing import LogCapture

import tether
from tether._redact import registry
from tether.events import EventRecorder
from tether.mock import Fault, FaultServer
from tether.telemetry import StructlogListener
from tether.transport import EngineOptions


def _faults(canary: str, other_origin: str) -> dict[str, Fault]:
    """One route per fault kind; several echo the canary back, as careless servers do."""
    return {
        "/s400": Fault.status(400, json={"error": f"bad key {canary}"}),
        "/s401": Fault.status(401, json={"error": f"token {canary} expired"}),
        "/s403": Fault.problem(403, "Forbidden", detail=f"key {canary} lacks scope"),
        "/s404": Fault.status(404),
        "/s422": Fault.status(422, json={"errors": [canary]}),
        "/s429": Fault.rate_limited(retry_after=1),
        "/s500": Fault.status(500, body=f"Traceback: key={canary}".encode()),
        "/s503": Fault.status(503, retry_after=1),
        "/reset": Fault.reset(),
        "/reset-mid": Fault.reset_mid_body(total=5000, sent=100),
        "/truncated": Fault.truncated(total=5000, sent=100),
        "/garbage": Fault.malformed(kind="garbage"),
        "/bad-chunked": Fault.malformed(kind="bad_chunked"),
        "/bad-header": Fault.malformed(kind="bad_header"),
        "/slow": Fault.delay(2.0),
        "/hang": Fault.hang(),
        "/too-big": Fault.large(200_000),
        "/bomb": Fault.bomb(5_000_000),
        "/echo": Fault.echo(),
        "/redirect-away": Fault.redirect(f"{other_origin}/landing", status=302),
    }


@pytest.fixture
def canary() -> Iterator[str]:
    """A fresh random secret, registered only for this test."""
    with registry.isolated():
        yield f"canary-{secrets.token_hex(12)}"


async def test_canary_appears_in_no_log_event_exception_or_repr(
    canary: str, caplog: pytest.LogCaptureFixture
) -> None:
    """DEBUG logs, events, error messages (whole cause chains) and reprs never show the secret."""
    capture = LogCapture()
    structlog.configure(
        processors=[capture], wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG)
    )
    recorder = EventRecorder()
    seen: list[str] = []
    async with FaultServer() as other, FaultServer() as server:
        other.route("GET", "/landing", Fault.echo())
        for path, fault in _faults(canary, other.url).items():
            server.route("GET", path, fault)
        client = tether.Client(
            server.url,
            auth=tether.Bearer(canary),
            params={"api_key": canary},
            timeout=tether.Timeouts(connect=1, read=0.3, write=1, total=2),
            retry=tether.Retry(attempts=2, initial=0.01, max_delay=0.02),
            breaker=None,
            engine=EngineOptions(max_response_size=100_000, follow_redirects=True),
            listeners=[recorder, StructlogListener()],
        )
        with caplog.at_level(logging.DEBUG):
            async with client:
                seen.append(repr(client))
                for path in _faults(canary, other.url):
                    try:
                        response = await client.get(path)
                        seen.append(repr(response))
                        seen.append(str(response.headers))
                    except tether.TetherError as exc:
                        err: BaseException | None = exc
                        while err is not None:
                            seen += [str(err), repr(err), str(getattr(err, "args", ""))]
                            err = err.__cause__ or err.__context__
                        seen.append(str(exc.to_error_response()))
        # The secret really was sent (so the test can fail): the server saw it.
        assert any(canary in str(entry.headers) or canary in entry.target for entry in server.log)
        # ...but never to the other origin the redirect pointed at.
        assert all(canary not in str(e.headers) and canary not in e.target for e in other.log)
    structlog.reset_defaults()
    seen += [repr(e) for e in recorder.events]
    seen += [str(entry) for entry in capture.entries]
    seen.append(caplog.text)
    assert recorder.events, "the run should have produced events"
    assert capture.entries, "the structlog listener should have logged"
    leaks = [text for text in seen if canary in text]
    assert leaks == []
