"""A whole body, read by what it is rather than by what its label says.

A label is the sender's claim; the model server's parser decides what it reads. So: anything
that starts like JSON (after an optional BOM and whitespace, ``{`` or ``[``) is masked as JSON
whatever the label; several JSON documents one per line (NDJSON) line by line; forms field by
field and multipart bodies part by part (``forms``); a body without a content type that
percent-decoding would change, as a form and as text (Rack parses such a POST as a form); the
rest as text, with escapes decoded and compatibility forms folded for detection. A content type
parsers read differently (two media types, a repeated parameter) is refused. A charset we
cannot read the way the receiver does (UTF-16 and UTF-32, which Python's ``json.loads`` detects
by itself; UTF-7; legacy multibyte sets) is refused rather than guessed.

JSON takes the fast path (orjson, then the in-place walk) unless the body has duplicate keys,
which orjson silently collapses: the count of object members the walk saw is compared with the
count of ``:`` outside strings. Duplicates, NaN, lone surrogates, a BOM and deep nesting go
through the lenient parser; a profile with ``invalid_json: deny`` refuses what is not RFC 8259
JSON in a body labelled JSON.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Literal

import orjson

from extproc.errors import Code
from extproc.masking import forms
from extproc.masking.forms import boundary_of, checked_media_type
from extproc.masking.jsondoc import Members, loads, parse_lenient, serialize
from extproc.masking.jsondoc import dumps as dump_document
from extproc.masking.results import Finding, MaskingError, MaskResult, relocated
from extproc.masking.walk import mask_document

if TYPE_CHECKING:
    from collections.abc import Callable

    from extproc.masking.engine import Masker

_JSON_START = re.compile(rb"(?:\xef\xbb\xbf)?[ \t\r\n]*[\[{]")
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
LINE_TYPES = (
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
    "application/x-jsonlines",
    "application/json-lines",
    "application/stream+json",
)
_READABLE_CHARSETS = frozenset(
    {"", "utf-8", "utf8", "us-ascii", "ascii", "iso-8859-1", "latin1", "latin-1", "windows-1252"}
)
_MISSING = object()


def mask_body(
    masker: Masker,
    body: bytes,
    content_type: str,
    direction: str,
    *,
    binary_parts: Literal["refuse", "pass"] = "refuse",
) -> MaskResult:
    if not body:
        return MaskResult(body, (), False)
    kind, params = checked_media_type(content_type)
    readable_charset(body, params.get("charset", ""))
    if kind == forms.FORM_TYPE:
        if _JSON_START.match(body) is not None and _is_json(body):
            return _json_labelled_as_a_form(masker, body, direction)
        return forms.mask_form(masker, body, direction)
    if kind.startswith("multipart/"):
        return forms.mask_multipart(
            mask_body,
            masker,
            body,
            boundary_of(content_type, params),
            direction,
            binary_parts=binary_parts,
        )
    declared = "json" in kind
    if kind in LINE_TYPES:
        return mask_lines(masker, body, direction, declared=declared)
    if declared or _JSON_START.match(body) is not None:
        return mask_json(masker, body, direction, declared=declared)
    if not kind and forms.reads_as_form(body):
        return forms.mask_unlabelled(masker, body, direction)
    return masker.mask_bytes_as_text(body, direction)


def _is_json(body: bytes) -> bool:
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return True


def _json_labelled_as_a_form(masker: Masker, body: bytes, direction: str) -> MaskResult:
    """JSON sent with a form's label (``curl -d`` without a content type does it): servers
    read it as JSON, so it is masked as JSON; what goes on must hold nothing for a reader that
    trusts the label either, or it is refused."""
    as_json = mask_json(masker, body, direction, declared=False)
    as_form = forms.mask_form(masker, as_json.body, direction)
    if as_form.findings:
        raise MaskingError(
            "the body is JSON labelled as a form and holds values only the form reading shows: "
            "send it as application/json",
            code=Code.UNSUPPORTED_CONTENT_TYPE,
        )
    return as_json


def readable_charset(body: bytes, charset: str) -> None:
    if charset.lower() not in _READABLE_CHARSETS:
        raise MaskingError("the body's charset cannot be inspected", code=Code.UNSUPPORTED_CHARSET)
    if json.detect_encoding(body[:4]) not in ("utf-8", "utf-8-sig"):
        raise MaskingError(
            "UTF-16 and UTF-32 bodies cannot be inspected", code=Code.UNSUPPORTED_CHARSET
        )


def mask_json(
    masker: Masker, body: bytes, direction: str, *, declared: bool, lines: bool = True
) -> MaskResult:
    try:
        document = loads(body)
    except (ValueError, RecursionError):
        document = _MISSING
    if document is not _MISSING:
        findings: list[Finding] = []
        masked, members, replaced = mask_document(masker, document, direction, findings)
        result = _unless_duplicates(masker, body, masked, findings, members, replaced)
        if result is not None:
            return result
    strict = declared and masker.profile.invalid_json == "deny"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MaskingError("the body is not valid UTF-8", code=Code.INVALID_UTF8) from None
    try:
        document = parse_lenient(text, strict=strict)
    except ValueError:
        if strict:
            raise MaskingError("the body is not valid JSON", code=Code.INVALID_JSON) from None
        if lines and body.count(b"\n") and _JSON_START.match(body) is not None:
            return mask_lines(masker, body, direction, declared=declared)
        return masker.mask_bytes_as_text(body, direction)
    findings = []
    masked = mask_document(masker, document, direction, findings)[0]
    return _result(masker, body, masked, findings, serialize)


def _unless_duplicates(
    masker: Masker,
    body: bytes,
    masked: Any,
    findings: list[Finding],
    members: int,
    replaced: list[tuple[str, str]],
) -> MaskResult | None:
    """The result, or None when orjson dropped a duplicate member (its value went unseen).

    Every member has one ``:`` outside strings, so a body with as many ``:`` as members has
    none in strings and no duplicate. Otherwise the written output settles it: orjson never
    escapes ``:``, so the output holds one per member plus those of the decoded strings (as
    masked), which is exactly the body's count plus its ``\u003a`` escapes, less what masking
    added, unless a member was dropped. An escaped backslash before ``u003a`` only errs towards
    the lenient path. Field rules can drop whole subtrees: those bodies strip strings instead."""
    colons = body.count(b":")
    if colons == members:
        return _result(masker, body, masked, findings, dump_document)
    if masker.profile.fields:
        if _STRING.sub(b"", body).count(b":") != members:
            return None
        return _result(masker, body, masked, findings, dump_document)
    written = dump_document(masked)
    escaped = body.count(b"\\u003a") + body.count(b"\\u003A") if b"\\" in body else 0
    added = sum(new.count(":") - old.count(":") for old, new in replaced)
    if colons + escaped != written.count(b":") - added:
        return None
    if not findings or masker.report:
        return MaskResult(body, tuple(findings), False)
    return MaskResult(written, tuple(findings), True)


def has_duplicates(body: bytes, members: int) -> bool:
    """For a parsed body whose strings nobody masked: strip the strings, count the rest."""
    if body.count(b":") == members:
        return False
    return _STRING.sub(b"", body).count(b":") != members


def mask_lines(masker: Masker, body: bytes, direction: str, *, declared: bool) -> MaskResult:
    """One JSON document (or text) per line; line endings kept as they were."""
    out: list[bytes] = []
    findings: list[Finding] = []
    changed = False
    for number, line in enumerate(body.splitlines(keepends=True)):
        content = line.rstrip(b"\r\n")
        if not content.strip():
            out.append(line)
            continue
        result = mask_json(masker, content, direction, declared=declared, lines=False)
        findings.extend(relocated(result.findings, f"line[{number}]:"))
        changed = changed or result.changed
        out.append(result.body + line[len(content) :])
    if not changed:
        return MaskResult(body, tuple(findings), False)
    return MaskResult(b"".join(out), tuple(findings), True)


def _result(
    masker: Masker,
    body: bytes,
    masked: Any,
    findings: list[Finding],
    write: Callable[[Any], bytes],
) -> MaskResult:
    if not findings or masker.report:
        return MaskResult(body, tuple(findings), False)
    return MaskResult(write(masked), tuple(findings), True)


# -- what block rules read -----------------------------------------------------------------------
def strings_of(body: bytes, content_type: str = "") -> str:
    """Every string of the body as its receiver decodes it: JSON strings, keys and numbers
    (every duplicate), form fields and parts decoded, or the body as text."""
    if not body:
        return ""
    kind, params = checked_media_type(content_type)
    if kind == forms.FORM_TYPE:
        return "\n".join(forms.form_texts(body))
    if kind.startswith("multipart/"):
        parts = forms.part_texts(body, boundary_of(content_type, params))
        return "\n".join(strings_of(content, part_type) for part_type, content in parts)
    if "json" in kind or _JSON_START.match(body) is not None:
        strings = _json_strings(body)
        if strings is not None:
            return "\n".join(strings)
        if body.count(b"\n") and kind not in ("application/json",):
            return "\n".join(strings_of(line, "application/json") for line in body.splitlines())
    text = body.decode("utf-8", "replace")
    if not kind and forms.reads_as_form(body):  # read as a form too, as Rack reads it
        return "\n".join([text, *forms.form_texts(body)])
    return text


def _json_strings(body: bytes) -> list[str] | None:
    """The document's strings (``_document_strings``), or None when it is not JSON."""
    try:
        document = loads(body)
    except (ValueError, RecursionError):
        document = _MISSING
    if document is not _MISSING:
        strings, members = _strings_and_members(document)
        if not has_duplicates(body, members):
            return strings
    try:
        document = parse_lenient(body.decode("utf-8", "replace"), strict=False)
    except ValueError:
        return None
    return _document_strings(document)


