"""Check audit chains and name the first record that is wrong.

For each chain found in the given files and directories, records are read in chain order
(files by number, lines in order) and each must: be a complete line, open with the key (hash,
MAC, byte-exact form), belong to the chain, carry the next ``seq`` and the previous record's
hash as ``prev``; record 0 is the genesis. The signed head must be present and must not name a
record the files lack. The first failure stops the chain's check and is reported with file,
line, seq and what is wrong:

- edited: the content does not match its hash, or the bytes differ from the sealed form;
- written with another key (or edited and re-hashed): the MAC does not verify;
- deleted, inserted, reordered: an unexpected ``seq``, a wrong ``prev``, a foreign chain id;
- truncated: an incomplete last line, a missing rotated file, or a chain that ends before the
  record its head names (records cut off the end, or the latest rotated file removed).

A head that lags the files is fine (a writer killed between a batch and its head update).
Give directories, or every file of a chain: its files must run from 000000 without a gap.

``recovery`` records a restarting writer added are listed as notes; one that records a
truncation found at restart fails the chain (records were lost), the others do not.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from extproc.audit.chain import FORMAT_VERSION, GENESIS_PREV, Head, RecordError, Sealer
from extproc.audit.files import file_name, head_path, parse_file_name
from extproc.audit.resume import read_head

_SEQ_HINT = re.compile(rb'"seq":(\d{1,18})[,}]')
_NOT_EVENTS = ("genesis", "recovery")


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
    records: int = 0  # events and the chain's own records (genesis, recovery)
    events: int = 0
    first_time: str | None = None  # of the events
    last_time: str | None = None
    notes: list[str] = field(default_factory=list)
    problem: ChainProblem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass(slots=True)
class VerifyReport:
    chains: list[ChainReport] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # paths that are not audit trails

    @property
    def ok(self) -> bool:
        return bool(self.chains) and not self.errors and all(c.ok for c in self.chains)


def verify(paths: Iterable[Path], key: bytes) -> VerifyReport:
    """Check every chain in ``paths`` (chain files, or directories of them)."""
    sealer = Sealer(key)
    chains, errors = collect(paths)
    report = VerifyReport(errors=errors)
    for (directory, chain), files in chains.items():
        report.chains.append(_Check(directory, chain, sealer).run(files))
    return report


def collect(paths: Iterable[Path]) -> tuple[dict[tuple[Path, str], list[Path]], list[str]]:
    """Chain files grouped by (directory, chain id), each group in chain order."""
    found: dict[tuple[Path, str], dict[int, Path]] = {}
    errors: list[str] = []
    for path in paths:
        if path.is_dir():
            candidates = sorted(path.glob("*.jsonl"))
        elif path.is_file():
            if parse_file_name(path.name) is None:
                errors.append(f"{path}: not an audit chain file (<chain>.<number>.jsonl)")
            candidates = [path]
        else:
            errors.append(f"{path}: no such file or directory")
            continue
        for candidate in candidates:
            parsed = parse_file_name(candidate.name)
            if parsed is not None:
                found.setdefault((candidate.parent, parsed[0]), {})[parsed[1]] = candidate
    chains = {
        group: [files[number] for number in sorted(files)] for group, files in sorted(found.items())
    }
    return chains, errors


def run_verify_cli(paths: list[Path], key: bytes, out: TextIO | None = None) -> int:
    """``extproc audit verify``: one summary line per chain (records, events, first and last
    time, OK or the first problem), its notes indented below; 0 when everything verifies."""
    out = sys.stdout if out is None else out
    report = verify(paths, key)
    for error in report.errors:
        out.write(f"error: {error}\n")
    if not report.chains:
        out.write(f"no audit chains found in {', '.join(str(p) for p in paths)}\n")
        return 1
    several_directories = len({c.directory for c in report.chains}) > 1
    for chain in report.chains:
        name = f"{chain.directory}/{chain.chain}" if several_directories else chain.chain
        files = f"{chain.files} files, " if chain.files != 1 else ""
        span = f", {chain.first_time} .. {chain.last_time}" if chain.first_time else ""
        status = "OK" if chain.problem is None else f"FAILED: {chain.problem}"
        out.write(
            f"{name}: {chain.records} records ({files}{chain.events} events{span}): {status}\n"
        )
        for note in chain.notes:
            out.write(f"  {note}\n")
    return 0 if report.ok else 1


class _Check:
    """One chain's walk: the state between records, and the first problem."""

    def __init__(self, directory: Path, chain: str, sealer: Sealer) -> None:
        self.sealer = sealer
        self.report = ChainReport(chain, directory)
        self.head, self.head_problem = read_head(directory, chain, sealer)
        self.expected_seq = 0
        self.prev = GENESIS_PREV
        self.last: tuple[str, int | None, int | None] = (file_name(chain, 0), None, None)

    def run(self, files: list[Path]) -> ChainReport:
        self.report.files = len(files)
        if self._walk(files):
            self._check_end()
        return self.report

    def _fail(self, where: tuple[str, int | None, int | None], what: str) -> bool:
        if self.report.problem is None:
            self.report.problem = ChainProblem(where[0], where[1], where[2], what)
        return False

    def _walk(self, files: list[Path]) -> bool:
        chain = self.report.chain
        for expected_number, path in enumerate(files):
            number = (parse_file_name(path.name) or (chain, -1))[1]
            if number != expected_number:
                missing = file_name(chain, expected_number)
                return self._fail((missing, None, None), "this chain file is missing (removed)")
            with path.open("rb") as handle:
                for line_number, raw in enumerate(handle, start=1):
                    if not self._record(path.name, line_number, raw):
                        return False
        return True

    def _record(self, name: str, line_number: int, raw: bytes) -> bool:
        hint = _SEQ_HINT.search(raw)
        where = (name, line_number, int(hint[1]) if hint else None)
        if not raw.endswith(b"\n"):
            return self._fail(
                where,
                "the last line is incomplete: a write was cut short (a writer killed mid-write, "
                "which its restart records) or the file was cut",
            )
        try:
            opened = self.sealer.open(raw[:-1])
        except RecordError as exc:
            return self._fail(where, str(exc))
        record, seq = opened.record, opened.seq
        where = (name, line_number, seq)
        problem = self._sequence_problem(record, seq)
        if problem is None and self._differs_from_head(seq, opened.hash):
            problem = "it differs from the record the signed head names (replaced)"
        if problem is not None:
            return self._fail(where, problem)
        self._count(where, record)
        self.expected_seq = seq + 1
        self.prev = opened.hash
        self.last = where
        return True

    def _differs_from_head(self, seq: int, digest: str) -> bool:
        head = self.head
        return head is not None and head.tip.seq == seq and head.tip.hash != digest

    def _sequence_problem(self, record: dict[str, Any], seq: int) -> str | None:
        chain, expected = self.report.chain, self.expected_seq
        if record["chain"] != chain:
            return f"it belongs to chain {record['chain']!r} (inserted from another chain)"
        if seq > expected:
            gone = f"seq {expected}" if seq == expected + 1 else f"seqs {expected}..{seq - 1}"
            return f"expected seq {expected}: record {gone} is missing (deleted or moved)"
        if seq < expected:
            return f"expected seq {expected}: seq {seq} comes again (inserted, replayed or moved)"
        if record.get("prev") != self.prev:
            return "it does not follow the previous record (replaced, inserted or reordered)"
        if seq == 0 and record.get("genesis") != {"chain": chain, "format": FORMAT_VERSION}:
            return "the chain does not start with its genesis record"
        if seq > 0 and "genesis" in record:
            return "a genesis record inside the chain (inserted)"
        return None

    def _count(self, where: tuple[str, int | None, int | None], record: dict[str, Any]) -> None:
        report = self.report
        report.records += 1
        when = record.get("time")
        if not any(marker in record for marker in _NOT_EVENTS):
            report.events += 1
            if isinstance(when, str):
                report.first_time = report.first_time or when
                report.last_time = when
        recovery = record.get("recovery")
        if isinstance(recovery, dict):
            note = _describe_recovery(recovery)
            report.notes.append(f"{where[0]}:{where[1]}: {note}")
            if recovery.get("cause") == "truncated":
                self._fail(where, note)  # the chain goes on, but records were lost before it

    def _check_end(self) -> None:
        head: Head | None = self.head
        if head is None:
            name = head_path(self.report.directory, self.report.chain).name
            self._fail(
                (name, None, None),
                f"{self.head_problem}: the chain's end cannot be checked (records may have been "
                "cut off)",
            )
        elif head.tip.seq >= self.expected_seq:
            self._fail(
                self.last,
                f"the chain ends here, but its signed head names seq {head.tip.seq} in "
                f"{file_name(self.report.chain, head.file_number)}: records were cut off the end "
                "(truncated, or the latest rotated file is missing)",
            )


def _describe_recovery(recovery: dict[str, Any]) -> str:
    cause = recovery.get("cause")
    if cause == "torn":
        return (
            f"recovery: a torn write of {recovery.get('bytes')} bytes (sha256 "
            f"{str(recovery.get('sha256'))[:16]}...) was moved aside to {recovery.get('moved_to')}"
        )
    if cause == "truncated":
        first, last = int(recovery.get("found_seq", -1)) + 1, recovery.get("head_seq")
        return (
            f"at restart the writer found records seq {first}..{last} missing: they were cut off "
            "the end while it was down (truncated)"
        )
    if cause == "head_lost":
        return (
            f"warning: at restart {recovery.get('detail')}, so records cut off before then cannot "
            "be ruled out"
        )
    return f"recovery: {cause}"
