"""The audit log: one JSON line per call, for compliance, with nothing secret in it.

``AuditLog("audit.jsonl")`` (or ``AuditLog(logger="myapp.audit")``) is an opt-in event listener:
``Client(listeners=[AuditLog(...)])``, ``tether.open(spec, listeners=[...])``, or the spec's
``monitoring.audit: {file: audit.jsonl}`` / ``{logger: myapp.audit}``. For every finished call
(``call.succeeded`` / ``call.failed``) it writes::

    {"time": "2026-01-09T14:30:00.123Z", "request_id": "req_…", "service": "dataapi",
     "endpoint": "get_data", "status": 200, "attempts": 1, "outcome": "success",
     "served_by": "network", "elapsed_ms": 42.1, "error_code": null}

``outcome`` is ``success``, ``failure`` (an error answer or a transport failure) or ``rejected``
(refused before anything was sent: an open breaker, the rate limiter, a full bulkhead …).
``served_by`` is ``network``, ``cache``, ``stale_cache``, a fallback step (``default``,
``alternate:<name>``, ``dlq``), or ``null`` when nothing answered. Only these fields are written:
never a URL, a header, a parameter or a body, so neither a credential nor a payload can reach
the log. A file is appended to, one line per call, flushed as it is written.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final

from tether import events as ev
from tether._clock import Clock, system_clock
from tether.events import Event

__all__ = ["AUDIT_FIELDS", "AuditLog"]

#: The fields of every line, in order.
AUDIT_FIELDS: Final = (
    "time",
    "request_id",
    "service",
    "endpoint",
    "status",
    "attempts",
    "outcome",
    "served_by",
    "elapsed_ms",
    "error_code",
)


class AuditLog:
    """Writes one JSON line per call to ``path`` (appended) or to ``logger`` (at INFO)."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        logger: str | logging.Logger | None = None,
        clock: Clock | None = None,
    ) -> None:
        if (path is None) == (logger is None):
            raise ValueError("AuditLog writes to a file (path) or to a logger (logger=): give one of them")
        self._path = Path(path) if path is not None else None
        self._logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        self._clock = clock or system_clock
        self._file: IO[str] | None = None

    def __repr__(self) -> str:
        target = str(self._path) if self._path is not None else f"logger {self._logger.name!r}"  # type: ignore[union-attr]
        return f"AuditLog({target})"

    def line(self, event: Event) -> dict[str, Any]:
        """The audit record of a call event."""
        fields = event.fields
        succeeded = event.name == ev.CALL_SUCCEEDED
        outcome = "success" if succeeded else "rejected" if fields.get("rejected") else "failure"
        elapsed = fields.get("elapsed")
        stamp = datetime.fromtimestamp(self._clock.time(), UTC).isoformat(timespec="milliseconds")
        return {
            "time": stamp.replace("+00:00", "Z"),
            "request_id": fields.get("request_id"),
            "service": event.service,
            "endpoint": event.endpoint,
            "status": fields.get("status"),
            "attempts": fields.get("attempts"),
            "outcome": outcome,
            "served_by": fields.get("served_by"),
            "elapsed_ms": round(float(elapsed) * 1000, 3) if isinstance(elapsed, int | float) else None,
            "error_code": None if succeeded else fields.get("error_code"),
        }

    def __call__(self, event: Event) -> None:
        if event.name not in (ev.CALL_SUCCEEDED, ev.CALL_FAILED):
            return
        text = json.dumps(self.line(event), separators=(",", ":"), default=str)
        if self._logger is not None:
            self._logger.info(text)
            return
        if self._file is None:
            assert self._path is not None
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self._path.open("a", encoding="utf-8", buffering=1)  # line-buffered
        self._file.write(text + "\n")

    def close(self) -> None:
        """Close the file (a later call opens it again, appending)."""
        if self._file is not None:
            self._file.close()
            self._file = None
