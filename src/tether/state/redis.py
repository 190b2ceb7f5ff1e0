"""The Redis state store: shared state for many processes and hosts (``redis://host:6379/0``).

Every store operation is one Lua script run with ``EVALSHA`` (the script is loaded on first use
and again after a ``NOSCRIPT`` reply, e.g. when Redis restarted), so it is atomic across every
worker that shares the Redis. The scripts in ``tether/state/lua/`` are ports of the pure
functions in ``tether.state._algorithms`` and keep their records (``docs/state-store.md``):

- ``rate.lua``: GCRA over several windows (acquire with FIFO reservations, ``max_wait``,
  ``max_queue``), the shared pause learned from a 429, and the read-only status;
- ``breaker.lua``: the circuit state machine (acquire, record, force, status) over the JSON of
  ``BreakerState``;
- ``kv.lua``: counters, values and owner locks.

Time comes from the callers (``now=``), never from the Redis server, so virtual-time tests work
and every worker reads one time line (the hosts' clocks; keep them on NTP). Redis' own key expiry
(relative, plus ``keep`` seconds) only removes state nobody will read again.

Keys: ``<namespace>{<tag>}:<kind>:<key>``. The hash tag is the service (the key's first
``:`` segment) or, for ``rate:<name>`` / ``breaker:<name>`` keys shared between clients, that
name; every key one script touches shares it, so the store works on Redis Cluster.

Every call is bounded by ``timeout`` seconds, and every Redis failure (connection, timeout,
script error) is raised as ``tether.errors.StateStoreError`` with ``from exc``. Wrap the store in
``tether.state._fallback.FallbackStore`` (``on_state_error: local``) to keep working on local
state while Redis is away; ``open_redis_store`` does that for ``state="redis://..."``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import math
from collections.abc import Sequence
from importlib import resources
from typing import Any, Final, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisClusterException, RedisError

from tether.errors import SpecError, StateStoreError, backend_cause
from tether.state import _algorithms as alg
from tether.state._fallback import FallbackStore, OnStateError
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
    StateStore,
)

__all__ = ["RedisConnection", "RedisStore", "Script", "key_tag", "open_redis_store", "shown_url"]

#: Everything redis-py raises for a failed call (cluster routing errors are not ``RedisError``s).
REDIS_ERRORS: Final = (RedisError, RedisClusterException, OSError, TimeoutError)

#: Options of a ``redis://`` state URL that tether reads (the rest go to redis-py).
URL_OPTIONS: Final = ("namespace", "timeout", "on_state_error", "retry_every", "cluster", "keep")


@dataclasses.dataclass(frozen=True, slots=True)
class Script:
    """A Lua script shipped in ``tether/state/lua/``: its text and SHA1 (the ``EVALSHA`` name)."""

    name: str
    text: str
    sha: str

    @classmethod
    def load(cls, name: str, *, prelude: bool = False) -> Script:
        """The script ``name``; ``prelude`` prepends ``_prelude.lua`` (scripts cannot import)."""
        folder = resources.files("tether.state").joinpath("lua")
        text = folder.joinpath(f"{name}.lua").read_text(encoding="utf-8")
        if prelude:
            text = folder.joinpath("_prelude.lua").read_text(encoding="utf-8") + "\n" + text
        return cls(name, text, hashlib.sha1(text.encode()).hexdigest())


RATE: Final = Script.load("rate", prelude=True)
BREAKER: Final = Script.load("breaker", prelude=True)
KV: Final = Script.load("kv")
DLQ: Final = Script.load("dlq")


def key_tag(key: str) -> str:
    """The Redis Cluster hash tag of a policy key: the shared name or the service.

    ``"rate:demo"`` and ``"breaker:demo"`` (shared between clients) -> ``"demo"``;
    ``"api.example.com:rate"``, ``"api.example.com:auth:token:…"`` -> ``"api.example.com"``.
    """
    head, _, rest = key.partition(":")
    tag = rest if head in ("rate", "breaker") and rest else head or key or "_"
    # A brace inside the tag would end the hash tag early; keep one tag per service.
    return tag.replace("{", "(").replace("}", ")")


def _num(value: float) -> str:
    """A float as Lua's ``tonumber`` reads it back exactly."""
    return repr(float(value))


