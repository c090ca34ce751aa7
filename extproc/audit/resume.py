"""Where a restarting writer continues a chain, and what damage it must record first.

The chain continues from the last complete record on disk (a record is complete with its
newline), after checking that record with the key: a chain whose end cannot be trusted is
never extended (``AuditError`` says so; ``extproc audit verify`` says why).

What the restart finds is written into the chain as ``recovery`` records, never repaired
silently:

- ``torn``: bytes after the last complete record (the process died mid-write). They are saved
  to ``<file>.<offset>.torn`` and the record carries their length and SHA-256; the next record
  overwrites them. Verify reports this as a note, not a failure: nothing acknowledged was lost.
- ``truncated``: the signed head names a later record than the files hold, so records were cut
  off (or the latest rotated file removed) while the writer was down. Verify fails on it.
- ``head_lost``: the head is missing, unreadable or not signed with the key, so a cut-off end
  before this restart cannot be ruled out. Verify reports it as a warning.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from extproc.audit.chain import ChainTip, Head, RecordError, Sealer
from extproc.audit.files import (
    chain_files,
    file_name,
    head_path,
    parse_file_name,
    read_tail,
    save_durably,
    torn_path,
)
from extproc.errors import AuditError


@dataclass(slots=True)
class Resumption:
    path: Path  # the file to append to
    file_number: int
    offset: int  # where the next record goes (the end of the last complete one)
    tip: ChainTip  # ChainTip.empty() when the chain starts afresh
    notes: list[Mapping[str, Any]] = field(default_factory=list)
    torn: bool = False  # bytes past ``offset`` must be cut once the next records are written


def resume(directory: Path, chain: str, sealer: Sealer) -> Resumption:
    files = chain_files(directory, chain)
    head, head_problem = read_head(directory, chain, sealer)
    if not files:
        start = Resumption(directory / file_name(chain, 0), 0, 0, ChainTip.empty())
    else:
        start = _from_files(files, chain, sealer)
    if files or head is not None:
        start.notes.extend(_head_notes(chain, start.tip, head, head_problem))
    return start


def _from_files(files: list[Path], chain: str, sealer: Sealer) -> Resumption:
    last = files[-1]
    number = _number(last)
    line, offset, fragment = read_tail(last)
    source = last
    if not line and len(files) > 1:
        # A file rotated in just before the process died: the tip is in the previous one.
        source = files[-2]
        line, _, previous_fragment = read_tail(source)
        if previous_fragment:
            raise AuditError(
                f"{source}: a finished chain file ends in an incomplete record; the chain "
                "cannot continue (check it with `extproc audit verify`)"
            )
    start = Resumption(last, number, offset, _tip_of(line, source, chain, sealer))
    if fragment:
        aside = torn_path(last, offset)
        save_durably(aside, fragment)
        start.torn = True
        start.notes.append(
            {
                "cause": "torn",
                "file": last.name,
                "offset": offset,
                "bytes": len(fragment),
                "sha256": hashlib.sha256(fragment).hexdigest(),
                "moved_to": aside.name,
            }
        )
    return start


def _tip_of(line: bytes, source: Path, chain: str, sealer: Sealer) -> ChainTip:
    if not line:
        return ChainTip.empty()  # nothing complete was ever written: start with the genesis
    try:
        opened = sealer.open(line)
    except RecordError as exc:
        raise AuditError(
            f"{source}: the chain's last record cannot be trusted ({exc}), so the chain cannot "
            "continue; check it with `extproc audit verify`, then restore the audit key or move "
            "the chain's files aside"
        ) from None
    if opened.record["chain"] != chain:
        raise AuditError(f"{source}: the last record belongs to chain {opened.record['chain']!r}")
    return ChainTip(opened.seq, opened.hash)


def read_head(directory: Path, chain: str, sealer: Sealer) -> tuple[Head | None, str]:
    """The chain's authentic head, or None and what is wrong with it."""
    try:
        data = head_path(directory, chain).read_bytes()
    except FileNotFoundError:
        return None, "the head is missing"
    except OSError as exc:
        return None, f"the head cannot be read ({exc.strerror})"
    try:
        head = sealer.open_head(data)
    except RecordError as exc:
        return None, str(exc)
    if head.chain != chain:
        return None, f"the head belongs to chain {head.chain!r}"
    return head, ""


def _head_notes(
    chain: str, tip: ChainTip, head: Head | None, head_problem: str
) -> list[Mapping[str, Any]]:
    if head is None:
        return [{"cause": "head_lost", "detail": head_problem, "found_seq": tip.seq}]
    cut = head.tip.seq > tip.seq or (head.tip.seq == tip.seq and head.tip.hash != tip.hash)
    if not cut:
        return []
    return [
        {
            "cause": "truncated",
            "head_seq": head.tip.seq,
            "head_hash": head.tip.hash,
            "head_file": file_name(chain, head.file_number),
            "found_seq": tip.seq,
        }
    ]


def _number(path: Path) -> int:
    parsed = parse_file_name(path.name)
    assert parsed is not None  # chain_files lists only well-named files
    return parsed[1]
