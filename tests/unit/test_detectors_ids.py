"""National identifiers: generated values with valid checksums are found; bad checksums, wrong
lengths, values embedded in longer tokens, and bare numbers without their keyword are not."""

from __future__ import annotations

import pytest
from stdnum.au import tfn
from stdnum.de import idnr
from stdnum.gb import nhs
from stdnum.nl import bsn

from extproc.masking.detectors.ids_asia_pacific import nric_check_letter
from tests.support.detector_cases import (
    aadhaar,
    es_dni,
    es_nie,
    found,
    fr_nir,
    it_fiscal_code,
    sin,
    with_check_digit,
)

NHS = with_check_digit("943476591", nhs.is_valid)
IDNR = with_check_digit("8609574271", idnr.is_valid)
BSN = with_check_digit("11122233", bsn.is_valid)
TFN = with_check_digit("12345678", tfn.is_valid)
NIR = fr_nir("1850578006048")
CF = it_fiscal_code("RSSMRA85T10A562")
DNI = es_dni("12345678")
NIE = es_nie("X1234567")
AADHAAR = aadhaar("23456789012")
SIN = sin("12345678")
NRIC = "S1234567" + nric_check_letter("S", "1234567")
FIN = "G7654321" + nric_check_letter("G", "7654321")
M_FIN = "M1234567" + nric_check_letter("M", "1234567")


def other_last(value: str) -> str:
    """``value`` with its last character changed: the checksum no longer holds."""
    last = value[-1]
    if last.isdigit():
        return value[:-1] + str((int(last) + 1) % 10)
    return value[:-1] + ("A" if last != "A" else "B")


@pytest.mark.parametrize(
    ("text", "label", "value"),
    [
        ("ssn 123-45-6789", "US_SSN", "123-45-6789"),
        ("SSN: 123 45 6789", "US_SSN", "123 45 6789"),
        ("my social security number is 123456789", "US_SSN", "123456789"),
        ("ss# 123456789", "US_SSN", "123456789"),
        ("ss#123456789", "US_SSN", "123456789"),
        ("itin 912-70-1234", "US_ITIN", "912-70-1234"),
        ("ITIN: 912701234", "US_ITIN", "912701234"),
        (f"SIN {SIN[:3]} {SIN[3:6]} {SIN[6:]}", "CA_SIN", f"{SIN[:3]} {SIN[3:6]} {SIN[6:]}"),
        (f"social insurance number: {SIN}", "CA_SIN", SIN),
        ("NINO AB123456C", "UK_NINO", "AB123456C"),
        ("ni number AB 12 34 56 C", "UK_NINO", "AB 12 34 56 C"),
        (f"NHS number {NHS[:3]} {NHS[3:6]} {NHS[6:]}", "UK_NHS", f"{NHS[:3]} {NHS[3:6]} {NHS[6:]}"),
        (f"my NHS no. is {NHS}", "UK_NHS", NHS),
        (f"Steuer-ID: {IDNR}", "DE_TAX_ID", IDNR),
        (
            f"Steueridentifikationsnummer {IDNR[:2]} {IDNR[2:5]} {IDNR[5:8]} {IDNR[8:]}",
            "DE_TAX_ID",
            f"{IDNR[:2]} {IDNR[2:5]} {IDNR[5:8]} {IDNR[8:]}",
        ),
        (f"NIR {NIR}", "FR_NIR", NIR),
        (
            f"sécu {NIR[0]} {NIR[1:3]} {NIR[3:5]} {NIR[5:7]} {NIR[7:10]} {NIR[10:13]} {NIR[13:]}",
            "FR_NIR",
            f"{NIR[0]} {NIR[1:3]} {NIR[3:5]} {NIR[5:7]} {NIR[7:10]} {NIR[10:13]} {NIR[13:]}",
        ),
        (f"DNI {DNI}", "ES_DNI", DNI),
        (f"NIE {NIE}", "ES_NIE", NIE),
        (f"codice fiscale {CF}", "IT_FISCAL_CODE", CF),
        (f"BSN: {BSN}", "NL_BSN", BSN),
        (
            f"burgerservicenummer {BSN[:4]}.{BSN[4:6]}.{BSN[6:]}",
            "NL_BSN",
            f"{BSN[:4]}.{BSN[4:6]}.{BSN[6:]}",
        ),
        (
            f"Aadhaar {AADHAAR[:4]} {AADHAAR[4:8]} {AADHAAR[8:]}",
            "IN_AADHAAR",
            f"{AADHAAR[:4]} {AADHAAR[4:8]} {AADHAAR[8:]}",
        ),
        (f"aadhaar no: {AADHAAR}", "IN_AADHAAR", AADHAAR),
        ("PAN: ABCPE1234F", "IN_PAN", "ABCPE1234F"),
        (f"TFN {TFN[:3]} {TFN[3:6]} {TFN[6:]}", "AU_TFN", f"{TFN[:3]} {TFN[3:6]} {TFN[6:]}"),
        (f"tax file number: {TFN}", "AU_TFN", TFN),
        (f"NRIC {NRIC}", "SG_NRIC", NRIC),
        (f"FIN {FIN}", "SG_NRIC", FIN),
        (f"FIN {M_FIN}", "SG_NRIC", M_FIN),
    ],
)
def test_identifiers_are_found(text: str, label: str, value: str) -> None:
    assert found(text) == [(label, value)]


def test_the_m_series_check_letter_matches_the_published_example() -> None:
    assert M_FIN == "M1234567K"


@pytest.mark.parametrize(
    "text",
    [
        "invoice 123456789",  # nine bare digits are not an SSN...
        "ssn 000-12-3456",  # ...nor an impossible area, group or serial
        "ssn 666-12-3456",
        "ssn 123-00-4567",
        "ssn 123-45-0000",
        "itin 912-45-1234",  # group 45 is no ITIN group
        f"order {SIN}",  # a SIN, a BSN, a TFN, an Aadhaar, an NHS number, a tax id and a
        f"order {BSN}",  # routing number are just digits without their keyword
        f"order {TFN}",
        f"order {AADHAAR}",
        f"order {NHS}",
        f"order {IDNR}",
        "part ABCPE1234F",  # a PAN without its keyword could be a part number
        f"SIN {other_last(SIN)}",  # keyword but bad checksum
        f"BSN {other_last(BSN)}",
        f"TFN {other_last(TFN)}",
        f"Aadhaar {other_last(AADHAAR)}",
        f"NHS {other_last(NHS)}",
        f"Steuer-ID {other_last(IDNR)}",
        f"NIR {other_last(NIR)}",
        f"DNI {other_last(DNI)}",
        f"NIE {other_last(NIE)}",
        f"CF {other_last(CF)}",
        f"NRIC {other_last(NRIC)}",
        "PAN: ABCDE1234F",  # D is no PAN holder type
        "NINO QQ123456C",  # Q never starts a NINO
        "NINO GB123456A",  # GB is not allocated
        "NINO AB123456E",  # the suffix is A-D
        "NINO AB 123456C",  # spaced unlike a NINO
        f"x{DNI}",  # embedded in longer tokens
        f"{NRIC}X",
        f"ref-{CF}0",
        f"NIR {NIR}1",  # too long
        f"DNI {DNI[1:]}",  # too short
    ],
)
def test_identifier_near_misses(text: str) -> None:
    assert found(text) == []
