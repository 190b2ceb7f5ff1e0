"""Secret sources: env, file, command, hook, value; refresh interval, on-demand refresh, rotation."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from auth_helpers import make_client

import tether.secret as ts
from tether.auth import ApiKey
from tether.errors import AuthenticationError
from tether.events import EventRecorder
from tether.mock import Fault, FaultServer
from tether.testing import VirtualClock

# --- env ---------------------------------------------------------------------------------------


async def test_env_reads_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """env(name) yields the variable's value."""
    monkeypatch.setenv("TETHER_T_KEY", "env-value-1")
    secret = await ts.env("TETHER_T_KEY").get()
    assert secret.reveal() == "env-value-1"


async def test_env_missing_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing variable raises AuthenticationError naming it."""
    monkeypatch.delenv("EXAMPLE_API_KEY", raising=False)
    with pytest.raises(AuthenticationError, match="environment variable EXAMPLE_API_KEY is not set"):
        await ts.env("EXAMPLE_API_KEY").check()


async def test_env_empty_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty variable counts as missing."""
    monkeypatch.setenv("TETHER_T_EMPTY", "")
    with pytest.raises(AuthenticationError, match="environment variable TETHER_T_EMPTY is empty"):
        await ts.env("TETHER_T_EMPTY").get()


# --- file --------------------------------------------------------------------------------------


async def test_json_file_with_a_dotted_key(tmp_path: Path) -> None:
    """file(path, key) follows a dotted key path into a JSON document."""
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps({"spotify": {"client_id": "sp-123", "list": ["a-1", "b-2"]}}))
    assert (await ts.file(path, "spotify.client_id").get()).reveal() == "sp-123"
    assert (await ts.file(path, "spotify.list.1").get()).reveal() == "b-2"


async def test_yaml_file_with_a_dotted_key(tmp_path: Path) -> None:
    """YAML files are read safely and followed by key path."""
    path = tmp_path / "secrets.yaml"
    path.write_text("discogs:\n  token: dg-token-9\n  number: 123456\n")
    assert (await ts.file(path, "discogs.token").get()).reveal() == "dg-token-9"
    assert (await ts.file(path, "discogs.number").get()).reveal() == "123456"


async def test_dotenv_file(tmp_path: Path) -> None:
    """.env files: export prefix, quotes, comments."""
    path = tmp_path / ".env"
    path.write_text(
        "# comment\nexport API_KEY='quoted value'\nOTHER=plain-val # trailing comment\nDQ=\"a\\nb\"\n"
    )
    assert (await ts.file(path, "API_KEY").get()).reveal() == "quoted value"
    assert (await ts.file(path, "OTHER").get()).reveal() == "plain-val"
    assert (await ts.file(path, "DQ").get()).reveal() == "a\nb"


async def test_plain_text_file(tmp_path: Path) -> None:
    """A file with another suffix is the secret itself, stripped."""
    path = tmp_path / "token.txt"
    path.write_text("  txt-secret-5\n")
    assert (await ts.file(path).get()).reveal() == "txt-secret-5"


async def test_missing_file_and_key_name_the_source(tmp_path: Path) -> None:
    """A missing file or key raises AuthenticationError naming the file and the key."""
    with pytest.raises(AuthenticationError, match=r"secret file .*nope\.json does not exist"):
        await ts.file(tmp_path / "nope.json", "a").get()
    path = tmp_path / "s.json"
    path.write_text('{"a": {"b": "value-xyz"}}')
    with pytest.raises(AuthenticationError, match=r"key 'a\.c' not found in secret file"):
        await ts.file(path, "a.c").get()
    with pytest.raises(AuthenticationError, match="not a single value"):
        await ts.file(path, "a").get()


async def test_a_broken_file_does_not_quote_its_content(tmp_path: Path) -> None:
    """A parse error names the file but never shows (or chains) the content."""
    path = tmp_path / "s.json"
    path.write_text('{"key": "broken-secret-4711"')
    with pytest.raises(AuthenticationError) as info:
        await ts.file(path, "key").get()
    assert "not valid JSON" in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__ or info.value.__context__ is None
    path = tmp_path / "s.yaml"
    path.write_text("key: [broken-secret-4711\n")
    with pytest.raises(AuthenticationError) as yinfo:
        await ts.file(path, "key").get()
    assert "broken-secret-4711" not in repr(yinfo.value)
    assert yinfo.value.__context__ is None


def test_file_key_needs_a_structured_format(tmp_path: Path) -> None:
    """A key on a plain-text file is a configuration error."""
    with pytest.raises(ValueError, match=r"needs a JSON, YAML or \.env file"):
        ts.file(tmp_path / "token.txt", "a")


# --- command -----------------------------------------------------------------------------------


async def test_command_stdout_is_the_secret() -> None:
    """command(argv) runs without a shell and uses stripped stdout."""
    source = ts.command([sys.executable, "-c", "print('  cmd-secret-77  ')"])
    assert (await source.get()).reveal() == "cmd-secret-77"


async def test_command_failure_names_the_program_not_the_output() -> None:
    """A failing command raises naming the program and exit status; its output is not shown."""
    source = ts.command([sys.executable, "-c", "import sys; print('leaky-out-1'); sys.exit(3)"])
    with pytest.raises(AuthenticationError, match="exited with status 3") as info:
        await source.get()
    assert "leaky-out-1" not in str(info.value)


async def test_command_not_found() -> None:
    """A program that does not exist is reported as such."""
    with pytest.raises(AuthenticationError, match="was not found"):
        await ts.command(["/nonexistent/tether-secret-helper"]).get()


