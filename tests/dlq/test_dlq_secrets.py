"""No secret reaches the DLQ: the SQLite file's bytes never hold a credential, and replays re-sign."""

from __future__ import annotations

from pathlib import Path

import pytest

import tether
from tether.dlq import Replayer, SQLiteDLQ
from tether.events import EventRecorder
from tether.mock import Fault, FaultServer
from tether.pipeline.fallback import Enqueue, Fallback
from tether.testing import VirtualClock

KEY_CANARY = "canary-key-5d1f0a8e77"
HEADER_CANARY = "canary-header-c3b9e1f2"
QUERY_CANARY = "canary-query-a7e4d6b0"


def _disk_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file())


async def test_sqlite_file_never_holds_a_secret_and_the_replay_is_signed_again(
    tmp_path: Path, fault_server: FaultServer
) -> None:
    """Auth key, a credential header and a credential query param are absent from the file's bytes."""
    fault_server.route("POST", "/v1/orders", Fault.status(503))
    folder = tmp_path / "dlq"
    dlq = SQLiteDLQ(folder / "dlq.db")
    clock = VirtualClock()
    client = tether.Client(
        fault_server.url + "/v1",
        retry=None,
        breaker=None,
        timeout=None,
        clock=clock,
        auth=tether.ApiKey(KEY_CANARY, header="X-API-Key"),
        headers={"Authorization": f"Bearer {HEADER_CANARY}"},
        policies=[Fallback(Enqueue(dlq))],
    )
    async with client:
        with pytest.raises(tether.APIError) as raised:
            await client.post("orders", params={"token": QUERY_CANARY, "page": "2"}, json={"sku": "A-1"})
        entry = await dlq.get(raised.value.dlq_id)  # type: ignore[attr-defined]
        assert entry is not None
        original = fault_server.log[0]
        assert original.header("x-api-key") == KEY_CANARY  # the call itself was signed
        on_disk = _disk_bytes(folder)
        assert b"A-1" in on_disk  # the entry really is in these files
        for canary in (KEY_CANARY, HEADER_CANARY, QUERY_CANARY):
            assert canary.encode() not in on_disk
        assert entry.credential_ref == f"{client.service}@{fault_server.url}"
        assert entry.request.url.endswith("/v1/orders?page=2")
        assert entry.request.header("authorization") is None

        fault_server.route("POST", "/v1/orders", Fault.ok(json={}))
        clock.advance(2)
        report = await Replayer(client, dlq, clock=clock).run_once()
    await dlq.aclose()
    assert report.delivered == [entry.id]
    replayed = fault_server.log[-1]
    assert replayed.header("x-api-key") == KEY_CANARY  # the auth scheme signed the replay
    assert replayed.header("idempotency-key") == original.header("idempotency-key")
    assert replayed.json() == {"sku": "A-1"}
    assert replayed.param("page") == "2"
    for canary in (KEY_CANARY, HEADER_CANARY, QUERY_CANARY):
        assert canary.encode() not in _disk_bytes(folder)


async def test_a_body_holding_a_secret_is_not_stored(tmp_path: Path, fault_server: FaultServer) -> None:
    """A request body with a registered secret is refused by the DLQ: no dlq_id, a dlq.failed event."""
    fault_server.route("POST", "/v1/orders", Fault.status(503))
    dlq = SQLiteDLQ(tmp_path / "dlq.db")
    recorder = EventRecorder()
    client = tether.Client(
        fault_server.url + "/v1",
        retry=None,
        breaker=None,
        auth=tether.ApiKey(KEY_CANARY, header="X-API-Key"),
        policies=[Fallback(Enqueue(dlq))],
        listeners=[recorder],
    )
    async with client:
        with pytest.raises(tether.APIError) as raised:
            await client.post("orders", json={"echo": KEY_CANARY})
    assert not hasattr(raised.value, "dlq_id")
    assert await dlq.list() == []
    await dlq.aclose()
    assert KEY_CANARY.encode() not in _disk_bytes(tmp_path)
    [event] = recorder.of("dlq.failed")
    assert event.fields["stage"] == "enqueue"
