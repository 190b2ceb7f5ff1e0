"""``tether verify SPEC [--cassettes DIR]``: contract checks of recorded responses against the spec.

Every response recorded in the folder's cassettes (and Pact files) is checked against the spec:
status, content type, response schema, records and pagination fields, error mapping
(``tether.cassette._verify``). Each drift is printed as ``file:line: interactions[i] METHOD url
(endpoint): field: message (rule)``. The folder is ``--cassettes``, else the spec's
``testing.contract_tests.pact_location``, else ``testing.unit_tests.fixtures_location``.

Exit codes: 0 when nothing drifted, 1 when something did, 2 when there was nothing to check or a
file could not be read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from tether.cassette._verify import cassette_files, iter_drifts, summary, verify
from tether.cli import app
from tether.errors import TetherError
from tether.spec import load
from tether.spec._testing import contract_folder


@app.command("verify")
def verify_command(
    spec: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The integration spec.")],
    cassettes: Annotated[
        Path | None,
        typer.Option(
            "--cassettes",
            help="Folder of recorded cassettes (default: testing.contract_tests.pact_location, "
            "else testing.unit_tests.fixtures_location).",
        ),
    ] = None,
    env: Annotated[str | None, typer.Option("--env", help="Environment (default: TETHER_ENV).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="List what was not checked.")] = False,
) -> None:
    """Check every recorded response against the spec and report drift with file and line."""
    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        loaded = load(spec, env=env)
        folder = cassettes if cassettes is not None else contract_folder(loaded)
        if folder is None:
            err.print(
                "[red]error[/red]: no cassette folder: pass --cassettes DIR or set "
                "testing.contract_tests.pact_location (or testing.unit_tests.fixtures_location)"
            )
            raise typer.Exit(2)
        if not folder.is_dir():
            err.print(f"[red]error[/red]: cassette folder {escape(str(folder))} does not exist")
            raise typer.Exit(2)
        files = cassette_files(folder)
        if not files:
            err.print(f"[red]error[/red]: no cassettes (*.yaml, *.yml, *.json) under {escape(str(folder))}")
            raise typer.Exit(2)
        report = verify(loaded, files)
    except TetherError as exc:
        err.print(f"[red]error[/red]: {escape(str(exc))}")
        raise typer.Exit(2) from None
    if as_json:
        doc = {
            "ok": report.ok,
            "files": [str(p) for p in report.files],
            "checked": report.checked,
            "drifts": [
                {
                    "file": d.location.file,
                    "line": d.location.line,
                    "column": d.location.column,
                    "interaction": d.interaction,
                    "request": d.request,
                    "endpoint": d.endpoint,
                    "field": d.field,
                    "rule": d.rule,
                    "message": d.message,
                }
                for d in iter_drifts(report)
            ],
            "unchecked": report.unchecked,
        }
        out.print(json.dumps(doc, indent=2), markup=False)
    else:
        for line in summary(report):
            out.print(escape(line))
        if verbose:
            for line in report.unchecked:
                out.print(f"not checked: {escape(line)}")
    raise typer.Exit(0 if report.ok else 1)
