"""National identifiers of Europe, each checked by python-stdnum where a checksum exists.

Standing on their own (a strict format or a strong check): UK National Insurance numbers
(prefix rules, no checksum), French NIR (mod 97 key), Spanish DNI and NIE (mod 23 letter),
Italian codice fiscale (check letter). After a keyword only (ten or eleven bare digits with a
one-in-ten or one-in-eleven check are everywhere): UK NHS numbers, German tax ids (IdNr), Dutch
BSN.
"""

from __future__ import annotations

import re

from stdnum.de import idnr
from stdnum.es import dni, nie
from stdnum.fr import nir
from stdnum.gb import nhs
from stdnum.it import codicefiscale
from stdnum.nl import bsn

from extproc.masking.detectors.base import (
    FLAGS,
    Detector,
    Trigger,
    keyword_pattern,
    keyword_trigger,
    value,
)

# Letters never used in a NINO prefix, and prefixes never allocated (HMRC's rules).
_NINO = re.compile(
    r"(?<![\w-])(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
    r"( ?)\d{2}\1\d{2}\1\d{2}\1[A-D](?![\w-])",
    FLAGS,
)
_NHS_KEYWORDS = r"nhs|nhs number|nhs no"
_NHS = keyword_pattern(_NHS_KEYWORDS, r"\d{3}([ -]?)\d{3}\2\d{4}")
_IDNR_KEYWORDS = (
    r"steuer-?id|steuer-identifikationsnummer|steueridentifikationsnummer|"
    r"identifikationsnummer|idnr|tax id|tax identification number|tin"
)
_IDNR = keyword_pattern(_IDNR_KEYWORDS, r"\d{2} ?\d{3} ?\d{3} ?\d{3}|\d{2}/\d{3}/\d{3}/\d{3}")
# Sex, year, month (01-12; 20-42 and 50-99 for unknown months), department (2A/2B in
# Corsica), commune, order, key; printed packed or in its usual groups.
_NIR = re.compile(
    r"(?<![\w-])[1-478]( ?)\d{2}\1(?:0[1-9]|1[0-2]|[2-35-9]\d|4[0-2])\1(?:\d{2}|2[AB])"
    r"\1\d{3}\1\d{3}\1\d{2}(?![\w-])",
    FLAGS,
)
_DNI = re.compile(r"(?<![\w-])\d{8}-?[A-Z](?![\w-])", FLAGS)
_NIE = re.compile(r"(?<![\w-])[XYZ]-?\d{7}-?[A-Z](?![\w-])", FLAGS)
_OMOCODE = "[0-9LMNPQRSTUV]"  # a digit, or its substitute letter in a duplicate code
_CODICE_FISCALE = re.compile(
    rf"(?<![\w-])[A-Z]{{6}}{_OMOCODE}{{2}}[ABCDEHLMPRST]{_OMOCODE}{{2}}[A-Z]{_OMOCODE}{{3}}[A-Z]"
    r"(?![\w-])",
    FLAGS,
)
_BSN_KEYWORDS = r"bsn|burgerservicenummer|sofinummer|sofi-nummer|citizen service number"
_BSN = keyword_pattern(_BSN_KEYWORDS, r"\d{9}|\d{4}\.\d{2}\.\d{3}|\d{3}([ .])\d{3}\2\d{3}")


def _valid_nhs(match: re.Match[str]) -> bool:
    return bool(nhs.is_valid(value(match)))


def _valid_idnr(match: re.Match[str]) -> bool:
    return bool(idnr.is_valid(value(match).replace("/", "")))


def _valid_nir(match: re.Match[str]) -> bool:
    return bool(nir.is_valid(match.group(0).replace(" ", "")))


def _valid_dni(match: re.Match[str]) -> bool:
    return bool(dni.is_valid(match.group(0).replace("-", "")))


def _valid_nie(match: re.Match[str]) -> bool:
    return bool(nie.is_valid(match.group(0).replace("-", "")))


def _valid_codice_fiscale(match: re.Match[str]) -> bool:
    return bool(codicefiscale.is_valid(match.group(0)))


def _valid_bsn(match: re.Match[str]) -> bool:
    return bool(bsn.is_valid(value(match)))


DETECTORS: dict[str, Detector] = {
    "uk_nino": Detector("uk_nino", "UK_NINO", _NINO, scope="european_ids"),
    "uk_nhs": Detector("uk_nhs", "UK_NHS", _NHS, _valid_nhs, group=1, scope="uk_nhs"),
    "de_tax_id": Detector("de_tax_id", "DE_TAX_ID", _IDNR, _valid_idnr, group=1, scope="de_tax_id"),
    "fr_nir": Detector("fr_nir", "FR_NIR", _NIR, _valid_nir, scope="fr_nir"),
    "es_dni": Detector("es_dni", "ES_DNI", _DNI, _valid_dni, scope="european_ids"),
    "es_nie": Detector("es_nie", "ES_NIE", _NIE, _valid_nie, scope="european_ids"),
    "it_fiscal_code": Detector(
        "it_fiscal_code",
        "IT_FISCAL_CODE",
        _CODICE_FISCALE,
        _valid_codice_fiscale,
        scope="european_ids",
    ),
    "nl_bsn": Detector("nl_bsn", "NL_BSN", _BSN, _valid_bsn, group=1, scope="nl_bsn"),
}
TRIGGERS = (
    Trigger("european_ids", r"\b[A-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]", before=2, after=2),
    Trigger("european_ids", r"\b(?:\d{8}-?[A-Z]|[XYZ]-?\d{7}-?[A-Z])", before=2, after=2),
    Trigger("european_ids", rf"\b[A-Z]{{6}}{_OMOCODE}{{2}}[A-Z]{_OMOCODE}{{2}}[A-Z]", after=8),
    Trigger("fr_nir", r"\b[1-478] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}\b", after=2),
    keyword_trigger("uk_nhs", _NHS_KEYWORDS),
    keyword_trigger("de_tax_id", _IDNR_KEYWORDS),
    keyword_trigger("nl_bsn", _BSN_KEYWORDS),
)
