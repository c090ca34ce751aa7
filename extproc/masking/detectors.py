"""Built-in detectors of sensitive values: a pattern finds candidates, a validator confirms them.

Built-in patterns are ours, anchored by lookarounds and free of nested quantifiers, so Python's
``re`` runs them in linear time; user-supplied patterns run on RE2 (see ``custom.py``). Every
detector is tuned against near misses a real body is full of: order numbers, dates, version
strings, UUIDs and timestamps must survive untouched.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from stdnum import iban as stdnum_iban
from stdnum import luhn

Span = tuple[int, int, str]  # start, end, type


Windows = list[tuple[int, int]]


@dataclass(frozen=True, slots=True)
class Detector:
    """``type`` is the label in masked output (``[REDACTED:CARD]``) and in findings.

    ``scope`` says where the pattern can match at all, so that it runs only there: ``digits``
    (near a digit), ``at`` (near an ``@``) or ``all``. Scanning every position of a large body
    with ten patterns costs milliseconds; the windows make it tens of microseconds.
    ``not_after`` are characters that must not precede a match (a lookbehind that would stop
    ``re`` from using its fast literal scan).
    """

    name: str
    type: str
    pattern: Any
    validate: Callable[[Any], bool] | None = None
    group: int = 0
    scope: str = "all"
    not_after: str = ""
    hints: tuple[str, ...] = ()  # the pattern cannot match unless one of these is in the text

    def find(self, text: str, windows: Windows | None = None) -> Iterator[Span]:
        if windows is None:
            windows = [(0, len(text))]
        for low, high in windows:
            for match in self.pattern.finditer(text, low, high):
                start = match.start(self.group)
                if self.not_after and start > 0 and text[start - 1] in self.not_after:
                    continue
                if self.validate is None or self.validate(match):
                    yield start, match.end(self.group), self.type


_DIGIT_RUN = re.compile(r"\d[\d \-.()/:]*")
_WINDOW_BEFORE = 48
_WINDOW_AFTER = 8


def windows(text: str) -> dict[str, Windows | None]:
    """Where each scope's detectors must look (None: everywhere)."""
    digits: Windows = []
    for match in _DIGIT_RUN.finditer(text):
        low = max(0, match.start() - _WINDOW_BEFORE)
        high = min(len(text), match.end() + _WINDOW_AFTER)
        if digits and low <= digits[-1][1]:
            digits[-1] = (digits[-1][0], high)
        else:
            digits.append((low, high))
    at: Windows = []
    position = text.find("@")
    while position >= 0:
        low, high = max(0, position - 64), min(len(text), position + 256)
        if at and low <= at[-1][1]:
            at[-1] = (at[-1][0], high)
        else:
            at.append((low, high))
        position = text.find("@", position + 1)
    return {"digits": digits, "at": at, "all": None}


# -- payment cards ---------------------------------------------------------------------------------
_CARD = re.compile(r"(?<![\d.\-])\d(?:[ -]?\d){12,18}(?![\d\-]|\.\d)")
_CARD_PREFIXES: tuple[tuple[int, int, int], ...] = (
    # (prefix length, low, high) of issuer ranges
    (1, 4, 4),  # Visa
    (2, 51, 55),  # Mastercard
    (4, 2221, 2720),  # Mastercard 2-series
    (2, 34, 34),  # Amex
    (2, 37, 37),
    (4, 6011, 6011),  # Discover
    (2, 65, 65),
    (3, 644, 649),
    (4, 3528, 3589),  # JCB
    (2, 36, 36),  # Diners
    (2, 38, 39),
    (3, 300, 305),
    (2, 62, 62),  # UnionPay
    (2, 50, 50),  # Maestro
    (2, 56, 58),
    (2, 67, 67),
)


def _valid_card(match: re.Match[str]) -> bool:
    raw = match.group(0)
    separators = {ch for ch in raw if not ch.isdigit()}
    if len(separators) > 1:
        return False
    digits = raw.replace(" ", "").replace("-", "")
    if not 13 <= len(digits) <= 19 or len(set(digits)) == 1:
        return False
    if not any(low <= int(digits[:size]) <= high for size, low, high in _CARD_PREFIXES):
        return False
    return bool(luhn.is_valid(digits))


# -- US social security numbers -------------------------------------------------------------------
_SSN = re.compile(r"(?<![\d-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\d-])")
_SSN_KEYWORD = re.compile(
    r"(?i)\b(?:ssn|ss#|social[ -]security(?:[ -]n(?:o|umber))?)\b\W{0,5}(?:is\W{0,3})?(\d{9})(?!\d)"
)


def _valid_ssn_parts(area: str, group: str, serial: str) -> bool:
    return (
        area != "000"
        and area != "666"
        and not area.startswith("9")
        and group != "00"
        and serial != "0000"
    )


