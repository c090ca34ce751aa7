"""Verify finds every kind of tampering, at the record where it happened."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extproc.audit.files import chain_files
from extproc.audit.verify import run_verify_cli, verify
from extproc.audit.writer import AuditWriter, WriterSettings

KEY = b"verify-test-key-" + b"v" * 20
CHAIN = "processor-0"
FIRST = f"{CHAIN}.000000.jsonl"


def event(i: int) -> dict[str, object]:
    return {
        "time": f"2026-11-23T10:00:{i:02d}.000000Z",
        "request_id": f"r{i}",
        "outcome": "allowed",
        "subject": "alice",
        "findings": {"request.email": i},
    }


def write_chain(directory: Path, count: int, chain: str = CHAIN, **options: object) -> list[Path]:
    """A chain of ``count`` events: line 1 is the genesis (seq 0), event i is line i + 2."""
    writer = AuditWriter(directory, chain, KEY, WriterSettings(**options))  # type: ignore[arg-type]
    for i in range(count):
        assert writer.submit(event(i))
    assert writer.close() == 0
    return chain_files(directory, chain)


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def rewrite(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(lines))


def the_problem(directory: Path, key: bytes = KEY) -> str:
    report = verify([directory], key)
    assert len(report.chains) == 1
    assert not report.ok
    return str(report.chains[0].problem)


def test_an_untouched_chain_verifies_with_its_events_and_time_span(tmp_path: Path) -> None:
    write_chain(tmp_path, 5)
    report = verify([tmp_path], KEY)
    assert report.ok
    (chain,) = report.chains
    assert (chain.chain, chain.records, chain.events) == (CHAIN, 6, 5)
    assert chain.last_time == "2026-11-23T10:00:04.000000Z"


def test_an_edited_field_is_found_at_its_line_and_seq(tmp_path: Path) -> None:
    (path,) = write_chain(tmp_path, 5)
    lines = lines_of(path)
    lines[3] = lines[3].replace(b'"subject":"alice"', b'"subject":"eve"')
    rewrite(path, lines)
    assert the_problem(tmp_path) == (
        f"{FIRST}:4: record seq 3: its content does not match its hash (edited)"
    )


def test_an_edit_re_hashed_without_the_key_is_found_by_its_mac(tmp_path: Path) -> None:
    (path,) = write_chain(tmp_path, 5)
    lines = lines_of(path)
    record = json.loads(lines[2])
    record["subject"] = "eve"
    body = {k: v for k, v in record.items() if k not in ("hash", "mac")}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    record["hash"] = hashlib.sha256(canonical).hexdigest()
    lines[2] = canonical[:-1] + f',"hash":"{record["hash"]}","mac":"{record["mac"]}"}}\n'.encode()
    rewrite(path, lines)
    assert the_problem(tmp_path).startswith(
        f"{FIRST}:3: record seq 2: its MAC does not verify with this key"
    )


def test_a_deleted_record_is_found_where_it_is_missing(tmp_path: Path) -> None:
    (path,) = write_chain(tmp_path, 5)
    lines = lines_of(path)
    del lines[2]
    rewrite(path, lines)
    assert the_problem(tmp_path) == (
        f"{FIRST}:3: record seq 3: expected seq 2: record seq 2 is missing (deleted or moved)"
    )


def test_a_deleted_genesis_is_found(tmp_path: Path) -> None:
    (path,) = write_chain(tmp_path, 2)
    rewrite(path, lines_of(path)[1:])
    assert the_problem(tmp_path).startswith(f"{FIRST}:1: record seq 1: expected seq 0")


def test_a_replayed_record_is_found_where_it_was_inserted(tmp_path: Path) -> None:
    (path,) = write_chain(tmp_path, 5)
    lines = lines_of(path)
    lines.insert(4, lines[1])
    rewrite(path, lines)
    assert the_problem(tmp_path) == (
        f"{FIRST}:5: record seq 1: expected seq 4: seq 1 comes again (inserted, replayed or moved)"
    )


def test_a_record_inserted_from_another_chain_is_found(tmp_path: Path) -> None:
    (target,) = write_chain(tmp_path / "a", 4, chain=CHAIN)
    (other,) = write_chain(tmp_path / "b", 4, chain="processor-1")
    lines = lines_of(target)
    lines.insert(3, lines_of(other)[3])
    rewrite(target, lines)
    assert the_problem(tmp_path / "a") == (
        f"{FIRST}:4: record seq 3: it belongs to chain 'processor-1' (inserted from another chain)"
    )


def test_a_forged_record_is_found(tmp_path: Path) -> None:
    (path,) = write_chain(tmp_path, 3)
    lines = lines_of(path)
    forged = json.loads(lines[2])
    forged["outcome"] = "denied"
    lines.insert(3, json.dumps(forged, separators=(",", ":")).encode() + b"\n")
    rewrite(path, lines)
    assert the_problem(tmp_path).startswith(f"{FIRST}:4: record seq 2: ")


def test_swapped_records_are_found_at_the_first_out_of_place(tmp_path: Path) -> None:
    (path,) = write_chain(tmp_path, 5)
    lines = lines_of(path)
    lines[2], lines[3] = lines[3], lines[2]
    rewrite(path, lines)
    assert the_problem(tmp_path) == (
        f"{FIRST}:3: record seq 3: expected seq 2: record seq 2 is missing (deleted or moved)"
    )


def test_records_cut_off_the_end_are_found_by_the_signed_head(tmp_path: Path) -> None:
    (path,) = write_chain(tmp_path, 5)
    rewrite(path, lines_of(path)[:-2])
    assert the_problem(tmp_path) == (
        f"{FIRST}:4: record seq 3: the chain ends here, but its signed head names seq 5 in "
        f"{FIRST}: records were cut off the end (truncated, or the latest rotated file is missing)"
    )


def test_a_file_cut_in_the_middle_of_a_line_is_found(tmp_path: Path) -> None:
    (path,) = write_chain(tmp_path, 3)
    path.write_bytes(path.read_bytes()[:-50])
    assert the_problem(tmp_path).startswith(f"{FIRST}:4: record seq 3: the last line is incomplete")


def test_a_missing_head_is_a_failure_because_the_end_cannot_be_checked(tmp_path: Path) -> None:
    write_chain(tmp_path, 3)
    (tmp_path / f"{CHAIN}.head").unlink()
    assert the_problem(tmp_path).startswith(f"{CHAIN}.head: the head is missing")


def test_a_chain_written_with_another_key_fails_at_its_first_record(tmp_path: Path) -> None:
    write_chain(tmp_path, 3)
    assert the_problem(tmp_path, b"another-key-" + b"x" * 24).startswith(
        f"{FIRST}:1: record seq 0: its MAC does not verify with this key (written with another key"
    )


def rotated_chain(directory: Path) -> list[Path]:
    # One event per batch, and files that hold about two records: rotation at known places.
    files = write_chain(directory, 8, rotate_bytes=700, batch_max_events=1, flush_interval=0)
    assert len(files) >= 3
    return files


def test_rotation_keeps_one_chain_across_files(tmp_path: Path) -> None:
    files = rotated_chain(tmp_path)
    for before, after in itertools.pairwise(files):
        assert json.loads(lines_of(after)[0])["prev"] == json.loads(lines_of(before)[-1])["hash"]
    report = verify([tmp_path], KEY)
    assert report.ok, report.chains[0].problem
    assert (report.chains[0].files, report.chains[0].events) == (len(files), 8)


def test_a_missing_latest_rotated_file_is_found_as_a_cut_off_end(tmp_path: Path) -> None:
    files = rotated_chain(tmp_path)
    files[-1].unlink()
    problem = the_problem(tmp_path)
    assert problem.startswith(f"{files[-2].name}:")
    assert f"its signed head names seq 8 in {files[-1].name}: records were cut off" in problem


def test_a_missing_middle_rotated_file_is_found(tmp_path: Path) -> None:
    files = rotated_chain(tmp_path)
    files[1].unlink()
    assert the_problem(tmp_path) == f"{files[1].name}: this chain file is missing (removed)"


def test_each_chain_in_a_directory_is_judged_on_its_own(tmp_path: Path) -> None:
    write_chain(tmp_path, 2, chain="authz-0")
    (path,) = write_chain(tmp_path, 2, chain="processor-0")
    rewrite(path, lines_of(path)[:-1])
    report = verify([tmp_path], KEY)
    assert [(c.chain, c.ok) for c in report.chains] == [("authz-0", True), ("processor-0", False)]


def test_the_cli_summary_names_each_chain_and_its_verdict(tmp_path: Path) -> None:
    write_chain(tmp_path, 3, chain="authz-0")
    (path,) = write_chain(tmp_path, 3, chain="processor-0")
    out = io.StringIO()
    assert run_verify_cli([tmp_path], KEY, out) == 0
    assert out.getvalue().splitlines() == [
        "authz-0: 4 records (3 events, 2026-11-23T10:00:00.000000Z .. 2026-11-23T10:00:02.000000Z)"
        ": OK",
        "processor-0: 4 records (3 events, 2026-11-23T10:00:00.000000Z .. "
        "2026-11-23T10:00:02.000000Z): OK",
    ]
    path.write_bytes(path.read_bytes().replace(b'"r1"', b'"r7"'))
    out = io.StringIO()
    assert run_verify_cli([tmp_path], KEY, out) == 1
    assert (
        f"processor-0: 2 records (1 events, 2026-11-23T10:00:00.000000Z .. "
        f"2026-11-23T10:00:00.000000Z): FAILED: {FIRST}:3: record seq 2: its content does not "
        "match its hash (edited)"
    ) in out.getvalue()


def test_the_cli_fails_when_there_is_nothing_to_verify(tmp_path: Path) -> None:
    out = io.StringIO()
    assert run_verify_cli([tmp_path / "nowhere"], KEY, out) == 1
    assert "no such file or directory" in out.getvalue()
    assert "no audit chains found" in out.getvalue()


@pytest.fixture(scope="module")
def sealed_chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    directory = tmp_path_factory.mktemp("sealed")
    write_chain(directory, 3)
    return {path.name: path.read_bytes() for path in directory.iterdir() if path.suffix != ".lock"}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), flip=st.integers(min_value=1, max_value=255))
def test_any_single_byte_edit_anywhere_is_detected(
    sealed_chain: dict[str, bytes], data: st.DataObject, flip: int
) -> None:
    name = data.draw(st.sampled_from(sorted(sealed_chain)), label="file")
    content = bytearray(sealed_chain[name])
    position = data.draw(st.integers(min_value=0, max_value=len(content) - 1), label="position")
    content[position] ^= flip
    with tempfile.TemporaryDirectory() as scratch:
        for other, original in sealed_chain.items():
            Path(scratch, other).write_bytes(bytes(content) if other == name else original)
        report = verify([Path(scratch)], KEY)
    assert not report.ok


def test_a_head_edited_without_changing_its_meaning_is_found(tmp_path: Path) -> None:
    """A tab for the head's final newline parses as the same JSON; it is still an edit."""
    from extproc.audit.chain import RecordError, Sealer

    sealer = Sealer(b"k" * 32)
    from extproc.audit.chain import ChainTip

    sealed = sealer.seal_head("processor-0", ChainTip(3, "ab" * 32), 0)
    assert sealer.open_head(sealed).tip.seq == 3
    with pytest.raises(RecordError):
        sealer.open_head(sealed[:-1] + b"\t")
    with pytest.raises(RecordError):
        sealer.open_head(b" " + sealed)


