"""Write-ahead: ``submit_durable`` and ``open_exchange`` say True only once the record is on disk,
events that arrive together share one write and fsync (group commit), and an open keeps room
for its close."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from extproc.audit.files import chain_files
from extproc.audit.verify import verify
from extproc.audit.writer import AuditWriter, WriterSettings
from tests.unit.audit_disks import CHAIN, KEY, FlakyDisk, wait_until


class FsyncCounter:
    """Counts the fsyncs of the chain's files while the test runs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = os.fsync

        def counting(fd: int) -> None:
            self.count += 1
            real(fd)

        monkeypatch.setattr(os, "fsync", counting)


def on_disk(directory: Path) -> bytes:
    return b"".join(path.read_bytes() for path in chain_files(directory, CHAIN))


def check_on_disk_when_resolved(
    directory: Path, future: Future[bool], request_id: str
) -> list[str]:
    """Read the chain back the moment the future resolves (the callback runs right then):
    a True may only come once the record is in the file."""
    problems: list[str] = []

    def check(done: Future[bool]) -> None:
        if done.result() and f'"request_id":"{request_id}"'.encode() not in on_disk(directory):
            problems.append(request_id)

    future.add_done_callback(check)
    return problems


def test_concurrent_durable_submissions_within_the_window_share_one_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = WriterSettings(commit_window=0.002, flush_interval=60)
    writer = AuditWriter(tmp_path, CHAIN, KEY, settings)
    fsyncs = FsyncCounter(monkeypatch)

    async def burst() -> list[bool]:
        futures = [writer.submit_durable({"request_id": f"r{i}"}) for i in range(64)]
        problems = [
            check_on_disk_when_resolved(tmp_path, f, f"r{i}") for i, f in enumerate(futures)
        ]
        results = await asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
        assert not any(problems)
        return results

    started = time.monotonic()
    assert asyncio.run(burst()) == [True] * 64
    assert time.monotonic() - started < 5  # the commit window, not the 60 s flush interval
    assert fsyncs.count <= 2
    writer.close()
    assert verify([tmp_path], KEY).chains[0].events == 64


def test_durable_submissions_from_worker_threads_are_grouped_and_each_is_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = AuditWriter(tmp_path, CHAIN, KEY, WriterSettings(commit_window=0.002))
    fsyncs = FsyncCounter(monkeypatch)
    gate = threading.Barrier(16)

    def submit(i: int) -> tuple[bool, list[str]]:
        gate.wait()
        future = writer.submit_durable({"request_id": f"t{i}"})
        problems = check_on_disk_when_resolved(tmp_path, future, f"t{i}")
        return future.result(timeout=10), problems

    async def from_threads() -> list[tuple[bool, list[str]]]:
        # Enough workers for all 16 to meet at the barrier (the default pool may be smaller).
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(16))
        return await asyncio.gather(*(asyncio.to_thread(submit, i) for i in range(16)))

    outcomes = asyncio.run(from_threads())
    assert [ok for ok, _ in outcomes] == [True] * 16
    assert not any(problems for _, problems in outcomes)
    assert fsyncs.count <= 4
    writer.close()


def test_with_no_commit_window_each_lone_submission_is_written_at_once(tmp_path: Path) -> None:
    writer = AuditWriter(tmp_path, CHAIN, KEY, WriterSettings(commit_window=0, flush_interval=60))
    for i in range(3):
        started = time.monotonic()
        assert writer.submit_durable({"request_id": f"r{i}"}).result(timeout=10)
        assert time.monotonic() - started < 1
        assert f'"request_id":"r{i}"'.encode() in on_disk(tmp_path)
    writer.close()


def test_plain_events_ahead_of_a_durable_one_go_out_in_its_batch_in_order(tmp_path: Path) -> None:
    writer = AuditWriter(tmp_path, CHAIN, KEY, WriterSettings(flush_interval=60))
    for i in range(3):
        assert writer.submit({"request_id": f"plain-{i}"})
    assert writer.submit_durable({"request_id": "durable"}).result(timeout=10)
    text = on_disk(tmp_path)
    positions = [text.index(f'"request_id":"{name}"'.encode()) for name in ("plain-0", "durable")]
    assert positions == sorted(positions)
    writer.close()