def _packed(fields: Sequence[str | int]) -> str:
    """The arguments of ``rate.lua`` / ``breaker.lua``: one string, fields separated by ``|``."""
    return "|".join(str(f) for f in fields)


def _opt(value: bytes | str | None) -> float | None:
    return None if value is None or value in (b"", "") else float(value)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisConnection:
    """A redis-py client with tether's rules: every call bounded by ``timeout``, every failure a
    ``StateStoreError`` (``from exc``), scripts run by SHA and loaded again after ``NOSCRIPT``.

    Shared by ``RedisStore`` and ``tether.dlq.redis.RedisDLQ``.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        cluster: bool = False,
        max_connections: int | None = None,
        what: str = "Redis state store",
    ) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not math.isfinite(timeout):
            raise ValueError(f"{what} timeout must be positive seconds, got {timeout!r}")
        if timeout <= 0:
            raise ValueError(f"{what} timeout must be positive seconds, got {timeout!r}")
        self.timeout = float(timeout)
        self.shown = shown_url(url)
        self.what = what
        self.closed = False
        options: dict[str, Any] = {
            "socket_timeout": self.timeout,
            "socket_connect_timeout": self.timeout,
            # One immediate retry on a fresh connection (a pooled one may predate a restart);
            # waiting longer is the caller's decision (on_state_error).
            "retry": Retry(NoBackoff(), 1),
        }
        if max_connections is not None:
            options["max_connections"] = max_connections
        self.client: aioredis.Redis | RedisCluster
        try:
            if cluster:
                self.client = RedisCluster.from_url(url, **options)
            else:
                self.client = aioredis.Redis.from_url(url, **options)
        except (ValueError, *REDIS_ERRORS) as exc:
            raise SpecError(f"invalid Redis URL {self.shown!r} for the {what}: {exc}") from exc

    def _error(self, doing: str, exc: BaseException) -> StateStoreError:
        kind = "timed out" if isinstance(exc, TimeoutError) else "failed"
        return StateStoreError(f"{self.what} {self.shown}: {doing} {kind}: {type(exc).__name__}: {exc}")

    def _check_open(self) -> None:
        if self.closed:
            raise StateStoreError(f"the {self.what} {self.shown} is closed")

    async def eval(self, script: Script, keys: Sequence[str], args: Sequence[str | bytes | int]) -> Any:
        """Run ``script`` atomically (``EVALSHA``; loaded first if the server does not know it)."""
        self._check_open()
        client = self.client
        try:
            async with asyncio.timeout(self.timeout):
                try:
                    return await client.evalsha(script.sha, len(keys), *keys, *args)
                except NoScriptError:
                    # First use on this server, or it restarted / flushed its script cache.
                    await client.script_load(script.text)
                    return await client.evalsha(script.sha, len(keys), *keys, *args)
        except REDIS_ERRORS as exc:
            first = args[0] if args else ""
            op = (first.decode(errors="replace") if isinstance(first, bytes) else str(first)).split("|")[0]
            raise self._error(f"{script.name} {op!r}", exc) from backend_cause(exc)

    async def command(self, *args: str | bytes | int) -> Any:
        """Run one plain command (atomic by itself)."""
        self._check_open()
        try:
            async with asyncio.timeout(self.timeout):
                return await self.client.execute_command(*args)
        except REDIS_ERRORS as exc:
            raise self._error(str(args[0]), exc) from backend_cause(exc)

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            await self.client.aclose()
        except REDIS_ERRORS as exc:
            raise self._error("close", exc) from backend_cause(exc)


class RedisStore:
    """``StateStore`` on Redis: one Lua script per operation, shared by every worker.

    ``url``: ``redis://[user:password@]host:port/db``, ``rediss://…`` (TLS) or
    ``unix:///path.sock?db=0``. ``namespace`` prefixes every key (default ``tether:``).
    ``timeout`` bounds each call, connecting included (seconds). ``keep`` is how long Redis keeps
    idle state beyond its last use (seconds). ``cluster=True`` talks to a Redis Cluster.
    """

    DEFAULT_NAMESPACE: Final = "tether:"
    DEFAULT_TIMEOUT: Final = 0.25
    DEFAULT_KEEP: Final = 60.0

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        namespace: str = DEFAULT_NAMESPACE,
        timeout: float = DEFAULT_TIMEOUT,
        keep: float = DEFAULT_KEEP,
        cluster: bool = False,
        max_connections: int | None = None,
    ) -> None:
        if not isinstance(keep, int | float) or not math.isfinite(keep) or keep < 0:
            raise ValueError(f"RedisStore keep must be seconds >= 0, got {keep!r}")
        self._namespace = namespace
        self._keep = _num(keep)
        self._redis = RedisConnection(url, timeout=timeout, cluster=cluster, max_connections=max_connections)

    def __repr__(self) -> str:
        return f"RedisStore({self._redis.shown!r}, namespace={self._namespace!r})"

    # --- keys and calls ------------------------------------------------------------------------

    def key(self, kind: str, key: str) -> str:
        """The Redis key of a policy key in a key space (``kv``, ``lock``, ``rate``, ``breaker``)."""
        return f"{self._namespace}{{{key_tag(key)}}}:{kind}:{key}"

    async def _eval(self, script: Script, keys: Sequence[str], args: Sequence[str | bytes | int]) -> Any:
        return await self._redis.eval(script, keys, args)

    async def ping(self) -> None:
        """Check that Redis answers within the timeout (``StateStoreError`` otherwise)."""
        await self._redis.command("PING")

    # --- counters ------------------------------------------------------------------------------

    async def incr(self, key: str, amount: float = 1.0, *, ttl: float | None = None, now: float) -> float:
        ttl_arg = "" if ttl is None else _num(ttl)
        reply = await self._eval(
            KV, [self.key("kv", key)], ["incr", _num(now), self._keep, _num(amount), ttl_arg]
        )
        return float(reply)

    async def get_counter(self, key: str, *, now: float) -> float:
        reply = await self._eval(KV, [self.key("kv", key)], ["get_counter", _num(now), self._keep])
        return float(reply)

    # --- values --------------------------------------------------------------------------------

    async def get(self, key: str, *, now: float) -> bytes | None:
        reply = await self._eval(KV, [self.key("kv", key)], ["get", _num(now), self._keep])
        return None if reply is None else bytes(reply)

    async def set(self, key: str, value: bytes, *, ttl: float | None = None, now: float) -> None:
        ttl_arg = "" if ttl is None else _num(ttl)
        await self._eval(KV, [self.key("kv", key)], ["set", _num(now), self._keep, bytes(value), ttl_arg])

    async def delete(self, key: str) -> None:
        await self._redis.command("DEL", self.key("kv", key))

    # --- locks ---------------------------------------------------------------------------------

    async def try_lock(self, key: str, owner: str, *, ttl: float, now: float) -> bool:
        reply = await self._eval(
            KV, [self.key("lock", key)], ["lock", _num(now), self._keep, owner, _num(ttl)]
        )
        return bool(reply)

    async def unlock(self, key: str, owner: str) -> None:
        await self._eval(KV, [self.key("lock", key)], ["unlock", "0", self._keep, owner])

    # --- rate limiter --------------------------------------------------------------------------

    async def _rate(self, key: str, fields: Sequence[str | int]) -> list[bytes]:
        base = self.key("rate", key)
        reply = await self._eval(RATE, [base, f"{base}:q"], [_packed(fields)])
        parts: list[bytes] = bytes(reply).split(b"|")
        return parts

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
        _check_acquire(windows, cost)
        fields: list[str | int] = [
            "acquire",
            _num(now),
            self._keep,
            cost,
            "" if max_wait is None else _num(max_wait),
            "" if max_queue is None else int(max_queue),
            len(windows),
        ]
        for w in windows:
            fields += [w.id, _num(w.interval), w.burst]
        granted, wait, reason, queued, paused, *tats = await self._rate(key, fields)
        snapshot = _rate_snapshot(windows, now, tats, paused, queued)
        if granted == b"1":
            return RateGrant(True, float(wait), None, snapshot)
        why: Literal["wait", "queue_full"] = "queue_full" if reason == b"queue_full" else "wait"
        return RateGrant(False, float(wait), why, snapshot)

    async def rate_pause(self, key: str, until: float, *, now: float) -> float:
        (paused,) = await self._rate(key, ["pause", _num(now), self._keep, _num(until)])
        return float(paused)

    async def rate_status(self, key: str, windows: Sequence[RateWindow], *, now: float) -> RateSnapshot:
        fields: list[str | int] = ["status", _num(now), self._keep, len(windows), *(w.id for w in windows)]
        queued, paused, *tats = await self._rate(key, fields)
        return _rate_snapshot(windows, now, tats, paused, queued)

    # --- circuit breaker -----------------------------------------------------------------------

    async def _breaker(
        self, key: str, op: str, config: BreakerConfig, now: float, *extra: str | int
    ) -> list[bytes]:
        fields: list[str | int] = [
            op,
            _num(now),
            self._keep,
            config.mode,
            config.failures,
            _num(config.window),
            _num(config.failure_rate),
            config.min_calls,
            "" if config.window_calls is None else config.window_calls,
            _num(config.open_for),
            config.half_open_calls,
            config.close_after,
            _num(config.half_open_timeout),
            *extra,
        ]
        reply = await self._eval(BREAKER, [self.key("breaker", key)], [_packed(fields)])
        parts: list[bytes] = bytes(reply).split(b"|")
        return parts

    async def breaker_acquire(self, key: str, config: BreakerConfig, *, now: float) -> BreakerPermit:
        reply = await self._breaker(key, "acquire", config, now)
        granted, probe, generation, ticket, retry_after = reply[:5]
        snapshot, transitions = _breaker_answer(reply)
        return BreakerPermit(
            granted=granted == b"1",
            probe=probe == b"1",
            generation=int(generation),
            ticket=int(ticket),
            retry_after=_opt(retry_after),
            transitions=transitions,
            snapshot=snapshot,
        )

    async def breaker_record(
        self,
        key: str,
        permit: BreakerPermit,
        outcome: BreakerOutcome,
        config: BreakerConfig,
        *,
        now: float,
    ) -> BreakerUpdate:
        if outcome not in ("success", "failure", "ignored"):
            raise ValueError(f"a breaker outcome is 'success', 'failure' or 'ignored', got {outcome!r}")
        granted, probe = int(permit.granted), int(permit.probe)
        reply = await self._breaker(
            key, "record", config, now, granted, probe, permit.generation, permit.ticket, outcome
        )
        snapshot, transitions = _breaker_answer(reply)
        return BreakerUpdate(transitions, snapshot)

    async def breaker_force(
        self,
        key: str,
        state: Literal["isolated", "closed"],
        config: BreakerConfig,
        *,
        now: float,
    ) -> BreakerUpdate:
        if state not in ("isolated", "closed"):
            raise ValueError(f"a breaker can be forced 'isolated' or 'closed', got {state!r}")
        snapshot, transitions = _breaker_answer(await self._breaker(key, "force", config, now, state))
        return BreakerUpdate(transitions, snapshot)

    async def breaker_status(self, key: str, config: BreakerConfig, *, now: float) -> BreakerSnapshot:
        return _breaker_answer(await self._breaker(key, "status", config, now))[0]

    async def aclose(self) -> None:
        await self._redis.aclose()


# --- replies -----------------------------------------------------------------------------------


def _check_acquire(windows: Sequence[RateWindow], cost: int) -> None:
    """The input rules of ``_algorithms.rate_acquire`` (checked before anything is sent)."""
    if not windows:
        raise ValueError("rate_acquire needs at least one window")
    if isinstance(cost, bool) or not isinstance(cost, int) or cost < 1:
        raise ValueError(f"cost must be a whole number >= 1, got {cost!r}")
    for w in windows:
        if cost > w.burst:
            raise ValueError(f"cost {cost} exceeds the burst {w.burst} of window {w.id}: it could never go")


def _rate_snapshot(
    windows: Sequence[RateWindow], now: float, tats: Sequence[bytes], paused: bytes, queued: bytes
) -> RateSnapshot:
    """The snapshot the memory store would report for this limiter state (same function)."""
    state = alg.RateState(
        tats={w.id: float(t) for w, t in zip(windows, tats, strict=True) if t != b""},
        paused_until=float(paused),
    )
    snapshot = alg.rate_status(state, windows, now)[1]
    return dataclasses.replace(snapshot, queued=int(queued))


def _state_name(raw: bytes | str) -> BreakerStateName:
    name = _text(raw)
    if name == "closed":
        return "closed"
    if name == "open":
        return "open"
    if name == "half_open":
        return "half_open"
    if name == "isolated":
        return "isolated"
    raise StateStoreError(f"unknown breaker state {name!r} in a Redis reply")


def _breaker_answer(reply: Sequence[Any]) -> tuple[BreakerSnapshot, tuple[BreakerTransition, ...]]:
    state, failures, calls, opened_at, half_open_at, probes, probe_successes, count = reply[5:13]
    snapshot = BreakerSnapshot(
        state=_state_name(state),
        failures=int(failures),
        calls=int(calls),
        opened_at=_opt(opened_at),
        half_open_at=_opt(half_open_at),
        probes=int(probes),
        probe_successes=int(probe_successes),
    )
    rest = reply[13:]
    transitions = tuple(
        BreakerTransition(
            _state_name(rest[i]), _state_name(rest[i + 1]), _text(rest[i + 2]), float(rest[i + 3])
        )
        for i in range(0, 4 * int(count), 4)
    )
    return snapshot, transitions


# --- URLs --------------------------------------------------------------------------------------


def shown_url(url: str) -> str:
    """The URL without its password (for messages and reprs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    netloc = f"{parts.username}:***@{netloc}" if parts.username else f"***@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def open_redis_store(url: str) -> StateStore:
    """The store for ``state="redis://host:port/db?…"``.

    tether reads these query options (the others go to redis-py): ``namespace`` (key prefix,
    default ``tether:``), ``timeout`` (seconds per call, default 0.25), ``keep`` (seconds idle
    state outlives its use, default 60), ``cluster`` (``1``: Redis Cluster), ``on_state_error``
    (``local``, the default: keep working on in-process state while Redis fails, and say so;
    ``fail``: raise ``StateStoreError``) and ``retry_every`` (seconds between attempts to get
    back to Redis, default 2).
    """
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in query if k in URL_OPTIONS}
    rest = [(k, v) for k, v in query if k not in URL_OPTIONS]
    plain = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(rest), parts.fragment))
    shown = shown_url(url)
    on_error: OnStateError
    chosen = ours.get("on_state_error", "local")
    if chosen == "local":
        on_error = "local"
    elif chosen == "fail":
        on_error = "fail"
    else:
        raise SpecError(f"state URL {shown!r}: on_state_error must be 'local' or 'fail', got {chosen!r}")
    try:
        timeout = float(ours.get("timeout", RedisStore.DEFAULT_TIMEOUT))
        keep = float(ours.get("keep", RedisStore.DEFAULT_KEEP))
        retry_every = float(ours.get("retry_every", FallbackStore.DEFAULT_RETRY_EVERY))
        store = RedisStore(
            plain,
            namespace=ours.get("namespace", RedisStore.DEFAULT_NAMESPACE),
            timeout=timeout,
            keep=keep,
            cluster=ours.get("cluster", "0").lower() in ("1", "true", "yes"),
        )
        return FallbackStore(store, on_state_error=on_error, retry_every=retry_every)
    except ValueError as exc:
        raise SpecError(f"state URL {shown!r}: {exc}") from exc
