"""``tether dlq list | show ID | replay | purge``: manage dead letters.

Every command works on one DLQ: ``--db PATH`` (a SQLite file; ``$TETHER_DLQ_DB``), else the
``dlq.path`` of ``--spec SPEC`` when its backend is SQLite, else ``./tether-dlq.db``. Entries never
hold a secret; what is printed is masked again anyway (URLs, headers, body text).

``replay`` sends entries through a ``tether.Client``: built from ``--spec`` (its base URL,
headers and auth, so the replay is signed again), or a plain client when no spec is given.
An entry that was signed when it failed (it has a credential reference) is skipped without a
spec: sent unsigned it could only fail.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tether._redact import redact_headers, redact_text, redact_url
from tether.cli import app
from tether.dlq import DeadLetter, DLQBackend, EntryStatus, Replayer, ReplayReport, SQLiteDLQ
from tether.errors import TetherError

__all__ = ["dlq_app"]

DEFAULT_DB = "tether-dlq.db"
_BODY_PREVIEW = 2048

dlq_app = typer.Typer(
    name="dlq",
    help="Manage dead letters: list, show, replay, purge.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
app.add_typer(dlq_app, name="dlq")

DbOption = Annotated[
    Path | None,
    typer.Option(
        "--db",
        envvar="TETHER_DLQ_DB",
        help="The DLQ's SQLite file (default: from --spec, else ./tether-dlq.db).",
    ),
]
SpecOption = Annotated[
    Path | None, typer.Option("--spec", help="An integration spec: its dlq.path, and (replay) its client.")
]
EnvOption = Annotated[str | None, typer.Option("--env", help="The spec's environment (replay).")]


def _console() -> Console:
    return Console(highlight=False, soft_wrap=False, width=160)


def _fail(message: str) -> typer.Exit:
    Console(stderr=True, highlight=False).print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(code=1)


def _load_spec(spec: Path, env: str | None = None) -> Any:
    from tether.spec import load

    try:
        return load(spec, env)
    except TetherError as exc:
        raise _fail(str(exc)) from None


def _db_path(db: Path | None, spec: Path | None) -> Path:
    if db is not None:
        return db
    if spec is not None:
        section = getattr(_load_spec(spec), "dlq", None)
        if section is not None and getattr(section, "backend", "sqlite") == "sqlite":
            path = getattr(section, "path", None)
            if path:
                folder = spec.resolve().parent
                return Path(path) if Path(path).is_absolute() else folder / path
    return Path(DEFAULT_DB)


def _open(db: Path | None, spec: Path | None, *, must_exist: bool = True) -> SQLiteDLQ:
    path = _db_path(db, spec)
    if must_exist and not path.exists():
        raise _fail(f"no DLQ at {path} (give --db PATH or --spec SPEC)")
    return SQLiteDLQ(path)


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


async def _resolve(backend: DLQBackend, entry_id: str) -> DeadLetter:
    """The entry with this id, or the only one whose id starts with it."""
    found = await backend.get(entry_id)
    if found is not None:
        return found
    matches = [e for e in await backend.list() if e.id.startswith(entry_id)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise _fail(f"no dead letter with id {entry_id!r}")
    raise _fail(f"id {entry_id!r} is ambiguous: {len(matches)} entries start with it")


# --- list --------------------------------------------------------------------------------------


@dlq_app.command("list")
def list_command(
    db: DbOption = None,
    spec: SpecOption = None,
    failed: Annotated[bool, typer.Option("--failed", help="Only the failed set.")] = False,
    pending: Annotated[bool, typer.Option("--pending", help="Only entries waiting for a replay.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many rows.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, not a table.")] = False,
) -> None:
    """List dead letters, oldest first."""
    status: EntryStatus | None = "failed" if failed else "pending" if pending else None

    async def run() -> tuple[Sequence[DeadLetter], Any]:
        backend = _open(db, spec)
        try:
            return await backend.list(status=status, limit=limit), await backend.counts()
        finally:
            await backend.aclose()

    entries, counts = asyncio.run(run())
    console = _console()
    if as_json:
        for entry in entries:
            summary = entry.summary()
            summary["url"] = redact_url(summary["url"])
            summary["error_message"] = redact_text(summary["error_message"])
            typer.echo(json.dumps(summary, sort_keys=True))
        return
    table = Table(title=f"dead letters ({counts.pending} pending, {counts.failed} failed)")
    for column in ("id", "status", "endpoint", "request", "attempts", "replays", "error", "due / updated"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        when = _when(entry.due_at if entry.status == "pending" else entry.updated_at)
        table.add_row(
            entry.id,
            entry.status,
            escape(entry.endpoint or "-"),
            escape(f"{entry.request.method} {redact_url(entry.request.url)}"),
            str(entry.attempts),
            str(entry.replays),
            escape(entry.error_code),
            when,
        )
    console.print(table)


# --- show --------------------------------------------------------------------------------------


@dlq_app.command("show")
def show_command(
    entry_id: Annotated[str, typer.Argument(metavar="ID", help="The entry's id (or a unique prefix).")],
    db: DbOption = None,
    spec: SpecOption = None,
) -> None:
    """Show one dead letter: request (masked), error, replay state."""

    async def run() -> DeadLetter:
        backend = _open(db, spec)
        try:
            return await _resolve(backend, entry_id)
        finally:
            await backend.aclose()

    entry = asyncio.run(run())
    console = _console()
    table = Table(show_header=False, title=f"dead letter {entry.id}")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    rows: list[tuple[str, str]] = [
        ("status", entry.status),
        ("service", entry.service),
        ("endpoint", entry.endpoint or "-"),
        ("request", f"{entry.request.method} {redact_url(entry.request.url)}"),
        ("idempotency key", entry.idempotency_key or "-"),
        ("credentials", entry.credential_ref or "none (sent unsigned)"),
        ("attempts", str(entry.attempts)),
        ("replays", str(entry.replays)),
        ("error", f"{entry.error_code}: {redact_text(entry.error_message)}"),
        ("created", _when(entry.created_at)),
        ("updated", _when(entry.updated_at)),
        ("due", _when(entry.due_at) if entry.status == "pending" else "-"),
    ]
    if entry.lease_owner is not None and entry.lease_until is not None:
        rows.append(("leased by", f"{entry.lease_owner} until {_when(entry.lease_until)}"))
    for name, value in redact_headers(entry.request.headers).items():
        rows.append((f"header {name}", value))
    if entry.request.body:
        text = redact_text(entry.request.body[:_BODY_PREVIEW].decode("utf-8", errors="replace"))
        more = len(entry.request.body) - _BODY_PREVIEW
        rows.append(("body", text + (f" … (+{more} bytes)" if more > 0 else "")))
    for name, value in rows:
        table.add_row(escape(name), escape(value))
    console.print(table)


# --- replay ------------------------------------------------------------------------------------


def _client(spec: Path | None, env: str | None) -> Any:
    from tether.client import Client

    if spec is None:
        return Client(retry=None, breaker=None)
    from tether._build import client_options

    loaded = _load_spec(spec, env)
    options = client_options(loaded)
    options["retry"] = None  # one send per replay: the DLQ schedule is the retry
    return Client(**options)


@dlq_app.command("replay")
def replay_command(
    ids: Annotated[list[str] | None, typer.Option("--id", help="Replay this entry now (repeatable).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Replay every entry now, failed ones too.")] = False,
    db: DbOption = None,
    spec: SpecOption = None,
    env: EnvOption = None,
) -> None:
    """Replay dead letters now: --id ID, --all, or (neither) the entries that are due."""

    async def run() -> tuple[ReplayReport, list[DeadLetter]]:
        backend = _open(db, spec)
        client = _client(spec, env)
        try:
            async with client:
                replayer = Replayer(client, backend)
                if ids:
                    chosen = [await _resolve(backend, i) for i in ids]
                elif all_:
                    chosen = list(await backend.list())
                else:
                    now = replayer.clock.time()
                    chosen = [e for e in await backend.list(status="pending") if e.due_at <= now]
                skipped = [e for e in chosen if e.credential_ref is not None and spec is None]
                wanted = [e.id for e in chosen if e not in skipped]
                report = await replayer.replay_now(wanted) if wanted else ReplayReport()
                return report, skipped
        finally:
            await backend.aclose()

    report, skipped = asyncio.run(run())
    console = _console()
    table = Table(title="replay")
    table.add_column("outcome")
    table.add_column("entries", justify="right")
    table.add_column("ids", overflow="fold")
    for name, found in (
        ("delivered", report.delivered),
        ("rescheduled", report.rescheduled),
        ("failed set", report.failed),
        ("taken by another worker", report.lost),
        ("skipped: needs --spec to sign", [e.id for e in skipped]),
    ):
        table.add_row(name, str(len(found)), " ".join(found))
    console.print(table)
    if not report.claimed and not skipped:
        console.print("nothing to replay")


# --- purge -------------------------------------------------------------------------------------


@dlq_app.command("purge")
def purge_command(
    failed: Annotated[bool, typer.Option("--failed", help="Only the failed set.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    db: DbOption = None,
    spec: SpecOption = None,
) -> None:
    """Delete dead letters (all of them, or only the failed set)."""
    what = "every entry in the failed set" if failed else "every dead letter"
    backend = _open(db, spec)
    if not yes and not typer.confirm(f"Delete {what} in {backend.path}?", default=False):
        raise typer.Exit(code=1)

    async def run() -> int:
        try:
            return await backend.purge(status="failed" if failed else None)
        finally:
            await backend.aclose()

    removed = asyncio.run(run())
    _console().print(f"removed {removed} dead letter{'s' if removed != 1 else ''}")
