"""``load(path_or_text, env=None) -> Spec``: read, resolve, interpolate, select, validate.

The stages, each collecting problems rather than stopping at the first:

1. YAML, loaded safely with line/column marks for every key and value (``_yaml``).
2. ``$ref`` inlining, local and sibling files, with cycle detection (``_refs``).
3. Shape normalising: nested endpoints, ``error_handling``, top-level ``inbound``/``outbound``
   (``_normalize``), with marks moved along so lines stay right.
4. Environment selection: ``env=``, else ``TETHER_ENV``, else ``service.default_environment``,
   else ``production``; an unknown name is a problem listing the known ones. A spec without
   ``service.environments`` uses ``service.base_url`` whatever the environment is called.
5. ``${VAR}`` / ``${VAR:-default}`` interpolation (``_interpolate``): secrets stay references.
6. Model validation; pydantic errors are mapped back to ``file:line:column``.

Every problem found is raised together in one ``SpecLoadError`` (a ``SpecError``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError

from tether.spec._errors import Problem, SpecLoadError, dotted, problems_from_validation
from tether.spec._interpolate import interpolate
from tether.spec._model import SANDBOX, Spec
from tether.spec._normalize import ENDPOINT_BLOCKS, normalize_spec
from tether.spec._refs import resolve_refs
from tether.spec._yaml import KeyPath, Location, Marks, parse

__all__ = ["ENV_VAR", "load"]

#: The environment variable that selects the environment when ``env=`` is not given.
ENV_VAR: Final = "TETHER_ENV"

_SUFFIXES: Final = (".yaml", ".yml", ".json")
_EXTRA_KEYS: Final = {
    "Endpoint": tuple(ENDPOINT_BLOCKS),
    "Spec": ("error_handling", "inbound", "outbound"),
}


def _source(source: str | os.PathLike[str]) -> tuple[str, Path | None]:
    """The text to read and the file it came from (None for text given directly)."""
    if isinstance(source, os.PathLike):
        return "", Path(source)
    if "\n" not in source and source.strip():
        try:
            candidate = Path(source)
            if source.endswith(_SUFFIXES) or candidate.is_file():
                return "", candidate
        except (OSError, ValueError):
            pass
    return source, None


def _key_paths(data: Any, path: KeyPath = ()) -> set[KeyPath]:
    out: set[KeyPath] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            child = (*path, key)
            out.add(child)
            out |= _key_paths(value, child)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            out |= _key_paths(value, (*path, index))
    return out


def _sandbox_url(data: dict[str, Any]) -> Any:
    """``testing.integration_tests.sandbox_url`` of raw spec data, when written."""
    testing = data.get("testing")
    tests = testing.get("integration_tests") if isinstance(testing, dict) else None
    return tests.get("sandbox_url") if isinstance(tests, dict) else None


def _select_environment(
    data: dict[str, Any], env: str | None, environ: Mapping[str, str], marks: Marks
) -> tuple[str | None, list[Problem]]:
    """The environment name in force (None: use ``service.base_url``) and any problem with it."""
    service = data.get("service")
    service = service if isinstance(service, dict) else {}
    environments = service.get("environments")
    environments = environments if isinstance(environments, dict) else {}
    if env is not None:
        name, origin = env, "env="
    elif environ.get(ENV_VAR):
        name, origin = environ[ENV_VAR], ENV_VAR
    elif isinstance(service.get("default_environment"), str):
        name, origin = service["default_environment"], "service.default_environment"
        if name not in environments:
            return None, []  # the model reports it, at default_environment's line
    elif "production" in environments:
        name, origin = "production", "the default"
    else:
        if environments and service.get("base_url") is None:
            known = ", ".join(map(str, environments))
            where = marks.locate(("service", "environments"), key=True)
            return None, [
                Problem(
                    where,
                    f"no environment selected and no service.base_url: pass env=, set {ENV_VAR}, or set "
                    f"service.default_environment (known environments: {known})",
                    "service.environments",
                )
            ]
        return None, []
    if name == SANDBOX and name not in environments and _sandbox_url(data) is not None:
        return name, []
    if not environments:
        return None, []
    if name not in environments:
        known = ", ".join(map(str, environments))
        where = marks.locate(("service", "environments"), key=True)
        return None, [
            Problem(
                where,
                f"unknown environment {name!r} (from {origin}); known environments: {known}",
                "service.environments",
            )
        ]
    return name, []


def load(
    source: str | os.PathLike[str],
    env: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Spec:
    """Load and validate a spec from a file path or YAML text.

    ``source`` is a path (``os.PathLike``, or a one-line string ending in ``.yaml``/``.yml``/
    ``.json`` or naming an existing file) or the YAML text itself. ``$ref`` to sibling files
    resolves beside the spec file (beside the working directory for text).

    ``env`` selects ``service.environments[env]`` as the base URL (else ``$TETHER_ENV``, else
    ``service.default_environment``, else ``production``). ``environ`` replaces ``os.environ``
    for ``${VAR}`` interpolation and ``TETHER_ENV``. Raises ``SpecLoadError`` (a ``SpecError``)
    listing every problem found, each with ``file:line:column``.
    """
    environment = os.environ if environ is None else environ
    text, file = _source(source)
    label = str(file) if file is not None else "<string>"
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise SpecLoadError(
                [Problem(Location(label, 1, 1), f"cannot read spec: {reason}")], source=label
            ) from None
    data, marks, parse_problems = parse(text, label)
    problems = [Problem(p.location, p.message, dotted(p.path)) for p in parse_problems]
    skip: set[KeyPath] = {p.path for p in parse_problems}
    if not isinstance(data, dict):
        if data is not None or not problems:
            what = "empty" if data is None else f"a {type(data).__name__}"
            problems.append(
                Problem(
                    marks.locate(()),
                    f"a spec is a mapping of sections (service, endpoints, …); this one is {what}",
                )
            )
        raise SpecLoadError(problems, source=label)

    base = file.resolve().parent if file is not None else Path.cwd()
    data, ref_problems, ref_parse_problems, failed = resolve_refs(data, marks, base, file)
    problems += [Problem(p.location, p.message, dotted(p.path)) for p in ref_problems]
    problems += [Problem(p.location, p.message, dotted(p.path)) for p in ref_parse_problems]
    skip |= failed
    if not isinstance(data, dict):  # a top-level $ref that failed or pointed at a non-mapping
        if not problems:
            problems.append(
                Problem(marks.locate(()), "a spec is a mapping of sections; the top-level $ref is not one")
            )
        raise SpecLoadError(problems, source=label)

    data, moves, shape_problems = normalize_spec(data)
    for old, new in moves:
        marks.move_subtree(old, new)
    problems += [
        Problem(marks.locate(path, key=True), message, dotted(path)) for path, message in shape_problems
    ]

    selected, env_problems = _select_environment(data, env, environment, marks)
    problems += env_problems

    def unselected(path: KeyPath) -> bool:
        if path == ("testing", "integration_tests", "sandbox_url"):
            return selected != SANDBOX
        return len(path) >= 3 and path[:2] == ("service", "environments") and path[2] != selected

    data, interp_problems, unresolved = interpolate(data, marks, environment, lenient=unselected)
    problems += [
        Problem(marks.locate(path), f"{dotted(path)}: {message}", dotted(path))
        for path, message in interp_problems
    ]
    skip |= {path for path in unresolved if not unselected(path)}

    spec: Spec | None = None
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        problems += problems_from_validation(exc, Spec, data, marks, skip=skip, extra_keys=_EXTRA_KEYS)
    if problems or spec is None:
        if not problems:  # pragma: no cover - every failure above records a problem
            problems.append(Problem(Location(label, 1, 1), "the spec is invalid"))
        raise SpecLoadError(problems, source=label)

    spec._source = label
    spec._keys = frozenset(_key_paths(data))
    spec._key_locations = dict(marks.keys)
    if selected is not None:
        spec._environment, spec._base_url = selected, spec.environment_urls()[selected]
    elif spec.service.base_url is not None:
        spec._environment, spec._base_url = None, spec.service.base_url
    return spec
