"""Session recording through the real Envoy: what a recording holds (masked, never raw), streams
as their chunks in time, replay, and verify finding an edited or deleted recording while telling
retention's removals apart."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from extproc.audit.read import read_events
from tests.e2e.conftest import e2e_config, geoip_database
from tests.e2e.harness import KEYS, Gateway

pytestmark = pytest.mark.e2e

SWEDEN = "89.160.20.112"
CARD, EMAIL = "4111 1111 1111 1111", "jane.doe@example.com"
RECORDING = "  recording:\n    enabled: true\n    max_bytes: 262144\n"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("recording")
    gateway = Gateway(root, config_text=e2e_config(geoip_database(root)) + RECORDING)
    try:
        gateway.start()
        yield gateway
    finally:
        gateway.stop()


def chat(content: str, model: str = "demo-echo", **extra: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


def audit_dir(gateway: Gateway) -> Path:
    return gateway.root / "audit"


def recorded_event(gateway: Gateway, request_id: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        for event in read_events([audit_dir(gateway)]):
            if event.get("request_id") == request_id and "recording" in event:
                return event
        return None

    event = gateway.wait_until(find, timeout=10)
    assert event is not None, f"no recorded event for {request_id}"
    return event  # type: ignore[no-any-return]


def recording_of(gateway: Gateway, event: dict[str, Any]) -> dict[str, Any]:
    return json.loads((audit_dir(gateway) / event["recording"]["file"]).read_bytes())  # type: ignore[no-any-return]


def last_request_id(gateway: Gateway) -> str:
    return gateway.model.requests()[-1].headers["x-request-id"]


def extproc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "extproc", *args],
        capture_output=True, text=True, timeout=60, env=dict(os.environ, **KEYS),
    )  # fmt: skip


def trail_args(gateway: Gateway) -> list[str]:
    return [str(audit_dir(gateway)), "--key-env", "EXTPROC_E2E_AUDIT_KEY"]


def every_recording_byte(gateway: Gateway) -> bytes:
    return b"".join(p.read_bytes() for p in (audit_dir(gateway) / "recordings").rglob("*.json"))


def test_a_card_and_an_email_are_recorded_masked_never_raw(gateway: Gateway) -> None:
    gateway.model.clear()
    reply = gateway.request(
        f"/eu/v1/chat/completions?email={EMAIL}",
        token=gateway.token(),
        source=SWEDEN,
        body=chat(f"card {CARD}, mail {EMAIL}"),
        headers={"x-note": EMAIL, "user-agent": f"probe {EMAIL}", "cookie": "session=s3cr3t"},
    )
    assert reply.status == 200, reply.body
    event = recorded_event(gateway, last_request_id(gateway))
    recorded = recording_of(gateway, event)
    content = json.loads(recorded["request"]["body"])["messages"][0]["content"]
    assert content.startswith("card [REDACTED:CARD], mail <EMAIL:")
    assert recorded["request"]["headers"]["user-agent"].startswith("probe <EMAIL:")
    assert recorded["path"] == "/eu/v1/chat/completions"
    assert "[REDACTED:CARD]" in recorded["response"]["body"]
    everything = every_recording_byte(gateway)
    for raw in (CARD, EMAIL, "session=s3cr3t", "Bearer ", "gateway-only-model-key"):
        assert raw.encode() not in everything
    assert b"authorization" not in everything


def test_a_streamed_response_is_recorded_as_its_chunks_with_their_offsets(
    gateway: Gateway,
) -> None:
    gateway.model.clear()
    gateway.model.resume.clear()
    connection = http.client.HTTPConnection("127.0.0.1", gateway.listener_port, timeout=30)
    try:
        connection.request(
            "POST",
            "/eu/v1/chat/completions",
            body=json.dumps(chat("hi", "demo-leaky", stream=True)),
            headers={
                "authorization": f"Bearer {gateway.token()}",
                "x-forwarded-for": SWEDEN,
                "content-type": "application/json",
                # The model pauses mid-stream until the client has seen the first part.
                "x-demo-fill-bytes": "6000",
                "x-demo-chunk-chars": "100",
                "x-demo-hold-after-bytes": "3000",
            },
        )
        response = connection.getresponse()
        assert response.status == 200
        received = b""
        while b"[REDACTED:CARD]" not in received:
            received += response.read1(65536)
        gateway.model.resume.set()
        received += response.read()
    finally:
        gateway.model.resume.clear()
        connection.close()
    request_id = last_request_id(gateway)
    recorded = recording_of(gateway, recorded_event(gateway, request_id))
    assert recorded["truncated"] is False
    chunks = recorded["response"]["chunks"]
    assert len(chunks) >= 2  # at least the part before the pause and the part after it
    offsets = [chunk["at_ms"] for chunk in chunks]
    assert offsets == sorted(offsets)
    assert offsets[-1] > offsets[0]
    assert "".join(chunk["data"] for chunk in chunks).encode() == received
    assert CARD.encode() not in every_recording_byte(gateway)

    replayed = extproc(
        "audit", "replay", request_id, *trail_args(gateway), "--stream", "--speed", "0"
    )
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout.encode() == received  # the client's stream, byte for byte
    printed = extproc("audit", "replay", request_id, *trail_args(gateway))
    assert printed.returncode == 0, printed.stderr
    assert f"exchange {request_id}\n" in printed.stdout
    assert "(SHA-256 verified)" in printed.stdout
    assert "\n< 200  (after " in printed.stdout
    assert "\n< content-type: text/event-stream\n" in printed.stdout
    assert "[REDACTED:CARD]" in printed.stdout


def test_a_gzip_response_is_recorded_decoded_and_masked(gateway: Gateway) -> None:
    gateway.model.clear()
    reply = gateway.request(
        token=gateway.token(),
        source=SWEDEN,
        body=chat("hi", "demo-leaky"),
        headers={"accept-encoding": "gzip", "x-demo-gzip": "1"},
    )
    assert reply.status == 200, reply.body
    assert (
        "[REDACTED:CARD]"
        in json.loads(gzip.decompress(reply.body))["choices"][0]["message"]["content"]
    )
    recorded = recording_of(gateway, recorded_event(gateway, last_request_id(gateway)))
    assert recorded["response"]["headers"]["content-encoding"] == "gzip"
    body = json.loads(recorded["response"]["body"])  # decoded text, not gzip bytes
    assert "[REDACTED:CARD]" in body["choices"][0]["message"]["content"]


def test_verify_finds_an_edited_and_a_deleted_recording_and_replay_refuses_them(
    gateway: Gateway,
) -> None:
    gateway.model.clear()
    gateway.request(token=gateway.token(), source=SWEDEN, body=chat(f"card {CARD}"))
    request_id = last_request_id(gateway)
    event = recorded_event(gateway, request_id)
    path = audit_dir(gateway) / event["recording"]["file"]
    original = path.read_bytes()
    assert extproc("audit", "verify", *trail_args(gateway)).returncode == 0
    try:
        edited = bytearray(original)
        edited[original.index(b"REDACTED")] ^= 0x01  # one byte
        path.write_bytes(bytes(edited))
        result = extproc("audit", "verify", *trail_args(gateway))
        assert result.returncode == 1
        assert f"the recording of exchange {request_id}: " in result.stdout
        assert "was edited" in result.stdout
        replayed = extproc("audit", "replay", request_id, *trail_args(gateway))
        assert replayed.returncode == 1
        assert "was edited" in replayed.stderr
        assert replayed.stdout == ""
        path.unlink()
        result = extproc("audit", "verify", *trail_args(gateway))
        assert result.returncode == 1
        assert "is missing (deleted or moved)" in result.stdout
    finally:
        path.write_bytes(original)
    assert extproc("audit", "verify", *trail_args(gateway)).returncode == 0


def test_a_recording_that_cannot_be_written_is_said_and_the_exchange_still_audited(
    gateway: Gateway,
) -> None:
    recordings = audit_dir(gateway) / "recordings"
    aside = audit_dir(gateway) / "recordings-aside"
    recordings.rename(aside)
    recordings.write_text("a file where the directory should be: every write fails")
    try:
        gateway.model.clear()
        reply = gateway.request(token=gateway.token(), source=SWEDEN, body=chat("hello"))
        assert reply.status == 200, reply.body  # the caller is not affected
        request_id = last_request_id(gateway)
        event = recorded_event(gateway, request_id)
        assert event["recording"]["error"].startswith("write_failed")
        assert event["outcome"] == "allowed"
    finally:
        recordings.unlink()
        aside.rename(recordings)
    result = extproc("audit", "verify", *trail_args(gateway))
    assert result.returncode == 0, result.stdout  # a warning: the event itself is whole
    assert f"the recording of exchange {request_id} was not written (write_failed" in result.stdout


def test_retention_removes_the_oldest_and_verify_reports_them_as_expired(
    gateway: Gateway,
) -> None:
    files = sorted(
        (audit_dir(gateway) / "recordings").rglob("*.json"),
        key=lambda p: (p.parent.name, p.name),
    )
    assert len(files) >= 4
    newest = files[-1].stat().st_size
    result = extproc("audit", "prune", *trail_args(gateway), "--max-total-bytes", str(newest))
    assert result.returncode == 0, result.stderr
    left = list((audit_dir(gateway) / "recordings").rglob("*.json"))
    assert left == [files[-1]]  # the oldest went first
    verified = extproc("audit", "verify", *trail_args(gateway))
    assert verified.returncode == 0, verified.stdout
    assert "expired by retention" in verified.stdout
    report = extproc("audit", "report", *trail_args(gateway), "--format", "json")
    assert json.loads(report.stdout)["recordings"]["total"] >= 4
