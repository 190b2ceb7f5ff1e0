"""``tether status SPEC``: breaker, limiter, budget, DLQ and SLA state from the configured store.

With a shared state store (``state: {url: sqlite:///… | redis://…}``) this is what every worker
of the integration sees; with the default in-memory store it is a fresh process's view. Nothing
is sent to the provider. ``--json`` prints the raw snapshot.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tether.cli import app
from tether.errors import TetherError
from tether.integration import open as open_integration
from tether.telemetry._sla import sla_rows

__all__ = ["collect_status"]

_SECTIONS = ("breaker", "limiter", "bulkhead", "cache", "budget", "rights", "fallback", "auth", "dlq")


async def collect_status(spec: Path, env: str | None, base_url: str | None = None) -> dict[str, Any]:
    """The integration's status as read from its state store."""
    overrides: dict[str, Any] = {"base_url": base_url} if base_url else {}
    async with open_integration(spec, env=env, **overrides) as integration:
        return await integration.fetch_status()


def _flat(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested status as (dotted key, text) rows."""
    if isinstance(value, dict):
        return [row for key, inner in value.items() for row in _flat(inner, f"{prefix}{key}.")]
    return [(prefix.rstrip("."), "—" if value is None else str(value))]


def _render(status: dict[str, Any], console: Console) -> None:
    head = Table(show_header=False, box=None)
    for key in ("service", "environment", "base_url"):
        head.add_row(f"[bold]{key}", str(status.get(key)))
    head.add_row("[bold]pipeline", " → ".join(status.get("pipeline", [])))
    console.print(head)
    for section in _SECTIONS:
        if section not in status:
            continue
        table = Table(title=section, show_header=False, title_justify="left")
        for key, value in _flat(status[section]):
            table.add_row(key, value)
        console.print(table)
    endpoints = status.get("endpoints") or {}
    if endpoints:
        sla = Table(title="endpoints (this process)", title_justify="left")
        for col in ("endpoint", "calls", "p50", "p95", "p99", "breaching"):
            sla.add_column(col)
        for name, entry in endpoints.items():
            sla.add_row(
                name,
                str(entry.get("calls")),
                *(str(entry.get(k)) for k in ("p50", "p95", "p99")),
                ", ".join(entry.get("breaching", [])) or "—",
            )
        console.print(sla)
    levels = status.get("sla")
    if levels:
        minutes = float(levels.get("window", 0)) / 60
        table = Table(title=f"service levels (every instance, last {minutes:g} min)", title_justify="left")
        for col in ("operation", "figure", "value", "target", "mark"):
            table.add_column(col)
        for operation, figure, value, target, mark in sla_rows(levels):
            style = {"pass": "green", "short": "red"}.get(mark, "dim")
            table.add_row(operation, figure, value, target, f"[{style}]{mark}[/{style}]")
        console.print(table)


@app.command()
def status(
    spec: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The integration spec.")],
    env: Annotated[str | None, typer.Option("--env", "-e", help="Environment (default: TETHER_ENV).")] = None,
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", help="The base URL instead of the spec's (a sandbox, tether mock)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the snapshot as JSON.")] = False,
) -> None:
    """Show breaker, limiter, budget, DLQ and SLA state from the spec's state store."""
    console = Console()
    try:
        snapshot = asyncio.run(collect_status(spec, env, base_url))
    except TetherError as exc:
        Console(stderr=True).print(f"[red]error[/red]: {exc.error_code} {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(snapshot, indent=2, default=str))
    else:
        _render(snapshot, console)
