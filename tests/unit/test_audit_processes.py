"""Real processes: workers writing side by side, a writer killed with SIGKILL mid-stream, and a
disk that fills up (a file size limit) under a writing process."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from extproc.audit.files import chain_files
from extproc.audit.verify import verify
from extproc.audit.writer import AuditWriter, WriterSettings

KEY = b"process-test-key-" + b"p" * 20
REPO = Path(__file__).resolve().parents[2]


def _write_chain(directory: str, chain: str, count: int) -> None:
    writer = AuditWriter(Path(directory), chain, KEY, WriterSettings(batch_max_events=16))
    for i in range(count):
        assert writer.submit({"request_id": f"{chain}-r{i}", "service": "processor"})
    assert writer.close() == 0


def test_worker_processes_keep_their_own_chains_in_one_directory(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_write_chain, args=(str(tmp_path), f"processor-{i}", 300))
        for i in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    report = verify([tmp_path], KEY)
    assert report.ok, [str(c.problem) for c in report.chains]
    assert [(c.chain, c.events) for c in report.chains] == [
        ("processor-0", 300),
        ("processor-1", 300),
    ]


ENDLESS_WRITER = """
import sys
from pathlib import Path
from extproc.audit.writer import AuditWriter, WriterSettings
writer = AuditWriter(Path(sys.argv[1]), "processor-0", sys.argv[2].encode(),
                     WriterSettings(batch_max_events=7, flush_interval=0, rotate_bytes=50_000))
i = 0
while True:
    if writer.submit({"request_id": f"r{i}", "path": "/v1/chat/completions", "model": "m" * 150}):
        i += 1
"""


def complete_lines(directory: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in chain_files(directory, "processor-0"))


def test_a_killed_writer_leaves_every_complete_event_verifiable_and_a_new_writer_continues(
    tmp_path: Path,
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", ENDLESS_WRITER, str(tmp_path), KEY.decode()], cwd=REPO
    )
    try:
        deadline = time.monotonic() + 60
        while complete_lines(tmp_path) < 1500:
            assert process.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()

    before = verify([tmp_path], KEY).chains[0]
    # Every complete line verifies; at most a torn last line (a write the kill cut short) and
    # records past the lagging head are what the kill can leave.
    assert before.records == complete_lines(tmp_path) >= 1500
    assert before.problem is None or "the last line is incomplete" in before.problem.what

    writer = AuditWriter(tmp_path, "processor-0", KEY)
    for i in range(5):
        assert writer.submit({"request_id": f"after-{i}"})
    assert writer.close() == 0
    after = verify([tmp_path], KEY).chains[0]
    assert after.ok, after.problem
    assert after.events == before.events + 5
    assert len(after.notes) == (0 if before.problem is None else 1)


FILLING_DISK = """
import json, resource, signal, sys, time
from pathlib import Path
from extproc.audit.writer import AuditWriter, WriterSettings
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
_, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
settings = WriterSettings(queue_max_events=40, when_full="deny", batch_max_events=8,
                          flush_interval=0)
writer = AuditWriter(Path(sys.argv[1]), "processor-0", sys.argv[2].encode(), settings)
resource.setrlimit(resource.RLIMIT_FSIZE, (16_384, hard))  # the disk is full at 16 KB
accepted = 0
while writer.queue_depth < 40:  # the queue fills while the writes fail
    accepted += writer.submit({"request_id": f"r{accepted}", "model": "m" * 100})
    time.sleep(0.0005)
refused = writer.submit({"request_id": "one-too-many"})
errors = writer.write_errors
resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))  # space again
unwritten = writer.close()
print(json.dumps({"accepted": accepted, "refused": refused, "errors": errors,
                  "unwritten": unwritten, **writer.counters()}))
"""


def test_a_full_disk_fills_the_queue_then_denies_and_every_accepted_event_is_written_later(
    tmp_path: Path,
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", FILLING_DISK, str(tmp_path), KEY.decode()],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["refused"] is False
    assert outcome["errors"] > 0
    assert outcome["unwritten"] == 0
    assert outcome["written"] == outcome["accepted"] == outcome["submitted"]
    report = verify([tmp_path], KEY)
    assert report.ok, report.chains[0].problem
    assert report.chains[0].events == outcome["accepted"]
