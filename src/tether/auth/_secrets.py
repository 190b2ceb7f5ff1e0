"""Secrets and where they come from.

A ``Secret`` holds a credential without showing it: ``repr``, ``str`` and f-strings print
``***``, it refuses to be pickled, and it compares in constant time. ``reveal()`` is the one way to
read the value, and every value tether reads is registered with the redaction registry
(``tether._redact``) so that it is masked wherever it shows up later (a log line, an error body
echoed by a server, a URL).

A *source* says where a secret lives: an environment variable, a file (JSON, YAML, ``.env`` or
plain text), the output of a command, or a hook (a sync or async callable, for secret managers).
A source reads lazily, caches the value, re-reads it every ``refresh_interval`` (24 h by default,
REQ-001 section 6) and on demand after the server refused it (``await source.refresh()``).
Several concurrent refreshes collapse into one read.

A source that cannot produce a value raises ``AuthenticationError`` naming the source
("environment variable EXAMPLE_API_KEY is not set") and never the value. Auth policies resolve
their sources when the client starts (``check()``), so a missing secret fails at start, not at
some later request.
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
import hmac
import inspect
import json
import math
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal, NoReturn

import yaml

from tether._clock import Clock, system_clock
from tether._redact import register_secret
from tether._units import Duration, parse_duration
from tether.errors import AuthenticationError, backend_cause

__all__ = [
    "DEFAULT_REFRESH_INTERVAL",
    "CommandSource",
    "EnvSource",
    "FileSource",
    "HookSource",
    "Secret",
    "SecretLike",
    "SecretSource",
    "ValueSource",
    "as_source",
    "command",
    "env",
    "file",
    "hook",
    "value",
]

#: How often a source is re-read, seconds (REQ-001 section 6: ``refresh_interval_hours: 24``).
DEFAULT_REFRESH_INTERVAL: Final = 24 * 3600.0
#: After a scheduled re-read fails, the old value is kept and the read is tried again this soon.
RETRY_AFTER_FAILED_READ: Final = 60.0
#: How long a secret command may run, seconds.
DEFAULT_COMMAND_TIMEOUT: Final = 30.0

_MASKED: Final = "***"


class Secret:
    """A credential whose value is hidden from ``repr``, ``str``, formatting and pickling.

    ``reveal()`` returns the value (and registers it for masking). Two secrets compare equal when
    their values are equal; the comparison takes the same time wherever the values differ.
    """

    __slots__ = ("__value",)

    def __init__(self, value: str | Secret) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError(f"a Secret holds a str, got {type(value).__name__}")
        self.__value = value
        register_secret(value)

    def reveal(self) -> str:
        """The value. It is registered for masking, so it never shows up in tether's output."""
        register_secret(self.__value)
        return self.__value

    def __repr__(self) -> str:
        return f"Secret('{_MASKED}')"

    def __str__(self) -> str:
        return _MASKED

    def __format__(self, format_spec: str) -> str:
        return _MASKED

    def __bool__(self) -> bool:
        return bool(self.__value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self.__value.encode(), other.__value.encode())

    def __hash__(self) -> int:
        return hash(hashlib.sha256(self.__value.encode()).digest())

    def __reduce__(self) -> NoReturn:
        raise TypeError("a tether Secret cannot be pickled; pass its source instead")

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self


