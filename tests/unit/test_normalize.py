"""The detection view: what a receiver decodes (escapes, compatibility forms, invisible marks)
maps back to whole original characters, so masking replaces exactly what encoded a value."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.masking.engine import Masker
from extproc.masking.normalize import fold, view
from extproc.masking.profile import Profile

KEY = b"k" * 32


def wide(text: str) -> str:
    """The full-width form of ASCII text (what NFKC folds back)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


CARD = "4111 1111 1111 1111"
ARABIC_INDIC_CARD = CARD.translate({ord(d): 0x0660 + int(d) for d in "0123456789"})


def masked(text: str) -> str:
    return Masker(Profile("p"), KEY).mask_text(text, "request")


def test_plain_ascii_is_its_own_view() -> None:
    seen = view("pay 4111 1111 1111 1111")
    assert seen.text == "pay 4111 1111 1111 1111"
    assert seen.maps == ()


@pytest.mark.parametrize(
    "text",
    [
        "card 4\\u0031\\u00311 1111 1111 1111 ok",  # JSON escapes in text
        "card \\u0034\\u0031\\u0031\\u0031\\u0020\\u0031111 1111 1111 ok",
        "card " + wide("4111 1111 1111 1111") + " ok",  # full-width (NFKC)
        "card " + wide("4111") + "\u30001111 1111 1111 ok",  # an ideographic space
        "card \\uff14111 1111 1111 1111 ok",  # an escaped full-width digit
        "card " + ARABIC_INDIC_CARD + " ok",
        "card 4\u200b111 1111 1111 1111 ok",  # a zero-width space inside
        "card 4\ufe0f\u20e3111 1111 1111 1111 ok",  # a keycap
        "card 4\U000e0031\U000e0031\U000e0031 1111 1111 1111 ok",  # invisible tag digits
        "card \U0001d7d2111 1111 1111 1111 ok",  # mathematical bold four
    ],
)
def test_a_card_is_found_however_it_is_encoded_and_replaced_whole(text: str) -> None:
    out = masked(text)
    assert out == "card [REDACTED:CARD] ok"


def test_an_email_with_full_width_at_and_dots_is_found() -> None:
    assert (
        masked("mail jane" + wide("@") + "example" + wide(".") + "com now")
        == "mail [REDACTED:EMAIL] now"
    )


def test_a_lone_surrogate_escape_reads_as_a_replacement_character() -> None:
    seen = view("a\\ud800b\\ud83d\\ude00c")
    assert seen.text == "a\ufffdb\U0001f600c"
    assert seen.original(3, 4) == (8, 20)  # the pair maps back to both escapes


def test_spans_map_back_to_whole_characters() -> None:
    text = "x " + wide("41") + " y"
    seen = view(text)
    assert seen.text == "x 41 y"
    start, end = seen.original(2, 3)
    assert text[start:end] == wide("4")


def test_tokens_are_the_same_for_every_encoding_of_a_value() -> None:
    profile = Profile("p", actions={"request": {"CARD": "tokenize"}})
    masker = Masker(profile, KEY)
    plain = masker.mask_text(CARD, "request")
    assert masker.mask_text(wide("4111 1111 1111 1111"), "request") == plain
    assert masker.mask_text("4\\u0031\\u00311 1111 1111 1111", "request") == plain


def test_accented_and_cjk_prose_needs_no_changes() -> None:
    for text in ("café déjà vu", "東京で会いましょう", "Ελληνικά"):
        assert fold(text) == text


pieces = st.sampled_from(
    [
        CARD,
        wide("4111 1111 1111 1111"),
        "jane@example.com",
        wide("jane@example.com"),
        "\\u0034",
        wide("4"),
    ]
)
# Letters and punctuation of any script between the values (digits next to a card would make
# it another number, which is the detectors' business, not the view's).
filler = st.text(alphabet=st.characters(categories=("L", "P", "Zs", "Mn", "Cf")), max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(filler, pieces), max_size=4), filler)
def test_the_masked_output_folds_to_no_raw_value(parts: list[tuple[str, str]], tail: str) -> None:
    text = "".join(f"{before} {piece} " for before, piece in parts) + tail
    out = masked(text)
    decoded = unicodedata.normalize("NFKC", view(out).text)
    assert "4111 1111 1111 1111" not in decoded
    assert "jane@example.com" not in decoded
