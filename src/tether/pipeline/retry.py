"""Retry: repeat a failed attempt after a wait, when it is safe and worth it.

Which failures are retried
    Statuses in ``retry_on`` (default 429, 500, 502, 503, 504) and the error kinds in
    ``retry_on_errors``: ``"connection"`` (``tether.errors.ConnectionError``), ``"timeout"``
    (``TimeoutError`` of every phase but ``"total"``) and ``"body_read"`` (``ResponseError``
    other than ``too_large``); the spec's names ``network_error``, ``connection_error``,
    ``body_read_error`` are aliases, and ``rate_limited`` (429), ``service_unavailable`` (503)
    and ``server_error`` (5xx) add statuses. ``when=`` replaces that choice with a predicate::

        retry_on_status(503) | retry_on(tether.errors.ConnectionError)
        retry_on(tether.errors.TimeoutError) & ~retry_on_status(504)

    Whatever the predicate says, these are never retried: ``Rejected`` errors (nothing was sent:
    an open breaker, the local rate limiter, a full bulkhead), statuses in ``never_retry_on``
    (400, 401, 403, 404, 422; the auth policy handles its one 401 refresh), validation /
    not-found / authentication errors raised without a status, the spent total deadline, and
    successful responses.

Which calls are retried
    Idempotent ones (``ctx.is_idempotent(method)``: GET, HEAD, OPTIONS, PUT, DELETE, TRACE, or the
    endpoint marked idempotent), and POST / PATCH only when they carry an idempotency key
    (``ctx.idempotency_key`` or the ``Idempotency-Key`` header; ``auto_idempotency_key=True``
    adds one, the same on every attempt) or ``retry_non_idempotent=True``. A request whose body is
    a stream (not bytes) cannot be replayed and is sent once. Each retry sends a fresh copy of the
    request, built from the headers as they were before the first attempt (so auth re-signs it).

How long to wait before attempt ``n + 1`` (``n`` = the attempt that failed, 1, 2, …)::

    exponential: base(n) = initial × multiplier^(n−1)     defaults: 1, 2, 4, 8 s
    linear:      base(n) = initial × n                     1, 2, 3, 4 s
    fixed:       base(n) = initial                          1, 1, 1, 1 s
    delay(n) = min(max_delay, base(n))
    wait(n)  = uniform(0, delay(n)) with jitter (full jitter), delay(n) without
    wait(n)  = delay(n) + uniform(0, jitter_max) with jitter and ``jitter_max`` (bounded jitter)

    A wait the server asked for (``Retry-After`` as seconds or an HTTP-date; the rate-limit reset
    on a 429 or when no quota remains, see ``tether.pipeline._headers.server_wait``) replaces the
    backoff and is honoured exactly: never shorter, no jitter. If it is longer than
    ``max_retry_after`` (default: ``max_delay``) or than what is left of the call's deadline, the
    call fails at once with ``RateLimitExceeded(retry_after=asked)`` (``retry.refused_wait``). A
    backoff wait that would reach the deadline is not started: the last error is raised.

Retry budget
    So that an outage does not multiply the load on the upstream, retries are also bounded per
    service over a sliding window: ``retries ≤ ratio × calls + min_per_second × window``
    (defaults 10 % of calls, plus a floor of 10 retries per second, i.e. 100 per 10 s window).
    Counts live in the state store (per-second buckets with expiry), so several workers share one
    budget. Spent → the last error is raised (``retry.budget_exhausted``).

Events: ``retry.scheduled`` (attempt about to be made, delay, reason, source of the wait),
``retry.gave_up`` (attempts, reason), ``retry.refused_wait``, ``retry.budget_exhausted``.
``ctx.attempt`` is the number of the attempt in flight; ``ctx.meta["attempts"]`` how many were made.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Final, Literal

import httpx2

from tether import events as ev
from tether._config import DEFAULT, Default
from tether._context import CallContext, context_of
from tether._units import Duration, parse_duration
from tether.errors import (
    AuthenticationError,
    ConnectionError,
    NotFoundError,
    RateLimitExceeded,
    Rejected,
    ResponseError,
    TetherError,
    TimeoutError,
    ValidationError,
)
from tether.pipeline._base import Handler, PolicyEnv
from tether.pipeline._headers import RESET_KINDS, RateLimitHeaderNames, ResetKind, ServerWait, server_wait
from tether.state.memory import MemoryStore

if TYPE_CHECKING:
    from tether.state import StateStore

__all__ = [
    "AttemptOutcome",
    "Retry",
    "RetryBudget",
    "RetryPolicy",
    "RetryPredicate",
    "retry_if",
    "retry_on",
    "retry_on_status",
]

Backoff = Literal["exponential", "linear", "fixed"]
BACKOFFS: Final[tuple[str, ...]] = ("exponential", "linear", "fixed")

#: Failure kinds for ``Retry.retry_on_errors`` (plain data, as a spec names them): name → canonical kind.
ERROR_KINDS: Final[dict[str, str]] = {
    "connection": "connection",  # tether.errors.ConnectionError: refused, reset, DNS, TLS
    "connection_error": "connection",
    "network_error": "connection",
    "timeout": "timeout",  # tether.errors.TimeoutError of any phase but total
    "body_read": "body_read",  # tether.errors.ResponseError while reading the body (not too_large)
    "body_read_error": "body_read",
    "rate_limited": "rate_limited",  # status 429
    "service_unavailable": "service_unavailable",  # status 503
    "server_error": "server_error",  # any 5xx status
}


# --- outcomes and predicates ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """What one attempt ended with: a response, or an error. Predicates look at this."""

    attempt: int
    request: httpx2.Request
    response: httpx2.Response | None = None
    error: BaseException | None = None

    @property
    def status_code(self) -> int | None:
        """The HTTP status, whether it came back as a response or inside an error."""
        if self.response is not None:
            return self.response.status_code
        if isinstance(self.error, TetherError):
            return self.error.status_code
        return None

    @property
    def http_response(self) -> httpx2.Response | None:
        """The response, whether returned or carried by the error."""
        if self.response is not None:
            return self.response
        return self.error.response if isinstance(self.error, TetherError) else None

    def describe(self) -> str:
        """A short reason for events: ``status 503``, ``ConnectionError``, ``TimeoutError(read)``."""
        if self.error is None:
            return f"status {self.status_code}"
        name = type(self.error).__name__
        if isinstance(self.error, TimeoutError):
            return f"{name}({self.error.phase})"
        if self.status_code is not None:
            return f"{name} (status {self.status_code})"
        return name


class RetryPredicate:
    """A small callable of an ``AttemptOutcome`` that says "retry this"; combine with ``| & ~``."""

    __slots__ = ("_fn", "_name")

    def __init__(self, fn: Callable[[AttemptOutcome], bool], name: str) -> None:
        self._fn = fn
        self._name = name

    def __call__(self, outcome: AttemptOutcome) -> bool:
        return bool(self._fn(outcome))

    def __or__(self, other: RetryPredicate) -> RetryPredicate:
        return RetryPredicate(lambda o: self(o) or other(o), f"({self._name} | {other._name})")

    def __and__(self, other: RetryPredicate) -> RetryPredicate:
        return RetryPredicate(lambda o: self(o) and other(o), f"({self._name} & {other._name})")

    def __invert__(self) -> RetryPredicate:
        return RetryPredicate(lambda o: not self(o), f"~{self._name}")

    def __repr__(self) -> str:
        return self._name


def retry_on_status(*statuses: int) -> RetryPredicate:
    """Retry when the attempt's HTTP status (returned or inside the error) is one of ``statuses``."""
    codes = frozenset(_check_status(s, "retry_on_status") for s in statuses)
    return RetryPredicate(
        lambda o: o.status_code in codes, f"retry_on_status({', '.join(map(str, sorted(codes)))})"
    )