class SecretSource(abc.ABC):
    """Where a secret lives. Reads lazily, caches, re-reads on an interval and on demand.

    Subclasses implement ``describe()`` (a name for messages, never the value) and ``_read()``.
    """

    def __init__(
        self, *, refresh_interval: Duration | None = DEFAULT_REFRESH_INTERVAL, clock: Clock | None = None
    ):
        interval = (
            math.inf
            if refresh_interval is None
            else parse_duration(refresh_interval, name="refresh_interval", allow_zero=False)
        )
        self._interval = interval
        self._clock: Clock | None = clock
        self._secret: Secret | None = None
        self._next_read = -math.inf
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._failures = 0

    # --- what subclasses provide -------------------------------------------------------------

    @abc.abstractmethod
    def describe(self) -> str:
        """What the source is, for messages: ``environment variable EXAMPLE_API_KEY``."""

    @abc.abstractmethod
    async def _read(self) -> str:
        """Read the value now. Raise ``AuthenticationError`` naming the source when it is missing."""

    # --- public ------------------------------------------------------------------------------

    @property
    def refresh_interval(self) -> float:
        """Seconds between scheduled re-reads (``inf``: never)."""
        return self._interval

    @property
    def clock(self) -> Clock:
        return self._clock or system_clock

    def use_clock(self, clock: Clock) -> None:
        """Time re-reads with ``clock`` unless the source was given its own (auth policies call this)."""
        if self._clock is None:
            self._clock = clock

    async def get(self) -> Secret:
        """The current secret: cached, re-read when ``refresh_interval`` has passed.

        The first read raises ``AuthenticationError`` when the secret is missing. When a scheduled
        re-read fails, the last good value is kept and the read is tried again a minute later.
        """
        cached = self._secret
        if cached is not None and self.clock.monotonic() < self._next_read:
            return cached
        async with self._get_lock():
            cached = self._secret
            if cached is not None and self.clock.monotonic() < self._next_read:
                return cached
            if cached is None:
                return await self._load()
            try:
                return await self._load()
            except AuthenticationError:
                self._failures += 1
                self._next_read = self.clock.monotonic() + min(self._interval, RETRY_AFTER_FAILED_READ)
                return cached

    async def refresh(self) -> Secret:
        """Re-read the secret now (after the server refused it). Raises when it cannot be read."""
        async with self._get_lock():
            return await self._load()

    async def refresh_if_current(self, used: Secret) -> Secret:
        """Re-read unless the value already changed since ``used`` was handed out.

        Many calls refused at once with the same secret cause one read, not one each.
        """
        async with self._get_lock():
            current = self._secret
            if current is not None and current is not used:
                return current
            return await self._load()

    async def check(self) -> None:
        """Resolve the secret now; raise ``AuthenticationError`` naming the source if it is missing."""
        await self.get()

    @property
    def failed_reads(self) -> int:
        """How many scheduled re-reads failed (the old value was kept each time)."""
        return self._failures

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()!r})"

    # --- internals ---------------------------------------------------------------------------

    def _get_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock = asyncio.Lock()
            self._lock_loop = loop
        return self._lock

    async def _load(self) -> Secret:
        raw = await self._read()
        if not raw:
            raise AuthenticationError(f"{self.describe()} is empty")
        fresh = Secret(raw)
        current = self._secret
        # Identity changes only when the value does, so holders can tell "rotated" by `is not`.
        if current is None or current != fresh:
            self._secret = current = fresh
        self._next_read = self.clock.monotonic() + self._interval
        return current

    def _missing(self, what: str) -> NoReturn:
        raise AuthenticationError(what)


class EnvSource(SecretSource):
    """A secret in an environment variable."""

    def __init__(
        self,
        name: str,
        *,
        refresh_interval: Duration | None = DEFAULT_REFRESH_INTERVAL,
        clock: Clock | None = None,
    ) -> None:
        if not name or "=" in name:
            raise ValueError(f"an environment variable name must be non-empty and without '=', got {name!r}")
        super().__init__(refresh_interval=refresh_interval, clock=clock)
        self.name = name

    def describe(self) -> str:
        return f"environment variable {self.name}"

    async def _read(self) -> str:
        raw = os.environ.get(self.name)
        if raw is None:
            self._missing(f"environment variable {self.name} is not set")
        return raw


FileFormat = Literal["json", "yaml", "env", "text"]
_FORMATS: Final = ("json", "yaml", "env", "text")


def _guess_format(path: Path) -> FileFormat:
    name = path.name.lower()
    if name.endswith(".json"):
        return "json"
    if name.endswith((".yaml", ".yml")):
        return "yaml"
    if name == ".env" or name.startswith(".env.") or name.endswith(".env"):
        return "env"
    return "text"


