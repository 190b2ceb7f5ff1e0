"""The shared-state algorithms as pure functions over small, serialisable state records.

Every function takes the stored record (``None`` when the key is new), the inputs of one store
operation and ``now`` (epoch seconds, from the caller), and returns the updated record plus the
answer. The record passed in is updated in place (the caller owns it: the memory store keeps it,
the SQLite and Redis stores decode a fresh one per operation), because copying it on every call
was a measurable share of a request's cost. Input is validated before anything is changed.
Nothing here reads a clock, sleeps or awaits. So:

- the memory store calls them synchronously (atomic on one event loop),
- a SQLite store loads the record, calls the same function and writes it back in one transaction,
- a Redis store runs a Lua port of each function in one script.

Records convert to and from JSON (``to_json`` / ``from_json``) for the stores that persist them.
"""

from __future__ import annotations

import heapq
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from tether.state._protocol import (
    BreakerConfig,
    BreakerOutcome,
    BreakerPermit,
    BreakerSnapshot,
    BreakerStateName,
    BreakerTransition,
    BreakerUpdate,
    RateGrant,
    RateSnapshot,
    RateWindow,
    RateWindowStatus,
)

__all__ = [
    "BreakerState",
    "RateState",
    "breaker_acquire",
    "breaker_force",
    "breaker_record",
    "breaker_status",
    "rate_acquire",
    "rate_pause",
    "rate_status",
]

#: Tolerance for float comparisons of times (one nanosecond).
EPSILON = 1e-9

_STATES: frozenset[str] = frozenset({"closed", "open", "half_open", "isolated"})


# === rate limiter: GCRA over several windows ===================================================


