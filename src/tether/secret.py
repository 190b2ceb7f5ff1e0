"""Secrets and their sources: ``tether.secret.env("EXAMPLE_API_KEY")`` and friends.

- ``Secret``: a value hidden from ``repr``/``str``/logs; ``reveal()`` reads it.
- ``env(name)``, ``file(path, key=None)`` (JSON, YAML, ``.env`` or plain text; ``key`` is a
  dotted path), ``command(argv)`` (stdout, no shell), ``hook(callable)`` (sync or async, for secret
  managers), ``value(str)`` (a literal, for tests).
- ``aws_secrets_manager(name, region=...)`` (``pip install 'tether[aws]'``) and
  ``gcp_secret_manager(project, name)`` (``pip install 'tether[gcp]'``): secret managers.

Every source is re-read every ``refresh_interval`` (24 h by default) and on demand after the
server refused the credential (``await source.refresh()``); a missing secret raises
``tether.errors.AuthenticationError`` naming the source, never the value.
"""

from __future__ import annotations

from tether.auth._managers import (
    AwsSecretsManagerSource,
    GcpSecretManagerSource,
    aws_secrets_manager,
    gcp_secret_manager,
)
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
    "AwsSecretsManagerSource",
    "CommandSource",
    "EnvSource",
    "FileSource",
    "GcpSecretManagerSource",
    "HookSource",
    "Secret",
    "SecretLike",
    "SecretSource",
    "ValueSource",
    "as_source",
    "aws_secrets_manager",
    "command",
    "env",
    "file",
    "gcp_secret_manager",
    "hook",
    "value",
]
