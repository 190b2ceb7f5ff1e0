"""Contract checks: every recorded response against the spec (``tether verify``).

For each interaction of each cassette (``*.yaml`` / ``*.yml``; Pact files ``*.json`` too) the
request is matched to an endpoint by method and path, and its response is checked:

- **status**: a success status of the endpoint, or an error the spec knows (``response.errors``,
  a rule of ``error_mapping``, or a status ``retry`` names); redirects are not checked;
- **content type**: the success response's ``content_type``;
- **schema**: the success schema (every violation, with its JSON path), or the documented error's;
- **records** and **pagination**: the ``records`` path selects a list; the pagination fields the
  endpoint reads (``total_pages_path``, ``total_path``, ``has_more_path``, ``cursor_path``,
  ``next_url_path``) are where it reads them, with the right type;
- **error mapping**: a response the ``error_mapping`` rules classify is checked as the error it is.

Each problem is a ``Drift`` that names the file and line, the interaction, the field and the rule.
Exchanges the spec does not describe (another host, the OAuth token endpoint) and recorded
failures (resets, timeouts) are listed as not checked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import httpx2
import jmespath
import jmespath.exceptions

from tether._build import ErrorClassifier, header_names
from tether._config import Timeouts
from tether._context import CallContext
from tether.cassette._format import Body, CassetteData, CassetteRequest, CassetteResponse, Interaction, load
from tether.errors import CassetteError, TetherError
from tether.spec._endpoint import Endpoint
from tether.spec._model import Spec
from tether.spec._testing import error_schema
from tether.spec._yaml import KeyPath, Location, Marks, parse
from tether.validation import compile_schema, json_path

__all__ = [
    "Drift",
    "Recording",
    "Router",
    "VerifyReport",
    "cassette_files",
    "iter_drifts",
    "read_recording",
    "summary",
    "verify",
]

#: Violations reported per response body (the rest are counted).
MAX_PER_BODY: Final = 20
_PARAM: Final = re.compile(r"\{[^}/]+\}")
_DOTTED: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True, slots=True)
class Drift:
    """One place where a recording and the spec disagree."""

    location: Location
    interaction: int
    request: str
    endpoint: str | None
    field: str
    """What disagrees: a JSON path (``$.records[2].value``), ``status``, ``Content-Type`` …"""
    rule: str
    """The check or schema keyword broken (``type``, ``required``, ``status``, ``content_type`` …)."""
    message: str

    def __str__(self) -> str:
        if self.interaction < 0:  # about the whole file
            return f"{self.location}: {self.field}: {self.message} ({self.rule})"
        where = f" ({self.endpoint})" if self.endpoint else ""
        return (
            f"{self.location}: interactions[{self.interaction}] {self.request}{where}: "
            f"{self.field}: {self.message} ({self.rule})"
        )


@dataclass(slots=True)
class VerifyReport:
    """What ``verify`` found: files read, responses checked, drifts, and what it did not check."""

    files: list[Path] = field(default_factory=list)
    checked: int = 0
    drifts: list[Drift] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.drifts


def cassette_files(folder: Path) -> list[Path]:
    """The cassettes (and Pact files) under ``folder``, sorted."""
    patterns = ("*.yaml", "*.yml", "*.json")
    return sorted({p for pattern in patterns for p in folder.rglob(pattern) if p.is_file()})


# --- reading recordings ------------------------------------------------------------------------------


@dataclass(slots=True)
class Recording:
    """One file's interactions and how to find a value's line in it."""

    path: Path
    base_url: str | None
    service: str | None
    interactions: list[Interaction]
    marks: Marks
    body_key: str  # where a response body sits under ("interactions", i, "response"): json / body

    def locate(self, *path: str | int) -> Location:
        return self.marks.locate(tuple(path))


def _pact(path: Path, text: str) -> Recording:
    """A Pact file (v2/v3) as interactions: ``request`` {method, path, query}, ``response``
    {status, headers, body}."""
    data, marks, problems = parse(text, str(path))
    if problems:
        raise CassetteError(f"{problems[0].location}: {problems[0].message}")
    items = data.get("interactions") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise CassetteError(f"{path}: neither a tether cassette nor a Pact file (no interactions list)")
    interactions: list[Interaction] = []
    for index, item in enumerate(items):
        request = item.get("request", {}) if isinstance(item, dict) else {}
        response = item.get("response", {}) if isinstance(item, dict) else {}
        query = request.get("query")
        if isinstance(query, dict):  # v3: {name: [values]}
            query = "&".join(
                f"{k}={v}" for k, vs in query.items() for v in (vs if isinstance(vs, list) else [vs])
            )
        url = str(request.get("path", "/")) + (f"?{query}" if query else "")
        headers = tuple((str(k), str(v)) for k, v in (response.get("headers") or {}).items())
        body = response.get("body")
        status = response.get("status", 200)
        interactions.append(
            Interaction(
                CassetteRequest(str(request.get("method", "GET")).upper(), url),
                CassetteResponse(
                    int(status) if isinstance(status, int) else 0,
                    headers,
                    Body("json", body) if body is not None else Body(),
                ),
                line=marks.locate(("interactions", index)).line,
            )
        )
    provider = data.get("provider")
    service = provider.get("name") if isinstance(provider, dict) else None
    return Recording(path, None, service, interactions, marks, "body")


def read_recording(path: Path) -> Recording:
    if path.suffix == ".json":
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CassetteError(f"cannot read {path}: {exc}") from None
        return _pact(path, text)
    data: CassetteData = load(path)
    assert data.marks is not None
    return Recording(path, data.base_url, data.service, data.interactions, data.marks, "json")


# --- matching endpoints --------------------------------------------------------------------------------


def _pattern(prefix: str, endpoint: Endpoint) -> re.Pattern[str]:
    template = prefix.rstrip("/") + "/" + endpoint.path.lstrip("/")
    pieces = [re.escape(part) for part in _PARAM.split(template)]
    return re.compile("[^/]+".join(pieces) + "/?")


class Router:
    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        prefix = urlsplit(spec.base_url).path
        versioning = spec.versioning
        prefixes = [prefix]
        if versioning is not None and versioning.strategy == "url":
            prefixes.append(prefix.rstrip("/") + "/" + versioning.current)
        self.routes = [
            (name, endpoint, _pattern(p, endpoint))
            for name, endpoint in spec.endpoints.items()
            for p in prefixes
        ]
        self.prefix = prefix

    def find(self, method: str, url: str, base_url: str | None) -> tuple[str, Endpoint] | None:
        parts = urlsplit(url)
        if parts.scheme or url.startswith("/"):  # absolute, or an absolute path (Pact files)
            path = parts.path
        else:  # relative to the recording's base URL: put the base path back
            base_path = urlsplit(base_url).path if base_url else self.prefix
            path = base_path.rstrip("/") + "/" + url.split("?", 1)[0].lstrip("/")
        for name, endpoint, pattern in self.routes:
            if endpoint.method == method and pattern.fullmatch(path):
                return name, endpoint
        for name, endpoint, _ in self.routes:  # recorded without the base path (Pact files)
            if endpoint.method == method and _pattern("", endpoint).fullmatch(path):
                return name, endpoint
        return None


# --- checks ------------------------------------------------------------------------------------------


def _media(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _json_like(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


def _error_known(spec: Spec, endpoint: Endpoint, status: int) -> bool:
    if endpoint.response is not None:
        keys = endpoint.response.errors
        if str(status) in keys or f"{str(status)[0]}xx" in {k.lower() for k in keys} or "default" in keys:
            return True
    retry = spec.retry
    return retry is not None and (status in retry.retry_on or status in retry.never_retry_on)


class _Checker:
    def __init__(self, spec: Spec, report: VerifyReport) -> None:
        self.spec = spec
        self.report = report
        self.router = Router(spec)
        self.classifier = ErrorClassifier(
            spec.error_mapping, endpoints=spec.endpoints, service=spec.service.name, names=header_names(spec)
        )
        auth = spec.authentication
        token_url = getattr(auth.config, "token_url", None) if auth is not None else None
        self.token_url = str(token_url) if token_url else None

    def drift(
        self, rec: Recording, index: int, name: str | None, path: KeyPath, fld: str, rule: str, message: str
    ) -> None:
        interaction = rec.interactions[index]
        self.report.drifts.append(
            Drift(
                location=rec.marks.locate(("interactions", index, *path)),
                interaction=index,
                request=interaction.request.describe(),
                endpoint=name,
                field=fld,
                rule=rule,
                message=message,
            )
        )

    def status_drift(self, rec: Recording, index: int, name: str, rule: str, message: str) -> None:
        self.drift(rec, index, name, ("response", "status"), "status", rule, message)

    def check_file(self, rec: Recording) -> None:
        contract = self.spec.testing.contract_tests if self.spec.testing is not None else None
        expected = contract.provider if contract is not None else None
        if expected and rec.service and rec.service != expected:
            self.report.drifts.append(
                Drift(
                    rec.locate("service") if rec.body_key == "json" else rec.locate("provider"),
                    -1,
                    "-",
                    None,
                    "service",
                    "provider",
                    f"recorded for {rec.service!r}; testing.contract_tests.provider is {expected!r}",
                )
            )
        for index, interaction in enumerate(rec.interactions):
            self.check(rec, index, interaction)

    def check(self, rec: Recording, index: int, interaction: Interaction) -> None:
        request, response = interaction.request, interaction.response
        label = f"{rec.path}:{interaction.line} {request.describe()}"
        if response is None:
            self.report.unchecked.append(
                f"{label}: a recorded {interaction.error.type if interaction.error else 'failure'}"
            )
            return
        if self.token_url is not None and request.url.split("?", 1)[0] == self.token_url:
            self.report.unchecked.append(f"{label}: the OAuth token endpoint")
            return
        found = self.router.find(request.method, request.url, rec.base_url)
        if found is None:
            self.report.unchecked.append(f"{label}: no endpoint of the spec has this method and path")
            return
        name, endpoint = found
        status = response.status
        if 300 <= status < 400:
            self.report.unchecked.append(f"{label}: a redirect ({status})")
            return
        self.report.checked += 1
        mapped = self._mapped(name, response)
        success = endpoint.response.success if endpoint.response is not None else None
        statuses = success.status if success is not None else (200,)
        if mapped is True:  # an error_mapping rule accepts it whatever it says
            return
        if isinstance(mapped, TetherError) or status >= 400:
            self.check_error(rec, index, name, endpoint, response, mapped)
            return
        if status not in statuses:
            want = ", ".join(map(str, statuses))
            self.status_drift(
                rec,
                index,
                name,
                "status",
                f"{status} is not a success status of {name} (the spec expects {want})",
            )
            return
        self.check_success(rec, index, name, endpoint, response)

    def _mapped(self, name: str, response: CassetteResponse) -> TetherError | bool | None:
        if not self.classifier:
            return None
        live = httpx2.Response(
            response.status, headers=list(response.headers), content=response.body.to_bytes()
        )
        ctx = CallContext(service=self.spec.service.name, timeouts=Timeouts(), endpoint=name)
        try:
            return self.classifier(live, ctx)
        except TetherError as exc:  # a MappedError, or the plain errors of rate_limited / refresh_auth
            return exc

    def check_error(
        self,
        rec: Recording,
        index: int,
        name: str,
        endpoint: Endpoint,
        response: CassetteResponse,
        mapped: TetherError | bool | None,
    ) -> None:
        status = response.status
        if mapped is None and not _error_known(self.spec, endpoint, status):
            self.status_drift(
                rec,
                index,
                name,
                "error_mapping",
                f"error status {status} is not in response.errors, error_mapping or retry",
            )
            return
        schema = error_schema(endpoint, status)
        if schema is not None:
            self.check_schema(rec, index, name, response, schema)

    def check_success(
        self, rec: Recording, index: int, name: str, endpoint: Endpoint, response: CassetteResponse
    ) -> None:
        success = endpoint.response.success if endpoint.response is not None else None
        expected = _media(success.content_type if success is not None else "application/json")
        recorded = _media(response.header("content-type"))
        header_path = self._header_path(rec, index, response)
        if (
            response.body.kind != "empty"
            and recorded != expected
            and not (_json_like(expected) and _json_like(recorded))
        ):
            self.drift(
                rec,
                index,
                name,
                header_path,
                "Content-Type",
                "content_type",
                f"{recorded or 'none'} (the spec expects {expected})",
            )
        schema = success.schema_ if success is not None else None
        if schema is not None and not self.check_schema(rec, index, name, response, schema):
            return
        self.check_paging(rec, index, name, endpoint, response)

    def _header_path(self, rec: Recording, index: int, response: CassetteResponse) -> KeyPath:
        for key, _ in response.headers:
            if key.lower() == "content-type":
                return ("response", "headers", key)
        return ("response",)

    def check_schema(
        self, rec: Recording, index: int, name: str, response: CassetteResponse, schema: dict[str, Any]
    ) -> bool:
        body = response.body
        if body.kind != "json":
            if body.kind == "text":
                try:
                    value = json.loads(str(body.value))
                except ValueError:
                    self.drift(rec, index, name, ("response",), "body", "json", "the body is not JSON")
                    return False
            else:
                self.drift(rec, index, name, ("response",), "body", "json", "the body is not JSON")
                return False
        else:
            value = body.value
        errors = sorted(
            compile_schema(schema).iter_errors(value), key=lambda e: list(map(str, e.absolute_path))
        )
        for error in errors[:MAX_PER_BODY]:
            parts = list(error.absolute_path)
            where = ("response", rec.body_key, *parts)
            message = error.message if len(error.message) <= 200 else error.message[:197] + "..."
            self.drift(rec, index, name, where, json_path(parts), str(error.validator), message)
        if len(errors) > MAX_PER_BODY:
            self.drift(
                rec,
                index,
                name,
                ("response", rec.body_key),
                "$",
                "schema",
                f"{len(errors) - MAX_PER_BODY} more violations",
            )
        return not errors

    def check_paging(
        self, rec: Recording, index: int, name: str, endpoint: Endpoint, response: CassetteResponse
    ) -> None:
        body = response.body.value if response.body.kind == "json" else None
        if endpoint.records is not None and body is not None:
            selected = _search(endpoint.records, body)
            if not isinstance(selected, list):
                self.drift(
                    rec,
                    index,
                    name,
                    ("response", rec.body_key, *_dotted(endpoint.records)),
                    endpoint.records,
                    "records",
                    f"records path {endpoint.records!r} selects {type(selected).__name__}, not a list",
                )
        pagination = endpoint.pagination
        if pagination is None or body is None:
            return
        stop = pagination.stop
        wanted: list[tuple[str | None, tuple[type, ...], bool]] = [
            (stop.total_pages_path, (int,), True),
            (stop.total_path, (int,), True),
            (stop.has_more_path, (bool,), True),
            (getattr(pagination, "cursor_path", None), (str, int), False),
            (getattr(pagination, "next_url_path", None), (str,), False),
        ]
        for expression, types, required in wanted:
            if expression is None:
                continue
            value = _search(expression, body)
            problem = None
            if value is None:
                problem = f"the pagination field {expression!r} is missing" if required else None
            elif (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
                kinds = " or ".join(t.__name__ for t in types)
                problem = f"the pagination field {expression!r} is {type(value).__name__}, not {kinds}"
            if problem is not None:
                where = ("response", rec.body_key, *_dotted(expression))
                self.drift(rec, index, name, where, expression, "pagination", problem)


def _search(expression: str, body: Any) -> Any:
    try:
        return jmespath.search(expression, body)
    except jmespath.exceptions.JMESPathError:
        return None


def _dotted(expression: str) -> tuple[str, ...]:
    return tuple(expression.split(".")) if _DOTTED.match(expression) else ()


def verify(spec: Spec, paths: Iterable[Path]) -> VerifyReport:
    """Check every recorded response in ``paths`` (cassette or Pact files) against ``spec``."""
    report = VerifyReport()
    checker = _Checker(spec, report)
    for path in paths:
        report.files.append(path)
        checker.check_file(read_recording(path))
    return report


def iter_drifts(report: VerifyReport) -> Iterator[Drift]:
    return iter(sorted(report.drifts, key=lambda d: (d.location.file, d.location.line, d.location.column)))


def summary(report: VerifyReport) -> Sequence[str]:
    """Lines for a person: each drift, then the counts."""
    lines = [str(d) for d in iter_drifts(report)]
    lines.append(
        f"{len(report.files)} file(s), {report.checked} response(s) checked, {len(report.drifts)} drift(s), "
        f"{len(report.unchecked)} not checked"
    )
    return lines
