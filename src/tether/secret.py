"""Secrets and their sources: ``tether.secret.env("EXAMPLE_API_KEY")`` and friends.

- ``Secret``: a value hidden from ``repr``/``str``/logs; ``reveal()`` reads it.
- ``env(name)``, ``file(path, key=None)`` (JSON, YAML, ``.env`` or plain text; ``key`` is a
  dotted path), ``command(argv)`` (stdout, no shell), ``hook(callable)`` (sync or async, for secret
  managers), ``value(str)`` (a literal, for tests).

Every source is re-read every ``refresh_interval`` (24 h by default) and on demand after the
server refused the credential (``await source.refresh()``); a missing secret raises
``tether.errors.AuthenticationError`` naming the source, never the value.
"""

from __future__ import annotations

from tether.auth._secrets import (
    DEFAULT_REFRESH_INTERVAL,
    CommandSource,
    EnvSource,
    FileSource,
    HookSource,
    Secret,
    SecretLike,
    SecretSource,
    ValueSource,
    as_source,
    command,
    env,
    file,
    hook,
    value,
)

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