def parse_dotenv(text: str) -> dict[str, str]:
    """``KEY=VALUE`` lines (``export`` prefix, ``#`` comments, single or double quotes) as a dict."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("export "):
            stripped = stripped[len("export ") :].lstrip()
        key, sep, rest = stripped.partition("=")
        if not sep:
            continue
        key = key.strip()
        rest = rest.strip()
        if len(rest) >= 2 and rest[0] == rest[-1] and rest[0] in "'\"":
            quote, rest = rest[0], rest[1:-1]
            if quote == '"':
                rest = rest.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
        else:
            comment = rest.find(" #")
            if comment >= 0:
                rest = rest[:comment].rstrip()
        out[key] = rest
    return out


class FileSource(SecretSource):
    """A secret in a file: JSON, YAML or ``.env`` (pick a value with a dotted ``key``) or plain text."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        key: str | None = None,
        *,
        format: FileFormat | None = None,
        refresh_interval: Duration | None = DEFAULT_REFRESH_INTERVAL,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(refresh_interval=refresh_interval, clock=clock)
        self.path = Path(path)
        self.key = key
        if format is not None and format not in _FORMATS:
            raise ValueError(f"format must be one of {', '.join(_FORMATS)}, got {format!r}")
        self.format: FileFormat = format or _guess_format(self.path)
        if self.format == "text" and key is not None:
            raise ValueError(
                f"key {key!r} needs a JSON, YAML or .env file; {self.path} is read as plain text"
            )

    def describe(self) -> str:
        where = f"secret file {self.path}"
        return f"{where} (key {self.key})" if self.key else where

    async def _read(self) -> str:
        try:
            text = await asyncio.to_thread(self.path.read_text, encoding="utf-8")
        except FileNotFoundError:
            self._missing(f"secret file {self.path} does not exist")
        except (OSError, UnicodeDecodeError) as exc:
            self._missing(f"secret file {self.path} cannot be read ({type(exc).__name__})")
        if self.format == "text":
            return text.strip()
        data = self._parse(text)
        if self.key is None:
            if isinstance(data, str):
                return data.strip()
            self._missing(f"secret file {self.path} holds several values; name one with key=")
        return self._lookup(data, self.key)

    def _parse(self, text: str) -> Any:
        # Parser messages can quote the file, which holds secrets: never chain them.
        if self.format == "json":
            try:
                return json.loads(text)
            except ValueError:
                pass
            self._missing(f"secret file {self.path} is not valid JSON")
        if self.format == "yaml":
            try:
                return yaml.safe_load(text)
            except yaml.YAMLError:
                pass
            self._missing(f"secret file {self.path} is not valid YAML")
        return parse_dotenv(text)

    def _lookup(self, data: Any, key: str) -> str:
        parts = [key] if self.format == "env" else key.split(".")
        node = data
        for part in parts:
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                self._missing(f"key {key!r} not found in secret file {self.path}")
        if isinstance(node, bool) or node is None or isinstance(node, Mapping | list):
            self._missing(f"key {key!r} in secret file {self.path} is not a single value")
        return str(node).strip()


