"""No audit event is skipped silently: while writes fail or the backlog is full, ``accepting()``
is False, refusals are counted, and once a write works the gap is a record in the chain that
verify prints. Events accepted and never written fail verification."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from typing import Any, Literal

import pytest

from extproc.audit.store import ChainFiles
from extproc.audit.verify import run_verify_cli, verify
from extproc.audit.writer import AuditWriter, WriterSettings
from tests.unit.audit_disks import CHAIN, KEY, FlakyDisk, recoveries, wait_until

Mode = Literal["block", "deny"]


def ev(name: str) -> dict[str, Any]:
    return {"request_id": name, "outcome": "allowed", "route": "eu-chat"}


def verify_out(directory: Path, *, strict: bool = False) -> tuple[int, str]:
    out = io.StringIO()
    return run_verify_cli([directory], KEY, out, strict=strict), out.getvalue()


@pytest.mark.parametrize("mode", ["block", "deny"])
def test_a_failing_disk_stops_accepting_refuses_counts_and_records_the_gap(
    tmp_path: Path, mode: Mode
) -> None:
    disk = FlakyDisk(tmp_path)
    settings = WriterSettings(queue_max_events=6, when_full=mode, flush_interval=0)
    writer = AuditWriter.over(disk, settings)
    assert writer.accepting()
    disk.full.set()
    assert writer.submit(ev("kept-0"))  # accepted: it waits in the backlog for the disk
    wait_until(lambda: writer.write_errors > 0)
    assert not writer.accepting()
    assert writer.counters()["failing"] == 1

    opened = writer.open_exchange({"request_id": "refused-open"})
    assert opened.done()
    assert opened.result() is False
    started = time.monotonic()
    results = [writer.submit(ev(f"kept-{i}")) for i in range(1, 8)]
    assert time.monotonic() - started < 0.05  # a full backlog while failing refuses at once
    assert results == [True] * 5 + [False] * 2
    counters = writer.counters()
    assert (counters["rejected"], counters["refused_while_failing"]) == (3, 3)

    disk.full.clear()
    wait_until(writer.accepting)
    assert writer.close() == 0
    assert writer.written == 6

    (refused,) = recoveries(tmp_path, "refused")
    assert refused["reason"] == "write_failed: ENOSPC"
    assert (refused["count"], refused["kinds"]) == (3, {"event": 2, "open": 1})
    assert refused["request_ids"] == ["refused-open", "kept-6", "kept-7"]
    assert refused["first"] <= refused["last"]
    (failed,) = recoveries(tmp_path, "write_failed")
    assert failed["reason"] == "ENOSPC"
    assert failed["failures"] == writer.write_errors

    code, out = verify_out(tmp_path)
    assert code == 0, out  # refused requests never reached the model; nothing accepted was lost
    assert "warning: gap: 3 events refused (2 event, 1 open) because of write_failed: ENOSPC" in out
    assert "request ids refused-open, kept-6, kept-7" in out
    writes = "1 write" if failed["failures"] == 1 else f"{failed['failures']} writes"
    assert f"warning: {writes} failed (ENOSPC)" in out
    report = verify([tmp_path], KEY).chains[0]
    assert (report.events, report.refused, report.write_failures) == (6, 3, failed["failures"])
    assert verify_out(tmp_path, strict=True)[0] == 1


def test_a_full_backlog_under_deny_refuses_at_once_and_records_queue_full(tmp_path: Path) -> None:
    disk = FlakyDisk(tmp_path)
    gate = threading.Lock()
    gate.acquire()
    original = disk.append
    disk.append = lambda records: (gate.acquire(), gate.release(), original(records))  # type: ignore[method-assign]
    writer = AuditWriter.over(disk, WriterSettings(queue_max_events=3, when_full="deny"))
    assert [writer.submit(ev(f"r{i}")) for i in range(5)] == [True, True, True, False, False]
    assert not writer.accepting()
    assert writer.counters()["refused_while_failing"] == 0
    gate.release()
    assert writer.close() == 0
    (refused,) = recoveries(tmp_path, "refused")
    assert (refused["reason"], refused["count"], refused["request_ids"]) == (
        "queue_full",
        2,
        ["r3", "r4"],
    )
    code, out = verify_out(tmp_path)
    assert code == 0
    assert "warning: gap: 2 events refused (2 event) because of queue_full" in out
    assert "2 refused" in out.splitlines()[0]


def test_a_full_backlog_under_block_waits_its_timeout_then_refuses(tmp_path: Path) -> None:
    disk = FlakyDisk(tmp_path)
    release = threading.Event()
    original = disk.append
    disk.append = lambda records: (release.wait(), original(records))  # type: ignore[method-assign]
    settings = WriterSettings(queue_max_events=2, when_full="block", block_timeout=0.05)
    writer = AuditWriter.over(disk, settings)
    assert writer.submit(ev("r0"))
    assert writer.submit(ev("r1"))
    assert not writer.accepting()  # full under block too: no new exchange may start
    started = time.monotonic()
    assert not writer.submit(ev("r2"))
    assert 0.04 <= time.monotonic() - started < 1
    release.set()
    assert writer.close() == 0
    assert [r["reason"] for r in recoveries(tmp_path, "refused")] == ["queue_full"]


def test_a_refused_close_fails_verify_because_its_exchange_was_served(tmp_path: Path) -> None:
    """A close without an open is what a processor writes when an exchange ends
    (after_exchange): refusing it loses the record of a served exchange."""
    disk = FlakyDisk(tmp_path)
    release = threading.Event()
    original = disk.append
    disk.append = lambda records: (release.wait(), original(records))  # type: ignore[method-assign]
    writer = AuditWriter.over(disk, WriterSettings(queue_max_events=1, when_full="deny"))
    assert writer.close_exchange(ev("served-0"))
    assert not writer.close_exchange(ev("served-1"))
    release.set()
    assert writer.close() == 0
    code, out = verify_out(tmp_path)
    assert code == 1
    assert "FAILED" in out
    assert "1 exchange served without a closing record" in out
    assert "request ids served-1" in out


def test_events_left_unwritten_at_close_are_recorded_as_lost_by_the_next_writer(
    tmp_path: Path,
) -> None:
    disk = FlakyDisk(tmp_path)
    writer = AuditWriter.over(disk, WriterSettings(queue_max_events=3, flush_interval=0))
    assert writer.submit(ev("written"))
    wait_until(lambda: writer.written == 1)
    disk.full.set()
    assert [writer.submit(ev(f"stuck-{i}")) for i in range(3)] == [True] * 3
    wait_until(lambda: writer.write_errors > 0)
    assert not writer.submit(ev("refused"))
    assert writer.close(timeout=0.2) == 3  # the disk never came back

    assert verify([tmp_path], KEY).ok  # nothing in the chain yet says what is missing
    successor = AuditWriter(tmp_path, CHAIN, KEY)
    assert successor.submit(ev("after"))
    assert successor.close() == 0

    (lost,) = recoveries(tmp_path, "lost")
    assert lost["count"] == 3
    assert lost["reason"] == "writer stopped while writes failed: ENOSPC"
    (refused,) = recoveries(tmp_path, "refused")
    assert (refused["count"], refused["request_ids"]) == (1, ["refused"])
    assert "noted" in refused
    code, out = verify_out(tmp_path)
    assert code == 1
    assert "gap: 3 events accepted and never written" in out
    assert verify([tmp_path], KEY).chains[0].lost == 3

    # Recorded once: the note is cleared, so the next start adds nothing.
    AuditWriter(tmp_path, CHAIN, KEY).close()
    assert len(recoveries(tmp_path, "lost")) == 1


def test_a_writer_that_recovers_clears_its_note(tmp_path: Path) -> None:
    disk = FlakyDisk(tmp_path, failures=2)
    writer = AuditWriter.over(disk, WriterSettings(flush_interval=0))
    assert writer.submit(ev("late"))
    assert writer.close() == 0
    assert writer.write_errors == 2
    AuditWriter(tmp_path, CHAIN, KEY).close()
    assert recoveries(tmp_path, "lost") == []
    assert [r["cause"] for r in recoveries(tmp_path)] == ["write_failed"]
    assert verify([tmp_path], KEY).ok


def test_a_note_for_an_earlier_chain_end_is_stale_and_ignored(tmp_path: Path) -> None:
    """Killed after a write worked but before the note was cleared: that write carried the
    note's gaps, so the next writer must not record them again."""
    files = ChainFiles(tmp_path, CHAIN, KEY)
    files.keep_note({"gaps": [], "unwritten": 4, "first": "", "last": "", "reason": "ENOSPC"})
    files.append([ev("written-after-the-note")])
    files.close()
    AuditWriter(tmp_path, CHAIN, KEY).close()
    assert recoveries(tmp_path) == []
    assert verify([tmp_path], KEY).ok


def test_a_forged_note_is_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    AuditWriter(tmp_path, CHAIN, KEY).close()
    forged = b'{"chain":"processor-0","unwritten":99,"mac":"00"}\n'
    with (tmp_path / f"{CHAIN}.lock").open("r+b") as handle:
        handle.write(forged)
    AuditWriter(tmp_path, CHAIN, KEY).close()
    assert recoveries(tmp_path) == []
    assert "audit note ignored" in caplog.text
    assert (tmp_path / f"{CHAIN}.lock").read_bytes().strip(b"\0") == b""  # cleared


def test_a_closed_writer_refuses_without_a_gap_record(tmp_path: Path) -> None:
    writer = AuditWriter.over(FlakyDisk(tmp_path))
    writer.close()
    assert not writer.accepting()
    assert not writer.submit(ev("late"))
    assert writer.open_exchange({"request_id": "late"}).result(timeout=1) is False
    assert writer.rejected == 2
    assert recoveries(tmp_path) == []
