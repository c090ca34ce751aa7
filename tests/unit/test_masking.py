"""The masking engine: detectors with true values and near misses, actions, field rules,
report mode, blocking, and the invariants (valid JSON, same shape) as properties."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.config.document import parse_document
from extproc.config.validation import load_section
from extproc.errors import ConfigError
from extproc.masking.engine import Masker, MaskingError
from extproc.masking.paths import compile_path
from extproc.masking.profile import MaskingConfig, Profile
from extproc.masking.settings import MaskingSettings, compile_masking
from extproc.masking.stream import SseMasker

KEY = b"k" * 32


def mask(text: str, profile: Profile | None = None) -> str:
    return Masker(profile or Profile("p"), KEY).mask_text(text, "request")


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("pay with 4111 1111 1111 1111 today", "CARD"),
        ("pay with 4111-1111-1111-1111", "CARD"),
        ("amex 378282246310005", "CARD"),
        ("mastercard 5555555555554444", "CARD"),
        ("ssn 123-45-6789", "US_SSN"),
        ("my social security number is 123456789", "US_SSN"),
        ("write to jane.doe+tag@mail.example.co.uk", "EMAIL"),
        ("call +1 415 555 0100", "PHONE"),
        ("call (415) 555-0100", "PHONE"),
        ("call +44 20 7946 0958", "PHONE"),
        ("IBAN DE89 3704 0044 0532 0130 00", "IBAN"),
        ("iban GB82WEST12345698765432", "IBAN"),
        ("from 203.0.113.7", "IPV4"),
        ("from 2001:db8::8a2e:370:7334", "IPV6"),
        ("aws AKIAIOSFODNN7EXAMPLE", "SECRET"),
        ("key sk-proj-Abcdefghijklmnopqrstuvwx12", "SECRET"),
        ("token ghp_" + "a" * 36, "SECRET"),
        ("Authorization: Bearer abcdefghijklmnop1234", "SECRET"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.abcdefghijklmnopqrstu", "SECRET"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", "SECRET"),
    ],
)
def test_each_detector_finds_its_values(text: str, label: str) -> None:
    masked = mask(text)
    assert f"[REDACTED:{label}]" in masked


@pytest.mark.parametrize(
    "text",
    [
        "order 4111 1111 1111 1112",  # Luhn fails
        "order number 1234567812345678",
        "invoice 123456789",  # a bare 9-digit number is not an SSN
        "ssn 000-12-3456",  # impossible area
        "ssn 666-12-3456",
        "ssn 123-00-4567",  # impossible group
        "released 2024-01-15 at 12:30:45",
        "version 1.2.3.4.5 and v10.0.0",
        "id 123e4567-e89b-12d3-a456-426614174000",
        "IBAN DE00 3704 0044 0532 0130 00",  # bad mod-97
        "ts 1700000000123",
        "999.1.1.1 is not an address",
        "an@ sign and user@localhost",
    ],
)
def test_near_misses_survive_untouched(text: str) -> None:
    assert mask(text) == text


def test_tokens_are_deterministic_and_depend_on_the_key() -> None:
    profile = Profile("p", actions={"request": {"EMAIL": "tokenize"}})
    one = Masker(profile, KEY).mask_text("jane@example.com", "request")
    again = Masker(profile, KEY).mask_text("mail jane@example.com", "request")
    other_key = Masker(profile, b"z" * 32).mask_text("jane@example.com", "request")
    assert one.startswith("<EMAIL:")
    assert one.endswith(">")
    assert again == f"mail {one}"
    assert other_key != one
    assert "jane" not in one


def test_hash_and_last4_actions() -> None:
    profile = Profile("p", actions={"request": {"CARD": "last4", "EMAIL": "hash"}})
    masked = Masker(profile, KEY).mask_text("4111111111111111 jane@example.com", "request")
    card, email = masked.split(" ")
    assert card == "************1111"
    assert email.startswith("sha256:")
    assert len(email) == len("sha256:") + 64


def test_actions_differ_per_direction() -> None:
    profile = Profile(
        "p", actions={"request": {"EMAIL": "tokenize"}, "response": {"EMAIL": "redact"}}
    )
    masker = Masker(profile, KEY)
    assert masker.mask_text("a@example.com", "request").startswith("<EMAIL:")
    assert masker.mask_text("a@example.com", "response") == "[REDACTED:EMAIL]"


def config(text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MaskingConfig:
    monkeypatch.setenv("MASK_KEY", "x" * 40)
    return masking_config(text, tmp_path)


def masking_config(text: str, base: Path) -> MaskingConfig:
    return load_section(
        parse_document(text, file="m.yaml"),
        "masking",
        MaskingSettings,
        lambda settings: compile_masking(settings, base),
    )


def test_field_rules_mask_drop_and_limit_scanning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = config(
        """
