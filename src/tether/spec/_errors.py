"""Spec problems: what is wrong, where (``file:line:column``), and the error that carries them all.

pydantic's ``ValidationError`` never leaves the loader: each of its errors is mapped from its
``loc`` tuple back to the YAML key path (skipping union tags), then to the line and column where
that key or value was written, and phrased as a rule (unknown keys get a "did you mean" hint).
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from tether.errors import SpecError
from tether.spec._types import FieldRuleError
from tether.spec._yaml import KeyPath, Location, Marks

__all__ = ["Problem", "SpecLoadError", "dotted", "problems_from_validation"]


def dotted(path: Iterable[str | int]) -> str:
    """``endpoints.get_data.parameters[0].name``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a spec, and where."""

    location: Location
    message: str
    path: str = ""

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class SpecLoadError(SpecError):
    """A spec could not be loaded. ``problems`` lists every problem found, in file order; the
    message lists them as ``file:line:column: rule`` lines; ``location`` is the first one's."""

    def __init__(self, problems: Sequence[Problem], *, source: str) -> None:
        ordered = tuple(sorted(dict.fromkeys(problems), key=lambda p: (p.location, p.message)))
        if not ordered:
            raise ValueError("SpecLoadError needs at least one problem")
        if len(ordered) == 1:
            message = ordered[0].message
        else:
            lines = "\n".join(f"  {p}" for p in ordered)
            message = f"{len(ordered)} problems in {source}:\n{lines}"
        super().__init__(message, location=str(ordered[0].location))
        self.problems = ordered
        self.source = source


# --- mapping pydantic errors back to the YAML ------------------------------------------------------

_UNION_TYPES = (typing.Union, types.UnionType)


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
            continue
        if origin in _UNION_TYPES:
            members = [a for a in get_args(tp) if a is not type(None)]
            if len(members) == 1:
                tp = members[0]
                continue
        return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _field(model: type[BaseModel], key: Any) -> Any:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info
    return None


def _tag_member(members: Sequence[Any], tag: Any) -> Any:
    for member in members:
        inner = _unwrap(member)
        if not _is_model(inner):
            continue
        if inner.__name__ == tag:
            return member
        info = inner.model_fields.get("type")
        if (
            info is not None
            and get_origin(info.annotation) is typing.Literal
            and tag in get_args(info.annotation)
        ):
            return member
    return None


def _child(node: Any, key: Any) -> tuple[bool, Any]:
    if isinstance(node, dict) and isinstance(key, str) and key in node:
        return True, node[key]
    if isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
        return True, node[key]
    return False, None


@dataclass(slots=True)
class _Walk:
    path: KeyPath
    parent: type[BaseModel] | None  # the model the last key was looked up in
    dict_key: bool  # the error is about a mapping key, not a value


def walk_loc(root: type[BaseModel], loc: Sequence[Any], data: Any) -> _Walk:
    """Follow a pydantic ``loc`` through the model types and the data: the YAML key path."""
    tp: Any = root
    node = data
    path: list[str | int] = []
    parent: type[BaseModel] | None = None
    for element in loc:
        if element == "[key]":
            return _Walk(tuple(path), parent, True)
        tp = _unwrap(tp) if tp is not None else None
        if tp is not None and get_origin(tp) in _UNION_TYPES:
            members = [a for a in get_args(tp) if a is not type(None)]
            chosen = _tag_member(members, element)
            present, _ = _child(node, element)
            if chosen is not None or not present:
                tp = chosen
                continue  # the element named a union member, not a key
            tp = None
        if _is_model(tp):
            parent = tp
            info = _field(tp, element)
            tp = info.annotation if info is not None else None
        elif tp is not None and get_origin(tp) in (tuple, list) and isinstance(element, int):
            args = get_args(tp)
            tp = args[0] if args else None
        elif tp is not None and get_origin(tp) in (dict, Mapping):
            tp = get_args(tp)[1]
        else:
            tp = None
            present, _ = _child(node, element)
            if not present:
                continue  # a tag of a type we do not model (e.g. 'int', 'function-after[...]')
        path.append(element)
        node = _child(node, element)[1]
    return _Walk(tuple(path), parent, False)


_PREFIXES = ("Value error, ", "Assertion failed, ")
_QUOTED = re.compile(r"'([^']*)'")


def _clean(message: str) -> str:
    for prefix in _PREFIXES:
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def _hint(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _candidates(model: type[BaseModel] | None, extras: Mapping[str, Sequence[str]]) -> list[str]:
    if model is None:
        return []
    names = [info.alias or name for name, info in model.model_fields.items()]
    return names + list(extras.get(model.__name__, ()))


def problems_from_validation(
    exc: ValidationError,
    root: type[BaseModel],
    data: Any,
    marks: Marks,
    *,
    skip: set[KeyPath] = frozenset(),  # type: ignore[assignment]
    extra_keys: Mapping[str, Sequence[str]] | None = None,
) -> list[Problem]:
    """Each pydantic error as a located problem; errors under ``skip`` paths (already reported
    by an earlier stage) are dropped, and one problem is kept per key path."""
    extras = extra_keys or {}
    out: list[Problem] = []
    seen: set[tuple[KeyPath, str]] = set()
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        kind = error["type"]
        ctx = error.get("ctx") or {}
        cause = ctx.get("error")
        if isinstance(cause, FieldRuleError):
            loc = loc + cause.path
        walked = walk_loc(root, loc, data)
        path = walked.path
        if any(path[: len(s)] == s for s in skip):
            continue
        if kind == "extra_forbidden":
            key = str(path[-1]) if path else "?"
            parent = dotted(path[:-1])
            where = f" in {parent}" if parent else ""
            message = f"unknown key {key!r}{where}{_hint(key, _candidates(walked.parent, extras))}"
            location = marks.locate(path, key=True)
            slot = "extra"
        elif kind == "missing":
            name = str(path[-1]) if path else "?"
            parent_path = path[:-1]
            where = dotted(parent_path) or "the spec"
            message = f"{where}: missing required key {name!r}"
            location = marks.locate(parent_path, key=True)
            slot = "missing"
        else:
            message = _clean(str(error["msg"]))
            given = error.get("input")
            if kind == "literal_error" and isinstance(given, str):
                message += _hint(given, _QUOTED.findall(str(ctx.get("expected", ""))))
            elif kind == "union_tag_invalid":
                message += _hint(str(ctx.get("tag", "")), _QUOTED.findall(str(ctx.get("expected_tags", ""))))
            if kind in ("literal_error", "enum") and given is not None and "got" not in message:
                message += f" (got {given!r})"
            name = dotted(path)
            if walked.dict_key:
                message = f"{name}: key {given!r}: {message}" if name else message
                location = (
                    marks.locate((*path, str(given)), key=True)
                    if isinstance(given, str)
                    else marks.locate(path)
                )
            else:
                message = f"{name}: {message}" if name else message
                location = marks.locate(path)
            slot = "value"
        if (path, slot) in seen:
            continue
        seen.add((path, slot))
        out.append(Problem(location, message, dotted(path)))
    return out
