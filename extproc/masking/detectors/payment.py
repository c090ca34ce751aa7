"""Payment data: card numbers (issuer ranges, lengths, Luhn), IBANs (mod 97) and US ABA
routing numbers (3-7-1 checksum, only after a keyword: nine digits are everywhere)."""

from __future__ import annotations

import re
from functools import lru_cache

from stdnum import iban as stdnum_iban
from stdnum.us import rtn

from extproc.masking.detectors.base import (
    FLAGS,
    Detector,
    Trigger,
    keyword_pattern,
    keyword_trigger,
    value,
)

# A run of digit groups separated by single spaces, or by single dashes, starting at a token
# boundary: a number glued to letters (TRK123..., 1Z...) is a tracking or order code, not a
# card. Cards inside a run are looked for group by group, so "qty 2 4111 1111 1111 1111" and
# "2024-01-15 4111 1111 1111 1111" still yield the card.
# Digit groups separated by one space, one dash or one tab throughout: a mixed run would join
# an SSN's dashes to the card after it and hide the card in a candidate that overlaps the SSN.
_CARD_RUN = re.compile(
    r"(?<![\w.\-])(?:\d+(?: \d+)+|\d+(?:-\d+)+|\d+(?:\t\d+)+|\d+)(?![\w\-]|\.\d)", FLAGS
)
_CARD_DIGITS = (13, 19)
_ISSUERS: tuple[tuple[str, str, tuple[int, ...]], ...] = (
    # (low prefix, high prefix, lengths) of issuer ranges
    ("4", "4", (13, 16, 19)),  # Visa
    ("51", "55", (16,)),  # Mastercard
    ("2221", "2720", (16,)),
    ("34", "34", (15,)),  # Amex
    ("37", "37", (15,)),
    ("6011", "6011", (16, 17, 18, 19)),  # Discover
    ("644", "649", (16, 17, 18, 19)),
    ("65", "65", (16, 17, 18, 19)),
    ("3528", "3589", (16, 17, 18, 19)),  # JCB
    ("300", "305", (14, 15, 16, 17, 18, 19)),  # Diners
    ("36", "36", (14, 15, 16, 17, 18, 19)),
    ("38", "39", (14, 15, 16, 17, 18, 19)),
    ("62", "62", (16, 17, 18, 19)),  # UnionPay
    ("50", "50", (13, 14, 15, 16, 17, 18, 19)),  # Maestro
    ("56", "58", (13, 14, 15, 16, 17, 18, 19)),
    ("67", "67", (13, 14, 15, 16, 17, 18, 19)),
)
# The groups a card is printed in: fours (the last may be shorter), or Amex/Diners 4-6-5, 4-6-4.
_SPLIT_LAYOUTS = ((4, 6, 5), (4, 6, 4))
CACHED_RUN_CHARS = 64  # a card and a few groups around it; longer runs are not cached
_GROUP_SEPARATOR = re.compile(r"[ \t-]")
_CAPITAL = re.compile(r"[A-Z]")
_IBAN_BEFORE = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){0,7} ?\Z", FLAGS)


def _issuer_lengths() -> dict[str, frozenset[int]]:
    """The card lengths of each four-digit prefix (every issuer range is a prefix of at most
    four digits): one lookup instead of a scan of the ranges."""
    table: dict[str, frozenset[int]] = {}
    for low, high, lengths in _ISSUERS:
        pad = 4 - len(low)
        for number in range(int(low + "0" * pad), int(high + "9" * pad) + 1):
            prefix = f"{number:04d}"
            table[prefix] = table.get(prefix, frozenset()) | frozenset(lengths)
    return table


_LENGTHS_BY_PREFIX = _issuer_lengths()
_NO_LENGTHS: frozenset[int] = frozenset()


@lru_cache(maxsize=4096)
def _is_card_number(digits: str) -> bool:
    """Cached: a stream re-reads the card it just masked in its context for a few events.
    ``digits`` has at least 13 digits: its first four name the issuer."""
    if len(digits) not in _LENGTHS_BY_PREFIX.get(digits[:4], _NO_LENGTHS):
        return False
    return len(set(digits)) > 1 and luhn_valid(digits)


_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)  # the digit sum of twice each digit


def luhn_valid(digits: str) -> bool:
    """``stdnum.luhn.is_valid`` for a non-empty string of ASCII digits, without its per-digit
    ``str.index`` (a third of a card's cost)."""
    backwards = digits[::-1]
    total = sum(map(int, backwards[::2])) + sum(_DOUBLED[int(digit)] for digit in backwards[1::2])
    return total % 10 == 0


