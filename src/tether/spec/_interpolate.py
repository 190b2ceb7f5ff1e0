"""``${VAR}`` and ``${VAR:-default}`` interpolation of spec values from the environment.

Every string value (never a key) is interpolated; ``$${`` writes a literal ``${``. A variable that
is not set and has no default is a problem naming the variable and its location, with two
exceptions:

* values under secret-bearing keys (``authentication.config.secret`` and friends, see
  ``SECRET_KEYS``) are kept as ``SecretRef`` references and read when the integration starts, so
  ``tether check`` works without credentials and a missing secret is the auth layer's
  ``AuthenticationError`` at start;
* URLs of environments that were not selected are left as written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from tether.spec._types import REF_PATTERN, SecretRef, check_interpolation
from tether.spec._yaml import KeyPath, Marks

__all__ = ["SECRET_KEYS", "interpolate", "is_secret_path"]

#: Keys of ``authentication.config`` whose values are secrets (kept as ``SecretRef``).
SECRET_KEYS: Final = frozenset({"secret", "client_secret", "password", "refresh_token", "private_key"})


#: Other key paths whose values are secrets (the sandbox environment's credential).
SECRET_PATHS: Final[frozenset[KeyPath]] = frozenset({("testing", "integration_tests", "test_credentials")})


def is_secret_path(path: KeyPath) -> bool:
    """Whether a key path holds a secret that is resolved late (``authentication.config.secret``)."""
    if len(path) == 3 and path[0] == "authentication" and path[1] == "config" and path[2] in SECRET_KEYS:
        return True
    return path in SECRET_PATHS


Problems = list[tuple[KeyPath, str]]


def interpolate(
    data: Any,
    marks: Marks,
    environ: Mapping[str, str],
    *,
    lenient: Callable[[KeyPath], bool] = lambda path: False,
) -> tuple[Any, Problems, set[KeyPath]]:
    """Interpolated data, the problems found, and the paths whose values could not be resolved."""
    problems: Problems = []
    unresolved: set[KeyPath] = set()

    def substitute(text: str, path: KeyPath) -> str:
        missing: list[str] = []

        def one(match: Any) -> str:
            name, default = match.group(1), match.group(2)
            if name is None:
                return "${"
            if name in environ:
                return str(environ[name])
            if default is not None:
                return str(default)
            missing.append(name)
            return str(match.group(0))

        result = REF_PATTERN.sub(one, text)
        if missing:
            unresolved.add(path)
            if not lenient(path):
                for name in dict.fromkeys(missing):
                    problems.append(
                        (
                            path,
                            f"environment variable {name} is not set and ${{{name}}} has no default "
                            f"(write ${{{name}:-default}} to give one)",
                        )
                    )
            return text
        return result

    def walk(node: Any, path: KeyPath) -> Any:
        if isinstance(node, dict):
            return {key: walk(value, (*path, key)) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(value, (*path, index)) for index, value in enumerate(node)]
        if not isinstance(node, str) or "${" not in node:
            if isinstance(node, str) and is_secret_path(path):
                return SecretRef(node, location=str(marks.locate(path)))
            return node
        try:
            check_interpolation(node)
        except ValueError as exc:
            problems.append((path, str(exc)))
            unresolved.add(path)
            return node
        if is_secret_path(path):
            return SecretRef(node, location=str(marks.locate(path)))
        return substitute(node, path)

    return walk(data, ()), problems, unresolved
