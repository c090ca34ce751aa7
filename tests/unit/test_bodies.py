"""Whole bodies through ``mask_body``: every way a value got past the label-driven masker, each
checked on what the receiver decodes (``json.loads`` keeping every duplicate, URL-decoding,
a multipart re-parse, NFKC), never on our own output bytes alone."""

from __future__ import annotations

import base64
import json
import re
import unicodedata
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.masking.engine import Masker, MaskingError
from extproc.masking.forms import checked_media_type, media_type
from extproc.masking.jsondoc import parse_deep
from extproc.masking.paths import compile_path
from extproc.masking.profile import FieldRule, Profile

KEY = b"k" * 32


def wide(text: str) -> str:
    """The full-width form of ASCII text (what NFKC folds back)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


CARD = "4111 1111 1111 1111"
ESCAPED_CARD = "4\\u0031\\u00311 1111 1111 1111"
RAW = ("4111 1111 1111 1111", "4111111111111111", "jane@example.com")


def masker(**options: Any) -> Masker:
    return Masker(Profile("p", **options), KEY)


def pairs_everywhere(body: bytes) -> list[Any]:
    """Every key and value a parser that keeps duplicates sees (NaN allowed, as Python's)."""
    seen: list[Any] = []

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        for key, value in pairs:
            seen.extend((key, value))
        return dict(pairs)

    seen.append(json.loads(body, object_pairs_hook=hook))
    return seen


def decoded_text(body: bytes) -> str:
    """What a lenient receiver reads: escapes decoded, compatibility forms folded."""
    text = body.decode("utf-8")
    text = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)
    return unicodedata.normalize("NFKC", text)


def assert_clean(text: str) -> None:
    for raw in RAW:
        assert raw not in text


def assert_json_clean(body: bytes) -> None:
    for item in pairs_everywhere(body):
        assert_clean(json.dumps(item, ensure_ascii=False))
    assert_clean(decoded_text(body))


# -- JSON -----------------------------------------------------------------------------------------
def test_the_first_of_duplicate_keys_is_masked_too() -> None:
    body = f'{{"q": "{CARD}", "q": "hello"}}'.encode()
    result = masker().mask_body(body, "application/json", "request")
    assert_json_clean(result.body)
    assert [f.location for f in result.findings] == ["$.q@0"]
    assert b'"q":"hello"' in result.body  # duplicates are kept: the receiver picks as before


def test_duplicates_inside_nested_objects_and_escaped_colons_are_caught() -> None:
    # \u003a in a surviving string must not balance the ':' of the dropped duplicate.
    body = b'{"a": {"x": "4111 1111 1111 1111", "x": "t\\u003a"}, "b": [1, {"c": 2}]}'
    result = masker().mask_body(body, "application/json", "request")
    assert_json_clean(result.body)


def test_a_key_holding_pii_is_masked_and_locations_never_carry_it() -> None:
    body = b'{"jane@example.com": {"note": "card 4111 1111 1111 1111"}}'
    result = masker().mask_body(body, "application/json", "request")
    assert json.loads(result.body) == {"[REDACTED:EMAIL]": {"note": "card [REDACTED:CARD]"}}
    assert all("jane" not in finding.location for finding in result.findings)
    report = masker(mode="report").mask_body(body, "application/json", "request")
    assert report.body == body
    assert len(report.findings) == 2
    assert all("jane" not in finding.location for finding in report.findings)


def test_colliding_masked_keys_keep_both_members() -> None:
    body = b'{"a@example.com": 1, "b@example.com": 2}'
    out = json.loads(masker().mask_body(body, "application/json", "request").body)
    assert out == {"[REDACTED:EMAIL]": 1, "[REDACTED:EMAIL]~": 2}


