"""Nothing secret is written: credentials and every registered secret are scrubbed first."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

import tether
from tether._redact import registry
from tether.cassette import Cassette, Interaction
from tether.mock import Fault


@pytest.fixture
def canary() -> Iterator[str]:
    """A secret made at run time, with characters that URL and JSON encodings change."""
    with registry.isolated():
        yield f"canary+{os.urandom(8).hex()}/key="


def _forms(secret: str) -> list[bytes]:
    return [
        form.encode()
        for form in (
            secret,
            quote(secret, safe=""),
            quote_plus(secret),
            json.dumps(secret)[1:-1],
            base64.b64encode(secret.encode()).decode(),
        )
    ]


async def test_a_canary_api_key_appears_nowhere_in_the_cassette(
    fault_server: Any, tmp_path: Path, canary: str
) -> None:
    """The key sent as a header and a query parameter, echoed back in bodies and put in a JSON
    request body, is in no form in the file's bytes, and the replay still works."""
    fault_server.route(
        "GET", "/v1/token", Fault.ok(json={"access_token": "tok-" + canary[-8:], "expires_in": 60})
    )
    path = tmp_path / "secret.yaml"
    auth = tether.ApiKey(tether.secret.value(canary), header="X-API-Key")
    async with tether.Client(fault_server.url + "/v1", auth=auth, cassette=path, record="all") as client:
        echoed = await client.get(fault_server.url + "/echo", params={"api_key": canary, "q": canary})
        assert canary in echoed.text  # the server did see and echo it
        await client.post(
            fault_server.url + "/echo", json={"note": f"my key is {canary}", "password": "hunter22"}
        )
        await client.get("token")
    data = path.read_bytes()
    for form in _forms(canary):
        assert form not in data, form
    assert b"hunter22" not in data and b"tok-" + canary[-8:].encode() not in data
    assert b"X-API-Key: '***'" in data
    async with tether.Client(fault_server.url + "/v1", auth=auth, cassette=path, record="none") as client:
        again = await client.get(fault_server.url + "/echo", params={"api_key": canary, "q": canary})
    assert again.status_code == 200 and canary not in again.text


async def test_user_filters_scrub_their_names_and_before_record_edits_or_drops(
    fault_server: Any, tmp_path: Path
) -> None:
    """filter_headers / filter_params / filter_fields mask more names; before_record can drop."""

    def drop_health(interaction: Interaction) -> Interaction | None:
        return None if interaction.request.url.endswith("/health") else interaction

    fault_server.route("GET", "/health", Fault.ok(json={"ok": True}))
    cassette = Cassette(
        tmp_path / "f.yaml",
        record="all",
        filter_headers=["X-Session"],
        filter_params=["account"],
        filter_fields=["ssn"],
        before_record=drop_health,
    )
    async with tether.Client(fault_server.url, cassette=cassette) as client:
        await client.post(
            "/echo",
            params={"account": "ACC-991"},
            headers={"X-Session": "sess-123"},
            json={"ssn": "078-05-1120", "name": "Ada"},
        )
        await client.get("/health")
    text = (tmp_path / "f.yaml").read_text()
    for private in ("ACC-991", "sess-123", "078-05-1120"):
        assert private not in text
    assert "name: Ada" in text and "/health" not in text
    assert len(Cassette(tmp_path / "f.yaml", record="none").interactions) == 1


def test_filters_take_lists_of_names_not_a_string() -> None:
    """filter_headers="X-Session" (a string, not a list) is refused instead of masking letters."""
    with pytest.raises(TypeError, match="takes a list of names"):
        Cassette("x.yaml", filter_headers="X-Session")
