"""Mask text and JSON bodies with one profile. Pure, synchronous, fail closed.

Invariants: masked JSON is valid JSON of the same shape (keys, nesting, array lengths; a
``drop`` field rule removes its member); non-string values keep their type unless a field rule
names them; findings carry a type, a direction, a location (JSON path or character offset) and
the action, never the value. In ``report`` mode nothing changes but findings are still produced.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from extproc.errors import Code, ExtprocError
from extproc.masking.detectors import BUILTIN, Span, windows
from extproc.masking.paths import Location, matches, render
from extproc.masking.profile import Action, BlockRule, FieldRule, Profile

TOKEN_CHARS = 16
MIN_VALUE_CHARS = 6  # no detected value is shorter ("a@b.co")
CACHED_TEXT_CHARS = 256
SPAN_CACHE_ENTRIES = 8192


class MaskingError(ExtprocError):
    """The body cannot be masked; the caller must not let it pass."""

    code = Code.MASKING_FAILED


@dataclass(frozen=True, slots=True)
class Finding:
    type: str
    direction: str
    location: str
    action: str


@dataclass(frozen=True, slots=True)
class MaskResult:
    body: bytes
    findings: tuple[Finding, ...]
    changed: bool


@dataclass(frozen=True, slots=True)
class BlockHit:
    rule: str
    reason: str


def findings_by_type(findings: Iterable[Finding]) -> dict[str, int]:
    return dict(Counter(f"{f.direction}.{f.type}" for f in findings))


class Masker:
    def __init__(self, profile: Profile, key: bytes) -> None:
        self.profile = profile
        self._key = key
        self._report = profile.mode == "report"
        self._span_cache: dict[str, list[Span]] = {}

    # -- text -------------------------------------------------------------------------------------
    def spans(self, text: str) -> list[Span]:
        """Non-overlapping spans, leftmost first; of overlapping candidates the longest wins.

        Short strings repeat a lot in JSON bodies (statuses, notes, names), so their spans are
        cached (bounded; the profile is immutable, so a cached answer never goes stale)."""
        if len(text) < MIN_VALUE_CHARS:
            return []
        cacheable = len(text) <= CACHED_TEXT_CHARS
        if cacheable:
            cached = self._span_cache.get(text)
            if cached is not None:
                return cached
        found: list[Span] = []
        scopes = windows(text)
        for detector in self.profile.detectors:
            if detector.hints and not any(hint in text for hint in detector.hints):
                continue
            scope = scopes.get(detector.scope)
            if scope is None or scope:
                found.extend(detector.find(text, scope))
        if len(found) > 1:
            found.sort(key=lambda span: (span[0], -(span[1] - span[0])))
            resolved: list[Span] = []
            end = -1
            for span in found:
                if span[0] >= end:
                    resolved.append(span)
                    end = span[1]
            found = resolved
        if cacheable:
            if len(self._span_cache) >= SPAN_CACHE_ENTRIES:
                self._span_cache.clear()
            self._span_cache[text] = found
        return found

    def mask_text(
        self, text: str, direction: str, location: str = "", findings: list[Finding] | None = None
    ) -> str:
        spans = self.spans(text)
        if not spans:
            return text
        return self._apply(
            text, spans, direction, location, findings if findings is not None else []
        )

    def _apply(
        self, text: str, spans: list[Span], direction: str, location: str, out: list[Finding]
    ) -> str:
        pieces: list[str] = []
        last = 0
        for start, end, type_ in spans:
            action = self.profile.action_for(type_, direction)
            where = f"{location}@{start}" if location else f"offset:{start}"
            out.append(Finding(type_, direction, where, "report" if self._report else action))
            pieces.append(text[last:start])
            pieces.append(self.replacement(text[start:end], type_, action))
            last = end
        if self._report:
            return text
        pieces.append(text[last:])
        return "".join(pieces)

    def replacement(self, value: str, type_: str, action: Action) -> str:
        if action == "tokenize":
            return f"<{type_}:{self._mac(type_, value)[:TOKEN_CHARS]}>"
        if action == "hash":
            # Keyed: an unkeyed hash of a 9-digit SSN is reversed by trying all 10^9 values.
            return f"sha256:{self._mac(type_, value)}"
        if action == "last4" and len(value) > 4:
            return "*" * (len(value) - 4) + value[-4:]
        return f"[REDACTED:{type_}]"

    def _mac(self, type_: str, value: str) -> str:
        return hmac.new(self._key, f"{type_}\0{value}".encode(), hashlib.sha256).hexdigest()

    # -- JSON --------------------------------------------------------------------------------------
    def mask_json_value(self, value: Any, direction: str, findings: list[Finding]) -> Any:
        return self._walk(value, (), direction, findings)

    def mask_json(self, body: bytes, direction: str) -> MaskResult:
        try:
            document = loads(body)
        except ValueError:
            if self.profile.invalid_json == "deny":
                raise MaskingError("the body is not valid JSON", code=Code.INVALID_JSON) from None
            return self.mask_bytes_as_text(body, direction)
        findings: list[Finding] = []
        masked = self._walk(document, (), direction, findings)
        if not findings or self._report:
            return MaskResult(body, tuple(findings), False)
        return MaskResult(dumps(masked), tuple(findings), True)

    def mask_bytes_as_text(self, body: bytes, direction: str) -> MaskResult:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise MaskingError("the body is not valid UTF-8", code=Code.INVALID_UTF8) from None
        findings: list[Finding] = []
        masked = self.mask_text(text, direction, findings=findings)
        if not findings or self._report:
            return MaskResult(body, tuple(findings), False)
        return MaskResult(masked.encode("utf-8"), tuple(findings), True)

    def _walk(self, value: Any, location: Location, direction: str, findings: list[Finding]) -> Any:
        """Mask in place (the document was parsed for us alone): unchanged nodes cost no
        allocation, and a location tuple is built only where a rule or a finding needs it."""
        if isinstance(value, dict):
            if self.profile.fields:
                self._apply_field_rules(value, location, direction, findings)
            for key, item in value.items():
                if isinstance(item, str):
                    masked = self._leaf(item, location, key, direction, findings)
                    if masked is not item:
                        value[key] = masked
                elif isinstance(item, dict | list):
                    self._walk(item, (*location, key), direction, findings)
            return value
        if isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, str):
                    masked = self._leaf(item, location, index, direction, findings)
                    if masked is not item:
                        value[index] = masked
                elif isinstance(item, dict | list):
                    self._walk(item, (*location, index), direction, findings)
            return value
        if isinstance(value, str):
            return self._leaf(value, (), None, direction, findings)
        return value

    def _leaf(
        self,
        text: str,
        parent: Location,
        key: str | int | None,
        direction: str,
        findings: list[Finding],
    ) -> str:
        if len(text) < MIN_VALUE_CHARS or type(text) is _Masked:
            return text
        location = parent if key is None else (*parent, key)
        if self.profile.scan is not None and not self._scanned(location):
            return text
        spans = self.spans(text)
        if not spans:
            return text
        return self._apply(text, spans, direction, render(location), findings)

    def _apply_field_rules(
        self, value: dict[str, Any], location: Location, direction: str, findings: list[Finding]
    ) -> None:
        """Named fields are masked whatever their type, and not scanned again."""
        for key in list(value):
            child = (*location, key)
            rule = self._field_rule(child)
            if rule is None:
                continue
            action = "report" if self._report else rule.action
            findings.append(Finding("FIELD", direction, render(child), action))
            if self._report:
                continue
            if rule.action == "drop":
                del value[key]
            else:
                value[key] = _Masked(self._mask_field(value[key], rule))

    def _field_rule(self, location: Location) -> FieldRule | None:
        for rule in self.profile.fields:
            if matches(rule.path, location):
                return rule
        return None

    def _scanned(self, location: Location) -> bool:
        scan = self.profile.scan
        return scan is None or any(matches(path, location) for path in scan)

    def _mask_field(self, value: Any, rule: FieldRule) -> Any:
        if isinstance(value, str):
            return self.replacement(value, "FIELD", rule.action)
        # A named field is masked whatever its type: its JSON text is replaced by a string.
        return self.replacement(orjson.dumps(value).decode(), "FIELD", rule.action)

    # -- blocking ----------------------------------------------------------------------------------
    def blocked(self, body: bytes, direction: str) -> BlockHit | None:
        rules = [rule for rule in self.profile.block if direction in rule.directions]
        if not rules:
            return None
        text = _strings_of(body)
        for rule in rules:
            if _rule_hits(rule, text):
                return BlockHit(rule.name, rule.reason)
        return None


_LONG_NUMBER = re.compile(rb"\d{19}")


class _Masked(str):
    """A value a field rule already masked: the scan leaves it alone."""

    __slots__ = ()


def loads(body: bytes) -> Any:
    """orjson, except for bodies with integers beyond 64 bits, which orjson turns into floats
    (changing the number): those go through the standard library, which keeps them exact."""
    if _LONG_NUMBER.search(body) is not None:
        return json.loads(body)
    return orjson.loads(body)


def dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _strings_of(body: bytes) -> str:
    """The text a block rule reads: every string of a JSON body, or the body as text."""
    try:
        document = loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")
    parts: list[str] = []
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            parts.append(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return "\n".join(reversed(parts))


def _rule_hits(rule: BlockRule, text: str) -> bool:
    if rule.pattern is not None:
        return rule.pattern.search(text) is not None
    return any(
        next(detector.find(text), None) is not None
        for detector in BUILTIN.values()
        if detector.name == rule.detector
    )