def test_a_card_sent_as_a_json_number_becomes_a_masked_string() -> None:
    body = b'{"n": 4111111111111111, "f": 4111111111111111.0, "small": 12345, "id": 1234567}'
    out = json.loads(masker().mask_body(body, "application/json", "request").body)
    assert out == {"n": "[REDACTED:CARD]", "f": "[REDACTED:CARD]", "small": 12345, "id": 1234567}
    last4 = masker(actions={"request": {"CARD": "last4"}})
    assert json.loads(last4.mask_body(b"[4111111111111111]", "", "request").body) == [
        "************1111"
    ]


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/octet-stream", "application/x-ndjson", "", "image/png"],
)
def test_json_is_masked_as_json_whatever_its_label(content_type: str) -> None:
    body = f'{{"q": "{ESCAPED_CARD}"}}'.encode()
    result = masker().mask_body(body, content_type, "request")
    assert json.loads(result.body) == {"q": "[REDACTED:CARD]"}


@pytest.mark.parametrize("content_type", ["text/plain", "application/octet-stream", ""])
def test_escaped_digits_in_text_are_decoded_for_detection(content_type: str) -> None:
    body = f"card {ESCAPED_CARD} thanks".encode()
    result = masker().mask_body(body, content_type, "request")
    assert result.body == b"card [REDACTED:CARD] thanks"


@pytest.mark.parametrize(
    "body",
    [
        f'{{"a": NaN, "q": "{ESCAPED_CARD}"}}',
        f'{{"a": -Infinity, "q": "{ESCAPED_CARD}"}}',
        f'{{"a": "\\ud800", "q": "{ESCAPED_CARD}"}}',
        f'\ufeff{{"q": "{ESCAPED_CARD}"}}',
        f'{{"q": "{ESCAPED_CARD}", "q": 1, "n": Infinity}}',
    ],
)
def test_json_orjson_refuses_is_parsed_leniently_and_stays_valid(body: str) -> None:
    result = masker().mask_body(body.encode(), "application/json", "request")
    assert result.changed
    assert_json_clean(result.body.removeprefix(b"\xef\xbb\xbf"))


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"a": NaN}', "invalid_json"),
        (b'\xef\xbb\xbf{"a": 1}', "invalid_json"),
        (b'{"a": "\\ud800"}', "invalid_json"),
        (b'{"a": 1,}', "invalid_json"),
        (b'{"a": "\xff"}', "invalid_utf8"),
    ],
)
def test_a_deny_profile_refuses_what_is_not_json(body: bytes, code: str) -> None:
    with pytest.raises(MaskingError) as caught:
        masker(invalid_json="deny").mask_body(body, "application/json", "request")
    assert caught.value.code == code
    assert "4111" not in caught.value.reason


def test_a_deny_profile_still_masks_valid_json_with_duplicates() -> None:
    body = f'{{"q": "{CARD}", "q": 1}}'.encode()
    result = masker(invalid_json="deny").mask_body(body, "application/json", "request")
    assert_json_clean(result.body)


def test_json_the_lenient_parser_refuses_falls_back_to_a_text_scan_that_decodes_escapes() -> None:
    body = f'{{"q": "{ESCAPED_CARD}",}}'.encode()  # a trailing comma: JSON5 parsers accept it
    result = masker().mask_body(body, "application/json", "request")
    assert result.body == b'{"q": "[REDACTED:CARD]",}'


@pytest.mark.parametrize("depth", [1_000, 100_000])
@pytest.mark.parametrize(("open_", "close"), [("[", "]"), ('{"a":', "}")])
def test_deeply_nested_json_is_masked_not_crashed(depth: int, open_: str, close: str) -> None:
    body = (open_ * depth + json.dumps(CARD) + close * depth).encode()
    result = masker().mask_body(body, "application/json", "request")
    assert b"4111" not in result.body
    assert b"[REDACTED:CARD]" in result.body
    parse_deep(result.body.decode(), strict=True)  # still valid JSON
    assert len(result.findings[0].location) < 200  # bounded, however deep


