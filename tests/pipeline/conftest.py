"""Helpers for policy tests: virtual time, recorded events, requests with a context, scripted upstreams.

Fixtures (all function-scoped):

- ``clock``: a ``tether.testing.VirtualClock`` (starts at monotonic 0, epoch 1_800_000_000).
- ``recorder``: an ``EventRecorder`` listening on ``env.events``.
- ``store``: a fresh ``MemoryStore``.
- ``env``: ``PolicyEnv(service="svc", clock=clock, events=<bus with recorder>, store=store)``.
- ``make_request``: ``make_request(method="GET", url=..., *, json=, content=, headers=, timeouts=,
  deadline=, idempotent=, idempotency_key=, endpoint=, stream=)`` → an ``httpx2.Request`` with a
  ``CallContext`` in ``request.extensions["tether"]`` (read it back with ``context_of``).
- ``script``: ``script(*steps, repeat_last=True)`` → a ``Scripted`` handler to pass as ``next``
  (or as a ``Pipeline`` terminal). Each call consumes one step:

  - an ``int`` status: a response with that status; ``>= 400`` raises the typed error exactly as
    ``tether.Client``'s terminal does (``error_for_status``: ``.response``, ``.status_code``);
  - ``Reply(status, headers=, json=, delay=)``: the same with headers / body, after ``delay``
    seconds of clock time;
  - an exception instance: raised (e.g. ``tether.errors.ConnectionError("reset")``);
  - ``HANG``: never answers (until cancelled), for timeout tests;
  - any ``async def step(request) -> httpx2.Response``: called.

  With ``repeat_last=True`` the last step answers every further call. The handler records
  ``requests`` (what it received), ``attempts`` (``ctx.attempt`` of each), ``times`` (clock
  monotonic at each call) and ``calls`` (how many).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import httpx2
import pytest

from tether._config import Timeouts
from tether._context import CONTEXT_KEY, CallContext, context_of
from tether.errors import error_for_status
from tether.events import EventBus, EventRecorder
from tether.pipeline._base import PolicyEnv
from tether.state.memory import MemoryStore
from tether.testing import VirtualClock

SERVICE: Final = "svc"
BASE_URL: Final = "https://api.test/v1/"


@dataclass(frozen=True)
class Reply:
    """One scripted answer: status, headers, JSON body, and a clock delay before answering."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    delay: float = 0.0


class _Hang:
    def __repr__(self) -> str:
        return "HANG"


#: A step that never answers (the call waits until it is cancelled).
HANG: Final = _Hang()

Step = int | Reply | BaseException | _Hang | Callable[[httpx2.Request], Awaitable[httpx2.Response]]


class Scripted:
    """A fake ``next`` handler that answers from a script (see the module docstring)."""

    def __init__(self, steps: tuple[Step, ...], clock: VirtualClock, *, repeat_last: bool = True) -> None:
        if not steps:
            raise ValueError("a script needs at least one step")
        self._steps = list(steps)
        self._clock = clock
        self._repeat_last = repeat_last
        self.requests: list[httpx2.Request] = []
        self.attempts: list[int] = []
        self.times: list[float] = []
        self.in_flight = 0
        self.max_in_flight = 0

    @property
    def calls(self) -> int:
        return len(self.requests)

    def _next_step(self) -> Step:
        index = len(self.requests) - 1
        if index < len(self._steps):
            return self._steps[index]
        if self._repeat_last:
            return self._steps[-1]
        raise AssertionError(f"the script has {len(self._steps)} steps; call {index + 1} was not expected")

    async def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        self.attempts.append(context_of(request).attempt)
        self.times.append(self._clock.monotonic())
        step = self._next_step()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(request, step)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: httpx2.Request, step: Step) -> httpx2.Response:
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, _Hang):
            await asyncio.Event().wait()
            raise AssertionError("unreachable")
        if isinstance(step, int):
            step = Reply(step)
        if isinstance(step, Reply):
            if step.delay:
                await self._clock.sleep(step.delay)
            response = httpx2.Response(
                step.status, headers=dict(step.headers), json=step.json, request=request
            )
            await response.aread()
            if response.status_code >= 400:
                ctx = context_of(request)
                raise error_for_status(
                    response, service=ctx.service, endpoint=ctx.endpoint, request_id=ctx.request_id
                )
            return response
        return await step(request)


def _make_request(
    method: str = "GET",
    url: str = "items/1",
    *,
    json: Any = None,
    content: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeouts: Timeouts | None = None,
    deadline: float | None = None,
    idempotent: bool | None = None,
    idempotency_key: str | None = None,
    endpoint: str | None = None,
    stream: bool = False,
) -> httpx2.Request:
    timeouts = timeouts or Timeouts()
    ctx = CallContext(
        service=SERVICE,
        timeouts=timeouts,
        endpoint=endpoint,
        deadline=deadline,
        idempotent=idempotent,
        idempotency_key=idempotency_key,
        stream=stream,
    )
    return httpx2.Request(
        method,
        httpx2.URL(BASE_URL).join(url),
        headers=headers,
        json=json,
        content=content,
        extensions={CONTEXT_KEY: ctx, "timeout": timeouts.as_extension()},
    )


@pytest.fixture
def clock() -> VirtualClock:
    """A virtual clock: sleeps return at once in real time, in order in virtual time."""
    return VirtualClock()


@pytest.fixture
def recorder() -> EventRecorder:
    """Every event the policies under test emit."""
    return EventRecorder()


@pytest.fixture
def store() -> MemoryStore:
    """A fresh in-memory state store."""
    return MemoryStore()


@pytest.fixture
def env(clock: VirtualClock, recorder: EventRecorder, store: MemoryStore) -> PolicyEnv:
    """The environment policies are built with: virtual clock, recorded events, memory store."""
    return PolicyEnv(service=SERVICE, clock=clock, events=EventBus([recorder], service=SERVICE), store=store)


@pytest.fixture
def make_request() -> Callable[..., httpx2.Request]:
    """Build an ``httpx2.Request`` carrying a ``CallContext`` (see the module docstring)."""
    return _make_request


@pytest.fixture
def script(clock: VirtualClock) -> Callable[..., Scripted]:
    """Make a scripted upstream handler on the test's clock (see the module docstring)."""

    def make(*steps: Step, repeat_last: bool = True) -> Scripted:
        return Scripted(steps, clock, repeat_last=repeat_last)

    return make


@pytest.fixture
def reply() -> type[Reply]:
    """The ``Reply`` step class (status, headers, json, delay)."""
    return Reply


@pytest.fixture
def hang() -> _Hang:
    """The ``HANG`` step: an upstream that never answers."""
    return HANG
