"""Every known way around masking, through the real Envoy.

Request side: what the demo model recorded, read the way a model server decodes it (JSON
escapes, URL decoding, NFKC, every duplicate key). Response side: what the client got, after
its own decoding (``json.loads``, reassembling the deltas of its dialect). The card is
``4111 1111 1111 1111`` throughout; it must never arrive in any of its spellings.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import re
import threading
import unicodedata
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

import pytest

from extproc.audit.read import read_events
from tests.e2e.harness import Gateway
from tests.support.dialects import LEAKY_CASES, MESSAGES, Case, frames_of, text_of

pytestmark = pytest.mark.e2e

SWEDEN = "89.160.20.112"
CARD = "4111 1111 1111 1111"
DIGITS = "4111111111111111"
FULL_WIDTH = CARD.translate({ord(d): ord(d) + 0xFEE0 for d in "0123456789"})
ESCAPED = "".join(f"\\u{ord(c):04x}" if c.isdigit() else c for c in CARD)
_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")


def exposed(raw: bytes | str) -> bool:
    """Whether the card can be read out of ``raw`` by any decoding a receiver applies."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    readings = [text, unquote_plus(text), _ESCAPE.sub(lambda m: chr(int(m[1], 16)), text)]
    for reading in readings:
        folded = re.sub(r"[\s\-+]", "", unicodedata.normalize("NFKC", reading))
        if DIGITS in folded:
            return True
    return False


def caller(gateway: Gateway, extra: dict[str, str]) -> dict[str, str]:
    return {"authorization": f"Bearer {gateway.token()}", "x-forwarded-for": SWEDEN,
            "content-type": "application/json", **extra}  # fmt: skip


