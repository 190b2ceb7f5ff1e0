"""``$ref`` resolution: ``#/components/schemas/X`` in the same file, ``other.yaml#/...`` beside it.

A mapping with a ``$ref`` key is replaced by the value the reference points at (a JSON Pointer,
RFC 6901, into a YAML document); other keys beside ``$ref`` are laid over the target mapping. Refs
inside the target are resolved relative to the file that holds them. A reference that leads back
to itself, directly or through others, is a problem naming the chain (recursive schemas are not
supported). Marks of inlined content point at the text they came from, in whichever file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from tether.spec._yaml import KeyPath, Location, Marks, ParseProblem, parse

__all__ = ["MAX_REFS", "RefProblem", "resolve_refs"]

MAX_REFS: Final = 10_000


@dataclass(frozen=True, slots=True)
class RefProblem:
    location: Location
    message: str
    path: KeyPath


@dataclass(slots=True)
class _Doc:
    data: Any
    marks: Marks
    base: Path


@dataclass(slots=True)
class _Resolver:
    root_marks: Marks
    problems: list[RefProblem] = field(default_factory=list)
    parse_problems: list[ParseProblem] = field(default_factory=list)
    docs: dict[Path, _Doc | None] = field(default_factory=dict)
    count: int = 0
    failed: set[KeyPath] = field(default_factory=set)

    def load(self, file: Path) -> _Doc | None:
        key = file.resolve()
        if key not in self.docs:
            try:
                text = key.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                self.docs[key] = None
                return None
            data, marks, problems = parse(text, str(file))
            self.parse_problems.extend(problems)
            self.docs[key] = _Doc(data, marks, key.parent)
        return self.docs[key]


def _pointer(doc: Any, pointer: str) -> tuple[bool, Any, KeyPath]:
    if pointer in ("", "/"):
        return True, doc, ()
    if not pointer.startswith("/"):
        return False, None, ()
    node = doc
    path: list[str | int] = []
    for raw in pointer[1:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
            path.append(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
            path.append(int(part))
        else:
            return False, None, ()
    return True, node, tuple(path)


def resolve_refs(
    data: Any, marks: Marks, base: Path, file: Path | None
) -> tuple[Any, list[RefProblem], list[ParseProblem], set[KeyPath]]:
    """Data with every ``$ref`` inlined, the problems found, and the paths of refs that failed."""
    resolver = _Resolver(marks)
    here = _Doc(data, marks, base)
    origin = file.resolve() if file is not None else Path("<string>")

    def walk(node: Any, doc: _Doc, doc_file: Path, src: KeyPath, dst: KeyPath, stack: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [walk(v, doc, doc_file, (*src, i), (*dst, i), stack) for i, v in enumerate(node)]
        if not isinstance(node, dict):
            return node
        if "$ref" not in node:
            return {k: walk(v, doc, doc_file, (*src, k), (*dst, k), stack) for k, v in node.items()}
        return inline(node, doc, doc_file, src, dst, stack)

    def fail(doc: _Doc, src: KeyPath, dst: KeyPath, message: str) -> None:
        resolver.problems.append(RefProblem(doc.marks.locate((*src, "$ref")), message, dst))
        resolver.failed.add(dst)

    def inline(
        node: dict[str, Any], doc: _Doc, doc_file: Path, src: KeyPath, dst: KeyPath, stack: tuple[str, ...]
    ) -> Any:
        ref = node["$ref"]
        resolver.count += 1
        if resolver.count > MAX_REFS:
            if resolver.count == MAX_REFS + 1:
                fail(doc, src, dst, f"more than {MAX_REFS} $ref expansions")
            return None
        if not isinstance(ref, str):
            fail(doc, src, dst, "$ref must be a string such as '#/components/schemas/Name'")
            return None
        target_file, _, pointer = ref.partition("#")
        if target_file:
            target_path = (doc.base / target_file).resolve()
            target_doc = resolver.load(target_path)
            if target_doc is None:
                fail(doc, src, dst, f"$ref {ref!r}: cannot read {target_file!r} (looked in {doc.base})")
                return None
        else:
            target_path, target_doc = doc_file, doc
        key = f"{target_path.name if target_file else ''}#{pointer}"
        identity = f"{target_path}#{pointer}"
        if identity in stack:
            names = [s.rsplit("/", 1)[-1] for s in (*stack, identity)]
            start = names.index(names[-1])
            fail(doc, src, dst, f"$ref cycle: {' -> '.join(names[start:])} ({ref!r} refers back to itself)")
            return None
        found, target, target_src = _pointer(target_doc.data, pointer)
        if not found:
            fail(doc, src, dst, f"$ref {ref!r}: no {pointer or '/'!r} in {target_file or 'this file'}")
            return None
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        if siblings and not isinstance(target, dict):
            fail(
                doc,
                src,
                dst,
                f"$ref {key!r} points at a {type(target).__name__}; keys beside $ref need a mapping",
            )
            return None
        if target_doc is not doc or target_src != src:
            resolver.root_marks.copy_subtree(target_doc.marks, target_src, dst)
        resolved = walk(target, target_doc, target_path, target_src, dst, (*stack, identity))
        if not siblings:
            return resolved
        merged = dict(resolved) if isinstance(resolved, dict) else {}
        for k, v in siblings.items():
            merged[k] = walk(v, doc, doc_file, (*src, k), (*dst, k), stack)
        return merged

    result = walk(data, here, origin, (), (), ())
    return result, resolver.problems, resolver.parse_problems, resolver.failed