def test_a_head_whose_data_files_were_removed_is_a_failure_naming_the_chain(
    tmp_path: Path,
) -> None:
    write_chain(tmp_path, 2, chain="authz-0")
    (path,) = write_chain(tmp_path, 3)
    path.unlink()  # rm processor-0.000000.jsonl, the head kept
    report = verify([tmp_path], KEY)
    assert [(c.chain, c.ok) for c in report.chains] == [("authz-0", True), (CHAIN, False)]
    assert str(report.chains[1].problem) == (
        f"{CHAIN}.head: no file of this chain is here, but its signed head names seq 3 in "
        f"{FIRST}: the chain's files were removed ({FIRST} .. {FIRST} expected)"
    )
    out = io.StringIO()
    assert run_verify_cli([tmp_path], KEY, out) == 1
    assert f"{CHAIN}: 0 records" in out.getvalue()
    assert "FAILED" in out.getvalue()


def test_every_rotated_file_removed_names_the_files_the_head_expects(tmp_path: Path) -> None:
    files = rotated_chain(tmp_path)
    for path in files:
        path.unlink()
    assert f"({FIRST} .. {files[-1].name} expected)" in the_problem(tmp_path)


def test_a_head_alone_that_does_not_open_is_a_failure(tmp_path: Path) -> None:
    (path,) = write_chain(tmp_path, 1)
    path.unlink()
    problem = the_problem(tmp_path, key=b"another-key-" + b"k" * 24)
    assert problem.startswith(f"{CHAIN}.head: ")
    assert problem.endswith("and no file of this chain is here")


