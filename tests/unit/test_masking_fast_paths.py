"""The masking engine's shortcuts give exactly what the plain path gives: each one is compared
with the computation it skips or caches, on generated inputs."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import re2
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum import luhn

from extproc.masking import bodies, holdback
from extproc.masking.detectors import Detector, Span, payment, windows
from extproc.masking.detectors.payment import luhn_valid
from extproc.masking.engine import Masker
from extproc.masking.events import EventMasker
from extproc.masking.framing import LineReader
from extproc.masking.profile import Profile
from extproc.masking.results import Finding, new_finding
from extproc.masking.stream import SseMasker
from tests.unit.test_detectors_prefilter import FILLER, VALUES

KEY = b"k" * 32
FULL_WIDTH = {str(digit): chr(0xFF10 + digit) for digit in range(10)}
TOKENIZE = {"EMAIL": "tokenize", "CARD": "tokenize"}
EMPLOYEE = Detector("employee", "EMPLOYEE", re2.compile(r"EMP-\d{6}"), hints=("EMP-",))
PROFILES = {
    "redact": Profile("redact"),
    "tokenize": Profile("tokenize", actions={"request": TOKENIZE, "response": TOKENIZE}),
    "report": Profile("report", mode="report"),
    "custom": Profile("custom", detectors=(*Profile("x").detectors, EMPLOYEE)),
}


def _variant(text: str, how: int) -> str:
    if how == 1:
        return "".join(FULL_WIDTH.get(char, char) for char in text)
    if how == 2:
        return json.dumps(text)[1:-1].replace("@", "\\u0040").replace("1", "\\u0031")
    if how == 3:
        return "\u200b".join(text)
    return text


texts = st.builds(
    lambda parts, how: _variant(" ".join(parts), how),
    st.lists(st.sampled_from([*VALUES, *FILLER, "EMP-123456"]), min_size=1, max_size=12),
    st.integers(0, 3),
)


@settings(max_examples=300, deadline=None)
@given(st.text("0123456789", min_size=1, max_size=40))
def test_luhn_is_stdnums(digits: str) -> None:
    assert luhn_valid(digits) == bool(luhn.is_valid(digits))


def _detect_every_detector(masker: Masker, text: str) -> list[Span]:
    """The dispatch before plans: every detector of the profile, in order, in its windows."""
    found: list[Span] = []
    scopes = windows(text)
    for detector in masker.profile.detectors:
        if detector.hints and not any(hint in text for hint in detector.hints):
            continue
        scope = scopes.get(detector.scope)
        if scope is None or scope:
            found.extend(detector.find(text, scope))
    found.sort(key=lambda span: (span[0], -(span[1] - span[0])))
    resolved: list[Span] = []
    end = -1
    for span in found:
        if span[0] >= end:
            resolved.append(span)
            end = span[1]
    return resolved


@settings(max_examples=200, deadline=None)
@given(texts, st.sampled_from(sorted(PROFILES)))
def test_planned_dispatch_finds_what_every_detector_finds(text: str, profile: str) -> None:
    masker = Masker(PROFILES[profile], KEY)
    assert masker._detect(text) == _detect_every_detector(masker, text)


def _masked(masker: Masker, text: str, direction: str) -> tuple[str, list[Finding]]:
    findings: list[Finding] = []
    return masker.mask_text(text, direction, "loc", findings), findings


@settings(max_examples=200, deadline=None)
@given(st.lists(texts, min_size=1, max_size=4), st.sampled_from(sorted(PROFILES)))
def test_cached_masking_is_fresh_masking(batch: list[str], profile: str) -> None:
    warm = Masker(PROFILES[profile], KEY)
    for _ in range(2):  # the second round reads every cache the first one filled
        for text in batch:
            for direction in ("request", "response"):
                fresh = Masker(PROFILES[profile], KEY)
                assert _masked(warm, text, direction) == _masked(fresh, text, direction)


def test_report_mode_gives_the_callers_own_text_back_from_the_cache() -> None:
    masker = Masker(PROFILES["report"], KEY)
    first = "mail jane.doe@example.com"
    again = "".join(["mail jane.doe@", "example.com"])  # equal, another object
    assert masker.mask_text(first, "request") is first
    assert masker.mask_text(again, "request") is again


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from("0123456789ABCDEFabcdef:.-+@ \t\n\u00a0\u2003\x1c"), max_size=60))
def test_the_number_tail_is_searched_for_whenever_it_can_match(text: str) -> None:
    tail = holdback._NUMBER_TAIL.search(text, max(0, len(text) - holdback.NUMBER_HOLD))
    if tail is not None:
        assert holdback._may_end_in_a_group(text)


def test_a_finding_made_fast_is_a_finding() -> None:
    made = new_finding("EMAIL", "request", "$.to", "redact")
    assert made == Finding("EMAIL", "request", "$.to", "redact")
    assert hash(made) == hash(Finding("EMAIL", "request", "$.to", "redact"))
    with pytest.raises(AttributeError):
        made.type = "CARD"  # type: ignore[misc]


def _lines(chunks: list[bytes]) -> list[tuple[bytes, bytes]]:
    reader = LineReader()
    lines = [line for chunk in chunks for line in reader.feed(chunk)]
    return lines + reader.finish()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80).map(lambda raw: raw.replace(b"\x00", b"\n")), st.data())
def test_line_reader_splits_whole_chunks_as_it_splits_byte_by_byte(raw: bytes, data: Any) -> None:
    cuts = sorted(data.draw(st.sets(st.integers(0, len(raw)), max_size=6)))
    chunks = [raw[low:high] for low, high in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    assert _lines(chunks) == _lines([raw[i : i + 1] for i in range(len(raw))])


def _chat_event(content: str, finish: str | None = None, created: int = 1700000000) -> bytes:
    chunk = {
        "id": "chatcmpl-1",
        "created": created,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def _walk_every_event(self: EventMasker, event: dict[str, Any]) -> Any:
    return self._masker.mask_json_value(event, self._direction, self.findings)


@settings(max_examples=100, deadline=None)
@given(texts, st.lists(st.integers(1, 9), min_size=1, max_size=40), st.sampled_from([0, 1, 2]))
def test_event_shapes_walked_once_give_what_walking_every_event_gives(
    text: str, steps: list[int], shape: int
) -> None:
    events, position = [], 0
    for number, step in enumerate(steps * (len(text) // sum(steps) + 1)):
        if position >= len(text):
            break
        # Some events carry a value outside the delta too (in the id's place: ``created``).
        created = 4111111111111111 if shape == 1 and number % 3 == 0 else 1700000000
        events.append(_chat_event(text[position : position + step], created=created))
        position += step
    events.append(_chat_event("", "stop" if shape == 2 else None))
    masker = Masker(Profile("p"), KEY)

    def run() -> tuple[bytes, list[Finding]]:
        sse = SseMasker(masker, "response")
        out = b"".join(sse.feed(event) for event in events) + sse.finish()
        return out, sse.all_findings()

    cached = run()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(EventMasker, "_masked_whole", _walk_every_event)
        assert run() == cached


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_block_rules_read_the_strings_of_one_walk_in_the_order_of_two(document: Any) -> None:
    strings, members = bodies._strings_and_members(document)
    assert strings == bodies._document_strings(document)
    nodes = bodies._nodes(document)
    assert members == sum(len(node) for node in nodes if isinstance(node, dict))


def _cards_in_one_pass(text: str, run: re.Match[str]) -> list[tuple[int, int]]:
    """The card search inside a digit run as it was before its spans were cached."""
    groups = re.split(r"[ -]", run.group(0))
    starts = [run.start()]
    for group in groups[:-1]:
        starts.append(starts[-1] + len(group) + 1)
    found: list[tuple[int, int]] = []
    first = 0
    while first < len(groups):
        end = payment._longest_card(groups, first)
        if end is None:
            first += 1
            continue
        start, stop = starts[first], starts[end - 1] + len(groups[end - 1])
        if payment._IBAN_BEFORE.search(text, max(0, start - 40), start) is None:
            found.append((start, stop))
        first = end
    return found


digit_groups = st.lists(
    st.sampled_from(["4111", "1111", "411", "4", "37", "3333", "55", "00", "601", "1", "12345"]),
    min_size=1,
    max_size=9,
)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(["", "card ", "DE89 ", "GB82 WEST ", "iban DE89 3704 ", "x" * 45]),
    digit_groups,
    st.sampled_from([" ", "-"]),
)
def test_cached_card_spans_find_what_the_run_search_found(
    before: str, groups: list[str], separator: str
) -> None:
    text = before + separator.join(groups) + " end"
    for run in payment._CARD_RUN.finditer(text):
        cached = [match.span() for match in payment._cards_in(text, run)]
        assert cached == _cards_in_one_pass(text, run)
