"""Locating a scope's triggers stops once a window reaches the end of the text: the windows
are the ones the full scan gives, for every scope, over texts dense with digits."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.masking.detectors import _PREFILTER
from extproc.masking.detectors.base import Windows
from extproc.masking.detectors.prefilter import _UNANCHORED

PIECES = [
    "4111 1111 1111 1111", "020 7946 0263", "+44 20 7946 0958", "(415) 555-0100", "123-45-6789",
    "2024-01-15", "12:30", "v1.2.3", "1700000000123", "20240115.7", "ORD-000123", "4470.55",
    "ssn", "phone", "IBAN DE89 3704 0044 0532 0130 00", "a@b.co", "0x" + "ab" * 20, "é", "\n",
    "the order", " ", ", ", ".",
]  # fmt: skip


def full_scan(scope: str, data: bytes, position: int) -> Windows:
    """The windows as located before the early stop: every trigger, to the end of the text."""
    regexp, before, after = _PREFILTER._locators[scope]
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
        position = end if end > start else end + 1
    return found


def check(text: str) -> None:
    data = text.encode("ascii", "replace")
    for scope in _PREFILTER.scopes:
        for position in (0, len(data) // 3):
            assert _PREFILTER._locate(scope, data, position) == full_scan(scope, data, position)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=40))
def test_windows_are_those_of_the_full_scan(parts: list[str]) -> None:
    check(" ".join(parts))


def test_windows_of_random_digit_texts_are_those_of_the_full_scan() -> None:
    rng = random.Random(7)
    for _ in range(500):
        text = "".join(rng.choice("0123456789 .-/:()+abc") for _ in range(rng.randrange(1, 300)))
        check(text)
