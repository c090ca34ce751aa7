"""Session recordings, as the exchange makes them: what is recorded (masked, after the processor
let it through), what never is, and bounds that are marked, never silent."""

from __future__ import annotations

import gzip
import itertools
import json

import pytest

from extproc.audit.recording import RecordingConfig, recording_name, started_at_of
from extproc.clock import Clock
from extproc.decision import Decision, Obligations
from extproc.exchange.machine import Exchange
from extproc.exchange.recording import CHUNK_OVERHEAD, Recorder
from extproc.masking.engine import Masker
from extproc.masking.profile import BlockRule, MaskingConfig, Profile

KEY = b"k" * 32
DECISION = Decision("d1", "r1", "allow", "eu-team", "ml-eu may reach eu models")
CARD, EMAIL = "4111 1111 1111 1111", "jane.doe@example.com"
RECORD_ALL = RecordingConfig(enabled=True)


def exchange(
    profile: Profile | None = None,
    recording: RecordingConfig | None = RECORD_ALL,
    clock: Clock | None = None,
    **options: object,
) -> Exchange:
    profile = profile or Profile("standard")
    config = MaskingConfig({profile.name: profile}, profile.name, KEY)
    maskers = {profile.name: Masker(profile, KEY)}
    ex = Exchange(
        config,
        maskers,
        recording=recording,
        clock=clock or Clock(),
        **options,  # type: ignore[arg-type]
    )
    ex.add_decision(DECISION)
    return ex


def request_headers(**extra: str) -> dict[str, str]:
    return {
        ":method": "POST",
        ":path": "/v1/chat/completions",
        ":authority": "gateway",
        "content-type": "application/json",
        **extra,
    }


def test_nothing_is_recorded_when_recording_is_off() -> None:
    ex = exchange(recording=None)
    ex.request_headers(request_headers())
    ex.request_body(json.dumps({"q": f"card {CARD}"}).encode())
    assert ex.recorder is None
    assert ex.recording() is None


def test_only_the_configured_profiles_and_paths_are_recorded() -> None:
    config = RecordingConfig(enabled=True, profiles=("phi",), paths=("/eu/*",))
    assert config.selects("phi", "/us/v1/chat")
    assert config.selects("standard", "/eu/v1/chat")
    assert not config.selects("standard", "/us/v1/chat")
    assert not RecordingConfig(enabled=False).selects("phi", "/eu/x")
    ex = exchange(recording=RecordingConfig(enabled=True, profiles=("phi",)))
    ex.request_headers(request_headers())
    assert ex.recording() is None


def test_the_request_is_recorded_masked_with_safe_headers_only() -> None:
    ex = exchange()
    ex.request_headers(
        request_headers(
            **{
                ":path": f"/v1/chat/completions/{EMAIL}?key=sk-secret-value",
                "authorization": "Bearer the-gateway-credential",
                "cookie": "session=abc",
                "x-api-key": "upstream-key",
                "user-agent": f"probe {EMAIL}",
            }
        )
    )
    ex.request_body(json.dumps({"q": f"card {CARD}, mail {EMAIL}"}).encode())
    ex.response_headers({":status": "200", "content-type": "application/json", "set-cookie": "s"})
    ex.response_body(json.dumps({"a": f"echo {CARD}"}).encode())
    document = ex.recording()
    assert document is not None
    text = json.dumps(document)
    for raw in (CARD, EMAIL, "the-gateway-credential", "session=abc", "upstream-key", "sk-secret"):
        assert raw not in text
    for name in ("authorization", "cookie", "x-api-key", "set-cookie"):
        assert name not in text  # not even the names of withheld headers
    request = document["request"]
    assert json.loads(request["body"])["q"] == "card [REDACTED:CARD], mail [REDACTED:EMAIL]"
    assert request["headers"]["user-agent"] == "probe [REDACTED:EMAIL]"
    assert request["headers_withheld"] == 3
    assert document["path"].startswith("/v1/chat/completions/")
    assert "?" not in document["path"]
    assert json.loads(document["response"]["body"]) == {"a": "echo [REDACTED:CARD]"}
    assert document["response"]["status"] == 200
    assert (document["request_id"], document["decision_id"]) == ("r1", "d1")
    assert document["truncated"] is False


def test_a_compressed_body_is_recorded_decoded_and_masked() -> None:
    ex = exchange()
    ex.request_headers(request_headers(**{"content-encoding": "gzip"}))
    ex.request_body(gzip.compress(json.dumps({"q": f"card {CARD}"}).encode()))
    document = ex.recording()
    assert document is not None
    assert json.loads(document["request"]["body"]) == {"q": "card [REDACTED:CARD]"}


