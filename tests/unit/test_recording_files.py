"""Recordings on disk: bound to their closing events, checked by verify, removed by retention
(told apart from a deletion), replayed only when their digest matches."""

from __future__ import annotations

import io
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from extproc.audit.chain import Sealer
from extproc.audit.recording import EXPIRY_LOG, RecordingConfig
from extproc.audit.recording_files import RecordingStore, prune
from extproc.audit.replay import ReplayRefused, load_recording, print_exchange, stream_response
from extproc.audit.verify import verify
from extproc.audit.writer import AuditWriter, WriterSettings

KEY = b"r" * 32
CHAIN = "processor-0"
DAY = 86400.0


def document(request_id: str, time: str, body: str = "card [REDACTED:CARD]") -> dict[str, Any]:
    return {
        "format": "extproc-recording/1",
        "request_id": request_id,
        "decision_id": f"d-{request_id}",
        "time": time,
        "method": "POST",
        "path": "/v1/chat",
        "truncated": False,
        "request": {"headers": {"content-type": "application/json"}, "body": body},
        "response": {
            "status": 200,
            "chunks": [
                {"at_ms": 5.0, "data": "data: one\n\n"},
                {"at_ms": 25.0, "data": "data: two\n\n"},
            ],
        },
    }


def record(
    directory: Path, times: list[str], config: RecordingConfig | None = None
) -> RecordingStore:
    """One closed exchange per time, each with its recording, through the real writer."""
    store = RecordingStore(directory, KEY, config or RecordingConfig(enabled=True))
    writer = AuditWriter(directory, CHAIN, KEY, WriterSettings(flush_interval=0.001))
    for index, time in enumerate(times):
        request_id = f"r{index}"
        recording = store.save(document(request_id, time), CHAIN).result(timeout=10)
        event = {"time": time, "request_id": request_id, "outcome": "allowed"}
        assert writer.close_exchange({**event, "recording": recording})
    writer.close()
    return store


def files(directory: Path) -> list[Path]:
    return sorted((directory / "recordings").glob("*/*.json"))


def problems(directory: Path) -> list[str]:
    report = verify([directory], KEY)
    return [str(p) for chain in report.chains for p in chain.problems] + report.errors


def test_a_recorded_trail_verifies_and_counts_its_recordings(tmp_path: Path) -> None:
    record(tmp_path, ["2026-11-01T10:00:00.000001Z", "2026-11-02T10:00:00.000002Z"])
    report = verify([tmp_path], KEY)
    assert report.ok
    assert report.chains[0].recordings == 2
    names = [path.relative_to(tmp_path).as_posix() for path in files(tmp_path)]
    assert names[0].startswith("recordings/2026-11-01/100000.000001_processor-0_r0")
    assert oct(files(tmp_path)[0].stat().st_mode & 0o777) == "0o600"


def test_one_edited_byte_of_a_recording_fails_verify_naming_it(tmp_path: Path) -> None:
    record(tmp_path, ["2026-11-01T10:00:00.000001Z"])
    path = files(tmp_path)[0]
    data = bytearray(path.read_bytes())
    data[data.index(b"REDACTED")] = ord("X")
    path.write_bytes(bytes(data))
    found = problems(tmp_path)
    assert len(found) == 1
    assert "the recording of exchange r0" in found[0]
    assert "was edited" in found[0]


def test_a_deleted_recording_fails_verify(tmp_path: Path) -> None:
    record(tmp_path, ["2026-11-01T10:00:00.000001Z"])
    files(tmp_path)[0].unlink()
    found = problems(tmp_path)
    assert len(found) == 1
    assert "is missing (deleted or moved)" in found[0]


def test_retention_removes_the_oldest_and_verify_reports_them_as_expired(tmp_path: Path) -> None:
    times = [f"2026-11-{day:02d}T10:00:00.000000Z" for day in (1, 2, 3, 4)]
    record(tmp_path, times)
    size = files(tmp_path)[0].stat().st_size
    now = 1_795_910_400.0  # 2026-11-29T00:00:00Z; no age limit here, only the total size
    config = RecordingConfig(enabled=True, max_age_seconds=0, max_total_bytes=size * 2 + 10)
    pruned = prune(tmp_path, Sealer(KEY), config, now)
    assert (pruned.by_size, pruned.kept) == (2, 2)
    assert [p.name[:4] for p in files(tmp_path)] == ["1000", "1000"]
    assert [p.parent.name for p in files(tmp_path)] == ["2026-11-03", "2026-11-04"]
    report = verify([tmp_path], KEY)
    assert report.ok, problems(tmp_path)
    assert (report.chains[0].recordings, report.chains[0].recordings_expired) == (2, 2)