def retry_on(*error_types: type[BaseException]) -> RetryPredicate:
    """Retry when the attempt raised an instance of one of ``error_types``."""
    for t in error_types:
        if not (isinstance(t, type) and issubclass(t, BaseException)):
            raise TypeError(f"retry_on takes exception classes, got {t!r}")
    types = tuple(error_types)
    names = ", ".join(t.__name__ for t in types)
    return RetryPredicate(lambda o: o.error is not None and isinstance(o.error, types), f"retry_on({names})")


def retry_if(fn: Callable[[AttemptOutcome], bool], *, name: str | None = None) -> RetryPredicate:
    """Wrap any callable of an ``AttemptOutcome`` as a composable predicate."""
    return RetryPredicate(fn, name or str(getattr(fn, "__name__", "retry_if")))


def _error_kinds(kinds: Collection[str]) -> RetryPredicate:
    wanted = {ERROR_KINDS[k] for k in kinds}

    def match(o: AttemptOutcome) -> bool:
        err = o.error
        if isinstance(err, ConnectionError):
            return "connection" in wanted
        if isinstance(err, TimeoutError):
            return "timeout" in wanted
        if isinstance(err, ResponseError) and err.status_code is None:
            return "body_read" in wanted and err.reason in ResponseError.TRANSIENT_REASONS
        status = o.status_code
        if status is None:
            return False
        return (
            (status == 429 and "rate_limited" in wanted)
            or (status == 503 and "service_unavailable" in wanted)
            or (500 <= status <= 599 and "server_error" in wanted)
        )

    return RetryPredicate(match, f"retry_on_errors({', '.join(sorted(wanted))})")