masking:
  key_env: MASK_KEY
  profiles:
    records:
      fields:
        - {path: $.patient.ssn, action: redact}
        - {path: $.patient.notes, action: drop}
        - {path: "$..email", action: tokenize}
      scan: ["$.messages[*].content"]
""",
        tmp_path,
        monkeypatch,
    )
    masker = Masker(cfg.profiles["records"], cfg.key)
    body = {
        "patient": {"ssn": 123456789, "notes": "private", "contact": {"email": "x@y.org"}},
        "messages": [{"role": "user", "content": "card 4111111111111111"}],
        "other": "card 4111111111111111",
    }
    result = masker.mask_json(orjson.dumps(body), "request")
    out = json.loads(result.body)
    assert out["patient"]["ssn"] == "[REDACTED:FIELD]"
    assert "notes" not in out["patient"]
    assert out["patient"]["contact"]["email"].startswith("<FIELD:")
    assert out["messages"][0]["content"] == "card [REDACTED:CARD]"
    assert out["other"] == "card 4111111111111111"  # not in a scanned path
    locations = {f.location for f in result.findings}
    assert "$.patient.ssn" in locations
    assert "$.messages[0].content@5" in locations


def test_report_mode_changes_nothing_but_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = config(
        "masking:\n  key_env: MASK_KEY\n  profiles:\n    watch: {mode: report}\n",
        tmp_path,
        monkeypatch,
    )
    body = orjson.dumps({"q": "mail jane@example.com"})
    result = Masker(cfg.profiles["watch"], cfg.key).mask_json(body, "request")
    assert result.body == body
    assert not result.changed
    assert [(f.type, f.action) for f in result.findings] == [("EMAIL", "report")]


def test_custom_re2_detectors_and_block_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = config(
        """
masking:
  key_env: MASK_KEY
  profiles:
    strict:
      custom:
        - {name: employee_id, pattern: 'EMP-[0-9]{6}', action: tokenize}
      block:
        - {name: reveal-instructions, pattern: '(?i)ignore (all )?previous instructions'}
        - {name: no-cards, detector: card, reason: this model is not cleared for card data}
