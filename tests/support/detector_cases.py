"""Helpers for the detector tests: what a default profile finds in a text, and generators of
valid identifiers (made up here, checksums computed, never anyone's real number)."""

from __future__ import annotations

import hashlib

from stdnum import bitcoin, luhn, verhoeff
from stdnum.es import dni, nie
from stdnum.fr import nir
from stdnum.it import codicefiscale
from stdnum.us import rtn

from extproc.masking.engine import Masker
from extproc.masking.profile import Profile

KEY = b"k" * 32


def found(text: str, profile: Profile | None = None) -> list[tuple[str, str]]:
    """(type, value) of every span a profile (default: every built-in detector) finds."""
    masker = Masker(profile or Profile("p"), KEY)
    return [(type_, text[start:end]) for start, end, type_ in masker.spans(text)]


def types(text: str) -> set[str]:
    return {type_ for type_, _ in found(text)}


def with_check_digit(body: str, is_valid: object) -> str:
    """``body`` plus the one digit that makes ``is_valid`` accept it."""
    for digit in "0123456789":
        if is_valid(body + digit):  # type: ignore[operator]
            return body + digit
    raise AssertionError(f"no check digit for {body}")


def card(prefix: str, length: int) -> str:
    body = prefix + "3" * (length - len(prefix) - 1)
    return body + luhn.calc_check_digit(body)


def es_dni(number: str) -> str:
    return number + dni.calc_check_digit(number)


def es_nie(body: str) -> str:
    return body + nie.calc_check_digit(body)


def fr_nir(first13: str) -> str:
    return first13 + nir.calc_check_digits(first13)


def it_fiscal_code(first15: str) -> str:
    return first15 + codicefiscale.calc_check_digit(first15)


def aadhaar(first11: str) -> str:
    return first11 + verhoeff.calc_check_digit(first11)


def routing(first8: str) -> str:
    return first8 + rtn.calc_check_digit(first8)


def sin(first8: str) -> str:
    return first8 + luhn.calc_check_digit(first8)


_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def base58check(version: int, payload: bytes) -> str:
    raw = bytes([version]) + payload
    raw += hashlib.sha256(hashlib.sha256(raw).digest()).digest()[:4]
    number = int.from_bytes(raw, "big")
    out = ""
    while number:
        number, digit = divmod(number, 58)
        out = _BASE58[digit] + out
    return "1" * (len(raw) - len(raw.lstrip(b"\0"))) + out


_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def segwit(version: int, program: bytes, constant: int) -> str:
    """A bc1 address (bech32 for ``constant`` 1, bech32m for 0x2BC830A3)."""
    bits, acc, data = 0, 0, [version]
    for byte in program:
        acc = (acc << 8) | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            data.append((acc >> bits) & 31)
    if bits:
        data.append((acc << (5 - bits)) & 31)
    hrp = [3, 3, 0, 2, 3]
    polymod = bitcoin.bech32_checksum(hrp + data + [0] * 6) ^ constant
    data += [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return "bc1" + "".join(_BECH32[d] for d in data)
