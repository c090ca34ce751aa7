"""Every masking operator, both directions, from code and from the config (both forms), and the
config's errors with file:line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from extproc.config.document import parse_document
from extproc.config.validation import load_section
from extproc.errors import ConfigError
from extproc.masking.engine import Masker
from extproc.masking.operators import Operator
from extproc.masking.profile import ActionSpec, MaskingConfig, Profile
from extproc.masking.settings import MaskingSettings, compile_masking

KEY = b"k" * 32
CARD = "4111 1111 1111 1111"


def masked(
    action: ActionSpec, direction: str, text: str = f"card {CARD} ok", read: str = ""
) -> str:
    """``text`` read in ``read`` (default: ``direction``) by a profile that gives cards
    ``action`` in ``direction``."""
    profile = Profile("p", actions={direction: {"CARD": action}})
    return Masker(profile, KEY).mask_text(text, read or direction)


@pytest.mark.parametrize("direction", ["request", "response"])
@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("redact", "card [REDACTED:CARD] ok"),
        ("last4", "card ***************1111 ok"),
        ("drop", "card [REDACTED:CARD] ok"),  # a value inside text cannot be dropped
        ("keep", f"card {CARD} ok"),
        ("mask", "card ******************* ok"),
        (Operator("mask", chars_to_mask=12), "card ************11 1111 ok"),
        (Operator("mask", chars_to_mask=4, masking_char="#", from_end=True),
         "card 4111 1111 1111 #### ok"),
        (Operator("mask", chars_to_mask=99, masking_char="x"), "card xxxxxxxxxxxxxxxxxxx ok"),
        ("replace", "card <CARD> ok"),
        (Operator("replace", new_value="<a card>"), "card <a card> ok"),
    ],
)  # fmt: skip
def test_each_operator_in_each_direction(action: ActionSpec, expected: str, direction: str) -> None:
    assert masked(action, direction) == expected
    other = "request" if direction == "response" else "response"
    assert masked(action, direction, read=other) == "card [REDACTED:CARD] ok"  # the default


@pytest.mark.parametrize("direction", ["request", "response"])
def test_tokenize_and_hash_are_keyed_and_stable(direction: str) -> None:
    token = masked("tokenize", direction, CARD)
    assert token.startswith("<CARD:")
    assert len(token) == len("<CARD:>") + 16
    assert masked("tokenize", direction, CARD) == token
    digest = masked("hash", direction, CARD)
    assert digest.startswith("sha256:")
    assert len(digest) == len("sha256:") + 64


def test_keep_still_counts_the_finding() -> None:
    findings: list[object] = []
    profile = Profile("p", actions={"request": {"CARD": "keep"}})
    out = Masker(profile, KEY).mask_text(CARD, "request", findings=findings)  # type: ignore[arg-type]
    assert out == CARD
    assert [(f.type, f.action) for f in findings] == [("CARD", "keep")]  # type: ignore[attr-defined]


def test_operators_apply_to_json_values_and_numbers() -> None:
    profile = Profile("p", default_action=Operator("replace", new_value="<x>"))
    body = json.dumps({"n": 4111111111111111, "s": CARD}).encode()
    result = Masker(profile, KEY).mask_body(body, "application/json", "request")
    assert json.loads(result.body) == {"n": "<x>", "s": "<x>"}
    assert {f.action for f in result.findings} == {"replace"}


CONFIG = """masking:
  key_env: MK
  profiles:
    p:
      actions:
        default: {replace: "<hidden>"}
        card: {mask: {chars_to_mask: 12, masking_char: "#", from_end: false}}
        email: {replace: "<email>"}
        phone: {replace: {new_value: "<tel>"}}
        ipv4: keep
        us_ssn: tokenize
      response_actions:
        card: mask
      fields:
        - {path: $.secret, action: {replace: "<field>"}}
"""


def load(text: str, monkeypatch: pytest.MonkeyPatch) -> MaskingConfig:
    monkeypatch.setenv("MK", "x" * 40)
    return load_section(
        parse_document(text, file="m.yaml"),
        "masking",
        MaskingSettings,
        lambda settings: compile_masking(settings, Path(".")),
    )


def test_the_config_takes_names_and_operators_with_parameters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = load(CONFIG, monkeypatch)
    masker = Masker(config.profiles["p"], config.key)
    text = f"{CARD}, a.b@example.com, call +1 415 555 0100, 203.0.113.7, ssn 123-45-6789, iban"
    out = masker.mask_text(text + " DE89 3704 0044 0532 0130 00", "request").split(", ")
    assert out[:5] == ["############11 1111", "<email>", "call <tel>", "203.0.113.7", out[4]]
    assert out[4].startswith("ssn <US_SSN:")
    assert out[5] == "iban <hidden>"
    assert masker.mask_text(CARD, "response") == "*" * len(CARD)
    body = masker.mask_body(b'{"secret": 42}', "application/json", "request").body
    assert json.loads(body) == {"secret": "<field>"}


@pytest.mark.parametrize(
    ("action", "problem"),
    [
        ("{mask: {chars_to_mask: 0}}", "m.yaml:7: masking.profiles.p.actions.card.mask."
         "chars_to_mask: must be at least 1, got 0"),
        ("{mask: {masking_char: '**'}}", "m.yaml:7: masking.profiles.p.actions.card.mask."
         "masking_char: expected one character"),
        ("{mask: {frm_end: true}}", "m.yaml:7: masking.profiles.p.actions.card.mask: unknown "
         "key 'frm_end'"),
        ("{replace: 3}", "m.yaml:7: masking.profiles.p.actions.card.replace: expected the text "
         "written instead, or a mapping {new_value: TEXT}"),
        ("redcat", "m.yaml:7: masking.profiles.p.actions.card: expected one of redact, tokenize,"
         " hash, last4, drop, mask, replace, keep, got 'redcat'"),
        ("{maks: {}}", "m.yaml:7: masking.profiles.p.actions.card: expected an action (redact,"),
        ("{mask: {}, replace: x}", "m.yaml:7: masking.profiles.p.actions.card: expected an action"),
        ("12", "m.yaml:7: masking.profiles.p.actions.card: expected an action"),
    ],
)  # fmt: skip
def test_a_bad_action_is_one_clear_problem_at_its_line(
    action: str, problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = CONFIG.replace(
        'card: {mask: {chars_to_mask: 12, masking_char: "#", from_end: false}}', f"card: {action}"
    )
    with pytest.raises(ConfigError) as caught:
        load(text, monkeypatch)
    problems = str(caught.value).splitlines()
    assert len([p for p in problems if "actions.card" in p]) == 1
    assert any(p.startswith(problem) for p in problems), problems


def test_restored_is_not_a_custom_detector_name(monkeypatch: pytest.MonkeyPatch) -> None:
    text = CONFIG + "      custom:\n        - {name: restored, pattern: 'R-[0-9]+'}\n"
    with pytest.raises(ConfigError, match=r"custom\[0\]\.name: 'restored' is reserved"):
        load(text, monkeypatch)