def test_field_rules_and_scan_paths_apply_to_every_duplicate_at_any_depth() -> None:
    profile = Profile(
        "p",
        fields=(FieldRule(compile_path("$..ssn"), "$..ssn", "redact"),),
        scan=(compile_path("$..content"),),
    )
    deep = '{"a":' * 3000 + '{"ssn": "1", "ssn": "2", "content": "x@example.com"}' + "}" * 3000
    result = Masker(profile, KEY).mask_body(deep.encode(), "application/json", "request")
    assert result.body.count(b'"ssn":"[REDACTED:FIELD]"') == 2
    assert b"x@example.com" not in result.body
    shallow = b'{"other": "4111 1111 1111 1111", "content": "4111 1111 1111 1111"}'
    out = json.loads(Masker(profile, KEY).mask_body(shallow, "application/json", "request").body)
    assert out == {"other": CARD, "content": "[REDACTED:CARD]"}


def test_ndjson_is_masked_line_by_line_keeping_line_endings() -> None:
    body = f'{{"a": "x"}}\r\n{{"b": "{ESCAPED_CARD}"}}\nplain jane@example.com\n'.encode()
    for content_type in ("application/x-ndjson", ""):
        result = masker().mask_body(body, content_type, "request")
        lines = result.body.split(b"\n")
        assert lines[0] == b'{"a": "x"}\r'
        assert json.loads(lines[1]) == {"b": "[REDACTED:CARD]"}
        assert lines[2] == b"plain [REDACTED:EMAIL]"


def test_full_width_values_are_masked_in_json() -> None:
    body = json.dumps({"q": wide(CARD), "m": wide("jane@example.com")}).encode()
    result = masker().mask_body(body, "application/json", "request")
    assert_json_clean(result.body)
    assert json.loads(result.body) == {"q": "[REDACTED:CARD]", "m": "[REDACTED:EMAIL]"}


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ('{"q": "4111"}'.encode("utf-16-le"), "application/json"),
        ('{"q": "4111"}'.encode("utf-32"), ""),
        (b'{"q": "+ADQ-111"}', "application/json; charset=utf-7"),
        (b"card", "text/plain; charset=shift_jis"),
    ],
)
def test_charsets_we_cannot_read_as_the_receiver_does_are_refused(
    body: bytes, content_type: str
) -> None:
    with pytest.raises(MaskingError) as caught:
        masker().mask_body(body, content_type, "request")
    assert caught.value.code == "unsupported_charset"


# -- forms ----------------------------------------------------------------------------------------
def test_a_urlencoded_form_is_masked_field_by_field() -> None:
    body = b"a=1&card=4111+1111+1111+1111&m=jane%40example.com&%6aane%40example.com=x&z=%ZZ"
    result = masker().mask_body(body, "application/x-www-form-urlencoded", "request")
    fields = parse_qsl(result.body.decode(), keep_blank_values=True)
    for name, value in fields:
        assert_clean(name)
        assert_clean(value)
    assert fields[:3] == [("a", "1"), ("card", "[REDACTED:CARD]"), ("m", "[REDACTED:EMAIL]")]
    assert result.body.endswith(b"&z=%ZZ")  # untouched fields keep their bytes
    assert {f.location for f in result.findings} == {
        "form[1].value@0",
        "form[2].value@0",
        "form[3].name@0",
    }


def multipart(*parts: tuple[str, bytes], boundary: str = "XyZ") -> bytes:
    out = b"preamble jane@example.com\r\n"
    for headers, content in parts:
        out += f"--{boundary}\r\n{headers}\r\n\r\n".encode() + content + b"\r\n"
    return out + f"--{boundary}--\r\nepilogue 4111 1111 1111 1111\r\n".encode()


def reparsed(body: bytes, boundary: str = "XyZ") -> list[tuple[str, bytes]]:
    head = f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    return [
        (str(part.get("content-disposition", "")), part.get_payload(decode=True) or b"")
        for part in message.iter_parts()  # type: ignore[attr-defined]
    ]


