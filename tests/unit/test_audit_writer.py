"""The writer's promises: bounded, never a silent drop, durable before acknowledged as written."""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from extproc.audit.writer import AuditWriter, WriterSettings

CHAIN = "fake-0"


class GatedStore:
    """A sink that writes nothing until the test opens its gate."""

    chain = CHAIN

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.batches: list[list[Mapping[str, Any]]] = []
        self.closed = False

    def append(self, events: Sequence[Mapping[str, Any]]) -> None:
        self.gate.wait()
        self.batches.append(list(events))

    def close(self) -> None:
        self.closed = True

    def written_ids(self) -> list[object]:
        return event_ids(self.batches)


class FullDisk:
    """A sink whose disk is full (ENOSPC) until ``failures`` appends have failed, or until the
    test frees it when ``failures`` is None."""

    chain = CHAIN

    def __init__(self, failures: int | None) -> None:
        self.failures = failures
        self.freed = threading.Event()
        self.batches: list[list[Mapping[str, Any]]] = []

    def append(self, events: Sequence[Mapping[str, Any]]) -> None:
        if self.failures is None and not self.freed.is_set():
            raise OSError(errno.ENOSPC, "No space left on device")
        if self.failures:
            self.failures -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        self.batches.append(list(events))

    def close(self) -> None:
        pass


def event_ids(batches: list[list[Mapping[str, Any]]]) -> list[object]:
    """The request ids of the events written, in order: the chain's own records (the gap
    records the writer adds after refusals and failed writes) are not events."""
    return [e["request_id"] for batch in batches for e in batch if "recovery" not in e]


def wait_until(condition: Any, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition never came true"
        time.sleep(0.002)


def ev(i: int) -> dict[str, Any]:
    return {"request_id": f"r{i}", "time": "2026-11-23T10:00:00.000000Z"}


def test_a_full_queue_under_deny_rejects_at_once_and_counts_it(tmp_path: Path) -> None:
    store = GatedStore()
    writer = AuditWriter.over(store, WriterSettings(queue_max_events=5, when_full="deny"))
    results = [writer.submit(ev(i)) for i in range(20)]
    assert results == [True] * 5 + [False] * 15
    assert (writer.submitted, writer.rejected, writer.queue_depth) == (5, 15, 5)
    assert not writer.accepting()
    store.gate.set()
    assert writer.close() == 0
    assert store.written_ids() == [f"r{i}" for i in range(5)]
    assert writer.counters()["written"] == 5


def test_a_full_queue_under_block_waits_for_room_and_drops_nothing() -> None:
    store = GatedStore()
    settings = WriterSettings(queue_max_events=3, when_full="block", block_timeout=60)
    writer = AuditWriter.over(store, settings)
    results: list[bool] = []
    producer = threading.Thread(
        target=lambda: results.extend(writer.submit(ev(i)) for i in range(50))
    )
    producer.start()
    wait_until(lambda: writer.queue_depth == 3)
    assert producer.is_alive()  # held at the full queue, not dropping
    store.gate.set()
    producer.join(60)
    assert writer.close() == 0
    assert results == [True] * 50
    assert writer.rejected == 0
    assert store.written_ids() == [f"r{i}" for i in range(50)]


def test_a_full_queue_under_block_fails_after_its_timeout_and_counts_it() -> None:
    store = GatedStore()
    settings = WriterSettings(queue_max_events=1, when_full="block", block_timeout=0.01)
    writer = AuditWriter.over(store, settings)
    assert writer.submit(ev(0))
    assert not writer.submit(ev(1))
    assert writer.rejected == 1
    store.gate.set()
    writer.close()


def test_batches_hold_at_most_batch_max_events_and_keep_the_order() -> None:
    store = GatedStore()
    writer = AuditWriter.over(store, WriterSettings(batch_max_events=4, flush_interval=60))
    for i in range(10):
        assert writer.submit(ev(i))
    store.gate.set()
    writer.close()
    assert max(len(batch) for batch in store.batches) <= 4
    assert store.written_ids() == [f"r{i}" for i in range(10)]


def test_a_write_error_keeps_the_events_queued_until_the_disk_recovers() -> None:
    store = FullDisk(failures=3)
    writer = AuditWriter.over(store, WriterSettings(batch_max_events=2, flush_interval=0))
    for i in range(6):
        assert writer.submit(ev(i))
    assert writer.close() == 0
    assert writer.write_errors == 3
    assert event_ids(store.batches) == [f"r{i}" for i in range(6)]


def test_a_disk_that_stays_full_fills_the_queue_and_deny_then_refuses_visibly() -> None:
    store = FullDisk(failures=None)
    writer = AuditWriter.over(store, WriterSettings(queue_max_events=3, when_full="deny"))
    assert [writer.submit(ev(i)) for i in range(5)] == [True, True, True, False, False]
    wait_until(lambda: writer.write_errors > 0)
    store.freed.set()
    assert writer.close() == 0
    assert (writer.written, writer.rejected) == (3, 2)


def test_close_reports_the_events_it_could_not_write() -> None:
    store = FullDisk(failures=None)
    writer = AuditWriter.over(store, WriterSettings())
    for i in range(4):
        writer.submit(ev(i))
    assert writer.close(timeout=0.2) == 4
    assert writer.written == 0


def test_a_closed_writer_rejects_new_events() -> None:
    store = GatedStore()
    store.gate.set()
    writer = AuditWriter.over(store)
    writer.close()
    assert not writer.submit(ev(0))
    assert writer.rejected == 1
    assert store.closed


def test_an_event_with_a_field_the_model_lacks_is_refused() -> None:
    store = GatedStore()
    store.gate.set()
    writer = AuditWriter.over(store)
    with pytest.raises(ValueError, match=r"no field.*body"):
        writer.submit({"request_id": "r1", "body": "the prompt"})
    writer.close()
    assert store.batches == []


def test_an_event_without_a_time_gets_the_time_it_was_submitted() -> None:
    store = GatedStore()
    store.gate.set()
    writer = AuditWriter.over(store)
    caller_event = {"request_id": "r1"}
    writer.submit(caller_event)
    writer.close()
    (written,) = store.batches[0]
    assert str(written["time"]).endswith("Z")
    assert "time" not in caller_event  # the caller's dict is left alone


def test_settings_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="when_full"):
        WriterSettings(when_full="drop")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="queue_max_events"):
        WriterSettings(queue_max_events=0)
