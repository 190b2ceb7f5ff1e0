"""The cassette file: human-readable, diff-friendly YAML.

::

    tether_cassette: 1
    service: dataapi
    base_url: http://127.0.0.1:8800/v1/
    interactions:
    - request:
        method: GET
        url: data/ITEM-001              # relative to base_url; absolute when outside it
        headers:
          X-API-Key: '***'
      response:
        status: 200
        headers:
          Content-Type: application/json
        json:                           # a JSON body as YAML: one field per line
          identifier: ITEM-001
          value: 503.12
    - request: {method: GET, url: data/ITEM-002}
      error: {type: ConnectionError, message: connection reset by peer}

A body is one of ``json`` (a JSON document, written as YAML so a changed field is a one-line
diff), ``text`` (UTF-8 text: a literal block when it has several lines) or ``base64`` (anything
else); no key means an empty body. Headers keep their order; a repeated header is a list. An
``error`` instead of a ``response`` is a failure the engine raised (reset, timeout); an ``error``
next to a ``response`` is a streamed body that broke off after the recorded part.

Loading keeps the line of every value, so problems point into the file (``file:line``).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from tether.errors import CassetteError
from tether.spec._yaml import KeyPath, Location, Marks, parse

__all__ = [
    "FORMAT_VERSION",
    "Body",
    "CassetteData",
    "CassetteRequest",
    "CassetteResponse",
    "Failure",
    "Interaction",
    "dump",
    "load",
]

FORMAT_VERSION: Final = 1
_TEXT_TYPES: Final = (
    "text/",
    "application/x-www-form-urlencoded",
    "application/xml",
    "application/javascript",
    "application/x-ndjson",
    "+xml",
)


def _is_json_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _is_text_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return any(media.startswith(t) or media.endswith(t) for t in _TEXT_TYPES)


@dataclass(frozen=True, slots=True)
class Body:
    """A recorded body: ``kind`` is ``empty``, ``json``, ``text`` or ``base64``."""

    kind: str = "empty"
    value: Any = None

    @classmethod
    def of(cls, data: bytes, content_type: str | None) -> Body:
        """The most readable faithful form of ``data`` for its content type."""
        if not data:
            return cls()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return cls("base64", data)
        if _is_json_type(content_type) or (content_type is None and text[:1] in "{["):
            try:
                return cls("json", json.loads(text))
            except ValueError:
                pass
        if _is_text_type(content_type) or _is_json_type(content_type) or text.isprintable() or "\n" in text:
            return cls("text", text)
        return cls("base64", data)

    def to_bytes(self) -> bytes:
        if self.kind == "json":
            return json.dumps(self.value, ensure_ascii=False, separators=(",", ":")).encode()
        if self.kind == "text":
            return str(self.value).encode()
        if self.kind == "base64":
            return bytes(self.value)
        return b""

    def canonical(self) -> Any:
        """A form for comparing two bodies (JSON by value; key order does not count)."""
        if self.kind == "json":
            return ("json", json.dumps(self.value, sort_keys=True, ensure_ascii=False))
        return (self.kind, self.to_bytes())

    def data(self) -> dict[str, Any]:
        if self.kind == "json":
            return {"json": self.value}
        if self.kind == "text":
            return {"text": self.value}
        if self.kind == "base64":
            return {"base64": base64.b64encode(bytes(self.value)).decode("ascii")}
        return {}


@dataclass(frozen=True, slots=True)
class CassetteRequest:
    """A recorded (scrubbed) request. ``url`` is relative to the cassette's base URL when under it."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    body: Body = Body()

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)

    def describe(self) -> str:
        return f"{self.method} {self.url}"


@dataclass(frozen=True, slots=True)
class CassetteResponse:
    """A recorded (scrubbed) response."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: Body = Body()
    reason: str | None = None

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)


@dataclass(frozen=True, slots=True)
class Failure:
    """A recorded error: a ``tether.errors`` class name, its message and its ``phase``/``reason``."""

    type: str
    message: str
    phase: str | None = None
    reason: str | None = None


@dataclass(slots=True, eq=False)
class Interaction:
    """One exchange: the request and its response, its failure, or both (a broken-off stream)."""

    request: CassetteRequest
    response: CassetteResponse | None = None
    error: Failure | None = None
    #: Where it starts in its file (1-based), when it was loaded from one.
    line: int | None = None

    def data(self) -> dict[str, Any]:
        request: dict[str, Any] = {"method": self.request.method, "url": self.request.url}
        if self.request.headers:
            request["headers"] = _headers_data(self.request.headers)
        request.update(self.request.body.data())
        out: dict[str, Any] = {"request": request}
        if self.response is not None:
            response: dict[str, Any] = {"status": self.response.status}
            if self.response.reason:
                response["reason"] = self.response.reason
            if self.response.headers:
                response["headers"] = _headers_data(self.response.headers)
            response.update(self.response.body.data())
            out["response"] = response
        if self.error is not None:
            error: dict[str, Any] = {"type": self.error.type, "message": self.error.message}
            if self.error.phase is not None:
                error["phase"] = self.error.phase
            if self.error.reason is not None:
                error["reason"] = self.error.reason
            out["error"] = error
        return out


@dataclass(slots=True)
class CassetteData:
    """A cassette file's contents: where it was recorded, its interactions, and the file's marks."""

    service: str | None = None
    base_url: str | None = None
    interactions: list[Interaction] = field(default_factory=list)
    marks: Marks | None = None

    def locate(self, path: KeyPath) -> Location | None:
        """Where ``path`` (below the top level: ``("interactions", 0, "response", "status")``) is."""
        return self.marks.locate(path) if self.marks is not None else None


def _headers_data(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in out:
            existing = out[name]
            out[name] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            out[name] = value
    return out


# --- writing ---------------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """Block style, multi-line strings as literal blocks, lists indented under their key."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)