def test_retention_by_age_removes_what_is_older_than_max_age(tmp_path: Path) -> None:
    record(tmp_path, ["2026-10-01T10:00:00.000000Z", "2026-11-28T10:00:00.000000Z"])
    now = 1_795_910_400.0  # 2026-11-29T00:00:00Z
    config = RecordingConfig(enabled=True, max_age_seconds=30 * DAY)
    pruned = prune(tmp_path, Sealer(KEY), config, now)
    assert (pruned.by_age, pruned.by_size, pruned.kept) == (1, 0, 1)
    assert verify([tmp_path], KEY).ok


def test_a_forged_expiry_entry_does_not_excuse_a_deletion(tmp_path: Path) -> None:
    record(tmp_path, ["2026-11-01T10:00:00.000001Z"])
    path = files(tmp_path)[0]
    name = path.relative_to(tmp_path).as_posix()
    forged = Sealer(b"x" * 32).seal_expiry({"file": name, "sha256": "0" * 64, "reason": "max_age"})
    (tmp_path / "recordings" / EXPIRY_LOG).write_bytes(forged)
    path.unlink()
    found = problems(tmp_path)
    assert any("expired.jsonl:1: the expiry entry is not signed with this key" in p for p in found)
    assert any("is missing" in p for p in found)


def test_a_recording_edited_before_retention_removed_it_is_still_found(tmp_path: Path) -> None:
    record(tmp_path, ["2026-11-01T10:00:00.000001Z", "2026-11-02T10:00:00.000001Z"])
    first = files(tmp_path)[0]
    first.write_bytes(first.read_bytes().replace(b"REDACTED", b"XEDACTED"))
    config = RecordingConfig(enabled=True, max_age_seconds=0, max_total_bytes=1)
    prune(tmp_path, Sealer(KEY), config, 1_795_910_400.0)
    assert files(tmp_path) == []
    found = problems(tmp_path)
    assert len(found) == 1
    assert "had been edited before" in found[0]


def test_a_failed_write_is_in_the_event_and_a_verify_warning_never_a_lost_event(
    tmp_path: Path,
) -> None:
    (tmp_path / "recordings").write_text("a file where the directory should be")
    record(tmp_path, ["2026-11-01T10:00:00.000001Z"])
    report = verify([tmp_path], KEY)
    assert report.ok  # the audit event is complete; the missing recording is said, not hidden
    chain = report.chains[0]
    assert chain.events == 1
    assert any("recording of exchange r0 was not written (write_failed" in n for n in chain.notes)


def test_replay_returns_a_verified_recording_and_refuses_an_edited_one(tmp_path: Path) -> None:
    record(tmp_path, ["2026-11-01T10:00:00.000001Z"])
    event, recorded = load_recording([tmp_path], "r0", KEY)
    assert event["request_id"] == "r0"
    assert recorded["request"]["body"] == "card [REDACTED:CARD]"
    path = files(tmp_path)[0]
    path.write_bytes(path.read_bytes().replace(b"REDACTED", b"REDACTEX"))
    with pytest.raises(ReplayRefused, match="was edited"):
        load_recording([tmp_path], "r0", KEY)
    path.unlink()
    with pytest.raises(ReplayRefused, match="is missing"):
        load_recording([tmp_path], "r0", KEY)
    with pytest.raises(ReplayRefused, match="no sealed audit event"):
        load_recording([tmp_path], "nobody", KEY)


def test_replay_refuses_an_event_that_does_not_open_with_the_key(tmp_path: Path) -> None:
    record(tmp_path, ["2026-11-01T10:00:00.000001Z"])
    with pytest.raises(ReplayRefused, match="no sealed audit event"):
        load_recording([tmp_path], "r0", b"z" * 32)


def test_a_stream_is_replayed_chunk_by_chunk_at_its_offsets_scaled_by_speed() -> None:
    waits: list[float] = []
    out = io.BytesIO()
    count = stream_response(document("r", "2026-11-01T10:00:00Z"), out, 2.0, waits.append)
    assert count == 2
    assert out.getvalue() == b"data: one\n\ndata: two\n\n"
    assert waits == [pytest.approx(0.01)]  # 20 ms apart, twice as fast
    stream_response(document("r", "2026-11-01T10:00:00Z"), io.BytesIO(), 0, waits.append)
    assert len(waits) == 1  # speed 0: no waiting


def test_a_store_never_writes_outside_its_directory(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path, KEY, RecordingConfig(enabled=True))
    saved = store.save(document("../../escape", "2026-11-01T10:00:00Z"), CHAIN).result(10)
    store.close()
    assert saved["file"].startswith("recordings/2026-11-01/")
    assert (tmp_path / saved["file"]).is_file()
    assert not any(p.name.endswith(".tmp") for p in tmp_path.rglob("*"))
    assert json.loads((tmp_path / saved["file"]).read_bytes())["request_id"] == "../../escape"


