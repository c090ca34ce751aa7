"""Form bodies: ``application/x-www-form-urlencoded`` and ``multipart/*``.

A urlencoded card (``4111+1111+1111+1111`` or ``%34%31...``) is plain text only after
percent-decoding, so each name and value is decoded (``+`` is a space), masked, and re-encoded
only if it changed; untouched fields keep their original bytes.

A multipart body is masked part by part: each part's headers as text (a file name can hold an
e-mail), its content as a body of its own type (so a JSON part is masked as JSON). A part we
cannot read, binary content, a transfer encoding (base64, quoted-printable) or a nested
multipart, is refused (``binary_parts="refuse"``, the default) or, with ``"pass"``, passed
unchanged unless it decodes as UTF-8, in which case it is masked as text all the same: readable
text never passes unscanned. Preamble and epilogue, which lenient parsers may read as content,
are masked as text. A body that does not contain its boundary is masked as text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote_plus, unquote_plus

from extproc.errors import Code
from extproc.masking.results import Finding, MaskingError, MaskResult, relocated

if TYPE_CHECKING:
    from extproc.masking.engine import Masker

FORM_TYPE = "application/x-www-form-urlencoded"
_TRANSPORT_PADDING = re.compile(rb"[ \t]*(\r\n|\n|$)")
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_TEXT_TYPES = ("text/", FORM_TYPE)


# -- urlencoded ------------------------------------------------------------------------------------
def mask_form(masker: Masker, body: bytes, direction: str) -> MaskResult:
    findings: list[Finding] = []
    out: list[bytes] = []
    for index, field in enumerate(body.split(b"&")):
        name, equals, value = field.partition(b"=")
        name = _mask_component(masker, name, direction, f"form[{index}].name", findings)
        value = _mask_component(masker, value, direction, f"form[{index}].value", findings)
        out.append(name + equals + value)
    if not findings or masker.report:
        return MaskResult(body, tuple(findings), False)
    return MaskResult(b"&".join(out), tuple(findings), True)


def _mask_component(
    masker: Masker, raw: bytes, direction: str, location: str, findings: list[Finding]
) -> bytes:
    text = unquote_plus(raw.decode("utf-8", "replace"), errors="replace")
    masked = masker.mask_text(text, direction, location, findings)
    if masked is text:
        return raw
    return quote_plus(masked, safe="").encode("ascii")


def form_texts(body: bytes) -> list[str]:
    return [
        unquote_plus(component.decode("utf-8", "replace"), errors="replace")
        for field in body.split(b"&")
        for component in field.partition(b"=")[::2]
    ]


def form_fields(body: bytes) -> list[tuple[str, str]]:
    """Each field's name and value, decoded as a form parser decodes them."""
    fields = []
    for field in body.split(b"&"):
        name, _, value = field.partition(b"=")
        fields.append((_decoded(name), _decoded(value)))
    return fields


def _decoded(component: bytes) -> str:
    return unquote_plus(component.decode("utf-8", "replace"), errors="replace")


# -- multipart -----------------------------------------------------------------------------------
def part_fields(body: bytes, boundary: str) -> list[tuple[str, str]] | None:
    """The name (``content-disposition``) and content of each part, content read as UTF-8;
    None when the body does not hold its boundary."""
    sections = _sections(body, boundary)
    if sections is None:
        return None
    fields = []
    for kind, start, end in sections:
        if kind == "part":
            _head, content, headers = _split_part(body[start:end])
            _, params = media_type(headers.get("content-disposition", ""))
            fields.append((params.get("name", ""), content.decode("utf-8", "replace")))
    return fields


def _sections(body: bytes, boundary: str) -> list[tuple[str, int, int]] | None:
    """(kind, start, end) of the preamble, each part and the epilogue; None without a
    delimiter. The line ending before a delimiter belongs to the delimiter (RFC 2046)."""
    if not boundary:
        return None
    delimiter = b"--" + boundary.encode("latin-1", "replace")
    lines: list[tuple[int, int, bool]] = []  # (delimiter start, content start, closing)
    position = body.find(delimiter)
    while position >= 0:
        after = position + len(delimiter)
        if position == 0 or body[position - 1 : position] == b"\n":
            closing = body.startswith(b"--", after)
            padding = _TRANSPORT_PADDING.match(body, after + 2 if closing else after)
            if padding is not None:
                lines.append((position, padding.end(), closing))
                if closing:
                    break
        position = body.find(delimiter, after)
    if not lines:
        return None
    sections = [("preamble", 0, _line_start(body, lines[0][0]))]
    for (_, content, closing), following in zip(lines, [*lines[1:], None], strict=True):
        if closing:
            sections.append(("epilogue", content, len(body)))
        else:  # an unterminated last part runs to the end of the body
            end = len(body) if following is None else _line_start(body, following[0])
            sections.append(("part", content, end))
    return sections


