"""Tokens put back for the caller who sent them (a profile's ``restore: true``).

The model sees ``<EMAIL:…>`` where the caller wrote an address; the caller should read the
address in the reply, not the token. ``ExchangeTokens`` belongs to one exchange: tokenizing its
request records token → the characters the caller sent, and its response reads each token it
issued as one more kind of hit (``RESTORED``) whose replacement is that value. Nothing else
remembers the pairs: the map is an attribute of the exchange and goes when the exchange goes,
and findings count restored tokens (type ``RESTORED``), never their values.

Why these rules:

- a token this exchange did not issue stays as it is: tokens are deterministic, so another
  caller's token (echoed by the model, or invented) must not open that caller's value;
- restoring only reads responses: a caller who writes a token into a request, or a field that
  repeats one just issued, must never make the request carry the raw value to the model;
- a restored value is not detected again (it is the caller's own), but a detector hit that
  overlaps a token wins over the token: text the model wrote around it is still masked;
- a stream holds back a partial ``<TYPE:`` prefix until it completes or cannot be a token
  (``partial_token_start``), so a token split across events is restored whole.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from extproc.masking.operators import TOKEN_CHARS

if TYPE_CHECKING:
    from extproc.masking.engine import Masker

RESTORED = "RESTORED"
RESTORE_DIRECTION = "response"
Hit = tuple[int, int, str, str]  # as engine.Hit: start, end, type, the value as found
_TYPE = r"[A-Z][A-Z0-9_]{0,63}"
_TOKEN = re.compile(rf"<{_TYPE}:[0-9a-f]{{{TOKEN_CHARS}}}>")
_PARTIAL = re.compile(rf"<(?:{_TYPE}(?::[0-9a-f]{{0,{TOKEN_CHARS}}})?)?\Z")
_LONGEST_TOKEN = 1 + 64 + 1 + TOKEN_CHARS + 1


class ExchangeTokens:
    """The tokens one exchange issued, and the maskers bound to them."""

    def __init__(self) -> None:
        self._values: dict[str, str] = {}
        self._bound: dict[str, Masker] = {}

    def __len__(self) -> int:
        return len(self._values)

    def bind(self, masker: Masker) -> Masker:
        """``masker`` itself when its profile does not restore; else a masker of the same
        profile that issues into, and restores from, this exchange's tokens."""
        if not masker.profile.restore:
            return masker
        name = masker.profile.name
        bound = self._bound.get(name)
        if bound is None:
            bound = self._bound[name] = masker.for_exchange(self)
        return bound

    def issue(self, token: str, value: str) -> None:
        # The first spelling the caller used is the one given back (the same value written
        # twice, once with full-width digits, gets one token).
        self._values.setdefault(token, value)

    def value_of(self, token: str) -> str:
        return self._values[token]

    def with_tokens(self, text: str, found: list[Hit]) -> list[Hit]:
        """``found`` and a ``RESTORED`` hit per token of this exchange in ``text`` that no
        detector hit overlaps, in order."""
        if not self._values or "<" not in text:
            return found
        tokens = [
            (match.start(), match.end(), RESTORED, match.group())
            for match in _TOKEN.finditer(text)
            if match.group() in self._values
        ]
        if not tokens:
            return found
        kept = [token for token in tokens if not any(_overlap(token, hit) for hit in found)]
        return sorted([*found, *kept], key=lambda hit: hit[0])


def partial_token_start(text: str) -> int:
    """Where an unfinished token begins at the end of ``text`` (``len(text)``: none)."""
    tail_from = max(0, len(text) - _LONGEST_TOKEN)
    match = _PARTIAL.search(text, tail_from)
    return match.start() if match is not None else len(text)


def _overlap(one: Hit, other: Hit) -> bool:
    return one[0] < other[1] and other[0] < one[1]