def kept_heads(trail: Path, kept: Path) -> Path:
    kept.mkdir()
    for head in trail.glob("*.head"):
        (kept / head.name).write_bytes(head.read_bytes())
    return kept


def test_a_whole_chain_removed_passes_alone_and_fails_against_kept_heads(tmp_path: Path) -> None:
    trail = tmp_path / "audit"
    write_chain(trail, 2, chain="authz-0")
    write_chain(trail, 3)
    kept = kept_heads(trail, tmp_path / "kept")
    for path in trail.glob(f"{CHAIN}.*"):
        path.unlink()  # data and head together
    assert verify([trail], KEY).ok  # the limit: nothing here says the chain existed
    report = verify([trail], KEY, heads=kept)
    assert not report.ok
    assert report.errors == [
        f"chain {CHAIN} is missing: the kept copy of its head names seq 3 in {FIRST} "
        "(removed with its head?)"
    ]


def test_a_chain_rolled_back_with_an_old_head_fails_against_kept_heads(tmp_path: Path) -> None:
    trail = tmp_path / "audit"
    write_chain(trail, 2)
    old = {p.name: p.read_bytes() for p in trail.iterdir() if p.suffix in (".jsonl", ".head")}
    writer = AuditWriter(trail, CHAIN, KEY, WriterSettings())
    for i in range(2, 5):
        assert writer.submit(event(i))
    assert writer.close() == 0
    kept = kept_heads(trail, tmp_path / "kept")
    for name, data in old.items():  # the old copy of the data and of its head
        (trail / name).write_bytes(data)
    assert verify([trail], KEY).ok
    out = io.StringIO()
    assert run_verify_cli([trail], KEY, out, heads=kept) == 1
    assert "the kept copy of its head names seq" in out.getvalue()
    assert "rolled back or cut (with its head)" in out.getvalue()


def test_kept_heads_that_match_the_trail_pass(tmp_path: Path) -> None:
    trail = tmp_path / "audit"
    write_chain(trail, 3)
    kept = kept_heads(trail, tmp_path / "kept")
    write_chain(trail, 0)  # the writer goes on after the copy: a later end is fine
    assert verify([trail], KEY, heads=kept).ok
    empty = tmp_path / "empty"
    empty.mkdir()
    assert verify([trail], KEY, heads=empty).errors == [
        f"{empty}: no copies of heads (<chain>.head) found"
    ]
