"""``tether check SPEC...``: validate specs, summarise them, and say what is not enforced yet."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.markup import escape

from tether._redact import redact_url
from tether.cli import app
from tether.dataapi._config import is_client_config, load_config
from tether.spec import INFORMATIONAL, Spec, SpecLoadError, explain, load, not_enforced
from tether.spec._endpoint import Parameter
from tether.spec._interpolate import SECRET_KEYS
from tether.spec._types import SecretRef, format_duration, format_size


def _param(param: Parameter) -> str:
    parts: list[str] = [param.in_, param.type]
    if param.is_required:
        parts.append("required")
    if param.enum is not None:
        parts.append("one of " + "|".join(map(str, param.enum)))
    if param.pattern is not None:
        parts.append(f"pattern {param.pattern}")
    if param.minimum is not None or param.maximum is not None:
        low = "" if param.minimum is None else f"{param.minimum:g}"
        high = "" if param.maximum is None else f"{param.maximum:g}"
        parts.append(f"range {low}..{high}")
    if "default" in param.model_fields_set:
        parts.append(f"default {param.default!r}")
    return f"{param.name} ({', '.join(parts)})"


def _url(url: str) -> str:
    """A URL safe to print (credentials masked); ``memory://`` stays as written."""
    return redact_url(url) if urlsplit(url).netloc else url


def _auth(spec: Spec) -> str:
    auth = spec.authentication
    if auth is None or auth.type == "none":
        return "none"
    settings = auth.effective()
    pieces: list[str] = [auth.type]
    if "key_location" in settings:
        pieces.append(f"in {settings['key_location'][0]}")
    if "key_name" in settings:
        pieces.append(str(settings["key_name"][0]))
    if auth.config.token_url is not None:
        pieces.append(f"token from {redact_url(auth.config.token_url)}")
    for key in sorted(SECRET_KEYS):
        ref = getattr(auth.config, key, None)
        if isinstance(ref, SecretRef):
            pieces.append(f"{key} {ref.redacted()}")
    return ", ".join(pieces)


def _policies(spec: Spec) -> list[str]:
    out: list[str] = []
    timeouts = spec.timeouts
    if timeouts is not None:
        parts = [
            f"{k} {format_duration(v)}"
            for k in ("connect", "read", "write", "total")
            if (v := getattr(timeouts, k))
        ]
        out.append("timeouts: " + ", ".join(parts))
    retry = spec.retry
    if retry is not None:
        delays = f"{format_duration(retry.initial_delay)}..{format_duration(retry.max_delay)}"
        jitter = ", jitter" if retry.jitter else ""
        out.append(
            "retry: off"
            if not retry.enabled
            else f"retry: {retry.max_attempts} attempts, {retry.backoff} {delays}{jitter}, "
            f"on {list(retry.retry_on)}"
        )
    breaker = spec.circuit_breaker
    if breaker is not None:
        out.append(
            "circuit breaker: off"
            if not breaker.enabled
            else f"circuit breaker: opens after {breaker.failure_threshold} failures in "
            f"{format_duration(breaker.window)}, open {format_duration(breaker.timeout)}, "
            f"{breaker.half_open_requests} probe(s), closes after {breaker.success_threshold}"
        )
    limits = spec.rate_limits
    if limits is not None:
        windows = limits.effective()
        text = ", ".join(f"{n}/{k.removeprefix('requests_per_')}" for k, n in windows.windows().items())
        burst = f" + {windows.burst_size} burst" if windows.burst_size else ""
        tier = f" (tier {limits.tier})" if limits.tier else ""
        throttling = spec.throttling
        how = f"; {throttling.on_limit}, max queue {throttling.max_queue}" if throttling is not None else ""
        out.append(f"rate limits{tier}: {text}{burst}{how}")
    if spec.bulkhead is not None:
        out.append(f"bulkhead: {spec.bulkhead.max_concurrent} concurrent, queue {spec.bulkhead.max_queue}")
    if spec.cache is not None:
        stale = (
            f", stale if error {format_duration(spec.cache.stale_if_error)}"
            if spec.cache.stale_if_error
            else ""
        )
        out.append(f"cache: {spec.cache.backend}, ttl {format_duration(spec.cache.ttl)}{stale}")
    if spec.fallback_behavior is not None:
        out.append("fallback: " + " -> ".join(spec.fallback_behavior.strategy))
    if spec.dlq is not None:
        out.append(f"dlq: {spec.dlq.backend}, {spec.dlq.max_replays} replays")
    if spec.costs is not None and spec.costs.budget is not None:
        budget = spec.costs.budget
        stop = ", hard stop" if budget.hard_stop else ""
        out.append(f"cost budget: {budget.monthly_limit:g} {spec.costs.currency}/month{stop}")
    if spec.bandwidth is not None:
        out.append(f"bandwidth budget: {format_size(spec.bandwidth.monthly_limit)}/month")
    if spec.rights is not None:
        out.append(f"rights profile: {spec.rights.profile} ({', '.join(spec.rights.granted) or 'no rights'})")
    if spec.state is not None:
        out.append(f"state: {_url(spec.state.url)} (on error: {spec.state.on_state_error})")
    if spec.error_mapping:
        out.append(f"error mapping: {len(spec.error_mapping)} rule(s)")
    return out