def _check_status(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        raise ValueError(f"{where} takes HTTP status codes (100-599), got {value!r}")
    return value


# --- options ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryBudget:
    """A cap on retries per service over a sliding window, so an outage does not multiply load.

    Allowed retries in any ``window`` = ``ratio × calls in that window + min_per_second × window``.
    The floor ``min_per_second`` is in retries per second and is summed over the window (10/s ×
    10 s = 100 retries per window), so a quiet service can still retry its few failures.
    """

    DEFAULT_RATIO: ClassVar[float] = 0.1
    DEFAULT_WINDOW: ClassVar[float] = 10.0
    DEFAULT_MIN_PER_SECOND: ClassVar[float] = 10.0

    ratio: float = DEFAULT_RATIO
    window: Duration = DEFAULT_WINDOW
    min_per_second: float = DEFAULT_MIN_PER_SECOND

    def __post_init__(self) -> None:
        if isinstance(self.ratio, bool) or not isinstance(self.ratio, int | float):
            raise ValueError(f"RetryBudget.ratio must be a number, got {self.ratio!r}")
        if not (math.isfinite(self.ratio) and self.ratio >= 0):
            raise ValueError(f"RetryBudget.ratio must be zero or positive, got {self.ratio!r}")
        window = parse_duration(self.window, name="RetryBudget.window")
        if window < 1:
            raise ValueError(
                f"RetryBudget.window must be at least 1 second (it is kept in 1 s buckets), got {window:g}"
            )
        object.__setattr__(self, "window", window)
        if isinstance(self.min_per_second, bool) or not isinstance(self.min_per_second, int | float):
            raise ValueError(f"RetryBudget.min_per_second must be a number, got {self.min_per_second!r}")
        if not (math.isfinite(self.min_per_second) and self.min_per_second >= 0):
            raise ValueError(
                f"RetryBudget.min_per_second must be zero or positive, got {self.min_per_second!r}"
            )

    @property
    def window_seconds(self) -> float:
        return parse_duration(self.window, name="RetryBudget.window")

    def allowed(self, calls: float) -> float:
        """Retries allowed in one window that saw ``calls`` calls."""
        return self.ratio * calls + self.min_per_second * self.window_seconds


@dataclass(frozen=True, slots=True)
class Retry:
    """Retry options (DESIGN 4). Plain data: the spec's ``retry:`` section builds exactly this.

    See the module docstring for the rules and the backoff formula. ``when`` (a
    ``RetryPredicate``) replaces ``retry_on`` + ``retry_on_errors`` when given.
    """

    kind: ClassVar[str] = "retry"
    DEFAULT_ATTEMPTS: ClassVar[int] = 5
    DEFAULT_INITIAL: ClassVar[float] = 1.0
    DEFAULT_MULTIPLIER: ClassVar[float] = 2.0
    DEFAULT_MAX_DELAY: ClassVar[float] = 60.0
    DEFAULT_BACKOFF: ClassVar[Backoff] = "exponential"
    DEFAULT_JITTER: ClassVar[bool] = True
    DEFAULT_RETRY_ON: ClassVar[frozenset[int]] = frozenset({429, 500, 502, 503, 504})
    DEFAULT_NEVER_RETRY_ON: ClassVar[frozenset[int]] = frozenset({400, 401, 403, 404, 422})
    DEFAULT_RETRY_ON_ERRORS: ClassVar[frozenset[str]] = frozenset({"connection", "timeout", "body_read"})
    DEFAULT_IDEMPOTENCY_HEADER: ClassVar[str] = "Idempotency-Key"
    DEFAULT_RETRY_AFTER_HEADER: ClassVar[str] = "Retry-After"
    DEFAULT_LIMIT_HEADER: ClassVar[str] = "X-RateLimit-Limit"
    DEFAULT_REMAINING_HEADER: ClassVar[str] = "X-RateLimit-Remaining"
    DEFAULT_RESET_HEADER: ClassVar[str] = "X-RateLimit-Reset"
    DEFAULT_RESET_HEADER_KIND: ClassVar[ResetKind] = "auto"
    DEFAULT_BUDGET: ClassVar[RetryBudget] = RetryBudget()

    attempts: int = DEFAULT_ATTEMPTS
    initial: Duration = DEFAULT_INITIAL
    multiplier: float = DEFAULT_MULTIPLIER
    max_delay: Duration = DEFAULT_MAX_DELAY
    backoff: Backoff = DEFAULT_BACKOFF
    jitter: bool = DEFAULT_JITTER
    #: Bounded jitter: add up to this many seconds to each delay instead of full jitter.
    jitter_max: Duration | None = None
    retry_on: Collection[int] = DEFAULT_RETRY_ON
    never_retry_on: Collection[int] = DEFAULT_NEVER_RETRY_ON
    retry_on_errors: Collection[str] = DEFAULT_RETRY_ON_ERRORS
    when: RetryPredicate | None = None
    #: Longest server-asked wait to honour; ``DEFAULT`` = ``max_delay``.
    max_retry_after: Duration | Default = DEFAULT
    respect_retry_after: bool = True
    retry_non_idempotent: bool = False
    auto_idempotency_key: bool = False
    idempotency_header: str = DEFAULT_IDEMPOTENCY_HEADER
    budget: RetryBudget | None = DEFAULT_BUDGET
    retry_after_header: str = DEFAULT_RETRY_AFTER_HEADER
    limit_header: str = DEFAULT_LIMIT_HEADER
    remaining_header: str = DEFAULT_REMAINING_HEADER
    reset_header: str = DEFAULT_RESET_HEADER
    reset_header_kind: ResetKind = DEFAULT_RESET_HEADER_KIND

    def __post_init__(self) -> None:
        put = object.__setattr__
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise ValueError(f"Retry.attempts must be an integer, got {self.attempts!r}")
        if self.attempts < 1:
            raise ValueError(f"Retry.attempts must be at least 1, got {self.attempts}")
        initial = parse_duration(self.initial, name="Retry.initial")
        max_delay = parse_duration(self.max_delay, name="Retry.max_delay")
        put(self, "initial", initial)
        put(self, "max_delay", max_delay)
        if max_delay < initial:
            raise ValueError(
                f"Retry.max_delay ({max_delay:g}s) must not be less than Retry.initial ({initial:g}s)"
            )
        if (
            isinstance(self.multiplier, bool)
            or not isinstance(self.multiplier, int | float)
            or not math.isfinite(self.multiplier)
            or self.multiplier < 1
        ):
            raise ValueError(
                f"Retry.multiplier must be a finite number of at least 1, got {self.multiplier!r}"
            )
        if self.backoff not in BACKOFFS:
            raise ValueError(f"Retry.backoff must be one of {', '.join(BACKOFFS)}, got {self.backoff!r}")
        retry_on = frozenset(_check_status(s, "Retry.retry_on") for s in self.retry_on)
        never = frozenset(_check_status(s, "Retry.never_retry_on") for s in self.never_retry_on)
        both = retry_on & never
        if both:
            raise ValueError(
                f"Retry.retry_on and Retry.never_retry_on must not share a status, got {sorted(both)} in both"
            )
        put(self, "retry_on", retry_on)
        put(self, "never_retry_on", never)
        if isinstance(self.retry_on_errors, str):
            raise ValueError(
                "Retry.retry_on_errors must be a collection of kinds, "
                f"got the string {self.retry_on_errors!r}"
            )
        kinds = frozenset(self.retry_on_errors)
        unknown = sorted(kinds - ERROR_KINDS.keys())
        if unknown:
            raise ValueError(
                f"Retry.retry_on_errors takes {', '.join(sorted(ERROR_KINDS))}; "
                f"got unknown {', '.join(unknown)}"
            )
        put(self, "retry_on_errors", kinds)
        if self.when is not None and not isinstance(self.when, RetryPredicate):
            raise ValueError(
                f"Retry.when must be a RetryPredicate (retry_on_status(...), retry_on(...), retry_if(fn)), "
                f"got {self.when!r}"
            )
        if self.jitter_max is not None:
            put(self, "jitter_max", parse_duration(self.jitter_max, name="Retry.jitter_max"))
        if isinstance(self.max_retry_after, Default):
            put(self, "max_retry_after", max_delay)
        else:
            put(self, "max_retry_after", parse_duration(self.max_retry_after, name="Retry.max_retry_after"))
        for name in (
            "idempotency_header",
            "retry_after_header",
            "limit_header",
            "remaining_header",
            "reset_header",
        ):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"Retry.{name} must be a header name, got {value!r}")
        if self.reset_header_kind not in RESET_KINDS:
            raise ValueError(
                f"Retry.reset_header_kind must be one of {', '.join(RESET_KINDS)}, "
                f"got {self.reset_header_kind!r}"
            )
        if self.budget is not None and not isinstance(self.budget, RetryBudget):
            raise ValueError(f"Retry.budget must be a RetryBudget or None, got {self.budget!r}")

    def build(self, env: PolicyEnv, *, rng: random.Random | None = None) -> RetryPolicy:
        """The runtime policy. ``rng`` (for the jitter) is injectable so tests can seed it."""
        return RetryPolicy(self, env, rng=rng)


