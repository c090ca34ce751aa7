"""National identifiers of the Americas: US SSN and ITIN, Canadian SIN.

A formatted SSN or ITIN (``123-45-6789``, ``912 70 1234``) stands on its own; nine bare digits
are an SSN or ITIN only after a keyword (``SSN``, ``ss#``, ``social security number``,
``ITIN``). A SIN passes Luhn one time in ten, so it always needs a keyword.
"""

from __future__ import annotations

import re

from stdnum.ca import sin
from stdnum.us import itin

from extproc.masking.detectors.base import (
    FLAGS,
    Detector,
    Trigger,
    keyword_pattern,
    keyword_trigger,
    value,
)

_SSN = re.compile(r"(?<![\w-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\w-])", FLAGS)
_SSN_KEYWORDS = r"ssn|ss#|ss no|social[ -]security"
_SSN_KEYWORD = keyword_pattern(_SSN_KEYWORDS, r"\d{9}|\d{3}([- ])\d{2}\2\d{4}")
_ITIN_KEYWORDS = r"itin|individual taxpayer identification"
_ITIN_KEYWORD = keyword_pattern(_ITIN_KEYWORDS, r"9\d{8}|9\d{2}([- ])\d{2}\2\d{4}")
_SIN_KEYWORDS = r"sin|social insurance|nas|num[ée]ro d'assurance sociale"
_SIN = keyword_pattern(_SIN_KEYWORDS, r"\d{9}|\d{3}([- ])\d{3}\2\d{3}")


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


def _valid_ssn_after_keyword(match: re.Match[str]) -> bool:
    digits = value(match)
    return _valid_ssn_parts(digits[:3], digits[3:5], digits[5:])


def _valid_itin(match: re.Match[str]) -> bool:
    return bool(itin.is_valid(f"{match.group(1)}-{match.group(3)}-{match.group(4)}"))


def _valid_itin_after_keyword(match: re.Match[str]) -> bool:
    return bool(itin.is_valid(value(match)))


def _valid_sin(match: re.Match[str]) -> bool:
    return bool(sin.is_valid(value(match)))


DETECTORS: dict[str, Detector] = {
    "us_ssn": Detector("us_ssn", "US_SSN", _SSN, _valid_ssn, scope="ssn_shape"),
    "us_ssn_keyword": Detector(
        "us_ssn", "US_SSN", _SSN_KEYWORD, _valid_ssn_after_keyword, group=1, scope="us_ssn"
    ),
    "us_itin": Detector("us_itin", "US_ITIN", _SSN, _valid_itin, scope="ssn_shape"),
    "us_itin_keyword": Detector(
        "us_itin", "US_ITIN", _ITIN_KEYWORD, _valid_itin_after_keyword, group=1, scope="us_itin"
    ),
    "ca_sin": Detector("ca_sin", "CA_SIN", _SIN, _valid_sin, group=1, scope="ca_sin"),
}
TRIGGERS = (
    Trigger("ssn_shape", r"\b\d{3}[- ]\d{2}[- ]\d{4}\b", before=2, after=2),
    keyword_trigger("us_ssn", _SSN_KEYWORDS),
    keyword_trigger("us_itin", _ITIN_KEYWORDS),
    keyword_trigger("ca_sin", _SIN_KEYWORDS),
)
