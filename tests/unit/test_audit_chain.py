"""The record format and the event model: what a sealed line is, and what an event may hold."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from extproc.audit.chain import GENESIS_PREV, ChainTip, RecordError, Sealer
from extproc.audit.event import EVENT_FIELDS, RECORD_FIELDS, as_written, utc_timestamp

KEY = b"chain-test-key-" + b"c" * 24
EVENT = {
    "request_id": "r1",
    "outcome": "allowed",
    "groups": ["ml-eu"],
    "findings": {"request.email": 2},
}


def test_a_sealed_line_is_canonical_json_with_hash_and_mac_over_everything_else() -> None:
    line, tip = Sealer(KEY).seal("processor-0", ChainTip.empty(), EVENT)
    record = json.loads(line)
    body = {k: v for k, v in record.items() if k not in ("hash", "mac")}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    assert record["hash"] == hashlib.sha256(canonical).hexdigest()
    assert record["mac"] == hmac.new(KEY, canonical, hashlib.sha256).hexdigest()
    assert (record["chain"], record["seq"], record["prev"]) == ("processor-0", 0, GENESIS_PREV)
    assert tip == ChainTip(0, record["hash"])
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1


def test_each_record_names_the_hash_of_the_one_before() -> None:
    sealer = Sealer(KEY)
    first, tip = sealer.seal("authz-0", ChainTip.empty(), EVENT)
    second, _ = sealer.seal("authz-0", tip, EVENT)
    assert json.loads(second)["prev"] == json.loads(first)["hash"]
    assert json.loads(second)["seq"] == 1


def test_a_sealed_line_opens_with_its_key() -> None:
    sealer = Sealer(KEY)
    line, tip = sealer.seal("authz-0", ChainTip.empty(), EVENT)
    opened = sealer.open(line.rstrip(b"\n"))
    assert (opened.seq, opened.hash) == (tip.seq, tip.hash)
    assert opened.record["findings"] == {"request.email": 2}


def test_a_line_sealed_with_another_key_does_not_open() -> None:
    line, _ = Sealer(b"x" * 32).seal("authz-0", ChainTip.empty(), EVENT)
    with pytest.raises(RecordError, match="MAC does not verify with this key"):
        Sealer(KEY).open(line.rstrip(b"\n"))


def test_an_edit_that_keeps_the_meaning_is_still_found() -> None:
    sealer = Sealer(KEY)
    line, _ = sealer.seal("authz-0", ChainTip.empty(), {"duration_ms": 1e20})
    assert b"1e+20" in line
    with pytest.raises(RecordError, match="bytes differ from the sealed form"):
        sealer.open(line.rstrip(b"\n").replace(b"1e+20", b"1E+20"))


def test_short_audit_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        Sealer(b"k" * 31)


def test_a_head_opens_only_with_its_key_and_is_never_taken_for_a_record() -> None:
    sealer = Sealer(KEY)
    head = sealer.seal_head("processor-1", ChainTip(41, "ab" * 32), 3)
    opened = sealer.open_head(head)
    assert (opened.chain, opened.tip, opened.file_number) == (
        "processor-1",
        ChainTip(41, "ab" * 32),
        3,
    )
    with pytest.raises(RecordError, match="not signed with this key"):
        Sealer(b"y" * 32).open_head(head)
    with pytest.raises(RecordError):
        sealer.open(head.rstrip(b"\n"))


def test_event_fields_never_collide_with_what_the_chain_writes() -> None:
    assert not EVENT_FIELDS & RECORD_FIELDS


def test_the_event_model_has_no_field_for_body_content() -> None:
    assert not {"body", "prompt", "messages", "content", "payload", "text"} & EVENT_FIELDS


def test_timestamps_are_rfc3339_utc_with_microseconds() -> None:
    moment = datetime(2026, 11, 23, 9, 5, 7, 42, tzinfo=UTC)
    assert utc_timestamp(moment) == "2026-11-23T09:05:07.000042Z"


def test_the_path_is_written_without_its_query_string() -> None:
    written = as_written({"path": "/v1/chat?api_key=s3cret&email=a@b.example"}, 0)
    assert written == {"path": "/v1/chat"}


def test_a_capture_is_removed_when_capture_is_off() -> None:
    assert as_written({"request_id": "r", "capture": {"request": "masked"}}, 0) == {
        "request_id": "r"
    }


def test_a_capture_is_cut_to_the_byte_limit_without_splitting_a_character() -> None:
    written = as_written({"capture": {"request": "ab€cd", "response": "ok"}}, 4)
    assert written["capture"] == {"request": "ab", "response": "ok"}


def test_an_event_that_needs_no_change_is_passed_through_untouched() -> None:
    event = {"path": "/v1/chat", "request_id": "r"}
    assert as_written(event, 4096) is event