@dataclass(slots=True)
class RateState:
    """A limiter's stored state.

    ``tats``: per window id, the GCRA *theoretical arrival time* — the epoch when that window
    has spent no more than a steady stream would have. ``paused_until``: every caller waits until
    then (0 = no pause). ``pending``: a min-heap of reserved send times still in the future (the
    waiting callers), so the queue length is exact and bounded by ``max_queue``.
    """

    tats: dict[str, float] = field(default_factory=dict)
    paused_until: float = 0.0
    pending: list[float] = field(default_factory=list)

    def copy(self) -> RateState:
        return RateState(dict(self.tats), self.paused_until, list(self.pending))

    def to_json(self) -> bytes:
        return json.dumps(
            {"tats": self.tats, "paused_until": self.paused_until, "pending": self.pending},
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> RateState:
        raw: dict[str, Any] = json.loads(data)
        pending = [float(x) for x in raw.get("pending", [])]
        heapq.heapify(pending)
        return cls(
            tats={str(k): float(v) for k, v in raw.get("tats", {}).items()},
            paused_until=float(raw.get("paused_until", 0.0)),
            pending=pending,
        )


def _prune(state: RateState, now: float) -> None:
    while state.pending and state.pending[0] <= now + EPSILON:
        heapq.heappop(state.pending)


def _window_status(state: RateState, window: RateWindow, now: float) -> RateWindowStatus:
    interval = window.interval
    tat = max(state.tats.get(window.id, now), now)
    spent = (tat - now) / interval
    available = max(0, min(window.burst, math.floor(window.burst - spent + EPSILON)))
    next_at = max(now, tat + interval - window.burst * interval)
    return RateWindowStatus(window=window, available=available, full_at=tat, next_at=next_at)


def _snapshot(state: RateState, windows: Sequence[RateWindow], now: float) -> RateSnapshot:
    return RateSnapshot(
        now=now,
        windows=tuple(_window_status(state, w, now) for w in windows),
        paused_until=state.paused_until if state.paused_until > now else None,
        queued=len(state.pending),
    )


def rate_acquire(
    state: RateState | None,
    windows: Sequence[RateWindow],
    now: float,
    *,
    cost: int = 1,
    max_wait: float | None = None,
    max_queue: int | None = None,
) -> tuple[RateState, RateGrant]:
    """Reserve the earliest slot every window allows (GCRA), or refuse without reserving.

    For window *i* with interval ``T`` and burst ``B``, a request of cost ``c`` may start at
    ``allow = max(tat_i, now) + c*T - B*T``; the slot is the latest ``allow`` over all windows,
    the pause and ``now``. Reserving it moves each ``tat_i`` to ``max(tat_i, slot) + c*T``, so a
    caller that reserves later gets a later slot (FIFO) and no window ever admits more than its
    limit plus burst.
    """
    if not windows:
        raise ValueError("rate_acquire needs at least one window")
    if isinstance(cost, bool) or not isinstance(cost, int) or cost < 1:
        raise ValueError(f"cost must be a whole number >= 1, got {cost!r}")
    for w in windows:
        if cost > w.burst:
            raise ValueError(f"cost {cost} exceeds the burst {w.burst} of window {w.id}: it could never go")
    new = RateState() if state is None else state
    _prune(new, now)
    slot = max(now, new.paused_until)
    for w in windows:
        tat = max(new.tats.get(w.id, now), now)
        slot = max(slot, tat + (cost - w.burst) * w.interval)
    wait = slot - now
    if wait <= EPSILON:
        wait, slot = 0.0, now
    if max_wait is not None and wait > max(0.0, max_wait) + EPSILON:
        return new, RateGrant(False, wait, "wait", _snapshot(new, windows, now))
    if wait > 0 and max_queue is not None and len(new.pending) >= max_queue:
        return new, RateGrant(False, wait, "queue_full", _snapshot(new, windows, now))
    for w in windows:
        tat = max(new.tats.get(w.id, now), slot)
        new.tats[w.id] = tat + cost * w.interval
    if wait > 0:
        heapq.heappush(new.pending, slot)
    return new, RateGrant(True, wait, None, _snapshot(new, windows, now))


def rate_pause(state: RateState | None, until: float, now: float) -> tuple[RateState, float]:
    """Extend the pause to ``until`` (never shorten it); returns the pause in force (0 = none)."""
    new = RateState() if state is None else state
    _prune(new, now)
    if until > new.paused_until:
        new.paused_until = until
    return new, new.paused_until if new.paused_until > now else 0.0


def rate_status(
    state: RateState | None, windows: Sequence[RateWindow], now: float
) -> tuple[RateState, RateSnapshot]:
    """The limiter at ``now``. The returned record is the same state with past reservations
    dropped (a store may write it back, or not: the limit state is unchanged either way)."""
    view = RateState() if state is None else state.copy()  # a status read changes nothing
    _prune(view, now)
    return view, _snapshot(view, windows, now)


# === circuit breaker ===========================================================================


@dataclass(slots=True)
class BreakerState:
    """A circuit's stored state.

    ``generation`` counts transitions; a permit carries the generation it was issued in, so late
    outcomes from before a transition are ignored. ``run`` holds the times of the current run of
    consecutive failures (consecutive mode). ``recent`` (rate mode, count window) holds the last
    outcomes as 1 = failure, 0 = success; ``buckets`` (rate mode, time window) holds
    ``[start, calls, failures]`` per slice of ``window / 60`` seconds. ``probes`` maps a probe
    ticket to the time it was admitted.
    """

    state: BreakerStateName = "closed"
    generation: int = 0
    run: list[float] = field(default_factory=list)
    recent: list[int] = field(default_factory=list)
    buckets: list[list[float]] = field(default_factory=list)
    opened_at: float | None = None
    half_open_at: float | None = None
    probes: dict[int, float] = field(default_factory=dict)
    probe_successes: int = 0
    next_ticket: int = 1

    def copy(self) -> BreakerState:
        return BreakerState(
            state=self.state,
            generation=self.generation,
            run=list(self.run),
            recent=list(self.recent),
            buckets=[list(b) for b in self.buckets],
            opened_at=self.opened_at,
            half_open_at=self.half_open_at,
            probes=dict(self.probes),
            probe_successes=self.probe_successes,
            next_ticket=self.next_ticket,
        )

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "state": self.state,
                "generation": self.generation,
                "run": self.run,
                "recent": self.recent,
                "buckets": self.buckets,
                "opened_at": self.opened_at,
                "half_open_at": self.half_open_at,
                "probes": [[t, s] for t, s in self.probes.items()],
                "probe_successes": self.probe_successes,
                "next_ticket": self.next_ticket,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> BreakerState:
        raw: dict[str, Any] = json.loads(data)
        name = raw.get("state", "closed")
        if name not in _STATES:
            raise ValueError(f"unknown breaker state {name!r} in stored record")
        return cls(
            state=name,
            generation=int(raw.get("generation", 0)),
            run=[float(x) for x in raw.get("run", [])],
            recent=[int(x) for x in raw.get("recent", [])],
            buckets=[[float(x) for x in b] for b in raw.get("buckets", [])],
            opened_at=_opt_float(raw.get("opened_at")),
            half_open_at=_opt_float(raw.get("half_open_at")),
            probes={int(t): float(s) for t, s in raw.get("probes", [])},
            probe_successes=int(raw.get("probe_successes", 0)),
            next_ticket=int(raw.get("next_ticket", 1)),
        )


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _bucket_width(config: BreakerConfig) -> float:
    return config.window / 60.0


def _prune_window(state: BreakerState, config: BreakerConfig, now: float) -> None:
    horizon = now - config.window
    if config.mode == "consecutive":
        state.run = [t for t in state.run if t > horizon]
    elif config.window_calls is None:
        width = _bucket_width(config)
        state.buckets = [b for b in state.buckets if b[0] + width > horizon]


def _counts(state: BreakerState, config: BreakerConfig) -> tuple[int, int]:
    """(failures, calls) in the current window."""
    if config.mode == "consecutive":
        return len(state.run), len(state.run)
    if config.window_calls is not None:
        return sum(state.recent), len(state.recent)
    return int(sum(b[2] for b in state.buckets)), int(sum(b[1] for b in state.buckets))


def _clear_counts(state: BreakerState) -> None:
    state.run = []
    state.recent = []
    state.buckets = []


def _snap(state: BreakerState, config: BreakerConfig) -> BreakerSnapshot:
    failures, calls = _counts(state, config)
    return BreakerSnapshot(
        state=state.state,
        failures=failures,
        calls=calls,
        opened_at=state.opened_at if state.state in ("open", "half_open", "isolated") else None,
        half_open_at=state.half_open_at if state.state == "open" else None,
        probes=len(state.probes),
        probe_successes=state.probe_successes,
    )


def _move(
    state: BreakerState,
    to: BreakerStateName,
    reason: str,
    now: float,
    config: BreakerConfig,
    out: list[BreakerTransition],
) -> None:
    out.append(BreakerTransition(state.state, to, reason, now))
    state.generation += 1
    state.probes = {}
    state.probe_successes = 0
    if to == "open":
        state.opened_at = now
        state.half_open_at = now + config.open_for
        _clear_counts(state)
    elif to == "isolated":
        state.opened_at = now
        state.half_open_at = None
        _clear_counts(state)
    elif to == "half_open":
        state.half_open_at = None
    else:  # closed
        state.opened_at = None
        state.half_open_at = None
        _clear_counts(state)
    state.state = to


def _advance(state: BreakerState, config: BreakerConfig, now: float, out: list[BreakerTransition]) -> None:
    """The transitions that happen by the passing of time alone."""
    if state.state == "open" and state.half_open_at is not None and now + EPSILON >= state.half_open_at:
        _move(state, "half_open", "open_for_elapsed", now, config, out)
    if state.state == "half_open" and state.probes:
        oldest = min(state.probes.values())
        if now + EPSILON >= oldest + config.half_open_timeout:
            _move(state, "open", "half_open_timeout", now, config, out)


def breaker_acquire(
    state: BreakerState | None, config: BreakerConfig, now: float
) -> tuple[BreakerState, BreakerPermit]:
    """Admit one call, take a probe slot, or reject; applies the time-driven transitions first."""
    new = BreakerState() if state is None else state
    transitions: list[BreakerTransition] = []
    _advance(new, config, now, transitions)
    _prune_window(new, config, now)
    granted, probe, ticket = False, False, 0
    retry_after: float | None = None
    if new.state == "closed":
        granted = True
    elif new.state == "half_open":
        if len(new.probes) < config.half_open_calls:
            granted, probe = True, True
            ticket = new.next_ticket
            new.next_ticket += 1
            new.probes[ticket] = now
        else:
            # A probe is in flight: its outcome usually arrives within one attempt, and if it
            # fails the circuit re-opens for open_for. So open_for is the useful hint, capped by
            # the moment a stuck probe's slot is freed.
            stuck_until = min(new.probes.values()) + config.half_open_timeout - now
            retry_after = max(0.0, min(config.open_for, stuck_until))
    elif new.state == "open":
        assert new.half_open_at is not None
        retry_after = max(0.0, new.half_open_at - now)
    permit = BreakerPermit(
        granted=granted,
        probe=probe,
        generation=new.generation,
        ticket=ticket,
        retry_after=retry_after,
        transitions=tuple(transitions),
        snapshot=_snap(new, config),
    )
    return new, permit


def _record_closed(
    state: BreakerState,
    outcome: BreakerOutcome,
    config: BreakerConfig,
    now: float,
    out: list[BreakerTransition],
) -> None:
    if outcome == "ignored":
        return
    failed = outcome == "failure"
    if config.mode == "consecutive":
        if not failed:
            state.run = []
            return
        state.run.append(now)
        if len(state.run) >= config.failures:
            _move(state, "open", "failures", now, config, out)
        return
    if config.window_calls is not None:
        state.recent.append(1 if failed else 0)
        del state.recent[: max(0, len(state.recent) - config.window_calls)]
    else:
        width = _bucket_width(config)
        start = math.floor(now / width) * width
        if state.buckets and abs(state.buckets[-1][0] - start) <= EPSILON:
            bucket = state.buckets[-1]
        else:
            bucket = [start, 0.0, 0.0]
            state.buckets.append(bucket)
        bucket[1] += 1
        bucket[2] += 1 if failed else 0
    if failed:
        failures, calls = _counts(state, config)
        if calls >= config.min_calls and failures >= config.failure_rate * calls - EPSILON:
            _move(state, "open", "failure_rate", now, config, out)


def breaker_record(
    state: BreakerState | None,
    permit: BreakerPermit,
    outcome: BreakerOutcome,
    config: BreakerConfig,
    now: float,
) -> tuple[BreakerState, BreakerUpdate]:
    """Apply one outcome: count it (closed), or decide the probe (half-open). Stale permits do nothing."""
    new = BreakerState() if state is None else state
    transitions: list[BreakerTransition] = []
    if permit.granted and permit.generation == new.generation:
        if permit.probe and new.state == "half_open" and permit.ticket in new.probes:
            del new.probes[permit.ticket]
            if outcome == "success":
                new.probe_successes += 1
                if new.probe_successes >= config.close_after:
                    _move(new, "closed", "probes_succeeded", now, config, transitions)
            elif outcome == "failure":
                _move(new, "open", "probe_failed", now, config, transitions)
        elif not permit.probe and new.state == "closed":
            _prune_window(new, config, now)
            _record_closed(new, outcome, config, now, transitions)
    return new, BreakerUpdate(tuple(transitions), _snap(new, config))


def breaker_force(
    state: BreakerState | None,
    target: Literal["isolated", "closed"],
    config: BreakerConfig,
    now: float,
) -> tuple[BreakerState, BreakerUpdate]:
    """Isolate (open until reset) or reset (closed, counts cleared) by hand."""
    if target not in ("isolated", "closed"):
        raise ValueError(f"a breaker can be forced 'isolated' or 'closed', got {target!r}")
    new = BreakerState() if state is None else state
    transitions: list[BreakerTransition] = []
    if new.state != target:
        _move(new, target, "isolated" if target == "isolated" else "reset", now, config, transitions)
    elif target == "closed":
        _clear_counts(new)
    return new, BreakerUpdate(tuple(transitions), _snap(new, config))


def breaker_status(state: BreakerState | None, config: BreakerConfig, now: float) -> BreakerSnapshot:
    """The circuit as it would be seen at ``now``; changes nothing."""
    view = BreakerState() if state is None else state.copy()  # a status read changes nothing
    _advance(view, config, now, [])
    _prune_window(view, config, now)
    return _snap(view, config)
