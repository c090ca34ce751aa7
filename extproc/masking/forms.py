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
are masked as text.

What parsers read differently is refused, never guessed (``unsupported_content_type``,
``malformed_multipart``): a content type holding two media types (a comma outside quotes, as
Envoy joins two headers), a repeated or RFC 2231 (``name*=``) parameter; a boundary Rack's
pattern reads otherwise than RFC 2045 quoting does; a multipart body in which its boundary
appears anywhere but on a delimiter line ended by CRLF or LF (none at all, a bare CR); a part
whose headers repeat a name, fold, use RFC 2231 parameters or RFC 2047 encoded words.

A body without a content type that is not JSON is read as a form as well (Rack parses such a
POST as one): when it holds a percent escape or a ``+``, its fields are masked decoded, then the
whole as text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, NoReturn
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


def mask_unlabelled(masker: Masker, body: bytes, direction: str) -> MaskResult:
    """A body without a content type that is not JSON but holds a percent escape or a ``+``:
    Rack reads such a POST as a form, so its fields are masked decoded (``mask_form``); any
    other reader sees text, so the result is masked as text too."""
    form = mask_form(masker, body, direction)
    if masker.report and form.findings:
        return form
    text = masker.mask_bytes_as_text(form.body, direction)
    findings = (*form.findings, *relocated(text.findings, "text:"))
    return MaskResult(text.body, findings, form.changed or text.changed)


def reads_as_form(body: bytes) -> bool:
    """Whether a body without a content type reads differently as a form than as text."""
    return b"%" in body or b"+" in body


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
def part_fields(body: bytes, boundary: str) -> list[tuple[str, str]]:
    """The name and content of each part, content read as UTF-8. The name is the
    ``content-disposition`` one, or Rack's fallback, the ``content-id``. Refuses what
    ``_sections`` and ``_split_part`` refuse."""
    fields = []
    for kind, start, end in _sections(body, boundary):
        if kind == "part":
            _head, content, headers = _split_part(body[start:end])
            name = _disposition(headers).get("name")
            if name is None:
                name = headers.get("content-id", "")
            fields.append((name, content.decode("utf-8", "replace")))
    return fields


def _sections(body: bytes, boundary: str) -> list[tuple[str, int, int]]:
    """(kind, start, end) of the preamble, each part and the epilogue. The line ending before
    a delimiter belongs to the delimiter (RFC 2046).

    A delimiter line starts the body or follows LF (or CRLF), and ends, after optional spaces,
    with CRLF, LF or the end of the body. The boundary appears nowhere else (RFC 2046 says it
    must not): where it does, a parser that also splits lines on a bare CR (Python's ``email``),
    or looks for it anywhere (Rack 2), would see parts we do not, so the body is refused
    (``malformed_multipart``), as is one without any delimiter: a body labelled multipart is
    never read as text."""
    delimiter = b"--" + boundary.encode("latin-1", "replace")
    lines: list[tuple[int, int, bool]] = []  # (delimiter start, content start, closing)
    position = body.find(delimiter)
    while position >= 0:
        after = position + len(delimiter)
        closing = body.startswith(b"--", after)
        padding = _TRANSPORT_PADDING.match(body, after + 2 if closing else after)
        at_line_start = position == 0 or body[position - 1 : position] == b"\n"
        if not at_line_start or padding is None or (lines and lines[-1][2]):
            raise MaskingError(
                "the multipart boundary appears where parsers disagree on whether it delimits",
                code=Code.MALFORMED_MULTIPART,
            )
        lines.append((position, padding.end(), closing))
        position = body.find(delimiter, after)
    if not lines:
        raise MaskingError(
            "the body is labelled multipart but holds no delimiter of its boundary",
            code=Code.MALFORMED_MULTIPART,
        )
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
    """``type/subtype`` in lower case and the parameters (names in lower case, values unquoted,
    case kept; a ``;`` inside quotes is part of the value). Lenient: for telling kinds apart;
    what decides how a body is read goes through ``checked_media_type``."""
    kind, params, _ = _parse_media_type(content_type)
    return kind, dict(params)


def checked_media_type(
    content_type: str,
    code: Code = Code.UNSUPPORTED_CONTENT_TYPE,
    what: str = "content type",
    *,
    disposition: bool = False,
) -> tuple[str, dict[str, str]]:
    """``media_type``, refusing (``code``) a value parsers read differently: more than one
    media type (a comma outside quotes: Envoy joins repeated headers so, Rack splits on it), a
    parameter named twice (parsers keep either), an RFC 2231 parameter (``name*=``, ``name*0=``,
    read by some parsers only), a malformed one. ``disposition``: a ``Content-Disposition``
    (whose kind, ``form-data``, is a single token)."""
    kind, params, problem = _parse_media_type(content_type, disposition)
    if problem:
        raise MaskingError(f"the {what} {problem}", code=code)
    return kind, dict(params)


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_KIND = re.compile(rf"{_TOKEN.pattern}/{_TOKEN.pattern}")


def _parse_media_type(
    value: str, disposition: bool = False
) -> tuple[str, list[tuple[str, str]], str]:
    """(kind, parameters in order, the first problem found or ""). The kind of a disposition
    (``form-data``) is a token, that of a media type ``type/subtype``."""
    problems: list[str] = []
    head, sep, rest = value.partition(";")
    if "," in head:
        problems.append("holds more than one media type")
    kind = head.strip().lower()
    if kind and not (_TOKEN if disposition else _KIND).fullmatch(kind):
        problems.append("is malformed")
    params: list[tuple[str, str]] = []
    position, end = 0, len(rest)
    while sep:
        name_end = position
        while name_end < end and rest[name_end] not in '=;,"':
            name_end += 1
        name = rest[position:name_end].strip().lower()
        position = name_end
        if position < end and rest[position] == "=":
            param_value, position = _param_value(rest, position + 1, problems)
            if "*" in name:
                problems.append("has an RFC 2231 parameter")
            elif not _TOKEN.fullmatch(name):
                problems.append("has a malformed parameter")
            elif any(seen == name for seen, _ in params):
                problems.append("repeats a parameter")
            params.append((name, param_value))
        elif name or (position < end and rest[position] == '"'):
            problems.append("has a malformed parameter")
            while position < end and rest[position] not in ";,":
                position += 1
        if position < end and rest[position] == ",":
            problems.append("holds more than one media type")
        if position >= end:
            break
        position += 1
    return kind, params, problems[0] if problems else ""


