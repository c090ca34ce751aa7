"""National identifiers of Asia and the Pacific: Indian Aadhaar (Verhoeff) and PAN, Australian
TFN, Singapore NRIC/FIN.

An NRIC/FIN (``S1234567D``: series letter, seven digits, check letter) stands on its own. An
Aadhaar passes Verhoeff one time in ten and a TFN its check one time in eleven, and a PAN has
no checksum at all (``ABCPE1234F`` could be a part number), so these need a keyword.
"""

from __future__ import annotations

import re

from stdnum.au import tfn
from stdnum.in_ import aadhaar, pan

from extproc.masking.detectors.base import (
    FLAGS,
    Detector,
    Trigger,
    keyword_pattern,
    keyword_trigger,
    value,
)

_AADHAAR_KEYWORDS = r"aadhaar|aadhar|adhaar|uidai"
_AADHAAR = keyword_pattern(_AADHAAR_KEYWORDS, r"[2-9]\d{3}([ -]?)\d{4}\2\d{4}")
_PAN_KEYWORDS = r"pan|pan card|pan no|permanent account number|income tax pan"
_PAN = keyword_pattern(_PAN_KEYWORDS, r"[A-Z]{3}[ABCFGHJLPT][A-Z]\d{4}[A-Z]")
_TFN_KEYWORDS = r"tfn|tax file number"
_TFN = keyword_pattern(_TFN_KEYWORDS, r"\d{3}([ -]?)\d{3}\2\d{2,3}")
_NRIC = re.compile(r"(?<![\w-])[STFGM]\d{7}[A-Z](?![\w-])", FLAGS)

# Singapore's NRIC/FIN check letter (no python-stdnum module has it): weights 2-7-6-5-4-3-2,
# a series offset, the remainder mod 11 picks the letter from the series' table.
_NRIC_WEIGHTS = (2, 7, 6, 5, 4, 3, 2)
_NRIC_SERIES = {
    "S": (0, "JZIHGFEDCBA"),
    "T": (4, "JZIHGFEDCBA"),
    "F": (0, "XWUTRQPNMLK"),
    "G": (4, "XWUTRQPNMLK"),
}
_NRIC_M_LETTERS = "KLJNPQRTUWX"  # the M series (from 2022) reads its table backwards


def nric_check_letter(series: str, digits: str) -> str:
    weighted = sum(w * int(d) for w, d in zip(_NRIC_WEIGHTS, digits, strict=True))
    if series == "M":
        return _NRIC_M_LETTERS[10 - (3 + weighted) % 11]
    offset, letters = _NRIC_SERIES[series]
    return letters[(offset + weighted) % 11]


def _valid_nric(match: re.Match[str]) -> bool:
    text = match.group(0)
    return text[8] == nric_check_letter(text[0], text[1:8])


def _valid_aadhaar(match: re.Match[str]) -> bool:
    return bool(aadhaar.is_valid(value(match)))


def _valid_pan(match: re.Match[str]) -> bool:
    return bool(pan.is_valid(match.group(1)))


def _valid_tfn(match: re.Match[str]) -> bool:
    return bool(tfn.is_valid(value(match)))


DETECTORS: dict[str, Detector] = {
    "in_aadhaar": Detector(
        "in_aadhaar", "IN_AADHAAR", _AADHAAR, _valid_aadhaar, group=1, scope="in_aadhaar"
    ),
    "in_pan": Detector("in_pan", "IN_PAN", _PAN, _valid_pan, group=1, scope="in_pan"),
    "au_tfn": Detector("au_tfn", "AU_TFN", _TFN, _valid_tfn, group=1, scope="au_tfn"),
    "sg_nric": Detector("sg_nric", "SG_NRIC", _NRIC, _valid_nric, scope="sg_nric"),
}
TRIGGERS = (
    keyword_trigger("in_aadhaar", _AADHAAR_KEYWORDS),
    keyword_trigger("in_pan", _PAN_KEYWORDS),
    keyword_trigger("au_tfn", _TFN_KEYWORDS),
    Trigger("sg_nric", r"\b[STFGM]\d{7}[A-Z]\b", before=2, after=2),
)
