"""``tether stream SPEC ENDPOINT -p k=v``: the server-sent events of a streaming endpoint.

Each event is printed as one JSON line on stdout as it arrives (``event``, ``data``, ``id``);
errors go to stderr. ``--base-url`` / ``--env`` point the spec at another server without editing
it. Exit code 0 when the stream ends, 1 on an error (its code and message), 130 on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from tether._redact import redact_text
from tether.cli import app
from tether.cli._call import parse_params
from tether.errors import TetherError
from tether.integration import open as open_integration
from tether.spec import load

__all__ = ["stream_command"]


async def _stream(spec: Path, endpoint: str, pairs: list[str], env: str | None, base_url: str | None) -> None:
    loaded = load(spec, env=env)
    params = parse_params(pairs, loaded.endpoints.get(endpoint))
    overrides: dict[str, Any] = {"base_url": base_url} if base_url else {}
    async with open_integration(loaded, **overrides) as api:
        async for event in api.stream(endpoint, **params):
            line = {"event": event.event, "data": event.data, "id": event.id}
            typer.echo(redact_text(json.dumps(line, ensure_ascii=False)))


@app.command("stream")
def stream_command(
    spec: Annotated[Path, typer.Argument(help="The integration spec (YAML).")],
    endpoint: Annotated[str, typer.Argument(help="A streaming endpoint's name (one with streaming:).")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="A parameter as name=value (repeat for more).")
    ] = None,
    env: Annotated[str | None, typer.Option("--env", "-e", help="The environment to call.")] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url", help="Send to this base URL instead of the spec's (a sandbox, tether mock)."
        ),
    ] = None,
) -> None:
    """Print a streaming endpoint's events as JSON lines as they arrive."""
    try:
        asyncio.run(_stream(spec, endpoint, param or [], env, base_url))
    except TetherError as exc:
        typer.echo(redact_text(f"error: {exc.error_code} {type(exc).__name__}: {exc}"), err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
