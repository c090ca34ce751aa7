"""Exchanges opened before forwarding and closed when they end: verify pairs them, lists the ones
never closed, and reports every gap it can prove, not only the first."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from extproc.audit.files import chain_files
from extproc.audit.read import read_events
from extproc.audit.verify import run_verify_cli, verify
from extproc.audit.writer import AuditWriter, WriterSettings
from tests.unit.audit_disks import CHAIN, KEY

REPO = Path(__file__).resolve().parents[2]

KILLED_BETWEEN_OPEN_AND_CLOSE = """
import sys
from pathlib import Path
from extproc.audit.writer import AuditWriter
writer = AuditWriter(Path(sys.argv[1]), "processor-0", sys.argv[2].encode())
assert writer.open_exchange({"request_id": "done", "decision_id": "d0"}).result(10)
assert writer.close_exchange({"request_id": "done", "outcome": "allowed", "upstream_status": 200})
assert writer.open_exchange({"request_id": "in-flight", "decision_id": "d1"}).result(10)
print("forwarded", flush=True)  # the request would reach the model now
sys.stdin.readline()  # killed here, before the exchange ends
"""


def cli(directory: Path, *, strict: bool = False) -> tuple[int, str]:
    out = io.StringIO()
    return run_verify_cli([directory], KEY, out, strict=strict), out.getvalue()


def exchange(writer: AuditWriter, request_id: str) -> None:
    assert writer.open_exchange({"request_id": request_id}).result(timeout=10)
    assert writer.close_exchange({"request_id": request_id, "outcome": "allowed"})


def test_a_worker_killed_between_an_open_and_its_close_leaves_the_open_listed(
    tmp_path: Path,
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_BETWEEN_OPEN_AND_CLOSE, str(tmp_path), KEY.decode()],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "forwarded\n"
    finally:
        process.kill()
        process.wait()

    code, out = cli(tmp_path)
    assert code == 0, out  # the write-ahead record is there; nothing acknowledged is missing
    assert "2 exchanges opened, 1 closed" in out
    assert "open at end of chain: exchange in-flight opened at processor-0.000000.jsonl:" in out
    assert "done" not in out

    writer = AuditWriter(tmp_path, CHAIN, KEY)  # the worker restarts and serves again
    exchange(writer, "next")
    assert writer.close() == 0
    code, out = cli(tmp_path)
    assert code == 0, out
    assert "warning: exchange in-flight opened at processor-0.000000.jsonl:" in out
    assert "never closed: the worker stopped" in out
    assert "open at end of chain" not in out
    assert cli(tmp_path, strict=True)[0] == 1
    chain = verify([tmp_path], KEY).chains[0]
    assert (chain.opened, chain.closed, chain.warnings) == (3, 2, 1)


def test_a_clean_stop_with_an_exchange_still_open_is_a_warning(tmp_path: Path) -> None:
    writer = AuditWriter(tmp_path, CHAIN, KEY)
    exchange(writer, "closed")
    assert writer.open_exchange({"request_id": "left-open"}).result(timeout=10)
    assert writer.close() == 0
    _code, out = cli(tmp_path)
    assert "warning: exchange left-open opened at" in out
    kinds = [json.loads(line).get("kind") for line in on_disk_lines(tmp_path)]
    assert kinds == [None, "start", "open", "close", "open", "stop"]  # after the genesis


def on_disk_lines(directory: Path) -> list[bytes]:
    return [line for path in chain_files(directory, CHAIN) for line in path.open("rb")]


def test_chains_without_exchange_records_have_no_start_or_stop(tmp_path: Path) -> None:
    writer = AuditWriter(tmp_path, CHAIN, KEY)
    assert writer.submit({"request_id": "plain"})
    assert writer.close() == 0
    assert not any(b'"kind"' in line for line in on_disk_lines(tmp_path))


def test_closes_without_opens_are_counted_in_one_note(tmp_path: Path) -> None:
    writer = AuditWriter(tmp_path, CHAIN, KEY)
    for i in range(3):
        assert writer.close_exchange({"request_id": f"after-{i}", "outcome": "allowed"})
    assert writer.close() == 0
    code, out = cli(tmp_path)
    assert code == 0
    assert "3 closing records have no opening record" in out
    assert "warning" not in out


def test_read_events_gives_one_record_per_exchange_unless_opens_are_asked_for(
    tmp_path: Path,
) -> None:
    writer = AuditWriter(tmp_path, CHAIN, KEY)
    exchange(writer, "r1")
    assert writer.submit({"request_id": "plain"})
    writer.close()
    assert [(e["request_id"], e.get("kind")) for e in read_events([tmp_path])] == [
        ("r1", "close"),
        ("plain", None),
    ]
    assert [e.get("kind") for e in read_events([tmp_path], opens=True)] == [
        "open",
        "close",
        None,
    ]


def test_verify_reports_every_gap_it_can_prove_not_only_the_first(tmp_path: Path) -> None:
    writer = AuditWriter(tmp_path, CHAIN, KEY, WriterSettings(batch_max_events=1, flush_interval=0))
    for i in range(8):
        assert writer.submit({"request_id": f"r{i}"})
    writer.close()
    (path,) = chain_files(tmp_path, CHAIN)
    lines = path.read_bytes().splitlines(keepends=True)
    del lines[6]
    del lines[2]
    path.write_bytes(b"".join(lines))
    chain = verify([tmp_path], KEY).chains[0]
    assert [str(p) for p in chain.problems] == [
        f"{path.name}:3: record seq 3: expected seq 2: record seq 2 is missing (deleted or moved)",
        f"{path.name}:6: record seq 7: expected seq 6: record seq 6 is missing (deleted or moved)",
    ]
    assert chain.records == 2  # the counts are the run verified before the first problem
    code, out = cli(tmp_path)
    assert code == 1
    assert "also FAILED: " + str(chain.problems[1]) in out