def _valid_ssn(match: re.Match[str]) -> bool:
    return _valid_ssn_parts(match.group(1), match.group(3), match.group(4))


def _valid_bare_ssn(match: re.Match[str]) -> bool:
    digits = match.group(1)
    return _valid_ssn_parts(digits[:3], digits[3:5], digits[5:])


# -- e-mail, phone, IBAN, IP addresses ------------------------------------------------------------
_EMAIL = re.compile(
    r"(?<![\w.+%-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])"
)
_PHONE_INTERNATIONAL = re.compile(r"(?<![\w+])\+[1-9]\d{0,2}(?:[ .-]?\(?\d{1,4}\)?){2,5}(?![\d])")
_PHONE_NANP = re.compile(r"(?<![\w(])(?:\(\d{3}\) ?|\d{3}[.-])\d{3}[.-]\d{4}(?![\d-])")


def _valid_international_phone(match: re.Match[str]) -> bool:
    digits = sum(ch.isdigit() for ch in match.group(0))
    return 8 <= digits <= 15


def _valid_nanp_phone(match: re.Match[str]) -> bool:
    digits = "".join(ch for ch in match.group(0) if ch.isdigit())
    return digits[0] in "23456789" and digits[3] in "23456789"


_IBAN = re.compile(
    r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])"
)


def _valid_iban(match: re.Match[str]) -> bool:
    return bool(stdnum_iban.is_valid(match.group(0).replace(" ", "")))


_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{1,4}:){1,7}(?::|(?::[0-9A-Fa-f]{1,4}){1,7}|[0-9A-Fa-f]{1,4})(?![\w:])"
)


def _valid_ipv4(match: re.Match[str]) -> bool:
    try:
        ipaddress.IPv4Address(match.group(0))
    except ValueError:
        return False
    return True


def _valid_ipv6(match: re.Match[str]) -> bool:
    text = match.group(0)
    if text.count(":") < 2:
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


# -- secrets ---------------------------------------------------------------------------------
_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]{1,16384}?"
    r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----"
)
_AWS_KEY = re.compile(r"A[KS]IA[0-9A-Z]{16}(?![A-Z0-9])")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}")
_BEARER = re.compile(r"[Bb](?:earer|EARER)\s+[A-Za-z0-9._~+/-]{16,}=*")
_API_KEY = re.compile(r"sk-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_-]{20,}")
_GITHUB = re.compile(r"gh[pousr]_[A-Za-z0-9]{36,}")
_WORD = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_"

BUILTIN: dict[str, Detector] = {
    "card": Detector("card", "CARD", _CARD, _valid_card, scope="digits"),
    "us_ssn": Detector("us_ssn", "US_SSN", _SSN, _valid_ssn, scope="digits"),
    "us_ssn_keyword": Detector(
        "us_ssn", "US_SSN", _SSN_KEYWORD, _valid_bare_ssn, group=1, scope="digits"
    ),
    "email": Detector("email", "EMAIL", _EMAIL, scope="at"),
    "phone": Detector(
        "phone", "PHONE", _PHONE_INTERNATIONAL, _valid_international_phone, scope="digits"
    ),
    "phone_nanp": Detector("phone", "PHONE", _PHONE_NANP, _valid_nanp_phone, scope="digits"),
    "iban": Detector("iban", "IBAN", _IBAN, _valid_iban, scope="digits"),
    "ipv4": Detector("ipv4", "IPV4", _IPV4, _valid_ipv4, scope="digits"),
    "ipv6": Detector("ipv6", "IPV6", _IPV6, _valid_ipv6, scope="digits"),
    "private_key": Detector("secret", "SECRET", _PRIVATE_KEY, hints=("-----BEGIN",)),
    "aws_key": Detector("secret", "SECRET", _AWS_KEY, not_after=_WORD, hints=("AKIA", "ASIA")),
    "jwt": Detector("secret", "SECRET", _JWT, not_after=_WORD + "-", hints=("eyJ",)),
    "bearer": Detector("secret", "SECRET", _BEARER, not_after=_WORD, hints=("earer", "EARER")),
    "api_key": Detector("secret", "SECRET", _API_KEY, not_after=_WORD + "-", hints=("sk-",)),
    "github_token": Detector("secret", "SECRET", _GITHUB, not_after=_WORD, hints=("_",)),
}
DETECTOR_NAMES = ("card", "us_ssn", "email", "phone", "iban", "ipv4", "ipv6", "secret")


def builtin_detectors(names: tuple[str, ...]) -> tuple[Detector, ...]:
    """The detectors behind the configured names (one name may have several patterns)."""
    return tuple(d for d in BUILTIN.values() if d.name in names)