def test_multipart_parts_are_masked_by_their_own_type() -> None:
    body = multipart(
        ('Content-Disposition: form-data; name="q"', f"card {ESCAPED_CARD}".encode()),
        (
            'Content-Disposition: form-data; name="j"\r\nContent-Type: application/json',
            f'{{"a": "{CARD}", "a": 1}}'.encode(),
        ),
        ('Content-Disposition: form-data; name="f"; filename="jane@example.com.txt"', b"hi"),
    )
    result = masker().mask_body(body, "multipart/form-data; boundary=XyZ", "request")
    parts = reparsed(result.body)
    assert len(parts) == 3
    assert parts[0][1] == b"card [REDACTED:CARD]"
    assert_json_clean(parts[1][1])
    assert "jane" not in parts[2][0]
    assert_clean(decoded_text(result.body))
    assert "part[1]:content:$.a@0" in {f.location for f in result.findings}


def test_binary_parts_are_refused_or_passed_as_configured() -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe"
    body = multipart(('Content-Disposition: form-data; name="i"\r\nContent-Type: image/png', png))
    with pytest.raises(MaskingError) as caught:
        masker().mask_body(body, "multipart/form-data; boundary=XyZ", "request")
    assert caught.value.code == "binary_part_refused"
    result = masker().mask_body(
        body, "multipart/form-data; boundary=XyZ", "request", binary_parts="pass"
    )
    assert reparsed(result.body)[0][1] == png
    # Text labelled as binary is read all the same when passing binary parts.
    text = multipart(
        ('Content-Disposition: form-data; name="t"\r\nContent-Type: application/octet-stream',
         CARD.encode())
    )  # fmt: skip
    result = masker().mask_body(
        text, "multipart/form-data; boundary=XyZ", "request", binary_parts="pass"
    )
    assert reparsed(result.body)[0][1] == b"[REDACTED:CARD]"
    encoded = multipart(
        ('Content-Disposition: form-data; name="b"\r\nContent-Transfer-Encoding: base64',
         b"NDExMSAxMTEx")
    )  # fmt: skip
    with pytest.raises(MaskingError):
        masker().mask_body(encoded, "multipart/form-data; boundary=XyZ", "request")


B64_CARD = base64.b64encode(CARD.encode())
MULTIPART = "multipart/form-data; boundary=XyZ"


def refused(body: bytes, content_type: str, **options: Any) -> str:
    """The code ``mask_body`` refuses the body with."""
    with pytest.raises(MaskingError) as caught:
        masker().mask_body(body, content_type, "request", **options)
    return caught.value.code


def test_a_part_that_repeats_a_header_is_refused_whichever_one_a_parser_keeps() -> None:
    body = multipart(
        ('Content-Disposition: form-data; name="b"\r\nContent-Transfer-Encoding: base64\r\n'
         "content-transfer-encoding: 7bit", B64_CARD)
    )  # fmt: skip
    # the receiver keeps the first header, decodes base64 and reads the card
    assert reparsed(body)[0][1] == CARD.encode()
    assert refused(body, MULTIPART) == "malformed_multipart"
    assert refused(body, MULTIPART, binary_parts="pass") == "malformed_multipart"
    for repeated in (
        'Content-Disposition: form-data; name="a"\r\nContent-Disposition: form-data; name="b"',
        'Content-Disposition: form-data; name="a"\r\nContent-Type: text/plain\r\n'
        "CONTENT-TYPE: application/json",
        'X-Note: Content-Disposition: form-data; name="model"\r\n'
        'Content-Disposition: form-data; name="a"',
    ):
        assert refused(multipart((repeated, b"hi")), MULTIPART) == "malformed_multipart"


