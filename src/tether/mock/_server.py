"""``FaultServer``: a fast, fault-injecting HTTP/1.1 server on loopback.

It runs on a raw ``asyncio.Protocol`` so that it can do what a web framework will not: reset a
connection at an exact byte, lie in ``Content-Length``, send bytes that are not HTTP, stall, and
stream bodies of any size under flow control. Responses that do not depend on the request are
rendered to bytes when the fault is made; answering one is a dict lookup, a log append and a
``transport.write``. Responses leave in request order on each connection (pipelining-safe): the
fast path writes at once, anything that waits (latency, streams, hangs) runs in one task per
connection that drains the connection's queue.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import socket
import struct
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import parse_qs, unquote

from tether.mock._bodies import bomb_pieces, large_pieces
from tether.mock._faults import RESPOND_KINDS, Chaos, Fault, Incoming
from tether.mock._http import MAX_BODY, BadRequest, Request, RequestParser, http_date
from tether.mock._log import RecordedRequest
from tether.mock._routes import PathPattern, Route, route_args

__all__ = ["CONTROL_PREFIX", "FaultServer", "ServerStats"]

CONTROL_PREFIX: Final = "/__tether/"
# Flow control: a streaming response stops producing while the transport holds more than this.
WRITE_HIGH_WATER: Final = 256 * 1024
WRITE_LOW_WATER: Final = 64 * 1024
# A streaming response yields to other connections after this many pieces even when the client
# keeps up, so one fast 100 MB stream does not starve everyone else.
_YIELD_EVERY: Final = 16
_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
_CLOSE: Final = b"Connection: close\r\n"
# Faults a connection can answer without waiting (when they have no latency).
_SYNC_KINDS: Final = RESPOND_KINDS | {"echo", "reset", "truncated", "malformed"}
# Faults after which the connection is gone: later pipelined requests are never read.
_TERMINAL_KINDS: Final = frozenset({"reset", "reset_mid_body", "truncated", "malformed"})


@dataclass
class ServerStats:
    """Counters for tests and benchmarks (not reset by ``reset()``)."""

    connections: int = 0
    requests: int = 0
    write_pauses: int = 0
    max_write_buffer: int = 0  # largest transport buffer seen while streaming (bytes)
    streamed_bytes: int = 0  # body bytes written by large / bomb responses


class _Plan:
    """What one connection will send for one request, decided when the request arrived."""

    __slots__ = ("extra", "fault", "head_only", "keep_alive", "path", "query", "request")

    def __init__(
        self,
        fault: Fault,
        request: Request,
        keep_alive: bool,
        extra: bytes = b"",
        path: str = "",
        query: str = "",
    ) -> None:
        self.fault = fault
        self.request = request
        self.keep_alive = keep_alive
        self.extra = extra
        self.head_only = request.method == "HEAD"
        self.path = path
        self.query = query


def _render(fault: Fault, plan: _Plan, close: bool) -> bytes:
    """The response bytes of a respond-kind fault for this plan."""
    if fault.wire is not None and not plan.extra and not close and not plan.head_only:
        return fault.wire
    parts = [fault.head]
    if fault.retry_after_date is not None:
        parts.append(f"Retry-After: {http_date(time.time() + fault.retry_after_date)}\r\n".encode())
    if plan.extra:
        parts.append(plan.extra)
    if close:
        parts.append(_CLOSE)
    parts.append(b"\r\n")
    if not plan.head_only:
        parts.append(fault.body)
    return b"".join(parts)


def _echo(plan: _Plan) -> Fault:
    req = plan.request
    headers: dict[str, str] = {}
    for name, value in req.headers:
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    doc = {
        "method": req.method,
        "path": plan.path,
        "query": parse_qs(plan.query, keep_blank_values=True),
        "headers": headers,
        "body": req.body.decode("utf-8", errors="replace"),
    }
    return Fault.ok(json=doc)


class _Connection(asyncio.Protocol):
    """One client connection: frames requests, asks the server what to do, sends it in order."""

    def __init__(self, server: FaultServer, conn_id: int) -> None:
        self.id = conn_id
        self._server = server
        self._parser = RequestParser(max_body=server.max_body)
        self._transport: asyncio.Transport | None = None
        self._queue: deque[_Plan] = deque()
        self.task: asyncio.Task[None] | None = None
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False  # the transport is gone
        self._done = False  # a closing response was submitted: ignore anything after it
        self._eof = False
        self._hanging = False

    # -- asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER, low=WRITE_LOW_WATER)
        self._server._opened(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._done = True
        self._wake()
        if self.task is not None:
            self.task.cancel()
        self._server._closed(self)

    def data_received(self, data: bytes) -> None:
        if self._done:
            return
        try:
            requests = self._parser.feed(data)
        except BadRequest as exc:
            requests = []
            bad: BadRequest | None = exc
        else:
            bad = None
        server = self._server
        for request in requests:
            plan = server._decide(request, self.id)
            self._submit(plan)
            if self._done:
                return
        if bad is not None:
            fault = Fault.status(bad.status, json={"error": bad.reason, "status": bad.status})
            self._submit(_Plan(fault, Request("GET", "", "HTTP/1.1", [], b"", False), False))
            return
        if self._parser.wants_continue:
            self._parser.wants_continue = False
            if self.task is None and not self._queue and self._transport is not None:
                self._transport.write(_CONTINUE)

    def eof_received(self) -> bool:
        self._eof = True
        # Keep the half-closed connection only to answer what was already asked (not for a hang).
        return not self._hanging and (self.task is not None or bool(self._queue))

    def pause_writing(self) -> None:
        self._paused = True
        self._server.stats.write_pauses += 1
        if self._transport is not None:
            self._transport.pause_reading()  # back-pressure: stop reading requests we cannot answer

    def resume_writing(self) -> None:
        self._paused = False
        self._wake()
        if self._transport is not None and not self._closed:
            self._transport.resume_reading()

    # -- sending -----------------------------------------------------------------------------------

    def _submit(self, plan: _Plan) -> None:
        fault = plan.fault
        final = fault
        while final.then is not None:  # a delay ends the way its `then` does
            final = final.then
        if not plan.keep_alive or final.kind in _TERMINAL_KINDS:
            self._done = True
        if self.task is None and not self._queue and fault.kind in _SYNC_KINDS and not fault.latency:
            self._send(fault, plan)
            return
        self._queue.append(plan)
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._queue and not self._closed:
                plan = self._queue.popleft()
                await self._execute(plan.fault, plan)
        except OSError:
            self._abort(rst=False)
        finally:
            self.task = None
        if self._eof and not self._closed and not self._queue:
            self._close()

    async def _execute(self, fault: Fault, plan: _Plan) -> None:
        if fault.latency > 0:
            await asyncio.sleep(fault.latency)
            if self._closed:
                return
        kind = fault.kind
        if kind == "delay":
            assert fault.then is not None
            await self._execute(fault.then, plan)
        elif kind == "hang":
            self._hanging = True
            if self._eof:
                self._close()
                return
            await asyncio.get_running_loop().create_future()  # until cancelled: client gone or stop()
        elif kind == "large" or kind == "bomb":
            await self._stream(fault, plan)
        elif kind == "sse":
            await self._sse(fault, plan)
        elif kind == "reset_mid_body":
            assert self._transport is not None
            self._transport.write(fault.head + b"\r\n" + fault.body)
            await self._flushed()
            self._abort(rst=True)
        else:
            self._send(fault, plan)

    def _send(self, fault: Fault, plan: _Plan) -> None:
        """Answer at once (respond kinds, echo, reset, truncated, malformed)."""
        transport = self._transport
        assert transport is not None
        kind = fault.kind
        if kind == "echo":
            fault = _echo(plan)
            kind = "ok"
        if kind in RESPOND_KINDS:
            close = not plan.keep_alive
            transport.write(_render(fault, plan, close))
            if close:
                self._close()
        elif kind == "reset":
            self._abort(rst=True)
        elif kind == "truncated":
            transport.write(fault.head + b"\r\n" + fault.body)
            self._close()
        else:  # malformed
            transport.write(fault.head)
            self._close()

    async def _stream(self, fault: Fault, plan: _Plan) -> None:
        transport = self._transport
        assert transport is not None
        close = not plan.keep_alive
        transport.write(fault.head + (_CLOSE if close else b"") + b"\r\n")
        if not plan.head_only:
            stats = self._server.stats
            if fault.kind == "large":
                pieces = large_pieces(fault.total, fault.chunk, fault.encoding)
            else:
                pieces = bomb_pieces(fault.total, fault.encoding or "gzip")
            chunked = fault.chunked
            for count, piece in enumerate(pieces, 1):
                if self._paused:
                    await self._writable()
                if self._closed:
                    return
                size = len(piece)
                transport.write(b"".join((b"%x\r\n" % size, piece, b"\r\n")) if chunked else piece)
                stats.streamed_bytes += size
                buffered = transport.get_write_buffer_size()
                if buffered > stats.max_write_buffer:
                    stats.max_write_buffer = buffered
                if count % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)
                    if self._closed:
                        return
            if chunked:
                transport.write(b"0\r\n\r\n")
        if close:
            self._close()

    async def _sse(self, fault: Fault, plan: _Plan) -> None:
        """An event stream, one chunk per event; resumes after ``Last-Event-ID`` when asked, and
        closes without the final chunk after ``drop_after`` events."""
        transport = self._transport
        assert transport is not None
        close = not plan.keep_alive
        transport.write(fault.head + (_CLOSE if close else b"") + b"\r\n")
        if plan.head_only:
            if close:
                self._close()
            return
        events = fault.events
        start = 0
        last_id = _header(plan.request.headers, "last-event-id") if fault.resume else None
        if last_id is not None:
            for index, (ident, _) in enumerate(events):
                if ident == last_id:
                    start = index + 1
        for sent, (_, piece) in enumerate(events[start:]):
            if fault.drop_after is not None and sent >= fault.drop_after:
                await self._flushed()
                self._close()  # FIN without the final chunk: the client sees a broken-off body
                return
            if self._paused:
                await self._writable()
            if self._closed:
                return
            transport.write(b"".join((b"%x\r\n" % len(piece), piece, b"\r\n")))
            self._server.stats.streamed_bytes += len(piece)
            await asyncio.sleep(0)
            if self._closed:
                return
        transport.write(b"0\r\n\r\n")
        if close:
            self._close()

    async def _writable(self) -> None:
        while self._paused and not self._closed:
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            await waiter

    async def _flushed(self) -> None:
        """Wait until the transport has handed every buffered byte to the kernel."""
        transport = self._transport
        assert transport is not None
        if transport.get_write_buffer_size():
            # With a zero high-water mark the transport pauses us until its buffer is empty.
            transport.set_write_buffer_limits(high=0, low=0)
            await self._writable()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._waiter = None

    def _close(self) -> None:
        self._done = True
        if self._transport is not None:
            self._transport.close()  # FIN once the buffer is flushed

    def _abort(self, *, rst: bool) -> None:
        self._done = True
        transport = self._transport
        if transport is None:
            return
        if rst:
            # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
            sock = transport.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
        transport.abort()


class FaultServer:
    """A loopback HTTP/1.1 server that answers each route with scripted faults.

    ::

        async with FaultServer() as server:
            server.route("GET", "/data/{id}", Fault.status(503), Fault.ok(json={"ok": True}))
            ...  # call server.url + "/data/1"; then inspect server.log

    Every server has ``GET /fast`` (a tiny fixed JSON 200, for benchmarks) and ``/echo`` (any
    method: the request as JSON). Unknown paths answer 404 JSON, known paths with another method
    405. ``/__tether/...`` is the remote control (log, reset, routes) for other processes; its
    requests are not logged. ``record=False`` keeps no log (long benchmarks).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        record: bool = True,
        max_body: int = MAX_BODY,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self.record = record
        self.max_body = max_body
        self._log: list[RecordedRequest] = []
        self._pending: list[_Pending] = []
        self.stats = ServerStats()
        self._routes: dict[tuple[str, str], Route] = {}
        self._static: dict[tuple[str, str], Route] = {}
        self._dynamic: list[Route] = []
        self._connections: set[_Connection] = set()
        self._next_id = 0
        self._server: asyncio.Server | None = None
        self._install_defaults()

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and start serving (``port=0`` picks a free port: read ``.port`` / ``.url``)."""
        if self._server is not None:
            raise RuntimeError("FaultServer is already started")
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._new_connection, self.host, self._requested_port, backlog=2048, reuse_address=True
        )
        self._port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and drop every open connection (hangs and streams end)."""
        server = self._server
        if server is None:
            return
        self._server = None
        server.close()
        tasks = []
        for conn in list(self._connections):
            if conn.task is not None:
                conn.task.cancel()
                tasks.append(conn.task)
            conn._abort(rst=False)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The bound port (after ``start()``)."""
        if self._port is None:
            raise RuntimeError("FaultServer is not started: use 'async with' or 'await start()'")
        return self._port

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` (no trailing slash)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "not started"
        return f"FaultServer({where}, routes={len(self._routes)}, log={len(self.log)})"

    # -- routes and log ----------------------------------------------------------------------------

    def route(
        self,
        method: str,
        path: str,
        *responses: Fault,
        rate_limit: str | None = None,
        burst: int | None = None,
        chaos: Chaos | None = None,
    ) -> None:
        """Answer ``method path`` with ``responses`` in order (the last one repeats).

        ``{name}`` in ``path`` matches one path segment; ``method="*"`` matches any method; a
        later call for the same method and path replaces the route (and restarts its script).
        ``rate_limit`` (``"600/minute"``, with ``burst``) makes the server enforce a token
        bucket: requests over it get 429 with ``Retry-After`` and ``X-RateLimit-*``, and every
        answer on the route carries ``X-RateLimit-*``. ``chaos`` replaces scripted replies at
        random (seeded) with its faults.
        """
        new = Route(
            method,
            path,
            responses,
            rate_limit=rate_limit,
            burst=burst,
            chaos=chaos,
            now=time.monotonic(),
        )
        self._routes[(new.method, new.pattern.path)] = new
        self._index()

    def load_routes(self, spec: Any) -> int:
        """Add routes from their JSON form: one route spec, a list, or ``{"routes": [...]}``.

        A route spec is ``{"method", "path", "responses": [fault dicts], "rate_limit", "burst",
        "chaos"}``. Returns how many routes were added; a bad spec raises ``ValueError`` and adds
        none.
        """
        if isinstance(spec, Mapping) and "routes" in spec and "path" not in spec:
            spec = spec["routes"]
        specs: Sequence[Any] = [spec] if isinstance(spec, Mapping) else spec
        if not isinstance(specs, list | tuple):
            raise ValueError("routes must be a route spec, a list of them, or {'routes': [...]}")
        parsed = [route_args(s) for s in specs]
        now = time.monotonic()
        built = [Route(m, p, faults, now=now, **opts) for m, p, faults, opts in parsed]
        for new in built:
            self._routes[(new.method, new.pattern.path)] = new
        self._index()
        return len(built)

    def routes(self) -> list[dict[str, Any]]:
        """The JSON form of every route, in the order they were added."""
        return [r.to_dict() for r in self._routes.values()]

    def requests(self, method: str | None = None, path: str | None = None) -> list[RecordedRequest]:
        """Log entries matching a method (any when ``None`` or ``"*"``) and a route pattern."""
        if path is None and method is not None and method.startswith("/"):
            method, path = None, method  # requests("/data/{id}")
        pattern = PathPattern(path) if path is not None else None
        wanted = method.upper() if method is not None and method != "*" else None
        return [
            r
            for r in self.log
            if (wanted is None or r.method == wanted) and (pattern is None or pattern.match(r.path))
        ]

    @property
    def log(self) -> list[RecordedRequest]:
        """Every request received (except remote-control calls), in arrival order."""
        if self._pending:
            self._log.extend(_record(*entry) for entry in self._pending)
            self._pending.clear()
        return self._log

    def clear_log(self) -> None:
        """Forget every recorded request."""
        self._pending.clear()
        self._log.clear()

    def reset(self) -> None:
        """Drop every route (back to the defaults) and the log."""
        self._routes.clear()
        self._install_defaults()
        self.clear_log()

    # -- internals ---------------------------------------------------------------------------------

    def _install_defaults(self) -> None:
        self.route("GET", "/fast", Fault.ok(json={"ok": True}))
        self.route("*", "/echo", Fault.echo())

    def _index(self) -> None:
        static: dict[tuple[str, str], Route] = {}
        specific: list[Route] = []
        anymethod: list[Route] = []
        for route in self._routes.values():
            if route.pattern.static:
                static[(route.method, route.pattern.path)] = route
            else:
                (anymethod if route.method == "*" else specific).append(route)
        self._static = static
        self._dynamic = specific + anymethod

    def _match(self, method: str, path: str) -> Route | None:
        static = self._static
        route = static.get((method, path)) or static.get(("*", path))
        if route is not None:
            return route
        for route in self._dynamic:
            if (route.method == method or route.method == "*") and route.pattern.match(path):
                return route
        if method == "HEAD":
            return self._match("GET", path)
        return None

    def _new_connection(self) -> _Connection:
        self._next_id += 1
        return _Connection(self, self._next_id)

    def _opened(self, conn: _Connection) -> None:
        self._connections.add(conn)
        self.stats.connections += 1

    def _closed(self, conn: _Connection) -> None:
        self._connections.discard(conn)

    def _decide(self, request: Request, conn_id: int) -> _Plan:
        """Pick the answer to a request as it arrives (the script advances in arrival order)."""
        wall = time.time()
        now = time.monotonic()
        self.stats.requests += 1
        target = request.target
        path, _, query = target.partition("?")
        if not path.startswith("/"):
            path = _origin_path(path)
        if "%" in path:
            path = unquote(path)
        method = request.method
        if path.startswith(CONTROL_PREFIX):
            return _Plan(self._control(method, path, request), request, request.keep_alive)
        route = self._match(method, path)
        extra = b""
        if route is None:
            fault = self._unrouted(method, path)
            label = "method_not_allowed" if fault.code == 405 else "not_found"
            pattern = None
        else:
            fault, extra = route.next(now)
            if fault.responder is not None:  # a dynamic route: its answer, logged as sent
                fault = fault.answer(Incoming(method, path, query, tuple(request.headers), request.body))
            label = fault.kind
            pattern = route.pattern.path
        if self.record:
            # A tuple now, a RecordedRequest when someone reads the log: keeps the hot path short.
            # Only strings, numbers and tuples of them: the garbage collector soon untracks such
            # tuples, so a long log costs no collection time.
            self._pending.append(
                (
                    method,
                    request.target,
                    tuple(request.headers),
                    request.body,
                    path,
                    query,
                    wall,
                    now,
                    fault.code,
                    label,
                    conn_id,
                    pattern,
                )
            )
        return _Plan(fault, request, request.keep_alive, extra, path, query)

    def _unrouted(self, method: str, path: str) -> Fault:
        allowed = sorted({r.method for r in self._routes.values() if r.pattern.match(path)})
        if allowed and "*" not in allowed:
            return Fault.status(
                405,
                json={"error": "method not allowed", "method": method, "path": path, "allowed": allowed},
                headers={"Allow": ", ".join(allowed)},
            )
        return Fault.status(404, json={"error": "no route", "method": method, "path": path, "status": 404})

    def _control(self, method: str, path: str, request: Request) -> Fault:
        """The remote control: ``/__tether/log``, ``/reset``, ``/routes``, ``/stats``."""
        name = path[len(CONTROL_PREFIX) :].strip("/")
        if name == "log" and method == "GET":
            return Fault.ok(json={"requests": [r.to_dict() for r in self.log]})
        if name == "log" and method == "DELETE":
            self.clear_log()
            return Fault.ok(json={"ok": True})
        if name == "reset" and method == "POST":
            self.reset()
            return Fault.ok(json={"ok": True})
        if name == "routes" and method == "GET":
            return Fault.ok(json={"routes": self.routes()})
        if name == "routes" and method == "POST":
            try:
                added = self.load_routes(jsonlib.loads(request.body))
            except ValueError as exc:  # json.JSONDecodeError is a ValueError too
                return Fault.problem(400, "bad route spec", detail=str(exc))
            return Fault.ok(json={"added": added, "routes": len(self._routes)}, status=201)
        if name == "stats" and method == "GET":
            return Fault.ok(json={**asdict(self.stats), "log": len(self.log)})
        return Fault.problem(404, "no such control endpoint", detail=f"{method} {path}")


_Pending = tuple[
    str, str, tuple[tuple[str, str], ...], bytes, str, str, float, float, int | None, str, int, str | None
]


def _record(
    method: str,
    target: str,
    header_list: tuple[tuple[str, str], ...],
    body: bytes,
    path: str,
    query: str,
    wall: float,
    now: float,
    status: int | None,
    label: str,
    conn_id: int,
    pattern: str | None,
) -> RecordedRequest:
    headers: dict[str, str] = {}
    for name, value in header_list:
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return RecordedRequest(
        method=method,
        path=path,
        query=parse_qs(query, keep_blank_values=True) if query else {},
        headers=headers,
        body=body,
        time=wall,
        monotonic=now,
        status=status,
        fault=label,
        connection_id=conn_id,
        target=target,
        route=pattern,
        header_list=header_list,
    )


def _header(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    """The last value of header ``name`` (lower-case) in a request's header list."""
    found = None
    for key, value in headers:
        if key.lower() == name:
            found = value
    return found


def _origin_path(target: str) -> str:
    # absolute-form ("http://host:port/path") or asterisk-form ("*") request targets
    _, sep, rest = target.partition("://")
    if sep:
        slash = rest.find("/")
        return rest[slash:] if slash >= 0 else "/"
    return target