def _strings_and_members(document: Any) -> tuple[list[str], int]:
    """``_document_strings`` and the number of object members of a document orjson parsed, in
    one walk (the same order: the strings are searched joined, and a pattern may span two)."""
    out: list[str] = []
    members = 0
    stack = [document]
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is str:
            out.append(node)
        elif kind is dict:
            out.extend(node)
            members += len(node)
            stack.extend(node.values())
        elif kind is list:
            stack.extend(node)
        elif kind is int or kind is float:
            out.append(repr(node))
        elif kind is not bool and node is not None:
            members += _other_node(node, out, stack)
    return out, members


def _other_node(node: Any, out: list[str], stack: list[Any]) -> int:
    """A node of a type neither parser gives (a subclass), read as ``_nodes`` and
    ``_document_strings`` read it; the members it adds to the count."""
    if isinstance(node, str):
        out.append(node)
    elif isinstance(node, dict):
        out.extend(node)
        stack.extend(node.values())
        return len(node)
    elif type(node) is Members:
        out.extend(key for key, _ in node)
        stack.extend(value for _, value in node)
    elif isinstance(node, list):
        stack.extend(node)
    elif isinstance(node, int | float) and not isinstance(node, bool):
        out.append(repr(node))
    return 0


def _nodes(document: Any) -> list[Any]:
    nodes: list[Any] = []
    stack = [document]
    while stack:
        node = stack.pop()
        nodes.append(node)
        if isinstance(node, dict):
            stack.extend(node.values())
        elif type(node) is Members:
            stack.extend(value for _, value in node)
        elif isinstance(node, list):
            stack.extend(node)
    return nodes


def _document_strings(document: Any) -> list[str]:
    out: list[str] = []
    for node in _nodes(document):
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, dict):
            out.extend(node)
        elif type(node) is Members:
            out.extend(key for key, _ in node)
        elif isinstance(node, int | float) and not isinstance(node, bool):
            out.append(repr(node))
    return out
