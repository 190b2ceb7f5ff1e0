"""Server-sent events: ``sse(client, "GET", url)`` yields ``SSEEvent`` values, reconnecting.

::

    async with tether.Client("https://api.example.com") as client:
        async for event in sse(client, "GET", "/v1/stream", params={"q": "x"}):
            print(event.event, event.data)

The request goes through the client's pipeline (retry, breaker, rate limit, auth) like any other;
the body is parsed incrementally (``SSEParser``: ``event``, ``data``, ``id``, ``retry``, comments,
LF / CR / CRLF line ends, split anywhere between chunks). When the connection drops mid-stream (a
``ConnectionError``, or a ``ResponseError`` whose reason is ``truncated`` / ``protocol``), or the
body ends before ``done_event`` when one is named, the stream is opened again after the server's
last ``retry:`` (else ``reconnect_delay``) with ``Last-Event-ID`` set to the id of the last event
seen, and ``stream.reconnected`` is emitted. ``max_reconnects`` bounds reconnects in a row with no
event in between. A reconnect answered ``204 No Content`` ends the stream (the server says stop).

An event whose name is in ``error_events`` is raised as a typed error: JSON data with a numeric
``status`` / ``code`` (at the top level or under ``error``) maps like an HTTP status (429 →
``RateLimitExceeded``, 401 / 403 → ``AuthenticationError``, 404 → ``NotFoundError``, 5xx and the
rest → ``APIError``); anything else is an ``APIError``.

``timeout`` bounds the whole operation (opening, reading, reconnect waits, and the time the
caller spends between events): past it, ``TimeoutError(phase="total")``. The budget is measured on
``clock`` (``tether.testing.VirtualClock`` in tests); network waits are bounded by what is left of
it in real seconds.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass
from typing import Any, Final

import httpx2

from tether import errors
from tether import events as ev
from tether._clock import Clock, system_clock
from tether.client import Client
from tether.errors import _status_class

__all__ = [
    "DEFAULT_MAX_EVENT_SIZE",
    "DEFAULT_MAX_RECONNECTS",
    "DEFAULT_RECONNECT_DELAY",
    "DEFAULT_TIMEOUT",
    "SSEEvent",
    "SSEParser",
    "error_for_event",
    "sse",
]

DEFAULT_TIMEOUT: Final = 120.0
DEFAULT_MAX_RECONNECTS: Final = 5
DEFAULT_RECONNECT_DELAY: Final = 3.0
#: Characters one event (its pending line and data) may hold before the stream is refused.
DEFAULT_MAX_EVENT_SIZE: Final = 1 << 20
EVENT_STREAM: Final = "text/event-stream"

_EOL: Final = re.compile(r"\r\n|\r|\n")

#: Opens one connection of the stream, given the headers to add (Accept, Last-Event-ID).
Opener = Callable[[Mapping[str, str]], AbstractAsyncContextManager[httpx2.Response]]


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event. ``id`` is the stream's last event id when it was dispatched (ids are
    sticky), ``None`` when none was set; ``retry`` the reconnection time (ms) its block set."""

    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None

    def json(self) -> Any:
        """``data`` parsed as JSON."""
        return json.loads(self.data)


class SSEParser:
    """An incremental ``text/event-stream`` parser (the WHATWG rules): ``feed(bytes)`` returns the
    events the bytes complete. UTF-8 (a leading BOM is dropped); an unterminated event at the end
    of the stream is discarded. ``last_event_id`` and ``retry`` (ms) are the stream's state."""

    __slots__ = (
        "_buffer",
        "_data",
        "_decoder",
        "_event",
        "_max",
        "_retry_set",
        "_size",
        "_skip_lf",
        "_started",
        "last_event_id",
        "retry",
    )

    def __init__(self, *, max_event_size: int | None = DEFAULT_MAX_EVENT_SIZE) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._skip_lf = False
        self._started = False
        self._event = ""
        self._data: list[str] = []
        self._size = 0
        self._retry_set: int | None = None
        self._max = max_event_size
        self.last_event_id = ""
        self.retry: int | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """The events completed by ``chunk``."""
        text = self._decoder.decode(chunk)
        if not self._started:
            if not text:
                return []
            self._started = True
            if text.startswith("\ufeff"):
                text = text[1:]
        if self._skip_lf and text:  # an empty chunk (or half a character) decides nothing
            self._skip_lf = False
            if text.startswith("\n"):
                text = text[1:]
        buffer = self._buffer + text if self._buffer else text
        out: list[SSEEvent] = []
        pos = 0
        for match in _EOL.finditer(buffer):
            self._line(buffer[pos : match.start()], out)
            pos = match.end()
            if pos == len(buffer) and match.group() == "\r":
                self._skip_lf = True  # a CRLF may be split between chunks
        self._buffer = buffer[pos:]
        if self._max is not None and self._size + len(self._buffer) > self._max:
            raise errors.ResponseError(
                f"a server-sent event exceeded {self._max} characters", reason="too_large"
            )
        return out

    def _line(self, line: str, out: list[SSEEvent]) -> None:
        if not line:
            self._dispatch(out)
            return
        if line[0] == ":":
            return
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        self._size += len(line)
        if self._max is not None and self._size > self._max:
            raise errors.ResponseError(
                f"a server-sent event exceeded {self._max} characters", reason="too_large"
            )
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = self._retry_set = int(value)
        # other field names are ignored

    def _dispatch(self, out: list[SSEEvent]) -> None:
        if self._data:
            out.append(
                SSEEvent(
                    event=self._event or "message",
                    data="\n".join(self._data),
                    id=self.last_event_id or None,
                    retry=self._retry_set,
                )
            )
        self._event = ""
        self._data = []
        self._size = 0
        self._retry_set = None


