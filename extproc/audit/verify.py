"""``extproc audit verify``: check every chain and name the first record that is wrong."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import orjson

from extproc.audit.chain import GENESIS_PREV, Sealer

_FILE = re.compile(r"^(?P<chain>[\w.-]+)\.(?P<n>\d{6})\.jsonl$")


@dataclass(slots=True)
class ChainReport:
    chain: str
    records: int = 0
    first_time: str | None = None
    last_time: str | None = None
    recoveries: int = 0
    problem: str | None = None


@dataclass(slots=True)
class VerifyReport:
    chains: list[ChainReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.chains) and all(c.problem is None for c in self.chains)


def collect(paths: Iterable[Path]) -> dict[str, list[tuple[int, Path]]]:
    chains: dict[str, list[tuple[int, Path]]] = defaultdict(list)
    for path in paths:
        candidates = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
        for candidate in candidates:
            match = _FILE.match(candidate.name)
            if match:
                chains[match["chain"]].append((int(match["n"]), candidate))
    return {chain: sorted(files) for chain, files in sorted(chains.items())}


def verify(paths: Iterable[Path], key: bytes) -> VerifyReport:
    sealer = Sealer(key)
    report = VerifyReport()
    for chain, files in collect(paths).items():
        report.chains.append(_verify_chain(chain, files, sealer))
    return report


def _verify_chain(chain: str, files: list[tuple[int, Path]], sealer: Sealer) -> ChainReport:
    report = ChainReport(chain)
    head, report.problem = _head(files[-1][1].parent, chain, sealer)
    if report.problem is not None:
        return report
    expected_seq = 0
    prev = GENESIS_PREV
    numbers = [n for n, _ in files]
    if numbers != list(range(numbers[0], numbers[0] + len(numbers))) or numbers[0] != 0:
        report.problem = f"rotated files are missing (found numbers {numbers})"
        return report
    for _number, path in files:
        for line_number, line in enumerate(path.read_bytes().split(b"\n"), start=1):
            if not line:
                continue
            where = f"{path.name}:{line_number}"
            try:
                record: dict[str, Any] = orjson.loads(line)
            except orjson.JSONDecodeError:
                report.problem = f"{where}: not a complete record (truncated or edited)"
                return report
            problem = _check(record, sealer, chain, expected_seq, prev)
            if problem is not None:
                report.problem = f"{where}: record seq {record.get('seq')}: {problem}"
                return report
            if expected_seq == head.get("seq") and record["hash"] != head.get("hash"):
                report.problem = f"{where}: record seq {expected_seq} differs from the signed head"
                return report
            expected_seq += 1
            prev = record["hash"]
            report.records += 1
            if record.get("kind") == "recovery":
                report.recoveries += 1
            when = (
                record.get("body", {}).get("time") if isinstance(record.get("body"), dict) else None
            )
            if isinstance(when, str):
                report.first_time = report.first_time or when
                report.last_time = when
    if isinstance(head.get("seq"), int) and head["seq"] >= expected_seq:
        report.problem = (
            f"the chain ends at seq {expected_seq - 1} but its signed head says seq "
            f"{head['seq']}: records were cut off the end (truncated)"
        )
    return report


def _check(
    record: dict[str, Any], sealer: Sealer, chain: str, expected_seq: int, prev: str
) -> str | None:
    if record.get("chain") != chain:
        return f"it belongs to chain {record.get('chain')!r} (inserted)"
    problem = sealer.check(record)
    if problem is not None:
        return problem
    if record.get("seq") != expected_seq:
        return f"expected seq {expected_seq} (a record was deleted, inserted or moved)"
    if record.get("prev") != prev:
        return "it does not follow the previous record (deleted, inserted or reordered)"
    if expected_seq == 0 and record.get("kind") != "genesis":
        return "the chain does not start with its genesis record"
    return None


def _head(directory: Path, chain: str, sealer: Sealer) -> tuple[dict[str, Any], str | None]:
    """The chain's signed head: the last record the writer made durable. (The head may lag
    the file by the records of a batch being written when the process died; it never leads.)"""
    path = directory / f"{chain}.head"
    try:
        head = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}, f"{path.name} is missing or unreadable: the chain's end cannot be checked"
    if not isinstance(head, dict) or not sealer.head_is_authentic(head):
        return {}, f"{path.name} is not signed with the audit key"
    return head, None


def run_verify_cli(paths: list[Path], key: bytes, out: TextIO) -> int:
    report = verify(paths, key)
    if not report.chains:
        out.write("no audit chains found\n")
        return 1
    for chain in report.chains:
        status = "OK" if chain.problem is None else f"FAILED: {chain.problem}"
        span = f" {chain.first_time} .. {chain.last_time}" if chain.first_time else ""
        extra = f", {chain.recoveries} recovery record(s)" if chain.recoveries else ""
        out.write(f"{chain.chain}: {chain.records} records{span}{extra}: {status}\n")
    return 0 if report.ok else 1
