"""How much of a stream's tail to hold back: only what could still become part of a match.

Everything before the returned position is final: no detector match that includes it can
still change with more text. What stays back, and why:

- the unterminated word at the end (letters, digits and ``. % + - _ @ \\ / ~ = :``): it may be
  an e-mail's local part whose ``@`` is in the next token (a model sends ``jane``, ``.doe``,
  ``@``, ``example``...), a secret (``sk-...``, ``AKIA...``, ``eyJ...``, a bearer token), the
  prefix of a hint, or half an escape (``\\u00``). Up to ``WORD_HOLD`` characters: a longer
  run is not a value any detector finds whole;
- a run of number groups at the end (``4111 1111``, ``+1 (415) 555``, ``DE89 3704``,
  ``2001:db8::``, ``203.0.113.``): groups holding a digit, or an IBAN's letter group or an
  IPv6 hex group after one, separated by single spaces. Up to ``NUMBER_HOLD`` characters;
- ``Bearer`` and the whitespace after it (the token follows);
- a numeric character reference cut short (``&#5``, ``&#x4``): ``&#52;`` is a ``4``;
- a private key block from ``-----BEGIN`` until its ``-----END ...-----`` line, up to
  ``KEY_BLOCK_HOLD`` characters.

A word that outgrows ``WORD_HOLD`` is released from its start, unless it is one of the secrets
whose pattern has no upper bound and matches only once complete (a JWT needs its three
segments; ``Bearer``, ``AccountKey=``, ``SharedAccessSignature=``, ``sig=`` take any length):
``outgrown_secret`` finds where such a secret starts, and the stream masks it from there on
rather than release a start no detector could match any more (fail closed).

A word ended by a space or by punctuation no match contains (``Hello,``) goes out at once.
The rules read the folded view (``normalize``), so full-width digits or an escaped ``@`` are
held like their ASCII forms. They mirror the built-in detectors' shapes: a new detector whose
matches span other characters needs a rule here too.
"""

from __future__ import annotations

import re

from extproc.masking.normalize import needs_view, view

WORD_HOLD = 4096
NUMBER_HOLD = 512
KEY_BLOCK_HOLD = 16_384 + 256

# Read on the reversed tail, so finding the last word is linear however long the text.
_WORD_RUN = re.compile(r"[\w.%+\-@\\/~=:]*")
# Groups: with a digit, or (after one) an IBAN letter group or an IPv6 hex group. The three
# kinds exclude one another and are possessive, so a failed run never backtracks.
_GROUP = r"(?:(?=\S*\d)\S++|[A-Z]{1,4}+(?!\S)|(?=[A-Fa-f]*:)[A-Fa-f:]++(?!\S))"
_NUMBER_TAIL = re.compile(rf"(?<!\S)(?=\S*\d)\S++(?:[ \t]{{1,2}}{_GROUP})*+[ \t]{{0,2}}\Z")
_DIGIT = re.compile(r"\d")
# The number tail's last group is the text's last run of non-space characters (before at most
# two spaces or tabs), whole: read backwards, and only if it could be a group is the tail
# searched for (a search tries every position of the last 512 characters).
_LAST_RUN_BACKWARDS = re.compile(r"[ \t]{0,2}(\S*)")
_LAST_GROUP = re.compile(r"\S*\d\S*|[A-Z]{1,4}|(?=[A-Fa-f]*:)[A-Fa-f:]+")
_BEARER_BEFORE = re.compile(r"[Bb](?:earer|EARER)\s*\Z")
_WORD_RUN_FORWARD = re.compile(r"[\w.%+\-@\\/~=:]*")
# The starts of the secrets whose patterns have no upper bound (see ``detectors.secrets``).
_GROWING_SECRET = re.compile(
    r"(?<![\w-])eyJ|(?<!\w)[Bb](?:earer|EARER)\s+"
    r"|(?:AccountKey|SharedAccessKey|SharedAccessSignature)=|[?&]sig="
)
_SECRET_LOOKBACK = 32  # the longest start above, and the whitespace after ``Bearer``
_KEY_BEGIN = "-----BEGIN"
_REFERENCE_TAIL = re.compile(r"&#(?:[xX][0-9a-fA-F]{0,6}|[0-9]{0,7})\Z")
_REFERENCE_CHARS = 10  # "&#x" and six hex digits, or "&#" and seven digits
_KEY_END = re.compile(r"-----END [^\n]*-----")


def hold_from(text: str) -> int:
    """The position from which ``text`` must wait for more (``len(text)``: nothing held)."""
    if not needs_view(text):
        return _hold_from(text)
    seen = view(text)
    cut = seen.original_position(_hold_from(seen.text))
    # A character reference cut short ("&#5" of "&#52;"): the view already read it as another
    # character; what it stands for is only known with the rest.
    tail = _REFERENCE_TAIL.search(text, max(0, len(text) - _REFERENCE_CHARS))
    return cut if tail is None else min(cut, tail.start())


def _hold_from(text: str) -> int:
    length = len(text)
    word = _WORD_RUN.match(
        text[: length - WORD_HOLD - 1 : -1] if length > WORD_HOLD else text[::-1]
    )
    cut = length - (word.end() if word is not None else 0)
    low = max(0, length - NUMBER_HOLD)
    if _DIGIT.search(text, low) is not None and _may_end_in_a_group(text):
        number = _NUMBER_TAIL.search(text, low)
        if number is not None:
            cut = min(cut, number.start())
    bearer = _BEARER_BEFORE.search(text[max(0, cut - 24) : cut])
    if bearer is not None:
        cut -= len(text[max(0, cut - 24) : cut]) - bearer.start()
    begin = text.rfind(_KEY_BEGIN, max(0, length - KEY_BLOCK_HOLD))
    if begin >= 0 and _KEY_END.search(text, begin) is None:
        cut = min(cut, begin)
    return cut


def _may_end_in_a_group(text: str) -> bool:
    """Whether ``_NUMBER_TAIL`` can match: every match ends with a whole run of non-space
    characters that is one of its groups, then at most two spaces or tabs."""
    last = _LAST_RUN_BACKWARDS.match(text[: -NUMBER_HOLD - 3 : -1])
    run = last.group(1)[::-1] if last is not None else ""
    return _LAST_GROUP.fullmatch(run) is not None


def outgrown_secret(text: str, low: int, cut: int) -> int:
    """Where, in ``text[low:cut]`` (about to be released), an unbounded secret starts whose
    word runs on to the end of ``text`` (``-1``: none). Called when the hold has reached
    ``WORD_HOLD``: the word is longer than any bounded value, and if it started as a JWT or a
    bearer token it can only be the secret's body."""
    stop = low - _SECRET_LOOKBACK - 1
    run = _WORD_RUN.match(text[cut - 1 : stop if stop >= 0 else None : -1] if cut else "")
    start = cut - (run.end() if run is not None else 0)
    high = min(len(text), cut + _SECRET_LOOKBACK)
    for found in _GROWING_SECRET.finditer(text, max(low, start - _SECRET_LOOKBACK), high):
        if found.start() >= cut:
            break
        if found.end() >= start:
            return max(low, found.start())
    return -1


def word_length(text: str) -> int:
    """How many characters at the start of ``text`` continue a word (see ``_WORD_RUN``)."""
    run = _WORD_RUN_FORWARD.match(text)
    return run.end() if run is not None else 0
