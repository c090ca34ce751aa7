"""One chain's check: every record in chain order, against the key, the sequence and the head.

Each record must be a complete line, open with the key (hash, MAC, byte-exact form), belong to
the chain, carry the next ``seq`` and the previous record's hash as ``prev``; record 0 is the
genesis. The signed head must be present and must not name a record the files lack; a head that
lags the files is fine (a writer killed between a batch and its head update).

After a problem the walk goes on, so every gap it can prove is reported: it picks the sequence
up again at the next record that opens with the key (a record missing is then found as a seq
hole, a record replayed as a seq that comes again); a record that does not open is skipped and
the next one is taken as it comes. Exchange records are paired on the way (see ``exchanges``)
and the chain's own gap records are judged (see ``recovery_notes``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from extproc.audit.chain import FORMAT_VERSION, GENESIS_PREV, Head, RecordError, Sealer
from extproc.audit.chain_report import WARNING, ChainProblem, ChainReport
from extproc.audit.exchanges import CLOSE, OPEN, WRITER_KINDS, ExchangeBook, OpenedAt
from extproc.audit.files import file_name, head_path, parse_file_name
from extproc.audit.recovery_notes import RESTART_CAUSES, judge
from extproc.audit.resume import read_head

_SEQ_HINT = re.compile(rb'"seq":(\d{1,18})[,}]')
Where = tuple[str, int | None, int | None]  # file, line, seq
_FILE_MISSING = "this chain file is missing (removed)"


class ChainCheck:
    """One chain's walk: the state between records, and what it found."""

    def __init__(
        self, directory: Path, chain: str, sealer: Sealer, kept: Head | None = None
    ) -> None:
        """``kept``: a copy of the chain's head kept elsewhere (``verify --heads``); the chain
        must still hold the record it names."""
        self.sealer = sealer
        self.report = ChainReport(chain, directory)
        self.head, self.head_problem = read_head(directory, chain, sealer)
        self.kept = kept
        self.expected_seq: int | None = 0  # None: unknown after a record that did not open
        self.prev: str | None = GENESIS_PREV
        self.last: Where = (file_name(chain, 0), None, None)
        self.exchanges = ExchangeBook()
        # After the first record that breaks the chain, records are still checked one by one
        # (to find every further problem) but no longer counted: the counts are the verified run.
        self.broken = False

    def run(self, files: list[Path]) -> ChainReport:
        self.report.files = len(files)
        if not files:  # only the head is left
            self._no_files()
            return self.report
        complete = self._walk(files)
        if complete:
            self._check_end()
        for note in self.exchanges.notes():
            self._note(note)
        return self.report

    def _note(self, note: str, where: Where | None = None) -> None:
        self.report.warnings += note.startswith(WARNING)
        self.report.notes.append(note if where is None else f"{where[0]}:{where[1]}: {note}")

    def _fail(self, where: Where, what: str, *, breaks: bool = True) -> None:
        self.report.problems.append(ChainProblem(where[0], where[1], where[2], what))
        self.broken = self.broken or breaks

    def _walk(self, files: list[Path]) -> bool:
        """False when the chain ends in an incomplete line (its end is then the problem)."""
        chain = self.report.chain
        expected_number = 0
        for path in files:
            number = (parse_file_name(path.name) or (chain, -1))[1]
            for missing in range(expected_number, number):
                self._fail((file_name(chain, missing), None, None), _FILE_MISSING)
                self.expected_seq, self.prev = None, None
            expected_number = number + 1
            with path.open("rb") as handle:
                for line_number, raw in enumerate(handle, start=1):
                    if not self._record(path.name, line_number, raw):
                        return False
        return True

    def _record(self, name: str, line_number: int, raw: bytes) -> bool:
        hint = _SEQ_HINT.search(raw)
        where: Where = (name, line_number, int(hint[1]) if hint else None)
        if not raw.endswith(b"\n"):
            self._fail(
                where,
                "the last line is incomplete: a write was cut short (a writer killed mid-write, "
                "which its restart records) or the file was cut",
            )
            return False
        try:
            opened = self.sealer.open(raw[:-1])
        except RecordError as exc:
            self._fail(where, str(exc))
            self.prev = None  # its hash cannot be trusted: take the next record as it comes
            self.expected_seq = where[2] + 1 if where[2] is not None else None
            return True
        record, seq = opened.record, opened.seq
        where = (name, line_number, seq)
        problem, resync = self._sequence_problem(record, seq)
        if problem is None and self._differs_from_head(seq, opened.hash):
            problem = "it differs from the record the signed head names (replaced)"
        if problem is None and self._differs_from_kept(seq, opened.hash):
            problem = "it differs from the record the kept copy of the head names (replaced)"
        if problem is not None:
            self._fail(where, problem)
            if not resync:
                return True  # a record that does not belong here: the sequence goes on without it
        self._count(where, record)
        self.expected_seq = seq + 1
        self.prev = opened.hash
        self.last = where
        return True

    def _differs_from_kept(self, seq: int, digest: str) -> bool:
        kept = self.kept
        return kept is not None and kept.tip.seq == seq and kept.tip.hash != digest

    def _differs_from_head(self, seq: int, digest: str) -> bool:
        head = self.head
        return head is not None and head.tip.seq == seq and head.tip.hash != digest

    def _sequence_problem(self, record: dict[str, Any], seq: int) -> tuple[str | None, bool]:
        """(what is wrong, whether the walk goes on from this record)."""
        chain, expected = self.report.chain, self.expected_seq
        if record["chain"] != chain:
            return f"it belongs to chain {record['chain']!r} (inserted from another chain)", False
        if expected is not None and seq > expected:
            gone = f"seq {expected}" if seq == expected + 1 else f"seqs {expected}..{seq - 1}"
            return f"expected seq {expected}: record {gone} is missing (deleted or moved)", True
        if expected is not None and seq < expected:
            again = f"expected seq {expected}: seq {seq} comes again"
            return f"{again} (inserted, replayed or moved)", False
        if self.prev is not None and record.get("prev") != self.prev:
            return "it does not follow the previous record (replaced, inserted or reordered)", True
        if seq == 0 and record.get("genesis") != {"chain": chain, "format": FORMAT_VERSION}:
            return "the chain does not start with its genesis record", True
        if seq > 0 and "genesis" in record:
            return "a genesis record inside the chain (inserted)", True
        return None, True

    def _count(self, where: Where, record: dict[str, Any]) -> None:
        report = self.report
        counted = not self.broken
        report.records += counted
        kind = record.get("kind")
        recovery = record.get("recovery")
        if kind in WRITER_KINDS:
            self.exchanges.writer_stopped()  # a writer's run began or ended here
            return
        if "genesis" in record:
            return
        if isinstance(recovery, dict):
            self._recovery(where, recovery)
            return
        when = record.get("time")
        if counted:
            report.events += 1
            if isinstance(when, str):
                report.first_time = report.first_time or when
                report.last_time = when
        request_id = record.get("request_id")
        if kind == OPEN and isinstance(request_id, str):
            report.opened += counted
            at = OpenedAt(request_id, f"{where[0]}:{where[1]}", int(where[2] or 0), str(when))
            self.exchanges.open(at)
        elif kind == CLOSE and isinstance(request_id, str):
            report.closed += counted
            self.exchanges.close(request_id)
        recording = record.get("recording")
        if isinstance(recording, dict):
            report.recorded.append((where[0], where[1], where[2], str(request_id), recording))

    def _recovery(self, where: Where, recovery: dict[str, Any]) -> None:
        judgement = judge(recovery)
        report = self.report
        self._note(judgement.note, where)
        report.refused += judgement.refused
        report.lost += judgement.lost
        report.write_failures += judgement.write_failures
        if judgement.fails:  # the chain goes on, but records were lost before it
            self._fail(where, judgement.note, breaks=False)
        if recovery.get("cause") in RESTART_CAUSES or recovery.get("noted"):
            self.exchanges.writer_stopped()  # a new writer: the old one's opens stay open

    def _no_files(self) -> None:
        chain = self.report.chain
        name = head_path(self.report.directory, chain).name
        if self.head is None:
            what = f"{self.head_problem}, and no file of this chain is here"
        else:
            what = (
                f"no file of this chain is here, but its signed head names seq "
                f"{self.head.tip.seq} in {file_name(chain, self.head.file_number)}: the chain's "
                f"files were removed ({file_name(chain, 0)} .. "
                f"{file_name(chain, self.head.file_number)} expected)"
            )
        self._fail((name, None, None), what)

    def _check_end(self) -> None:
        head: Head | None = self.head
        if head is None:
            name = head_path(self.report.directory, self.report.chain).name
            self._fail(
                (name, None, None),
                f"{self.head_problem}: the chain's end cannot be checked (records may have been "
                "cut off)",
            )
        elif self.expected_seq is not None and head.tip.seq >= self.expected_seq:
            self._fail(
                self.last,
                f"the chain ends here, but its signed head names seq {head.tip.seq} in "
                f"{file_name(self.report.chain, head.file_number)}: records were cut off the end "
                "(truncated, or the latest rotated file is missing)",
            )
        kept = self.kept
        if kept is not None and self.expected_seq is not None and kept.tip.seq >= self.expected_seq:
            self._fail(
                self.last,
                f"the chain ends here, but the kept copy of its head names seq {kept.tip.seq} in "
                f"{file_name(self.report.chain, kept.file_number)}: the chain was rolled back or "
                "cut (with its head)",
            )