_HEADER = (
    "# A tether cassette: recorded HTTP exchanges, replayed offline. Credentials and every\n"
    "# registered secret were scrubbed before this file was written. Re-record with record='all'.\n"
)


def dump(cassette: CassetteData) -> str:
    """The YAML text of a cassette."""
    doc: dict[str, Any] = {"tether_cassette": FORMAT_VERSION}
    if cassette.service is not None:
        doc["service"] = cassette.service
    if cassette.base_url is not None:
        doc["base_url"] = cassette.base_url
    doc["interactions"] = [i.data() for i in cassette.interactions]
    text = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    return _HEADER + text


# --- reading ---------------------------------------------------------------------------------------


class _Reader:
    def __init__(self, file: str, marks: Marks) -> None:
        self.file = file
        self.marks = marks

    def fail(self, path: KeyPath, message: str) -> CassetteError:
        return CassetteError(f"{self.marks.locate(path)}: {message}")

    def mapping(self, value: Any, path: KeyPath) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(path, f"expected a mapping, got {type(value).__name__}")
        return value

    def text(self, value: Any, path: KeyPath) -> str:
        if not isinstance(value, str):
            raise self.fail(path, f"expected text, got {type(value).__name__}")
        return value

    def headers(self, value: Any, path: KeyPath) -> tuple[tuple[str, str], ...]:
        if value is None:
            return ()
        pairs: list[tuple[str, str]] = []
        for name, item in self.mapping(value, path).items():
            values = item if isinstance(item, list) else [item]
            for one in values:
                if isinstance(one, bool) or not isinstance(one, str | int | float):
                    raise self.fail((*path, name), f"header {name!r} must be text or a list of texts")
                pairs.append((str(name), str(one)))
        return tuple(pairs)

    def body(self, doc: Mapping[str, Any], path: KeyPath) -> Body:
        kinds = [k for k in ("json", "text", "base64") if k in doc]
        if len(kinds) > 1:
            raise self.fail(path, f"a body is one of json, text or base64, not {' and '.join(kinds)}")
        if not kinds:
            return Body()
        kind = kinds[0]
        value = doc[kind]
        if kind == "text":
            return Body("text", self.text(value, (*path, kind)))
        if kind == "base64":
            try:
                return Body("base64", base64.b64decode(self.text(value, (*path, kind)), validate=True))
            except (binascii.Error, ValueError):
                raise self.fail((*path, kind), "base64 body is not valid base64") from None
        return Body("json", value)

    def interaction(self, value: Any, path: KeyPath) -> Interaction:
        doc = self.mapping(value, path)
        unknown = sorted(set(doc) - {"request", "response", "error"})
        if unknown:
            raise self.fail(path, f"unknown key {unknown[0]!r} (an interaction has request, response, error)")
        if "request" not in doc:
            raise self.fail(path, "an interaction needs a request")
        rpath = (*path, "request")
        req = self.mapping(doc["request"], rpath)
        request = CassetteRequest(
            method=self.text(req.get("method"), (*rpath, "method")).upper(),
            url=self.text(req.get("url"), (*rpath, "url")),
            headers=self.headers(req.get("headers"), (*rpath, "headers")),
            body=self.body(req, rpath),
        )
        response = None
        if "response" in doc:
            spath = (*path, "response")
            res = self.mapping(doc["response"], spath)
            status = res.get("status")
            if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 999:
                raise self.fail((*spath, "status"), f"status must be an HTTP status code, got {status!r}")
            reason = res.get("reason")
            response = CassetteResponse(
                status=status,
                headers=self.headers(res.get("headers"), (*spath, "headers")),
                body=self.body(res, spath),
                reason=str(reason) if reason is not None else None,
            )
        error = None
        if "error" in doc:
            epath = (*path, "error")
            err = self.mapping(doc["error"], epath)
            error = Failure(
                type=self.text(err.get("type"), (*epath, "type")),
                message=str(err.get("message", "")),
                phase=None if err.get("phase") is None else str(err["phase"]),
                reason=None if err.get("reason") is None else str(err["reason"]),
            )
        if response is None and error is None:
            raise self.fail(path, "an interaction needs a response or an error")
        return Interaction(request, response, error, line=self.marks.locate(path).line)


def load(path: Path) -> CassetteData:
    """Read a cassette file; a malformed one is a ``CassetteError`` naming ``file:line``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CassetteError(f"cannot read cassette {path}: {exc}") from None
    return loads(text, str(path))


def loads(text: str, file: str) -> CassetteData:
    """Parse cassette YAML ``text`` (``file`` names it in errors)."""
    data, marks, problems = parse(text, file)
    if problems:
        raise CassetteError(f"{problems[0].location}: {problems[0].message}")
    reader = _Reader(file, marks)
    if data is None:
        return CassetteData(marks=marks)
    doc = reader.mapping(data, ())
    version = doc.get("tether_cassette")
    if version != FORMAT_VERSION:
        raise reader.fail(
            ("tether_cassette",) if "tether_cassette" in doc else (),
            f"not a tether cassette (version {FORMAT_VERSION}): tether_cassette is {version!r}",
        )
    items = doc.get("interactions") or []
    if not isinstance(items, list):
        raise reader.fail(("interactions",), "interactions must be a list")
    base_url = doc.get("base_url")
    service = doc.get("service")
    return CassetteData(
        service=str(service) if service is not None else None,
        base_url=str(base_url) if base_url is not None else None,
        interactions=[reader.interaction(item, ("interactions", i)) for i, item in enumerate(items)],
        marks=marks,
    )