def test_an_open_keeps_room_for_its_close_even_when_the_backlog_is_full(tmp_path: Path) -> None:
    disk = FlakyDisk(tmp_path)
    release = threading.Event()
    original = disk.append
    disk.append = lambda records: (release.wait(), original(records))  # type: ignore[method-assign]
    writer = AuditWriter.over(disk, WriterSettings(queue_max_events=4, when_full="deny"))
    opens = [
        writer.open_exchange({"request_id": f"x{i}", "decision_id": f"d{i}"}) for i in range(3)
    ]
    assert [f.done() for f in opens] == [False, False, True]  # the third found no room
    assert opens[2].result() is False
    assert not writer.accepting()
    assert not writer.submit({"request_id": "plain"})  # the kept room is for the closes
    assert writer.counters()["open_exchanges"] == 2
    release.set()
    assert [f.result(timeout=10) for f in opens[:2]] == [True, True]
    for i in range(2):
        assert writer.close_exchange({"request_id": f"x{i}", "outcome": "allowed"})
    assert writer.counters()["open_exchanges"] == 0
    assert writer.close() == 0
    chain = verify([tmp_path], KEY).chains[0]
    assert (chain.opened, chain.closed, chain.refused) == (2, 2, 2)


def test_a_cancelled_waiter_does_not_withdraw_the_record(tmp_path: Path) -> None:
    writer = AuditWriter(tmp_path, CHAIN, KEY, WriterSettings(commit_window=0.05))

    async def give_up() -> Future[bool]:
        future = writer.open_exchange({"request_id": "impatient"})
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.wrap_future(future), 0.001)
        return future

    future = asyncio.run(give_up())
    assert future.result(timeout=10) is True
    writer.close()
    assert b'"request_id":"impatient"' in on_disk(tmp_path)


def test_a_durable_submission_whose_write_fails_is_withdrawn_and_told_false(
    tmp_path: Path,
) -> None:
    disk = FlakyDisk(tmp_path, failures=1)
    writer = AuditWriter.over(disk, WriterSettings(commit_window=0))
    assert writer.submit({"request_id": "plain"})
    assert writer.open_exchange({"request_id": "withdrawn"}).result(timeout=10) is False
    assert writer.counters()["withdrawn"] == 1
    assert writer.counters()["open_exchanges"] == 0
    wait_until(lambda: writer.written == 1)  # the plain event stayed and was written
    assert writer.close() == 0
    text = on_disk(tmp_path)
    assert b'"request_id":"plain"' in text
    assert b'"kind":"open","prev"' not in text  # the withdrawn open is only counted
    chain = verify([tmp_path], KEY).chains[0]
    assert (chain.opened, chain.refused) == (0, 1)


def test_exchange_records_need_a_request_id_and_carry_no_unknown_field(tmp_path: Path) -> None:
    writer = AuditWriter(tmp_path, CHAIN, KEY)
    with pytest.raises(ValueError, match="request_id"):
        writer.open_exchange({"decision_id": "d1"})
    with pytest.raises(ValueError, match="no field"):
        writer.open_exchange({"request_id": "r1", "kind": "close"})
    with pytest.raises(ValueError, match="no field"):
        writer.submit_durable({"request_id": "r1", "prompt": "text"})
    caller: dict[str, Any] = {"request_id": "r1"}
    assert writer.open_exchange(caller).result(timeout=10)
    assert caller == {"request_id": "r1"}  # the caller's dict is left alone
    writer.close()


def test_settings_refuse_a_commit_window_that_is_not_a_short_wait() -> None:
    with pytest.raises(ValueError, match="commit_window"):
        WriterSettings(commit_window=-0.001)
    with pytest.raises(ValueError, match="commit_window"):
        WriterSettings(commit_window=5)
