"""Streams that once let a value through: data lines without event delimiters, events larger
than the buffering cap, secrets longer than the hold, event streams labelled as something
else. Each is checked by reassembling what the client gets as clients do: SSE data lines
joined with a newline (the spec) and with nothing (line-by-line readers), deltas per dialect."""

from __future__ import annotations

import base64
import json
import re
import unicodedata
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.decision import Decision
from extproc.exchange.machine import Exchange
from extproc.masking.engine import Masker
from extproc.masking.profile import MaskingConfig, Profile
from extproc.masking.stream import SseMasker, sniff_stream, stream_masker, streamed_kind
from extproc.masking.textstream import TextStreamMasker

KEY = b"k" * 32
MASKER = Masker(Profile("p"), KEY)
CARD = "4111 1111 1111 1111"
SECRET_TEXT = f"card {CARD}, mail jane.doe@example.com, ssn 123-45-6789 ok"


def masked(text: str) -> str:
    return MASKER.mask_text(text, "response")


def exposed(text: str) -> bool:
    """What a reader would take for the value: digits with any separators, the address."""
    flat = re.sub(r"[\s\-+.,/_]", "", unicodedata.normalize("NFKC", text))
    return (
        "4111111111111111" in flat
        or "123456789" in flat
        or "jane.doe@example.com" in text
        or "janedoe@examplecom" in flat
    )


def run(stream: Any, raw: bytes, chunk: int) -> bytes:
    out = b"".join(stream.feed(raw[i : i + chunk]) for i in range(0, len(raw), chunk))
    return out + stream.finish()


def data_readings(out: bytes) -> tuple[str, str]:
    """The stream's text as a line-by-line reader gets it (every data line, concatenated) and
    as the spec reads it (an event's lines joined by newlines, events concatenated)."""
    lines: list[str] = []
    events: list[str] = []
    current: list[str] = []
    for line in out.decode().replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not line:
            if current:
                events.append("\n".join(current))
            current = []
            continue
        field, _, value = line.partition(":")
        if field == "data":
            value = value.removeprefix(" ")
            lines.append(value)
            current.append(value)
    if current:
        events.append("\n".join(current))
    return "".join(lines), "".join(events)


def events_of(out: bytes) -> list[Any]:
    found = []
    for block in out.replace(b"\r\n", b"\n").split(b"\n\n"):
        data = [line[5:].removeprefix(b" ") for line in block.split(b"\n") if line[:5] == b"data:"]
        if data and data != [b"[DONE]"]:
            found.append(json.loads(b"\n".join(data)))
    return found


# -- 1. data lines without blank lines -----------------------------------------------------------
def undelimited(text: str, size: int, end: bytes = b"\n") -> bytes:
    return b"".join(
        b"data: " + text[i : i + size].encode() + end for i in range(0, len(text), size)
    )


@pytest.mark.parametrize("size", [1, 2, 3, 5])
@pytest.mark.parametrize("cap", [64 * 1024, 40])
def test_data_lines_without_delimiters_expose_nothing_joined_either_way(
    size: int, cap: int
) -> None:
    raw = undelimited(SECRET_TEXT, size)
    out = run(SseMasker(MASKER, "response", max_event_bytes=cap), raw, 7)
    concatenated, spec = data_readings(out)
    assert not exposed(concatenated), concatenated
    assert not exposed(spec), spec
    assert concatenated.replace("\n", "") == masked(SECRET_TEXT)


def test_an_endless_undelimited_stream_is_masked_as_it_comes() -> None:
    stream = SseMasker(MASKER, "response", max_event_bytes=4096)
    text = SECRET_TEXT + " " + "Nothing to see here. " * 2000
    raw = undelimited(text, 2)
    sent = b""
    for i in range(0, len(raw), 512):
        sent += stream.feed(raw[i : i + 512])
        if i > 16_384:
            assert i - len(sent) < 8192  # bounded: the cap, then only a value's tail
    sent += stream.finish()
    concatenated, spec = data_readings(sent)
    assert not exposed(concatenated)
    assert not exposed(spec)
    assert concatenated == masked(text)