# --- the retry budget ledger ------------------------------------------------------------------


class _BudgetLedger:
    """Per-second call and retry counters in the state store, summed over the window."""

    __slots__ = ("_buckets", "_budget", "_clock", "_prefix", "_store", "_ttl")

    def __init__(self, budget: RetryBudget, env: PolicyEnv) -> None:
        self._budget = budget
        self._store: StateStore = env.store if env.store is not None else MemoryStore()
        self._clock = env.clock
        self._prefix = f"{env.service}:retry_budget"
        self._buckets = math.ceil(budget.window_seconds)
        self._ttl = float(self._buckets + 1)

    def _second(self) -> tuple[int, float]:
        now = self._clock.time()
        return math.floor(now), now

    async def _sum(self, what: str, second: int, now: float) -> float:
        total = 0.0
        for s in range(second - self._buckets + 1, second + 1):
            total += await self._store.get_counter(f"{self._prefix}:{what}:{s}", now=now)
        return total

    async def deposit(self) -> None:
        """Count one call."""
        second, now = self._second()
        await self._store.incr(f"{self._prefix}:calls:{second}", 1.0, ttl=self._ttl, now=now)

    async def withdraw(self) -> tuple[bool, float, float]:
        """Take one retry if the window allows it: ``(allowed, retries in window, limit)``.

        Reserve first, then check, then give back: two workers cannot both take the last retry.
        """
        second, now = self._second()
        key = f"{self._prefix}:retries:{second}"
        await self._store.incr(key, 1.0, ttl=self._ttl, now=now)
        retries = await self._sum("retries", second, now)
        limit = self._budget.allowed(await self._sum("calls", second, now))
        if retries > limit:
            await self._store.incr(key, -1.0, ttl=self._ttl, now=now)
            return False, retries - 1, limit
        return True, retries, limit


