"""``on_state_error``: what a shared state store does when its backend fails.

``FallbackStore`` wraps a shared store (Redis, SQLite). Every operation goes to the shared store;
when it raises ``StateStoreError``:

- ``on_state_error="fail"``: the error is raised (the call fails, nothing is decided locally);
- ``on_state_error="local"`` (default): the operation runs on an in-process ``MemoryStore``
  instead, and so does every later one, while the shared store is retried every ``retry_every``
  seconds (by one operation at a time: the others keep going locally). The first operation that
  succeeds on the shared store switches back.

Each switch emits one event, ``state.local`` (WARNING) or ``state.shared`` (INFO), with the number
of switches so far (``switches``: what a metrics listener counts) and, for ``state.local``, the
error. The logging listener turns each into one log line; without listeners the events go to the
``tether.state`` logger, so a switch is never silent.

What local state means while the shared store is away: each process limits, breaks and caches on
its own (a shared limit of 20/s becomes 20/s *per process*), and state learned locally is not
copied back. Breaker permits are recorded by the store that issued them, so a permit handed out
by one store never decides a probe of the other.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Literal, TypeVar

from tether import events as ev
from tether._clock import Clock, system_clock
from tether.errors import StateStoreError
from tether.events import Event, EventBus
from tether.state._protocol import (
    BreakerConfig,
    BreakerOutcome,
    BreakerPermit,
    BreakerSnapshot,
    BreakerUpdate,
    RateGrant,
    RateSnapshot,
    RateWindow,
    StateStore,
)
from tether.state.memory import MemoryStore

__all__ = ["FallbackStore", "OnStateError"]

OnStateError = Literal["local", "fail"]
T = TypeVar("T")

_LOG = logging.getLogger("tether.state")
#: Local breaker permits remembered so their outcomes go back to the local store.
_MAX_LOCAL_PERMITS: Final = 10_000


def _log_event(event: Event) -> None:
    fields = " ".join(f"{k}={v}" for k, v in event.fields.items())
    _LOG.log(event.level, "%s %s", event.name, fields)


class FallbackStore:
    """A shared store that keeps working on local state while it fails (``on_state_error``).

    ``events``: where the ``state.local`` / ``state.shared`` events go (default: the
    ``tether.state`` logger); a client may add its bus with ``bind_events``. ``clock``: its
    ``monotonic()`` schedules the retries. ``local``: the store used meanwhile (a fresh
    ``MemoryStore`` by default).
    """

    DEFAULT_RETRY_EVERY: Final = 2.0

    def __init__(
        self,
        shared: StateStore,
        *,
        on_state_error: OnStateError = "local",
        retry_every: float = DEFAULT_RETRY_EVERY,
        events: EventBus | None = None,
        clock: Clock | None = None,
        local: StateStore | None = None,
    ) -> None:
        if on_state_error not in ("local", "fail"):
            raise ValueError(f"on_state_error must be 'local' or 'fail', got {on_state_error!r}")
        if not retry_every > 0:
            raise ValueError(f"retry_every must be positive seconds, got {retry_every!r}")
        self.shared = shared
        self.local: StateStore = local if local is not None else MemoryStore()
        self.on_state_error: OnStateError = on_state_error
        self.retry_every = float(retry_every)
        self._buses: tuple[EventBus, ...] = (events,) if events is not None else ()
        self._clock = clock or system_clock
        self._local_since: float | None = None
        self._next_try = 0.0
        self._probing = False
        self._local_permits: OrderedDict[int, BreakerPermit] = OrderedDict()
        #: Switches to local state and back so far.
        self.switches = 0
        #: Operations that ran on local state because the shared store failed or was away.
        self.local_operations = 0
        self.last_error: str | None = None

    def __repr__(self) -> str:
        return f"FallbackStore({self.shared!r}, on_state_error={self.on_state_error!r}, mode={self.mode!r})"

    @property
    def mode(self) -> Literal["shared", "local"]:
        """``local`` while operations run on the in-process store."""
        return "shared" if self._local_since is None else "local"

    def bind_events(self, events: EventBus) -> None:
        """Also send the switch events to ``events`` (a client's bus)."""
        if all(bus is not events for bus in self._buses):
            self._buses = (*self._buses, events)

    # --- switching -----------------------------------------------------------------------------

    def _emit(self, name: str, level: int, **fields: Any) -> None:
        if not any(bus.active for bus in self._buses):
            _log_event(Event.make(name, level=level, **fields))
            return
        for bus in self._buses:
            bus.emit(name, level=level, **fields)

    def _to_local(self, exc: StateStoreError, op: str) -> None:
        self.last_error = str(exc)
        self._next_try = self._clock.monotonic() + self.retry_every
        if self._local_since is not None:
            return
        self._local_since = self._clock.monotonic()
        self.switches += 1
        self._emit(
            ev.STATE_LOCAL,
            logging.WARNING,
            store=repr(self.shared),
            operation=op,
            error=str(exc),
            retry_every=self.retry_every,
            switches=self.switches,
        )

    def _to_shared(self, op: str) -> None:
        since = self._local_since
        if since is None:
            return
        self._local_since = None
        self.switches += 1
        self._emit(
            ev.STATE_SHARED,
            logging.INFO,
            store=repr(self.shared),
            operation=op,
            local_seconds=round(self._clock.monotonic() - since, 3),
            local_operations=self.local_operations,
            switches=self.switches,
        )

    def _try_shared(self) -> bool:
        """Whether this operation goes to the shared store (always, unless it is away and not due)."""
        if self._local_since is None:
            return True
        if self._probing or self._clock.monotonic() < self._next_try:
            return False
        self._probing = True
        return True

    async def _run(self, op: str, call: Callable[[StateStore], Awaitable[T]]) -> T:
        if self._try_shared():
            probing = self._local_since is not None
            try:
                result = await call(self.shared)
            except StateStoreError as exc:
                if self.on_state_error == "fail":
                    raise
                self._to_local(exc, op)
            else:
                self._to_shared(op)
                return result
            finally:
                if probing:
                    self._probing = False
        self.local_operations += 1
        return await call(self.local)

    # --- counters and values -------------------------------------------------------------------

    async def incr(self, key: str, amount: float = 1.0, *, ttl: float | None = None, now: float) -> float:
        return await self._run("incr", lambda s: s.incr(key, amount, ttl=ttl, now=now))

    async def get_counter(self, key: str, *, now: float) -> float:
        return await self._run("get_counter", lambda s: s.get_counter(key, now=now))

    async def get(self, key: str, *, now: float) -> bytes | None:
        return await self._run("get", lambda s: s.get(key, now=now))

    async def set(self, key: str, value: bytes, *, ttl: float | None = None, now: float) -> None:
        await self._run("set", lambda s: s.set(key, value, ttl=ttl, now=now))

    async def delete(self, key: str) -> None:
        await self.local.delete(key)
        await self._run("delete", lambda s: s.delete(key))

    # --- locks ---------------------------------------------------------------------------------

    async def try_lock(self, key: str, owner: str, *, ttl: float, now: float) -> bool:
        return await self._run("try_lock", lambda s: s.try_lock(key, owner, ttl=ttl, now=now))

    async def unlock(self, key: str, owner: str) -> None:
        await self.local.unlock(key, owner)  # a lock taken while local; owner-checked
        await self._run("unlock", lambda s: s.unlock(key, owner))

    # --- rate limiter --------------------------------------------------------------------------

    async def rate_acquire(
        self,
        key: str,
        windows: Sequence[RateWindow],
        *,
        now: float,
        cost: int = 1,
        max_wait: float | None = None,
        max_queue: int | None = None,
    ) -> RateGrant:
        return await self._run(
            "rate_acquire",
            lambda s: s.rate_acquire(
                key, windows, now=now, cost=cost, max_wait=max_wait, max_queue=max_queue
            ),
        )

    async def rate_pause(self, key: str, until: float, *, now: float) -> float:
        return await self._run("rate_pause", lambda s: s.rate_pause(key, until, now=now))

    async def rate_status(self, key: str, windows: Sequence[RateWindow], *, now: float) -> RateSnapshot:
        return await self._run("rate_status", lambda s: s.rate_status(key, windows, now=now))

    # --- circuit breaker -----------------------------------------------------------------------

    async def breaker_acquire(self, key: str, config: BreakerConfig, *, now: float) -> BreakerPermit:
        used: list[StateStore] = []

        def acquire(store: StateStore) -> Awaitable[BreakerPermit]:
            used.append(store)
            return store.breaker_acquire(key, config, now=now)

        permit = await self._run("breaker_acquire", acquire)
        if permit.granted and used[-1] is self.local:
            self._local_permits[id(permit)] = permit
            while len(self._local_permits) > _MAX_LOCAL_PERMITS:
                self._local_permits.popitem(last=False)  # never recorded: forget the oldest
        return permit

    async def breaker_record(
        self,
        key: str,
        permit: BreakerPermit,
        outcome: BreakerOutcome,
        config: BreakerConfig,
        *,
        now: float,
    ) -> BreakerUpdate:
        if self._local_permits.pop(id(permit), None) is permit:
            return await self.local.breaker_record(key, permit, outcome, config, now=now)

        async def record(store: StateStore) -> BreakerUpdate:
            if store is self.shared:
                return await store.breaker_record(key, permit, outcome, config, now=now)
            # Issued by the shared store, which is away: its permit means nothing locally.
            return BreakerUpdate((), await store.breaker_status(key, config, now=now))

        return await self._run("breaker_record", record)

    async def breaker_force(
        self,
        key: str,
        state: Literal["isolated", "closed"],
        config: BreakerConfig,
        *,
        now: float,
    ) -> BreakerUpdate:
        return await self._run("breaker_force", lambda s: s.breaker_force(key, state, config, now=now))

    async def breaker_status(self, key: str, config: BreakerConfig, *, now: float) -> BreakerSnapshot:
        return await self._run("breaker_status", lambda s: s.breaker_status(key, config, now=now))

    async def aclose(self) -> None:
        try:
            await self.shared.aclose()
        finally:
            await self.local.aclose()
