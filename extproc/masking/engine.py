"""Mask text and bodies with one profile. Pure, synchronous, fail closed.

Detectors read what the receiver will decode (``normalize``): escapes decoded, compatibility
forms folded; a span found there replaces the original characters that encoded it. Bodies are
read by what they are, not by their label (``bodies``): JSON wherever it parses, NDJSON line by
line, forms field by field, multipart part by part, anything else as text.

Invariants: masked JSON is valid JSON of the same shape (keys, nesting, array lengths; a
``drop`` field rule removes its member; a key holding a finding is renamed; a number holding
one becomes a string); findings carry a type, a direction, a location (JSON path or character
offset) and the action, never the value. In ``report`` mode nothing changes but findings are
still produced.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
from collections.abc import Callable
from typing import Any, Literal

from extproc.errors import Code
from extproc.masking import bodies
from extproc.masking.detectors import BUILTIN, SCOPES, Detector, Span, present_scopes
from extproc.masking.jsondoc import dumps, loads
from extproc.masking.normalize import fold, needs_view, view
from extproc.masking.operators import ActionSpec, operator, replace_value
from extproc.masking.profile import BlockRule, FieldRule, Profile
from extproc.masking.restore import RESTORE_DIRECTION, RESTORED, ExchangeTokens
from extproc.masking.results import (
    BlockHit,
    Finding,
    MaskingError,
    MaskResult,
    findings_by_type,
    new_finding,
)
from extproc.masking.walk import MIN_VALUE_CHARS, mask_document

__all__ = [
    "BlockHit",
    "Finding",
    "Hit",
    "MaskResult",
    "Masker",
    "MaskingError",
    "dumps",
    "findings_by_type",
    "loads",
]

CACHED_TEXT_CHARS = 256
SPAN_CACHE_ENTRIES = 8192
Hit = tuple[int, int, str, str]  # start, end (original offsets), type, the value as detected
HitFinder = Callable[..., list[Hit]]
Plan = tuple[tuple[Detector, str | None], ...]  # detectors to run, each with its scope's name
PLAN_ENTRIES = 1024
# The hits a masked text was made for, the masked text, and per hit: its start, type, the
# finding's action, the original characters and what replaced them.
MaskedEntry = tuple[list[Hit], str, tuple[tuple[int, str, str, str, str], ...]]


class Masker:
    def __init__(self, profile: Profile, key: bytes) -> None:
        self.profile = profile
        self._key = key
        self.report = profile.mode == "report"
        self._hit_cache: dict[str, list[Hit]] = {}
        # Which detectors to run for each set of scopes the prefilter found (a few dozen sets
        # occur; the profile is immutable, so a plan never goes stale).
        self._plans: dict[frozenset[str], Plan] = {}
        self._masked_cache: dict[tuple[str, str], MaskedEntry] = {}
        self.clean_keys: dict[str, str] = {}  # JSON keys known to hold nothing (bounded)
        self.tokens: ExchangeTokens | None = None  # set on an exchange's own copy (restore)

    def for_exchange(self, tokens: ExchangeTokens) -> Masker:
        """A copy for one exchange that issues into and restores from ``tokens``. It shares
        the detection cache (detector hits do not depend on the exchange) but not the clean
        keys: a key may hold a token only this exchange can restore."""
        bound = copy.copy(self)
        bound.tokens = tokens
        bound.clean_keys = {}
        return bound

    def hits_for(self, direction: str) -> HitFinder:
        """``hits`` as ``direction`` reads it: a response of an exchange that issued tokens
        also finds them, as ``RESTORED`` hits."""
        tokens = self.tokens
        if tokens is None or direction != RESTORE_DIRECTION:
            return self.hits

        def restoring(text: str, *, cache: bool = True) -> list[Hit]:
            return tokens.with_tokens(text, self.hits(text, cache=cache))

        return restoring

    def hit_cache_for(self, direction: str) -> dict[str, list[Hit]]:
        """The cache behind ``hits_for(direction)`` for a caller's own lookups (an entry is
        what ``hits`` returns for that text), or an empty dict when that direction's hits are
        not ``hits`` alone (tokens to restore)."""
        if self.tokens is None or direction != RESTORE_DIRECTION:
            return self._hit_cache
        return {}

    # -- detection ----------------------------------------------------------------------------
    def hits(self, text: str, *, cache: bool = True) -> list[Hit]:
        """Non-overlapping findings, leftmost first; of overlapping candidates the longest wins.

        Short strings repeat a lot in JSON bodies (statuses, notes, names), so their answers are
        cached (bounded; the profile is immutable, so a cached answer never goes stale). A
        stream's growing tail is not worth caching: it never repeats."""
        if len(text) < MIN_VALUE_CHARS and text.isascii():
            return []
        cacheable = cache and len(text) <= CACHED_TEXT_CHARS
        if cacheable:
            cached = self._hit_cache.get(text)
            if cached is not None:
                return cached
        found: list[Hit]
        if needs_view(text):
            seen = view(text)
            found = [
                (*seen.original(start, end), type_, seen.text[start:end])
                for start, end, type_ in self._detect(seen.text)
            ]
        else:
            found = [
                (start, end, type_, text[start:end]) for start, end, type_ in self._detect(text)
            ]
        if cacheable:
            if len(self._hit_cache) >= SPAN_CACHE_ENTRIES:
                self._hit_cache.clear()
            self._hit_cache[text] = found
        return found

    def spans(self, text: str) -> list[Span]:
        return [(start, end, type_) for start, end, type_, _ in self.hits(text)]

    def _detect(self, text: str) -> list[Span]:
        if len(text) < MIN_VALUE_CHARS:
            return []
        found: list[Span] = []
        names, scopes = present_scopes(text)
        plan = self._plans.get(names)
        if plan is None:
            plan = self._plan(names)
        for detector, scope in plan:
            if detector.hints:
                for hint in detector.hints:
                    if hint in text:
                        break
                else:
                    continue
            found.extend(detector.find(text, scopes[scope] if scope else None))
        if len(found) > 1:
            found.sort(key=lambda span: (span[0], -(span[1] - span[0])))
            resolved: list[Span] = []
            end = -1
            for span in found:
                if span[0] >= end:
                    resolved.append(span)
                    end = span[1]
            found = resolved
        return found

    def _plan(self, present: frozenset[str]) -> Plan:
        """The profile's detectors that can match when the scopes ``present`` have triggers,
        in the profile's order (of two findings with the same span the first wins), each
        with the scope whose windows it reads (None: the whole text). A detector of a scope
        the prefilter does not know, or of ``all``, always runs on the whole text."""
        plan = tuple(
            (detector, detector.scope if detector.scope in SCOPES else None)
            for detector in self.profile.detectors
            if detector.scope not in SCOPES or detector.scope in present
        )
        if len(self._plans) < PLAN_ENTRIES:
            self._plans[present] = plan
        return plan

    # -- text -----------------------------------------------------------------------------------
    def mask_text(
        self, text: str, direction: str, location: str = "", findings: list[Finding] | None = None
    ) -> str:
        found = self.hits_for(direction)(text)
        if not found:
            return text
        return self.apply(
            text, found, direction, location, findings if findings is not None else []
        )

    def apply(
        self,
        text: str,
        found: list[Hit],
        direction: str,
        location: str,
        out: list[Finding],
        replaced: list[tuple[str, str]] | None = None,
        offset: int = 0,
        *,
        cache: bool = True,
    ) -> str:
        """Record a finding per hit and replace each hit's original characters (the same
        ``text`` object back in report mode). ``replaced`` collects (original, replacement)
        pairs for callers that account for what changed; ``offset`` shifts the offsets findings
        name (a stream's text arrives in pieces). ``cache``: as for ``hits`` (a stream's pieces
        never repeat, and would only push out the values that do)."""
        tokens = self.tokens
        if cache and tokens is None and len(text) <= CACHED_TEXT_CHARS:
            return self._apply_cached(text, found, direction, location, out, replaced, offset)
        return self._apply(text, found, direction, location, out, replaced, offset)

    def _apply_cached(
        self,
        text: str,
        found: list[Hit],
        direction: str,
        location: str,
        out: list[Finding],
        replaced: list[tuple[str, str]] | None,
        offset: int,
    ) -> str:
        """``_apply`` for a short text without exchange tokens: what masking ``text`` with
        ``found`` writes depends on nothing else (the profile and key are fixed), and short
        values repeat (the same e-mail in every request of a session, in every record), so the
        masked text and each hit's action and replacement are kept (bounded, like the hit
        cache, which holds the same values). Only the findings' locations are made anew."""
        key = (text, direction)
        entry = self._masked_cache.get(key)
        if entry is None or entry[0] != found:
            entry = self._masked_entry(text, found, direction)
            if len(self._masked_cache) >= SPAN_CACHE_ENTRIES:
                self._masked_cache.clear()
            self._masked_cache[key] = entry
        _, masked, parts = entry
        for start, type_, label, original, replacement in parts:
            position = start + offset
            where = f"{location}@{position}" if location else f"offset:{position}"
            out.append(new_finding(type_, direction, where, label))
            if replaced is not None:
                replaced.append((original, replacement))
        # Report mode gives the caller's own object back (callers test identity).
        return text if self.report else masked

    def _masked_entry(self, text: str, found: list[Hit], direction: str) -> MaskedEntry:
        findings: list[Finding] = []
        pairs: list[tuple[str, str]] = []
        masked = self._apply(text, found, direction, "", findings, pairs, 0)
        parts = tuple(
            (hit[0], finding.type, finding.action, original, replacement)
            for hit, finding, (original, replacement) in zip(found, findings, pairs, strict=True)
        )
        return list(found), masked, parts

    def _apply(
        self,
        text: str,
        found: list[Hit],
        direction: str,
        location: str,
        out: list[Finding],
        replaced: list[tuple[str, str]] | None,
        offset: int,
    ) -> str:
        pieces: list[str] = []
        last = 0
        tokens = self.tokens
        for start, end, type_, value in found:
            where = f"{location}@{start + offset}" if location else f"offset:{start + offset}"
            if type_ == RESTORED and tokens is not None:
                # The caller's own value, for the caller: counted, never detected again.
                out.append(new_finding(RESTORED, direction, where, "restore"))
                replacement = tokens.value_of(value)
            else:
                action = self.profile.action_for(type_, direction)
                label = "report" if self.report else action.name
                out.append(new_finding(type_, direction, where, label))
                replacement = self.replacement(value, type_, action)
                if tokens is not None and action.name == "tokenize" and direction == "request":
                    tokens.issue(replacement, text[start:end])
            pieces.append(text[last:start])
            pieces.append(replacement)
            if replaced is not None:
                replaced.append((text[start:end], replacement))
            last = end
        if self.report:
            return text
        pieces.append(text[last:])
        return "".join(pieces)

    def replacement(self, value: str, type_: str, action: ActionSpec) -> str:
        """What ``action`` (an operator, or an action's name) writes for ``value``."""
        return replace_value(value, type_, operator(action), self._mac)

    def _mac(self, type_: str, value: str) -> str:
        return hmac.new(self._key, f"{type_}\0{value}".encode(), hashlib.sha256).hexdigest()

    def mask_field(self, value: Any, rule: FieldRule) -> str:
        if isinstance(value, str):
            return self.replacement(value, "FIELD", rule.action)
        # A named field is masked whatever its type: its JSON text is replaced by a string.
        return self.replacement(dumps(value).decode(), "FIELD", rule.action)

    # -- bodies ---------------------------------------------------------------------------------
    def mask_body(
        self,
        body: bytes,
        content_type: str,
        direction: str,
        *,
        binary_parts: Literal["refuse", "pass"] = "refuse",
    ) -> MaskResult:
        """A whole body, read by what it is (see ``bodies.mask_body``)."""
        return bodies.mask_body(self, body, content_type, direction, binary_parts=binary_parts)

    def mask_json_value(self, value: Any, direction: str, findings: list[Finding]) -> Any:
        return mask_document(self, value, direction, findings)[0]

    def mask_json(self, body: bytes, direction: str) -> MaskResult:
        """A body labelled JSON (kept for callers that dispatch by label; ``mask_body`` sniffs)."""
        return bodies.mask_json(self, body, direction, declared=True)

    def mask_bytes_as_text(self, body: bytes, direction: str) -> MaskResult:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise MaskingError("the body is not valid UTF-8", code=Code.INVALID_UTF8) from None
        findings: list[Finding] = []
        masked = self.mask_text(text, direction, findings=findings)
        if not findings or self.report:
            return MaskResult(body, tuple(findings), False)
        return MaskResult(masked.encode("utf-8"), tuple(findings), True)

    # -- blocking -------------------------------------------------------------------------------
    def blocked(self, body: bytes, direction: str, content_type: str = "") -> BlockHit | None:
        """Block rules read every string of the body as the receiver decodes it, and its
        folded view (a rule must not be dodged with full-width letters or escapes)."""
        rules = [rule for rule in self.profile.block if direction in rule.directions]
        if not rules:
            return None
        text = bodies.strings_of(body, content_type)
        folded = fold(text)
        for rule in rules:
            if _rule_hits(rule, text) or (folded != text and _rule_hits(rule, folded)):
                return BlockHit(rule.name, rule.reason, rule.approval)
        return None


def _rule_hits(rule: BlockRule, text: str) -> bool:
    if rule.pattern is not None:
        return rule.pattern.search(text) is not None
    return any(
        next(detector.find(text), None) is not None
        for detector in BUILTIN.values()
        if detector.name == rule.detector
    )
