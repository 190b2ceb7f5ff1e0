"""tether dlq list | show | replay | purge, through typer's CliRunner against real SQLite files."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from dlq_helpers import EPOCH, make_entry
from typer.testing import CliRunner

import tether.cli._dlq  # noqa: F401  (registers the commands on the app)
from tether.cli import app
from tether.dlq import DeadLetter, SQLiteDLQ, StoredRequest
from tether.mock import Fault, spawn_server

LEAKED = "leaked-value-9e8d7c6b"


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A CLI runner with no TETHER_DLQ_DB in the environment."""
    monkeypatch.delenv("TETHER_DLQ_DB", raising=False)
    return CliRunner()


def seed(db: Path, *entries: DeadLetter) -> None:
    async def run() -> None:
        dlq = SQLiteDLQ(db)
        for entry in entries:
            await dlq.add(entry)
        await dlq.aclose()

    asyncio.run(run())


def stored(db: Path) -> list[DeadLetter]:
    async def run() -> list[DeadLetter]:
        dlq = SQLiteDLQ(db)
        try:
            return list(await dlq.list())
        finally:
            await dlq.aclose()

    return asyncio.run(run())


def invoke(runner: CliRunner, *args: str, **kwargs: Any) -> Any:
    return runner.invoke(app, ["dlq", *args], **kwargs)


def test_list_shows_a_table_with_counts(runner: CliRunner, tmp_path: Path) -> None:
    """list prints each entry's id, status, endpoint, request and error, and the counts."""
    db = tmp_path / "dlq.db"
    pending, failed = make_entry(), make_entry(status="failed", error_code="CONN_001", created_at=EPOCH + 1)
    seed(db, pending, failed)
    result = invoke(runner, "list", "--db", str(db))
    assert result.exit_code == 0, result.output
    assert "1 pending, 1 failed" in result.output
    assert pending.id in result.output and failed.id in result.output
    assert "create_order" in result.output and "CONN_001" in result.output
    only_failed = invoke(runner, "list", "--db", str(db), "--failed")
    assert failed.id in only_failed.output and pending.id not in only_failed.output


def test_list_json_masks_credentials(runner: CliRunner, tmp_path: Path) -> None:
    """--json gives one object per entry with credential params masked."""
    db = tmp_path / "dlq.db"
    entry = make_entry(request=StoredRequest("GET", f"https://api.test/x?api_key={LEAKED}&q=1"))
    seed(db, entry)
    result = invoke(runner, "list", "--db", str(db), "--json")
    assert result.exit_code == 0, result.output
    [line] = result.output.strip().splitlines()
    doc = json.loads(line)
    assert doc["id"] == entry.id
    assert LEAKED not in result.output
    assert "q=1" in doc["url"]


def test_show_prints_the_request_masked(runner: CliRunner, tmp_path: Path) -> None:
    """show by id prefix prints method, URL, headers, body, key and error, with secrets masked."""
    db = tmp_path / "dlq.db"
    request = StoredRequest(
        "POST",
        f"https://api.test/v1/orders?token={LEAKED}",
        (("content-type", "application/json"), ("authorization", f"Bearer {LEAKED}")),
        b'{"sku":"A-1"}',
    )
    entry = make_entry(request=request, idempotency_key="key-123")
    seed(db, entry)
    result = invoke(runner, "show", entry.id[:10], "--db", str(db))
    assert result.exit_code == 0, result.output
    for expected in ("POST", "api.test/v1/orders", "content-type", '{"sku":"A-1"}', "key-123", "API_001"):
        assert expected in result.output
    assert LEAKED not in result.output


def test_show_an_unknown_id_fails(runner: CliRunner, tmp_path: Path) -> None:
    """show with an id that matches nothing exits 1 and says so."""
    db = tmp_path / "dlq.db"
    seed(db, make_entry())
    result = invoke(runner, "show", "nope", "--db", str(db))
    assert result.exit_code == 1
    assert "no dead letter" in result.output


