"""Mask a parsed JSON document in place, iteratively: no recursion, so any depth is safe.

What is scanned: every string value, every key (a key can hold an e-mail) and every number
large enough to be a value (a card sent as a JSON number). A key holding a finding is replaced
by its masked form (renamed ``~`` when that collides with a sibling); a number holding a finding
becomes a JSON string with the masked value: there is no masked number. Objects parsed
leniently (``Members``) keep every duplicate key, and each duplicate's value is masked.

Servers join sibling text parts into one prompt (``content`` parts, ``input_text`` items, a
``prompt`` list): a value split across them is whole to the model. So once every string is
masked, each array of two or more text parts is read joined as servers join them (without a
separator, with a space, with a newline), and a value found there is masked across its parts.

An answer's ``logprobs`` (chat and completions choices, Responses output text) spell the answer
again token by token (``token``, ``bytes``, ``top_logprobs``): in the response direction every
``logprobs`` object or array is emptied (``null``, ``[]``), one ``LOGPROBS`` finding each, so
the answer's masked values never reach the client in another form.

Locations are linked ``(parent, name)`` pairs, rendered only for a finding and bounded, and
field rules and ``scan`` paths advance a small automaton one member at a time, so neither
costs O(depth) per node. A location names the masked key, never the raw one.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import TYPE_CHECKING, Any

from extproc.masking.jsondoc import Members
from extproc.masking.operators import operator
from extproc.masking.paths import ANY, Step
from extproc.masking.restore import RESTORE_DIRECTION
from extproc.masking.results import Finding

if TYPE_CHECKING:
    from extproc.masking.engine import Masker

MIN_VALUE_CHARS = 6  # no detected value is shorter ("a@b.co")
MIN_NUMBER = 10**5  # a number of fewer than six digits holds no detected value
EXACT_FLOAT = 2**53  # beyond, a float's digits are not the ones that were written
RENDERED_PARTS = 32
LOGPROBS_DIRECTION = "response"  # where ``logprobs`` are an answer's tokens
# OpenAI's and vLLM's names, and Gemini's (``logprobsResult``): each spells tokens.
LOGPROBS_KEYS = frozenset({"logprobs", "logprobsResult", "prompt_logprobs"})
JOINERS = ("", " ", "\n")  # how servers join the text parts of one prompt
TEXT_LISTS = frozenset({"prompt", "content", "input", "text"})  # arrays of strings, joined
NAME_CACHE_ENTRIES = 4096
Link = tuple[Any, ...]  # () for the root, else (parent link, key or index)
State = frozenset[tuple[int, int]]  # (path, steps matched) pairs of the rules automaton


class Masked(str):
    """A value a field rule already masked: the scan leaves it alone."""

    __slots__ = ()


def render(link: Link) -> str:
    # Names are keys (str) or indices (int); one join instead of a string per step.
    parts: list[str] = []
    while link and len(parts) < RENDERED_PARTS:
        link, name = link
        parts.append(f"[{name}]" if type(name) is int else "." + name)
    parts.append("$…" if link else "$")
    parts.reverse()
    return "".join(parts)


class _Paths:
    """Field rules first, then scan paths, as one automaton over member names and indices."""

    def __init__(self, fields: tuple[tuple[Step, ...], ...], scan: tuple[tuple[Step, ...], ...]):
        self.paths = (*fields, *scan)
        self.fields = len(fields)
        self.start: State = frozenset((index, 0) for index in range(len(self.paths)))

    def step(self, state: State, name: str | int) -> State:
        out: set[tuple[int, int]] = set()
        for path_index, matched in state:
            path = self.paths[path_index]
            if matched == len(path):
                if path_index >= self.fields:
                    out.add((path_index, matched))  # a scan path covers what lies below it
                continue
            expected = path[matched]
            if expected.recursive:
                out.add((path_index, matched))
            if expected.key is ANY or expected.key == name:
                out.add((path_index, matched + 1))
        return frozenset(out)

    def field_rule(self, state: State) -> int | None:
        done = [i for i, matched in state if i < self.fields and matched == len(self.paths[i])]
        return min(done) if done else None

    def scanned(self, state: State) -> bool:
        return any(i >= self.fields and matched == len(self.paths[i]) for i, matched in state)


def mask_document(
    masker: Masker, document: Any, direction: str, findings: list[Finding]
) -> tuple[Any, int, list[tuple[str, str]]]:
    """The masked document (a new root only when the root itself is a masked scalar), the
    number of object members seen and the (original, replacement) pairs of what was masked:
    the caller compares both with the body to spot duplicates orjson dropped."""
    profile = masker.profile
    paths = None
    if profile.fields or profile.scan is not None:
        paths = _Paths(tuple(rule.path for rule in profile.fields), profile.scan or ())
    walk = _Walk(masker, direction, findings, paths)
    masked = walk.run(document)
    return masked, walk.seen_members, walk.replaced


class _Walk:
    def __init__(
        self, masker: Masker, direction: str, findings: list[Finding], paths: _Paths | None
    ) -> None:
        self.masker = masker
        self.direction = direction
        self.findings = findings
        self.paths = paths
        self.scan_all = masker.profile.scan is None
        self.seen_members = 0
        # (original, replacement) of every masked value: the duplicate check may need to know
        # how many ':' masking added; counted only then.
        self.replaced: list[tuple[str, str]] = []
        self.names = masker.clean_keys
        self.hits = masker.hits_for(direction)
        # The hit cache read directly on the hot path (empty when hits come from elsewhere).
        self.cached = masker.hit_cache_for(direction)
        self.parts: list[tuple[list[Any], Link]] = []  # arrays of text parts, read joined
        self.drops_logprobs = direction == LOGPROBS_DIRECTION

    def run(self, document: Any) -> Any:
        paths = self.paths
        state = paths.start if paths is not None else None
        if type(document) not in (dict, list, Members):
            return self.scalar(document, (), state)
        stack: list[tuple[Any, Link, State | None]] = [(document, (), state)]
        while stack:
            node, link, state = stack.pop()
            kind = type(node)
            if kind is list:
                self.elements(node, link, state, stack)
            elif kind is dict and paths is None:
                self.plain_object(node, link, stack)
            else:
                self.members(node, link, state, stack)
        for node, link in self.parts:
            self.joined(node, link)
        return document

    def plain_object(self, node: dict[str, Any], link: Link, stack: list[Any]) -> None:
        """The hot path: an object without field rules or scan paths."""
        self.seen_members += len(node)
        hits = self.hits
        cached = self.cached
        names = self.names
        renamed: dict[str, str] | None = None
        for key, item in node.items():
            name = names.get(key) or self.name(key, link, node)
            if name is not key:
                renamed = renamed or {}
                renamed[key] = name
            kind = type(item)
            if kind is str:
                if len(item) >= MIN_VALUE_CHARS or not item.isascii():
                    found = cached.get(item)
                    if found is None:
                        found = hits(item)
                    if found:
                        node[key] = self.masker.apply(
                            item,
                            found,
                            self.direction,
                            render((link, name)),
                            self.findings,
                            self.replaced,
                        )
            elif kind is dict or kind is list or kind is Members:
                if key in LOGPROBS_KEYS and self.drops_logprobs:
                    node[key] = self.dropped(item, (link, name))
                    continue
                stack.append((item, (link, name), None))
            elif (kind is int or kind is float) and not -MIN_NUMBER < item < MIN_NUMBER:
                node[key] = self.scalar(item, (link, name), None)
        if renamed and not self.masker.report:
            _rename_members(node, renamed)

    def elements(self, node: list[Any], link: Link, state: State | None, stack: list[Any]) -> None:
        paths = self.paths
        hits = self.hits
        if len(node) > 1 and _may_hold_parts(node, link) and self._parts_scanned(state):
            self.parts.append((node, link))
        for index, item in enumerate(node):
            child = paths.step(state, index) if paths is not None and state is not None else None
            kind = type(item)
            if kind is dict or kind is list or kind is Members:
                stack.append((item, (link, index), child))
            elif kind is str and (len(item) >= MIN_VALUE_CHARS or not item.isascii()):
                if child is None or self.scan_all or paths.scanned(child):  # type: ignore[union-attr]
                    found = hits(item)
                    if found:
                        node[index] = self.apply(item, found, (link, index))
            elif (kind is int or kind is float) and not -MIN_NUMBER < item < MIN_NUMBER:
                node[index] = self.scalar(item, (link, index), child)

    def members(self, node: Any, link: Link, state: State | None, stack: list[Any]) -> None:
        """``Members`` (duplicates kept), or any object when field rules or scan paths apply."""
        paths = self.paths
        self.seen_members += len(node)
        if paths is not None and state is not None and paths.fields:
            self.field_rules(node, link, state)
        is_dict = type(node) is dict
        pairs = [list(pair) for pair in node.items()] if is_dict else node
        renamed: dict[str, str] = {}
        for pair in pairs:
            key, item = pair
            child = paths.step(state, key) if paths is not None and state is not None else None
            scanned = child is None or self.scan_all or paths.scanned(child)  # type: ignore[union-attr]
            name = key
            if scanned:
                name = self.names.get(key) or self.name(key, link, node)
                if name is not key and not self.masker.report:
                    renamed[key] = name
                    if not is_dict:
                        pair[0] = name
            kind = type(item)
            if (kind is dict or kind is list or kind is Members) and (
                key in LOGPROBS_KEYS and self.drops_logprobs
            ):
                pair[1] = self.dropped(item, (link, name))
            elif kind is dict or kind is list or kind is Members:
                stack.append((item, (link, name), child))
            elif not scanned:
                continue
            elif kind is str and (len(item) >= MIN_VALUE_CHARS or not item.isascii()):
                found = self.hits(item)
                if found:
                    pair[1] = self.apply(item, found, (link, name))
            elif (kind is int or kind is float) and not -MIN_NUMBER < item < MIN_NUMBER:
                pair[1] = self.scalar(item, (link, name), None)
        if is_dict:
            for (key, _), (_, item) in zip(node.items(), pairs, strict=True):
                node[key] = item
            if renamed:
                _rename_members(node, renamed)

    def _parts_scanned(self, state: State | None) -> bool:
        """Whether an array's text parts are scanned: every string is, or a scan path reaches
        the array or the ``text`` of its items."""
        paths = self.paths
        if state is None or self.scan_all or paths is None:
            return True
        return paths.scanned(state) or paths.scanned(paths.step(paths.step(state, 0), "text"))

    def joined(self, node: list[Any], link: Link) -> None:
        """Mask what the array's text parts hold once joined, across the parts it spans."""
        slots = _text_slots(node)
        if len(slots) < 2:
            return
        # Restoring, a part holds the caller's own values again: only a value that spans parts
        # is one no part was checked for.
        spanning_only = self.masker.tokens is not None and self.direction == RESTORE_DIRECTION
        for joiner in JOINERS:
            texts = [container[key] for _, container, key in slots]
            joined = joiner.join(texts)
            found = self.hits(joined, cache=False)
            if not found:
                continue
            starts = []
            position = 0
            for text in texts:
                starts.append(position)
                position += len(text) + len(joiner)
            edits: dict[int, list[tuple[int, int, str]]] = {}
            for hit in found:
                start, end = hit[0], hit[1]
                first = bisect_right(starts, start) - 1
                last = bisect_right(starts, end - 1) - 1
                if spanning_only and first == last:
                    continue
                location = render((link, slots[first][0]))
                masked = self.masker.apply(
                    joined,
                    [hit],
                    self.direction,
                    location,
                    self.findings,
                    offset=-starts[first],  # the finding's offset is in its first part
                    cache=False,
                )
                replacement = masked[start : len(masked) - (len(joined) - end)]
                for index in range(first, last + 1):
                    low = max(start - starts[index], 0)
                    high = min(end - starts[index], len(texts[index]))
                    edits.setdefault(index, []).append(
                        (low, high, replacement if index == first else "")
                    )
            if self.masker.report:
                continue
            for index, changes in edits.items():
                text = texts[index]
                pieces, position = [], 0
                for low, high, replacement in sorted(changes):
                    pieces.append(text[position:low] + replacement)
                    position = max(position, high)
                pieces.append(text[position:])
                new = "".join(pieces)
                self.replaced.append((text, new))
                _, container, key = slots[index]
                container[key] = new

    def dropped(self, item: Any, link: Link) -> Any:
        """An answer's ``logprobs`` emptied (see the module's docstring)."""
        empty: list[Any] | None = [] if type(item) is list else None
        if not item:
            return empty
        action = "report" if self.masker.report else "drop"
        self.findings.append(Finding("LOGPROBS", self.direction, render(link), action))
        return item if self.masker.report else empty

    def apply(self, text: str, found: list[Any], link: Link, where: str = "") -> str:
        location = where or render(link)
        return self.masker.apply(
            text, found, self.direction, location, self.findings, self.replaced
        )

    def name(self, key: str, link: Link, node: Any) -> str:
        """The key itself, or its masked form when it holds a finding. Clean keys are cached on
        the masker: they repeat in every record of a list and every event of a stream."""
        found = self.hits(key) if len(key) >= MIN_VALUE_CHARS or not key.isascii() else []
        if not found:
            if len(self.names) < NAME_CACHE_ENTRIES:
                self.names[key] = key
            return key
        position = next(i for i, other in enumerate(_keys(node)) if other == key)
        masked = self.apply(key, found, link, f"{render(link)}#key{position}")
        # Report mode keeps the key, but locations below it must not carry its raw value.
        return "[REDACTED]" if masked is key else masked

    def scalar(self, value: Any, link: Link, state: State | None) -> Any:
        """A root or element that is not a container: strings and large numbers are scanned."""
        if state is not None and not self.scan_all and not self.paths.scanned(state):  # type: ignore[union-attr]
            return value
        kind = type(value)
        if kind is str:
            found = self.hits(value)
            return self.apply(value, found, link) if found else value
        if kind is int and not -MIN_NUMBER < value < MIN_NUMBER:
            text = int.__repr__(value)
        elif kind is float and MIN_NUMBER <= abs(value) <= EXACT_FLOAT and value.is_integer():
            text = int.__repr__(int(value))
        else:
            return value
        found = self.hits(text)
        if not found:
            return value
        masked = self.apply(text, found, link)
        return value if masked is text else masked

    def field_rules(self, node: Any, link: Link, state: State) -> None:
        """Named fields are masked whatever their type, and not scanned again."""
        assert self.paths is not None
        masker = self.masker
        pairs = list(node.items()) if type(node) is dict else list(node)
        keep: list[list[Any]] = []
        matched = False
        for key, item in pairs:
            rule_index = self.paths.field_rule(self.paths.step(state, key))
            if rule_index is None:
                keep.append([key, item])
                continue
            matched = True
            rule = masker.profile.fields[rule_index]
            action = "report" if masker.report else operator(rule.action).name
            self.findings.append(Finding("FIELD", self.direction, render((link, key)), action))
            if masker.report:
                keep.append([key, item])
            elif action != "drop":
                keep.append([key, Masked(masker.mask_field(item, rule))])
        if not matched:
            return
        if type(node) is dict:
            node.clear()
            node.update((key, item) for key, item in keep)
        else:
            node.pairs[:] = keep


