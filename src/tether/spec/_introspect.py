"""Walking the spec models: their fields, types, defaults and value kinds (for docs and schema)."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from tether.spec._types import Kind, SecretRef, format_duration, format_size

__all__ = ["FieldDoc", "display_default", "field_kind", "iter_fields", "models_of", "type_name"]

_UNIONS = (typing.Union, types.UnionType)


def _kinds(tp: Any) -> Iterator[Kind]:
    origin = get_origin(tp)
    if origin is Annotated:
        args = get_args(tp)
        for meta in args[1:]:
            if isinstance(meta, Kind):
                yield meta
        yield from _kinds(args[0])
    elif origin is not None:
        for arg in get_args(tp):
            yield from _kinds(arg)


def field_kind(info: FieldInfo) -> Kind | None:
    """The value kind of a field (duration, size, secret …), when it has one."""
    for meta in info.metadata:
        if isinstance(meta, Kind):
            return meta
    return next(_kinds(info.annotation), None)


def _strip(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def models_of(tp: Any) -> list[type[BaseModel]]:
    """The models a type refers to (through unions, tuples, dicts, Annotated)."""
    tp = _strip(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    out: list[type[BaseModel]] = []
    for arg in get_args(tp):
        for model in models_of(arg):
            if model not in out:
                out.append(model)
    return out


def type_name(tp: Any, kind: Kind | None = None) -> str:
    """A short human description of a field's type."""
    if kind is not None and get_origin(_strip(tp)) not in (tuple, list, dict):
        inner = _strip(tp)
        if not (get_origin(inner) in _UNIONS and models_of(inner)):
            return kind.name
    tp = _strip(tp)
    origin = get_origin(tp)
    if tp is SecretRef:
        return "secret"
    if isinstance(tp, type) and issubclass(tp, BaseModel) and getattr(tp, "LEAF", False):
        return tp.__name__.lower()
    if origin in _UNIONS:
        parts = [type_name(arg) for arg in get_args(tp) if arg is not type(None)]
        return " | ".join(dict.fromkeys(parts))
    if origin is typing.Literal:
        return " | ".join(str(v) for v in get_args(tp))
    if origin in (tuple, list):
        args = [a for a in get_args(tp) if a is not Ellipsis]
        return f"list of {type_name(args[0], next(_kinds(args[0]), None))}" if args else "list"
    if origin is dict:
        _key, value = get_args(tp)
        return f"map of name → {type_name(value, next(_kinds(value), None))}"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "mapping"
    if tp is Any:
        return "any"
    names = {str: "string", int: "integer", float: "number", bool: "boolean"}
    if isinstance(tp, type):
        return names.get(tp, tp.__name__)
    return str(tp)


def display_default(info: FieldInfo, kind: Kind | None) -> Any:
    """The default as a user writes it (``"5s"``, ``"512MB"``), or ``PydanticUndefined`` if required."""
    if info.default_factory is not None:
        value: Any = info.default_factory()  # type: ignore[call-arg]
    else:
        value = info.default
    if value is PydanticUndefined:
        return PydanticUndefined
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    name = kind.name if kind is not None else ""
    if name.startswith(("duration", "latency")):
        if isinstance(value, float | int) and not isinstance(value, bool):
            return format_duration(value)
        if isinstance(value, tuple):
            return [format_duration(v) for v in value]
    if name == "size" and isinstance(value, int):
        return format_size(value)
    if isinstance(value, tuple):
        return list(value)
    return value


@dataclass(frozen=True, slots=True)
class FieldDoc:
    """One key of the spec, for the reference docs."""

    path: str
    model: type[BaseModel]
    name: str
    info: FieldInfo
    variant: str | None = None  # for keys of one member of a tagged union: its ``type``


def _tag(model: type[BaseModel]) -> str:
    info = model.model_fields.get("type")
    if info is not None and get_origin(info.annotation) is typing.Literal:
        return str(get_args(info.annotation)[0])
    return model.__name__


def iter_fields(model: type[BaseModel], prefix: str = "", variant: str | None = None) -> Iterator[FieldDoc]:
    """Every key of ``model`` and its sub-models, depth first, with dotted paths
    (``endpoints.<name>.parameters[].in``). Members of a tagged union share one path; keys only
    some members have carry the member's ``type`` as ``variant``."""
    for name, info in model.model_fields.items():
        key = info.alias or name
        path = f"{prefix}.{key}" if prefix else key
        yield FieldDoc(path, model, key, info, variant)
        tp = _strip(info.annotation)
        if get_origin(tp) in _UNIONS:
            members = [a for a in get_args(tp) if a is not type(None)]
            tp = _strip(members[0]) if len(members) == 1 else tp
        suffix = ""
        if get_origin(tp) is dict:
            suffix = ".<name>"
            tp = get_args(tp)[1]
        elif get_origin(tp) in (tuple, list):
            suffix = "[]"
            tp = get_args(tp)[0]
        subs = [sub for sub in models_of(tp) if not getattr(sub, "LEAF", False)]
        if len(subs) == 1:
            yield from iter_fields(subs[0], f"{path}{suffix}", variant)
            continue
        shared = set.intersection(*(set(sub.model_fields) for sub in subs)) if subs else set()
        seen: set[str] = set()
        for sub in subs:
            for doc in iter_fields(sub, f"{path}{suffix}", variant):
                if doc.path in seen:
                    continue
                seen.add(doc.path)
                top = doc.path[len(path + suffix) + 1 :].split(".", 1)[0].split("[", 1)[0]
                own = top not in {sub.model_fields[f].alias or f for f in shared}
                yield FieldDoc(doc.path, doc.model, doc.name, doc.info, _tag(sub) if own else doc.variant)
