"""``tether call SPEC ENDPOINT -p k=v ...``: one call through the full pipeline, printed as JSON.

``-v`` prints each attempt as it happens (attempt number, status or error, the wait before the
next one) from the pipeline's events, on stderr, masked like every other output. Exit code 0 on
success; 1 with the error's code and message on failure.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Final

import typer

from tether import events as ev
from tether._redact import redact_text
from tether.cli import app
from tether.errors import TetherError
from tether.events import Event
from tether.integration import open as open_integration
from tether.spec import load
from tether.spec._endpoint import Endpoint

__all__ = ["RECORD_HELP", "attempt_line", "parse_params", "recording"]

_JSON_TYPES: Final = frozenset({"array", "object"})


def parse_params(pairs: list[str], endpoint: Endpoint | None) -> dict[str, Any]:
    """``k=v`` pairs as call keywords. Values stay text (the spec's types convert them), except
    for ``array`` / ``object`` parameters and body fields, which are read as JSON when they are."""
    types = {p.name: p.type for p in endpoint.parameters} if endpoint is not None else {}
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise typer.BadParameter(f"expected name=value, got {pair!r}", param_hint="-p")
        kind = types.get(name)
        if kind in _JSON_TYPES:
            try:
                out[name] = json.loads(value)
            except ValueError:
                raise typer.BadParameter(f"{name} is an {kind}: give it as JSON", param_hint="-p") from None
        elif kind is None:
            try:
                out[name] = json.loads(value)
            except ValueError:
                out[name] = value
        else:
            out[name] = value
    return out


def _seconds(value: Any) -> str:
    return f"{value:.3g}s" if isinstance(value, int | float) else str(value)


def attempt_line(event: Event) -> str | None:
    """One ``-v`` line for an event (``None`` for events it does not show)."""
    f = event.fields
    name = event.name
    if name == ev.REQUEST_SENT:
        return f"attempt {f.get('attempt')}: {f.get('method')} {f.get('url')}"
    if name == ev.RESPONSE_RECEIVED:
        elapsed = f.get("elapsed")
        took = f" in {elapsed * 1000:.0f} ms" if isinstance(elapsed, int | float) else ""
        return f"attempt {f.get('attempt')}: HTTP {f.get('status')}{took}"
    if name == ev.REQUEST_FAILED:
        return f"attempt {f.get('attempt')}: {f.get('error_type')}"
    if name == ev.RETRY_SCHEDULED:
        attempt = f.get("attempt")
        before = attempt - 1 if isinstance(attempt, int) else "?"
        return (
            f"attempt {before} failed ({f.get('reason')}); waiting {_seconds(f.get('delay'))} "
            f"({f.get('source')}) before attempt {attempt}"
        )
    if name == ev.RETRY_GAVE_UP:
        return f"gave up after {f.get('attempts')} attempt(s): {f.get('reason')} (last: {f.get('last')})"
    if name == ev.RETRY_REFUSED_WAIT:
        return (
            f"the server asked to wait {_seconds(f.get('retry_after'))} ({f.get('source')}), "
            f"more than {f.get('limit')} allows: not waiting"
        )
    if name == ev.RETRY_BUDGET_EXHAUSTED:
        return "retry budget spent: not retrying"
    if name in (ev.BREAKER_OPENED, ev.BREAKER_HALF_OPENED, ev.BREAKER_CLOSED):
        return f"circuit breaker {f.get('from_state')} -> {f.get('to_state')} ({f.get('reason')})"
    if name == ev.BREAKER_REJECTED:
        return (
            f"circuit breaker {f.get('state')}: failing fast (retry after {_seconds(f.get('retry_after'))})"
        )
    if name == ev.LIMITER_QUEUED:
        return f"rate limit: waiting {_seconds(f.get('wait'))} for a slot"
    if name == ev.LIMITER_PAUSED:
        return f"rate limit: paused {_seconds(f.get('seconds'))} ({f.get('reason')}, {f.get('source')})"
    if name == ev.LIMITER_REJECTED:
        return f"rate limit: rejected ({f.get('reason')})"
    if name == ev.CREDENTIALS_STRIPPED:
        return f"credentials not sent to {f.get('destination')} (another origin)"
    if name == ev.AUTH_TOKEN_REFRESHED:
        return "credentials refreshed"
    if name == ev.API_DEPRECATED:
        sunset = f.get("sunset")
        return f"warning: {event.endpoint} is deprecated" + (f" (sunset {sunset})" if sunset else "")
    if name == ev.DEADLINE_EXCEEDED:
        return "the call's total deadline ran out"
    return None


def _printer(echo: Callable[[str], None]) -> Callable[[Event], None]:
    def listen(event: Event) -> None:
        line = attempt_line(event)
        if line is not None:
            echo(redact_text(line))

    return listen


async def _run(
    spec: Path,
    endpoint: str,
    pairs: list[str],
    env: str | None,
    verbose: bool,
    echo: Callable[[str], None],
    base_url: str | None = None,
    record: Path | None = None,
) -> Any:
    loaded = load(spec, env=env)
    params = parse_params(pairs, loaded.endpoints.get(endpoint))
    listeners = [_printer(echo)] if verbose else []
    overrides: dict[str, Any] = {"base_url": base_url} if base_url else {}
    overrides.update(recording(record, endpoint))
    async with open_integration(loaded, listeners=listeners, **overrides) as api:
        result = await api.call(endpoint, **params)
    return result.data


def recording(folder: Path | None, endpoint: str) -> dict[str, Any]:
    """``tether.open`` keywords for ``--record DIR``: every exchange of the run sent live and
    written (scrubbed) to ``DIR/<endpoint>.yaml``, replacing what an earlier run wrote there."""
    if folder is None:
        return {}
    return {"cassette": (folder / f"{endpoint}.yaml").resolve(), "record": "all"}


#: The ``--record DIR`` option of ``tether call`` and ``tether fetch``.
RECORD_HELP: Final = "Record the exchanges, scrubbed, to the cassette DIR/<endpoint>.yaml."


def _json(data: Any) -> str:
    if isinstance(data, Mapping | list | int | float | bool) or data is None:
        return json.dumps(data, indent=2, ensure_ascii=False, default=str)
    return json.dumps(data, ensure_ascii=False, default=str)


@app.command("call")
def call_command(
    spec: Annotated[Path, typer.Argument(help="The integration spec (YAML).")],
    endpoint: Annotated[str, typer.Argument(help="The endpoint's name in the spec.")],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="A parameter as name=value (repeat for more)."),
    ] = None,
    env: Annotated[str | None, typer.Option("--env", "-e", help="The environment to call.")] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url", help="Send to this base URL instead of the spec's (a sandbox, tether mock)."
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Print each attempt.")] = False,
    record: Annotated[Path | None, typer.Option("--record", file_okay=False, help=RECORD_HELP)] = None,
) -> None:
    """Make one call through the full pipeline and print the result data as JSON."""

    def to_stderr(line: str) -> None:
        typer.echo(line, err=True)

    try:
        data = asyncio.run(_run(spec, endpoint, param or [], env, verbose, to_stderr, base_url, record))
    except TetherError as exc:
        typer.echo(redact_text(f"error: {exc.error_code} {type(exc).__name__}: {exc}"), err=True)
        raise typer.Exit(1) from None
    typer.echo(redact_text(_json(data)))
