"""Shape normalisers: the INT template's own nesting and tether's flat form load to one model.

* An endpoint may be written the template's way, with ``endpoint:`` (path, method, description)
  and ``request:`` (headers, parameters, body) blocks beside ``response:`` and ``performance:``,
  or flat (path, method, parameters … at the endpoint's top level). ``normalize_endpoint`` hoists
  the blocks' keys to the top level.
* ``error_handling: {error_mapping, fallback_behavior}`` is hoisted to the top level (where the
  template writes them), and top-level ``inbound:`` / ``outbound:`` (the template's Data Mappings
  section) move under ``data_mappings``.

Each function returns the new mapping, the moves made (old and new key paths, relative to the
mapping, so the loader can keep line numbers right) and the problems found (a key given twice).
The models call the same functions in ``model_validator(mode="before")``.
"""

from __future__ import annotations

from typing import Any, Final

from tether.spec._yaml import KeyPath

__all__ = ["ENDPOINT_BLOCKS", "Moves", "Problems", "normalize_endpoint", "normalize_spec"]

Moves = list[tuple[KeyPath, KeyPath]]
Problems = list[tuple[KeyPath, str]]

#: The template's endpoint blocks and the keys it puts in each.
ENDPOINT_BLOCKS: Final = {
    "endpoint": ("path", "method", "description"),
    "request": ("headers", "parameters", "body"),
}


def _hoist(
    raw: dict[str, Any], block: str, into: KeyPath, moves: Moves, problems: Problems, what: str
) -> dict[str, Any]:
    """Move the keys of ``raw[block]`` to ``into`` (a path inside ``raw``, ``()`` for the top)."""
    inner = raw[block]
    if inner is None:
        moved = {k: v for k, v in raw.items() if k != block}
        return moved
    if not isinstance(inner, dict):
        problems.append(((block,), f"{block} must be a mapping ({what})"))
        return raw
    out = {k: v for k, v in raw.items() if k != block}
    target = out
    for part in into:
        existing = target.get(str(part))
        if existing is None:
            existing = {}
        elif not isinstance(existing, dict):
            problems.append(((str(part),), f"{part} must be a mapping"))
            return raw
        else:
            existing = dict(existing)
        target[str(part)] = existing
        target = existing
    for key, value in inner.items():
        if key in target:
            where = ".".join(str(p) for p in (*into, key))
            problems.append(((block, key), f"{key} is given twice: here and as {where}"))
            continue
        target[key] = value
        moves.append(((block, key), (*into, key)))
    return out


def normalize_endpoint(raw: Any) -> tuple[Any, Moves, Problems]:
    """The flat form of one endpoint (a mapping written nested or flat); other input unchanged."""
    moves: Moves = []
    problems: Problems = []
    if not isinstance(raw, dict):
        return raw, moves, problems
    out = raw
    for block, keys in ENDPOINT_BLOCKS.items():
        if block in out:
            out = _hoist(out, block, (), moves, problems, ", ".join(keys))
    return out, moves, problems


def normalize_spec(raw: Any) -> tuple[Any, Moves, Problems]:
    """The canonical shape of a whole spec: hoisted blocks, flat endpoints."""
    moves: Moves = []
    problems: Problems = []
    if not isinstance(raw, dict):
        return raw, moves, problems
    out = raw
    if "error_handling" in out:
        out = _hoist(out, "error_handling", (), moves, problems, "error_mapping, fallback_behavior")
    for section in ("inbound", "outbound"):
        if section in out:
            container = out.get("data_mappings")
            if container is not None and not isinstance(container, dict):
                continue
            value = out[section]
            out = {k: v for k, v in out.items() if k != section}
            mappings = dict(container or {})
            if section in mappings:
                problems.append(
                    ((section,), f"{section} is given twice: here and as data_mappings.{section}")
                )
                continue
            mappings[section] = value
            out["data_mappings"] = mappings
            moves.append(((section,), ("data_mappings", section)))
    endpoints = out.get("endpoints")
    if isinstance(endpoints, dict):
        new_endpoints: dict[str, Any] = {}
        for name, endpoint in endpoints.items():
            flat, sub_moves, sub_problems = normalize_endpoint(endpoint)
            new_endpoints[name] = flat
            moves.extend((("endpoints", name, *a), ("endpoints", name, *b)) for a, b in sub_moves)
            problems.extend((("endpoints", name, *p), m) for p, m in sub_problems)
        out = {**out, "endpoints": new_endpoints}
    return out, moves, problems


def raise_on_problems(problems: Problems) -> None:
    """For the models' before-validators: the first problem as a ``ValueError``."""
    if problems:
        path, message = problems[0]
        raise ValueError(f"{'.'.join(str(p) for p in path)}: {message}")
