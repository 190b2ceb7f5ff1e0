"""What the mock server answers: ``Fault`` (one scripted behaviour) and ``Chaos`` (random faults).

A ``Fault`` is an immutable value built by one of its constructors (``Fault.ok(...)``,
``Fault.reset()`` …). Everything that does not depend on the request or the clock — status line,
headers, encoded body — is rendered to bytes once, when the fault is made, so the server only
copies bytes. Each fault also has a JSON form (``to_dict`` / ``from_dict``) so that routes can be
sent to a server running in another process.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import json as jsonlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from tether._units import Duration, Size, parse_duration, parse_size
from tether.mock._bodies import ENCODINGS, compress, pattern_bytes
from tether.mock._http import http_date, reason

__all__ = ["Chaos", "Fault", "HeadersInput"]

HeadersInput = Mapping[str, str] | Iterable[tuple[str, str]]

KINDS: Final = (
    "ok",
    "status",
    "rate_limited",
    "problem",
    "redirect",
    "echo",
    "reset",
    "reset_mid_body",
    "truncated",
    "malformed",
    "delay",
    "hang",
    "large",
    "bomb",
    "sse",
    "respond",
)
# Kinds whose whole response is rendered when the fault is made.
RESPOND_KINDS: Final = frozenset({"ok", "status", "rate_limited", "problem", "redirect"})
MALFORMED_KINDS: Final = ("garbage", "bad_chunked", "bad_header")
REDIRECT_CODES: Final = (301, 302, 303, 307, 308)
# Kinds whose status line and headers are rendered when the fault is made.
_HEAD_KINDS: Final = RESPOND_KINDS | {"large", "bomb", "reset_mid_body", "truncated", "sse"}
_SSE_FIELDS: Final = ("event", "data", "id", "retry")
_NO_BODY_CODES: Final = frozenset({204, 304})

_MALFORMED_BYTES: Final = {
    "garbage": b"this is not an HTTP response\r\n\x00\xff\xfe garbage\r\n\r\n",
    "bad_chunked": (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\nzz-not-hex\r\nworld\r\n0\r\n\r\n"
    ),
    "bad_header": (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nthis header line has no colon\r\n"
        b"Content-Length: 2\r\n\r\nok"
    ),
}


def _dumps(value: Any) -> bytes:
    return jsonlib.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _header_pairs(headers: HeadersInput | None) -> tuple[tuple[str, str], ...]:
    if headers is None:
        return ()
    items = headers.items() if isinstance(headers, Mapping) else headers
    pairs = tuple((str(k), str(v)) for k, v in items)
    for name, value in pairs:
        # A fault never splits its own response by accident; bad framing is Fault.malformed's job.
        if not name or any(c in name for c in " \t\r\n:") or "\r" in value or "\n" in value:
            raise ValueError(f"header {name!r}: {value!r} is not a valid header line")
        try:
            (name + value).encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"header {name!r}: {value!r} is not latin-1 (percent-encode it)") from None
    return pairs


def _headers_json(pairs: tuple[tuple[str, str], ...]) -> Any:
    names = [k.lower() for k, _ in pairs]
    if len(set(names)) == len(names):
        return dict(pairs)
    return [list(p) for p in pairs]


def _body_json(body: bytes) -> dict[str, str]:
    try:
        return {"body": body.decode()}
    except UnicodeDecodeError:
        return {"body_base64": base64.b64encode(body).decode()}


def _date_header(value: datetime) -> str:
    if value.tzinfo is None:  # naive datetimes are taken as UTC
        value = value.replace(tzinfo=UTC)
    return http_date(value.timestamp())


def _check_code(code: int, name: str = "status") -> int:
    if isinstance(code, bool) or not isinstance(code, int) or not 200 <= code <= 999:
        raise ValueError(f"{name} must be an int in 200..999, got {code!r}")
    return code


def _check_count(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    return value


def _check_encoding(encoding: str | None) -> str | None:
    if encoding is not None and encoding not in ENCODINGS:
        raise ValueError(f"encoding must be None or one of {', '.join(ENCODINGS)}, got {encoding!r}")
    return encoding


def _render_head(code: int, pairs: Iterable[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {code} {reason(code)}\r\n"]
    lines.extend(f"{k}: {v}\r\n" for k, v in pairs)
    return "".join(lines).encode("latin-1")


def _has(pairs: Iterable[tuple[str, str]], name: str) -> bool:
    return any(k.lower() == name for k, _ in pairs)


@dataclass(frozen=True, slots=True)
class Incoming:
    """A request as a ``Fault.respond`` function sees it."""

    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True, repr=False)
class Fault:
    """One scripted server behaviour. Build it with a constructor: ``Fault.ok(json=...)``,
    ``Fault.status(503)``, ``Fault.reset()`` …; the fields describe what will be sent.

    ``code`` is the status line sent (``None`` when none is: reset, hang, garbage), ``head`` the
    rendered status line and headers (without the final blank line), ``body`` the bytes that
    follow them (for reset_mid_body / truncated: the part actually sent).
    """

    kind: str
    code: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    latency: float = 0.0
    encoding: str | None = None
    total: int = 0
    chunk: int = 65536
    chunked: bool = False
    variant: str = ""
    then: Fault | None = None
    retry_after_date: int | None = None  # seconds from the moment of sending, sent as HTTP-date
    params: Mapping[str, Any] = field(default_factory=dict, compare=False)
    head: bytes = field(default=b"", compare=False)
    wire: bytes | None = field(default=None, compare=False)  # the whole keep-alive response, if fixed
    # sse: each event's id (None when it has none) and its rendered bytes; where to drop; resume
    events: tuple[tuple[str | None, bytes], ...] = ()
    drop_after: int | None = None
    resume: bool = True
    # respond: computes the real answer from the request as it arrives
    responder: Callable[[Incoming], Fault] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; kinds: {', '.join(KINDS)}")
        head = self.head
        if not head and self.code is not None and self.kind in _HEAD_KINDS:
            head = _render_head(self.code, self.headers)
            object.__setattr__(self, "head", head)
        if self.wire is None and self.kind in RESPOND_KINDS and self.retry_after_date is None:
            object.__setattr__(self, "wire", head + b"\r\n" + self.body)

    # -- constructors ----------------------------------------------------------------------------

    @classmethod
    def ok(
        cls,
        json: Any = None,
        body: bytes = b"",
        text: str | None = None,
        status: int = 200,
        headers: HeadersInput | None = None,
        latency: Duration = 0.0,
        content_type: str | None = None,
        encoding: str | None = None,
    ) -> Fault:
        """A complete response: ``json`` (serialised), ``text`` or raw ``body``, optionally
        encoded with ``encoding`` (gzip, deflate, br) and sent after ``latency`` seconds."""
        params = _params(
            json=(json, None),
            body=(body, b""),
            text=(text, None),
            status=(status, 200),
            headers=(headers, None),
            latency=(latency, 0.0),
            content_type=(content_type, None),
            encoding=(encoding, None),
        )
        return cls._respond(
            "ok",
            params,
            _check_code(status),
            json=json,
            body=body,
            text=text,
            headers=headers,
            latency=latency,
            content_type=content_type,
            encoding=encoding,
        )

    @classmethod
    def status(
        cls,
        code: int,
        json: Any = None,
        body: bytes = b"",
        headers: HeadersInput | None = None,
        retry_after: int | datetime | None = None,
        latency: Duration = 0.0,
        content_type: str | None = None,
    ) -> Fault:
        """A response with status ``code``; ``retry_after`` adds ``Retry-After`` as
        delta-seconds (an int) or an HTTP-date (a ``datetime``)."""
        params = _params(
            code=(code, None),
            json=(json, None),
            body=(body, b""),
            headers=(headers, None),
            retry_after=(retry_after, None),
            latency=(latency, 0.0),
            content_type=(content_type, None),
        )
        extra: list[tuple[str, str]] = []
        if isinstance(retry_after, datetime):
            extra.append(("Retry-After", _date_header(retry_after)))
        elif retry_after is not None:
            extra.append(("Retry-After", str(_check_count(retry_after, "retry_after"))))
        return cls._respond(
            "status",
            params,
            _check_code(code, "code"),
            json=json,
            body=body,
            headers=(*extra, *_header_pairs(headers)),
            latency=latency,
            content_type=content_type,
        )

    @classmethod
    def rate_limited(
        cls,
        retry_after: int | None = 1,
        http_date: bool = False,
        limit: int | None = None,
        remaining: int = 0,
        reset: int | None = None,
    ) -> Fault:
        """429 with ``Retry-After`` (delta-seconds, or an HTTP-date ``retry_after`` seconds from
        when it is sent) and, when ``limit`` or ``reset`` is given, ``X-RateLimit-*`` headers."""
        params = _params(
            retry_after=(retry_after, 1),
            http_date=(http_date, False),
            limit=(limit, None),
            remaining=(remaining, 0),
            reset=(reset, None),
        )
        headers: list[tuple[str, str]] = []
        dynamic: int | None = None
        if retry_after is not None:
            _check_count(retry_after, "retry_after")
            if http_date:
                dynamic = retry_after
            else:
                headers.append(("Retry-After", str(retry_after)))
        if limit is not None or reset is not None:
            if limit is not None:
                headers.append(("X-RateLimit-Limit", str(_check_count(limit, "limit"))))
            headers.append(("X-RateLimit-Remaining", str(_check_count(remaining, "remaining"))))
            if reset is not None:
                headers.append(("X-RateLimit-Reset", str(_check_count(reset, "reset"))))
        payload: dict[str, Any] = {"error": "rate limit exceeded", "status": 429}
        if retry_after is not None:
            payload["retry_after"] = retry_after
        return cls._respond(
            "rate_limited", params, 429, json=payload, headers=headers, retry_after_date=dynamic
        )

    @classmethod
    def problem(
        cls,
        status: int,
        title: str,
        detail: str | None = None,
        type: str = "about:blank",
        headers: HeadersInput | None = None,
    ) -> Fault:
        """An RFC 9457 ``application/problem+json`` response."""
        params = _params(
            status=(status, None),
            title=(title, None),
            detail=(detail, None),
            type=(type, "about:blank"),
            headers=(headers, None),
        )
        doc: dict[str, Any] = {"type": type, "title": title, "status": _check_code(status)}
        if detail is not None:
            doc["detail"] = detail
        return cls._respond(
            "problem",
            params,
            status,
            json=doc,
            headers=headers,
            content_type="application/problem+json",
        )

    @classmethod
    def redirect(cls, location: str, status: int = 302, headers: HeadersInput | None = None) -> Fault:
        """A redirect (301, 302, 303, 307 or 308) to ``location``, with an empty body."""
        if status not in REDIRECT_CODES:
            raise ValueError(f"redirect status must be one of {REDIRECT_CODES}, got {status!r}")
        params = _params(location=(location, None), status=(status, 302), headers=(headers, None))
        pairs = (("Location", location), *_header_pairs(headers))
        return cls._respond("redirect", params, status, headers=pairs)

    @classmethod
    def echo(cls) -> Fault:
        """200 JSON of the request as received: method, path, query, headers, body (text)."""
        return cls(kind="echo", code=200)

    @classmethod
    def respond(cls, responder: Callable[[Incoming], Fault]) -> Fault:
        """Answer with whatever ``responder(incoming)`` returns for each request (a dynamic route:
        e.g. a body computed from the path). The log records the answer actually sent. Code, so it
        has no JSON form: only for in-process servers."""
        if not callable(responder):
            raise ValueError(f"Fault.respond needs a callable, got {type(responder).__name__}")
        return cls(kind="respond", responder=responder)

    def answer(self, incoming: Incoming) -> Fault:
        """The fault to send for ``incoming``: a ``respond`` fault's answer, else this one."""
        if self.responder is None:
            return self
        answer = self.responder(incoming)
        if not isinstance(answer, Fault) or answer.kind == "respond":
            raise ValueError(f"a respond fault's function must return a concrete Fault, got {answer!r}")
        return answer

    @classmethod
    def reset(cls) -> Fault:
        """Abort the connection (TCP RST) before any response byte."""
        return cls(kind="reset")

    @classmethod
    def reset_mid_body(cls, total: int = 10000, sent: int = 100) -> Fault:
        """Headers promise ``total`` body bytes; send ``sent`` of them, then abort (TCP RST)."""
        return cls._partial("reset_mid_body", total, sent)

    @classmethod
    def truncated(cls, total: int = 10000, sent: int = 100) -> Fault:
        """Headers promise ``total`` body bytes; send ``sent`` of them, then close cleanly (FIN)."""
        return cls._partial("truncated", total, sent)

    @classmethod
    def malformed(cls, kind: str = "garbage") -> Fault:
        """Bytes that are not a valid response, then close: ``garbage`` (no status line),
        ``bad_chunked`` (an invalid chunk size), ``bad_header`` (a header line without colon)."""
        if kind not in MALFORMED_KINDS:
            raise ValueError(f"malformed kind must be one of {', '.join(MALFORMED_KINDS)}, got {kind!r}")
        code = None if kind == "garbage" else 200
        data = _MALFORMED_BYTES[kind]
        return cls(kind="malformed", code=code, variant=kind, head=data, params={"variant": kind})

    @classmethod
    def delay(cls, seconds: Duration, then: Fault | None = None) -> Fault:
        """Wait ``seconds``, then answer ``then`` (default ``Fault.ok()``)."""
        wait = parse_duration(seconds, name="delay seconds")
        after = then if then is not None else cls.ok()
        params = _params(seconds=(wait, None), then=(then, None))
        return cls(kind="delay", code=after.code, latency=wait, then=after, params=params)

    @classmethod
    def hang(cls) -> Fault:
        """Read the request and never answer (until the client gives up or the server stops)."""
        return cls(kind="hang")

    @classmethod
    def large(
        cls,
        size: Size,
        chunk: int = 65536,
        encoding: str | None = None,
        *,
        chunked: bool = False,
    ) -> Fault:
        """A 200 body of ``size`` bytes of a fixed pattern (``tether.mock.pattern_bytes``),
        generated on the fly in ``chunk``-byte pieces with flow control. It is sent with
        ``Content-Length`` unless ``chunked`` or an ``encoding`` (compressed size unknown)."""
        nbytes = parse_size(size, name="large size")
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk <= 0:
            raise ValueError(f"chunk must be a positive int, got {chunk!r}")
        _check_encoding(encoding)
        is_chunked = chunked or encoding is not None
        params = _params(
            size=(nbytes, None), chunk=(chunk, 65536), encoding=(encoding, None), chunked=(chunked, False)
        )
        pairs = [("Content-Type", "application/octet-stream")]
        if encoding:
            pairs.append(("Content-Encoding", encoding))
        if is_chunked:
            pairs.append(("Transfer-Encoding", "chunked"))
        else:
            pairs.append(("Content-Length", str(nbytes)))
        return cls(
            kind="large",
            code=200,
            headers=tuple(pairs),
            encoding=encoding,
            total=nbytes,
            chunk=chunk,
            chunked=is_chunked,
            params=params,
        )

    @classmethod
    def bomb(cls, decoded_size: Size, encoding: str = "gzip") -> Fault:
        """A small compressed body that decodes to ``decoded_size`` zero bytes (chunked)."""
        nbytes = parse_size(decoded_size, name="bomb decoded_size")
        if _check_encoding(encoding) is None:
            raise ValueError("a bomb needs an encoding: gzip, deflate or br")
        params = _params(decoded_size=(nbytes, None), encoding=(encoding, "gzip"))
        pairs = (
            ("Content-Type", "application/octet-stream"),
            ("Content-Encoding", encoding),
            ("Transfer-Encoding", "chunked"),
        )
        return cls(
            kind="bomb",
            code=200,
            headers=pairs,
            encoding=encoding,
            total=nbytes,
            chunked=True,
            params=params,
        )

    @classmethod
    def sse(
        cls,
        events: Sequence[Mapping[str, Any]],
        drop_after: int | None = None,
        honour_last_event_id: bool = True,
    ) -> Fault:
        """A 200 ``text/event-stream`` (chunked) of ``events``, each a dict with any of ``event``,
        ``data``, ``id``, ``retry`` (ms), sent one chunk per event. With ``drop_after`` the
        connection closes (FIN, no final chunk) after that many events of this response; with
        ``honour_last_event_id`` a request carrying ``Last-Event-ID`` resumes after the event
        with that id (from the start when no event has it)."""
        if drop_after is not None:
            _check_count(drop_after, "drop_after")
        if not isinstance(events, Sequence) or isinstance(events, str | bytes):
            raise ValueError(f"events must be a list of event dicts, got {type(events).__name__}")
        rendered = tuple(_render_event(e) for e in events)
        params = _params(
            events=([dict(e) for e in events], None),
            drop_after=(drop_after, None),
            honour_last_event_id=(honour_last_event_id, True),
        )
        pairs = (
            ("Content-Type", "text/event-stream; charset=utf-8"),
            ("Cache-Control", "no-cache"),
            ("Transfer-Encoding", "chunked"),
        )
        return cls(
            kind="sse",
            code=200,
            headers=pairs,
            chunked=True,
            events=rendered,
            drop_after=drop_after,
            resume=bool(honour_last_event_id),
            params=params,
        )

    @classmethod
    def _partial(cls, kind: str, total: int, sent: int) -> Fault:
        _check_count(total, "total")
        _check_count(sent, "sent")
        if sent >= total:
            raise ValueError(f"sent must be less than total, got sent={sent} total={total}")
        pairs = (("Content-Type", "application/octet-stream"), ("Content-Length", str(total)))
        return cls(
            kind=kind,
            code=200,
            headers=pairs,
            body=pattern_bytes(0, sent),
            total=total,
            params={"total": total, "sent": sent},
        )

    @classmethod
    def _respond(
        cls,
        kind: str,
        params: dict[str, Any],
        code: int,
        *,
        json: Any = None,
        body: bytes = b"",
        text: str | None = None,
        headers: HeadersInput | None = None,
        latency: Duration = 0.0,
        content_type: str | None = None,
        encoding: str | None = None,
        retry_after_date: int | None = None,
    ) -> Fault:
        user = _header_pairs(headers)
        if sum(x is not None and x != b"" for x in (json, text, body or None)) > 1:
            raise ValueError("give at most one of json, text and body")
        if json is not None:
            payload = _dumps(json)
            default_type: str | None = "application/json"
        elif text is not None:
            payload = text.encode()
            default_type = "text/plain; charset=utf-8"
        else:
            if not isinstance(body, bytes | bytearray | memoryview):
                raise ValueError(f"body must be bytes, got {type(body).__name__}")
            payload = bytes(body)
            default_type = "application/octet-stream" if payload else None
        if _check_encoding(encoding):
            payload = compress(payload, encoding or "")
        pairs: list[tuple[str, str]] = []
        ctype = content_type or default_type
        if ctype and not _has(user, "content-type"):
            pairs.append(("Content-Type", ctype))
        if encoding:
            pairs.append(("Content-Encoding", encoding))
        pairs.extend(user)
        if code in _NO_BODY_CODES:
            payload = b""
        elif not _has(user, "content-length"):  # a given Content-Length is sent as is, even if false
            pairs.append(("Content-Length", str(len(payload))))
        return cls(
            kind=kind,
            code=code,
            headers=tuple(pairs),
            body=payload,
            latency=parse_duration(latency, name="latency"),
            encoding=encoding,
            retry_after_date=retry_after_date,
            params=params,
        )

    # -- JSON form -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``{"kind": ..., <constructor arguments that differ from defaults>}``."""
        if self.kind == "respond":
            raise ValueError("a respond fault holds a function: it has no JSON form (use it in-process)")
        return {"kind": self.kind, **self.params}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        """The fault described by a JSON form (see ``to_dict``); bad input raises ``ValueError``."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a fault must be a JSON object, got {type(data).__name__}")
        kind = data.get("kind")
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; kinds: {', '.join(KINDS)}")
        kwargs = {k: v for k, v in data.items() if k != "kind"}
        if "body_base64" in kwargs:
            try:
                kwargs["body"] = base64.b64decode(kwargs.pop("body_base64"), validate=True)
            except (binascii.Error, TypeError) as exc:
                raise ValueError(f"fault {kind!r}: body_base64 is not base64") from exc
        if isinstance(kwargs.get("body"), str):
            kwargs["body"] = kwargs["body"].encode()
        if isinstance(kwargs.get("retry_after"), str):
            kwargs["retry_after"] = _parse_date(kwargs["retry_after"])
        if kwargs.get("then") is not None:
            kwargs["then"] = cls.from_dict(kwargs["then"])
        if kind == "malformed" and "variant" in kwargs:
            kwargs["kind"] = kwargs.pop("variant")
        factory = getattr(cls, kind)
        try:
            fault: Fault = factory(**kwargs)
        except TypeError as exc:
            raise ValueError(f"fault {kind!r}: {exc}") from exc
        return fault

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"Fault.{self.kind}({args})"


def _parse_date(value: str) -> datetime:
    try:
        return email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        pass
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"retry_after {value!r} is neither an HTTP-date nor ISO 8601") from exc


def _render_event(event: Mapping[str, Any]) -> tuple[str | None, bytes]:
    """One SSE event dict as ``(id, wire bytes)``: its fields, one ``data:`` line per line."""
    if not isinstance(event, Mapping):
        raise ValueError(f"an SSE event must be a dict, got {type(event).__name__}")
    unknown = sorted(set(event) - set(_SSE_FIELDS))
    if unknown:
        raise ValueError(f"SSE event keys are {', '.join(_SSE_FIELDS)}; got {', '.join(map(str, unknown))}")
    lines: list[str] = []
    name, data, ident, retry = (event.get(k) for k in _SSE_FIELDS)
    for key, value in (("event", name), ("id", ident)):
        if value is None:
            continue
        if not isinstance(value, str) or "\r" in value or "\n" in value:
            raise ValueError(f"SSE {key} must be a one-line string, got {value!r}")
        lines.append(f"{key}: {value}")
    if retry is not None:
        lines.append(f"retry: {_check_count(retry, 'retry')}")
    if data is not None:
        if not isinstance(data, str):
            raise ValueError(f"SSE data must be a string, got {type(data).__name__}")
        lines.extend(f"data: {line}" for line in data.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    if not lines:
        raise ValueError("an SSE event needs at least one of event, data, id, retry")
    return ident, ("\n".join(lines) + "\n\n").encode()


def _params(**pairs: tuple[Any, Any]) -> dict[str, Any]:
    """The JSON form of the arguments that differ from their defaults."""
    out: dict[str, Any] = {}
    for name, (value, default) in pairs.items():
        if value is default or value == default:
            continue
        if isinstance(value, bytes | bytearray | memoryview):
            out.update(_body_json(bytes(value)))
        elif isinstance(value, datetime):
            out[name] = _date_header(value)
        elif isinstance(value, Fault):
            out[name] = value.to_dict()
        elif name == "headers":
            out[name] = _headers_json(_header_pairs(value))
        else:
            out[name] = value
    return out


@dataclass(frozen=True)
class Chaos:
    """Random faults for a route: with probability ``rate`` a request gets one of ``faults``
    (picked uniformly) instead of its scripted reply. ``seed`` makes the sequence reproducible."""

    rate: float
    faults: Sequence[Fault]
    seed: int | None = None

    def __post_init__(self) -> None:
        faults = tuple(self.faults)
        object.__setattr__(self, "faults", faults)
        if isinstance(self.rate, bool) or not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"chaos rate must be between 0 and 1, got {self.rate!r}")
        if self.rate > 0 and not faults:
            raise ValueError("chaos needs at least one fault when rate > 0")
        for f in faults:
            if not isinstance(f, Fault):
                raise ValueError(f"chaos faults must be Fault values, got {f!r}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``{"rate": ..., "faults": [...], "seed": ...}``."""
        return {"rate": self.rate, "faults": [f.to_dict() for f in self.faults], "seed": self.seed}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Chaos:
        """The chaos described by a JSON form (see ``to_dict``)."""
        if not isinstance(data, Mapping) or "rate" not in data:
            raise ValueError(f"chaos must be a JSON object with a rate, got {data!r}")
        faults = [Fault.from_dict(f) for f in data.get("faults", [])]
        return cls(rate=float(data["rate"]), faults=faults, seed=data.get("seed"))
