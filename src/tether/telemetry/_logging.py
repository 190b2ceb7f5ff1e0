"""The structlog listener, and a structlog processor that masks secrets in any log line."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

import structlog

from tether._redact import redact_value
from tether.events import Event

__all__ = ["StructlogListener", "mask_processor"]


class StructlogListener:
    """Logs every event as one structlog line: ``log.info("retry.scheduled", attempt=2, delay=1.7)``.

    ``min_level`` drops events below it (per-attempt events are DEBUG). Field values arrive
    already redacted from ``Event.make``.
    """

    def __init__(self, logger: Any = None, *, min_level: int = logging.DEBUG) -> None:
        self._log = logger if logger is not None else structlog.get_logger("tether")
        self._min_level = min_level

    def __call__(self, event: Event) -> None:
        if event.level < self._min_level:
            return
        fields: dict[str, Any] = dict(event.fields)
        if event.service is not None:
            fields["service"] = event.service
        if event.endpoint is not None:
            fields["endpoint"] = event.endpoint
        self._log.log(event.level, event.name, **fields)

    def __repr__(self) -> str:
        return f"StructlogListener(min_level={logging.getLevelName(self._min_level)})"


def mask_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: mask credential-named keys and registered secret values in a log line.

    Add it to your own structlog chain so lines that do not come from tether are masked too.
    """
    for key, value in list(event_dict.items()):
        event_dict[key] = redact_value(key, value)
    return event_dict
