"""Reading a trail's events without verifying it (verify first when it matters)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from extproc.audit.exchanges import OPEN, WRITER_KINDS
from extproc.audit.verify import collect

_NOT_EVENTS = ("genesis", "recovery")


def read_events(paths: Iterable[Path], *, opens: bool = False) -> Iterator[dict[str, Any]]:
    """The event records of every chain in ``paths`` (files or directories), chain by chain in
    chain order, with their chain fields (``chain``, ``seq``, ...): one per exchange, its
    ``close`` (or its only event, when it was written when it ended). ``opens`` adds the
    ``open`` records written before requests were forwarded. The chain's own records (genesis,
    recovery, start, stop) are skipped, and so are lines that are not complete JSON records."""
    for _directory, record in read_located_events(paths, opens=opens):
        yield record


def read_located_events(
    paths: Iterable[Path], *, opens: bool = False
) -> Iterator[tuple[Path, dict[str, Any]]]:
    """``read_events``, each with the directory of the file that holds it (two trails may have
    chains of the same name, and a record's recording lies beside its own file)."""
    chains, _errors = collect(paths)
    for files in chains.values():
        for path in files:
            with path.open("rb") as handle:
                for line in handle:
                    try:
                        record = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        continue
                    if isinstance(record, dict) and _is_event(record, opens):
                        yield path.parent, record


def _is_event(record: dict[str, Any], opens: bool) -> bool:
    if any(marker in record for marker in _NOT_EVENTS):
        return False
    kind = record.get("kind")
    return kind not in WRITER_KINDS and (opens or kind != OPEN)
