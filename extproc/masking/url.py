"""The request target (path and query) masked as the receiver decodes it.

Query parameters travel in access logs, audit records and the model server's own logs; path
segments carry ids and addresses (``/users/jane@example.com``). Each path segment and each
query name and value is percent-decoded (``+`` is a space in the query), masked like any text,
and re-encoded only if something was found; untouched parts keep their exact bytes, so a target
without findings comes back identical.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote, quote_plus, unquote, unquote_plus

from extproc.masking.results import Finding

if TYPE_CHECKING:
    from extproc.masking.engine import Masker

_SEGMENT_SAFE = "!$&'()*+,;=:@-._~"  # RFC 3986 pchar, unreserved and sub-delims


def mask_target(
    masker: Masker, target: str, direction: str = "request"
) -> tuple[str, list[Finding]]:
    """``target`` is ``:path`` as Envoy has it: ``/a/b?x=1&y=2``."""
    findings: list[Finding] = []
    path, sep, query = target.partition("?")
    masked_path = "/".join(
        _component(masker, segment, direction, f"url.path[{index}]", findings, unquote, _quote)
        for index, segment in enumerate(path.split("/"))
    )
    if not sep:
        return masked_path, findings
    pairs = []
    for index, pair in enumerate(query.split("&")):
        name, equals, value = pair.partition("=")
        where = f"url.query[{index}]"
        name = _component(
            masker, name, direction, where + ".name", findings, unquote_plus, quote_plus
        )
        value = _component(masker, value, direction, where, findings, unquote_plus, quote_plus)
        pairs.append(name + equals + value)
    return masked_path + "?" + "&".join(pairs), findings


def _component(
    masker: Masker,
    raw: str,
    direction: str,
    location: str,
    findings: list[Finding],
    decode: object,
    encode: object,
) -> str:
    if len(raw) < 3:
        return raw
    text = decode(raw)  # type: ignore[operator]
    found = len(findings)
    masked = masker.mask_text(text, direction, location, findings)
    if len(findings) == found or masker.report:
        return raw
    return str(encode(masked))  # type: ignore[operator]


def _quote(text: str) -> str:
    return quote(text, safe=_SEGMENT_SAFE)


def mask_header_value(
    masker: Masker, value: str, direction: str, location: str, findings: list[Finding]
) -> str:
    """A header value masked as read, then as a URL reader decodes it (``Referer``,
    ``Location``, ``Link``, a cookie: ``jane.doe%40example.com``). A value that holds a finding
    only once decoded is sent decoded and masked."""
    masked = masker.mask_text(value, direction, location, findings)
    if "%" not in masked and "+" not in masked:
        return masked
    decoded = unquote_plus(masked, errors="replace")
    if decoded == masked:
        return masked
    found = len(findings)
    unescaped = masker.mask_text(decoded, direction, location, findings)
    return unescaped if len(findings) > found and not masker.report else masked
