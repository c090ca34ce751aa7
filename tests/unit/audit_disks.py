"""Disks for the audit tests: chain files whose appends fail like a full disk, and counting what
reaches the disk. Real files underneath, so what verify reads is what the writer wrote."""

from __future__ import annotations

import errno
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from extproc.audit.files import chain_files
from extproc.audit.store import ChainFiles

KEY = b"disk-test-key-" + b"d" * 24
CHAIN = "processor-0"


class FlakyDisk:
    """``ChainFiles`` whose appends fail with ENOSPC while ``full`` is set, or for the next
    ``failures`` appends. It passes the writer's note through, as ``ChainFiles`` does."""

    def __init__(self, directory: Path, failures: int = 0) -> None:
        self.files = ChainFiles(directory, CHAIN, KEY)
        self.full = threading.Event()
        self.failures = failures
        self.appends = 0
        self.failed = 0

    @property
    def chain(self) -> str:
        return CHAIN

    def append(self, records: Sequence[Mapping[str, Any]]) -> None:
        if self.full.is_set() or self.failures > 0:
            self.failures = max(0, self.failures - 1)
            self.failed += 1
            raise OSError(errno.ENOSPC, "No space left on device")
        self.files.append(records)
        self.appends += 1

    def keep_note(self, note: Mapping[str, Any]) -> None:
        self.files.keep_note(note)

    def clear_note(self) -> None:
        self.files.clear_note()

    def close(self) -> None:
        self.files.close()


def wait_until(condition: Callable[[], object], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition never came true"
        time.sleep(0.002)


def recoveries(directory: Path, cause: str | None = None) -> list[dict[str, Any]]:
    found = []
    for path in chain_files(directory, CHAIN):
        for line in path.open("rb"):
            record = json.loads(line)
            if "recovery" in record and cause in (None, record["recovery"]["cause"]):
                found.append(record["recovery"])
    return found