def _printed_like_a_card(groups: list[str]) -> bool:
    sizes = tuple(len(group) for group in groups)
    if len(sizes) == 1 or sizes in _SPLIT_LAYOUTS:
        return True
    return all(size == 4 for size in sizes[:-1]) and 1 <= sizes[-1] <= 4


class _CardRuns:
    """``finditer`` over digit runs, yielding each card inside a run (longest first)."""

    def finditer(self, text: str, low: int, high: int) -> list[re.Match[str]]:
        found: list[re.Match[str]] = []
        for run in _CARD_RUN.finditer(text, low, high):
            if run.end() - run.start() >= _CARD_DIGITS[0]:
                found.extend(_cards_in(text, run))
        return found


def _cards_in(text: str, run: re.Match[str]) -> list[re.Match[str]]:
    found: list[re.Match[str]] = []
    base = run.start()
    digits = run.group(0)
    spans = _card_spans(digits) if len(digits) <= CACHED_RUN_CHARS else _spans_in(digits)
    for offset, length in spans:
        start, stop = base + offset, base + offset + length
        # Digit groups of an IBAN whose checksum failed are not a card either (its country
        # letters must come first: without a capital letter before, there is none).
        low = max(0, start - 40)
        if (
            _CAPITAL.search(text, low, start) is None
            or _IBAN_BEFORE.search(text, low, start) is None
        ):
            match = _WHOLE.fullmatch(text, start, stop)
            if match is not None:
                found.append(match)
    return found


@lru_cache(maxsize=4096)
def _card_spans(run: str) -> tuple[tuple[int, int], ...]:
    """``_spans_in`` cached, as a stream reads the same run again in the context of later
    events (only short runs: the cache must stay small whatever the body holds)."""
    return _spans_in(run)


def _spans_in(run: str) -> tuple[tuple[int, int], ...]:
    """(offset, length) in a run of digit groups of each card it holds, leftmost first and
    longest."""
    groups = _GROUP_SEPARATOR.split(run)
    starts = [0]
    for group in groups[:-1]:
        starts.append(starts[-1] + len(group) + 1)
    spans: list[tuple[int, int]] = []
    first = 0
    while first < len(groups):
        end = _longest_card(groups, first)
        if end is None:
            first += 1
            continue
        stop = starts[end - 1] + len(groups[end - 1])
        spans.append((starts[first], stop - starts[first]))
        first = end
    return tuple(spans)


def _longest_card(groups: list[str], first: int) -> int | None:
    """The end of the longest card starting at group ``first``; bounded by 19 digits, so a
    long run of small numbers costs linear time."""
    ends: list[int] = []
    total = 0
    for last in range(first, len(groups)):
        total += len(groups[last])
        if total > _CARD_DIGITS[1]:
            break
        if total >= _CARD_DIGITS[0]:
            ends.append(last + 1)
    for end in reversed(ends):
        part = groups[first:end]
        if _printed_like_a_card(part) and _is_card_number("".join(part)):
            return end
    return None


_WHOLE = re.compile(r"[\s\S]+")

_IBAN = re.compile(
    r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])",
    FLAGS,
)


def _valid_iban(match: re.Match[str]) -> bool:
    return bool(stdnum_iban.is_valid(match.group(0).replace(" ", "")))


_ROUTING_KEYWORDS = r"routing|aba|rtn|transit number|aba routing"
_ROUTING = keyword_pattern(_ROUTING_KEYWORDS, r"\d{9}")


def _valid_routing(match: re.Match[str]) -> bool:
    return bool(rtn.is_valid(value(match)))


DETECTORS: dict[str, Detector] = {
    "card": Detector("card", "CARD", _CardRuns(), scope="card"),
    "iban": Detector("iban", "IBAN", _IBAN, _valid_iban, scope="iban"),
    "us_routing": Detector(
        "us_routing", "US_ROUTING", _ROUTING, _valid_routing, group=1, scope="us_routing"
    ),
}
TRIGGERS = (
    # Every issuer range starts with 2-6; timestamps and ids glued to letters do not trigger.
    Trigger("card", r"\b[2-6](?:[ \t-]?\d){12,}", before=2, after=2),
    Trigger("iban", r"\b[A-Z]{2}\d{2} ?[A-Z0-9]{4}", before=2, after=40),
    keyword_trigger("us_routing", _ROUTING_KEYWORDS),
)
