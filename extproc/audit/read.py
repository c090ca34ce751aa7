"""Reading a trail's events without verifying it (verify first when it matters)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from extproc.audit.verify import collect

_NOT_EVENTS = ("genesis", "recovery")


def read_events(paths: Iterable[Path]) -> Iterator[dict[str, Any]]:
    """The event records of every chain in ``paths`` (files or directories), chain by chain in
    chain order, with their chain fields (``chain``, ``seq``, ...). Genesis and recovery records
    are skipped, and so are lines that are not complete JSON records."""
    chains, _errors = collect(paths)
    for files in chains.values():
        for path in files:
            with path.open("rb") as handle:
                for line in handle:
                    try:
                        record = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        continue
                    if isinstance(record, dict) and not any(m in record for m in _NOT_EVENTS):
                        yield record