# --- error events ---------------------------------------------------------------------------------


def _status_of(doc: Mapping[str, Any]) -> int | None:
    for key in ("status", "status_code", "code"):
        value = doc.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.isascii() and value.isdigit():
            return int(value)
    return None


def _message_of(doc: Mapping[str, Any]) -> str | None:
    for key in ("message", "detail", "title", "error"):
        value = doc.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def error_for_event(
    event: SSEEvent, *, service: str | None = None, endpoint: str | None = None
) -> errors.TetherError:
    """The typed error a mid-stream error event stands for (see the module docstring)."""
    status: int | None = None
    message: str | None = None
    retry_after: float | None = None
    try:
        doc = json.loads(event.data) if event.data else None
    except ValueError:
        doc = None
    if isinstance(doc, Mapping):
        nested = doc.get("error")
        for part in (doc, nested) if isinstance(nested, Mapping) else (doc,):
            status = status if status is not None else _status_of(part)
            message = message or _message_of(part)
            wait = part.get("retry_after")
            if retry_after is None and isinstance(wait, int | float) and not isinstance(wait, bool):
                retry_after = float(wait)
    elif event.data:
        message = event.data.splitlines()[0][:200]
    cls: type[errors.TetherError] = errors.APIError
    if status is not None and 400 <= status <= 599:
        cls = _status_class(status)
    text = f"stream error event {event.event!r}" + (f" (status {status})" if status is not None else "")
    if message:
        text += f": {message}"
    return cls(
        text,
        service=service,
        endpoint=endpoint,
        status_code=status,
        retry_after=retry_after,
    )


# --- the stream -----------------------------------------------------------------------------------


def _is_drop(exc: errors.TetherError) -> bool:
    if isinstance(exc, errors.ConnectionError):
        return True
    return isinstance(exc, errors.ResponseError) and exc.reason in errors.ResponseError.TRANSIENT_REASONS


def _check_content_type(response: httpx2.Response) -> None:
    content_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != EVENT_STREAM:
        raise errors.ResponseError(
            f"expected a {EVENT_STREAM} response, got {content_type or 'no content type'!r}",
            reason="decoding",
            response=response,
        )


async def sse(
    client: Client,
    method: str,
    url: str | httpx2.URL,
    *,
    last_event_id: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    reconnect: bool = True,
    max_reconnects: int = DEFAULT_MAX_RECONNECTS,
    reconnect_delay: float = DEFAULT_RECONNECT_DELAY,
    error_events: Sequence[str] = ("error",),
    done_event: str | None = None,
    max_event_size: int | None = DEFAULT_MAX_EVENT_SIZE,
    clock: Clock | None = None,
    **request_kwargs: Any,
) -> AsyncIterator[SSEEvent]:
    """The events of a server-sent event stream (see the module docstring).

    ``request_kwargs`` are ``Client.request`` keywords (``params``, ``headers``, ``json``,
    ``endpoint`` …). ``done_event`` names the event that ends the stream (not yielded); without
    it a body that ends cleanly ends the stream.
    """
    user_headers = dict(request_kwargs.pop("headers", None) or {})

    def opener(extra: Mapping[str, str]) -> AbstractAsyncContextManager[httpx2.Response]:
        return client.stream(method, url, headers={**user_headers, **extra}, **request_kwargs)

    async for event in stream_events(
        client,
        opener,
        endpoint=request_kwargs.get("endpoint"),
        last_event_id=last_event_id,
        timeout=timeout,
        reconnect=reconnect,
        max_reconnects=max_reconnects,
        reconnect_delay=reconnect_delay,
        error_events=error_events,
        done_event=done_event,
        max_event_size=max_event_size,
        clock=clock,
    ):
        yield event


