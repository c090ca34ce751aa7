"""The config file as plain data, with the line of every key and list item.

ruamel's round-trip loader records where each key and item sits; this module copies the loaded
tree into plain Python values (mappings become dicts, sequences tuples, ruamel's scalar subclasses
their base types) and keeps the positions beside it, keyed by the same paths pydantic reports in
its errors, so that every problem can name ``file:line`` and the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from extproc.config.base import Loc
from extproc.errors import ConfigError

ABSENT: Any = object()


@dataclass(frozen=True, slots=True)
class Document:
    """``data`` is the file's content; ``lines`` maps the path of each key and list item to its
    1-based line. ``file`` is the name every error starts with."""

    file: str
    data: Any
    lines: Mapping[Loc, int]

    def value_at(self, loc: Loc) -> Any:
        """The value at ``loc``, or ``ABSENT``."""
        value = self.data
        for part in loc:
            value = child(value, part)
        return value

    def line_of(self, loc: Loc) -> int:
        """The line of ``loc``, or of its nearest ancestor in the file (a missing key's mapping,
        a defaulted value's section)."""
        for end in range(len(loc), 0, -1):
            line = self.lines.get(loc[:end])
            if line is not None:
                return line
        return 1


def child(value: Any, part: str | int) -> Any:
    """The value under a key or at an index, or ``ABSENT``."""
    if isinstance(value, dict):
        return value.get(part, ABSENT)
    if isinstance(value, tuple) and isinstance(part, int) and 0 <= part < len(value):
        return value[part]
    return ABSENT


def parse_document(text: str | bytes, *, file: str) -> Document:
    """Parse YAML; a syntax error or a duplicate key is a ``ConfigError`` naming its line."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"{file}: config is not valid UTF-8") from None
    yaml = YAML(typ="rt", pure=True)
    yaml.allow_duplicate_keys = False
    try:
        loaded = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"{file}:{line}: invalid YAML: {problem}") from None
    except Exception as exc:  # ruamel raises several unrelated types for broken input
        raise ConfigError(f"{file}:1: invalid YAML: {exc}") from None
    lines: dict[Loc, int] = {(): 1}
    data = _plain(CommentedMap() if loaded is None else loaded, (), lines)
    return Document(file=file, data=data, lines=lines)


def read_document(path: Path) -> Document:
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    return parse_document(text, file=str(path))


def _plain(value: Any, loc: Loc, lines: dict[Loc, int]) -> Any:
    if isinstance(value, CommentedMap):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            child = (*loc, key)
            lines[child] = _line(value.lc.key, key, lines[loc])
            out[key] = _plain(item, child, lines)
        return out
    if isinstance(value, CommentedSeq):
        items = []
        for index, item in enumerate(value):
            child = (*loc, index)
            lines[child] = _line(value.lc.item, index, lines[loc])
            items.append(_plain(item, child, lines))
        return tuple(items)
    # ruamel's scalar subclasses (ScalarFloat, ScalarInt, quoted strings) → their base types,
    # which strict validation expects.
    for base in (bool, int, float, str):
        if isinstance(value, base):
            return base(value)
    return value


def _line(position: Any, key: Any, fallback: int) -> int:
    try:
        return int(position(key)[0]) + 1
    except (KeyError, TypeError, IndexError):
        return fallback


def format_loc(loc: Loc) -> str:
    """``policy.rules[2].effect``; the empty path is the top level."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def describe(value: Any) -> str:
    """How an error names what it found instead: a string is quoted, other things named."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return "an empty string" if not value else repr(value)
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"