def test_a_long_data_line_after_the_cap_streams_through_the_same_text() -> None:
    # The card starts in short lines and ends in a line far longer than the cap.
    text = "x " * 30 + "card 4111 1111 "
    raw = undelimited(text, 3) + b"data: 1111 1111 " + b"y " * 5000 + b"\n\n"
    out = run(SseMasker(MASKER, "response", max_event_bytes=200), raw, 64)
    concatenated, spec = data_readings(out)
    assert not exposed(concatenated)
    assert not exposed(spec)
    assert concatenated == masked(text + "1111 1111 " + "y " * 5000)


def test_a_key_block_over_short_data_lines_is_masked_in_linear_time() -> None:
    import time

    lines = [
        "-----BEGIN RSA PRIVATE KEY-----",
        *["A" * 64] * 234,
        "-----END RSA PRIVATE KEY----- ok",
    ]
    raw = b"".join(undelimited(line, 2) for line in lines)
    started = time.process_time()
    out = run(SseMasker(MASKER, "response"), raw, 64)
    assert time.process_time() - started < 1.5  # mapping the joined reading by list: ~2.4 s
    concatenated, spec = data_readings(out)
    assert concatenated == "[REDACTED:SECRET] ok"
    assert "AAAA" not in spec.replace("\n", "")


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["ok", "card", CARD, "jane.doe@example.com", "ssn 123-45-6789"]),
            st.sampled_from([", ", " and ", "; "]),
        )
    ).map(lambda parts: "".join(part + separator for part, separator in parts)),
    st.integers(1, 6),
    st.sampled_from([b"\n", b"\r\n", b"\r"]),
    st.integers(1, 40),
    st.sampled_from([64 * 1024, 24]),
)
def test_undelimited_lines_cut_anywhere_never_reassemble_a_value(
    text: str, size: int, end: bytes, chunk: int, cap: int
) -> None:
    text += "end"
    out = run(
        SseMasker(MASKER, "response", max_event_bytes=cap), undelimited(text, size, end), chunk
    )
    concatenated, spec = data_readings(out)
    for value in (CARD, "jane.doe@example.com", "123-45-6789"):
        for reading in (concatenated, spec.replace("\n", "")):
            assert value.replace(" ", "") not in reading.replace(" ", ""), reading


# -- 2. events larger than the cap ---------------------------------------------------------------
BIG = 70_000