def _param_value(text: str, position: int, problems: list[str]) -> tuple[str, int]:
    """A parameter's value from ``position`` (a token, or a quoted string whose backslash
    escapes are undone) and where the next ``;`` or ``,`` is."""
    end = len(text)
    while position < end and text[position] in " \t":
        position += 1
    if position < end and text[position] == '"':
        chars: list[str] = []
        position += 1
        closed = False
        while position < end:
            char = text[position]
            if char == "\\" and position + 1 < end:
                chars.append(text[position + 1])
                position += 2
                continue
            position += 1
            if char == '"':
                closed = True
                break
            chars.append(char)
        if not closed:
            problems.append("has an unterminated quoted string")
        after = position
        while position < end and text[position] not in ";,":
            position += 1
        if text[after:position].strip():
            problems.append("has a malformed parameter")
        return "".join(chars), position
    start = position
    while position < end and text[position] not in ";,":
        position += 1
    raw = text[start:position].strip()
    if '"' in raw:
        problems.append("has a malformed parameter")
    return raw, position


# Rack reads the boundary with this pattern (greedy: the last ``boundary=`` anywhere, a value
# cut at ``;``, ``,`` or ``"``); Python's parsers by RFC 2045 quoting. Both must read one value.
_RACK_BOUNDARY = re.compile(r'multipart/.*boundary="?([^";,]+)"?', re.IGNORECASE)
_BCHARS = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")


def boundary_of(content_type: str, params: dict[str, str]) -> str:
    """The multipart boundary every parser reads, or ``unsupported_content_type``."""
    boundary = params.get("boundary", "")
    rack = _RACK_BOUNDARY.match(content_type)
    if not _BCHARS.fullmatch(boundary) or rack is None or rack.group(1) != boundary:
        raise MaskingError(
            "the multipart boundary is missing or can be read more than one way",
            code=Code.UNSUPPORTED_CONTENT_TYPE,
        )
    return boundary


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
    """Headers, content, and the headers by lower-case name.

    Headers parsers read differently are refused (``malformed_multipart``): a name given twice
    in any case (parsers keep the first or the last: a second ``Content-Transfer-Encoding``),
    a line that is not ``name: value`` (a folded continuation, a bare CR), a ``Content-Type``
    or ``Content-Disposition`` ``checked_media_type`` refuses (RFC 2231 ``filename*=``, a
    repeated ``name``), an RFC 2047 encoded word (``=?UTF-8?B?...?=``), decoded by some
    parsers only, or a ``name`` Rack's pattern reads otherwise."""
    if part.startswith((b"\r\n", b"\n")):
        head, content = b"", part[2 if part.startswith(b"\r\n") else 1 :]
    else:
        end = _HEADER_END.search(part)
        head, content = (part, b"") if end is None else (part[: end.start()], part[end.end() :])
    headers: dict[str, str] = {}
    if not head:
        return head, content, headers
    text = head.decode("utf-8", "replace")
    for line in _LINE_END.split(text):
        name, sep, value = line.partition(":")
        key = name.lower()
        if not sep or not _TOKEN.fullmatch(name) or "\r" in value:
            _malformed("a part header line is not a single 'name: value'")
        if key in headers:
            _malformed(f"a part repeats its {key} header")
        if _ENCODED_WORD.search(value):
            _malformed("a part header holds an RFC 2047 encoded word")
        headers[key] = value.strip()
    if text.lower().count("content-disposition") > 1:
        _malformed("a part names content-disposition more than once")
    if "content-type" in headers:
        checked_media_type(headers["content-type"], Code.MALFORMED_MULTIPART, "part content type")
    disposition = _disposition(headers)
    rack = _RACK_NAME.match(headers.get("content-disposition", ""))
    if rack is not None and _dequoted(rack.group(1)) != disposition.get("name"):
        _malformed("a part's name can be read more than one way")
    return head, content, headers


_LINE_END = re.compile(r"\r?\n")
_ENCODED_WORD = re.compile(r"=\?[^?\s]*\?[bBqQ]\?")
# Rack 2 reads a part's name with this pattern (greedy: the last ``name=`` after a space).
_RACK_NAME = re.compile(
    r'.*\s+name=("(?:\\"|[^"])*"|[^\s()<>,;:\\"/\[\]?=]+)', re.IGNORECASE | re.DOTALL
)


def _dequoted(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _disposition(headers: dict[str, str]) -> dict[str, str]:
    disposition = headers.get("content-disposition", "")
    what = "part's content disposition"
    return checked_media_type(disposition, Code.MALFORMED_MULTIPART, what, disposition=True)[1]


def _malformed(reason: str) -> NoReturn:
    raise MaskingError(reason, code=Code.MALFORMED_MULTIPART)


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
    out: list[tuple[str, bytes]] = []
    for kind, start, end in _sections(body, boundary):
        if kind != "part":
            out.append(("text/plain", body[start:end]))
            continue
        head, content, headers = _split_part(body[start:end])
        out.append(("text/plain", head))
        out.append((headers.get("content-type", "text/plain"), content))
    return out