# Where one text part sits: its index in the array, and the container and key that hold it
# (the array itself, an object's "text" member, or a [key, value] pair of a ``Members``).
Slot = tuple[int, Any, Any]


def _may_hold_parts(node: list[Any], link: Link) -> bool:
    if link and link[1] in TEXT_LISTS:
        return True
    return any(type(item) is Members or (type(item) is dict and "text" in item) for item in node)


def _text_slots(node: list[Any]) -> list[Slot]:
    slots: list[Slot] = []
    for index, item in enumerate(node):
        kind = type(item)
        if kind is str:
            slots.append((index, node, index))
        elif kind is dict:
            if type(item.get("text")) is str:
                slots.append((index, item, "text"))
        elif kind is Members:
            # Every "text" of a repeated name: a server keeps one, which is not known here.
            slots.extend(
                (index, pair, 1) for pair in item if pair[0] == "text" and type(pair[1]) is str
            )
    return slots


def _keys(node: Any) -> list[str]:
    return list(node) if type(node) is dict else [key for key, _ in node]


def _rename_members(node: dict[str, Any], renamed: dict[str, str]) -> None:
    items = list(node.items())
    node.clear()
    for key, item in items:
        name = renamed.get(key, key)
        while name in node:
            name += "~"
        node[name] = item