class CommandSource(SecretSource):
    """A secret printed by a command (``["op", "read", "op://vault/api/key"]``); no shell involved."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        timeout: Duration = DEFAULT_COMMAND_TIMEOUT,
        refresh_interval: Duration | None = DEFAULT_REFRESH_INTERVAL,
        clock: Clock | None = None,
    ) -> None:
        if isinstance(argv, str) or not argv or not all(isinstance(a, str) for a in argv):
            raise ValueError("a secret command is a non-empty list of strings (argv), never a shell line")
        super().__init__(refresh_interval=refresh_interval, clock=clock)
        self.argv: tuple[str, ...] = tuple(argv)
        self.timeout = parse_duration(timeout, name="timeout", allow_zero=False)

    def describe(self) -> str:
        return f"secret command {self.argv[0]!r}"

    async def _read(self) -> str:
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
        except FileNotFoundError:
            self._missing(f"secret command {self.argv[0]!r} was not found")
        except OSError as exc:
            self._missing(f"secret command {self.argv[0]!r} could not start ({type(exc).__name__})")
        try:
            async with asyncio.timeout(self.timeout):
                stdout, _ = await proc.communicate()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            self._missing(f"secret command {self.argv[0]!r} did not finish within {self.timeout:g}s")
        if proc.returncode != 0:
            self._missing(f"secret command {self.argv[0]!r} exited with status {proc.returncode}")
        try:
            return stdout.decode("utf-8").strip()
        except UnicodeDecodeError:
            self._missing(f"secret command {self.argv[0]!r} printed bytes that are not UTF-8")


HookResult = str | Secret | None
Hook = Callable[[], HookResult | Awaitable[HookResult]]


class HookSource(SecretSource):
    """A secret returned by a callable: sync or async, for secret managers (Vault, AWS, GCP …).

    A sync hook runs on the event loop, so it should be quick; use an async hook for network I/O.
    """

    def __init__(
        self,
        func: Hook,
        *,
        name: str | None = None,
        refresh_interval: Duration | None = DEFAULT_REFRESH_INTERVAL,
        clock: Clock | None = None,
    ) -> None:
        if not callable(func):
            raise ValueError(f"a secret hook must be callable, got {type(func).__name__}")
        super().__init__(refresh_interval=refresh_interval, clock=clock)
        self.func = func
        self.name = name or getattr(func, "__qualname__", None) or type(func).__name__

    def describe(self) -> str:
        return f"secret hook {self.name}"

    async def _read(self) -> str:
        try:
            result = self.func()
            if inspect.isawaitable(result):
                result = await result
        except AuthenticationError:
            raise
        except Exception as exc:
            raise AuthenticationError(
                f"secret hook {self.name} failed ({type(exc).__name__})"
            ) from backend_cause(exc)
        if isinstance(result, Secret):
            return result.reveal()
        if result is None:
            self._missing(f"secret hook {self.name} returned no secret")
        if not isinstance(result, str):
            self._missing(f"secret hook {self.name} returned {type(result).__name__}, not str or Secret")
        return result


class ValueSource(SecretSource):
    """A literal secret (for tests, or a value the caller already holds). Never re-read."""

    def __init__(self, secret: str | Secret) -> None:
        super().__init__(refresh_interval=None)
        self._value = secret if isinstance(secret, Secret) else Secret(secret)

    def describe(self) -> str:
        return "literal secret value"

    def __repr__(self) -> str:
        return f"value({_MASKED})"

    async def _read(self) -> str:
        return self._value.reveal()


SecretLike = str | Secret | SecretSource


def as_source(secret: SecretLike) -> SecretSource:
    """A source for loose input: a source itself, a ``Secret``, or a plain ``str`` (a literal)."""
    if isinstance(secret, SecretSource):
        return secret
    if isinstance(secret, str | Secret):
        return ValueSource(secret)
    raise TypeError(f"a secret is a tether.secret source, a Secret or a str; got {type(secret).__name__}")


# --- the public constructors (``tether.secret.env(...)`` …) ---------------------------------------


def env(
    name: str, *, refresh_interval: Duration | None = DEFAULT_REFRESH_INTERVAL, clock: Clock | None = None
) -> EnvSource:
    """The secret in environment variable ``name``."""
    return EnvSource(name, refresh_interval=refresh_interval, clock=clock)


def file(
    path: str | os.PathLike[str],
    key: str | None = None,
    *,
    format: FileFormat | None = None,
    refresh_interval: Duration | None = DEFAULT_REFRESH_INTERVAL,
    clock: Clock | None = None,
) -> FileSource:
    """The secret in a file; ``key`` is a dotted path into JSON / YAML, or a ``.env`` variable name."""
    return FileSource(path, key, format=format, refresh_interval=refresh_interval, clock=clock)


def command(
    argv: Sequence[str],
    *,
    timeout: Duration = DEFAULT_COMMAND_TIMEOUT,
    refresh_interval: Duration | None = DEFAULT_REFRESH_INTERVAL,
    clock: Clock | None = None,
) -> CommandSource:
    """The secret a command prints on stdout (stripped). ``argv`` is run without a shell."""
    return CommandSource(argv, timeout=timeout, refresh_interval=refresh_interval, clock=clock)


def hook(
    func: Hook,
    *,
    name: str | None = None,
    refresh_interval: Duration | None = DEFAULT_REFRESH_INTERVAL,
    clock: Clock | None = None,
) -> HookSource:
    """The secret a callable returns (sync or async; ``str`` or ``Secret``)."""
    return HookSource(func, name=name, refresh_interval=refresh_interval, clock=clock)


def value(secret: str | Secret) -> ValueSource:
    """A literal secret, for tests and for values already held in memory."""
    return ValueSource(secret)
