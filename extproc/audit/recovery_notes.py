"""What a ``recovery`` record means for an auditor: the note verify prints, and whether the chain
fails because of it.

A chain records its own damage and gaps (see ``resume``, ``gaps`` and ``pending``). The rule for
failing is whether something acknowledged is missing:

- fails: ``truncated`` (records cut off while the writer was down), ``lost`` (events accepted
  and never written), and ``refused`` closing records (their exchanges had been served; a
  writer refuses a close only when it was not opened, or the writer was closing).
- warning: ``refused`` opens and events (the caller was told False and must deny the request
  with ``audit_unavailable``: nothing reached the model unrecorded), ``write_failed`` (the
  events were kept and written late), ``head_lost``.
- note: ``torn`` (a write cut short by a kill; nothing it held was acknowledged).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from extproc.audit.chain_report import WARNING

RESTART_CAUSES = frozenset({"torn", "truncated", "head_lost", "lost"})  # found when a writer starts


@dataclass(frozen=True, slots=True)
class Judgement:
    note: str
    fails: bool = False
    refused: int = 0
    lost: int = 0
    write_failures: int = 0


def judge(recovery: Mapping[str, Any]) -> Judgement:
    cause = recovery.get("cause")
    if cause == "torn":
        return Judgement(
            f"recovery: a torn write of {recovery.get('bytes')} bytes (sha256 "
            f"{str(recovery.get('sha256'))[:16]}...) was moved aside to {recovery.get('moved_to')}"
        )
    if cause == "truncated":
        first, last = int(recovery.get("found_seq", -1)) + 1, recovery.get("head_seq")
        return Judgement(
            f"at restart the writer found records seq {first}..{last} missing: they were cut off "
            "the end while it was down (truncated)",
            fails=True,
        )
    if cause == "head_lost":
        return Judgement(
            f"{WARNING}at restart {recovery.get('detail')}, so records cut off before then cannot "
            "be ruled out"
        )
    if cause == "refused":
        return _refused(recovery)
    if cause == "write_failed":
        failures = _count(recovery, "failures")
        return Judgement(
            f"{WARNING}{_many(failures, 'write')} failed ({recovery.get('reason')})"
            f"{_span(recovery)}: new "
            "exchanges were refused meanwhile; the events already accepted were kept and written "
            f"when a write worked again{_noted(recovery)}",
            write_failures=failures,
        )
    if cause == "lost":
        count = _count(recovery, "count")
        return Judgement(
            f"gap: {_many(count, 'event')} accepted and never written{_span(recovery)} "
            f"({recovery.get('reason')}){_noted(recovery)}: records are missing",
            fails=True,
            lost=count,
        )
    return Judgement(f"recovery: {cause}")


def _refused(recovery: Mapping[str, Any]) -> Judgement:
    count = _count(recovery, "count")
    kinds = recovery.get("kinds")
    kinds = kinds if isinstance(kinds, dict) else {}
    closes = int(kinds.get("close", 0) or 0)
    listed = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
    ids = recovery.get("request_ids")
    more = int(recovery.get("more_request_ids", 0) or 0)
    named = ""
    if isinstance(ids, list) and ids:
        named = f"; request ids {', '.join(str(i) for i in ids)}" + (
            f" and {more} more" if more else ""
        )
    gap = (
        f"gap: {_many(count, 'event')} refused ({listed}) because of {recovery.get('reason')}"
        f"{_span(recovery)}{_noted(recovery)}{named}"
    )
    if closes:
        return Judgement(
            f"{gap}: {_many(closes, 'exchange')} served without a closing record",
            fails=True,
            refused=count,
        )
    return Judgement(
        f"{WARNING}{gap}: their callers were told the trail could not take them, so those "
        "requests were refused (audit_unavailable) and never reached the model",
        refused=count,
    )


def _many(count: int, thing: str) -> str:
    return f"{count} {thing}" if count == 1 else f"{count} {thing}s"


def _count(recovery: Mapping[str, Any], name: str) -> int:
    value = recovery.get(name)
    return value if type(value) is int else 0


def _span(recovery: Mapping[str, Any]) -> str:
    first, last = recovery.get("first"), recovery.get("last")
    if not first:
        return ""
    return f" at {first}" if first == last else f" from {first} to {last}"


def _noted(recovery: Mapping[str, Any]) -> str:
    noted = recovery.get("noted")
    return f", noted at {noted} by a writer that stopped before it could write it" if noted else ""
