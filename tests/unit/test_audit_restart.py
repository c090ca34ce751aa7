"""Chain files across restarts: the chain continues, and damage found at restart is recorded
in the chain, never repaired silently."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from extproc.audit.files import chain_files
from extproc.audit.verify import verify
from extproc.audit.writer import AuditWriter, WriterSettings
from extproc.errors import AuditError

KEY = b"restart-test-key-" + b"r" * 20
CHAIN = "processor-0"
FIRST = f"{CHAIN}.000000.jsonl"


def write_events(directory: Path, ids: range, **options: object) -> AuditWriter:
    writer = AuditWriter(directory, CHAIN, KEY, WriterSettings(**options))  # type: ignore[arg-type]
    for i in ids:
        assert writer.submit({"request_id": f"r{i}", "outcome": "allowed"})
    assert writer.close() == 0
    return writer


def records(directory: Path) -> list[dict[str, object]]:
    return [json.loads(line) for path in chain_files(directory, CHAIN) for line in path.open("rb")]


def test_a_restart_continues_the_chain_from_its_last_record(tmp_path: Path) -> None:
    write_events(tmp_path, range(3))
    write_events(tmp_path, range(3, 6))
    trail = records(tmp_path)
    assert [r["seq"] for r in trail] == list(range(7))
    assert [r.get("request_id") for r in trail[1:]] == [f"r{i}" for i in range(6)]
    assert sum("genesis" in r for r in trail) == 1
    assert verify([tmp_path], KEY).ok


def test_a_restart_continues_in_the_latest_rotated_file(tmp_path: Path) -> None:
    options = {"rotate_bytes": 600, "batch_max_events": 1, "flush_interval": 0}
    write_events(tmp_path, range(4), **options)
    before = chain_files(tmp_path, CHAIN)
    write_events(tmp_path, range(4, 8), **options)
    after = chain_files(tmp_path, CHAIN)
    assert after[: len(before)] == before
    assert len(after) > len(before)
    report = verify([tmp_path], KEY)
    assert report.ok, report.chains[0].problem
    assert report.chains[0].events == 8


def test_a_torn_last_line_fails_verify_until_a_restart_moves_it_aside_and_records_it(
    tmp_path: Path,
) -> None:
    write_events(tmp_path, range(3))
    torn = b'{"chain":"processor-0","outcome":"allowed","prev":"3f2a'
    with (tmp_path / FIRST).open("ab") as handle:
        handle.write(torn)
    assert "the last line is incomplete" in str(verify([tmp_path], KEY).chains[0].problem)

    write_events(tmp_path, range(3, 4))
    report = verify([tmp_path], KEY)
    assert report.ok, report.chains[0].problem
    assert report.chains[0].events == 4
    (note,) = report.chains[0].notes
    assert f"a torn write of {len(torn)} bytes" in note
    (aside,) = tmp_path.glob("*.torn")
    assert aside.read_bytes() == torn
    (recovery,) = [r["recovery"] for r in records(tmp_path) if "recovery" in r]
    assert recovery == {
        "cause": "torn",
        "file": FIRST,
        "offset": (tmp_path / FIRST).read_bytes().index(b'{"chain":"processor-0","prev"'),
        "bytes": len(torn),
        "sha256": hashlib.sha256(torn).hexdigest(),
        "moved_to": aside.name,
    }


def test_records_cut_off_while_the_writer_was_down_stay_visible_after_a_restart(
    tmp_path: Path,
) -> None:
    write_events(tmp_path, range(5))
    path = tmp_path / FIRST
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:-2]))
    write_events(tmp_path, range(5, 7))
    report = verify([tmp_path], KEY)
    assert not report.ok
    assert "records seq 4..5 missing: they were cut off the end while it was down" in str(
        report.chains[0].problem
    )


def test_a_head_lost_while_the_writer_was_down_is_recorded_as_a_warning(tmp_path: Path) -> None:
    write_events(tmp_path, range(2))
    (tmp_path / f"{CHAIN}.head").unlink()
    write_events(tmp_path, range(2, 4))
    report = verify([tmp_path], KEY)
    assert report.ok
    (note,) = report.chains[0].notes
    assert "warning: at restart the head is missing" in note


def test_a_chain_written_with_another_key_is_never_extended(tmp_path: Path) -> None:
    write_events(tmp_path, range(2))
    with pytest.raises(AuditError, match="last record cannot be trusted"):
        AuditWriter(tmp_path, CHAIN, b"another-key-" + b"x" * 24)


def test_a_chain_in_use_by_another_writer_cannot_be_opened(tmp_path: Path) -> None:
    writer = AuditWriter(tmp_path, CHAIN, KEY)
    try:
        with pytest.raises(AuditError, match="in use by another process") as caught:
            AuditWriter(tmp_path, CHAIN, KEY)
        assert caught.value.code == "audit_unavailable"
    finally:
        writer.close()
    AuditWriter(tmp_path, CHAIN, KEY).close()  # free again once closed


def test_an_unserialisable_event_is_recorded_by_its_ids_and_counted(tmp_path: Path) -> None:
    writer = AuditWriter(tmp_path, CHAIN, KEY)
    writer.submit({"request_id": "r1", "decision_id": "d1", "findings": {"request.email": b"x"}})
    writer.close()
    assert writer.counters()["unencodable"] == 1
    (record,) = records(tmp_path)[1:]
    assert record["request_id"] == "r1"
    assert record["decision_id"] == "d1"
    assert "bytes" in str(record["unencodable"])
    assert "findings" not in record
    assert verify([tmp_path], KEY).ok


def test_captured_payloads_are_cut_to_the_configured_size(tmp_path: Path) -> None:
    writer = AuditWriter(tmp_path, CHAIN, KEY, WriterSettings(capture_max_bytes=8))
    writer.submit({"request_id": "r1", "capture": {"request": "<EMAIL:ab12> says hi"}})
    writer.close()
    assert records(tmp_path)[1]["capture"] == {"request": "<EMAIL:a"}


def test_a_bad_chain_id_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="chain id"):
        AuditWriter(tmp_path, "../escape", KEY)


def test_read_events_yields_the_events_in_chain_order_without_the_chain_records(
    tmp_path: Path,
) -> None:
    from extproc.audit.read import read_events

    write_events(tmp_path, range(3))
    write_events(tmp_path, range(3, 5))
    assert [e["request_id"] for e in read_events([tmp_path])] == [f"r{i}" for i in range(5)]


def test_a_directory_that_cannot_be_used_is_refused_with_audit_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with pytest.raises(AuditError, match="cannot be opened") as caught:
        AuditWriter(blocker / "audit", CHAIN, KEY)
    assert caught.value.code == "audit_unavailable"


def test_the_head_catches_up_with_the_last_record_once_writes_pause(tmp_path: Path) -> None:
    """Under load the head is rewritten at most every HEAD_INTERVAL; a writer that falls idle
    still brings it to its last record, without being closed."""
    from extproc.audit.chain import Sealer

    writer = AuditWriter(tmp_path, CHAIN, KEY, WriterSettings(batch_max_events=1, flush_interval=0))
    try:
        for i in range(20):
            assert writer.submit({"request_id": f"r{i}", "outcome": "allowed"})
        sealer = Sealer(KEY)

        def head_names_the_last_record() -> bool:
            lines = (tmp_path / FIRST).read_bytes().split(b"\n")[:-1]  # complete lines only
            head_file = tmp_path / f"{CHAIN}.head"
            if len(lines) < 21 or not head_file.exists():
                return False
            return sealer.open_head(head_file.read_bytes()).tip.seq == json.loads(lines[-1])["seq"]

        deadline = time.monotonic() + 10
        while not head_names_the_last_record():
            assert time.monotonic() < deadline, "the head never caught up with an idle writer"
            time.sleep(0.01)
    finally:
        assert writer.close() == 0
    assert verify([tmp_path], KEY).ok
