"""Keccak-256, the hash behind Ethereum's EIP-55 address checksum.

It is not SHA3-256 (``hashlib.sha3_256`` pads with 0x06, Keccak with 0x01), the standard
library and OpenSSL 3.0 have no Keccak, and a crypto library is too much for checking one
address now and then. This is the compact form of the reference permutation (Keccak-f[1600] on
lanes), a few hundred microseconds per address; the caller caches results.
"""

from __future__ import annotations

_MASK = (1 << 64) - 1
_RATE = 136  # bytes: 1088 bits for a 256-bit output


def _rotate(lane: int, shift: int) -> int:
    shift %= 64
    return ((lane << shift) | (lane >> (64 - shift))) & _MASK


def _permute(lanes: list[list[int]]) -> None:
    """Keccak-f[1600] in place; ``lanes[x][y]`` is the 64-bit lane at column x, row y."""
    state = 1  # the LFSR that yields the round constants
    for _ in range(24):
        # theta: each column's parity spreads to its neighbours
        parity = [
            lanes[x][0] ^ lanes[x][1] ^ lanes[x][2] ^ lanes[x][3] ^ lanes[x][4] for x in range(5)
        ]
        for x in range(5):
            spread = parity[(x + 4) % 5] ^ _rotate(parity[(x + 1) % 5], 1)
            for y in range(5):
                lanes[x][y] ^= spread
        # rho and pi: rotate each lane and move it along the pi orbit
        x, y = 1, 0
        current = lanes[x][y]
        for t in range(24):
            x, y = y, (2 * x + 3 * y) % 5
            current, lanes[x][y] = lanes[x][y], _rotate(current, (t + 1) * (t + 2) // 2)
        # chi: the only non-linear step, row by row
        for y in range(5):
            row = [lanes[x][y] for x in range(5)]
            for x in range(5):
                lanes[x][y] = row[x] ^ (~row[(x + 1) % 5] & row[(x + 2) % 5])
        # iota: the round constant into lane (0, 0)
        for j in range(7):
            state = ((state << 1) ^ ((state >> 7) * 0x71)) % 256
            if state & 2:
                lanes[0][0] ^= 1 << ((1 << j) - 1)


def keccak256(data: bytes, suffix: int = 0x01) -> bytes:
    """Keccak-256 of ``data`` (``suffix=0x06`` gives SHA3-256, which the tests compare with
    ``hashlib`` to check the permutation)."""
    padded = bytearray(data)
    padded.append(suffix)
    padded.extend(b"\x00" * (-len(padded) % _RATE))
    padded[-1] |= 0x80
    lanes = [[0] * 5 for _ in range(5)]
    for offset in range(0, len(padded), _RATE):
        block = padded[offset : offset + _RATE]
        for i in range(_RATE // 8):
            lanes[i % 5][i // 5] ^= int.from_bytes(block[8 * i : 8 * i + 8], "little")
        _permute(lanes)
    out = b"".join(lanes[i % 5][i // 5].to_bytes(8, "little") for i in range(25))
    return out[:32]
