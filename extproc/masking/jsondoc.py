"""JSON documents as the masker reads and writes them.

Three parsers, cheapest first. ``loads`` is orjson (the standard library when an integer would
lose digits). What orjson refuses but lenient parsers accept (NaN and Infinity, a lone
surrogate escape, a byte order mark) and documents with duplicate keys go through
``parse_lenient``: objects become ``Members``, a list of ``[key, value]`` pairs, so that every
duplicate is kept and masked (the receiver's parser may keep either occurrence). Documents too
deep for the standard library's recursive parser go through ``parse_deep``, which keeps its
own stack and survives any depth.

``dumps`` writes what orjson can and falls back to ``serialize``: iterative (any depth), keeps
duplicate members, writes NaN and Infinity back as the tokens the input used, and escapes lone
surrogates so the output is valid UTF-8.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from json import decoder
from typing import Any

import orjson

# The standard library's C string scanner (escapes, surrogates); typeshed does not declare it.
scanstring: Callable[[str, int, bool], tuple[str, int]] = decoder.scanstring  # type: ignore[attr-defined]
# Nineteen digits in a row could be an integer orjson cannot keep exact. Mapping every digit
# to "0" and everything else to "." and looking for nineteen zeros is twelve times faster than
# the regex \d{19} (whose per-position attempts cost a quarter of masking an 8 KB body).
_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x2E for byte in range(256))
_LONG_NUMBER = b"0" * 19
_BOM = "\ufeff"
_TOKEN = re.compile(
    r"[ \t\n\r]*(?:([\[\]{},:])|(\")|(-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?)"
    r"|(true|false|null|NaN|Infinity|-Infinity))"
)
_TRAILING = re.compile(r"[ \t\n\r]*")
# An escape of a high surrogate not followed by a low one, or a low one not after a high one.
_LONE_SURROGATE = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])"
    r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)
MAX_DEPTH = 200_000  # twice what must pass; orjson stops at 1,024, Python's json near 1,000
_CONSTANTS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_LITERALS: dict[str, Any] = {"true": True, "false": False, "null": None}


class Members:
    """A JSON object that may repeat a key: ``[key, value]`` pairs in document order.

    Not a list subclass on purpose: orjson writes list subclasses as lists, and must refuse
    these instead, so that ``dumps`` falls back to ``serialize``."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[list[Any]] | None = None) -> None:
        self.pairs: list[list[Any]] = pairs if pairs is not None else []

    def __iter__(self) -> Iterator[list[Any]]:
        return iter(self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def append(self, pair: list[Any]) -> None:
        self.pairs.append(pair)


def loads(body: bytes) -> Any:
    """orjson, except for bodies with integers beyond 64 bits, which orjson turns into floats
    (changing the number): those go through the standard library, which keeps them exact."""
    if len(body) >= 19 and _LONG_NUMBER in body.translate(_DIGITS_AS_ZEROS):
        return json.loads(body.decode("utf-8"))
    return orjson.loads(body)


def parse_lenient(text: str, *, strict: bool) -> Any:
    """Every member kept. ``strict`` (the profile denies invalid JSON) accepts only RFC 8259:
    no constants, no byte order mark, no lone surrogate; any depth and duplicates are valid."""
    if strict and _LONE_SURROGATE.search(text) is not None:
        raise ValueError("a lone surrogate escape")
    if not strict:
        text = text.removeprefix(_BOM)
    try:
        return json.loads(
            text,
            object_pairs_hook=_members,
            parse_constant=_refuse_constant if strict else _CONSTANTS.__getitem__,
        )
    except RecursionError:
        return parse_deep(text, strict=strict)


def _members(pairs: list[tuple[str, Any]]) -> Members:
    return Members([list(pair) for pair in pairs])


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_deep(text: str, *, strict: bool, max_depth: int = MAX_DEPTH) -> Any:
    """An iterative parser: the open containers are a list, not the call stack. Beyond
    ``max_depth`` it refuses, as every real parser does long before: the caller then reads
    the body as text (or denies it), which costs far less than its ~1 us per level."""
    open_: list[Any] = []  # containers being filled; a Members' pending key is in ``keys``
    keys: list[str] = []
    root: Any = None
    done = False
    expect = "value"  # value | first_value | key | first_key | colon | next
    position = 0
    while True:
        match = _TOKEN.match(text, position)
        if match is None:
            break
        position = match.end()
        punct, quote, number, fraction, exponent, literal = match.groups()
        if done:
            raise ValueError("data after the document")
        if punct == ":":
            if expect != "colon":
                raise ValueError("unexpected ':'")
            expect = "value"
            continue
        if punct == ",":
            if expect != "next":
                raise ValueError("unexpected ','")
            expect = "key" if _is_members(open_[-1]) else "value"
            continue
        if punct in ("]", "}"):
            top = open_[-1] if open_ else None
            closes_list = punct == "]" and top is not None and not _is_members(top)
            closes_object = punct == "}" and _is_members(top)
            allowed = ("first_value", "next") if closes_list else ("first_key", "next")
            if not (closes_list or closes_object) or expect not in allowed:
                raise ValueError(f"unexpected {punct!r}")
            open_.pop()
            expect = "next"
            done = not open_
            continue
        if expect in ("key", "first_key"):
            if quote is None:
                raise ValueError("expected a key")
            key, position = scanstring(text, position, True)
            keys.append(key)
            expect = "colon"
            continue
        if expect not in ("value", "first_value"):
            raise ValueError("expected ',' or a closing bracket")
        value: Any
        if punct in ("[", "{"):
            value = [] if punct == "[" else Members()
        elif quote is not None:
            value, position = scanstring(text, position, True)
        elif number is not None:
            value = float(number) if fraction or exponent else int(number)
        elif literal in _CONSTANTS:
            if strict:
                raise ValueError(f"{literal} is not JSON")
            value = _CONSTANTS[literal]
        else:
            value = _LITERALS[literal]
        if not open_:
            root = value
            done = punct is None
        elif _is_members(open_[-1]):
            open_[-1].append([keys.pop(), value])
        else:
            open_[-1].append(value)
        if punct is not None:
            if len(open_) >= max_depth:
                raise ValueError("nested too deep")
            open_.append(value)
            expect = "first_value" if punct == "[" else "first_key"
        else:
            expect = "next"
    trailing = _TRAILING.match(text, position)
    if not done or trailing is None or trailing.end() != len(text):
        raise ValueError("not a complete JSON document")
    return root


def _is_members(value: Any) -> bool:
    return type(value) is Members


def dumps(value: Any) -> bytes:
    """orjson for what it can write, ``serialize`` for the rest (``Members``, depth)."""
    try:
        return orjson.dumps(value)
    except TypeError:  # too deep (orjson stops at 255 levels) or an integer beyond 64 bits
        return serialize(value)


class _Token(str):
    """Punctuation already written: pushed on the serializer's stack between values."""

    __slots__ = ()


_OPEN_OBJECT, _CLOSE_OBJECT = _Token("{"), _Token("}")
_OPEN_LIST, _CLOSE_LIST, _COMMA = _Token("["), _Token("]"), _Token(",")


def serialize(value: Any) -> bytes:
    out: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is _Token:
            out.append(item)
        elif isinstance(item, str):
            out.append(_string(item))
        elif kind is Members or kind is dict:
            pairs = item.pairs if kind is Members else list(item.items())
            stack.append(_CLOSE_OBJECT)
            for index in range(len(pairs) - 1, -1, -1):
                key, member = pairs[index]
                stack.append(member)
                stack.append(_Token(_string(key) + ":"))
                if index:
                    stack.append(_COMMA)
            stack.append(_OPEN_OBJECT)
        elif isinstance(item, list):
            stack.append(_CLOSE_LIST)
            for index in range(len(item) - 1, -1, -1):
                stack.append(item[index])
                if index:
                    stack.append(_COMMA)
            stack.append(_OPEN_LIST)
        else:
            out.append(_scalar(item))
    return "".join(out).encode("utf-8")


def _string(text: str) -> str:
    try:
        return orjson.dumps(text).decode("utf-8")
    except TypeError:  # a lone surrogate: escaped, so the output is valid UTF-8
        return json.dumps(text)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return float.__repr__(value)
    if isinstance(value, int):
        return int.__repr__(value)
    raise TypeError(f"cannot write a {type(value).__name__} as JSON")
