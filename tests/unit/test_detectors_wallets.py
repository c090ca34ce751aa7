"""Crypto wallet addresses: Bitcoin (base58check, bech32, bech32m) and Ethereum (EIP-55), and
the Keccak-256 behind EIP-55. Addresses are generated here from made-up payloads."""

from __future__ import annotations

import hashlib

import pytest

from extproc.masking.detectors.keccak import keccak256
from extproc.masking.detectors.wallets import eip55_valid
from tests.support.detector_cases import base58check, found, segwit

P2PKH = base58check(0x00, bytes(range(20)))
P2SH = base58check(0x05, bytes(range(100, 120)))
SEGWIT_V0 = segwit(0, bytes(range(20)), 1)
TAPROOT = segwit(1, bytes(range(32)), 0x2BC830A3)
# EIP-55's own test vectors: contract-like addresses from the specification, nobody's wallet.
EIP55 = [
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
]


def test_keccak256_matches_known_digests_and_sha3_with_its_padding() -> None:
    assert keccak256(b"").hex() == (
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )
    for data in (b"", b"abc", b"x" * 135, b"y" * 136, b"z" * 300):
        assert keccak256(data, suffix=0x06) == hashlib.sha3_256(data).digest()


@pytest.mark.parametrize("address", [P2PKH, P2SH, SEGWIT_V0, SEGWIT_V0.upper(), TAPROOT])
def test_bitcoin_addresses_are_found(address: str) -> None:
    assert found(f"send to {address} today") == [("BTC_ADDRESS", address)]


@pytest.mark.parametrize("address", EIP55)
def test_checksummed_ethereum_addresses_stand_on_their_own(address: str) -> None:
    assert eip55_valid(address[2:])
    assert found(f"to {address} today") == [("ETH_ADDRESS", address)]


def test_unchecksummed_ethereum_addresses_need_a_wallet_keyword() -> None:
    lower = EIP55[0].lower()
    assert found(f"ETH address: {lower}") == [("ETH_ADDRESS", lower)]
    assert found(f"my wallet is {lower}") == [("ETH_ADDRESS", lower)]
    assert found(f"hash {lower}") == []


def flip(address: str, index: int) -> str:
    ch = address[index]
    return address[:index] + (ch.lower() if ch.isupper() else ch.upper()) + address[index + 1 :]


@pytest.mark.parametrize(
    "text",
    [
        f"to {flip(EIP55[0], 3)}",  # the case no longer spells the checksum
        f"tx {EIP55[0]}00",  # longer than an address
        "tx 0x" + "ab" * 32,  # a transaction hash
        f"to {P2PKH[:-1]}{'2' if P2PKH[-1] != '2' else '3'}",  # base58check fails
        f"to {SEGWIT_V0[:-1]}{'q' if SEGWIT_V0[-1] != 'q' else 'p'}",  # bech32 fails
        f"to {segwit(1, bytes(range(32)), 1)}",  # taproot with a bech32 (not bech32m) checksum
        "file 1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN",  # one character short
    ],
)
def test_wallet_near_misses(text: str) -> None:
    assert found(text) == []
