"""Safe YAML loading that remembers where every key and value was written.

``parse(text, file)`` returns plain Python data (dicts with string keys, lists, str, int, float,
bool, None) and a ``Marks`` table mapping each key path to the ``file:line:column`` of its key and
of its value, so that every later problem can point at the spec's text.

Only the YAML core types are accepted: any explicit tag other than ``!!str``, ``!!int``,
``!!float``, ``!!bool``, ``!!null``, ``!!map`` and ``!!seq`` is a problem (the loader never
constructs Python objects). Timestamps stay strings. Keys are kept as the text they were written
with (``400:`` is the key ``"400"``, ``on:`` is ``"on"``). Anchors and aliases work; a recursive
alias, a document nested deeper than ``MAX_DEPTH`` or expanding to more than ``MAX_NODES`` nodes
is a problem rather than a hang.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = ["MAX_DEPTH", "MAX_NODES", "KeyPath", "Location", "Marks", "ParseProblem", "parse"]

KeyPath = tuple[str | int, ...]

MAX_DEPTH: Final = 64
MAX_NODES: Final = 200_000

_CORE_TAGS: Final = frozenset(
    {
        "tag:yaml.org,2002:str",
        "tag:yaml.org,2002:int",
        "tag:yaml.org,2002:float",
        "tag:yaml.org,2002:bool",
        "tag:yaml.org,2002:null",
    }
)
_MAP_TAG: Final = "tag:yaml.org,2002:map"
_SEQ_TAG: Final = "tag:yaml.org,2002:seq"


@dataclass(frozen=True, slots=True, order=True)
class Location:
    """A place in a spec file; ``line`` and ``column`` count from 1."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(slots=True)
class Marks:
    """Where each key path's key and value were written."""

    file: str
    keys: dict[KeyPath, Location] = field(default_factory=dict)
    values: dict[KeyPath, Location] = field(default_factory=dict)

    def locate(self, path: KeyPath, *, key: bool = False) -> Location:
        """The location of ``path`` (its key when ``key``), else of its nearest located ancestor."""
        probe = path
        while True:
            table = (self.keys, self.values) if key else (self.values, self.keys)
            for marks in table:
                if probe in marks:
                    return marks[probe]
            if not probe:
                return Location(self.file, 1, 1)
            probe = probe[:-1]

    def copy_subtree(self, source: Marks, src: KeyPath, dst: KeyPath, *, root: bool = False) -> None:
        """Record ``source``'s marks below ``src`` as the marks below ``dst`` (inlined content).

        With ``root`` the marks of ``src`` itself are copied too; otherwise ``dst`` keeps its own.
        """
        n = len(src)
        for table, target in ((source.keys, self.keys), (source.values, self.values)):
            for path, loc in list(table.items()):
                if path[:n] == src and (root or len(path) > n):
                    target[dst + path[n:]] = loc

    def move_subtree(self, src: KeyPath, dst: KeyPath) -> None:
        """Make the marks recorded under ``src`` also answer for ``dst`` (a normalised shape)."""
        self.copy_subtree(self, src, dst, root=True)
        if src in self.keys:  # a container the move created answers with the moved key's place
            for depth in range(1, len(dst)):
                self.keys.setdefault(dst[:depth], self.keys[src])
                self.values.setdefault(dst[:depth], self.keys[src])

    def paths(self) -> Iterator[KeyPath]:
        return iter(self.keys)


@dataclass(frozen=True, slots=True)
class ParseProblem:
    """A problem found while reading YAML (the loader turns these into spec problems)."""

    location: Location
    message: str
    path: KeyPath = ()


class _Loader(yaml.SafeLoader):
    """The safe loader without the timestamp resolver: dates stay strings, pydantic parses them."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

_CLoader: Any = None  # libyaml's loader class, when PyYAML was built with it
if getattr(yaml, "CSafeLoader", None) is not None:  # libyaml, when PyYAML was built with it

    class _FastLoader(yaml.CSafeLoader):
        """libyaml's safe loader with the same resolvers (about 7x faster than the Python one)."""

    _FastLoader.yaml_implicit_resolvers = _Loader.yaml_implicit_resolvers
    _CLoader = _FastLoader

# libyaml's composer recurses in C without a limit, so a deeply nested document could overflow
# the C stack; text that might nest deeply is read by the Python parser, whose recursion is bounded.
_FLOW = re.compile(r"[\[\]{}]")
_SAFE_NESTING: Final = 48


def _may_nest_deeply(text: str) -> bool:
    depth = deepest = 0
    for match in _FLOW.finditer(text):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > _SAFE_NESTING:
                return True
        else:
            depth = max(0, depth - 1)
    for line in text.splitlines():
        # "- - - x" and "? ? x" nest on one line; indentation bounds nesting across lines
        if line.count("- ") + line.count("? ") + line.count("-\t") > _SAFE_NESTING // 3:
            return True
        if len(line) - len(line.lstrip(" \t")) > _SAFE_NESTING * 8:
            return True
    return False


