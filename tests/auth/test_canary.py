"""The canary: one secret value used by every scheme from every source, driven through every kind
of failure, must appear nowhere tether writes: logs, events, exceptions (whole chains), reprs."""

from __future__ import annotations

import json
import logging
import socket
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import structlog
from auth_helpers import make_client

import tether.secret as ts
from tether.auth import (
    ApiKey,
    AuthOptions,
    Basic,
    Bearer,
    Combined,
    Custom,
    Headers,
    HttpxAuth,
    OAuth2ClientCredentials,
    OAuth2RefreshToken,
)
from tether.errors import TetherError
from tether.events import EventRecorder
from tether.mock import Fault, FaultServer
from tether.telemetry import StructlogListener

CANARY = "cnry-5e1f0b9d7a-never-leak"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, ts.SecretSource]:
    monkeypatch.setenv("TETHER_CANARY", CANARY)
    (tmp_path / "secrets.json").write_text(json.dumps({"svc": {"key": CANARY}}))
    (tmp_path / "secrets.yaml").write_text(f"svc:\n  key: {CANARY}\n")
    (tmp_path / ".env").write_text(f"SVC_KEY={CANARY}\n")
    (tmp_path / "token.txt").write_text(CANARY + "\n")

    async def async_hook() -> str:
        return CANARY

    return {
        "env": ts.env("TETHER_CANARY"),
        "json": ts.file(tmp_path / "secrets.json", "svc.key"),
        "yaml": ts.file(tmp_path / "secrets.yaml", "svc.key"),
        "dotenv": ts.file(tmp_path / ".env", "SVC_KEY"),
        "text": ts.file(tmp_path / "token.txt"),
        "command": ts.command([sys.executable, "-c", f"print({CANARY!r})"]),
        "hook_sync": ts.hook(lambda: CANARY, name="sync_vault"),
        "hook_async": ts.hook(async_hook),
        "value": ts.value(CANARY),
    }


def _install_routes(server: FaultServer) -> None:
    problem = {"title": "Unauthorized", "detail": f"credential {CANARY} is not valid"}
    server.route("*", "/401", Fault.status(401, json=problem, content_type="application/problem+json"))
    server.route("*", "/403", Fault.status(403, json={"message": f"forbidden for {CANARY}"}))
    server.route("*", "/500", Fault.status(500, body=f"boom {CANARY}".encode()))
    server.route("POST", "/token", Fault.ok(json={"access_token": f"{CANARY}-at", "token_type": "bearer"}))
    refusal = {"error": "invalid_client", "error_description": f"client secret {CANARY} is wrong"}
    server.route("POST", "/token-refused", Fault.status(401, json=refusal))
    server.route("POST", "/token-broken", Fault.status(500, body=f"<html>{CANARY}</html>".encode()))


def _exception_texts(exc: BaseException) -> Iterator[str]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        yield "".join(traceback.format_exception_only(type(current), current))
        if isinstance(current, TetherError):
            yield json.dumps(current.to_error_response())
            yield repr((current.title, current.detail, current.type))
        todo.extend([current.__cause__, current.__context__])


async def test_the_canary_appears_nowhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Every scheme x every source x every failure: the canary is in no log, event, error or repr."""
    caplog.set_level(logging.DEBUG)
    sources = _sources(tmp_path, monkeypatch)
    recorder = EventRecorder()
    texts: list[str] = []
    errors: list[BaseException] = []
    paths = ["/401", "/403", "/500", "/echo"]

    def sign_custom(request: httpx2.Request) -> None:
        request.headers["X-Custom-Sig"] = CANARY

    async with FaultServer() as server:
        _install_routes(server)
        token_url = f"{server.url}/token"
        dead = f"http://127.0.0.1:{_closed_port()}"
        schemes: list[tuple[AuthOptions, str, list[str]]] = [
            (ApiKey(sources["env"]), server.url, paths),
            (ApiKey(sources["json"], query="api_key"), server.url, paths),
            (ApiKey(sources["yaml"], body_field="token"), server.url, paths),
            (
                ApiKey(sources["dotenv"], header="Authorization", template="Discogs token={secret}"),
                server.url,
                paths,
            ),
            (Bearer(sources["command"]), server.url, paths),
            (Basic("user", sources["hook_sync"]), server.url, paths),
            (
                Combined(Headers({"X-Vault-Token": sources["hook_async"]}), Bearer(sources["text"])),
                server.url,
                paths,
            ),
            (Custom(sign_custom, headers=["X-Custom-Sig"]), server.url, paths),
            (HttpxAuth(httpx2.BasicAuth("user", CANARY)), server.url, paths),
            (OAuth2ClientCredentials(token_url, "cid", sources["value"]), server.url, paths),
            (
                OAuth2ClientCredentials(f"{server.url}/token-refused", "cid", sources["env"]),
                server.url,
                ["/echo"],
            ),
            (
                OAuth2ClientCredentials(
                    f"{server.url}/token-broken", "cid", sources["json"], token_retries=0
                ),
                server.url,
                ["/echo"],
            ),
            (OAuth2ClientCredentials(f"{dead}/token", "cid", CANARY, token_retries=0), server.url, ["/echo"]),
            (OAuth2RefreshToken(token_url, "cid", refresh_token=sources["yaml"]), server.url, paths),
            (ApiKey(sources["value"], query="key"), dead, ["/echo"]),  # connection refused
        ]
        with structlog.testing.capture_logs() as captured:
            listeners = [recorder, StructlogListener(min_level=logging.DEBUG)]
            for options, base_url, calls in schemes:
                texts.append(repr(options))
                client = make_client(base_url, options, listeners=listeners)
                async with client:
                    policy = client.pipeline.policy("auth")
                    for path in calls:
                        try:
                            await client.post(path, json={"q": 1})
                        except Exception as exc:
                            errors.append(exc)
                    texts.extend([repr(client), repr(policy), repr(policy.status())])
        received = [repr((r.target, r.headers, r.body)) for r in server.log]

    texts.extend(repr(s) for s in sources.values())
    texts.extend(str(s) for s in sources.values())
    texts.extend(t for exc in errors for t in _exception_texts(exc))
    texts.extend(repr(e) for e in recorder.events)
    texts.extend(repr(entry) for entry in captured)
    texts.append(caplog.text)
    texts.extend(repr(r.__dict__) for r in caplog.records)

    # The run did exercise the secret: it reached the server, and every kind of failure happened.
    assert any(CANARY in line for line in received)
    kinds = {type(e).__name__ for e in errors}
    assert {"AuthenticationError", "APIError", "ConnectionError"} <= kinds
    assert any("invalid_client" in str(e) for e in errors)
    assert captured, "the structlog listener logged the events"
    leaks = [text for text in texts if CANARY in text]
    assert leaks == []


def test_the_canary_is_masked_in_an_ad_hoc_log_line(caplog: pytest.LogCaptureFixture) -> None:
    """Once read, the value is masked even in text tether did not write itself (via mask_processor)."""
    from tether.telemetry import mask_processor

    secret = ts.Secret(CANARY)
    event: dict[str, Any] = {"event": f"user code printed {secret.reveal()}", "token": CANARY}
    masked = mask_processor(None, "info", event)
    assert CANARY not in repr(masked)