def test_two_processes_never_prune_at_once(tmp_path: Path) -> None:
    import fcntl

    record(tmp_path, ["2026-11-01T10:00:00.000001Z"])
    fd = os.open(tmp_path / "recordings" / ".retention.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        config = RecordingConfig(enabled=True, max_total_bytes=1)
        assert prune(tmp_path, Sealer(KEY), config).busy
    finally:
        os.close(fd)
    assert len(files(tmp_path)) == 1


def test_the_store_applies_retention_on_its_own_and_verify_still_passes(tmp_path: Path) -> None:
    record(tmp_path, ["2026-11-01T10:00:00.000001Z", "2026-11-02T10:00:00.000001Z"])
    config = RecordingConfig(
        enabled=True, max_age_seconds=0, max_total_bytes=1, retention_interval_seconds=0.05
    )
    store = RecordingStore(tmp_path, KEY, config)
    store.start_retention()
    try:
        for _ in range(200):  # polls until the thread ran; no assertion on how long it took
            if not files(tmp_path):
                break
            threading.Event().wait(0.05)
    finally:
        store.close()
    assert files(tmp_path) == []
    report = verify([tmp_path], KEY)
    assert report.ok
    assert report.chains[0].recordings_expired == 2


def test_printing_a_recording_escapes_what_could_drive_a_terminal() -> None:
    recorded = document("r", "2026-11-01T10:00:00Z", body="hi \x1b[2J\x1b]0;owned\x07 there\n")
    out = io.StringIO()
    event = {"request_id": "r", "subject": "eve\x1b[31m", "recording": {"file": "x"}}
    print_exchange(event, recorded, out)
    printed = out.getvalue()
    assert "\x1b" not in printed
    assert "\x07" not in printed
    assert "hi \\x1b[2J\\x1b]0;owned\\x07 there\n" in printed
    assert "subject: eve\\x1b[31m" in printed


def test_a_recording_submitted_while_the_store_closes_is_an_error_not_an_exception(
    tmp_path: Path,
) -> None:
    store = RecordingStore(tmp_path, KEY, RecordingConfig(enabled=True))
    store.close()
    saved = store.save(document("r", "2026-11-01T10:00:00Z"), CHAIN).result(timeout=10)
    assert saved == {"error": "closed"}


def test_a_recording_file_no_event_names_is_a_verify_warning(tmp_path: Path) -> None:
    record(tmp_path, ["2026-11-01T10:00:00.000001Z"])
    planted = tmp_path / "recordings" / "2026-11-01" / "090000.000000_processor-0_fake.json"
    planted.write_text('{"request": {"body": "made up"}}')
    report = verify([tmp_path], KEY)
    assert report.ok
    assert any(
        "1 recording files are named by no audit event" in note and planted.name in note
        for note in report.chains[0].notes
    )


def test_two_recordings_of_one_request_id_in_one_microsecond_both_verify_and_replay(
    tmp_path: Path,
) -> None:
    """They get one name and a ``~1`` suffix; the pool's two threads save them at once."""
    store = RecordingStore(tmp_path, KEY, RecordingConfig(enabled=True))
    writer = AuditWriter(tmp_path, CHAIN, KEY, WriterSettings(flush_interval=0.001))
    time = "2026-11-01T10:00:00.000001Z"
    futures = [store.save(document("same", time, f"body {n}"), CHAIN) for n in range(2)]
    recordings = [future.result(timeout=10) for future in futures]
    assert len({r["file"] for r in recordings}) == 2
    assert any(r["file"].endswith("~1.json") for r in recordings)
    for n, recording in enumerate(recordings):
        event = {"time": time, "request_id": "same", "decision_id": f"d{n}", "outcome": "allowed"}
        assert writer.close_exchange({**event, "recording": recording})
    writer.close()
    report = verify([tmp_path], KEY)
    assert report.ok, problems(tmp_path)
    assert report.chains[0].recordings == 2
    assert len(files(tmp_path)) == 2


def test_a_report_over_two_trails_links_each_recording_to_its_own_trail(tmp_path: Path) -> None:
    """Two audit directories, each with a chain of the same name (a live trail and its
    archive): every link leads to the recording beside the event's own chain file."""
    from extproc.audit.report import build_report

    live, archive = tmp_path / "live", tmp_path / "archive"
    record(live, ["2026-11-02T10:00:00.000001Z"])
    record(archive, ["2026-11-01T10:00:00.000001Z"])
    report = build_report([live, archive], KEY, links_from=tmp_path)
    assert report.verification.ok
    links = {entry["time"][:10]: entry["link"] for entry in report.recorded}
    assert links["2026-11-02"].startswith("live/recordings/2026-11-02/")
    assert links["2026-11-01"].startswith("archive/recordings/2026-11-01/")
    for link in links.values():
        assert (tmp_path / link).is_file()
