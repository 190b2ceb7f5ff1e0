"""The ``tether`` command line (typer + rich). Each command lives in its own module here."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="tether",
    help="Call external HTTP APIs reliably: check specs, make calls, run bulk fetches, serve mocks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals can hold secrets
)


def _register() -> None:
    # One import per command module; each module adds its command(s) to ``app``.
    from tether.cli import (  # noqa: F401
        _call,
        _check,
        _demo,
        _dlq,
        _fetch,
        _mock,
        _schema,
        _status,
        _stream,
        _verify,
    )


def main() -> None:
    _register()
    app()
