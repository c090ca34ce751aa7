"""What a detector reads: the text as its receiver will decode it, with a map back to the original.

A model, a tokenizer or the next JSON parser does not see the bytes we see: ``\\u0034`` is a
``4`` once a JSON string is decoded (tool-call arguments are JSON inside JSON), a full-width
four (U+FF14) is a ``4`` after NFKC (many tokenizers apply it, every model reads it), a keycap
four is a digit with invisible marks, and Unicode tag characters spell ASCII invisibly. Detection
therefore runs on a folded view:

- JSON escapes are decoded: ``\\uXXXX`` (and surrogate pairs; a lone surrogate reads as
  U+FFFD) and the short ones (``\\t \\n \\r \\b \\f \\/ \\\\ \\"``), read left to right as a
  parser does (``\\\\t`` is a backslash and a ``t``); what that leaves escaped is decoded again,
  up to three levels (JSON in JSON in JSON: tool-call arguments holding a JSON string);
- numeric character references (``&#52;``, ``&#x40;``) are decoded, as HTML readers and models
  read them;
- vertical tab and form feed read as a space (they render as a break between digit groups; a
  newline stays a newline);
- each non-ASCII character is replaced by its NFKC form, decimal digits of any script by ASCII
  digits, dashes and the minus sign by ``-``, characters that render blank (Hangul fillers,
  the braille blank, NEL) by a space, tag characters by the ASCII they mirror, and format
  characters (zero-width spaces, bidi controls) and combining marks are dropped.

Spans found in the view map back to whole original characters or escape sequences, so the
masked output replaces exactly what encoded the value and stays valid. ASCII text without a
backslash, ``&``, vertical tab or form feed is its own view and costs a few C-level checks.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass, field

# A JSON escape: ``\\uXXXX`` or a short one. Read left to right, an escaped backslash is one
# escape, so the ``t`` or ``u0034`` after it is not.
_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|([tnrbf/\\\"]))")
_SHORT = {"t": "\t", "n": "\n", "r": "\r", "b": "\b", "f": "\f", "/": "/", "\\": "\\", '"': '"'}
_ESCAPE_LEVELS = 3  # JSON in JSON in JSON: an escape written escaped is read again
_ENTITY = re.compile(r"&#(?:0*([0-9]{1,7})|[xX]0*([0-9a-fA-F]{1,6}));?")
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_DROPPED = frozenset({"Cf", "Mn", "Me"})
_TAGS = range(0xE0020, 0xE007F)
# Letters and symbols that render as a blank (NFKC keeps them): read as a space between digits.
_BLANKS = frozenset("\u115f\u1160\u2800\u3164\uffa0\u2028\u2029\x85")
# Vertical tab and form feed render as a break between digit groups: read as a space (a
# newline stays a newline, which no card or number detector takes for a separator).
_ASCII_BLANKS = {0x0B: " ", 0x0C: " "}
_FOLD_CACHE_LIMIT = 65_536


@dataclass(slots=True)
class _Map:
    """Changed stretches: view [starts[i], view_ends[i]) came from original [orig_starts[i],
    orig_ends[i]); between them positions shift by the difference of the stretches before."""

    starts: list[int] = field(default_factory=list)
    view_ends: list[int] = field(default_factory=list)
    orig_starts: list[int] = field(default_factory=list)
    orig_ends: list[int] = field(default_factory=list)

    def add(self, view_start: int, view_end: int, orig_start: int, orig_end: int) -> None:
        self.starts.append(view_start)
        self.view_ends.append(view_end)
        self.orig_starts.append(orig_start)
        self.orig_ends.append(orig_end)

    def start(self, position: int) -> int:
        i = bisect_right(self.starts, position) - 1
        if i < 0:
            return position
        if position < self.view_ends[i]:
            return self.orig_starts[i]
        return position + self.orig_ends[i] - self.view_ends[i]

    def end(self, position: int) -> int:
        last = bisect_right(self.starts, position) - 1
        if last >= 0 and self.starts[last] == position == self.view_ends[last]:
            # Dropped marks right after the span (a keycap's) go with its last character.
            return self.orig_ends[last]
        i = bisect_right(self.starts, position - 1) - 1
        if i < 0:
            return position
        if position <= self.view_ends[i]:
            return self.orig_ends[i]
        return position + self.orig_ends[i] - self.view_ends[i]


@dataclass(frozen=True, slots=True)
class View:
    """The folded text and the maps (innermost last) that lead back to the original."""

    text: str
    maps: tuple[_Map, ...] = ()

    def original(self, start: int, end: int) -> tuple[int, int]:
        """The original characters behind ``text[start:end]`` (whole characters, whole
        escape sequences)."""
        for offsets in reversed(self.maps):
            start, end = offsets.start(start), offsets.end(end)
        return start, end

    def original_position(self, position: int) -> int:
        for offsets in reversed(self.maps):
            position = offsets.start(position)
        return position


def needs_view(text: str) -> bool:
    # One-character ``in`` is a memchr; a substring search is a hundred times slower on long
    # text, a regular expression more.
    return (
        not text.isascii()
        or ("\\" in text and _ESCAPE.search(text) is not None)
        or ("&" in text and "&#" in text)
        or "\x0b" in text
        or "\x0c" in text
    )


def view(text: str) -> View:
    if not needs_view(text):
        return View(text)
    maps: list[_Map] = []
    for _ in range(_ESCAPE_LEVELS):
        if "\\" not in text:
            break
        decoded = _decode_escapes(text)
        if decoded is None:
            break
        text, offsets = decoded
        maps.append(offsets)
    if "&" in text and "&#" in text:
        decoded = _decode_entities(text)
        if decoded is not None:
            text, offsets = decoded
            maps.append(offsets)
    if "\x0b" in text or "\x0c" in text:  # one character for one: no map
        text = text.translate(_ASCII_BLANKS)
    if not text.isascii():
        folded = _fold(text)
        if folded is not None:
            text, offsets = folded
            maps.append(offsets)
    return View(text, tuple(maps))


def fold(text: str) -> str:
    """The view's text alone (for a value a detector already found)."""
    return view(text).text if needs_view(text) else text


