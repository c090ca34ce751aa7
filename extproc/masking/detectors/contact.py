"""E-mail addresses and phone numbers.

Phones come in three forms. International (``+44 20 7946 0958``) and NANP-formatted
(``(415) 555-0100``, ``415-555-0100``) numbers are taken on their shape, as before. National
numbers of the configured regions (``020 7946 0263``, ``04 61 47 72 79``, ``030 92400589``,
``404 555 0150``) must be printed with separators, start with the region's trunk prefix where it
has one (``0`` in GB, FR, DE), and be a valid number of that region for ``phonenumbers``;
unformatted digits (``4045550150``) count only after a phone keyword. Dates, times, amounts in
groups of three, versions and IP addresses are refused before ``phonenumbers`` is asked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import lru_cache

import phonenumbers

from extproc.masking.detectors import phone_rules
from extproc.masking.detectors.base import (
    FLAGS,
    Detector,
    Trigger,
    digits_of,
    keyword_pattern,
    keyword_trigger,
)

DEFAULT_PHONE_REGIONS = ("US", "GB", "FR", "DE")

# Letters and digits of any script (internationalised addresses: "jörg@exämple.de"), so that no
# part of one is left beside its mask; ``[^\W_]`` is a letter or digit, ``[^\W\d_]`` a letter.
_EMAIL = re.compile(
    r"(?<![\w.+%-])[^\W_](?:[\w.%+-]{0,62}[\w%+-])?"
    r"@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,24}(?![\w-])"
)
_INTERNATIONAL = re.compile(r"(?<![\w+])\+[1-9]\d{0,2}(?:[ .-]?\(?\d{1,4}\)?){2,7}(?!\d)", FLAGS)
_NANP = re.compile(r"(?<![\w(])(?:\(\d{3}\) ?|\d{3}[.-])\d{3}[.-]\d{4}(?![\d-])", FLAGS)
# Digit groups with one kind of separator, the first group maybe in parentheses ("(0)20 ...").
_NATIONAL = re.compile(
    r"(?<![\w+.,/\-])(?:\(\d{1,5}\) ?|00 ?)?\d{1,8}(?:([ .\-/])\d{1,8})(?:\1\d{1,8}){0,5}"
    r"(?![\w]|[.,/\-:]\d)",
    FLAGS,
)
_PHONE_KEYWORDS = (
    r"tel|telephone|phone|mobile|cell|fax|call|whatsapp|telefon|telefonnummer|handy|"
    r"rufnummer|mobil|t[ée]l[ée]phone|t[ée]l|portable|cellulare|tel[ée]fono|m[oó]vil"
)
_PHONE_GAP = r"[^\w\n]{0,4}(?:(?:me|us|at|on|number|no|nr|is)\b[^\w\n]{0,4}){0,3}"
_UNFORMATTED = keyword_pattern(_PHONE_KEYWORDS, r"(?:\+|00)?\d{8,14}", _PHONE_GAP)
_DATE = re.compile(r"\d{4}([.\-/])\d{1,2}\1\d{1,2}|\d{1,2}([.\-/])\d{1,2}\2\d{2,4}", FLAGS)
_THOUSANDS = re.compile(r"\d{1,3}(?:([ .])\d{3})+", FLAGS)
_GROUP_SEPARATORS = re.compile(r"[ .\-/()]+")


def _valid_international(match: re.Match[str]) -> bool:
    return 8 <= len(digits_of(match.group(0))) <= 15


def _valid_nanp(match: re.Match[str]) -> bool:
    digits = digits_of(match.group(0))
    return digits[0] in "23456789" and digits[3] in "23456789"


@lru_cache(maxsize=4096)
def _valid_in(digits: str, regions: tuple[str, ...], grouped: tuple[int, ...]) -> bool:
    """Whether ``digits``, printed in groups of these sizes, is a valid national number of
    one of ``regions`` (cached: the same numbers come back in every request of a session)."""
    if digits.startswith("00"):
        return _valid_dialled_abroad(digits[2:], regions)
    for region in regions:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        if metadata is None:
            continue
        if metadata.country_code == 1:  # NANP: ten digits, 3-3-4 (or a leading 1)
            if digits.startswith("1"):
                digits, grouped = digits[1:], grouped[1:] if grouped[:1] == (1,) else grouped
            if len(digits) != 10 or grouped not in ((3, 3, 4), (10,)):
                continue
        elif metadata.national_prefix == "0" and not digits.startswith("0"):
            continue
        if phone_rules.may_be_valid(digits, region) and _parses_valid(digits, region):
            return True
    return False


def _valid_dialled_abroad(digits: str, regions: tuple[str, ...]) -> bool:
    """Whether ``+digits`` is a valid number (``00`` dialled from one of ``regions``)."""
    if not regions:
        return False
    international = "+" + digits
    code = phone_rules.calling_code(digits)
    if code is None:  # parse falls back on each region's own rules
        return any(_parses_valid(international, region) for region in regions)
    # Behind a calling code parse reads the same number whatever the region: one call.
    if not phone_rules.may_be_valid_international(digits, code):
        return False
    return _parses_valid(international, regions[0])


def _parses_valid(number: str, region: str) -> bool:
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_valid_number(parsed))


def _national_validator(regions: tuple[str, ...]) -> Callable[[re.Match[str]], bool]:
    # Where every region has a trunk prefix or is NANP, most candidates (dates, builds,
    # amounts) fail on their first character or grouping, before any regex or phonenumbers.
    trunk_only = all(_national_prefix(region) in ("0", "1") for region in regions)
    nanp = any(_national_prefix(region) == "1" for region in regions)

    def valid(match: re.Match[str]) -> bool:
        text = match.group(0)
        if trunk_only and text[0] not in "0(" and (not nanp or len(text) < 12):
            return False  # not 3-3-4 either: ten digits and two separators are twelve characters
        groups = tuple(len(g) for g in _GROUP_SEPARATORS.split(text.strip("()")) if g)
        if trunk_only and text[0] not in "0(" and not (nanp and groups == (3, 3, 4)):
            return False
        digits = digits_of(text)
        if not 8 <= len(digits) <= 14 or _DATE.fullmatch(text) or _THOUSANDS.fullmatch(text):
            return False
        parts = text.split(".")
        if match.group(1) == "." and len(parts) <= 4 and all(len(p) <= 3 for p in parts):
            return False  # an IP address or a version
        return _valid_in(digits, regions, groups)

    return valid


def _national_prefix(region: str) -> str | None:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    return None if metadata is None else metadata.national_prefix


def _keyword_validator(regions: tuple[str, ...]) -> Callable[[re.Match[str]], bool]:
    def valid(match: re.Match[str]) -> bool:
        number = match.group(1)
        if number.startswith("+"):
            return _parses_valid(number, regions[0] if regions else "US")
        digits = digits_of(number)
        return _valid_in(digits, regions, (len(digits),))

    return valid


def check_regions(regions: Iterable[str]) -> tuple[str, ...]:
    """The regions as ``phonenumbers`` knows them (upper case), or ValueError naming the
    unknown one."""
    checked = tuple(region.upper() for region in regions)
    for region in checked:
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown phone region {region!r} (expected an ISO 3166 code)")
    return checked


def phone_detectors(regions: Iterable[str] = DEFAULT_PHONE_REGIONS) -> dict[str, Detector]:
    checked = check_regions(regions)
    return {
        # Only this phone shape needs a "+": text dense with other digits skips its scan.
        "phone": Detector(
            "phone", "PHONE", _INTERNATIONAL, _valid_international, scope="phone", hints=("+",)
        ),
        "phone_nanp": Detector("phone", "PHONE", _NANP, _valid_nanp, scope="phone"),
        "phone_national": Detector(
            "phone", "PHONE", _NATIONAL, _national_validator(checked), scope="phone"
        ),
        "phone_keyword": Detector(
            "phone", "PHONE", _UNFORMATTED, _keyword_validator(checked), 1, "phone_keyword"
        ),
    }


DETECTORS: dict[str, Detector] = {
    "email": Detector("email", "EMAIL", _EMAIL, scope="at"),
    **phone_detectors(),
}
TRIGGERS = (
    Trigger("at", "@", before=64, after=256),
    Trigger("phone", r"(?:\b|\+|\()\d(?:[ .\-()/]{0,3}\d){7,}", before=6, after=4),
    keyword_trigger("phone_keyword", _PHONE_KEYWORDS, after=64),
)
