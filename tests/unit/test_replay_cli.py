"""``extproc audit replay`` and ``extproc audit prune`` as an auditor runs them."""

from __future__ import annotations

from pathlib import Path

import pytest

from extproc.cli import main
from tests.unit.test_recording_files import KEY, files, record

TIMES = ["2026-11-01T10:00:00.000001Z", "2026-11-02T10:00:00.000001Z"]


@pytest.fixture
def trail(tmp_path: Path) -> tuple[Path, Path]:
    directory = tmp_path / "audit"
    directory.mkdir()
    record(directory, TIMES)
    key_file = tmp_path / "audit.key"
    key_file.write_bytes(KEY + b"\n")
    return directory, key_file


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_replay_prints_the_event_and_the_exchange(
    trail: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    directory, key_file = trail
    code, out, _err = run(
        capsys, "audit", "replay", "r1", str(directory), "--key-file", str(key_file)
    )
    assert code == 0
    assert out.startswith("exchange r1\n")
    assert "  outcome: allowed\n" in out
    assert "(SHA-256 verified)" in out
    assert "> POST /v1/chat\n> content-type: application/json\n" in out
    assert "card [REDACTED:CARD]" in out
    assert "< 200\n" in out
    assert "[+     5.000 ms] data: one" in out


def test_replay_re_streams_the_response_as_it_was_sent(
    trail: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    directory, key_file = trail
    argv = ["audit", "replay", "r0", str(directory), "--key-file", str(key_file)]
    code, out, _err = run(capsys, *argv, "--stream", "--speed", "0")
    assert (code, out) == (0, "data: one\n\ndata: two\n\n")


def test_replay_refuses_an_edited_recording_with_a_reason(
    trail: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    directory, key_file = trail
    path = files(directory)[0]
    path.write_bytes(path.read_bytes().replace(b"data: one", b"data: 0ne"))
    code, out, err = run(
        capsys, "audit", "replay", "r0", str(directory), "--key-file", str(key_file)
    )
    assert code == 1
    assert out == ""
    assert "was edited" in err


def test_prune_then_verify_reports_the_removed_recordings_as_expired(
    trail: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    directory, key_file = trail
    size = files(directory)[0].stat().st_size
    code, out, _err = run(
        capsys, "audit", "prune", str(directory), "--key-file", str(key_file),
        "--max-total-bytes", str(size + 10),
    )  # fmt: skip
    assert code == 0
    assert "removed 1 recordings (0 by age, 1 by total size" in out
    code, out, _err = run(capsys, "audit", "verify", str(directory), "--key-file", str(key_file))
    assert code == 0
    assert "1 recordings verified, 1 expired by retention" in out
    code, _out, err = run(
        capsys, "audit", "replay", "r0", str(directory), "--key-file", str(key_file)
    )
    assert code == 1
    assert "removed by retention (max_total_bytes" in err


def test_prune_needs_a_limit(trail: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    directory, key_file = trail
    code, _out, err = run(capsys, "audit", "prune", str(directory), "--key-file", str(key_file))
    assert code == 1
    assert "no retention limit" in err


def test_prune_by_age_from_the_command_line(
    trail: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    directory, key_file = trail
    argv = ["audit", "prune", str(directory), "--key-file", str(key_file)]
    code, out, _err = run(capsys, *argv, "--max-age", "1d")
    assert code == 0
    assert "removed 2 recordings (2 by age" in out  # both are older than a day by now
    code, _out, err = run(capsys, *argv, "--max-age", "a while")
    assert code == 1
    assert "not a duration" in err


def test_the_report_lists_each_recorded_exchange_with_a_working_link_and_its_replay(
    trail: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import html
    import json
    import re

    directory, key_file = trail
    argv = ["audit", "report", str(directory), "--key-file", str(key_file)]
    code, out, _err = run(capsys, *argv, "--format", "json")
    assert code == 0
    recordings = json.loads(out)["recordings"]
    assert recordings["total"] == 2
    assert [r["replay"] for r in recordings["listed"]] == [
        "extproc audit replay r0",
        "extproc audit replay r1",
    ]
    page_dir = tmp_path / "reports"
    page_dir.mkdir()
    page = page_dir / "report.html"
    code, _out, _err = run(capsys, *argv, "--output", str(page))
    assert code == 0
    text = page.read_text()
    assert "<h2>Recorded exchanges</h2>" in text
    assert "extproc audit replay r1" in text
    assert "[REDACTED" not in text  # the page links to recordings, never copies them
    links = [html.unescape(href) for href in re.findall(r"<a href='([^']+)'>", text)]
    assert len(links) == 2
    for link in links:
        assert (page_dir / link).resolve().is_file()


def test_the_report_links_only_to_names_the_processor_writes(tmp_path: Path) -> None:
    from extproc.audit.report import build_report, render_html
    from extproc.audit.writer import AuditWriter

    writer = AuditWriter(tmp_path, "processor-0", KEY)
    bad = {"file": "javascript:alert(1)", "sha256": "0" * 64, "bytes": 1, "truncated": False}
    assert writer.close_exchange({"request_id": "r9", "time": TIMES[0], "recording": bad})
    writer.close()
    report = build_report([tmp_path], KEY)
    page = render_html(report)
    assert "href='javascript" not in page
    assert "<h2>Recorded exchanges</h2>\n<p>None.</p>" in page
    assert not report.verification.ok  # verify names the event that names no recording file
