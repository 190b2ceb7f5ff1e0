"""The replay worker: send due dead letters again, on a backoff schedule, then give up to a person.

Schedule (``ReplaySchedule``, DESIGN 4)::

    base(k)  = initial × multiplier^(k−1)                 defaults: 1, 2, 4 s
    delay(k) = base(k) × uniform(1 − jitter, 1 + jitter)   jitter 0.2: ± 20 %

An entry is enqueued due ``delay(1)`` after the failure. Replay ``k`` that fails makes it due
``delay(k + 1)`` later; when ``attempts`` replays (default 3) have failed, or a replay fails in a
way that cannot get better (a 4xx other than 408/425/429, a validation, not-found or
authentication error), the entry moves to the failed set for manual review (``tether dlq``).

Each replay is sent through the given client with the entry's stored request and its
idempotency key (header and ``CallContext``), so the upstream can drop a duplicate; the client's
auth scheme signs it (no credential was stored). The fallback chain, DLQ step included, stays
out of a replay (``ctx.extras["dlq.replay"]``), so a failed replay never queues a second copy.
A delivered entry is removed.

Several workers may replay one backend: each claims due entries with a lease, so no entry is
sent by two workers at once; a worker that dies leaves its leases to expire, and another worker
picks those entries up. Clock and random source are injected (virtual time in tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import math
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Final, Protocol

import httpx2

from tether import events as ev
from tether._clock import Clock, system_clock
from tether._context import CONTEXT_KEY, CallContext
from tether.dlq._capture import REPLAY_KEY, mark_dlq
from tether.dlq._protocol import DeadLetter, DLQBackend
from tether.dlq.memory import MemoryDLQ
from tether.dlq.sqlite import SQLiteDLQ
from tether.errors import (
    AuthenticationError,
    NotFoundError,
    SpecError,
    TetherError,
    ValidationError,
    error_for_status,
)
from tether.events import EventBus

__all__ = ["ReplayClient", "ReplayReport", "ReplaySchedule", "Replayer", "mark_dlq", "open_dlq"]

#: 4xx statuses that may succeed later (timeout, too early, rate limited): replayed, not failed.
_TRANSIENT_4XX: Final = frozenset({408, 425, 429})


@dataclass(frozen=True, slots=True)
class ReplaySchedule:
    """When to replay, and how many replays before the failed set (see the module docstring)."""

    DEFAULT_ATTEMPTS: ClassVar[int] = 3
    DEFAULT_INITIAL: ClassVar[float] = 1.0
    DEFAULT_MULTIPLIER: ClassVar[float] = 2.0
    DEFAULT_JITTER: ClassVar[float] = 0.2

    attempts: int = DEFAULT_ATTEMPTS
    initial: float = DEFAULT_INITIAL
    multiplier: float = DEFAULT_MULTIPLIER
    jitter: float = DEFAULT_JITTER
    #: Explicit delays before replays 1, 2, … (a spec's ``dlq.schedule``); beyond the list, the
    #: last one grows by ``multiplier``. Empty: ``initial × multiplier^(k−1)``.
    delays: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) or self.attempts < 1:
            raise ValueError(f"ReplaySchedule.attempts must be a whole number >= 1, got {self.attempts!r}")
        for name, low in (("initial", 0.0), ("multiplier", 1.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"ReplaySchedule.{name} must be a finite number, got {value!r}")
            if value < low:
                raise ValueError(f"ReplaySchedule.{name} must be at least {low:g}, got {value!r}")
        jitter = self.jitter
        if isinstance(jitter, bool) or not isinstance(jitter, int | float) or not 0 <= jitter < 1:
            raise ValueError(f"ReplaySchedule.jitter must be a fraction in [0, 1), got {jitter!r}")
        delays = tuple(self.delays)
        for d in delays:
            if isinstance(d, bool) or not isinstance(d, int | float) or not math.isfinite(d) or d < 0:
                raise ValueError(f"ReplaySchedule.delays takes seconds >= 0, got {d!r}")
        object.__setattr__(self, "delays", tuple(float(d) for d in delays))

    def base(self, replay: int) -> float:
        """``base(k)``: the delay before replay ``k`` (1, 2, …) without jitter."""
        k = max(1, replay)
        if self.delays:
            if k <= len(self.delays):
                return self.delays[k - 1]
            return float(self.delays[-1] * self.multiplier ** (k - len(self.delays)))
        return float(self.initial * self.multiplier ** (k - 1))

    def delay(self, replay: int, rng: random.Random) -> float:
        """``delay(k)``: ``base(k)`` with ± ``jitter`` applied."""
        return self.base(replay) * (1.0 + rng.uniform(-self.jitter, self.jitter))


class ReplayClient(Protocol):
    """What the replayer needs of a client: ``tether.Client`` has both methods."""

    def build_request(self, method: str, url: str | httpx2.URL, **kwargs: Any) -> httpx2.Request: ...

    async def send(self, request: httpx2.Request) -> httpx2.Response: ...


@dataclass(slots=True)
class ReplayReport:
    """What one pass did, by entry id."""

    delivered: list[str] = field(default_factory=list)
    rescheduled: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    #: Entries whose lease was taken over before the outcome was recorded.
    lost: list[str] = field(default_factory=list)

    @property
    def claimed(self) -> int:
        return len(self.delivered) + len(self.rescheduled) + len(self.failed) + len(self.lost)

    def merge(self, other: ReplayReport) -> None:
        self.delivered += other.delivered
        self.rescheduled += other.rescheduled
        self.failed += other.failed
        self.lost += other.lost


def _permanent(error: BaseException) -> bool:
    """A failure a later replay cannot fix: most 4xx, validation, not-found, authentication."""
    if isinstance(error, TetherError):
        status = error.status_code
        if status is not None:
            return 400 <= status < 500 and status not in _TRANSIENT_4XX
        return isinstance(error, ValidationError | NotFoundError | AuthenticationError)
    return False


def _describe(error: BaseException) -> tuple[str, str]:
    if isinstance(error, TetherError):
        return error.error_code, str(error)
    return "INTERNAL", f"{type(error).__name__}: {error}"


class Replayer:
    """Replays due dead letters from ``backend`` through ``client`` (see the module docstring).

    ``lease`` must be longer than one replay takes (the client's total timeout): a lease that
    ends mid-send lets another worker send the entry too (the idempotency key still protects
    the upstream). ``concurrency`` bounds the replays in flight in one pass.
    """

    DEFAULT_LEASE: ClassVar[float] = 120.0
    DEFAULT_BATCH: ClassVar[int] = 20
    DEFAULT_CONCURRENCY: ClassVar[int] = 4

    def __init__(
        self,
        client: ReplayClient,
        backend: DLQBackend,
        *,
        schedule: ReplaySchedule | None = None,
        lease: float = DEFAULT_LEASE,
        batch: int = DEFAULT_BATCH,
        concurrency: int = DEFAULT_CONCURRENCY,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        events: EventBus | None = None,
        owner: str | None = None,
    ) -> None:
        if not (isinstance(lease, int | float) and lease > 0):
            raise ValueError(f"Replayer lease must be positive seconds, got {lease!r}")
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"Replayer batch must be a whole number >= 1, got {batch!r}")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"Replayer concurrency must be a whole number >= 1, got {concurrency!r}")
        self.client = client
        self.backend = backend
        self.schedule = schedule or ReplaySchedule()
        self.lease = float(lease)
        self.batch = batch
        self.concurrency = concurrency
        self.clock: Clock = clock or system_clock
        self.rng = rng or random.Random()
        bus = events if events is not None else getattr(client, "events", None)
        self.events: EventBus = bus if isinstance(bus, EventBus) else EventBus()
        self.owner = owner or f"replayer-{uuid.uuid4().hex[:12]}"

    def __repr__(self) -> str:
        return f"Replayer(owner={self.owner!r}, backend={self.backend!r}, schedule={self.schedule!r})"

    # --- passes --------------------------------------------------------------------------------

    async def run_once(self, *, ids: Sequence[str] | None = None) -> ReplayReport:
        """Claim the due entries (up to ``batch``; only ``ids`` when given) and replay each once."""
        entries = await self.backend.claim(
            self.owner, now=self.clock.time(), lease=self.lease, limit=self.batch, ids=ids
        )
        report = ReplayReport()
        if not entries:
            return report
        gate = asyncio.Semaphore(self.concurrency)

        async def one(entry: DeadLetter) -> None:
            async with gate:
                await self._replay(entry, report)

        # Every replay finishes (and records its outcome) even if another one's bookkeeping
        # failed; a backend error is then raised as itself. An entry whose outcome could not be
        # recorded keeps its lease until it expires, and is replayed again (same idempotency key).
        results = await asyncio.gather(*(one(e) for e in entries), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return report

    async def run(
        self,
        *,
        stop: asyncio.Event | None = None,
        poll: float = 1.0,
        until_empty: bool = False,
    ) -> ReplayReport:
        """Replay in passes until ``stop`` is set (or, with ``until_empty``, no pending entry is left).

        Between passes that found nothing due it sleeps ``poll`` seconds on the clock.
        """
        total = ReplayReport()
        while stop is None or not stop.is_set():
            report = await self.run_once()
            total.merge(report)
            if report.claimed:
                continue
            if until_empty and (await self.backend.counts()).pending == 0:
                break
            await self.clock.sleep(poll)
        return total

    async def replay_now(self, ids: Sequence[str]) -> ReplayReport:
        """Make these entries (pending or failed) due now and replay them once (``tether dlq replay``)."""
        now = self.clock.time()
        present = [i for i in ids if await self.backend.requeue(i, due_at=now, now=now, reset_replays=False)]
        report = ReplayReport()
        for start in range(0, len(present), self.batch):
            report.merge(await self.run_once(ids=present[start : start + self.batch]))
        return report

    # --- one entry -----------------------------------------------------------------------------

    def build(self, entry: DeadLetter) -> httpx2.Request:
        """The replay request: the stored request, its idempotency key, marked as a replay."""
        stored = entry.request
        request = self.client.build_request(
            stored.method,
            stored.url,
            headers=httpx2.Headers(list(stored.headers)),
            content=stored.body or None,
            endpoint=entry.endpoint,
            idempotency_key=entry.idempotency_key,
        )
        ctx = request.extensions.get(CONTEXT_KEY)
        if isinstance(ctx, CallContext):
            ctx.extras[REPLAY_KEY] = entry.id
        return request

    async def _send(self, entry: DeadLetter) -> BaseException | None:
        """Send one replay: ``None`` when delivered, else the error."""
        try:
            response = await self.client.send(self.build(entry))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every failure is recorded on the entry; nothing escapes a worker
            return exc
        if response.status_code >= 400:  # a client built with raise_for_status=False
            return error_for_status(response, endpoint=entry.endpoint)
        return None

    async def _replay(self, entry: DeadLetter, report: ReplayReport) -> None:
        try:
            error = await self._send(entry)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.backend.release(entry.id, self.owner))
            raise
        replays = entry.replays + 1
        now = self.clock.time()
        if error is None:
            if await self.backend.complete(entry.id, self.owner):
                report.delivered.append(entry.id)
                self.events.emit(
                    ev.DLQ_REPLAYED,
                    endpoint=entry.endpoint,
                    id=entry.id,
                    replays=replays,
                    outcome="delivered",
                )
            else:
                report.lost.append(entry.id)
            return
        code, message = _describe(error)
        if _permanent(error) or replays >= self.schedule.attempts:
            reason = "permanent" if _permanent(error) else "attempts"
            moved = await self.backend.fail(
                entry.id, self.owner, replays=replays, error_code=code, error_message=message, now=now
            )
            if moved:
                report.failed.append(entry.id)
                self.events.emit(
                    ev.DLQ_FAILED,
                    endpoint=entry.endpoint,
                    id=entry.id,
                    replays=replays,
                    reason=reason,
                    error_code=code,
                )
            else:
                report.lost.append(entry.id)
            return
        due = now + self.schedule.delay(replays + 1, self.rng)
        if await self.backend.reschedule(
            entry.id,
            self.owner,
            due_at=due,
            replays=replays,
            error_code=code,
            error_message=message,
            now=now,
        ):
            report.rescheduled.append(entry.id)
            self.events.emit(
                ev.DLQ_REPLAYED,
                endpoint=entry.endpoint,
                id=entry.id,
                replays=replays,
                outcome="rescheduled",
                error_code=code,
                next_in=round(due - now, 3),
            )
        else:
            report.lost.append(entry.id)


def open_dlq(location: DLQBackend | str | Path) -> DLQBackend:
    """A backend for a ``dlq=`` value: a backend as is, ``memory://``, a path or ``sqlite:///path``."""
    if not isinstance(location, str | Path):
        return location
    text = str(location)
    if text.startswith("memory://"):
        return MemoryDLQ()
    if text.startswith(("redis://", "rediss://")):
        try:
            redis_dlq = importlib.import_module("tether.dlq.redis")  # optional backend
        except ImportError as exc:
            raise SpecError("the Redis DLQ backend needs the 'redis' package") from exc
        opener = getattr(redis_dlq, "open_url", None)
        if opener is None:
            raise SpecError("this version of tether has no Redis DLQ backend")
        backend: DLQBackend = opener(text)
        return backend
    if "://" in text and not text.startswith("sqlite://"):
        raise SpecError(f"DLQ location must be memory://, sqlite:///path or a file path, got {text!r}")
    return SQLiteDLQ(text)
