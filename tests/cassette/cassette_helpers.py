"""Helpers for the cassette tests: count the sockets a block of code opens."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_WATCHED: dict[int, list[str]] = {}
_EVENTS = frozenset({"socket.__new__", "socket.connect", "socket.getaddrinfo"})


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event in _EVENTS:
        seen = _WATCHED.get(threading.get_ident())
        if seen is not None:
            seen.append(event)


sys.addaudithook(_hook)  # audit hooks cannot be removed: it records only for watched threads


@contextmanager
def socket_events() -> Iterator[list[str]]:
    """Every socket created, connected or resolved by this thread inside the block (audit events)."""
    seen: list[str] = []
    _WATCHED[threading.get_ident()] = seen
    try:
        yield seen
    finally:
        _WATCHED.pop(threading.get_ident(), None)
