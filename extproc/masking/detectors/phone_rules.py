"""What ``phonenumbers`` can never accept, read from its own metadata: the cheap refusals in
front of ``parse`` and ``is_valid_number``, which cost tens of microseconds per call.

Dense text is full of digit groups that start like a national number (builds, ids, amounts)
and are no number of any configured region. For a string of ASCII digits ``parse`` reads one
of a few national significant numbers (the digits, or the digits after a national prefix, or
after a calling code), and ``is_valid_number`` accepts one only if it fits the general
description and one number type of a region of its calling code. These functions check that
necessary condition with the metadata's own patterns, and say ``True`` (ask ``phonenumbers``)
whenever ``parse`` could read the digits another way: behind an international prefix, a
calling code, a national prefix that is rewritten.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers

# The number types ``is_valid_number`` knows: a valid number matches its region's general
# description and the description of one of these.
_NUMBER_TYPES = (
    "premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan",
    "voicemail", "fixed_line", "mobile",
)  # fmt: skip
_MAX_CODE_DIGITS = 3  # calling codes have one to three digits

# Per region of a calling code: its general description's lengths (empty: any) and pattern,
# and one pattern that every number of one of its types matches.
Shapes = tuple[tuple[frozenset[int], re.Pattern[str], re.Pattern[str]], ...]


@dataclass(frozen=True, slots=True)
class _National:
    """How ``parse`` reads digits as a national number of one region."""

    international_prefix: re.Pattern[str] | None
    country_code: str
    national_prefix: re.Pattern[str] | None
    rewritten: bool  # a transform rule rewrites the national prefix: no refusal
    shapes: Shapes


def may_be_valid(digits: str, region: str) -> bool:
    """False only when ``is_valid_number(parse(digits, region))`` is false (or ``parse``
    raises), for ``digits`` of ASCII digits only."""
    national = _national(region)
    if national is None or national.rewritten or digits.startswith(national.country_code):
        return True  # parse may read a calling code of this region
    idd = national.international_prefix
    if idd is not None and idd.match(digits):
        return True  # an international prefix: the number may be another country's
    return _fits(digits, national.national_prefix, national.shapes)


def calling_code(digits: str) -> int | None:
    """The calling code ``parse`` reads at the start of ``"+" + digits`` (ASCII digits), or
    None when it reads none: then it falls back on the region's own rules."""
    if not digits or digits[0] == "0":
        return None
    for size in range(1, min(len(digits), _MAX_CODE_DIGITS) + 1):
        code = int(digits[:size])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return code
    return None


def may_be_valid_international(digits: str, code: int) -> bool:
    """False only when ``is_valid_number(parse("+" + digits, region))`` is false for every
    region, where ``code`` is ``calling_code(digits)`` (then ``parse`` reads the same number
    whatever the region)."""
    rules = _after_code(code)
    if rules is None or rules[0]:
        return True
    _, prefix, shapes = rules
    return _fits(digits[len(str(code)) :], prefix, shapes)


def _fits(number: str, prefix: re.Pattern[str] | None, shapes: Shapes) -> bool:
    """Whether the national significant number ``parse`` makes of ``number`` (itself, or what
    follows the national prefix) may fit one of ``shapes``."""
    if _fits_shapes(number, shapes):
        return True
    stripped = prefix.match(number) if prefix is not None else None
    return stripped is not None and _fits_shapes(number[stripped.end() :], shapes)


def _fits_shapes(number: str, shapes: Shapes) -> bool:
    size = len(number)
    return any(
        (not lengths or size in lengths) and general.fullmatch(number) and types.fullmatch(number)
        for lengths, general, types in shapes
    )


@lru_cache(maxsize=512)
def _national(region: str) -> _National | None:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None or metadata.country_code is None:
        return None
    return _National(
        _compiled(metadata.international_prefix),
        str(metadata.country_code),
        _compiled(metadata.national_prefix_for_parsing),
        bool(metadata.national_prefix_transform_rule),
        _shapes(metadata.country_code),
    )


@lru_cache(maxsize=512)
def _after_code(code: int) -> tuple[bool, re.Pattern[str] | None, Shapes] | None:
    """For a number read after calling code ``code``: whether its national prefix is
    rewritten, the prefix, and the shapes of its regions (the metadata ``parse`` uses is the
    calling code's main region's)."""
    region = phonenumbers.region_code_for_country_code(code)
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(code, region)
    if metadata is None:
        return None
    return (
        bool(metadata.national_prefix_transform_rule),
        _compiled(metadata.national_prefix_for_parsing),
        _shapes(code),
    )


def _shapes(code: int) -> Shapes:
    shapes: list[tuple[frozenset[int], re.Pattern[str], re.Pattern[str]]] = []
    for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(code, ()):
        metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(code, region)
        if metadata is None or metadata.general_desc is None:
            continue
        general = metadata.general_desc.national_number_pattern
        kinds = (getattr(metadata, kind) for kind in _NUMBER_TYPES)
        patterns = [kind.national_number_pattern for kind in kinds if kind is not None]
        patterns = [pattern for pattern in patterns if pattern]
        if general and patterns:  # otherwise no number of this region is ever valid
            shapes.append(
                (
                    frozenset(metadata.general_desc.possible_length),
                    re.compile(general),
                    re.compile("|".join(f"(?:{pattern})" for pattern in patterns)),
                )
            )
    return tuple(shapes)


def _compiled(pattern: str | None) -> re.Pattern[str] | None:
    return re.compile(pattern) if pattern else None