def send(
    gateway: Gateway,
    body: bytes,
    content_type: str | None = "application/json",
    path: str = "/eu/v1/chat/completions",
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    sent = {"authorization": f"Bearer {gateway.token()}", "x-forwarded-for": SWEDEN}
    if content_type is not None:
        sent["content-type"] = content_type
    sent.update(headers or {})
    connection = http.client.HTTPConnection("127.0.0.1", gateway.listener_port, timeout=30)
    try:
        connection.request("POST", path, body=body, headers=sent)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def chat_body(content: str, **extra: Any) -> str:
    return json.dumps({"model": "demo-echo", "messages": [{"role": "user", "content": content}],
                       **extra})  # fmt: skip


# -- request bodies --------------------------------------------------------------------------------
BODIES = {
    "duplicate key, first holds the card": (
        '{"model": "demo-echo", "messages": [{"role": "user", "content": "@CARD@"}], '
        '"messages": [{"role": "user", "content": "hi"}]}',
        "application/json",
    ),
    "PII in JSON keys": (
        '{"model": "demo-echo", "messages": @MESSAGES@, "@CARD@": 1, "jane.doe@example.com": 2}',
        "application/json",
    ),
    "a card as a JSON number": (
        '{"model": "demo-echo", "messages": @MESSAGES@, "n": @DIGITS@}',
        "application/json",
    ),
    **{
        f"\\u-escaped digits labelled {label}": (chat_body("@").replace("@", ESCAPED), label)
        for label in ("text/plain", "application/octet-stream", "application/x-ndjson", None)
    },
    "NaN": (
        '{"model": "demo-echo", "n": NaN, "messages": [{"role": "user", "content": "@CARD@"}]}',
        "application/json",
    ),
    "-Infinity": (
        '{"model": "demo-echo", "n": -Infinity, "messages": [{"role": "user", '
        '"content": "@CARD@"}]}',
        "application/json",
    ),
    "a lone surrogate": (chat_body(CARD).replace('"demo-echo"', '"demo-echo", "s": "\\ud800"'),
                         "application/json"),
    "a BOM": ("\ufeff" + chat_body(CARD), "application/json"),
    "full-width digits": (chat_body(FULL_WIDTH), "application/json"),
    "a form": ("model=demo-echo&card=4111+1111+1111+1111&pct=%34%31%31%31%20%31%31%31%31%20"
               "%31%31%31%31%20%31%31%31%31", "application/x-www-form-urlencoded"),
    "a form without a content type": ("model=demo-echo&card=%34%31%31%31%20%31%31%31%31%20"
                                      "%31%31%31%31%20%31%31%31%31", None),
    "a JSON part in multipart": (
        '--XyZ\r\ncontent-disposition: form-data; name="payload"\r\n'
        "content-type: application/json\r\n\r\n" + chat_body(ESCAPED) + "\r\n--XyZ--\r\n",
        "multipart/form-data; boundary=XyZ",
    ),
    "JSON nested 1,000 deep": ("[" * 1000 + json.dumps(CARD) + "]" * 1000, "application/json"),
    "JSON nested 10,000 deep": ('{"a":' * 10000 + json.dumps(CARD) + "}" * 10000,
                                "application/json"),
}  # fmt: skip


@pytest.mark.parametrize(("body", "content_type"), BODIES.values(), ids=list(BODIES))
def test_request_bodies_reach_the_model_without_the_card(
    gateway: Gateway, body: str, content_type: str | None
) -> None:
    gateway.model.clear()
    body = body.replace("@CARD@", CARD).replace("@DIGITS@", DIGITS)
    body = body.replace("@MESSAGES@", json.dumps(MESSAGES))
    status, reply = send(gateway, body.encode("utf-8", "surrogatepass"), content_type)
    seen = gateway.model.requests()
    if status >= 400 and not seen:
        return  # refused before the model: nothing reached it
    assert len(seen) == 1, (status, reply[:200])
    assert not exposed(seen[0].body)
    assert "jane.doe@example.com" not in seen[0].body.decode("utf-8", "replace")
    assert not exposed(reply)


# -- forms and multipart bodies that parsers read differently are refused ------------------------
B64_CARD = base64.b64encode(CARD.encode()).decode()
PART = 'Content-Disposition: form-data; name="f"'
REFUSED = {
    "a part repeating Content-Transfer-Encoding": (
        f"--XyZ\r\n{PART}\r\nContent-Transfer-Encoding: base64\r\n"
        f"Content-Transfer-Encoding: 7bit\r\n\r\n{B64_CARD}\r\n--XyZ--\r\n",
        "multipart/form-data; boundary=XyZ", 400, "malformed_multipart",
    ),
    "a quoted boundary holding a semicolon": (
        f"--XyZ;x\r\n{PART}\r\nContent-Transfer-Encoding: base64\r\n\r\n{B64_CARD}\r\n"
        "--XyZ;x--\r\n",
        'multipart/form-data; boundary="XyZ;x"', 415, "unsupported_content_type",
    ),
    "bare CR line endings": (
        f"--XyZ\r{PART}\rContent-Transfer-Encoding: base64\r\r{B64_CARD}\r--XyZ--\r",
        "multipart/form-data; boundary=XyZ", 400, "malformed_multipart",
    ),
    "an RFC 2231 file name": (
        f"--XyZ\r\n{PART}; filename*=UTF-8''jane.doe%40example.com\r\n\r\nhi\r\n--XyZ--\r\n",
        "multipart/form-data; boundary=XyZ", 400, "malformed_multipart",
    ),
    "two media types joined": (
        "model=demo-echo&card=%34%31%31%31%20%31%31%31%31%20%31%31%31%31%20%31%31%31%31",
        "application/x-www-form-urlencoded,text/plain", 415, "unsupported_content_type",
    ),
}  # fmt: skip


@pytest.mark.parametrize(("body", "content_type", "status", "code"), REFUSED.values(),
                         ids=list(REFUSED))  # fmt: skip
def test_forms_parsers_read_differently_are_refused_before_the_model(
    gateway: Gateway, body: str, content_type: str, status: int, code: str
) -> None:
    gateway.model.clear()
    got, reply = send(gateway, body.encode(), content_type)
    assert (got, json.loads(reply)["error"]) == (status, code), reply[:300]
    assert not gateway.model.requests()


def test_a_form_without_a_content_type_reaches_the_model_masked(gateway: Gateway) -> None:
    """Rack parses a POST without a content type as a form: its fields arrive masked decoded."""
    gateway.model.clear()
    body = b"model=demo-echo&card=%34%31%31%31%20%31%31%31%31%20%31%31%31%31%20%31%31%31%31"
    send(gateway, body, None)
    seen = gateway.model.requests()
    assert len(seen) == 1
    assert "content-type" not in {name.lower() for name in seen[0].headers}
    assert dict(parse_qsl(seen[0].body.decode())) == {
        "model": "demo-echo",
        "card": "[REDACTED:CARD]",
    }


@pytest.mark.parametrize(
    "path",
    [
        "/eu/v1/chat/completions?user=jane.doe%40example.com&card=4111+1111+1111+1111",
        "/eu/v1/users/4111%201111%201111%201111/chat",
        "/eu/v1/users/%EF%BC%94%EF%BC%91%EF%BC%91%EF%BC%91-1111-1111-1111",
    ],
)
def test_the_url_query_and_path_reach_the_model_masked(gateway: Gateway, path: str) -> None:
    gateway.model.clear()
    send(gateway, chat_body("hi").encode(), path=path)
    seen = gateway.model.requests()
    assert len(seen) == 1
    assert not exposed(seen[0].path)
    assert "jane.doe" not in unquote_plus(seen[0].path)


# -- streamed responses ----------------------------------------------------------------------------
def stream(
    gateway: Gateway, case: Case, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    body = json.dumps({"model": case.model, "stream": True, **case.fields}).encode()
    return send(gateway, body, path="/eu" + case.path, headers=headers)


@pytest.mark.parametrize("case", LEAKY_CASES, ids=[case.kind for case in LEAKY_CASES])
def test_values_split_across_events_arrive_masked_in_every_dialect(
    gateway: Gateway, case: Case
) -> None:
    status, raw = stream(gateway, case)
    assert status == 200
    text = text_of(case.kind, frames_of(raw, case.kind == "ollama"))
    assert text.startswith("Customer record: card [REDACTED:CARD], e-mail <EMAIL:")
    assert "jane.doe" not in raw.decode()
    assert not exposed(raw)
    assert not exposed(text)


@pytest.mark.parametrize("kind", ["plain", "chat"])
def test_cr_only_line_endings_do_not_hide_a_value(gateway: Gateway, kind: str) -> None:
    case = next(case for case in LEAKY_CASES if case.kind == kind)
    status, raw = stream(gateway, case, {"x-demo-line-ending": "cr"})
    assert status == 200
    assert not exposed(raw)
    assert "[REDACTED:CARD]" in text_of(kind, frames_of(raw, False))


def test_an_sse_body_without_event_delimiters_is_masked_as_it_streams(gateway: Gateway) -> None:
    case = next(case for case in LEAKY_CASES if case.kind == "plain")
    gateway.model.resume.clear()
    headers = {"x-demo-no-delimiters": "1", "x-demo-fill-bytes": "400000",
               "x-demo-chunk-chars": "1000", "x-demo-hold-after-bytes": "300000"}  # fmt: skip
    body = json.dumps({"model": case.model, "stream": True, **case.fields}).encode()
    connection = http.client.HTTPConnection("127.0.0.1", gateway.listener_port, timeout=30)
    try:
        connection.request("POST", "/eu" + case.path, body=body, headers=caller(gateway, headers))
        response = connection.getresponse()
        early = b""
        while len(early) < 100_000:  # while the model waits: nothing is buffered to the end
            early += response.read1(65536)
        gateway.model.resume.set()
        rest = response.read()
    finally:
        gateway.model.resume.clear()
        connection.close()
    assert b"[REDACTED:CARD]" in early
    assert not exposed(early + rest)
    assert len(early + rest) > 400_000


def test_a_fast_20_mb_stream_arrives_whole(gateway: Gateway) -> None:
    case = next(case for case in LEAKY_CASES if case.kind == "chat")
    headers = {"x-demo-fill-bytes": "20000000", "x-demo-chunk-chars": "16000"}
    status, raw = stream(gateway, case, headers)
    assert status == 200
    text = text_of("chat", frames_of(raw, False))
    assert len(text) >= 20_000_000 - 100  # the masked card is shorter than the card
    assert "[REDACTED:CARD]" in text
    assert not exposed(text[:1000])


def audit_event(gateway: Gateway, decision_id: str) -> dict[str, Any] | None:
    """The exchange's closing record (the one with its findings)."""

    def find() -> dict[str, Any] | None:
        for event in read_events([gateway.root / "audit"]):
            if event.get("decision_id") == decision_id and "findings" in event:
                return event
        return None

    return gateway.wait_until(find, timeout=15)  # type: ignore[no-any-return]


def test_an_endless_stream_cut_by_the_client_is_audited_with_its_findings(
    gateway: Gateway,
) -> None:
    case = next(case for case in LEAKY_CASES if case.kind == "chat")
    body = json.dumps({"model": case.model, "stream": True, **case.fields}).encode()
    connection = http.client.HTTPConnection("127.0.0.1", gateway.listener_port, timeout=30)
    gateway.model.clear()
    headers = caller(gateway, {"x-demo-endless": "1"})
    connection.request("POST", "/eu" + case.path, body=body, headers=headers)
    gateway.model.clear()
    response = connection.getresponse()
    got = b""
    while got.count(b"REDACTED:CARD") < 3:
        got += response.read1(65536)
    connection.close()  # the client goes away mid-stream
    assert not exposed(got)
    decision_id = gateway.model.requests()[-1].headers["x-extproc-decision-id"]
    event = audit_event(gateway, decision_id)
    assert event is not None, decision_id
    assert event["findings"].get("response.CARD", 0) >= 3
    assert CARD not in json.dumps(event)


# -- compressed bombs ------------------------------------------------------------------------------
def workers(gateway: Gateway) -> set[int]:
    assert gateway.processor is not None
    pid = gateway.processor.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return {int(child) for child in children}


def peak_memory_bytes(pids: set[int]) -> int:
    """The largest peak resident set (VmHWM) among ``pids``."""
    peaks = []
    for pid in pids:
        status = Path(f"/proc/{pid}/status").read_text()
        kilobytes = next(
            line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")
        )
        peaks.append(int(kilobytes) * 1024)
    return max(peaks)


def test_compressed_bombs_are_refused_within_bounded_memory_and_the_workers_stay_alive(
    gateway: Gateway,
) -> None:
    """Inflating stops at the inspection limit: a 1 GiB bomb never lives in a worker's memory
    (its peak stays far below what inflating it would take), and no worker dies of it."""
    bomb = gateway.model.gzip_bomb()
    assert len(bomb) < 1_200_000
    before = workers(gateway)
    assert len(before) >= gateway.workers  # the workers (and the supervisor's helpers)
    assert send(gateway, bomb, headers={"content-encoding": "gzip"})[0] == 413
    results: list[int] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(
                send(gateway, bomb, headers={"content-encoding": "gzip"})[0]
            )
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == [413] * 4
    assert peak_memory_bytes(before) < 512 * 1024 * 1024
    # A bomb from the model is refused as well, and nothing of it reaches the client.
    status, _ = send(gateway, chat_body("hi").encode(), headers={"x-demo-gzip-bomb": "1"})
    assert status >= 500
    assert workers(gateway) == before
    # The workers still serve: an honest gzip body is inflated, masked and sent on gzipped.
    gateway.model.clear()
    send(gateway, gzip.compress(chat_body(CARD).encode()), headers={"content-encoding": "gzip"})
    seen = gateway.model.requests()[-1]
    assert seen.headers.get("content-encoding") == "gzip"
    assert not exposed(gzip.decompress(seen.body))
