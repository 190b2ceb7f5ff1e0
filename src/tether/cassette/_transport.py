"""``CassetteTransport``: record and replay at the transport, under the whole pipeline.

The client's engine is wrapped, so everything above it (retries, breaker, limiter, cache, auth,
error mapping, validation, pagination) runs on replay exactly as it ran live: a recorded 503 is
retried, a recorded 429 pauses the limiter. A replayed request never creates the engine, so no
socket is opened. Each hop of a redirect is its own exchange. Streamed responses are recorded as
they are read, and recorded when the stream ends or closes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import httpx2

from tether import errors
from tether.cassette._cassette import Cassette
from tether.cassette._format import Body, CassetteRequest, CassetteResponse, Failure, Interaction
from tether.cassette._scrub import Scrubber
from tether.errors import CassetteError, TetherError
from tether.transport._body import has_no_body, is_streamed

__all__ = ["CASSETTE_KEY", "CassetteTransport", "scrub_request"]

#: ``response.extensions`` key of a replayed response: ``"file:line"`` of its recording.
CASSETTE_KEY: Final = "tether.cassette"
#: Headers about the connection or the framing, not the exchange: not kept (replay sets its own).
_FRAMING: Final = frozenset(
    {"host", "content-length", "transfer-encoding", "content-encoding", "connection", "keep-alive"}
)


def _kept(raw: list[tuple[bytes, bytes]], scrubber: Scrubber) -> tuple[tuple[str, str], ...]:
    pairs = ((_text(k), _text(v)) for k, v in raw)
    return tuple(scrubber.headers((k, v) for k, v in pairs if k.lower() not in _FRAMING))


def _text(raw: bytes) -> str:
    return raw.decode("latin-1")


def _relative(url: str, base: str | None) -> str:
    if base and url.startswith(base):
        return url[len(base) :]
    return url


def _scrub_body(body: Body, scrubber: Scrubber) -> Body:
    if body.kind == "json":
        return Body("json", scrubber.json(body.value))
    if body.kind == "text":
        return Body("text", scrubber.text(str(body.value)))
    if body.kind == "base64":
        return Body("base64", scrubber.bytes(bytes(body.value)))
    return body


def _request_body(content: bytes, content_type: str | None, scrubber: Scrubber) -> Body:
    body = Body.of(content, content_type)
    if body.kind == "text" and content_type and "x-www-form-urlencoded" in content_type.lower():
        return Body("text", scrubber.form(str(body.value)))
    return _scrub_body(body, scrubber)


def scrub_request(
    request: httpx2.Request, content: bytes, scrubber: Scrubber, bases: tuple[str | None, ...]
) -> CassetteRequest:
    """The scrubbed form of ``request`` as a cassette stores it (URL relative to the first of
    ``bases`` it is under)."""
    headers = _kept(request.headers.raw, scrubber)  # first: credential headers are learned
    body = _request_body(content, request.headers.get("content-type"), scrubber)
    url = scrubber.url(str(request.url))
    for base in bases:
        relative = _relative(url, scrubber.url(base) if base else None)
        if relative != url:
            url = relative
            break
    return CassetteRequest(method=request.method.upper(), url=url, headers=headers, body=body)


def _failure(exc: TetherError) -> Failure:
    return Failure(
        type=type(exc).__name__,
        message=exc.message,
        phase=getattr(exc, "phase", None),
        reason=getattr(exc, "reason", None),
    )


def _raise(failure: Failure, where: str) -> TetherError:
    cls = getattr(errors, failure.type, None)
    if not (isinstance(cls, type) and issubclass(cls, TetherError)):
        return CassetteError(f"{where}: recorded error type {failure.type!r} is not a tether.errors class")
    kwargs: dict[str, Any] = {}
    if failure.phase is not None and issubclass(cls, errors.TimeoutError):
        kwargs["phase"] = failure.phase
    if failure.reason is not None and issubclass(cls, errors.ResponseError):
        kwargs["reason"] = failure.reason
    return cls(failure.message, **kwargs)


class _ReplayStream(httpx2.AsyncByteStream):
    """A recorded body, then the recorded failure of a stream that broke off."""

    def __init__(self, body: bytes, failure: TetherError | None) -> None:
        self._body = body
        self._failure = failure

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._body:
            yield self._body
        if self._failure is not None:
            raise self._failure


class _RecordingStream(httpx2.AsyncByteStream):
    """Passes a live stream through and hands what was read to ``finish`` once it ends."""

    def __init__(
        self, inner: httpx2.AsyncByteStream, finish: Callable[[bytes, TetherError | None], None]
    ) -> None:
        self._inner = inner
        self._finish = finish
        self._chunks: list[bytes] = []
        self._done = False

    def _end(self, failure: TetherError | None) -> None:
        if not self._done:
            self._done = True
            self._finish(b"".join(self._chunks), failure)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                self._chunks.append(chunk)
                yield chunk
        except TetherError as exc:
            self._end(exc)
            raise
        self._end(None)

    async def aclose(self) -> None:
        self._end(None)
        await self._inner.aclose()


class CassetteTransport(httpx2.AsyncBaseTransport):
    """Answers from ``cassette``; sends what it cannot answer through the engine ``connect()``
    makes (or ``inner``), when the cassette records. ``aclose()`` saves the cassette and closes an
    engine it made."""

    def __init__(
        self,
        cassette: Cassette,
        *,
        connect: Callable[[], httpx2.AsyncBaseTransport],
        inner: httpx2.AsyncBaseTransport | None = None,
        base_url: str | None = None,
        service: str | None = None,
    ) -> None:
        self.cassette = cassette
        self._connect = connect
        self._inner = inner
        self._owns_inner = inner is None
        self._base_url = base_url
        self._service = service

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        cassette = self.cassette
        content = await request.aread()
        live = scrub_request(request, content, cassette.scrubber, (self._base_url, cassette.base_url))
        hook = cassette.before_record
        edited = hook(Interaction(live)) if hook is not None else None
        probe = edited.request if edited is not None else live
        found = cassette.play(probe) if hook is None or edited is not None else None
        if found is not None:
            return self._replay(request, *found)
        if not cassette.recording:
            raise cassette.no_match(probe)
        return await self._record(request, live)

    # --- replay ---------------------------------------------------------------------------------

    def _replay(self, request: httpx2.Request, index: int, interaction: Interaction) -> httpx2.Response:
        where = f"{self.cassette.path}:{interaction.line}" if interaction.line else str(self.cassette.path)
        recorded = interaction.response
        failure = _raise(interaction.error, where) if interaction.error is not None else None
        if recorded is None:
            assert failure is not None  # the loader refuses an interaction with neither
            raise failure
        body = recorded.body.to_bytes()
        headers = [(k, v) for k, v in recorded.headers if k.lower() not in _FRAMING]
        if not has_no_body(request.method, recorded.status):
            headers.append(("Content-Length", str(len(body))))
        extensions: dict[str, Any] = {
            "http_version": b"HTTP/1.1",
            "reason_phrase": (recorded.reason or "").encode("ascii", "replace"),
            CASSETTE_KEY: where,
        }
        if failure is not None and not is_streamed(request):
            raise failure
        stream: httpx2.AsyncByteStream = (
            _ReplayStream(body, failure) if failure is not None else httpx2.ByteStream(body)
        )
        return httpx2.Response(recorded.status, headers=headers, stream=stream, extensions=extensions)

    # --- record ---------------------------------------------------------------------------------

    def _keep(self, interaction: Interaction) -> None:
        cassette = self.cassette
        hook = cassette.before_record
        if hook is not None:
            edited = hook(interaction)
            if edited is None:
                return
            interaction = edited
        cassette.add(interaction)

    async def _record(self, request: httpx2.Request, live: CassetteRequest) -> httpx2.Response:
        cassette = self.cassette
        cassette.set_origin(service=self._service, base_url=self._base_url)
        if cassette.base_url != self._base_url:  # the file's base: store URLs relative to it
            live = scrub_request(request, request.content, cassette.scrubber, (cassette.base_url,))
        inner = self._inner
        if inner is None:
            inner = self._inner = self._connect()
        try:
            response = await inner.handle_async_request(request)
        except TetherError as exc:
            self._keep(Interaction(live, error=_failure(exc)))
            raise
        scrubber = cassette.scrubber
        headers = _kept(response.headers.raw, scrubber)
        content_type = response.headers.get("content-type")
        reason = response.extensions.get("reason_phrase")
        reason_text = reason.decode("ascii", "replace") if isinstance(reason, bytes) and reason else None

        def interaction(data: bytes, failure: TetherError | None) -> Interaction:
            body = _scrub_body(Body.of(data, content_type), scrubber)
            answer = CassetteResponse(response.status_code, headers, body, reason_text)
            return Interaction(live, answer, _failure(failure) if failure is not None else None)

        if not is_streamed(request) or has_no_body(request.method, response.status_code):
            try:
                data = await response.aread()
            except TetherError as exc:
                self._keep(Interaction(live, error=_failure(exc)))
                raise
            self._keep(interaction(data, None))
            return response
        stream = response.stream
        assert isinstance(stream, httpx2.AsyncByteStream)  # an async transport's response
        return httpx2.Response(
            response.status_code,
            headers=response.headers.raw,
            stream=_RecordingStream(stream, lambda d, f: self._keep(interaction(d, f))),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        inner, self._inner = self._inner, None
        try:
            self.cassette.save()
        finally:
            if inner is not None and self._owns_inner:
                await inner.aclose()