@pytest.mark.parametrize(
    ("content_type", "boundary"),
    [
        ('multipart/form-data; boundary="B;x"', "B;x"),  # Rack reads B
        ("multipart/form-data; boundary*=utf-8''B", "B"),  # RFC 2231: Python reads B, Rack none
        ("multipart/form-data; boundary=B; boundary=Z", "B"),  # parsers keep either
        ("multipart/form-data; BOUNDARY=Z; boundary=B", "B"),
        ("multipart/form-data; boundary=B; xboundary=Z", "B"),  # Rack reads the last boundary=
        ('multipart/form-data; boundary="B\\"x"', 'B"x'),
        ("multipart/form-data; boundary=B,x", "B,x"),  # Rack reads B
        ("multipart/form-data", "B"),  # no boundary: Rack reads the body as urlencoded
        ("multipart/form-data; boundary=", "B"),
        ('multipart/form-data; boundary="B', "B"),  # unterminated quote
    ],
)
def test_a_boundary_parsers_read_differently_is_refused(content_type: str, boundary: str) -> None:
    body = multipart(
        ('Content-Disposition: form-data; name="b"\r\nContent-Transfer-Encoding: base64',
         B64_CARD),
        boundary=boundary,
    )  # fmt: skip
    assert refused(body, content_type) == "unsupported_content_type"


def test_media_type_parameters_are_read_with_their_quotes() -> None:
    assert media_type('Multipart/Form-Data; boundary="B;x"; a=b') == (
        "multipart/form-data",
        {"boundary": "B;x", "a": "b"},
    )
    assert media_type('text/plain; name="a\\"b"')[1] == {"name": 'a"b'}
    assert checked_media_type("text/plain; charset=utf-8;") == ("text/plain", {"charset": "utf-8"})
    assert checked_media_type("") == ("", {})


def test_a_quoted_semicolon_is_part_of_a_parameter_and_a_quoted_boundary_is_read() -> None:
    body = multipart(('Content-Disposition: form-data; name="q"', CARD.encode()))
    for content_type in (
        'multipart/form-data; boundary="XyZ"',
        'multipart/form-data; note="a;b"; boundary=XyZ',
        "Multipart/Form-Data;BOUNDARY=XyZ",
    ):
        result = masker().mask_body(body, content_type, "request")
        assert reparsed(result.body)[0][1] == b"[REDACTED:CARD]"


def test_a_body_labelled_multipart_without_a_delimiter_is_refused_never_read_as_text() -> None:
    for body in (f"no parts {CARD}".encode(), b"--XyZz\r\n--XyZz--\r\n"):
        assert refused(body, MULTIPART) == "malformed_multipart"
    assert masker().mask_body(b"", MULTIPART, "request").body == b""  # no body, nothing to read


def test_bare_cr_line_endings_are_refused_crlf_and_lf_are_read() -> None:
    cr_only = (
        b'--XyZ\rContent-Disposition: form-data; name="b"\rContent-Transfer-Encoding: base64'
        b"\r\r" + B64_CARD + b"\r--XyZ--\r"
    )
    assert reparsed(cr_only)[0][1] == CARD.encode()  # Python's email parser reads it
    assert refused(cr_only, MULTIPART) == "malformed_multipart"
    # one bare CR before a delimiter is enough to hide a part
    mixed = multipart(
        ('Content-Disposition: form-data; name="a"', b"x\r--XyZ\r\n"
         b'Content-Disposition: form-data; name="b"\r\nContent-Transfer-Encoding: base64\r\n'
         b"\r\n" + B64_CARD),
    )  # fmt: skip
    assert reparsed(mixed)[1][1] == CARD.encode()
    assert refused(mixed, MULTIPART) == "malformed_multipart"
    for stray in (b"x--XyZ\r\ny", b"--XyZ--x", b"--XyZ\rx"):  # the boundary off a delimiter line
        body = multipart(('Content-Disposition: form-data; name="a"', b"a\r\n" + stray))
        assert refused(body, MULTIPART) == "malformed_multipart", stray
    after_close = multipart(('Content-Disposition: form-data; name="a"', b"a")) + b"--XyZ\r\n"
    assert refused(after_close, MULTIPART) == "malformed_multipart"
    lf_only = multipart(('Content-Disposition: form-data; name="q"', CARD.encode())).replace(
        b"\r\n", b"\n"
    )
    result = masker().mask_body(lf_only, MULTIPART, "request")
    assert reparsed(result.body)[0][1] == b"[REDACTED:CARD]"
    assert b"jane" not in result.body
    assert b"4111" not in result.body


