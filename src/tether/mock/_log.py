"""The mock server's request log: one ``RecordedRequest`` per request it answered (or faulted)."""

from __future__ import annotations

import base64
import json as jsonlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RecordedRequest"]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """A request as the server received it, and what the server did with it.

    ``path`` is percent-decoded; ``query`` maps each parameter to its values in order;
    ``headers`` has lower-cased names (repeated headers joined with ``", "``); ``time`` is the
    arrival wall time (``time.time()``) and ``monotonic`` the arrival ``time.monotonic()``;
    ``status`` is the status line the server sent (``None`` when it sent none: reset, hang,
    garbage) and ``fault`` the kind of behaviour it applied (``"ok"``, ``"status"``, ``"reset"``,
    ``"rate_limited"``, ``"not_found"`` …); ``route`` the pattern of the route that matched.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    time: float
    monotonic: float
    status: int | None
    fault: str
    connection_id: int
    target: str = ""
    route: str | None = None
    header_list: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (undecodable bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return jsonlib.loads(self.body)

    def header(self, name: str, default: str | None = None) -> str | None:
        """The value of header ``name`` (any case), or ``default``."""
        return self.headers.get(name.lower(), default)

    def param(self, name: str, default: str | None = None) -> str | None:
        """The first value of query parameter ``name``, or ``default``."""
        values = self.query.get(name)
        return values[0] if values else default

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``body`` as text when it is UTF-8, always ``body_base64``)."""
        try:
            text: str | None = self.body.decode()
        except UnicodeDecodeError:
            text = None
        return {
            "method": self.method,
            "path": self.path,
            "target": self.target,
            "query": self.query,
            "headers": self.headers,
            "header_list": [list(p) for p in self.header_list],
            "body": text,
            "body_base64": base64.b64encode(self.body).decode(),
            "time": self.time,
            "monotonic": self.monotonic,
            "status": self.status,
            "fault": self.fault,
            "connection_id": self.connection_id,
            "route": self.route,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RecordedRequest:
        """A record from its JSON form (see ``to_dict``)."""
        if data.get("body_base64") is not None:
            body = base64.b64decode(data["body_base64"])
        else:
            body = (data.get("body") or "").encode()
        return cls(
            method=data["method"],
            path=data["path"],
            query={k: list(v) for k, v in data.get("query", {}).items()},
            headers=dict(data.get("headers", {})),
            body=body,
            time=float(data["time"]),
            monotonic=float(data["monotonic"]),
            status=data.get("status"),
            fault=data["fault"],
            connection_id=int(data["connection_id"]),
            target=data.get("target", ""),
            route=data.get("route"),
            header_list=tuple((str(k), str(v)) for k, v in data.get("header_list", [])),
        )
