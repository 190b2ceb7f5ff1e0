"""The default engine: an httpx2 transport that sends HTTP/1.1 through one pooled aiohttp session.

httpx2's own pool is slow under concurrency; aiohttp's is not. This transport keeps httpx2's
``Request`` / ``Response`` models (so policies, auth and users see httpx2 types) and uses aiohttp
only for the wire. What it adds on top of aiohttp:

- the pool bound itself: a slot (``asyncio.Semaphore``) per in-flight response, overall and per
  host, so a wait for a free connection is bounded by the ``pool`` timeout and reported as such
  (aiohttp's own limits are off);
- a write timeout for request bodies (aiohttp has none): a watchdog re-armed as each chunk is taken;
- tether's own decoding and size limits (aiohttp's ``auto_decompress`` is off);
- every aiohttp / OS error translated to ``tether.errors`` (see ``_errors.py``).

Non-streamed calls (no ``CallContext``, or ``CallContext.stream`` False) are read whole here, within
``max_response_size``, and handed to httpx2 as bytes; streamed calls get a stream that decodes as
it goes and returns the connection to the pool when read to the end or closed.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from typing import Any, Final

import aiohttp
import httpx2
from yarl import URL

from tether._config import Timeouts
from tether.errors import BlockedDestinationError, TetherError, TimeoutError, backend_cause
from tether.transport._body import BodyCollector, BodyPlan, has_no_body, is_streamed, plan_body
from tether.transport._decoding import ContentDecoder, DecodingFailed
from tether.transport._errors import body_too_large, decoding_error, describe, map_aiohttp_error
from tether.transport._guard import DestinationGuard, GuardedResolver
from tether.transport._options import EngineOptions
from tether.transport._tls import make_ssl_context

__all__ = ["AiohttpTransport"]

_DEFAULT_TIMEOUTS: Final = Timeouts().as_extension()
#: Bytes bodies up to this size are handed to aiohttp whole: the socket buffer takes them at once.
#: Larger ones are sent in slices so that the write timeout can watch their progress.
_WHOLE_BODY: Final = 64 * 1024
_SLICE: Final = 64 * 1024
_HTTP_11: Final = b"HTTP/1.1"
_HEADER_DEFAULTS: Final = {
    b"accept": "Accept",
    b"accept-encoding": "Accept-Encoding",
    b"user-agent": "User-Agent",
}
_CONTENT_TYPE: Final = b"content-type"
_TRANSFER_ENCODING: Final = b"transfer-encoding"

_NETWORK_ERRORS: Final = (aiohttp.ClientError, OSError, asyncio.TimeoutError)


class AiohttpTransport(httpx2.AsyncBaseTransport):
    """HTTP/1.1 over a lazily created ``aiohttp.ClientSession``; errors are ``tether.errors``.

    ``AiohttpTransport()`` uses tether's defaults (``EngineOptions()``). Use it as the transport of
    a ``tether.Client`` (the default) or of an ``httpx2.AsyncClient``. Close it with ``aclose()``.
    """

    def __init__(self, options: EngineOptions | None = None) -> None:
        self._options = options = options if options is not None else EngineOptions()
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self._slots = asyncio.Semaphore(options.max_connections)
        self._per_host = options.max_connections_per_host
        self._host_slots: dict[tuple[str, str, int | None], asyncio.Semaphore] = {}
        self._client_timeouts: dict[tuple[float | None, float | None], aiohttp.ClientTimeout] = {}
        self._guard = DestinationGuard(options.guard_allow) if options.block_private else None
        self._max_size = options.max_response_size
        self._max_ratio = options.max_decompression_ratio

    @property
    def options(self) -> EngineOptions:
        return self._options

    # --- lifecycle ---------------------------------------------------------------------------

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("this AiohttpTransport is closed")
        options = self._options
        resolver = GuardedResolver(self._guard) if self._guard is not None else None
        # The pool bounds are enforced by this transport's slots (one per in-flight response), so
        # aiohttp's own limits are off: one source of truth, and the wait is the "pool" phase.
        connector = aiohttp.TCPConnector(
            limit=0,
            limit_per_host=0,
            keepalive_timeout=options.keepalive,
            ssl=make_ssl_context(options.verify, options.min_tls_version),
            resolver=resolver,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=options.trust_env,
            timeout=aiohttp.ClientTimeout(total=None),
            raise_for_status=False,
        )
        # aiohttp silently re-sends an idempotent request once when the connection drops before a
        # response. Retrying is the Retry policy's job (counted, budgeted, visible in events), so
        # turn it off: a reset reaches tether as one attempt and one ConnectionError.
        session._retry_connection = False
        self._session = session
        return session

    async def aclose(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # --- sending -----------------------------------------------------------------------------

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        session = self._session or self._open()
        timeouts: dict[str, float | None] = request.extensions.get("timeout") or _DEFAULT_TIMEOUTS
        url = request.url
        if self._guard is not None:
            try:
                self._guard.check_literal(url.host)
            except TetherError as exc:
                raise type(exc)(f"{exc.message} ({describe(request)})") from None

        host_slot = await self._acquire(request, timeouts.get("pool"))
        held = True  # this frame owns the pool slot until a stream takes it or it is released
        try:
            resp = await self._exchange(session, request, timeouts)
            try:
                status = resp.status
                no_body = has_no_body(request.method, status)
                plan = plan_body(resp.raw_headers, no_body=no_body)
                if is_streamed(request) and not no_body:
                    decoder = plan.decoder(None, self._max_ratio)
                    stream: httpx2.AsyncByteStream = _ResponseStream(self, resp, request, decoder, host_slot)
                    held = False
                else:
                    body = await self._read_whole(resp, request, plan, no_body)
                    resp.release()
                    held = False
                    self._release(host_slot)
                    stream = httpx2.ByteStream(body)
            except BaseException:
                resp.close()
                raise
        except BaseException:
            if held:
                self._release(host_slot)
            raise
        version = resp.version
        extensions: dict[str, Any] = {
            "http_version": _HTTP_11
            if version is None or version == aiohttp.HttpVersion11
            else _version_bytes(version),
            "reason_phrase": (resp.reason or "").encode("ascii", "replace"),
        }
        return httpx2.Response(
            status, headers=plan.headers, stream=stream, extensions=plan.extensions(extensions)
        )

    async def _exchange(
        self, session: aiohttp.ClientSession, request: httpx2.Request, timeouts: dict[str, float | None]
    ) -> aiohttp.ClientResponse:
        """Send the request; return once the response head has arrived."""
        url = request.url
        target = URL(str(url if not url.userinfo else url.copy_with(userinfo=None)), encoded=True)
        data, has_body = _request_body(request)
        headers, skip = _request_headers(request, has_body)
        watch: _WriteWatch | None = None
        write_timeout = timeouts.get("write")
        if write_timeout is not None and data is not None:
            if not isinstance(data, bytes):
                watch = _WriteWatch(write_timeout)
                data = _watched(data, watch)
            elif len(data) > _WHOLE_BODY:
                watch = _WriteWatch(write_timeout)
                data = _watched(_slices(data), watch)
        try:
            return await session.request(
                request.method,
                target,
                headers=headers,
                data=data,
                skip_auto_headers=skip,
                allow_redirects=False,
                timeout=self._client_timeout(timeouts),
            )
        except asyncio.CancelledError:
            if watch is not None and watch.fired:
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                raise map_aiohttp_error(
                    builtins.TimeoutError(), request, stage="send", body_pending=True
                ) from None
            raise
        except _NETWORK_ERRORS as exc:
            pending = watch is not None and watch.started and not watch.done
            raise map_aiohttp_error(exc, request, stage="send", body_pending=pending) from backend_cause(exc)
        except BlockedDestinationError as exc:  # raised by the guard's resolver
            raise BlockedDestinationError(f"{exc.message} ({describe(request)})") from None
        finally:
            if watch is not None:
                watch.stop()

    async def _read_whole(
        self, resp: aiohttp.ClientResponse, request: httpx2.Request, plan: BodyPlan, no_body: bool
    ) -> bytes:
        if no_body:
            return b""
        limit = self._max_size
        length = plan.content_length
        if limit is not None and length is not None and length > limit:
            raise body_too_large(request, limit, declared=length)
        try:
            if plan.codings is None and length is not None:
                return await resp.read()  # the parser enforces the declared length
            collector = BodyCollector(request, limit, plan.decoder(limit, self._max_ratio))
            content = resp.content
            while chunk := await content.readany():
                collector.add(chunk)
        except _NETWORK_ERRORS as exc:
            raise map_aiohttp_error(exc, request, stage="body") from backend_cause(exc)
        return collector.result()

    # --- pool slots and timeouts -------------------------------------------------------------

    async def _acquire(self, request: httpx2.Request, pool_timeout: float | None) -> asyncio.Semaphore | None:
        """Take a slot in the pool (and in the host's pool): the wait is the ``pool`` phase."""
        host_slot: asyncio.Semaphore | None = None
        if self._per_host:
            url = request.url
            key = (url.scheme, url.host, url.port)
            host_slot = self._host_slots.get(key)
            if host_slot is None:
                host_slot = self._host_slots[key] = asyncio.Semaphore(self._per_host)
        slots = self._slots
        if not slots.locked() and (host_slot is None or not host_slot.locked()):
            await slots.acquire()
            if host_slot is not None:
                await host_slot.acquire()
            return host_slot
        try:
            async with asyncio.timeout(pool_timeout):
                if host_slot is not None:
                    await host_slot.acquire()
                try:
                    await slots.acquire()
                except BaseException:
                    if host_slot is not None:
                        host_slot.release()
                    raise
        except builtins.TimeoutError:
            raise TimeoutError(
                f"pool timeout waiting for a free connection to {describe(request)}", phase="pool"
            ) from None
        return host_slot

    def _release(self, host_slot: asyncio.Semaphore | None) -> None:
        self._slots.release()
        if host_slot is not None:
            host_slot.release()

    def _client_timeout(self, timeouts: dict[str, float | None]) -> aiohttp.ClientTimeout:
        key = (timeouts.get("connect"), timeouts.get("read"))
        found = self._client_timeouts.get(key)
        if found is None:
            # ``connect`` covers DNS, TCP and TLS (the pool wait is ours, above); ``sock_read``
            # bounds the wait for the response head and each body read.
            found = aiohttp.ClientTimeout(total=None, connect=key[0], sock_connect=None, sock_read=key[1])
            if len(self._client_timeouts) < 64:
                self._client_timeouts[key] = found
        return found


class _ResponseStream(httpx2.AsyncByteStream):
    """A streamed aiohttp body: decoded on the fly; the connection goes back when read or closed."""

    __slots__ = ("_decoder", "_host_slot", "_request", "_resp", "_transport")

    def __init__(
        self,
        transport: AiohttpTransport,
        resp: aiohttp.ClientResponse,
        request: httpx2.Request,
        decoder: ContentDecoder | None,
        host_slot: asyncio.Semaphore | None,
    ) -> None:
        self._transport: AiohttpTransport | None = transport
        self._resp = resp
        self._request = request
        self._decoder = decoder
        self._host_slot = host_slot

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._resp.content
        decoder = self._decoder
        try:
            while True:
                try:
                    chunk = await content.readany()
                except _NETWORK_ERRORS as exc:
                    raise map_aiohttp_error(exc, self._request, stage="body") from backend_cause(exc)
                if not chunk:
                    break
                if decoder is None:
                    yield chunk
                    continue
                for piece in decoder.decode(chunk):
                    yield piece
            if decoder is not None:
                for piece in decoder.flush():
                    yield piece
        except DecodingFailed as exc:
            self._finish(reuse=False)
            raise decoding_error(self._request, exc) from backend_cause(exc)
        except TetherError:
            self._finish(reuse=False)
            raise
        self._finish(reuse=True)

    async def aclose(self) -> None:
        self._finish(reuse=False)

    def _finish(self, *, reuse: bool) -> None:
        transport, self._transport = self._transport, None
        if transport is None:
            return
        if reuse or self._resp.content.is_eof():
            self._resp.release()
        else:
            # An unread body cannot be skipped on HTTP/1.1: close rather than drain.
            self._resp.close()
        transport._release(self._host_slot)

    def __del__(self) -> None:
        # A response dropped without aclose() must not keep its pool slot forever. Only the slot
        # is given back here: aiohttp's own response finaliser closes the connection.
        transport, self._transport = self._transport, None
        if transport is not None:
            transport._release(self._host_slot)


class _WriteWatch:
    """Bounds each step of sending a request body: re-armed whenever aiohttp takes the next chunk."""

    __slots__ = ("_handle", "_loop", "_task", "_timeout", "done", "fired", "started")

    def __init__(self, timeout: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._timeout = timeout
        self._handle: asyncio.TimerHandle | None = None
        self.started = False
        self.done = False
        self.fired = False

    def arm(self) -> None:
        if self.done:
            return
        self.started = True
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._loop.call_later(self._timeout, self._fire)

    def stop(self) -> None:
        self.done = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        if not self.done and self._task is not None:
            self.fired = True
            self._task.cancel()


def _version_bytes(version: aiohttp.HttpVersion) -> bytes:
    return f"HTTP/{version.major}.{version.minor}".encode()


async def _watched(source: AsyncIterable[bytes], watch: _WriteWatch) -> AsyncIterator[bytes]:
    watch.arm()
    async for chunk in source:
        yield chunk
        watch.arm()  # aiohttp asks for the next chunk once the previous one is written
    watch.stop()


async def _slices(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), _SLICE):
        yield body[start : start + _SLICE]


def _request_body(request: httpx2.Request) -> tuple[bytes | AsyncIterable[bytes] | None, bool]:
    """The body for aiohttp: bytes when httpx2 holds it in memory, else the stream itself."""
    stream = request.stream
    if isinstance(stream, httpx2.ByteStream):
        try:
            content = request.content
        except httpx2.RequestNotRead:
            content = b"".join(stream)
        return (content or None), bool(content)
    if isinstance(stream, httpx2.AsyncByteStream):
        return stream, True
    raise TypeError("tether's aiohttp engine needs an async request body (got a sync stream)")


def _request_headers(
    request: httpx2.Request, has_body: bool
) -> tuple[list[tuple[str, str]], Sequence[str] | None]:
    """httpx2's headers for aiohttp, in order, and the aiohttp defaults to leave out."""
    headers = request.headers
    encoding = headers.encoding
    out: list[tuple[str, str]] = []
    present: set[bytes] = set()
    for name, value in headers.raw:
        lowered = name.lower()
        if lowered == _TRANSFER_ENCODING:
            continue  # aiohttp frames the body itself
        if lowered in _HEADER_DEFAULTS or lowered == _CONTENT_TYPE:
            present.add(lowered)
        out.append((name.decode(encoding), value.decode(encoding)))
    if len(present) == 4 or (len(present) == 3 and not has_body and _CONTENT_TYPE not in present):
        return out, None
    # Don't let aiohttp add headers httpx2 did not send (its User-Agent, Accept-Encoding, or a
    # Content-Type of application/octet-stream for a body without one).
    skip = [header for key, header in _HEADER_DEFAULTS.items() if key not in present]
    if has_body and _CONTENT_TYPE not in present:
        skip.append("Content-Type")
    return out, skip or None