async def stream_events(
    client: Client,
    opener: Opener,
    *,
    endpoint: str | None = None,
    last_event_id: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    reconnect: bool = True,
    max_reconnects: int = DEFAULT_MAX_RECONNECTS,
    reconnect_delay: float = DEFAULT_RECONNECT_DELAY,
    error_events: Sequence[str] = ("error",),
    done_event: str | None = None,
    max_event_size: int | None = DEFAULT_MAX_EVENT_SIZE,
    clock: Clock | None = None,
    on_response: Callable[[httpx2.Response], None] | None = None,
) -> AsyncIterator[SSEEvent]:
    """``sse`` over any way of opening the stream: ``opener(headers)`` is an async context
    manager yielding a response with its body unread (``Integration.stream`` builds its request
    from the spec). ``on_response`` sees each connection's response."""
    if timeout <= 0:
        raise ValueError(f"timeout must be > 0, got {timeout!r}")
    if max_reconnects < 0:
        raise ValueError(f"max_reconnects must be >= 0, got {max_reconnects!r}")
    clock = clock or system_clock
    deadline = clock.monotonic() + timeout
    failing = frozenset(error_events)
    last_id = last_event_id or None
    server_retry: float | None = None
    in_a_row = 0  # reconnects since the last event

    def remaining() -> float:
        left = deadline - clock.monotonic()
        if left <= 0:
            raise _total_timeout(timeout, client, endpoint)
        return left

    first = True
    while True:
        headers = {"Accept": EVENT_STREAM, "Cache-Control": "no-cache"}
        if last_id:
            headers["Last-Event-ID"] = last_id
        dropped: errors.TetherError | None = None
        async with AsyncExitStack() as stack:
            try:
                try:
                    async with asyncio.timeout(remaining()):
                        response = await stack.enter_async_context(opener(headers))
                except errors.TetherError as exc:
                    if first or not _is_drop(exc):
                        raise
                    dropped = exc
                else:
                    if on_response is not None:
                        on_response(response)
                    if not first and response.status_code == 204:
                        return  # the server asks the client not to reconnect
                    _check_content_type(response)
                    parser = SSEParser(max_event_size=max_event_size)
                    chunks = response.aiter_bytes()
                    ended = False
                    while not ended:
                        try:
                            async with asyncio.timeout(remaining()):
                                chunk = await anext(chunks)
                        except StopAsyncIteration:
                            ended = True
                            continue
                        except errors.TetherError as exc:
                            if not _is_drop(exc):
                                raise
                            dropped = exc
                            break
                        for event in parser.feed(chunk):
                            last_id = event.id
                            in_a_row = 0
                            if event.retry is not None:
                                server_retry = event.retry / 1000.0
                            if event.event in failing:
                                raise error_for_event(event, service=client.service, endpoint=endpoint)
                            if done_event is not None and event.event == done_event:
                                return
                            yield event
                            remaining()
                    if parser.retry is not None:  # a retry: with no data still counts
                        server_retry = parser.retry / 1000.0
                    if parser.last_event_id != (last_id or ""):
                        last_id = parser.last_event_id or None
                    if ended:
                        if done_event is None:
                            return
                        dropped = errors.ResponseError(
                            f"the event stream ended before its {done_event!r} event",
                            reason="truncated",
                            service=client.service,
                            endpoint=endpoint,
                        )
            except TimeoutError:  # asyncio.timeout (the builtin): the operation's budget is spent
                raise _total_timeout(timeout, client, endpoint) from None
        first = False
        assert dropped is not None
        if not reconnect or in_a_row >= max_reconnects:
            raise dropped
        in_a_row += 1
        delay = server_retry if server_retry is not None else reconnect_delay
        if delay >= remaining():
            raise _total_timeout(timeout, client, endpoint)
        if delay > 0:
            await clock.sleep(delay)
        client.events.emit(
            ev.STREAM_RECONNECTED,
            endpoint=endpoint,
            attempt=in_a_row,
            delay=delay,
            last_event_id=last_id,
            error_type=type(dropped).__name__,
        )


def _total_timeout(timeout: float, client: Client, endpoint: str | None) -> errors.TimeoutError:
    return errors.TimeoutError(
        f"the event stream ran past its {timeout:g} s timeout",
        phase="total",
        service=client.service,
        endpoint=endpoint,
    )