def _line_start(body: bytes, delimiter: int) -> int:
    if body[delimiter - 2 : delimiter] == b"\r\n":
        return delimiter - 2
    return delimiter - 1 if body[delimiter - 1 : delimiter] == b"\n" else delimiter


# The dispatch by content type that multipart parts go back through (``bodies.mask_body``):
# passed in, because a part can hold any body, so the two modules recurse into each other.
BodyMasker = Callable[..., MaskResult]


def media_type(content_type: str) -> tuple[str, dict[str, str]]:
    """``type/subtype`` in lower case and the parameters (values unquoted, case kept)."""
    kind, _, rest = content_type.partition(";")
    params: dict[str, str] = {}
    for part in rest.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            params[name.strip().lower()] = value.strip().strip('"')
    return kind.strip().lower(), params


def mask_multipart(
    mask_body: BodyMasker,
    masker: Masker,
    body: bytes,
    boundary: str,
    direction: str,
    *,
    binary_parts: Literal["refuse", "pass"] = "refuse",
) -> MaskResult:
    sections = _sections(body, boundary)
    if sections is None:
        return mask_body(masker, body, "text/plain", direction)
    findings: list[Finding] = []
    out: list[bytes] = []
    last = 0
    parts = 0
    for kind, start, end in sections:
        piece = body[start:end]
        if kind == "part":
            result = _mask_part(mask_body, masker, piece, direction, binary_parts)
            prefix = f"part[{parts}]:"
            parts += 1
        else:
            result = mask_body(masker, piece, "text/plain", direction)
            prefix = f"{kind}:"
        findings.extend(relocated(result.findings, prefix))
        out.append(body[last:start])
        out.append(result.body)
        last = end
    out.append(body[last:])
    if not findings or masker.report:
        return MaskResult(body, tuple(findings), False)
    return MaskResult(b"".join(out), tuple(findings), True)


def _split_part(part: bytes) -> tuple[bytes, bytes, dict[str, str]]:
    """Headers, content, and the headers by lower-case name."""
    if part.startswith((b"\r\n", b"\n")):
        head, content = b"", part[2 if part.startswith(b"\r\n") else 1 :]
    else:
        end = _HEADER_END.search(part)
        head, content = (part, b"") if end is None else (part[: end.start()], part[end.end() :])
    headers: dict[str, str] = {}
    for line in head.decode("utf-8", "replace").splitlines():
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return head, content, headers


def _mask_part(
    mask_body: BodyMasker,
    masker: Masker,
    part: bytes,
    direction: str,
    binary_parts: Literal["refuse", "pass"],
) -> MaskResult:
    head, content, headers = _split_part(part)
    findings: list[Finding] = []
    head_text = head.decode("utf-8", "surrogateescape")
    masked_head = masker.mask_text(head_text, direction, "headers", findings)
    content_type = headers.get("content-type", "text/plain")
    kind, _ = media_type(content_type)
    transfer = headers.get("content-transfer-encoding", "").lower()
    readable = transfer in ("", "7bit", "8bit", "binary") and not kind.startswith("multipart/")
    if readable and (kind.startswith(_TEXT_TYPES) or "json" in kind):
        try:
            result = mask_body(masker, content, content_type, direction)
        except MaskingError as exc:
            if exc.code not in _UNREADABLE:
                raise
            result = _binary(mask_body, masker, content, direction, binary_parts)
    else:
        result = _binary(mask_body, masker, content, direction, binary_parts)
    findings.extend(relocated(result.findings, "content:"))
    if not findings or masker.report:
        return MaskResult(part, tuple(findings), False)
    separator = part[len(head) : len(part) - len(content)]
    masked = masked_head.encode("utf-8", "surrogateescape") + separator + result.body
    return MaskResult(masked, tuple(findings), True)


_UNREADABLE = ("invalid_utf8", "unsupported_charset")


def _binary(
    mask_body: BodyMasker,
    masker: Masker,
    content: bytes,
    direction: str,
    binary_parts: Literal["refuse", "pass"],
) -> MaskResult:
    if binary_parts == "refuse":
        raise MaskingError(
            "a multipart part is binary and cannot be inspected", code=Code.BINARY_PART_REFUSED
        )
    try:
        return mask_body(masker, content, "text/plain", direction)
    except MaskingError as exc:
        if exc.code not in _UNREADABLE:
            raise
        return MaskResult(content, (), False)


def part_texts(body: bytes, boundary: str) -> list[tuple[str, bytes]]:
    """(content type, bytes) of each part's headers and content, the preamble and epilogue."""
    sections = _sections(body, boundary)
    if sections is None:
        return [("text/plain", body)]
    out: list[tuple[str, bytes]] = []
    for kind, start, end in sections:
        if kind != "part":
            out.append(("text/plain", body[start:end]))
            continue
        head, content, headers = _split_part(body[start:end])
        out.append(("text/plain", head))
        out.append((headers.get("content-type", "text/plain"), content))
    return out
