"""What ``verify`` found, per chain, and how ``extproc audit verify`` prints it.

A chain fails on any ``problem``: a record that is not what the writer sealed, a record missing
or out of place, a cut-off end, or a gap the chain itself records as a loss (``truncated``,
``lost``, or closing records refused after their exchanges were served). The first problem is
``problem``; the walk goes on past it, so every further one it can prove is in ``problems``.
``notes`` say what the chain records about itself; the ones that start with ``warning:`` are
incidents that lost nothing acknowledged (requests refused before reaching the model, failed
writes that were retried, exchanges a stopped worker never closed, a lost head file).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

WARNING = "warning: "
_MAX_PRINTED_PROBLEMS = 50


@dataclass(frozen=True, slots=True)
class ChainProblem:
    file: str
    line: int | None
    seq: int | None
    what: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        record = "" if self.seq is None else f": record seq {self.seq}"
        return f"{where}{record}: {self.what}"


@dataclass(slots=True)
class ChainReport:
    chain: str
    directory: Path
    files: int = 0
    records: int = 0  # events and the chain's own records (genesis, recovery, start, stop)
    events: int = 0
    first_time: str | None = None  # of the events
    last_time: str | None = None
    opened: int = 0  # exchanges (``open`` records)
    closed: int = 0  # ``close`` records
    refused: int = 0  # events the writer refused, as its gap records count them
    lost: int = 0  # events accepted and never written, as the chain records them
    write_failures: int = 0
    warnings: int = 0  # notes that are warnings
    # (file, line, seq, request id, the event's ``recording`` field) of each recorded exchange
    recorded: list[tuple[str, int | None, int | None, str, dict[str, object]]] = field(
        default_factory=list
    )
    recordings: int = 0  # recordings present and matching their events
    recordings_expired: int = 0  # removed by retention (a signed expiry entry)
    notes: list[str] = field(default_factory=list)
    problems: list[ChainProblem] = field(default_factory=list)

    @property
    def problem(self) -> ChainProblem | None:
        return self.problems[0] if self.problems else None

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(slots=True)
class VerifyReport:
    chains: list[ChainReport] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # paths that are not audit trails

    @property
    def ok(self) -> bool:
        return bool(self.chains) and not self.errors and all(c.ok for c in self.chains)


def print_report(report: VerifyReport, out: TextIO) -> None:
    """One summary line per chain (records, events, exchanges and gaps when there are any, first
    and last time, OK or the first problem), then its notes and further problems indented."""
    several_directories = len({c.directory for c in report.chains}) > 1
    for chain in report.chains:
        name = f"{chain.directory}/{chain.chain}" if several_directories else chain.chain
        status = "OK" if chain.problem is None else f"FAILED: {chain.problem}"
        out.write(f"{name}: {chain.records} records ({_counts(chain)}): {status}\n")
        for note in chain.notes:
            out.write(f"  {note}\n")
        for problem in chain.problems[1:_MAX_PRINTED_PROBLEMS]:
            out.write(f"  also FAILED: {problem}\n")
        if len(chain.problems) > _MAX_PRINTED_PROBLEMS:
            out.write(f"  and {len(chain.problems) - _MAX_PRINTED_PROBLEMS} more problems\n")


def _counts(chain: ChainReport) -> str:
    parts = [f"{chain.files} files"] if chain.files != 1 else []
    parts.append(f"{chain.events} events")
    if chain.opened or chain.closed:
        parts.append(f"{chain.opened} exchanges opened, {chain.closed} closed")
    if chain.refused:
        parts.append(f"{chain.refused} refused")
    if chain.lost:
        parts.append(f"{chain.lost} lost")
    if chain.recordings or chain.recordings_expired:
        parts.append(f"{chain.recordings} recordings verified")
    if chain.recordings_expired:
        parts.append(f"{chain.recordings_expired} expired by retention")
    if chain.write_failures:
        plural = "s" if chain.write_failures > 1 else ""
        parts.append(f"{chain.write_failures} failed write{plural}")
    text = ", ".join(parts)
    return f"{text}, {chain.first_time} .. {chain.last_time}" if chain.first_time else text