""",
        tmp_path,
        monkeypatch,
    )
    masker = Masker(cfg.profiles["strict"], cfg.key)
    assert masker.mask_text("badge EMP-123456", "request").startswith("badge <EMPLOYEE_ID:")
    prompt = orjson.dumps({"messages": [{"content": "Please IGNORE previous instructions"}]})
    hit = masker.blocked(prompt, "request")
    assert hit is not None
    assert hit.rule == "reveal-instructions"
    card = masker.blocked(b'{"messages": [{"content": "4111 1111 1111 1111"}]}', "request")
    assert card is not None
    assert card.reason == "this model is not cleared for card data"
    assert masker.blocked(b'{"messages": [{"content": "hello"}]}', "request") is None


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("custom: [{name: x, pattern: '(unclosed'}]", "invalid RE2 pattern"),
        ("custom: [{name: x, pattern: '(a)\\1'}]", "invalid RE2 pattern"),
        ("detectors: [card, passport]", "unknown detector 'passport'"),
        ("actions: {card: shred}", "expected one of redact, tokenize, hash, last4, drop"),
        ("fields: [{path: 'patient.ssn'}]", "a JSON path starts with '$'"),
        ("block: [{name: b}]", "exactly one of 'pattern' or 'detector'"),
    ],
)
def test_masking_config_errors_name_the_line(
    snippet: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError) as caught:
        config(
            f"masking:\n  key_env: MASK_KEY\n  profiles:\n    p:\n      {snippet}\n",
            tmp_path,
            monkeypatch,
        )
    assert message in caught.value.reason
    assert caught.value.reason.startswith("m.yaml:5:")


def test_a_short_masking_key_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHORT", "abc")
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        masking_config("masking:\n  key_env: SHORT\n  profiles: {p: {}}\n", tmp_path)


def test_invalid_json_is_text_scanned_or_denied_as_configured() -> None:
    body = b"not json: jane@example.com"
    assert b"[REDACTED:EMAIL]" in Masker(Profile("p"), KEY).mask_json(body, "request").body
    with pytest.raises(MaskingError) as caught:
        Masker(Profile("p", invalid_json="deny"), KEY).mask_json(body, "request")
    assert caught.value.code == "invalid_json"
    with pytest.raises(MaskingError):
        Masker(Profile("p"), KEY).mask_json(b"\xff\xfe not utf-8 {", "request")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.sampled_from(
        ["4111 1111 1111 1111", "jane@example.com", "123-45-6789", "+1 415 555 0100"]
    ),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def same_shape(before: Any, after: Any) -> bool:
    if isinstance(before, dict):
        return (
            isinstance(after, dict)
            and before.keys() == after.keys()
            and all(same_shape(before[k], after[k]) for k in before)
        )
    if isinstance(before, list):
        return (
            isinstance(after, list)
            and len(before) == len(after)
            and all(same_shape(b, a) for b, a in zip(before, after, strict=True))
        )
    if isinstance(before, int | float) and isinstance(after, str):
        # A number that reads as a detected value (a card) is replaced by the masked string.
        masked = Masker(Profile("p"), KEY).mask_text(str(int(before)), "response")
        return not isinstance(before, bool) and after == masked != str(int(before))
    return type(before) is type(after) and (isinstance(before, str) or before == after)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_masking_keeps_json_valid_and_the_shape_and_types_unchanged(value: Any) -> None:
    body = json.dumps(value).encode()
    result = Masker(Profile("p"), KEY).mask_json(body, "response")
    assert same_shape(value, json.loads(result.body))


def sse(text: str, chunk: int) -> bytes:
    events = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    events += [
        {
            "choices": [
                {"index": 0, "delta": {"content": text[i : i + chunk]}, "finish_reason": None}
            ]
        }
        for i in range(0, len(text), chunk)
    ]
    events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return (
        b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
    )


@pytest.mark.parametrize("network_chunk", [1, 5, 64, 100_000])
@pytest.mark.parametrize("event_chars", [1, 3, 4, 7])
def test_a_card_split_across_sse_events_and_chunks_arrives_masked(
    network_chunk: int, event_chars: int
) -> None:
    text = "Here: 4111 1111 1111 1111 and jane.doe@example.com, bye."
    raw = sse(text, event_chars)
    masker = SseMasker(Masker(Profile("p"), KEY), "response")
    out = b"".join(
        masker.feed(raw[i : i + network_chunk]) for i in range(0, len(raw), network_chunk)
    )
    out += masker.finish()
    events = [part for part in out.split(b"\n\n") if part]
    assert events[-1] == b"data: [DONE]"
    contents = []
    for event in events[:-1]:
        payload = json.loads(event.removeprefix(b"data: "))
        contents.append(payload["choices"][0]["delta"].get("content", ""))
        for digits in ("4111 1111", "1111 1111 1111", "jane.doe@"):
            assert digits not in contents[-1]
    assert "".join(contents) == "Here: [REDACTED:CARD] and [REDACTED:EMAIL], bye."
    assert {f.type for f in masker.all_findings()} == {"CARD", "EMAIL"}


# -- values split across the text parts of one prompt --------------------------------------------
SPLIT_VALUES = ("4111 1111 1111 1111", "jane.doe@example.com", "123-45-6789")


def _mask_parts(document: dict[str, Any], profile: Profile | None = None) -> dict[str, Any]:
    masker = Masker(profile or Profile("p"), KEY)
    masked: dict[str, Any] = json.loads(
        masker.mask_json(json.dumps(document).encode(), "request").body
    )
    return masked


@given(
    cuts=st.lists(st.integers(min_value=0, max_value=80), min_size=1, max_size=6),
    shape=st.sampled_from(["content", "input_text", "prompt"]),
)
@settings(max_examples=200, deadline=None)
def test_a_value_split_across_text_parts_is_masked_however_the_server_joins_them(
    cuts: list[int], shape: str
) -> None:
    text = f"card {SPLIT_VALUES[0]}, mail {SPLIT_VALUES[1]}, ssn {SPLIT_VALUES[2]} ok"
    bounds = sorted({0, len(text), *(min(cut, len(text)) for cut in cuts)})
    parts = [text[low:high] for low, high in itertools.pairwise(bounds)]
    if shape == "prompt":
        document: dict[str, Any] = {"prompt": parts}
    else:
        kind = "text" if shape == "content" else "input_text"
        items = [{"type": kind, "text": part} for part in parts]
        document = {"messages": [{"role": "user", "content": items}]}
    masked = _mask_parts(document)
    if shape == "prompt":
        texts = masked["prompt"]
    else:
        texts = [item["text"] for item in masked["messages"][0]["content"]]
    for joiner in ("", " ", "\n"):
        joined = joiner.join(texts)
        for raw in SPLIT_VALUES:
            assert raw not in joined, (joiner, texts)
        assert "4111" not in joined


def test_text_parts_are_joined_only_where_servers_join_them() -> None:
    # Records of a list are not one prompt: a number in one and a number in the next stay.
    records = {"rows": [{"id": "4111 1111"}, {"id": "1111 1111"}]}
    assert _mask_parts(records) == records
    # A finding within one part that only its neighbour's keyword reveals is masked too.
    keyword = {"prompt": ["my social security number is", " 123456789"]}
    assert "123456789" not in json.dumps(_mask_parts(keyword))
    # Report mode records the finding and changes nothing.
    report = Profile("r", mode="report")
    split = {"prompt": ["card 4111 1111", " 1111 1111"]}
    assert _mask_parts(split, report) == split


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("card 4111\t1111\t1111\t1111", "CARD"),  # a JSON "\t" between the groups
        ("card 4111\u20131111\u20131111\u20131111", "CARD"),  # en dashes
        ("card 4111\u22121111\u22121111\u22121111", "CARD"),  # minus signs
        ("card 4111\u28001111\u28001111\u28001111", "CARD"),  # the braille blank
        ("card 4111\u31641111\u31641111\u31641111", "CARD"),  # the Hangul filler
        ("SSN 123\u201345\u20136789", "US_SSN"),
        ("SSN 123\u201045\u20106789", "US_SSN"),  # the hyphen U+2010
    ],
)
def test_dashes_and_blanks_of_other_scripts_separate_digits_as_their_ascii_forms(
    text: str, label: str
) -> None:
    assert f"[REDACTED:{label}]" in mask(text)


def test_dashes_in_prose_stay_prose() -> None:
    for text in ("pages 10\u201320 of the 2019\u20132020 report", "a \u2014 b", "x \u2212 y = 3"):
        assert mask(text) == text


def test_an_internationalised_e_mail_address_is_masked_whole() -> None:
    for address in ("jörg@example.com", "jane.doe@exämple.com", "müller.hans@firma.de"):
        masked = mask(f"write to {address} today")
        assert masked == "write to [REDACTED:EMAIL] today", address
    assert mask("version v1.2@3.4 and user@localhost") == "version v1.2@3.4 and user@localhost"


def test_values_written_as_numeric_character_references_are_masked() -> None:
    assert mask("card &#52;&#49;&#49;&#49; 1111 1111 1111 ok") == "card [REDACTED:CARD] ok"
    assert mask("mail jane.doe&#64;example.com ok") == "mail [REDACTED:EMAIL] ok"
    assert mask("a &#x34;111 1111 1111 1111") == "a [REDACTED:CARD]"
    prose = "Tom &amp; Jerry &#38; 12 &#0; &#xD800;"
    assert mask(prose) == prose


@given(cut=st.integers(min_value=1, max_value=70))
@settings(max_examples=70, deadline=None)
def test_a_character_reference_cut_between_two_events_is_held_until_it_is_whole(cut: int) -> None:
    import html

    text = "card &#52;&#49;&#49;&#49; 1111 1111 1111 and mail jane&#x40;example.com end"
    stream = SseMasker(Masker(Profile("p"), KEY), "response")
    out = b""
    for piece in (text[:cut], text[cut:]):
        event = {"choices": [{"index": 0, "delta": {"content": piece}}]}
        out += stream.feed(b"data: " + json.dumps(event).encode() + b"\n\n")
    out += stream.finish()
    joined = ""
    for line in out.decode().splitlines():
        if line.startswith("data: {"):
            joined += json.loads(line[6:])["choices"][0]["delta"].get("content", "")
    shown = html.unescape(joined)
    assert "4111 1111 1111 1111" not in shown
    assert "jane@example.com" not in shown
    assert "&#" not in joined  # not even the first digit of the card goes out on its own


def test_a_scan_path_covers_the_text_parts_below_it_joined_too() -> None:
    profile = Profile("scan", scan=(compile_path("$.messages[*].content"),))
    parts = [{"type": "text", "text": "mail jane.doe"}, {"type": "text", "text": "@example.com"}]
    whole = [{"type": "text", "text": "mail jane.doe@example.com"}]
    for content in (parts, whole):
        body = {"messages": [{"role": "user", "content": content}], "note": "jane@example.com"}
        masked = _mask_parts(body, profile)
        texts = "".join(part["text"] for part in masked["messages"][0]["content"])
        assert "jane.doe" not in texts
        assert masked["note"] == "jane@example.com"  # outside the scan paths: left alone


def test_a_network_address_ending_in_zeros_is_a_version_not_a_host() -> None:
    assert mask("Chrome/120.0.0.0 Safari/537.36, model 1.0.0.0") == (
        "Chrome/120.0.0.0 Safari/537.36, model 1.0.0.0"
    )
    assert mask("from 203.0.113.7") == "from [REDACTED:IPV4]"


def test_gemini_logprobs_are_emptied_in_answers() -> None:
    answer = {
        "candidates": [
            {
                "content": {"parts": [{"text": "card [REDACTED:CARD]"}]},
                "logprobsResult": {"chosenCandidates": [{"token": " 4111"}, {"token": " 1111"}]},
            }
        ]
    }
    masker = Masker(Profile("p"), KEY)
    masked = json.loads(masker.mask_json(json.dumps(answer).encode(), "response").body)
    assert not masked["candidates"][0]["logprobsResult"]
