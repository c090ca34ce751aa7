"""What every detector family shares: the span and window types, the detector itself, the
trigger that tells the prefilter where a family can match, and the keyword context rule."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Span = tuple[int, int, str]  # start, end, type


Windows = list[tuple[int, int]]

# Built-in patterns are ASCII: a digit is 0-9 and a word character [A-Za-z0-9_]. Lookalike
# digits from other scripts are the engine's normalization to fold, not every pattern's.
FLAGS = re.ASCII


@dataclass(frozen=True, slots=True)
class Detector:
    """``type`` is the label in masked output (``[REDACTED:CARD]``) and in findings.

    ``scope`` names the windows the engine hands to ``find`` (see ``windows``): ``all`` is the
    whole text, ``at`` the surroundings of each ``@``, and every built-in family has its own
    scope, made of the places where its trigger matched. A scope absent from ``windows`` means
    the whole text, so a detector of an unknown scope is never skipped.
    ``not_after`` are characters that must not precede a match.
    ``hints`` are literals the pattern cannot match without (the engine skips the detector
    when none is in the text); built-in detectors mostly leave it empty, their triggers do that
    job, but a scope's trigger can be far broader than one of its detectors (a digit run
    starts every phone shape, only the international one needs a ``+``).
    ``group`` is the part of the match that is masked: 0 the whole, n a group, -1 whichever
    group took part (for alternations whose every branch captures its value).
    """

    name: str
    type: str
    pattern: Any
    validate: Callable[[Any], bool] | None = None
    group: int = 0
    scope: str = "all"
    not_after: str = ""
    hints: tuple[str, ...] = ()

    def find(self, text: str, windows: Windows | None = None) -> Iterator[Span]:
        if windows is None:
            windows = [(0, len(text))]
        for low, high in windows:
            for match in self.pattern.finditer(text, low, high):
                group = (match.lastindex or 0) if self.group < 0 else self.group
                start = match.start(group)
                if self.not_after and start > 0 and text[start - 1] in self.not_after:
                    continue
                if self.validate is None or self.validate(match):
                    yield start, match.end(group), self.type


@dataclass(frozen=True, slots=True)
class Trigger:
    """A cheap RE2 superset of what a scope's detectors match, and the context they need.

    Every match of a detector must contain a match of one of its scope's triggers; the window
    around a trigger reaches ``before`` characters back (where a keyword may stand) and
    ``after`` characters on (where the value may end)."""

    scope: str
    pattern: str
    before: int = 8
    after: int = 8


# Between a keyword and its value: punctuation and a few filler words ("SSN: ...", "NHS number
# is ...", "routing no. ..."). Bounded, so that keyword and value stay within the words the
# stream masker holds back.
KEYWORD_GAP = r"[^\w\n]{0,4}(?:(?:number|no|num|nr|is|was)\b[^\w\n]{0,4}){0,2}"
WORD = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_"


def keyword_pattern(keywords: str, value: str, gap: str = KEYWORD_GAP) -> re.Pattern[str]:
    """``keywords`` (an alternation, case-insensitive) then the value as group 1."""
    # A keyword ends at a word boundary, unless it ends in a symbol ("ss#123456789").
    return re.compile(rf"(?i:\b(?:{keywords}))(?:(?<!\w)|(?!\w)){gap}(?<!\w)({value})(?!\w)", FLAGS)


def keyword_trigger(scope: str, keywords: str, after: int = 48) -> Trigger:
    """The trigger of a keyword-led detector: the keyword, the value within ``after``."""
    return Trigger(scope, rf"(?i)\b(?:{ascii_superset(keywords)})", before=2, after=after)


def ascii_superset(pattern: str) -> str:
    """``pattern`` for RE2, which sees every non-ASCII character as ``?``: a class or a
    character that is not ASCII becomes ``.``."""
    pattern = re.sub(r"\[[^\]]*[^\x00-\x7f][^\]]*\]", ".", pattern)
    return re.sub(r"[^\x00-\x7f]", ".", pattern)


def digits_of(text: str) -> str:
    return "".join(ch for ch in text if "0" <= ch <= "9")


def value(match: re.Match[str]) -> str:
    """The masked part of a keyword match, without separators."""
    return match.group(1).replace(" ", "").replace("-", "").replace(".", "")
