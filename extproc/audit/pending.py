"""A writer's note to the next writer of its chain, for when it stops while its writes fail.

Gaps (see ``gaps``) reach the chain with the next batch that is written. A writer that stops
before a write works again (its disk still full at shutdown, or killed during the outage) would
take them along, and with them the events it had accepted but not yet written. So while its
writes fail, the writer keeps a signed note of both in the first ``NOTE_BYTES`` of the chain's
lock file, allocated when the chain is opened: rewriting bytes that are already allocated works on
a full disk, where appending to the chain does not. The next writer of the chain records the
note's gaps, and the unwritten events as ``lost``, in ``recovery`` records, then clears it.

A note holds for the chain end it was written at (``seq`` and ``hash`` of the tip): if a later
record is durable, the writer recovered and wrote the note's gaps itself, so the note is stale.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from extproc.audit.chain import ChainTip, RecordError, Sealer
from extproc.audit.event import utc_timestamp
from extproc.audit.files import write_at
from extproc.audit.gaps import LOST

log = logging.getLogger("extproc.audit")
NOTE_BYTES = 4096
_EMPTY = bytes(NOTE_BYTES)


@runtime_checkable
class NoteKeeper(Protocol):
    """What a store offers to keep the writer's gaps across a stop (``ChainFiles`` does)."""

    def keep_note(self, note: Mapping[str, Any]) -> None: ...

    def clear_note(self) -> None: ...


def reserve(fd: int) -> bool:
    """Allocate the note's bytes in the lock file now, while there is space. False (and the
    writer runs without a note) when the disk is already too full or the file system cannot."""
    try:
        if os.fstat(fd).st_size < NOTE_BYTES:
            try:
                os.posix_fallocate(fd, 0, NOTE_BYTES)
            except OSError:  # not every file system allocates ahead; real zeros allocate too
                write_at(fd, _EMPTY, 0)
            os.fsync(fd)
    except OSError as exc:
        log.warning("audit note area not reserved", extra={"reason": exc.strerror})
        return False
    return True


class NoteArea:
    """The note bytes of one chain's lock file (the chain's writer holds the file)."""

    def __init__(self, fd: int, sealer: Sealer, chain: str, *, usable: bool) -> None:
        self._fd = fd
        self._sealer = sealer
        self._chain = chain
        self._usable = usable
        self.found = False  # ``read`` found a note, valid or not: the next open clears it

    def save(self, tip: ChainTip, note: Mapping[str, Any]) -> bool:
        """Replace the note; False (logged) when it cannot be written."""
        if not self._usable:
            return False
        fields = {**note, "chain": self._chain, "saved": utc_timestamp()}
        fields.update(tip_seq=tip.seq, tip_hash=tip.hash)
        data = self._sealer.seal_note(fields)
        if len(data) >= NOTE_BYTES:  # too many request ids: the counts are what must survive
            gaps = [_without_ids(gap) for gap in fields.get("gaps", ())]
            data = self._sealer.seal_note({**fields, "gaps": gaps})
        if len(data) >= NOTE_BYTES:
            log.error("audit note too large to keep", extra={"chain": self._chain})
            return False
        try:
            write_at(self._fd, data + _EMPTY[len(data) :], 0)
            os.fdatasync(self._fd)
        except OSError as exc:
            log.error(
                "audit note not written", extra={"chain": self._chain, "reason": exc.strerror}
            )
            return False
        return True

    def clear(self) -> None:
        if self._usable:
            try:
                write_at(self._fd, _EMPTY, 0)
                os.fdatasync(self._fd)
            except OSError as exc:
                log.error(
                    "audit note not cleared", extra={"chain": self._chain, "reason": exc.strerror}
                )

    def read(self) -> dict[str, Any] | None:
        """The note the previous writer left, if any; an unreadable one is logged and ignored
        (it can only have added gaps, never hidden records)."""
        data = os.pread(self._fd, NOTE_BYTES, 0)
        line = data.split(b"\n", 1)[0].strip(b"\0")
        if not line:
            return None
        self.found = True
        try:
            note = self._sealer.open_note(line)
        except RecordError as exc:
            log.warning("audit note ignored", extra={"chain": self._chain, "reason": str(exc)})
            return None
        if note.get("chain") != self._chain:
            log.warning("audit note of another chain ignored", extra={"chain": self._chain})
            return None
        return note


def applies(note: Mapping[str, Any], tip: ChainTip) -> bool:
    return note.get("tip_seq") == tip.seq and note.get("tip_hash") == tip.hash


def _without_ids(gap: Mapping[str, Any]) -> dict[str, Any]:
    trimmed = {k: v for k, v in gap.items() if k != "request_ids"}
    ids = gap.get("request_ids")
    if isinstance(ids, list):
        trimmed["more_request_ids"] = int(gap.get("more_request_ids", 0)) + len(ids)
    return trimmed


def recoveries(note: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``recovery`` records a note stands for: its gaps as they were, and its unwritten
    events as ``lost``. Each says the stopped writer noted it (``noted`` is when)."""
    noted = note.get("saved")
    found: list[dict[str, Any]] = [
        {**gap, "noted": noted} for gap in note.get("gaps", ()) if isinstance(gap, dict)
    ]
    unwritten, reason = note.get("unwritten"), note.get("reason")
    if type(unwritten) is int and unwritten > 0:
        found.append(
            {
                "cause": LOST,
                "reason": f"writer stopped while writes failed: {reason}"
                if reason
                else "writer stopped before writing them",
                "count": unwritten,
                "first": note.get("first"),
                "last": note.get("last"),
                "noted": noted,
            }
        )
    return found