def _decode_escapes(text: str) -> tuple[str, _Map] | None:
    """JSON escapes decoded, as the next JSON parser reads them; None when there is none."""
    pieces: list[str] = []
    offsets = _Map()
    last = 0
    length = 0
    matches = list(_ESCAPE.finditer(text))
    if not matches:
        return None
    index = 0
    while index < len(matches):
        match = matches[index]
        end = match.end()
        short = match.group(2)
        if short is not None:
            char = _SHORT[short]
        else:
            code = int(match.group(1), 16)
            following = matches[index + 1] if index + 1 < len(matches) else None
            if (
                0xD800 <= code < 0xDC00
                and following is not None
                and following.start() == end
                and following.group(1) is not None
            ):
                low = int(following.group(1), 16)
                if 0xDC00 <= low < 0xE000:
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    end = following.end()
                    index += 1
            # A lone surrogate cannot be encoded; U+FFFD keeps the view a valid string.
            char = "\ufffd" if 0xD800 <= code < 0xE000 else chr(code)
        pieces.append(text[last : match.start()])
        length += match.start() - last
        offsets.add(length, length + 1, match.start(), end)
        pieces.append(char)
        length += 1
        last = end
        index += 1
    pieces.append(text[last:])
    return "".join(pieces), offsets


def _decode_entities(text: str) -> tuple[str, _Map] | None:
    """Numeric character references (``&#52;``, ``&#x40;``), as a browser or a model reads
    them; None when none decodes to a character."""
    pieces: list[str] = []
    offsets = _Map()
    last = 0
    length = 0
    for match in _ENTITY.finditer(text):
        digits, hexdigits = match.group(1), match.group(2)
        code = int(digits) if digits is not None else int(hexdigits, 16)
        if code > 0x10FFFF or 0xD800 <= code < 0xE000 or code == 0:
            continue
        pieces.append(text[last : match.start()])
        length += match.start() - last
        offsets.add(length, length + 1, match.start(), match.end())
        pieces.append(chr(code))
        length += 1
        last = match.end()
    if not offsets.starts:
        return None
    pieces.append(text[last:])
    return "".join(pieces), offsets


class _FoldTable(dict[int, str]):
    """``str.translate`` table: each code point's folded form, computed once (bounded)."""

    def __missing__(self, code: int) -> str:
        folded = _fold_char(chr(code))
        if len(self) < _FOLD_CACHE_LIMIT:
            self[code] = folded
        return folded


def _fold_char(char: str) -> str:
    code = ord(char)
    if code in _TAGS:
        return chr(code - 0xE0000)
    if unicodedata.category(char) == "Nd":
        return str(unicodedata.decimal(char))
    out = []
    for part in unicodedata.normalize("NFKC", char):
        category = unicodedata.category(part)
        if category in _DROPPED:
            continue
        if category == "Nd":
            part = str(unicodedata.decimal(part))
        elif category == "Pd" or part == "\u2212":  # every dash and the minus sign read as "-"
            part = "-"
        elif part in _BLANKS:
            part = " "
        out.append(part)
    return "".join(out)


_TABLE = _FoldTable()


def _fold(text: str) -> tuple[str, _Map] | None:
    """None when no character changes (the common case for accented or CJK prose)."""
    pieces: list[str] = []
    offsets = _Map()
    last = 0
    shift = 0  # view length minus original length so far
    for run in _NON_ASCII.finditer(text):
        chars = run.group()
        if chars.translate(_TABLE) == chars:
            continue
        for position in range(run.start(), run.end()):
            char = text[position]
            folded = _TABLE[ord(char)]
            if folded == char:
                continue
            pieces.append(text[last:position])
            view_start = position + shift
            offsets.add(view_start, view_start + len(folded), position, position + 1)
            pieces.append(folded)
            shift += len(folded) - 1
            last = position + 1
    if not offsets.starts:
        return None
    pieces.append(text[last:])
    return "".join(pieces), offsets
