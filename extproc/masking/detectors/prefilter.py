"""Where each detector family can match at all, found by RE2 before any Python pattern runs.

Python's ``re`` scans about 150 MB/s for the simplest pattern and far less for a detector's;
RE2's DFA scans a gigabyte a second and answers for every trigger in one pass. So ``windows``
asks RE2 whether any trigger occurs (the common answer for prose is no, and then nothing else
runs), then which triggers occur (an ``re2.Set``), then where (one pass per present scope), and
the engine runs each detector only in the windows of its own scope.

RE2 sees one byte per character (non-ASCII characters become ``?``, which no trigger needs), so
its offsets are the text's. The any-trigger search is a plain RE2 search, which falls back from
the DFA to the NFA when the DFA runs out of memory and so never misses; a Set has no such
fallback, so an empty Set answer after a trigger was seen counts as every scope present.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import re2
from re2 import _re2  # the extension itself: spans without a Python match object per match

from extproc.masking.detectors.base import Trigger, Windows

# Below this length a present scope's window is the whole text: locating its triggers would
# cost more than the detectors scanning a few dozen characters.
WHOLE_TEXT_CHARS = 128
_MAX_MEM = 64 << 20  # RE2's DFA budget per pattern; triggers need far less
_UNANCHORED = _re2.RE2.Anchor.UNANCHORED
_NAME_SETS = 4096  # distinct trigger sets remembered (bounded; a miss only costs a frozenset)
_NONE_PRESENT: frozenset[str] = frozenset()
_NO_WINDOWS: dict[str, Windows] = {}  # shared and empty: callers only read it


def _options() -> re2.Options:
    options = re2.Options()
    options.max_mem = _MAX_MEM
    options.log_errors = False
    return options


def _compile(patterns: Iterable[str]) -> Any:
    union = "|".join(f"(?:{pattern})" for pattern in patterns)
    regexp = _re2.RE2(union.encode("ascii"), _options())
    if not regexp.ok():
        raise ValueError(f"invalid trigger pattern: {regexp.error()}")
    return regexp


class Prefilter:
    def __init__(self, triggers: Iterable[Trigger]) -> None:
        self._triggers = tuple(triggers)
        self._scopes = tuple(dict.fromkeys(t.scope for t in self._triggers))
        self._any = _compile(t.pattern for t in self._triggers)
        self._set = re2.Set.SearchSet(_options())
        for trigger in self._triggers:
            self._set.Add(trigger.pattern)
        self._set.Compile()
        self._locators = {
            scope: (
                _compile(t.pattern for t in self._triggers if t.scope == scope),
                max(t.before for t in self._triggers if t.scope == scope),
                max(t.after for t in self._triggers if t.scope == scope),
            )
            for scope in self._scopes
        }
        # Absent scopes map to an empty list (shared: the engine only reads it).
        nowhere: Windows = []
        self._absent: dict[str, Windows | None] = dict.fromkeys(self._scopes, nowhere)
        self._absent["all"] = None
        self._every = frozenset(self._scopes)
        self._name_sets: dict[tuple[int, ...], frozenset[str]] = {}

    @property
    def scopes(self) -> tuple[str, ...]:
        return self._scopes

    def windows(self, text: str) -> dict[str, Windows | None]:
        scopes = self._absent.copy()
        scopes.update(self.present(text)[1])
        return scopes

    def present(self, text: str) -> tuple[frozenset[str], dict[str, Windows]]:
        """The scopes whose triggers occur in ``text`` and their windows (every other scope of
        this prefilter has none). The names come as a frozenset so that the engine can key
        the detectors to run on them."""
        data = text.encode("ascii", "replace")
        size = len(data)
        first = self._any.Match(_UNANCHORED, data, 0, size)[0][0]
        if first < 0:
            return _NONE_PRESENT, _NO_WINDOWS
        # No trigger starts before ``first``: the Set and the locating passes start there.
        matched = self._set.Match(data[first:] if first else data)
        names = self._names(matched) if matched else self._every
        if size <= WHOLE_TEXT_CHARS:
            whole: Windows = [(0, size)]
            return names, dict.fromkeys(names, whole)
        return names, {name: self._locate(name, data, first) for name in names}

    def _names(self, matched: list[int]) -> frozenset[str]:
        # Few distinct trigger sets occur; each maps to one shared frozenset of scope names.
        key = tuple(matched)
        names = self._name_sets.get(key)
        if names is None:
            names = frozenset(self._triggers[index].scope for index in matched)
            if len(self._name_sets) < _NAME_SETS:
                self._name_sets[key] = names
        return names

    def _locate(self, scope: str, data: bytes, position: int) -> Windows:
        regexp, before, after = self._locators[scope]
        size = len(data)
        found: Windows = []
        while position < size:
            start, end = regexp.Match(_UNANCHORED, data, position, size)[0]
            if start < 0:
                break
            low, high = max(0, start - before), min(size, end + after)
            if found and low <= found[-1][1]:
                found[-1] = (found[-1][0], high)
            else:
                found.append((low, high))
            if high == size:
                break  # a later trigger's window would only merge into this one
            position = end if end > start else end + 1
        return found
