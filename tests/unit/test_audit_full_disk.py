"""A real disk that fills up under a writing process, in both ``when_full`` modes: a small tmpfs
when the tests run as root and may mount one, otherwise a file size limit (RLIMIT_FSIZE, with
SIGXFSZ ignored so a write past it fails with EFBIG). And a writer killed while its disk is
full: its successor records the events it had accepted as lost."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from extproc.audit.verify import run_verify_cli, verify
from extproc.audit.writer import AuditWriter
from tests.unit.audit_disks import CHAIN, KEY, recoveries

REPO = Path(__file__).resolve().parents[2]

# Fills the disk (``fill``), checks what the writer does, frees it, and prints what happened.
SCENARIO = """
import json, os, resource, signal, sys, time
from pathlib import Path
from extproc.audit.writer import AuditWriter, WriterSettings

directory, key, mode, how = Path(sys.argv[1]), sys.argv[2].encode(), sys.argv[3], sys.argv[4]
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the size limit a write fails with EFBIG
_, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
filler = directory.parent / "filler"

def wait_until(condition):
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.002)

def fill():
    if how == "rlimit":  # no byte more in any file than the chain file holds now
        size = max(p.stat().st_size for p in directory.glob("*.jsonl"))
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
        return
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\\0" * 4096)
        except OSError:
            pass

def free():
    if how == "rlimit":
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    else:
        filler.unlink()

settings = WriterSettings(queue_max_events=20, when_full=mode, batch_max_events=4,
                          flush_interval=0, block_timeout=0.05)
writer = AuditWriter(directory, "processor-0", key, settings)
for i in range(30):  # the chain file grows past the note area of the lock file (4 KB)
    wait_until(lambda: writer.queue_depth < 20)
    assert writer.submit({"request_id": f"before-{i}", "route": "eu-chat", "model": "m" * 40})
wait_until(lambda: writer.written == 30)
fill()
opened = writer.open_exchange({"request_id": "refused-open"}).result(timeout=30)
accepting = writer.accepting()
started = time.monotonic()
outcomes = [writer.submit({"request_id": f"during-{i}"}) for i in range(30)]
refusing_took = time.monotonic() - started
free()
wait_until(writer.accepting)
after = writer.open_exchange({"request_id": "after"}).result(timeout=30)
writer.close_exchange({"request_id": "after", "outcome": "allowed"})
unwritten = writer.close()
print(json.dumps({"opened": opened, "accepting": accepting, "accepted": sum(outcomes),
                  "refused": outcomes.count(False), "refusing_took": refusing_took,
                  "after": after, "unwritten": unwritten, **writer.counters()}))
"""


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def run_scenario(directory: Path, mode: str, how: str) -> dict[str, object]:
    directory.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", SCENARIO, str(directory), KEY.decode(), mode, how],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    outcome: dict[str, object] = json.loads(result.stdout)
    return outcome


def check_outcome(directory: Path, outcome: dict[str, object], reason: str) -> None:
    assert outcome["opened"] is False  # the open could not be made durable: request refused
    assert outcome["accepting"] is False
    # Accepted while there was room (they wait for the disk), refused at once after that.
    assert (outcome["accepted"], outcome["refused"]) == (20, 10)
    assert float(str(outcome["refusing_took"])) < 1
    assert outcome["refused_while_failing"] == 10
    assert outcome["withdrawn"] == 1
    assert outcome["after"] is True
    assert outcome["unwritten"] == 0
    assert outcome["written"] == 30 + 20 + 2

    (refused,) = recoveries(directory, "refused")
    assert refused["reason"] == f"write_failed: {reason}"
    assert refused["kinds"] == {"event": 10, "open": 1}
    (failed,) = recoveries(directory, "write_failed")
    assert failed["reason"] == reason
    assert failed["failures"] == outcome["write_errors"]

    report = verify([directory], KEY)
    assert report.ok, report.chains[0].problem
    assert (report.chains[0].events, report.chains[0].refused) == (52, 11)
    out = io.StringIO()
    assert run_verify_cli([directory], KEY, out) == 0
    printed = out.getvalue()
    assert (
        f"warning: gap: 11 events refused (10 event, 1 open) because of write_failed: {reason}"
        in printed
    )
    assert f"failed ({reason})" in printed


@pytest.mark.parametrize("mode", ["block", "deny"])
def test_a_full_tmpfs_is_refused_visibly_and_recorded(small_tmpfs: Path, mode: str) -> None:
    directory = small_tmpfs / "audit"
    check_outcome(directory, run_scenario(directory, mode, "tmpfs"), "ENOSPC")


@pytest.mark.parametrize("mode", ["block", "deny"])
def test_a_file_size_limit_is_refused_visibly_and_recorded(tmp_path: Path, mode: str) -> None:
    directory = tmp_path / "audit"
    check_outcome(directory, run_scenario(directory, mode, "rlimit"), "EFBIG")


KILLED_WHILE_FULL = """
import os, resource, signal, sys, time
from pathlib import Path
from extproc.audit.writer import AuditWriter, WriterSettings

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
directory, key = Path(sys.argv[1]), sys.argv[2].encode()
writer = AuditWriter(directory, "processor-0", key, WriterSettings(flush_interval=0))
for i in range(40):
    writer.submit({"request_id": f"written-{i}", "model": "m" * 60})
while writer.written < 40:
    time.sleep(0.002)
size = max(p.stat().st_size for p in directory.glob("*.jsonl"))
_, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
for i in range(5):
    assert writer.submit({"request_id": f"stuck-{i}"})
lock = directory / "processor-0.lock"
while b'"unwritten":5' not in lock.read_bytes():  # the note, rewritten after each failure
    time.sleep(0.002)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_writer_killed_while_its_disk_is_full_leaves_its_accepted_events_as_lost(
    tmp_path: Path,
) -> None:
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_WHILE_FULL, str(tmp_path), KEY.decode()],
        cwd=REPO,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert killed.returncode == -9, killed.stderr
    AuditWriter(tmp_path, CHAIN, KEY).close()  # the successor records what the note says
    (lost,) = recoveries(tmp_path, "lost")
    assert lost["count"] == 5
    assert lost["reason"] == "writer stopped while writes failed: EFBIG"
    (failed,) = recoveries(tmp_path, "write_failed")
    assert failed["failures"] >= 1
    report = verify([tmp_path], KEY)
    assert not report.ok
    assert "gap: 5 events accepted and never written" in str(report.chains[0].problem)
    assert report.chains[0].events == 40
