"""YAML with positions: every value can say on which line of its file it was written."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from checks import UnreadableFile, read_utf8


class _Loader(yaml.SafeLoader):
    """A safe loader that reads unknown tags (`!ENV [X, default]` in mkdocs.yml) as plain values."""


def _untagged(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


_Loader.add_multi_constructor("!", _untagged)


class YamlError(Exception):
    """Text that is not valid YAML, with the 1-based line of the problem when known."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


@dataclass(frozen=True, slots=True)
class Document:
    """A parsed YAML document: its data, its node tree, and the file line of its first line."""

    data: Any
    node: yaml.Node | None
    first_line: int = 1

    def line(self, *keys: str | int) -> int:
        """The file line of the value at `keys` (or of its nearest parent that exists)."""
        return line_of(self.node, keys, first_line=self.first_line) or self.first_line

    def key_line(self, key: str) -> int:
        """The file line of the top-level key `key` itself."""
        if isinstance(self.node, yaml.MappingNode):
            for k, _ in self.node.value:
                if k.value == key:
                    return int(k.start_mark.line) + self.first_line
        return self.first_line


def parse(text: str, *, first_line: int = 1) -> Document:
    """Parse one YAML document; `first_line` is the file line where `text` starts."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + first_line if mark is not None else None
        message = f"not valid YAML: {getattr(exc, 'problem', None) or exc}"
        context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and context_mark is not None and context_mark.line + first_line != line:
            message += f" ({context} that starts on line {context_mark.line + first_line})"
        raise YamlError(message, line) from exc
    except ValueError as exc:  # a well-formed scalar that is no value, such as the date 2026-02-30
        raise YamlError(f"not valid YAML: {exc}", None) from exc
    finally:
        loader.dispose()
    return Document(data, node, first_line)


def read(path: Path) -> Document:
    """Parse a YAML file; raises `YamlError` (also when the file cannot be read)."""
    try:
        text = read_utf8(path)
    except UnreadableFile as exc:
        raise YamlError(exc.reason, exc.line) from exc
    return parse(text)


def line_of(node: yaml.Node | None, keys: Sequence[str | int], *, first_line: int = 1) -> int | None:
    """The file line of the value at `keys` in a node tree, or of its nearest parent that exists."""
    if node is None:
        return None
    line = int(node.start_mark.line) + first_line
    for key in keys:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
            child = node.value[key]
        if child is None:
            return line
        node, line = child, int(child.start_mark.line) + first_line
    return line
