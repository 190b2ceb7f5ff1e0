"""Auth options from a spec's ``authentication:`` section.

::

    authentication:
      type: api_key          # api_key | bearer | basic | oauth2 | jwt | none
      config: {key_location: header, key_name: X-API-Key, secret: "${EXAMPLE_API_KEY}"}

A secret value in ``config`` is a string (after the loader's ``${VAR}`` interpolation: a literal)
or a mapping naming a source: ``{env: NAME}``, ``{file: path, key: dotted.key}``,
``{command: [argv...]}``, ``{aws_secrets_manager: name, region: …, endpoint: …, key: …}``,
``{gcp_secret_manager: name, project: …, endpoint: …, key: …}``, each with an optional
``refresh_interval``. ``from_spec`` raises
``SpecError`` naming the key and the rule broken (never a secret value).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from tether._units import Duration
from tether.auth._base import AuthOptions
from tether.auth._managers import aws_secrets_manager, gcp_secret_manager
from tether.auth._oauth2 import OAuth2ClientCredentials, OAuth2RefreshToken
from tether.auth._secrets import DEFAULT_REFRESH_INTERVAL, SecretLike, as_source, command, env, file
from tether.auth._static import ApiKey, Basic, Bearer
from tether.errors import SpecError

__all__ = ["AUTH_TYPES", "from_spec"]

AUTH_TYPES: Final = ("api_key", "bearer", "basic", "oauth2", "oauth", "jwt", "none")

# Keys every type accepts (the INT template lists them under every type):
#   token_refresh: true/false (re-read the secret / refresh the token before it expires) or a duration
#                  (for oauth2: how long before expiry);
#   expires_in:    seconds; oauth2: lifetime assumed when the token response has none;
#                  other types: how often secret sources are re-read.
_COMMON: Final = frozenset({"origin", "token_refresh", "expires_in"})
_KEYS: Final[Mapping[str, frozenset[str]]] = {
    "api_key": _COMMON | {"key_location", "key_name", "secret", "value"},
    "bearer": _COMMON | {"secret"},
    "jwt": _COMMON | {"secret"},
    "basic": _COMMON | {"username", "password"},
    "oauth2": _COMMON
    | {
        "grant_type",
        "token_url",
        "client_id",
        "client_secret",
        "refresh_token",
        "scopes",
        "audience",
        "extra",
        "client_auth",
    },
    "none": frozenset(),
}


def _interval(config: Mapping[str, Any]) -> Duration | None:
    """How often sources are re-read, from ``token_refresh`` / ``expires_in`` (non-OAuth types)."""
    if config.get("token_refresh") is False:
        return None
    expires_in = config.get("expires_in")
    if expires_in is None:
        return DEFAULT_REFRESH_INTERVAL
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float | str):
        raise SpecError("authentication.config.expires_in must be a number of seconds")
    return expires_in


def _secret(
    config: Mapping[str, Any],
    key: str,
    *,
    base_dir: Path | None,
    required: bool = True,
    interval: Duration | None = DEFAULT_REFRESH_INTERVAL,
) -> SecretLike | None:
    raw = config.get(key)
    if raw is None:
        if required:
            raise SpecError(f"authentication.config.{key} is required")
        return None
    if isinstance(raw, str):
        if not raw:
            raise SpecError(f"authentication.config.{key} is empty")
        return as_source(raw)
    if isinstance(raw, Mapping):
        interval = raw.get("refresh_interval", interval)
        kinds = [k for k in _SOURCE_KINDS if k in raw]
        if len(kinds) != 1:
            raise SpecError(
                f"authentication.config.{key} must name one source: {', '.join(_SOURCE_KINDS)}; "
                f"got {sorted(raw)}"
            )
        try:
            if kinds[0] == "aws_secrets_manager":
                return aws_secrets_manager(
                    str(raw["aws_secrets_manager"]),
                    region=_opt_text(raw, "region"),
                    endpoint_url=_opt_text(raw, "endpoint"),
                    key=_opt_text(raw, "key"),
                    refresh_interval=interval,
                )
            if kinds[0] == "gcp_secret_manager":
                project = _opt_text(raw, "project")
                if not project:
                    raise SpecError(f"authentication.config.{key}: gcp_secret_manager needs project")
                return gcp_secret_manager(
                    project,
                    str(raw["gcp_secret_manager"]),
                    endpoint=_opt_text(raw, "endpoint"),
                    key=_opt_text(raw, "key"),
                    refresh_interval=interval,
                )
            if kinds[0] == "env":
                return env(str(raw["env"]), refresh_interval=interval)
            if kinds[0] == "file":
                path = Path(os.path.expanduser(str(raw["file"])))
                if base_dir is not None and not path.is_absolute():
                    path = base_dir / path
                key_path = raw.get("key")
                return file(path, None if key_path is None else str(key_path), refresh_interval=interval)
            argv = raw["command"]
            if isinstance(argv, str) or not isinstance(argv, Sequence):
                raise SpecError(
                    f"authentication.config.{key}.command must be a list (argv), never a shell line"
                )
            return command([str(a) for a in argv], refresh_interval=interval)
        except ValueError as exc:
            raise SpecError(f"authentication.config.{key}: {exc}") from None
    raise SpecError(
        f"authentication.config.{key} must be a string or a source mapping, got {type(raw).__name__}"
    )


_SOURCE_KINDS: Final = ("env", "file", "command", "aws_secrets_manager", "gcp_secret_manager")


def _opt_text(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    return None if value is None else str(value)


def _text(config: Mapping[str, Any], key: str, default: str | None = None) -> str | None:
    value = config.get(key, default)
    if value is not None and not isinstance(value, str):
        raise SpecError(f"authentication.config.{key} must be a string, got {type(value).__name__}")
    return value


def from_spec(
    auth_type: str, config: Mapping[str, Any] | None = None, *, base_dir: str | os.PathLike[str] | None = None
) -> AuthOptions | None:
    """Auth options for a spec's ``authentication`` section; ``None`` for ``type: none``.

    ``base_dir`` resolves relative secret file paths (the spec file's directory).
    """
    if auth_type not in AUTH_TYPES:
        raise SpecError(f"authentication.type must be one of {', '.join(AUTH_TYPES)}, got {auth_type!r}")
    if auth_type == "oauth":
        auth_type = "oauth2"
    config = dict(config or {})
    unknown = sorted(set(config) - _KEYS[auth_type])
    if unknown:
        raise SpecError(
            f"authentication.config has keys {unknown} that type {auth_type!r} does not use; "
            f"it uses {sorted(_KEYS[auth_type])}"
        )
    folder = Path(base_dir) if base_dir is not None else None
    origin = _text(config, "origin")
    try:
        if auth_type == "none":
            return None
        if auth_type == "oauth2":
            return _oauth2(config, folder, origin)
        every = _interval(config)
        if auth_type == "api_key":
            location = _text(config, "key_location", "header")
            name = _text(config, "key_name")
            template = _text(config, "value", "{secret}") or "{secret}"
            secret = _secret(config, "secret", base_dir=folder, interval=every)
            assert secret is not None
            if location == "header":
                return ApiKey(secret, header=name or ApiKey.DEFAULT_HEADER, template=template, origin=origin)
            if location == "query":
                return ApiKey(secret, query=name or "api_key", template=template, origin=origin)
            if location == "body":
                return ApiKey(secret, body_field=name or "api_key", template=template, origin=origin)
            raise SpecError(
                f"authentication.config.key_location must be header, query or body, got {location!r}"
            )
        if auth_type in ("bearer", "jwt"):
            secret = _secret(config, "secret", base_dir=folder, interval=every)
            assert secret is not None
            return Bearer(secret, origin=origin)
        if auth_type == "basic":
            username = config.get("username")
            user = (
                username
                if isinstance(username, str)
                else _secret(config, "username", base_dir=folder, interval=every)
            )
            password = _secret(config, "password", base_dir=folder, interval=every)
            assert user is not None
            assert password is not None
            return Basic(user, password, origin=origin)
        raise AssertionError(f"unhandled auth type {auth_type!r}")  # pragma: no cover
    except ValueError as exc:
        raise SpecError(f"authentication: {exc}") from None


def _oauth2(config: Mapping[str, Any], folder: Path | None, origin: str | None) -> AuthOptions:
    grant = _text(config, "grant_type") or (
        "refresh_token" if "refresh_token" in config else "client_credentials"
    )
    token_url = _text(config, "token_url")
    client_id = _text(config, "client_id")
    if not token_url:
        raise SpecError("authentication.config.token_url is required for oauth2")
    if not client_id:
        raise SpecError("authentication.config.client_id is required for oauth2")
    scopes = config.get("scopes", ())
    if not isinstance(scopes, str | list | tuple):
        raise SpecError(
            "authentication.config.scopes must be a list of strings or one space-separated string"
        )
    extra = config.get("extra", {})
    if not isinstance(extra, Mapping):
        raise SpecError("authentication.config.extra must be a mapping")
    options: dict[str, Any] = {
        "scopes": scopes,
        "audience": _text(config, "audience"),
        "extra": {str(k): str(v) for k, v in extra.items()},
        "client_auth": _text(config, "client_auth", "basic"),
        "origin": origin,
    }
    token_refresh = config.get("token_refresh")
    if token_refresh is False:
        options["leeway"] = 0  # use each token until it expires
    elif token_refresh is not None and token_refresh is not True:
        options["leeway"] = token_refresh
    if config.get("expires_in") is not None:
        options["default_expires_in"] = config["expires_in"]
    if grant == "client_credentials":
        secret = _secret(config, "client_secret", base_dir=folder)
        return OAuth2ClientCredentials(token_url, client_id, secret, **options)
    if grant == "refresh_token":
        refresh = _secret(config, "refresh_token", base_dir=folder)
        secret = _secret(config, "client_secret", base_dir=folder, required=False)
        return OAuth2RefreshToken(token_url, client_id, secret, refresh_token=refresh, **options)
    raise SpecError(
        f"authentication.config.grant_type must be client_credentials or refresh_token, got {grant!r}"
    )
