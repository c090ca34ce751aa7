"""Built-in detectors of sensitive values: a pattern finds candidates, a validator confirms them.

Built-in patterns are ours, anchored by lookarounds and free of nested quantifiers, so Python's
``re`` runs them in linear time; user-supplied patterns run on RE2 (see ``profile.py``). Every
detector is tuned against near misses a real body is full of: order numbers, dates, version
strings, UUIDs, amounts and timestamps must survive untouched. Before any of them runs, one
RE2 pass (``prefilter.py``) finds where each family can match at all, and a detector looks only
there: prose without anything of the kind costs one scan.

=============== ================ ========================================= ==================
name            type             validator                                 context needed
=============== ================ ========================================= ==================
card            CARD             issuer range and length, Luhn             none
us_ssn          US_SSN           area/group/serial rules                   none if 3-2-4
                                                                           formatted, else
                                                                           keyword (SSN, ss#)
us_itin         US_ITIN          stdnum us.itin (9xx, group ranges)        same as us_ssn
us_routing      US_ROUTING       stdnum us.rtn (3-7-1 checksum)            keyword (routing,
                                                                           ABA)
ca_sin          CA_SIN           stdnum ca.sin (Luhn)                      keyword (SIN)
email           EMAIL            shape                                     none
phone           PHONE            E.164 and NANP shapes; national numbers   none; unformatted
                                 of ``phone_regions`` by phonenumbers      digits: keyword
iban            IBAN             stdnum iban (mod 97)                      none
ipv4, ipv6      IPV4, IPV6       ipaddress                                 none
mac_address     MAC_ADDRESS      stdnum mac; not all-zero/broadcast        none
secret          SECRET           vendor prefixes; context for AWS secret   none (prefixed) or
                                 keys, Azure keys, SAS, GCP key ids,       the key name
                                 password-like assignments
uk_nino         UK_NINO          HMRC prefix rules                         none
uk_nhs          UK_NHS           stdnum gb.nhs (mod 11)                    keyword (NHS)
de_tax_id       DE_TAX_ID        stdnum de.idnr (ISO 7064)                 keyword (Steuer-ID)
fr_nir          FR_NIR           stdnum fr.nir (mod 97 key), month         none
es_dni, es_nie  ES_DNI, ES_NIE   stdnum es.dni / es.nie (mod 23 letter)    none
it_fiscal_code  IT_FISCAL_CODE   stdnum it.codicefiscale (check letter)    none
nl_bsn          NL_BSN           stdnum nl.bsn (11-proof)                  keyword (BSN)
in_aadhaar      IN_AADHAAR       stdnum in_.aadhaar (Verhoeff)             keyword (Aadhaar)
in_pan          IN_PAN           stdnum in_.pan (holder type)              keyword (PAN)
au_tfn          AU_TFN           stdnum au.tfn (weighted mod 11)           keyword (TFN)
sg_nric         SG_NRIC          NRIC/FIN check letter                     none
btc_address     BTC_ADDRESS      base58check, bech32, bech32m              none
eth_address     ETH_ADDRESS      EIP-55 (Keccak-256) when mixed case       none if mixed case,
                                                                           else wallet keyword
=============== ================ ========================================= ==================

A keyword precedes the value within a few words ("NHS number is 943 476 5919").
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from extproc.masking.detectors import (
    contact,
    ids_americas,
    ids_asia_pacific,
    ids_europe,
    network,
    payment,
    secrets,
    wallets,
)
from extproc.masking.detectors.base import Detector, Span, Trigger, Windows
from extproc.masking.detectors.contact import DEFAULT_PHONE_REGIONS, check_regions, phone_detectors
from extproc.masking.detectors.prefilter import Prefilter

__all__ = [
    "BUILTIN",
    "DEFAULT_PHONE_REGIONS",
    "DETECTOR_NAMES",
    "SCOPES",
    "Detector",
    "Span",
    "Trigger",
    "Windows",
    "builtin_detectors",
    "present_scopes",
    "windows",
]

# In this order: of two findings with the same span the first wins, so an identifier confirmed
# by its keyword or checksum beats the generic phone shape it may also have.
_FAMILIES = (
    ids_americas,
    ids_europe,
    ids_asia_pacific,
    payment,
    wallets,
    secrets,
    network,
    contact,
)

BUILTIN: dict[str, Detector] = {
    key: detector for family in _FAMILIES for key, detector in family.DETECTORS.items()
}
DETECTOR_NAMES = (
    "card", "us_ssn", "email", "phone", "iban", "ipv4", "ipv6", "secret",
    "us_itin", "us_routing", "ca_sin", "uk_nino", "uk_nhs", "de_tax_id", "fr_nir", "es_dni",
    "es_nie", "it_fiscal_code", "nl_bsn", "in_aadhaar", "in_pan", "au_tfn", "sg_nric",
    "mac_address", "btc_address", "eth_address",
)  # fmt: skip

_PREFILTER = Prefilter(trigger for family in _FAMILIES for trigger in family.TRIGGERS)
SCOPES = frozenset(_PREFILTER.scopes)  # the scopes the prefilter answers for


def windows(text: str) -> dict[str, Windows | None]:
    """Where each scope's detectors must look (None: everywhere; an empty list: nowhere)."""
    return _PREFILTER.windows(text)


def present_scopes(text: str) -> tuple[frozenset[str], dict[str, Windows]]:
    """The scopes whose triggers occur in ``text``, and their windows; every other scope in
    ``SCOPES`` has none (``windows`` in the form the engine's dispatch wants)."""
    return _PREFILTER.present(text)


def builtin_detectors(
    names: Iterable[str], *, phone_regions: Iterable[str] = DEFAULT_PHONE_REGIONS
) -> tuple[Detector, ...]:
    """The detectors behind the configured names (one name may have several patterns).

    ``phone_regions`` are the ISO 3166 regions whose national phone formats count (ValueError
    for a region ``phonenumbers`` does not know)."""
    wanted = set(names)
    phones = _phones(check_regions(phone_regions))
    return tuple(
        phones.get(key, detector) for key, detector in BUILTIN.items() if detector.name in wanted
    )


@lru_cache(maxsize=64)
def _phones(regions: tuple[str, ...]) -> dict[str, Detector]:
    # One set per region list, so that profiles naming the same regions share caches.
    return phone_detectors(regions)