def test_a_streamed_response_is_recorded_as_its_chunks_with_increasing_offsets() -> None:
    ticks = itertools.count(start=100.0, step=0.25)
    ex = exchange(clock=Clock(wall=lambda: 1_790_000_000.0, monotonic=lambda: next(ticks)))
    ex.request_headers(request_headers())
    ex.request_body(b'{"q": "hi"}')
    ex.response_headers({":status": "200", "content-type": "text/event-stream"})
    assert ex.streaming
    events = [f'data: {{"t": "part {n} {CARD if n == 1 else ""}"}}\n\n' for n in range(3)]
    for index, event in enumerate(events):
        ex.response_chunk(event.encode(), end_of_stream=index == len(events) - 1)
    document = ex.recording()
    assert document is not None
    chunks = document["response"]["chunks"]
    assert len(chunks) == 3
    offsets = [document["response"]["at_ms"], *(chunk["at_ms"] for chunk in chunks)]
    assert offsets == sorted(offsets)
    assert offsets[0] > 0
    assert len(set(offsets)) == 4
    joined = "".join(chunk["data"] for chunk in chunks)
    assert CARD not in joined
    assert "[REDACTED:CARD]" in joined


def test_a_recording_is_cut_at_max_bytes_and_marked_truncated() -> None:
    ex = exchange(recording=RecordingConfig(enabled=True, max_bytes=1024))
    ex.request_headers(request_headers())
    ex.request_body(json.dumps({"q": "é" * 2000}).encode())
    document = ex.recording()
    assert document is not None
    assert document["truncated"] is True
    assert document["dropped_bytes"] > 0
    body = document["request"]["body"]
    assert len(body.encode()) <= 1024
    assert body.encode().decode("utf-8") == body  # never half a character


def test_empty_chunks_cannot_grow_a_recording_past_its_bound() -> None:
    recorder = Recorder(max_bytes=10 * CHUNK_OVERHEAD, started=0.0)
    recorder.response["status"] = 200
    for n in range(1000):
        recorder.chunk(b"", now=n / 1000)
    document = recorder.document({})
    assert len(document["response"]["chunks"]) == 10
    assert document["truncated"] is True


def test_a_blocked_prompt_is_not_recorded_because_it_never_passed() -> None:
    block = BlockRule("no-cards", "no card data here", detector="card")
    ex = exchange(Profile("standard", block=(block,)))
    ex.request_headers(request_headers())
    step = ex.request_body(json.dumps({"q": f"ignore this card {CARD}"}).encode())
    assert step.refusal is not None
    document = ex.recording()
    assert document is not None
    assert "body" not in document["request"]
    assert "ignore this card" not in json.dumps(document)
    assert document["request"]["omitted"] == "not forwarded: prompt_blocked"


def test_a_report_mode_profile_records_no_body_because_nothing_was_masked() -> None:
    ex = exchange(Profile("watch", mode="report"))
    ex.request_headers(request_headers())
    ex.request_body(json.dumps({"q": f"card {CARD}"}).encode())
    document = ex.recording()
    assert document is not None
    assert CARD not in json.dumps(document)
    assert document["request"]["omitted"].startswith("not masked")


def test_a_response_with_restored_values_is_not_recorded() -> None:
    ex = exchange(Profile("p", actions={"request": {"EMAIL": "tokenize"}}, restore=True))
    ex.request_headers(request_headers())
    step = ex.request_body(json.dumps({"q": f"mail {EMAIL}"}).encode())
    assert step.body is not None
    sent = json.loads(step.body)["q"]
    ex.response_headers({":status": "200", "content-type": "application/json"})
    reply = ex.response_body(json.dumps({"a": f"you said {sent}"}).encode())
    assert reply.body is not None
    assert EMAIL.encode() in reply.body
    document = ex.recording()
    assert document is not None
    assert EMAIL not in json.dumps(document)
    assert document["response"]["omitted"] == "carries values restored for the caller"


def test_payload_capture_holds_what_capture_max_bytes_says_with_no_hidden_cap() -> None:
    ex = exchange(recording=None, capture_bytes=10_000)
    ex.request_headers(request_headers())
    ex.request_body(json.dumps({"q": "x" * 8000}).encode())
    event = ex.audit_event()
    assert event is not None
    assert len(event["capture"]["request"]) > 8000


@pytest.mark.parametrize("request_id", ["r-1", "../../etc/passwd", "a b", ""])
def test_a_recording_name_is_a_safe_relative_file_name_that_gives_back_its_time(
    request_id: str,
) -> None:
    name = recording_name("2026-11-29T21:17:33.123456Z", "processor-0", request_id)
    assert name.startswith("recordings/2026-11-29/211733.123456_processor-0_")
    assert ".." not in name
    assert " " not in name
    assert started_at_of(name) == "2026-11-29T21:17:33.123456Z"


def test_obligations_pick_the_profile_that_decides_recording() -> None:
    profile = Profile("phi")
    config = MaskingConfig({"standard": Profile("standard"), "phi": profile}, "standard", KEY)
    maskers = {name: Masker(p, KEY) for name, p in config.profiles.items()}
    ex = Exchange(config, maskers, recording=RecordingConfig(enabled=True, profiles=("phi",)))
    ex.add_decision(DECISION._replace(obligations=Obligations(masking_profile="phi")))
    ex.request_headers(request_headers())
    assert ex.recorder is not None


def test_a_report_mode_profile_records_neither_the_path_nor_header_values() -> None:
    ex = exchange(Profile("watch", mode="report"))
    ex.request_headers(request_headers(**{":path": f"/v1/users/{EMAIL}", "user-agent": EMAIL}))
    document = ex.recording()
    assert document is not None
    assert EMAIL not in json.dumps(document)
    assert document["path"] == ""
