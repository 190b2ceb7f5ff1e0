"""The policy contract and the fold that stacks policies around the transport.

A *policy* is a small object with ``async def __call__(request, next)``: it may act before
calling ``next``, after it, instead of it, or several times (retry). Policies are built from
frozen *options* (``tether.Retry(...)``) by ``build(env)``, so one options object can serve many
clients; runtime state lives in the built policy or in the state store, never in the options.

The order is fixed (``ORDER``) and does not depend on the order the user lists them in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Final, Protocol, runtime_checkable

import httpx2

from tether._clock import Clock, system_clock
from tether.events import EventBus

if TYPE_CHECKING:
    from tether.state import StateStore

__all__ = ["ORDER", "Handler", "Pipeline", "Policy", "PolicyEnv", "PolicyOptions"]

Handler = Callable[[httpx2.Request], Awaitable[httpx2.Response]]

#: Outermost first. See docs/guides/call-flow.md for why each sits where it does.
ORDER: Final[tuple[str, ...]] = (
    "trace",  # the call's span covers everything, rejections included
    "rights",  # refuse before anything else: no cache, no network
    "budget",  # cost / bandwidth checks before spending anything
    "fallback",  # catches what everything below it raises
    "cache",  # a fresh hit skips the whole stack below; stale-on-error lives here
    "deadline",  # total deadline: covers queueing, backoff and every attempt below
    "retry",  # repeats everything below it
    "breaker",  # sees every attempt; open -> fail fast without a token or a slot
    "rate",  # every attempt (retries too) spends a token
    "bulkhead",  # concurrency slot, held only while the attempt is in flight
    "auth",  # signs each attempt (fresh token per attempt); 401 -> refresh once and replay
    "attempt_timeout",  # bounds one attempt: send and read the body
)


@runtime_checkable
class Policy(Protocol):
    """One box of the pipeline."""

    async def __call__(self, request: httpx2.Request, next: Handler) -> httpx2.Response: ...


@dataclass(frozen=True, slots=True)
class PolicyEnv:
    """What a policy gets when it is built: who it serves, the time, the events, the state."""

    service: str
    clock: Clock = system_clock
    events: EventBus = field(default_factory=EventBus)
    store: StateStore | None = None
    #: The client's base URL: the origin credentials may be sent to (``None``: not known).
    base_url: str | None = None


@runtime_checkable
class PolicyOptions(Protocol):
    """Frozen configuration that builds a runtime policy. ``kind`` is its slot in ``ORDER``."""

    kind: ClassVar[str]

    def build(self, env: PolicyEnv) -> Policy: ...


def _sort_key(kind: str) -> int:
    try:
        return ORDER.index(kind)
    except ValueError:
        raise ValueError(f"unknown policy kind {kind!r}; known kinds: {', '.join(ORDER)}") from None


class Pipeline:
    """Policies folded around a terminal handler, in ``ORDER``."""

    __slots__ = ("_entries", "_handler")

    def __init__(self, entries: Iterable[tuple[str, Policy]], terminal: Handler) -> None:
        ordered = sorted(entries, key=lambda e: _sort_key(e[0]))
        kinds = [k for k, _ in ordered]
        dupes = {k for k in kinds if kinds.count(k) > 1}
        if dupes:
            raise ValueError(f"a pipeline takes one policy of each kind; got several of {sorted(dupes)}")
        self._entries: tuple[tuple[str, Policy], ...] = tuple(ordered)
        handler = terminal
        for _, policy in reversed(self._entries):
            handler = _bind(policy, handler)
        self._handler = handler

    @classmethod
    def build(cls, options: Sequence[PolicyOptions], env: PolicyEnv, terminal: Handler) -> Pipeline:
        return cls(((o.kind, o.build(env)) for o in options), terminal)

    async def __call__(self, request: httpx2.Request) -> httpx2.Response:
        return await self._handler(request)

    def describe(self) -> list[str]:
        """The policy kinds in the order a request passes them, outermost first."""
        return [kind for kind, _ in self._entries]

    def policies(self) -> list[Any]:
        """The runtime policies, outermost first."""
        return [p for _, p in self._entries]

    def policy(self, kind: str) -> Any:
        """The runtime policy of ``kind`` (for ``status()``), or ``None``."""
        for k, p in self._entries:
            if k == kind:
                return p
        return None


def _bind(policy: Policy, next_handler: Handler) -> Handler:
    async def handler(request: httpx2.Request) -> httpx2.Response:
        return await policy(request, next_handler)

    return handler