# --- the runtime policy -----------------------------------------------------------------------

_NON_IDEMPOTENT_AUTO_KEY: Final = frozenset({"POST", "PATCH"})


class RetryPolicy:
    """Runtime of ``Retry``. Immutable after build; per-call state lives in the ``CallContext``."""

    __slots__ = (
        "_attempts",
        "_auto_key",
        "_backoff",
        "_budget",
        "_clock",
        "_env",
        "_events",
        "_header_names",
        "_idempotency_header",
        "_initial",
        "_jitter",
        "_jitter_max",
        "_max_delay",
        "_max_retry_after",
        "_multiplier",
        "_never",
        "_predicate",
        "_respect_retry_after",
        "_retry_after_header",
        "_retry_non_idempotent",
        "_rng",
        "options",
    )

    def __init__(self, options: Retry, env: PolicyEnv, *, rng: random.Random | None = None) -> None:
        self.options = options
        self._env = env
        self._clock = env.clock
        self._events = env.events
        self._rng = rng if rng is not None else random.Random()
        self._attempts = options.attempts
        self._initial = parse_duration(options.initial)
        self._max_delay = parse_duration(options.max_delay)
        self._multiplier = float(options.multiplier)
        self._backoff: Backoff = options.backoff
        self._jitter = options.jitter
        self._jitter_max = None if options.jitter_max is None else parse_duration(options.jitter_max)
        limit = options.max_retry_after
        self._max_retry_after = self._max_delay if isinstance(limit, Default) else parse_duration(limit)
        self._respect_retry_after = options.respect_retry_after
        self._retry_non_idempotent = options.retry_non_idempotent
        self._auto_key = options.auto_idempotency_key
        self._idempotency_header = options.idempotency_header
        self._retry_after_header = options.retry_after_header
        self._header_names = RateLimitHeaderNames(
            options.limit_header, options.remaining_header, options.reset_header, options.reset_header_kind
        )
        self._never = frozenset(options.never_retry_on)
        self._predicate = (
            options.when
            if options.when is not None
            else retry_on_status(*options.retry_on) | _error_kinds(options.retry_on_errors)
        )
        self._budget = _BudgetLedger(options.budget, env) if options.budget is not None else None

    def __repr__(self) -> str:
        return f"RetryPolicy(attempts={self._attempts}, backoff={self._backoff!r}, when={self._predicate!r})"

    # --- the schedule ----------------------------------------------------------------------

    def delay(self, failed_attempt: int) -> float:
        """``delay(n)`` of the module docstring: the capped backoff after attempt ``n``, no jitter."""
        n = max(1, failed_attempt)
        if self._backoff == "fixed":
            base = self._initial
        elif self._backoff == "linear":
            base = self._initial * n
        else:
            try:
                base = self._initial * self._multiplier ** (n - 1)
            except OverflowError:
                base = math.inf
        return min(self._max_delay, base)

    def wait(self, failed_attempt: int) -> float:
        """``wait(n)``: the delay with jitter applied (when on): full, or bounded by ``jitter_max``."""
        delay = self.delay(failed_attempt)
        if not self._jitter:
            return delay
        if self._jitter_max is not None:
            return delay + self._rng.uniform(0.0, self._jitter_max)
        return self._rng.uniform(0.0, delay)

    # --- deciding --------------------------------------------------------------------------

    def retryable(self, outcome: AttemptOutcome) -> bool:
        """Whether this outcome is a failure worth another attempt (ignoring method, budget, time)."""
        err = outcome.error
        if err is None:
            status = outcome.status_code
            if status is None or status < 400 or status in self._never:
                return False
        else:
            if isinstance(err, Rejected):
                return False
            if isinstance(err, TimeoutError) and err.phase == "total":
                return False
            status = outcome.status_code
            if status is not None and status in self._never:
                return False
            if status is None and isinstance(err, ValidationError | NotFoundError | AuthenticationError):
                return False
        return self._predicate(outcome)

    def _server_wait(self, outcome: AttemptOutcome) -> ServerWait | None:
        if not self._respect_retry_after:
            return None
        response = outcome.http_response
        if response is not None:
            asked = server_wait(
                response.headers,
                now=self._clock.time(),
                status=response.status_code,
                names=self._header_names,
                retry_after_header=self._retry_after_header,
            )
            if asked is not None:
                return asked
        err = outcome.error
        if isinstance(err, TetherError) and err.retry_after is not None:
            return ServerWait(err.retry_after, "error")
        return None

    # --- idempotency and replay ------------------------------------------------------------

    def _prepare_idempotency(self, request: httpx2.Request, ctx: CallContext) -> None:
        header = self._idempotency_header
        sent = request.headers.get(header)
        if ctx.idempotency_key is None and sent:
            ctx.idempotency_key = sent
        elif ctx.idempotency_key is not None and sent is None:
            request.headers[header] = ctx.idempotency_key
        if (
            self._auto_key
            and ctx.idempotency_key is None
            and request.method in _NON_IDEMPOTENT_AUTO_KEY
            and not ctx.is_idempotent(request.method)
        ):
            ctx.idempotency_key = uuid.uuid4().hex
            request.headers[header] = ctx.idempotency_key

    def _may_retry_call(self, request: httpx2.Request, ctx: CallContext) -> str | None:
        """``None`` when this call may be retried, else why not."""
        if not isinstance(request.stream, httpx2.ByteStream):
            return "body_not_replayable"
        if self._retry_non_idempotent or ctx.idempotency_key is not None or ctx.is_idempotent(request.method):
            return None
        return "not_idempotent"

    @staticmethod
    def _fresh(original: httpx2.Request, headers: httpx2.Headers) -> httpx2.Request:
        copy = httpx2.Request(
            original.method,
            original.url,
            headers=headers.copy(),
            stream=original.stream,
            extensions=original.extensions,
        )
        copy.read()  # bytes body: loads .content from the (re-iterable) ByteStream
        return copy

    # --- the loop --------------------------------------------------------------------------

    async def __call__(self, request: httpx2.Request, next: Handler) -> httpx2.Response:
        ctx = context_of(request)
        self._prepare_idempotency(request, ctx)
        refusal = self._may_retry_call(request, ctx)
        if self._budget is not None:
            await self._budget.deposit()
        template = request.headers.copy()
        current = request
        attempt = 0
        while True:
            attempt += 1
            ctx.attempt = attempt
            ctx.meta["attempts"] = attempt
            if attempt > 1:
                current = self._fresh(request, template)
            try:
                response = await next(current)
            except TetherError as exc:
                outcome = AttemptOutcome(attempt, current, None, exc)
            else:
                outcome = AttemptOutcome(attempt, current, response, None)
                if not self.retryable(outcome):
                    return response
            if outcome.error is not None and not self.retryable(outcome):
                raise outcome.error
            delay = await self._plan(outcome, ctx, refusal)
            if delay is None:  # giving up: the last failure is the call's result
                if outcome.error is not None:
                    raise outcome.error
                assert outcome.response is not None
                return outcome.response
            if outcome.response is not None:
                await outcome.response.aclose()
            await self._clock.sleep(delay)

    async def _plan(self, outcome: AttemptOutcome, ctx: CallContext, refusal: str | None) -> float | None:
        """The wait before the next attempt; ``None`` to give up; raises to refuse a server's wait."""
        attempt = outcome.attempt
        reason = outcome.describe()
        asked = self._server_wait(outcome)
        if refusal is not None:
            self._give_up(outcome, ctx, refusal, asked)
            return None
        if attempt >= self._attempts:
            self._give_up(outcome, ctx, "attempts_exhausted", asked)
            return None
        remaining = ctx.remaining(self._clock.monotonic())
        if asked is not None:
            limit = None
            if asked.seconds > self._max_retry_after:
                limit = "max_retry_after"
            elif remaining is not None and asked.seconds >= remaining:
                limit = "deadline"
            if limit is not None:
                raise self._refuse(outcome, ctx, asked, limit, remaining)
            delay, source = asked.seconds, asked.source
        else:
            delay, source = self.wait(attempt), "backoff"
            if remaining is not None and delay >= remaining:
                self._give_up(outcome, ctx, "deadline", None)
                return None
        if self._budget is not None:
            ok, used, allowed = await self._budget.withdraw()
            if not ok:
                if self._events.active:
                    self._events.emit(
                        ev.RETRY_BUDGET_EXHAUSTED,
                        endpoint=ctx.endpoint,
                        attempt=attempt,
                        retries_in_window=used,
                        allowed=round(allowed, 3),
                        reason=reason,
                    )
                self._give_up(outcome, ctx, "budget_exhausted", asked)
                return None
        if self._events.active:
            self._events.emit(
                ev.RETRY_SCHEDULED,
                endpoint=ctx.endpoint,
                attempt=attempt + 1,
                delay=round(delay, 6),
                reason=reason,
                source=source,
                method=outcome.request.method,
            )
        return delay

    def _give_up(self, outcome: AttemptOutcome, ctx: CallContext, why: str, asked: ServerWait | None) -> None:
        """Report giving up; the last error learns the wait the server asked for, if any."""
        if self._events.active:
            self._events.emit(
                ev.RETRY_GAVE_UP,
                endpoint=ctx.endpoint,
                attempts=outcome.attempt,
                reason=why,
                last=outcome.describe(),
                method=outcome.request.method,
            )
        err = outcome.error
        if isinstance(err, TetherError) and err.retry_after is None and asked is not None:
            err.retry_after = asked.seconds

    def _refuse(
        self,
        outcome: AttemptOutcome,
        ctx: CallContext,
        asked: ServerWait,
        limit: str,
        remaining: float | None,
    ) -> RateLimitExceeded:
        bound = self._max_retry_after if limit == "max_retry_after" else (remaining or 0.0)
        if self._events.active:
            self._events.emit(
                ev.RETRY_REFUSED_WAIT,
                endpoint=ctx.endpoint,
                attempt=outcome.attempt,
                retry_after=asked.seconds,
                source=asked.source,
                limit=limit,
                bound=round(bound, 6),
            )
        what = "max_retry_after" if limit == "max_retry_after" else "the time left before the deadline"
        error = RateLimitExceeded(
            f"the server asked to wait {asked.seconds:g}s ({asked.source}) after attempt {outcome.attempt}, "
            f"longer than {what} ({bound:g}s); not waiting",
            service=ctx.service,
            endpoint=ctx.endpoint,
            request_id=ctx.request_id,
            retry_after=asked.seconds,
            response=outcome.http_response,
        )
        if outcome.error is not None:
            error.__cause__ = outcome.error
        return error