def _grouped(keys: Iterable[str]) -> list[str]:
    """Sibling keys folded: ``endpoints.get_data.path`` and ``.method`` as ``endpoints.get_data.{path,
    method}``."""
    groups: dict[str, list[str]] = {}
    for key in keys:
        head, _, last = key.rpartition(".")
        if head.count(".") >= 1 and "[" not in last:
            groups.setdefault(head, []).append(last)
        else:
            groups.setdefault(key, [])
    out = []
    for head, lasts in groups.items():
        if len(lasts) > 1:
            out.append(f"{head}.{{{', '.join(lasts)}}}")
        elif lasts:
            out.append(f"{head}.{lasts[0]}")
        else:
            out.append(head)
    return out


def _summary(console: Console, spec: Spec) -> None:
    title = spec.service.name + (f" {spec.service.version}" if spec.service.version else "")
    tags = ", ".join(t for t in (spec.id, spec.status) if t)
    console.print(
        f"[bold green]✓[/] {escape(spec.source)}: {escape(title)}" + (f" ({escape(tags)})" if tags else "")
    )
    if spec.service.environments:
        console.print("  base URL per environment:")
        for name, url in spec.service.environments.items():
            mark = "*" if name == spec.environment else " "
            selected = "  (selected)" if name == spec.environment else ""
            console.print(f"   {mark} {escape(name)}: {escape(redact_url(url))}{selected}")
    else:
        console.print(f"  base URL: {escape(_url(spec.base_url))} (every environment)")
    console.print(f"  authentication: {escape(_auth(spec))}")
    if spec.endpoints:
        console.print("  endpoints:")
        for name, endpoint in spec.endpoints.items():
            extras = []
            if endpoint.pagination is not None:
                extras.append(f"paginated ({endpoint.pagination.type})")
            if endpoint.streaming is not None:
                extras.append("streams (sse)")
            if endpoint.deprecated:
                extras.append("deprecated")
            more = f"  [{', '.join(extras)}]" if extras else ""
            console.print(escape(f"    {name}: {endpoint.method} {endpoint.path}{more}"))
            for param in endpoint.parameters:
                console.print(escape(f"      {_param(param)}"))
            if endpoint.body is not None:
                console.print(escape(f"      body ({endpoint.body.content_type})"))
    else:
        console.print("  [yellow]warning:[/] the spec has no endpoints")
    policies = _policies(spec)
    if policies:
        console.print("  configured policies:")
        for line in policies:
            console.print(f"    {escape(line)}")


def _warnings(console: Console, spec: Spec) -> None:
    auth = spec.authentication
    if auth is not None:
        for key in sorted(SECRET_KEYS):
            ref = getattr(auth.config, key, None)
            if isinstance(ref, SecretRef) and ref.is_literal:
                console.print(
                    f"  [yellow]warning:[/] authentication.config.{key} is written in the spec itself; "
                    f"use ${{VAR}} to read it from the environment"
                )
    for key in _grouped(not_enforced(spec)):
        console.print(f"  [yellow]warning:[/] not enforced: {escape(key)}")
    informational = sorted({p[0] for p in spec.keys if isinstance(p[0], str) and p[0] in INFORMATIONAL})
    if informational:
        console.print(f"  [dim]informational (shown, not acted on): {escape(', '.join(informational))}[/]")


def _explain(console: Console, spec: Spec) -> None:
    console.print("  effective settings ([dim]dim = tether's default[/]):")
    for line in explain(spec):
        pad = "    " + "  " * line.depth
        if line.source == "default":
            console.print(f"{pad}[dim]{escape(line.text)}  # default[/]")
        elif line.source == "note":
            console.print(f"{pad}[dim]# {escape(line.text)}[/]")
        elif line.source == "off":
            console.print(f"{pad}[yellow]{escape(line.text)}[/]")
        else:
            console.print(f"{pad}{escape(line.text)}")


def _check_client_config(console: Console, path: Path) -> bool:
    """Validate a data API client configuration with the environment's overrides applied."""
    try:
        config = load_config(path)
    except SpecLoadError as exc:
        count = len(exc.problems)
        console.print(f"[bold red]✗[/] {escape(str(path))}: {count} problem{'s' if count != 1 else ''}")
        for problem in exc.problems:
            console.print(escape(f"  {problem}"))
        return False
    console.print(f"[bold green]✓[/] {escape(str(path))}: data API client configuration (external_api)")
    for line in config.summary():
        console.print(f"  {escape(line)}")
    return True


@app.command("check")
def check(
    specs: Annotated[list[Path], typer.Argument(help="Spec files to validate.", show_default=False)],
    env: Annotated[
        str | None,
        typer.Option(
            "--env", "-e", help="Environment to select (default: $TETHER_ENV, then the spec's default)."
        ),
    ] = None,
    explain_: Annotated[
        bool, typer.Option("--explain", help="Print the effective settings, tether's defaults filled in.")
    ] = False,
) -> None:
    """Validate specs; every problem is reported with file:line:column. Exits 1 when any is invalid."""
    console = Console(highlight=False, soft_wrap=True)
    failed = 0
    for path in specs:
        if is_client_config(path):  # a data API client configuration (external_api:)
            failed += not _check_client_config(console, path)
            continue
        try:
            spec = load(path, env=env)
        except SpecLoadError as exc:
            failed += 1
            count = len(exc.problems)
            console.print(f"[bold red]✗[/] {escape(str(path))}: {count} problem{'s' if count != 1 else ''}")
            for problem in exc.problems:
                console.print(escape(f"  {problem}"))
            continue
        _summary(console, spec)
        _warnings(console, spec)
        if explain_:
            _explain(console, spec)
    if len(specs) > 1:
        console.print(f"{len(specs) - failed} valid, {failed} invalid")
    if failed:
        raise typer.Exit(1)