def dialect_events(kind: str, texts: list[str]) -> bytes:
    out = b""
    for text in texts:
        if kind == "chat":
            event: Any = {"id": "c", "choices": [{"index": 0, "delta": {"content": text},
                                                  "finish_reason": None}]}  # fmt: skip
        elif kind == "tools":
            call = {"index": 0, "function": {"arguments": text}}
            event = {"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]}
        elif kind == "responses":
            event = {"type": "response.output_text.delta", "item_id": "m", "output_index": 0,
                     "content_index": 0, "delta": text, "sequence_number": 3}  # fmt: skip
        elif kind == "anthropic":
            event = {"type": "content_block_delta", "index": 0,
                     "delta": {"type": "text_delta", "text": text}}  # fmt: skip
        else:
            out += b"data: " + text.encode() + b"\n\n"
            continue
        name = b"event: " + event["type"].encode() + b"\n" if "type" in event else b""
        out += name + b"data: " + json.dumps(event).encode() + b"\n\n"
    return out


def dialect_text(kind: str, out: bytes) -> str:
    if kind == "plain":
        return data_readings(out)[1]
    text = ""
    for event in events_of(out):
        if kind == "chat":
            text += event["choices"][0]["delta"].get("content", "")
        elif kind == "tools":
            text += event["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
        elif kind == "responses":
            text += event["delta"]
        else:
            text += event["delta"]["text"]
    return text


DIALECTS = ["chat", "tools", "responses", "anthropic", "plain"]


@pytest.mark.parametrize("kind", DIALECTS)
@pytest.mark.parametrize("chunk", [1000, 16_384, 100_000])
def test_a_value_across_an_oversized_event_and_the_next_is_masked(kind: str, chunk: int) -> None:
    texts = ["A" * (BIG - 10) + " card 4111 1111", " 1111 1111 end"]
    out = run(SseMasker(MASKER, "response"), dialect_events(kind, texts), chunk)
    got = dialect_text(kind, out)
    assert not exposed(got[-300:]), got[-300:]
    assert got == masked("".join(texts))


@pytest.mark.parametrize("kind", DIALECTS)
def test_a_value_from_an_event_into_the_next_oversized_one_is_masked(kind: str) -> None:
    texts = ["card 4111 1111", " 1111 1111 " + "B" * BIG, " end"]
    out = run(SseMasker(MASKER, "response"), dialect_events(kind, texts), 8192)
    got = dialect_text(kind, out)
    assert not exposed(got[:300]), got[:300]
    assert got == masked("".join(texts))


def test_an_oversized_event_split_keeps_escapes_and_characters_whole() -> None:
    text = ('é\\"日\n🙂 ' * 20_000) + "mail jane.doe@"
    texts = [text, "example.com done"]
    for chunk in (999, 4096, 65_537):
        out = run(SseMasker(MASKER, "response"), dialect_events("chat", texts), chunk)
        assert dialect_text("chat", out) == masked("".join(texts))


# -- 3. secrets longer than the hold -------------------------------------------------------------
def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


JWT = ".".join((_b64(b'{"alg":"HS256","typ":"JWT"}'),
                _b64(json.dumps({"sub": "x", "pad": "A" * 4500}).encode()),
                _b64(b"s" * 32)))  # fmt: skip


@pytest.mark.parametrize("size", [1, 60, 5000])
@pytest.mark.parametrize(
    "value", [JWT, "Bearer " + "t0ken" * 1000, "AccountKey=" + "k1" * 2500], ids=str.__len__
)
def test_a_secret_longer_than_the_hold_is_masked_not_released(size: int, value: str) -> None:
    text = "here: " + value + " and more"
    stream = TextStreamMasker(MASKER, "response")
    out = "".join(stream.feed(text[i : i + size]) for i in range(0, len(text), size))
    out += stream.finish()
    assert value[-40:] not in out
    assert value[-200:-160] not in out
    assert out.startswith("here: ")
    assert out.endswith(" and more")
    assert "[REDACTED:SECRET]" in out
    assert [finding.type for finding in stream.findings] == ["SECRET"]


@pytest.mark.parametrize("kind", ["chat", "tools", "responses", "anthropic", "plain"])
def test_a_long_jwt_streamed_in_any_dialect_is_masked(kind: str) -> None:
    text = "token " + JWT + " end"
    texts = [text[i : i + 60] for i in range(0, len(text), 60)]
    out = run(SseMasker(MASKER, "response"), dialect_events(kind, texts), 300)
    got = dialect_text(kind, out)
    assert JWT[:100] not in got
    assert JWT[-40:] not in got
    assert got == "token [REDACTED:SECRET] end"


def test_a_long_word_that_is_no_secret_still_goes_out() -> None:
    text = "data " + "Q" * 9000 + " end"
    stream = TextStreamMasker(MASKER, "response")
    out = "".join(stream.feed(text[i : i + 50]) for i in range(0, len(text), 50))
    assert out + stream.finish() == text


# -- 4. event streams under another label --------------------------------------------------------
PIECES = [SECRET_TEXT[i : i + 4] for i in range(0, len(SECRET_TEXT), 4)]


def chat_sse(prefix: bytes = b"") -> bytes:
    return prefix + dialect_events("chat", PIECES) + b"data: [DONE]\n\n"


def ndjson_chunks() -> bytes:
    lines = [{"model": "m", "message": {"role": "assistant", "content": p}, "done": False}
             for p in PIECES]  # fmt: skip
    lines.append({"model": "m", "message": {"role": "assistant", "content": ""}, "done": True})
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def answered(content_type: str | None, body: bytes) -> tuple[bool, bytes]:
    """Whether the exchange streamed the response, and the body the client gets."""
    profiles = {"standard": Profile("standard")}
    config = MaskingConfig(profiles, "standard", KEY, "decode", ())  # type: ignore[arg-type]
    ex = Exchange(config, {"standard": Masker(profiles["standard"], KEY)})
    ex.add_decision(Decision("d1", "r1", "allow", "eu-team", "ml-eu may reach eu models"))
    ex.request_headers({":method": "POST", ":path": "/v1/chat/completions"})
    headers = {":status": "200", **({"content-type": content_type} if content_type else {})}
    step = ex.response_headers(headers)
    if step.stream_body:
        out = ex.response_chunk(body[:100], False).body or b""
        return True, out + (ex.response_chunk(body[100:], True).body or b"")
    result = ex.response_body(body)
    assert result.refusal is None
    return False, body if result.body is None else result.body


@pytest.mark.parametrize(
    "content_type", ["application/json", "text/plain", "application/octet-stream", None]
)
@pytest.mark.parametrize("prefix", [b"", b"\xef\xbb\xbf", b"\n \r\n", b": hi\n\n"])
def test_an_event_stream_under_another_label_is_masked_as_one(
    content_type: str | None, prefix: bytes
) -> None:
    streamed, out = answered(content_type, chat_sse(prefix))
    assert not streamed
    text = dialect_text("chat", out.removeprefix(b"\xef\xbb\xbf").lstrip())
    assert not exposed(text), text
    assert text == masked(SECRET_TEXT)


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", None])
def test_ndjson_chunks_under_another_label_are_masked_as_a_stream(
    content_type: str | None,
) -> None:
    streamed, out = answered(content_type, ndjson_chunks())
    assert not streamed
    text = "".join(json.loads(line)["message"]["content"] for line in out.splitlines())
    assert not exposed(text), text
    assert text == masked(SECRET_TEXT)


@pytest.mark.parametrize(
    "content_type", ["text/event-stream, text/plain", "text/plain, text/event-stream;charset=x"]
)
def test_a_content_type_listing_the_event_stream_is_streamed_as_one(content_type: str) -> None:
    streamed, out = answered(content_type, chat_sse())
    assert streamed
    text = dialect_text("chat", out)
    assert not exposed(text)
    assert text == masked(SECRET_TEXT)
    assert streamed_kind(content_type) == "text/event-stream"
    assert isinstance(stream_masker(content_type, MASKER, "response"), SseMasker)


def test_what_is_sniffed_as_a_stream() -> None:
    assert sniff_stream(b"data: x\n\n") == "text/event-stream"
    assert sniff_stream(b"\xef\xbb\xbf  event: e\n") == "text/event-stream"
    assert sniff_stream(b"retry: 10\n") == "text/event-stream"
    assert sniff_stream(b'{"a": 1}') == ""
    assert sniff_stream(b'{"a": 1}\n{"a": 2}\n') == ""  # JSON lines, but no stream's deltas
    assert sniff_stream(b"database: 1") == ""
    assert sniff_stream(b"Hello: world") == ""
    assert sniff_stream(ndjson_chunks()) == "application/x-ndjson"


def test_a_plain_answer_and_a_clean_stream_pass_unchanged() -> None:
    assert answered("application/json", b'{"ok": true}') == (False, b'{"ok": true}')
    clean = b"data: hello\n\ndata: world\n\n"
    assert answered("text/plain", clean) == (False, clean)
