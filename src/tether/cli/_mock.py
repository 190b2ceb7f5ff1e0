"""``tether mock SPEC``: serve a fault-injecting mock of the spec's API on loopback.

One route per endpoint (the base URL's path prefix kept), each answering with an example body made
from the endpoint's success schema, or, when the spec's ``testing.unit_tests.mock_responses`` is
true and its ``fixtures_location`` holds cassettes (or ``--cassettes DIR`` is given), with the
recorded response of the same request; ``--fault-rate`` of the requests get one of ``--faults``
(seeded by ``--seed``); ``--enforce-limits`` makes the server enforce the spec's rate limit. Once
bound it prints ``listening http://HOST:PORT`` (flushed) and a table of routes, then serves until
Ctrl-C or SIGTERM. Only loopback addresses are bound.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tether._units import parse_duration
from tether.cassette._answers import answering_routes
from tether.cassette._verify import cassette_files
from tether.cli import app
from tether.errors import TetherError
from tether.mock import FaultServer
from tether.mock._spec import FAULT_KINDS, MockRoute, check_loopback, fault_for, routes_for
from tether.spec import Spec, load
from tether.spec._testing import fixtures_folder

__all__ = ["parse_faults"]


def parse_faults(text: str) -> tuple[str, ...]:
    """``"500,503,reset"`` → ``("500", "503", "reset")``; an unknown kind is a ``BadParameter``."""
    kinds = tuple(k.strip().lower() for k in text.split(",") if k.strip())
    for kind in kinds:
        try:
            fault_for(kind)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--faults") from None
    return kinds


def _render(routes: list[MockRoute], console: Console) -> None:
    table = Table(title="routes", title_justify="left")
    for column in ("endpoint", "method", "path"):
        table.add_column(column, no_wrap=True)
    table.add_column("rate limit")
    table.add_column("chaos")
    for route in routes:
        limit = route.rate_limit or "—"
        if route.rate_limit is not None and route.burst is not None:
            limit = f"{limit} (burst {route.burst})"
        chaos = f"{route.chaos.rate:g}" if route.chaos is not None else "—"
        table.add_row(route.endpoint, route.method, route.path, limit, chaos)
    console.print(table)


async def _serve(
    spec: Spec,
    *,
    host: str,
    port: int,
    fault_rate: float,
    faults: tuple[str, ...],
    latency: float,
    seed: int | None,
    enforce_limits: bool,
    console: Console,
    cassettes: Path | None = None,
) -> None:
    routes = routes_for(
        spec, fault_rate=fault_rate, faults=faults, latency=latency, seed=seed, enforce_limits=enforce_limits
    )
    recorded = 0
    if cassettes is not None:
        routes, recorded = answering_routes(spec, routes, cassette_files(cassettes))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = FaultServer(host, port)
    for route in routes:
        route.install(server)
    await server.start()
    try:
        sys.stdout.write(f"listening {server.url}\n")
        sys.stdout.flush()
        if cassettes is not None:
            console.print(f"answering from {recorded} recorded response(s) in {cassettes}")
        _render(routes, console)
        await stop.wait()
    finally:
        await server.stop()


def _recorded_folder(spec: Spec) -> Path | None:
    """The fixtures folder when the spec asks for recorded answers (``mock_responses: true``)."""
    testing = spec.testing
    unit = testing.unit_tests if testing is not None else None
    if unit is None or not unit.mock_responses:
        return None
    folder = fixtures_folder(spec)
    return folder if folder is not None and folder.is_dir() else None


@app.command()
def mock(
    spec: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The integration spec.")],
    env: Annotated[str | None, typer.Option("--env", help="Environment (default: TETHER_ENV).")] = None,
    port: Annotated[int, typer.Option("--port", help="Port to bind (0: a free port).")] = 0,
    host: Annotated[str, typer.Option("--host", help="Loopback address to bind.")] = "127.0.0.1",
    fault_rate: Annotated[
        float, typer.Option("--fault-rate", min=0.0, max=1.0, help="Share of requests given a fault.")
    ] = 0.1,
    faults: Annotated[
        str, typer.Option("--faults", help="Fault kinds: HTTP statuses, reset, timeout (comma-separated).")
    ] = ",".join(FAULT_KINDS),
    latency: Annotated[str, typer.Option("--latency", help="Delay before each success (e.g. 50ms).")] = "0ms",
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed for the fault dice (reproducible).")
    ] = None,
    enforce_limits: Annotated[
        bool,
        typer.Option(
            "--enforce-limits/--no-enforce-limits", help="Enforce the spec's rate limit (429 over it)."
        ),
    ] = True,
    cassettes: Annotated[
        Path | None,
        typer.Option(
            "--cassettes",
            help="Answer from the cassettes in this folder (default: the spec's fixtures_location "
            "when testing.unit_tests.mock_responses is true).",
        ),
    ] = None,
) -> None:
    """Serve a fault-injecting mock of the spec's API on loopback until Ctrl-C or SIGTERM."""
    err = Console(stderr=True)
    try:
        check_loopback(host)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--host") from None
    kinds = parse_faults(faults)
    try:
        seconds = parse_duration(latency, name="latency")
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--latency") from None
    try:
        loaded = load(spec, env=env)
        if cassettes is None:
            cassettes = _recorded_folder(loaded)
        elif not cassettes.is_dir():
            raise typer.BadParameter(f"{cassettes} is not a folder", param_hint="--cassettes")
        asyncio.run(
            _serve(
                loaded,
                host=host,
                port=port,
                fault_rate=fault_rate,
                faults=kinds,
                latency=seconds,
                seed=seed,
                enforce_limits=enforce_limits,
                console=Console(),
                cassettes=cassettes,
            )
        )
    except TetherError as exc:
        err.print(f"[red]error[/red]: {exc.error_code} {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from None
    except (OSError, ValueError) as exc:
        err.print(f"[red]error[/red]: {exc}")
        raise typer.Exit(2) from None
