"""``tether schema``: print the JSON Schema of integration specs (for editor completion)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from tether.cli import app
from tether.spec import json_schema


@app.command("schema")
def schema(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the schema to this file instead of stdout.")
    ] = None,
) -> None:
    """Print the JSON Schema of tether integration specs: tether schema > tether-spec.schema.json"""
    text = json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