@pytest.mark.parametrize(
    "disposition",
    [
        "form-data; name=\"f\"; filename*=UTF-8''jane.doe%40example.com",
        "form-data; name*=UTF-8''4111%201111%201111%201111",
        'form-data; name="f"; filename="=?UTF-8?B?amFuZS5kb2VAZXhhbXBsZS5jb20=?="',
        'form-data; name="f"; filename*0="jane.doe"; filename*1="@example.com"',
        'form-data; name="f"; name="model"',
        'form-data; name="x"; filename="a; name=model"',  # Rack's pattern reads name=model
        'form-data;\r\n name="model"',  # folded
        'form-data; name="f"\r\nnot a header',
        'form-data; name="f"\rContent-Transfer-Encoding: base64',
    ],
)
def test_part_headers_with_encoded_parameters_or_words_are_refused(disposition: str) -> None:
    body = multipart((f"Content-Disposition: {disposition}", b"hi"))
    assert refused(body, MULTIPART) == "malformed_multipart"
    assert refused(body, MULTIPART, binary_parts="pass") == "malformed_multipart"


def test_a_part_content_type_parsers_read_differently_is_refused() -> None:
    for content_type in ("text/plain; charset=utf-8; charset=utf-7", "text/plain, image/png"):
        headers = f'Content-Disposition: form-data; name="a"\r\nContent-Type: {content_type}'
        assert refused(multipart((headers, b"hi")), MULTIPART) == "malformed_multipart"


CARD_ESCAPED = "%34%31%31%31%20%31%31%31%31%20%31%31%31%31%20%31%31%31%31"


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded,text/plain",  # two headers, as Envoy joins them
        "text/plain,application/x-www-form-urlencoded",
        "multipart/form-data; boundary=XyZ,text/plain",
        "application/json, text/plain",
        "text/plain; charset=utf-8; charset=utf-8",
        "text/plain; title*=utf-8''x",
        "text /plain",
    ],
)
def test_a_content_type_holding_more_than_one_reading_is_refused(content_type: str) -> None:
    assert refused(f"card={CARD_ESCAPED}".encode(), content_type) == "unsupported_content_type"


@pytest.mark.parametrize(
    "body",
    [
        f"card={CARD_ESCAPED}",
        "card=4111+1111+1111+1111&m=jane.doe%40example.com",
        f"free text {CARD_ESCAPED} and jane.doe@example.com",
        f"a=1&{CARD_ESCAPED}",
    ],
)
def test_a_body_without_a_content_type_is_masked_as_a_form_and_as_text(body: str) -> None:
    result = masker().mask_body(body.encode(), "", "request")
    text = result.body.decode()
    assert_clean(text)  # a text reader
    for name, value in parse_qsl(text, keep_blank_values=True):  # Rack, which reads a form
        assert_clean(name)
        assert_clean(value)
    assert result.findings


def test_json_without_a_content_type_is_still_read_as_json() -> None:
    body = json.dumps({"a": CARD, "b": "x+y%20z"}).encode()
    result = masker().mask_body(body, "", "request")
    assert json.loads(result.body) == {"a": "[REDACTED:CARD]", "b": "x+y%20z"}
    assert masker().mask_body(b"plain text, nothing", "", "request").changed is False