def _loader_for(text: str) -> yaml.SafeLoader:
    if _CLoader is not None and not _may_nest_deeply(text):
        loader: yaml.SafeLoader = _CLoader(text)
        return loader
    return _Loader(text)


def _loc(file: str, mark: yaml.Mark | None) -> Location:
    if mark is None:
        return Location(file, 1, 1)
    return Location(file, mark.line + 1, mark.column + 1)


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, file: str) -> None:
        self.loader = loader
        self.file = file
        self.marks = Marks(file)
        self.problems: list[ParseProblem] = []
        self.count = 0
        self.active: set[int] = set()

    def problem(self, node: Node, message: str, path: KeyPath) -> None:
        self.problems.append(ParseProblem(_loc(self.file, node.start_mark), message, path))

    def build(self, node: Node, path: KeyPath) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            if self.count == MAX_NODES + 1:
                self.problem(node, f"document is too large (more than {MAX_NODES} nodes after aliases)", path)
            return None
        if len(path) > MAX_DEPTH:
            self.problem(node, f"nesting is deeper than {MAX_DEPTH} levels", path)
            return None
        if id(node) in self.active:
            self.problem(node, "a YAML alias refers to a node that contains it (recursive alias)", path)
            return None
        if isinstance(node, ScalarNode):
            return self.scalar(node, path)
        self.active.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self.mapping(node, path)
            if isinstance(node, SequenceNode):
                return self.sequence(node, path)
        finally:
            self.active.discard(id(node))
        self.problem(node, "unsupported YAML node", path)  # pragma: no cover - composer makes only these
        return None

    def scalar(self, node: ScalarNode, path: KeyPath) -> Any:
        if node.tag not in _CORE_TAGS:
            self.problem(node, f"unsupported YAML tag {node.tag!r}: specs hold plain data only", path)
            return None
        try:
            return self.loader.yaml_constructors[node.tag](self.loader, node)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            self.problem(node, f"cannot read {node.value!r} as {node.tag.rsplit(':', 1)[-1]}: {exc}", path)
            return None

    def sequence(self, node: SequenceNode, path: KeyPath) -> list[Any]:
        if node.tag != _SEQ_TAG:
            self.problem(node, f"unsupported YAML tag {node.tag!r}: specs hold plain data only", path)
            return []
        out: list[Any] = []
        for index, item in enumerate(node.value):
            child = (*path, index)
            self.marks.values[child] = _loc(self.file, item.start_mark)
            out.append(self.build(item, child))
        return out

    def mapping(self, node: MappingNode, path: KeyPath) -> dict[str, Any]:
        if node.tag != _MAP_TAG:
            self.problem(node, f"unsupported YAML tag {node.tag!r}: specs hold plain data only", path)
            return {}
        try:
            self.loader.flatten_mapping(node)  # merge keys (<<)
        except yaml.MarkedYAMLError as exc:
            self.problems.append(ParseProblem(_loc(self.file, exc.problem_mark), str(exc.problem), path))
            return {}
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.problem(key_node, "mapping keys must be plain strings", path)
                continue
            key = str(key_node.value)
            child = (*path, key)
            if key in out:
                self.problem(key_node, f"duplicate key {key!r}", child)
                continue
            self.marks.keys[child] = _loc(self.file, key_node.start_mark)
            self.marks.values[child] = _loc(self.file, value_node.start_mark)
            out[key] = self.build(value_node, child)
        return out


def _reader_problem(file: str, text: str, exc: yaml.reader.ReaderError) -> ParseProblem:
    position = max(0, min(int(exc.position), len(text)))
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    return ParseProblem(
        Location(file, line, column), f"YAML: character {exc.character!r} is not allowed: {exc.reason}"
    )


def parse(text: str, file: str) -> tuple[Any, Marks, list[ParseProblem]]:
    """Data, marks and problems from YAML ``text``. A syntax error is one problem and no data."""
    try:
        loader = _loader_for(text)
    except yaml.reader.ReaderError as exc:
        return None, Marks(file), [_reader_problem(file, text, exc)]
    try:
        try:
            root = loader.get_single_node()
        except yaml.reader.ReaderError as exc:
            return None, Marks(file), [_reader_problem(file, text, exc)]
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            message = " ".join(str(part) for part in (exc.context, exc.problem) if part)
            return None, Marks(file), [ParseProblem(_loc(file, mark), f"YAML syntax: {message}")]
        except yaml.YAMLError as exc:
            return None, Marks(file), [ParseProblem(Location(file, 1, 1), f"YAML: {exc}")]
        except RecursionError:
            return None, Marks(file), [ParseProblem(Location(file, 1, 1), "YAML nesting is too deep")]
        if root is None:
            return None, Marks(file), []
        builder = _Builder(loader, file)
        builder.marks.values[()] = _loc(file, root.start_mark)
        data = builder.build(root, ())
        return data, builder.marks, builder.problems
    finally:
        loader.dispose()