def test_a_missing_db_is_an_error(runner: CliRunner, tmp_path: Path) -> None:
    """list against a file that does not exist exits 1 naming the path."""
    result = invoke(runner, "list", "--db", str(tmp_path / "absent.db"))
    assert result.exit_code == 1
    assert "absent.db" in result.output


def test_db_defaults_to_the_specs_dlq_path(runner: CliRunner, tmp_path: Path) -> None:
    """With --spec, the DLQ file is the spec's dlq.path (beside the spec)."""
    spec = tmp_path / "svc.yaml"
    spec.write_text(
        "service:\n  name: example\n  base_url: https://api.example.com/v1\n"
        "dlq:\n  path: parked.db\n"
        "endpoints:\n  get_item:\n    path: /items/{id}\n"
        "    parameters:\n      - {name: id, in: path, type: string}\n"
    )
    entry = make_entry()
    seed(tmp_path / "parked.db", entry)
    result = invoke(runner, "list", "--spec", str(spec))
    assert result.exit_code == 0, result.output
    assert entry.id in result.output


def test_replay_by_id_delivers_and_removes(runner: CliRunner, tmp_path: Path) -> None:
    """replay --id sends the entry with its idempotency key and removes it once delivered."""
    db = tmp_path / "dlq.db"
    routes = [{"method": "POST", "path": "/v1/orders", "responses": [Fault.ok(json={"ok": True})]}]
    with spawn_server(routes) as server:
        chosen = make_entry(
            request=StoredRequest("POST", server.url + "/v1/orders", (("idempotency-key", "k-7"),), b"{}"),
            idempotency_key="k-7",
            status="failed",
        )
        other = make_entry(request=StoredRequest("POST", server.url + "/v1/orders", (), b"{}"))
        seed(db, chosen, other)
        result = invoke(runner, "replay", "--id", chosen.id, "--db", str(db))
        log = server.log()
    assert result.exit_code == 0, result.output
    assert "delivered" in result.output
    assert [e.id for e in stored(db)] == [other.id]
    assert [r.header("idempotency-key") for r in log] == ["k-7"]


def test_replay_without_a_spec_skips_signed_entries(runner: CliRunner, tmp_path: Path) -> None:
    """--all replays every entry, but one that was signed needs --spec and is left in place."""
    db = tmp_path / "dlq.db"
    routes = [{"method": "PUT", "path": "/items/{id}", "responses": [Fault.ok(json={})]}]
    with spawn_server(routes) as server:
        unsigned = make_entry(request=StoredRequest("PUT", server.url + "/items/1", (), b"{}"))
        signed = make_entry(
            request=StoredRequest("PUT", server.url + "/items/2", (), b"{}"),
            credential_ref="svc@https://api.test",
        )
        seed(db, unsigned, signed)
        result = invoke(runner, "replay", "--all", "--db", str(db))
        log = server.log()
    assert result.exit_code == 0, result.output
    assert "needs --spec" in result.output
    assert [e.id for e in stored(db)] == [signed.id]
    assert [r.path for r in log] == ["/items/1"]


def test_purge_failed_with_yes_keeps_pending(runner: CliRunner, tmp_path: Path) -> None:
    """purge --failed --yes removes only the failed set."""
    db = tmp_path / "dlq.db"
    pending = make_entry()
    seed(db, pending, make_entry(status="failed"), make_entry(status="failed"))
    result = invoke(runner, "purge", "--failed", "--yes", "--db", str(db))
    assert result.exit_code == 0, result.output
    assert "removed 2 dead letters" in result.output
    assert [e.id for e in stored(db)] == [pending.id]


def test_purge_asks_first(runner: CliRunner, tmp_path: Path) -> None:
    """Without --yes, purge asks; 'n' keeps everything, 'y' removes everything."""
    db = tmp_path / "dlq.db"
    seed(db, make_entry(), make_entry(status="failed"))
    declined = invoke(runner, "purge", "--db", str(db), input="n\n")
    assert declined.exit_code == 1
    assert len(stored(db)) == 2
    accepted = invoke(runner, "purge", "--db", str(db), input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert stored(db) == []
