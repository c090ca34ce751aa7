"""Crypto wallet addresses, each with its checksum.

Bitcoin: base58check P2PKH/P2SH (``1...``, ``3...``: double SHA-256) and bech32 segwit v0
(``bc1q...``) through python-stdnum; bech32m (``bc1p...``, taproot, BIP 350), which stdnum 2.2
does not know, with stdnum's own bech32 polymod and BIP 350's constant. Ethereum: ``0x`` and 40
hex digits; mixed case carries the EIP-55 checksum (Keccak-256) and stands on its own, while
all-lower or all-upper case has no checksum and counts only after a wallet keyword.
"""

from __future__ import annotations

import re
from functools import lru_cache

from stdnum import bitcoin
from stdnum.exceptions import ValidationError

from extproc.masking.detectors.base import (
    FLAGS,
    Detector,
    Trigger,
    keyword_pattern,
    keyword_trigger,
)
from extproc.masking.detectors.keccak import keccak256

_BASE58 = re.compile(r"(?<![\w-])[13][1-9A-HJ-NP-Za-km-z]{25,34}(?![\w-])", FLAGS)
_BECH32 = re.compile(
    r"(?<![\w-])(?:bc1[02-9ac-hj-np-z]{8,87}|BC1[02-9AC-HJ-NP-Z]{8,87})(?![\w-])", FLAGS
)
_ETHEREUM = re.compile(r"(?<![\w-])0x[0-9A-Fa-f]{40}(?![\w-])", FLAGS)
_WALLET_KEYWORDS = (
    r"eth|ether|ethereum|wallet|metamask|erc-?20|usdt|usdc|polygon|bnb|bsc|arbitrum|"
    r"send to|deposit address|recipient"
)
_WALLET_GAP = r"[^\w\n]{0,4}(?:(?:address|addr|wallet|is|was|to)\b[^\w\n]{0,4}){0,3}"
_ETHEREUM_AFTER_KEYWORD = keyword_pattern(
    _WALLET_KEYWORDS, r"0x[0-9a-f]{40}|0x[0-9A-F]{40}", _WALLET_GAP
)
_BECH32_ALPHABET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32M_CONSTANT = 0x2BC830A3
_BC_HRP = [3, 3, 0, 2, 3]  # "bc" expanded for the polymod: high bits, 0, low bits


def _valid_base58(match: re.Match[str]) -> bool:
    return bool(bitcoin.is_valid(match.group(0)))


def _valid_bech32(match: re.Match[str]) -> bool:
    address = match.group(0).lower()
    if address[3] == "q":  # witness version 0: bech32, which stdnum checks
        return bool(bitcoin.is_valid(address))
    data = [_BECH32_ALPHABET.index(ch) for ch in address[3:]]
    if bitcoin.bech32_checksum(_BC_HRP + data) != _BECH32M_CONSTANT:
        return False
    try:
        program = bitcoin.b32decode(data[1:-6])
    except ValidationError:
        return False
    return data[0] <= 16 and 2 <= len(program) <= 40


@lru_cache(maxsize=1024)
def eip55_valid(address: str) -> bool:
    """Whether the case of the 40 hex digits spells their Keccak-256 checksum (EIP-55)."""
    digest = keccak256(address.lower().encode("ascii")).hex()
    return all(
        ch.isdigit() or ch.isupper() == (int(digest[i], 16) >= 8) for i, ch in enumerate(address)
    )


def _valid_checksummed_ethereum(match: re.Match[str]) -> bool:
    hexdigits = match.group(0)[2:]
    if hexdigits.islower() or hexdigits.isupper() or not any(c.isalpha() for c in hexdigits):
        return False  # no checksum to check: only after a keyword
    return eip55_valid(hexdigits)


DETECTORS: dict[str, Detector] = {
    "btc_address": Detector("btc_address", "BTC_ADDRESS", _BASE58, _valid_base58, scope="wallet"),
    "btc_bech32": Detector("btc_address", "BTC_ADDRESS", _BECH32, _valid_bech32, scope="wallet"),
    "eth_address": Detector(
        "eth_address", "ETH_ADDRESS", _ETHEREUM, _valid_checksummed_ethereum, scope="wallet"
    ),
    "eth_address_keyword": Detector(
        "eth_address", "ETH_ADDRESS", _ETHEREUM_AFTER_KEYWORD, group=1, scope="eth_keyword"
    ),
}
TRIGGERS = (
    Trigger("wallet", r"\b[13][1-9A-HJ-NP-Za-km-z]{25}", before=2, after=12),
    Trigger("wallet", r"(?i)\bbc1[02-9ac-hj-np-z]{8}", before=2, after=84),
    Trigger("wallet", r"\b0x[0-9A-Fa-f]{40}", before=2, after=2),
    keyword_trigger("eth_keyword", _WALLET_KEYWORDS, after=64),
)
