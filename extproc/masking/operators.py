"""What becomes of a found value: the masking operators, as runtime objects.

The names follow Presidio's anonymizer where it has the same operator:

- ``redact``: ``[REDACTED:TYPE]``;
- ``tokenize``: ``<TYPE:token>``, a keyed HMAC (the same value always gets the same token, and
  with ``restore: true`` the caller gets the value back in the reply);
- ``hash``: ``sha256:`` and the keyed HMAC in full (an unkeyed hash of a 9-digit SSN is
  reversed by trying all 10^9 values);
- ``last4``: every character but the last four as ``*``;
- ``drop``: a field rule removes the member; a detector's value is redacted;
- ``mask``: ``chars_to_mask`` characters (default: all) replaced by ``masking_char``, from the
  start or, with ``from_end``, from the end; like Presidio, every character counts;
- ``replace``: a fixed text (``new_value``; default ``<TYPE>``, as Presidio's replace);
- ``keep``: the value is left as it is, and still counted as a finding.

A profile may name an action by its name (``"tokenize"``); ``operator`` turns that into the
``Operator`` with that name's defaults, so code and config share one way of applying it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Action = Literal["redact", "tokenize", "hash", "last4", "drop", "mask", "replace", "keep"]
ACTIONS: tuple[Action, ...] = (
    "redact", "tokenize", "hash", "last4", "drop", "mask", "replace", "keep"
)  # fmt: skip
TOKEN_CHARS = 16


@dataclass(frozen=True, slots=True)
class Operator:
    name: Action
    chars_to_mask: int | None = None  # mask: how many characters (None: all of them)
    masking_char: str = "*"  # mask: the character written instead
    from_end: bool = False  # mask: count from the end of the value
    new_value: str | None = None  # replace: the text written instead (None: <TYPE>)


ActionSpec = Action | Operator
_BY_NAME = {name: Operator(name) for name in ACTIONS}


def operator(spec: ActionSpec) -> Operator:
    """The operator a profile's entry stands for (a bare name takes its defaults)."""
    return spec if isinstance(spec, Operator) else _BY_NAME[spec]


def replace_value(value: str, type_: str, op: Operator, mac: Callable[[str, str], str]) -> str:
    """``value`` (a ``type_`` finding) as ``op`` writes it; ``mac`` is the profile key's HMAC of
    (type, value) in hex."""
    name = op.name
    if name == "tokenize":
        return f"<{type_}:{mac(type_, value)[:TOKEN_CHARS]}>"
    if name == "hash":
        return f"sha256:{mac(type_, value)}"
    if name == "last4" and len(value) > 4:
        return "*" * (len(value) - 4) + value[-4:]
    if name == "mask":
        return _mask(value, op)
    if name == "replace":
        return f"<{type_}>" if op.new_value is None else op.new_value
    if name == "keep":
        return value
    return f"[REDACTED:{type_}]"


def _mask(value: str, op: Operator) -> str:
    count = len(value) if op.chars_to_mask is None else min(op.chars_to_mask, len(value))
    if op.from_end:
        return value[: len(value) - count] + op.masking_char * count
    return op.masking_char * count + value[count:]
