"""A YAML node that knows where it came from, so every config error names file, line and key.

Section parsers (identity, geo, policy, masking, audit, ...) receive a ``Node`` and read it with
the typed getters below. Each getter raises ``ConfigError`` whose message reads
``config.yaml:12: policy.rules[2].effect: expected one of allow, deny, require_approval``.
Parsers call ``node.reject_unknown(...)`` so that a typo in a key is an error, not a silently
ignored setting (a security team must never believe a rule is active when it is not).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from extproc.errors import ConfigError

T = TypeVar("T")
_MISSING: Any = object()


class Node:
    """A value in the config file with its key path and 1-based line number."""

    __slots__ = ("file", "line", "path", "value")

    def __init__(self, value: Any, *, file: str, path: str, line: int) -> None:
        self.value = value
        self.file = file
        self.path = path
        self.line = line

    # -- errors ----------------------------------------------------------------------------------
    def error(self, message: str) -> ConfigError:
        where = self.path or "(top level)"
        return ConfigError(f"{self.file}:{self.line}: {where}: {message}")

    # -- structure -------------------------------------------------------------------------------
    def is_mapping(self) -> bool:
        return isinstance(self.value, dict)

    def is_sequence(self) -> bool:
        return isinstance(self.value, list)

    def has(self, key: str) -> bool:
        return self.is_mapping() and key in self.value

    def keys(self) -> list[str]:
        self._expect_mapping()
        return [str(k) for k in self.value]

    def child(self, key: str, default: Any = _MISSING) -> Node:
        """The value under ``key``; a missing key is an error unless ``default`` is given."""
        self._expect_mapping()
        path = f"{self.path}.{key}" if self.path else key
        if key not in self.value:
            if default is _MISSING:
                raise self.error(f"missing required key {key!r}")
            return Node(default, file=self.file, path=path, line=self.line)
        return Node(self.value[key], file=self.file, path=path, line=self._line_of_key(key))

    def items(self) -> Iterator[tuple[str, Node]]:
        self._expect_mapping()
        for key in self.value:
            if not isinstance(key, str):
                raise self.error(f"keys must be strings, got {key!r}")
            yield key, self.child(key)

    def elements(self) -> Iterator[Node]:
        self._expect_sequence()
        for index, value in enumerate(self.value):
            line = self.line
            if isinstance(self.value, CommentedSeq):
                line = self.value.lc.item(index)[0] + 1
            yield Node(value, file=self.file, path=f"{self.path}[{index}]", line=line)

    def reject_unknown(self, allowed: Sequence[str]) -> None:
        self._expect_mapping()
        for key in self.value:
            if key not in allowed:
                child = Node(None, file=self.file, path=self.path, line=self._line_of_key(key))
                raise child.error(f"unknown key {key!r} (allowed: {', '.join(sorted(allowed))})")

    # -- scalars ---------------------------------------------------------------------------------
    def string(self, key: str, default: Any = _MISSING) -> str:
        node = self.child(key, default)
        if not isinstance(node.value, str) or not node.value:
            raise node.error(f"expected a non-empty string, got {_describe(node.value)}")
        return node.value

    def optional_string(self, key: str) -> str | None:
        node = self.child(key, None)
        if node.value is None:
            return None
        if not isinstance(node.value, str) or not node.value:
            raise node.error(f"expected a non-empty string, got {_describe(node.value)}")
        return node.value

    def boolean(self, key: str, default: Any = _MISSING) -> bool:
        node = self.child(key, default)
        if not isinstance(node.value, bool):
            raise node.error(f"expected true or false, got {_describe(node.value)}")
        return node.value

    def integer(self, key: str, default: Any = _MISSING, *, minimum: int | None = None) -> int:
        node = self.child(key, default)
        if isinstance(node.value, bool) or not isinstance(node.value, int):
            raise node.error(f"expected an integer, got {_describe(node.value)}")
        if minimum is not None and node.value < minimum:
            raise node.error(f"must be at least {minimum}, got {node.value}")
        return node.value

    def number(self, key: str, default: Any = _MISSING, *, minimum: float | None = None) -> float:
        node = self.child(key, default)
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise node.error(f"expected a number, got {_describe(node.value)}")
        if minimum is not None and node.value < minimum:
            raise node.error(f"must be at least {minimum}, got {node.value}")
        return float(node.value)

    def choice(self, key: str, choices: Sequence[str], default: Any = _MISSING) -> str:
        node = self.child(key, default)
        if node.value not in choices:
            got = repr(node.value) if isinstance(node.value, str) else _describe(node.value)
            raise node.error(f"expected one of {', '.join(choices)}, got {got}")
        return str(node.value)

    def string_list(self, key: str, default: Any = _MISSING) -> tuple[str, ...]:
        """A list of non-empty strings; a single string is accepted as a list of one."""
        node = self.child(key, default)
        if isinstance(node.value, str) and node.value:
            return (node.value,)
        if not isinstance(node.value, list):
            raise node.error(f"expected a list of strings, got {_describe(node.value)}")
        out: list[str] = []
        for element in node.elements():
            if not isinstance(element.value, str) or not element.value:
                raise element.error(f"expected a non-empty string, got {_describe(element.value)}")
            out.append(element.value)
        return tuple(out)

    def path_value(self, key: str, base: Path, default: Any = _MISSING) -> Path | None:
        """A file path; relative paths are resolved against the config file's directory."""
        node = self.child(key, default)
        if node.value is None:
            return None
        if not isinstance(node.value, str) or not node.value:
            raise node.error(f"expected a file path, got {_describe(node.value)}")
        path = Path(node.value).expanduser()
        return path if path.is_absolute() else (base / path)

    # -- internals -------------------------------------------------------------------------------
    def _expect_mapping(self) -> None:
        if not isinstance(self.value, dict):
            raise self.error(f"expected a mapping, got {_describe(self.value)}")

    def _expect_sequence(self) -> None:
        if not isinstance(self.value, list):
            raise self.error(f"expected a list, got {_describe(self.value)}")

    def _line_of_key(self, key: Any) -> int:
        if isinstance(self.value, CommentedMap):
            try:
                return int(self.value.lc.key(key)[0]) + 1
            except (KeyError, TypeError):
                return self.line
        return self.line


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "an empty string" if not value else "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def parse_yaml(text: str, *, file: str) -> Node:
    """Parse YAML text into a root ``Node``; syntax errors name the line."""
    yaml = YAML(typ="rt", pure=True)
    yaml.allow_duplicate_keys = False
    try:
        data = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"{file}:{line}: invalid YAML: {problem}") from None
    except Exception as exc:  # ruamel raises several unrelated types for broken input
        raise ConfigError(f"{file}:1: invalid YAML: {exc}") from None
    if data is None:
        data = CommentedMap()
    return Node(data, file=file, path="", line=1)


def load_yaml_file(path: Path) -> Node:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: config is not valid UTF-8") from None
    return parse_yaml(text, file=str(path))
