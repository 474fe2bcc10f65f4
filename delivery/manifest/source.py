"""Hostile-input-safe YAML loading that remembers where every value came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

from delivery.errors import ManifestError, Problem

MAX_BYTES = 256 * 1024
MAX_DEPTH = 32
MAX_NODES = 20_000

PathKey = tuple[str | int, ...]


@dataclass(frozen=True)
class Located:
    """Parsed YAML data plus the 1-based (line, column) of every value and key."""

    file: str
    data: Any
    values: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    keys: dict[PathKey, tuple[int, int]] = field(default_factory=dict)

    def problem(self, path: PathKey, message: str, *, at_key: bool = False) -> Problem:
        """A Problem located at `path`, or at its closest existing parent."""
        line, column = self.position(path, at_key=at_key)
        return Problem(self.file, line, column, format_path(path), message)

    def position(self, path: PathKey, *, at_key: bool = False) -> tuple[int, int]:
        """Where `path` (or its nearest recorded ancestor) starts."""
        if at_key and path in self.keys:
            return self.keys[path]
        for end in range(len(path), -1, -1):
            if path[:end] in self.values:
                return self.values[path[:end]]
        return (1, 1)


def format_path(path: PathKey) -> str:
    """`variants.fast.command[0]` style field path."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _InputError(Exception):
    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.line, self.column, self.message = line, column, message


class _StrictLoader(Reader, Scanner, Parser, Composer, SafeConstructor, Resolver):
    """SafeLoader that refuses aliases and deep nesting before they can explode."""

    def __init__(self, stream: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise _InputError(mark.line + 1, mark.column + 1, "YAML aliases (*name) are not allowed here")
        self._depth += 1
        self._nodes += 1
        if self._depth > MAX_DEPTH or self._nodes > MAX_NODES:
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise _InputError(mark.line + 1, mark.column + 1, "document is nested too deeply or too large")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load_file(path: Path, display: str | None = None) -> Located:
    """Read and parse one YAML file; every failure becomes a located ManifestError."""
    name = display or str(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ManifestError([Problem(name, 1, 1, "", f"file is {size} bytes; the limit is {MAX_BYTES}")])
        raw = path.read_bytes()
    except OSError as e:
        raise ManifestError([Problem(name, 1, 1, "", f"cannot read file: {e.strerror or e}")]) from e
    return load_bytes(raw, name)


def load_bytes(raw: bytes, name: str) -> Located:
    """Parse YAML bytes into a Located document, refusing anything hostile."""
    if len(raw) > MAX_BYTES:
        raise ManifestError([Problem(name, 1, 1, "", f"document is {len(raw)} bytes; the limit is {MAX_BYTES}")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line, column = _byte_position(raw, e.start)
        raise ManifestError([Problem(name, line, column, "", "file is not UTF-8 text")]) from e
    try:
        node = _compose(text)
    except _InputError as e:
        raise ManifestError([Problem(name, e.line, e.column, "", e.message)]) from e
    if node is None:
        raise ManifestError([Problem(name, 1, 1, "", "file is empty; expected a mapping")])
    if not isinstance(node, MappingNode):
        line, column = _mark(node)
        raise ManifestError([Problem(name, line, column, "", "the document must be a mapping of keys to values")])
    located = Located(name, None)
    data = _to_python(node, (), located)
    return Located(name, data, located.values, located.keys)


def _compose(text: str) -> Node | None:
    loader = _StrictLoader(text)
    try:
        return loader.get_single_node()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise _InputError(line, column, _yaml_message(e, text)) from e
    except yaml.YAMLError as e:  # ReaderError: control characters, binary junk
        position = getattr(e, "position", 0)
        line, column = _text_position(text, position)
        raise _InputError(line, column, "file contains characters YAML does not allow (binary data?)") from e
    finally:
        loader.dispose()


def _yaml_message(e: yaml.MarkedYAMLError, text: str) -> str:
    mark = e.problem_mark
    if mark is not None and text[mark.index : mark.index + 1] == "\t":
        return "tab character: YAML indentation must use spaces"
    return f"invalid YAML: {e.problem or e.context or 'syntax error'}"


def _to_python(node: Node, path: PathKey, located: Located) -> Any:
    located.values[path] = _mark(node)
    if isinstance(node, MappingNode):
        return _mapping(node, path, located)
    if isinstance(node, SequenceNode):
        return [_to_python(item, (*path, i), located) for i, item in enumerate(node.value)]
    assert isinstance(node, ScalarNode)
    try:
        return SafeConstructor().construct_object(node, deep=True)
    except yaml.YAMLError as e:
        line, column = _mark(node)
        raise ManifestError([Problem(located.file, line, column, format_path(path), f"bad value: {e}")]) from e


def _mapping(node: MappingNode, path: PathKey, located: Located) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key_node, value_node in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            line, column = _mark(key_node)
            message = "merge keys (<<) are not allowed"
            raise ManifestError([Problem(located.file, line, column, format_path(path), message)])
        if not isinstance(key_node, ScalarNode):
            line, column = _mark(key_node)
            raise ManifestError([Problem(located.file, line, column, format_path(path), "keys must be plain strings")])
        key = str(key_node.value)
        if key in out:
            line, column = _mark(key_node)
            first = located.keys[(*path, key)]
            message = f"duplicate key `{key}` (first defined on line {first[0]})"
            raise ManifestError([Problem(located.file, line, column, format_path((*path, key)), message)])
        located.keys[(*path, key)] = _mark(key_node)
        out[key] = _to_python(value_node, (*path, key), located)
    return out


def _mark(node: Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def _text_position(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset]
    return (before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1)


def _byte_position(raw: bytes, offset: int) -> tuple[int, int]:
    before = raw[:offset]
    return (before.count(b"\n") + 1, offset - (before.rfind(b"\n") + 1) + 1)