# -- blocking -------------------------------------------------------------------------------------
def test_block_rules_read_decoded_and_folded_strings_and_every_duplicate() -> None:
    from extproc.masking.profile import BlockRule

    rule = BlockRule("inject", "prompt injection", pattern=re.compile("ignore previous"))
    blocking = Masker(Profile("p", block=(rule,)), KEY)
    for body, content_type in [
        (json.dumps({"q": wide("ignore") + " previous"}).encode(), "application/json"),
        (b'{"q": "ignore previous", "q": "hello"}', "application/json"),
        (b'{"q": "ignore\\u0020previous"}', "text/plain"),
        (b"q=ignore+previous", "application/x-www-form-urlencoded"),
    ]:
        assert blocking.blocked(body, "request", content_type) is not None, body
    assert blocking.blocked(b'{"q": "hello"}', "request", "application/json") is None


def test_block_rules_read_a_body_without_a_content_type_as_a_form_too() -> None:
    from extproc.masking.profile import BlockRule

    rule = BlockRule("inject", "prompt injection", pattern=re.compile("ignore previous"))
    blocking = Masker(Profile("p", block=(rule,)), KEY)
    assert blocking.blocked(b"q=ignore%20previous", "request", "") is not None
    assert blocking.blocked(b"q=ignore+previous", "request", "") is not None
    with pytest.raises(MaskingError):
        blocking.blocked(b"q=hello", "request", "application/x-www-form-urlencoded,text/plain")


# -- properties -----------------------------------------------------------------------------------
keys = st.sampled_from(["a", "b", "jane@example.com", "x"])
values = st.sampled_from([CARD, ESCAPED_CARD, "hello", "jane@example.com", 4111111111111111, 7])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.tuples(keys, values), max_size=4), min_size=1, max_size=3))
def test_no_member_of_any_duplicate_survives_raw(objects: list[list[tuple[str, Any]]]) -> None:
    members = [
        "{" + ",".join(f"{json.dumps(k)}:{_value(v)}" for k, v in pairs) + "}" for pairs in objects
    ]
    body = ("[" + ",".join(members) + "]").encode()
    result = masker().mask_body(body, "application/json", "request")
    assert_json_clean(result.body)


def _value(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def test_nesting_beyond_any_parser_is_read_as_text_or_denied() -> None:
    body = b"[" * 300_000 + b'"4\\u0031\\u00311 1111 1111 1111"' + b"]" * 300_000
    result = masker().mask_body(body, "application/json", "request")
    assert b"4\\u0031" not in result.body
    assert b"[REDACTED:CARD]" in result.body
    with pytest.raises(MaskingError) as caught:
        masker(invalid_json="deny").mask_body(body, "application/json", "request")
    assert caught.value.code == "invalid_json"


def test_json_labelled_as_a_form_is_masked_as_json_and_refused_if_a_form_reader_sees_more() -> None:
    """``curl -d '{...}'`` labels JSON as a form; servers read it as JSON."""
    masker = Masker(Profile("p"), KEY)
    form = "application/x-www-form-urlencoded"
    parts = [{"type": "text", "text": "card 4111 1111"}, {"type": "text", "text": " 1111 1111"}]
    body = json.dumps({"messages": [{"role": "user", "content": parts}]}).encode()
    masked = masker.mask_body(body, form, "request")
    texts = [part["text"] for part in json.loads(masked.body)["messages"][0]["content"]]
    assert "4111 1111 1111 1111" not in "".join(texts)
    clean = b'{"model": "demo", "messages": [{"role": "user", "content": "hi"}]}'
    assert masker.mask_body(clean, form, "request").body == clean  # as sent
    digits = "%34%31%31%31%20%31%31%31%31%20%31%31%31%31%20%31%31%31%31"
    escaped = json.dumps({"content": f"card {digits}"})
    with pytest.raises(MaskingError) as refused:
        masker.mask_body(escaped.encode(), form, "request")
    assert refused.value.code == "unsupported_content_type"
