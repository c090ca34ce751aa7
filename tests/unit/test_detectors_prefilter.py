"""The RE2 prefilter: detectors looking only in their windows find exactly what they find in
the whole text; prose costs one scan and yields no window; ordinary numbers yield nothing."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.masking.detectors import BUILTIN, DETECTOR_NAMES, Span, builtin_detectors, windows
from extproc.masking.detectors.prefilter import WHOLE_TEXT_CHARS
from tests.support.detector_cases import card, found, types

VALUES = [
    "4111 1111 1111 1111",
    card("37", 15),
    "jane.doe@example.com",
    "+44 20 7946 0958",
    "020 7946 0263",
    "(415) 555-0100",
    "123-45-6789",
    "ssn 123456789",
    "DE89 3704 0044 0532 0130 00",
    "203.0.113.7",
    "2001:db8::8a2e:370:7334",
    "00:1a:2b:3c:4d:5e",
    "AB123456C",
    "S1234567D",
    "RSSMRA85T10A562S",
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "AK" + "IAIOSFODNN7EXAMPLE",
    "password = 'Tr0ub4dor&3'",
    "-----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----",
]
FILLER = [
    "the quarterly numbers look fine.",
    "order ORD-2024-000123 shipped on 2024-01-15 at 12:30:45,",
    "version 1.2.3 and build 20240115.7;",
    "total $1,234.56 for 3 items,",
    "ts 1700000000123 uuid 123e4567-e89b-12d3-a456-426614174000",
    "été über naïve café",
    "\n",
]


def resolve(spans: list[Span]) -> list[Span]:
    """The engine's rule: leftmost first, of overlapping candidates the longest."""
    spans.sort(key=lambda span: (span[0], -(span[1] - span[0])))
    out: list[Span] = []
    end = -1
    for span in spans:
        if span[0] >= end:
            out.append(span)
            end = span[1]
    return out


DETECTORS = builtin_detectors(DETECTOR_NAMES)


def in_windows(text: str) -> list[Span]:
    scopes = windows(text)
    spans: list[Span] = []
    for detector in DETECTORS:
        scope = scopes.get(detector.scope)
        if scope is None or scope:
            spans.extend(detector.find(text, scope))
    return resolve(spans)


def everywhere(text: str) -> list[Span]:
    return resolve([span for detector in DETECTORS for span in detector.find(text)])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(VALUES + FILLER), min_size=1, max_size=30))
def test_windows_lose_nothing_the_whole_text_would_yield(parts: list[str]) -> None:
    text = " ".join(parts)
    assert in_windows(text) == everywhere(text)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(VALUES + FILLER), min_size=20, max_size=60))
def test_long_texts_with_non_ascii_characters_keep_their_offsets(parts: list[str]) -> None:
    text = "ü".join(parts)
    assert len(text) > WHOLE_TEXT_CHARS
    assert in_windows(text) == everywhere(text)


def test_prose_gives_no_window_at_all() -> None:
    prose = "The team reviewed the draft and agreed on 3 changes in 2023. " * 40
    scopes = windows(prose)
    assert scopes["all"] is None
    assert all(value == [] for key, value in scopes.items() if key != "all")


def test_every_builtin_scope_is_known_to_the_prefilter() -> None:
    scopes = windows("nothing here")
    assert {detector.scope for detector in BUILTIN.values()} <= set(scopes)


def test_a_value_far_into_a_long_text_is_found() -> None:
    text = "é" * 5000 + " card 4111 1111 1111 1111 " + "x" * 5000
    assert found(text) == [("CARD", "4111 1111 1111 1111")]


order_ids = st.builds(
    lambda prefix, year, n: f"{prefix}-{year}-{n:06d}",
    st.sampled_from(["ORD", "INV", "PO", "SO"]),
    st.integers(2000, 2030),
    st.integers(0, 999_999),
)
dates = (
    st.dates()
    .map(
        lambda d: st.sampled_from(
            [d.isoformat(), d.strftime("%d.%m.%Y"), d.strftime("%m/%d/%Y"), d.strftime("%Y%m%d")]
        )
    )
    .flatmap(lambda s: s)
)
times = st.times().map(lambda t: t.strftime("%H:%M:%S"))
versions = st.lists(st.integers(0, 99), min_size=2, max_size=3).map(
    lambda parts: "v" + ".".join(map(str, parts))
)
amounts = (
    st.decimals(min_value=0, max_value=10_000_000, places=2)
    .map(lambda d: st.sampled_from([f"${d:,}", f"{d} EUR", f"EUR {d}", f"{d:,}".replace(",", " ")]))
    .flatmap(lambda s: s)
)
counts = st.integers(0, 99_999).map(str)
timestamps = (
    st.integers(1_500_000_000, 1_900_000_000)
    .map(lambda s: st.sampled_from([str(s), str(s * 1000)]))
    .flatmap(lambda s: s)
)
ordinary = st.one_of(order_ids, dates, times, versions, amounts, counts, timestamps)


@settings(max_examples=400, deadline=None)
@given(st.lists(ordinary, min_size=1, max_size=8))
def test_order_ids_dates_versions_and_amounts_are_never_findings(parts: list[str]) -> None:
    text = "order " + ", ".join(parts) + " shipped"
    assert types(text) == set()