def test_command_refuses_a_shell_line() -> None:
    """A single string is refused: argv only, never a shell."""
    with pytest.raises(ValueError, match="never a shell line"):
        ts.command("echo hi")


# --- hook and value ----------------------------------------------------------------------------


async def test_sync_and_async_hooks() -> None:
    """hook() takes sync or async callables returning a str or a Secret."""

    def sync_hook() -> str:
        return "hook-sync-1"

    async def async_hook() -> ts.Secret:
        await asyncio.sleep(0)
        return ts.Secret("hook-async-2")

    assert (await ts.hook(sync_hook).get()).reveal() == "hook-sync-1"
    assert (await ts.hook(async_hook).get()).reveal() == "hook-async-2"


async def test_hook_failures_name_the_hook() -> None:
    """A hook that raises or returns nothing gives AuthenticationError naming it."""

    def broken() -> str:
        raise RuntimeError("vault down")

    with pytest.raises(AuthenticationError, match=r"secret hook .*broken failed \(RuntimeError\)"):
        await ts.hook(broken).get()
    with pytest.raises(AuthenticationError, match="returned no secret"):
        await ts.hook(lambda: None, name="empty").get()


async def test_value_source_repr_is_masked() -> None:
    """value() is a literal whose repr shows no value."""
    source = ts.value("literal-secret-8")
    assert "literal-secret-8" not in repr(source)
    assert (await source.get()).reveal() == "literal-secret-8"


# --- refresh -----------------------------------------------------------------------------------


async def test_refresh_interval_in_virtual_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """A source is cached until its interval passes (24 h by default), then re-read."""
    clock = VirtualClock()
    monkeypatch.setenv("TETHER_T_ROT", "v1-aaaa")
    source = ts.env("TETHER_T_ROT", clock=clock)
    assert source.refresh_interval == 24 * 3600
    assert (await source.get()).reveal() == "v1-aaaa"
    monkeypatch.setenv("TETHER_T_ROT", "v2-bbbb")
    clock.advance(24 * 3600 - 1)
    assert (await source.get()).reveal() == "v1-aaaa"
    clock.advance(1)
    assert (await source.get()).reveal() == "v2-bbbb"


async def test_a_failed_scheduled_reread_keeps_the_old_value(tmp_path: Path) -> None:
    """When the re-read fails, the last good value is kept and the failure counted."""
    clock = VirtualClock()
    path = tmp_path / "k.txt"
    path.write_text("file-v1-x")
    source = ts.file(path, refresh_interval="1h", clock=clock)
    assert (await source.get()).reveal() == "file-v1-x"
    path.unlink()
    clock.advance(3600)
    assert (await source.get()).reveal() == "file-v1-x"
    assert source.failed_reads == 1
    path.write_text("file-v2-y")
    clock.advance(60)
    assert (await source.get()).reveal() == "file-v2-y"


async def test_refresh_on_demand_rereads_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """await source.refresh() re-reads immediately, whatever the interval."""
    monkeypatch.setenv("TETHER_T_DEMAND", "first-1111")
    source = ts.env("TETHER_T_DEMAND")
    await source.get()
    monkeypatch.setenv("TETHER_T_DEMAND", "second-2222")
    assert (await source.refresh()).reveal() == "second-2222"


async def test_concurrent_refreshes_read_once() -> None:
    """Fifty calls refused with the same secret cause one re-read, not fifty."""
    calls = 0

    async def vault() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        return f"vault-value-{calls}"

    source = ts.hook(vault)
    used = await source.get()
    results = await asyncio.gather(*(source.refresh_if_current(used) for _ in range(50)))
    assert calls == 2
    assert {r.reveal() for r in results} == {"vault-value-2"}


async def test_rotation_is_reported_without_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """A re-read that finds a new value emits auth.secret_rotated naming the source, not the value."""
    clock = VirtualClock()
    monkeypatch.setenv("TETHER_T_EV", "rot-old-value")
    recorder = EventRecorder()
    async with FaultServer() as server:
        server.route("GET", "/x", Fault.echo())
        source = ts.env("TETHER_T_EV", refresh_interval="1h")
        client = make_client(server.url, ApiKey(source), clock=clock, listeners=[recorder])
        async with client:
            await client.get("/x")
            monkeypatch.setenv("TETHER_T_EV", "rot-new-value")
            clock.advance(3600)
            await client.get("/x")
            await client.get("/x")
    rotated = recorder.of("auth.secret_rotated")
    assert len(rotated) == 1
    assert rotated[0].fields["source"] == "environment variable TETHER_T_EV"
    assert "rot-new-value" not in repr(recorder.events)
    assert [r.header("x-api-key") for r in server.log] == ["rot-old-value", "rot-new-value", "rot-new-value"]


# --- missing at start --------------------------------------------------------------------------


async def test_missing_secret_fails_at_start_naming_the_source(monkeypatch: pytest.MonkeyPatch) -> None:
    """check() (what the client calls on start) raises naming the variable; nothing is sent."""
    monkeypatch.delenv("EXAMPLE_API_KEY", raising=False)
    options = ApiKey(ts.env("EXAMPLE_API_KEY"))
    with pytest.raises(AuthenticationError, match="environment variable EXAMPLE_API_KEY is not set"):
        await options.check()
    async with FaultServer() as server:
        client = make_client(server.url, options)
        with pytest.raises(AuthenticationError, match="EXAMPLE_API_KEY is not set"):
            async with client:  # starting the client resolves the secret
                await client.get("/fast")
        with pytest.raises(AuthenticationError, match="EXAMPLE_API_KEY is not set"):
            await make_client(server.url, options).get("/fast")  # no start: the first request says so
        assert server.log == []
