"""Check audit chains: name every record that is wrong, and every gap the chains record.

For each chain found in the given files and directories, records are read in chain order
(files by number, lines in order) and checked one by one (see ``check``): what verify finds is

- edited: the content does not match its hash, or the bytes differ from the sealed form;
- written with another key (or edited and re-hashed): the MAC does not verify;
- deleted, inserted, reordered: an unexpected ``seq``, a wrong ``prev``, a foreign chain id;
- truncated: an incomplete last line, a missing rotated file, or a chain that ends before the
  record its head names (records cut off the end, or the latest rotated file removed); a head
  whose chain has no file left at all (every data file removed) is a chain found, and fails;
- gaps the chain records itself (``recovery`` records, see ``recovery_notes``): refused events
  and failed writes as warnings, events accepted and then lost, or records cut off while the
  writer was down, as failures;
- exchanges opened and never closed (see ``exchanges``): a warning when their worker stopped,
  a note when they are open at the end of the chain (in progress).

Give directories, or every file of a chain: its files must run from 000000 without a gap.
``extproc audit verify`` exits 0 when every chain verifies (warnings included; with ``strict``
a warning fails too), 1 otherwise or when nothing was found.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from extproc.audit.chain import Head, Sealer
from extproc.audit.chain_report import (
    WARNING,
    ChainProblem,
    ChainReport,
    VerifyReport,
    print_report,
)
from extproc.audit.check import ChainCheck
from extproc.audit.files import CHAIN_ID, file_name, parse_file_name
from extproc.audit.recording_files import (
    ExpiryLog,
    check_recording,
    read_expiry_log,
    recording_files,
)
from extproc.audit.resume import read_head

__all__ = ["ChainProblem", "ChainReport", "VerifyReport", "collect", "run_verify_cli", "verify"]


def verify(paths: Iterable[Path], key: bytes, heads: Path | None = None) -> VerifyReport:
    """Check every chain in ``paths`` (chain files, or directories of them); with ``heads``, a
    directory of copies of the chains' heads kept elsewhere, also that every chain they name is
    here and still holds the record its copy names."""
    sealer = Sealer(key)
    chains, errors = collect(paths)
    report = VerifyReport(errors=errors)
    kept: dict[str, Head] = {}
    if heads is not None:
        kept = read_kept_heads(heads, sealer, report.errors)
        present = {chain for _directory, chain in chains}
        for chain in sorted(set(kept) - present):
            head = kept[chain]
            report.errors.append(
                f"chain {chain} is missing: the kept copy of its head names seq {head.tip.seq} "
                f"in {file_name(chain, head.file_number)} (removed with its head?)"
            )
    expiry_logs: dict[Path, ExpiryLog] = {}
    for (directory, chain), files in chains.items():
        checked = ChainCheck(directory, chain, sealer, kept.get(chain)).run(files)
        if checked.recorded:
            if directory not in expiry_logs:
                expiry_logs[directory] = read_expiry_log(directory, sealer)
                report.errors.extend(expiry_logs[directory].problems)
            check_recordings(checked, expiry_logs[directory])
        report.chains.append(checked)
    for directory in expiry_logs:
        _note_unnamed_recordings(directory, [c for c in report.chains if c.directory == directory])
    return report


def read_kept_heads(directory: Path, sealer: Sealer, errors: list[str]) -> dict[str, Head]:
    """The authentic heads in ``directory`` by chain (problems go to ``errors``)."""
    found: dict[str, Head] = {}
    paths = sorted(directory.glob("*.head")) if directory.is_dir() else []
    if not paths:
        errors.append(f"{directory}: no copies of heads (<chain>.head) found")
    for path in paths:
        head, problem = read_head(directory, path.stem, sealer)
        if head is None:
            errors.append(f"{path}: {problem}")
        else:
            found[head.chain] = head
    return found


def _note_unnamed_recordings(directory: Path, chains: list[ChainReport]) -> None:
    """Recording files no event names: a closing event that was refused or is still on its way,
    or a file put there by hand. Replay never shows them (it starts from a sealed event); verify
    says they are there."""
    named = {str(r[4].get("file")) for chain in chains for r in chain.recorded}
    unnamed = sorted(set(recording_files(directory)) - named)
    if unnamed and chains:
        chains[0].warnings += 1
        chains[0].notes.append(
            f"{WARNING}{len(unnamed)} recording files are named by no audit event here (a "
            f"closing event refused or not yet written, or a file added): {', '.join(unnamed[:5])}"
            + (" ..." if len(unnamed) > 5 else "")
        )


def check_recordings(report: ChainReport, expiry: ExpiryLog) -> None:
    """Each recording a chain's events name: present with the digest its event holds, or
    removed by retention (a signed expiry entry with that digest); else a problem."""
    for file, line, seq, request_id, recording in report.recorded:
        if "error" in recording:
            report.warnings += 1
            report.notes.append(
                f"{WARNING}{file}:{line}: the recording of exchange {request_id} was not written "
                f"({recording['error']}); its audit event is complete"
            )
            continue
        state = check_recording(report.directory, recording, expiry)
        if state.status == "ok":
            report.recordings += 1
        elif state.status == "expired":
            report.recordings_expired += 1
        else:
            what = f"the recording of exchange {request_id}: {state.detail}"
            report.problems.append(ChainProblem(file, line, seq, what))


def collect(paths: Iterable[Path]) -> tuple[dict[tuple[Path, str], list[Path]], list[str]]:
    """Chain files grouped by (directory, chain id), each group in chain order. In a directory,
    a chain's head counts too: a head without any data file is a chain whose files were all
    removed (an empty group), which its check then reports."""
    found: dict[tuple[Path, str], dict[int, Path]] = {}
    errors: list[str] = []
    for path in paths:
        if path.is_dir():
            candidates = sorted(path.glob("*.jsonl"))
            for head in sorted(path.glob("*.head")):
                if CHAIN_ID.fullmatch(head.stem):
                    found.setdefault((path, head.stem), {})
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


def run_verify_cli(
    paths: list[Path],
    key: bytes,
    out: TextIO | None = None,
    *,
    strict: bool = False,
    heads: Path | None = None,
) -> int:
    """``extproc audit verify``: one summary line per chain (records, events, first and last
    time, OK or the first problem), its notes and further problems indented below. 0 when
    everything verifies; with ``strict``, a chain with a warning fails too."""
    out = sys.stdout if out is None else out
    report = verify(paths, key, heads)
    for error in report.errors:
        out.write(f"error: {error}\n")
    if not report.chains:
        out.write(f"no audit chains found in {', '.join(str(p) for p in paths)}\n")
        return 1
    print_report(report, out)
    if strict and any(chain.warnings for chain in report.chains):
        return 1
    return 0 if report.ok else 1
