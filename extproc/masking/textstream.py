"""Mask a text that arrives in pieces: one message's content, streamed.

A value can be split across two pieces ("4111 1111" then " 1111 1111", "jane" then
"@example.com"). ``feed`` returns the masked part of everything received that is final, and
holds back only the tail that could still become part of a match (``holdback``), or a match
that could still grow. Detection reads the held tail together with the last ``CONTEXT_CHARS``
already sent, so a keyword before a value ("ssn is") or a lookbehind sees what the whole text
would show: the concatenated output equals masking the whole text at once, and no part of a
detected value is ever emitted unmasked.

With ``lines``, a newline in the text joins two lines that a reader may also join with nothing
(SSE ``data:`` lines): hold-back and detection read the text both ways, and a value found in
either reading is masked whole, over the line breaks inside it.

A JWT or bearer token longer than the hold (``holdback.WORD_HOLD``) could never be matched
once its start is released: from where it starts it is masked as a secret, and the rest of
its word is dropped as it arrives (``outgrown_secret``).

Findings are appended to the list given (shared by every text of one stream) as soon as they
are made, so a stream cut short is still audited.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from extproc.masking.holdback import WORD_HOLD, hold_from, outgrown_secret, word_length
from extproc.masking.restore import RESTORE_DIRECTION, RESTORED, partial_token_start
from extproc.masking.results import Finding

if TYPE_CHECKING:
    from extproc.masking.engine import Hit, Masker

CONTEXT_CHARS = 64


class TextStreamMasker:
    def __init__(
        self,
        masker: Masker,
        direction: str,
        location: str = "stream",
        findings: list[Finding] | None = None,
        *,
        lines: bool = False,
    ) -> None:
        self._masker = masker
        self._direction = direction
        self._hits = masker.hits_for(direction)
        # Restoring: an unfinished token at the end waits until it completes or cannot be one.
        self._tokens = masker.tokens is not None and direction == RESTORE_DIRECTION
        self._location = location
        self._pending = ""
        self._context = ""  # the end of what was already sent, as it arrived
        self._sent = 0  # characters of the original text sent so far
        self._dropping = False  # the rest of an outgrown secret's word is being dropped
        # "\n" joins lines that a reader may also join with nothing (SSE data lines).
        self._lines = lines
        self.findings: list[Finding] = findings if findings is not None else []

    @property
    def held(self) -> str:
        """What is waiting for more text (as it arrived; never sent before it is masked)."""
        return self._pending

    def feed(self, text: str) -> str:
        if not text:
            return ""
        if self._dropping:
            dropped = word_length(text)
            self._sent += dropped
            if dropped == len(text):
                return ""
            self._dropping = False
            text = text[dropped:]
        return self._emit(self._pending + text, final=False)

    def finish(self) -> str:
        if not self._pending:
            return ""
        return self._emit(self._pending, final=True)

    def _emit(self, pending: str, *, final: bool) -> str:
        base = len(self._context)
        window = self._context + pending
        joined = self._lines and "\n" in window
        cut = len(window) if final else max(base, hold_from(window))
        if joined and not final and cut > base:
            cut = max(base, min(cut, _joined_hold(window)))
        if self._tokens and not final:
            cut = max(base, min(cut, partial_token_start(window)))
        if not final and len(window) - cut >= WORD_HOLD and self._masks_secrets():
            secret = outgrown_secret(window, base, cut)
            if secret >= 0:
                return self._secret_from(window, base, secret)
        if cut == base:
            # All of it may still grow (a key block, a long token): detection cannot send
            # anything more, and running it on every piece would cost quadratic time.
            self._pending = pending
            return ""
        found = self._hits(window, cache=False)
        if joined:
            found = _both_readings(found, self._hits_joined(window))
        if not final:
            for start, end, type_, _ in found:
                grows = end == len(window) and type_ != RESTORED  # a token ends at its '>'
                if start < cut < end or (grows and start < cut):
                    cut = max(base, min(cut, start))
        out = window[base:cut]
        # Hits that end in what was already sent were masked then. A hit reaching back into
        # it cannot happen while the rules above hold; if it did, its rest is masked still.
        now = [
            (max(start, base) - base, end - base, type_, value)
            for start, end, type_, value in found
            if end > base and end <= cut
        ]
        masked = out
        if now:
            masked = self._masker.apply(
                out,
                now,
                self._direction,
                self._location,
                self.findings,
                offset=self._sent,
                cache=False,
            )
        self._sent += len(out)
        self._context = window[max(0, cut - CONTEXT_CHARS) : cut]
        self._pending = window[cut:]
        return masked

    def _masks_secrets(self) -> bool:
        return any(detector.type == "SECRET" for detector in self._masker.profile.detectors)

    def _secret_from(self, window: str, base: int, start: int) -> str:
        """Send what precedes an outgrown secret masked as final, then the secret's start as
        one finding; drop the rest of its word as it comes."""
        head = self._emit(window[base:start], final=True) if start > base else ""
        value = window[start:]
        secret = self._masker.apply(
            value,
            [(0, len(value), "SECRET", value)],
            self._direction,
            self._location,
            self.findings,
            offset=self._sent,
            cache=False,
        )
        self._sent += len(value)
        self._context = ""
        self._pending = ""
        self._dropping = True
        return head + secret

    def _hits_joined(self, window: str) -> list[Hit]:
        """The hits of ``window`` read with its lines joined by nothing, at their places in
        ``window`` (a hit over a line break covers the break)."""
        return [
            (_place(window, start), _place(window, end - 1) + 1, type_, value)
            for start, end, type_, value in self._hits(window.replace("\n", ""), cache=False)
        ]


def _place(window: str, position: int) -> int:
    """Where the character at ``position`` of ``window`` without its line breaks is in
    ``window`` (its length past the end). A binary search on counts, in C: a window of short
    lines has as many breaks as characters, and is read on every piece."""
    low, high = position, len(window)
    while low < high:  # the first place with position + 1 characters up to it
        middle = (low + high) // 2
        if middle + 1 - window.count("\n", 0, middle + 1) > position:
            high = middle
        else:
            low = middle + 1
    return low


def _joined_hold(window: str) -> int:
    """``hold_from`` of ``window`` read with its lines joined by nothing."""
    return _place(window, hold_from(window.replace("\n", "")))


def _both_readings(found: list[Hit], joined: list[Hit]) -> list[Hit]:
    """The hits of two readings of one text, overlapping ones merged into one span."""
    if not joined:
        return found
    merged: list[Hit] = []
    for start, end, type_, value in sorted([*found, *joined]):
        if merged and start < merged[-1][1]:
            first = merged[-1]
            merged[-1] = (first[0], max(end, first[1]), first[2], first[3])
            continue
        merged.append((start, end, type_, value))
    return merged
