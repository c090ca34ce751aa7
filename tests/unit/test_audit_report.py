"""The auditor's report: the trail verified first, then counts of a time window, as one
self-contained HTML page or JSON; a tampered trail is reported as such."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from extproc.audit.writer import AuditWriter

KEY = b"report-test-key-" + b"r" * 24


def event(n: int, **fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "time": f"2026-11-{10 + n % 3:02d}T10:00:00.000000Z",
        "service": "processor",
        "request_id": f"r{n}",
        "decision_id": f"d{n}",
        "effect": "allow",
        "outcome": "allowed",
        "rule": "eu-team-to-eu",
        "subject": "alice",
        "source_region": "eu",
        "target_region": "eu",
        "model": "demo-echo",
        "findings": {"request.EMAIL": 1},
    }
    base.update(fields)
    return base


@pytest.fixture
def trail(tmp_path: Path) -> Path:
    directory = tmp_path / "audit"
    processor = AuditWriter(directory, "processor-0", KEY)
    for n in range(6):
        assert processor.submit(event(n))
    assert processor.submit(
        event(9, outcome="denied", rule="reveal-instructions", error="prompt_blocked")
    )
    processor.close()
    authz = AuditWriter(directory, "authz-0", KEY)
    assert authz.submit(
        event(
            7,
            service="authz",
            effect="deny",
            outcome="denied",
            rule="source-region-not-allowed",
            error="forbidden",
            source_region="us",
            subject="bob",
            findings={},
        )
    )
    authz.close()
    (tmp_path / "audit.key").write_bytes(KEY)
    return directory


def report(trail: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "extproc", "audit", "report", str(trail),
         "--key-file", str(trail.parent / "audit.key"), *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_the_json_report_counts_a_verified_trail(trail: Path) -> None:
    result = report(trail, "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["verified"] is True
    assert data["events"] == 8
    assert data["outcomes"] == {"allowed": 6, "denied": 2}
    assert data["flows"] == {"eu → eu": 7, "us → eu": 1}
    assert data["denials"] == {
        "reveal-instructions (prompt_blocked)": 1,
        "source-region-not-allowed (forbidden)": 1,
    }
    assert data["findings"] == {"request.EMAIL": 7}
    assert data["subjects"] == {"alice": 7, "bob": 1}


def test_the_window_keeps_only_its_events(trail: Path) -> None:
    result = report(trail, "--format", "json", "--since", "2026-11-11", "--until", "2026-11-11")
    data = json.loads(result.stdout)
    assert data["events"] == 3  # events 1, 4 and 7 fall on the 11th
    assert data["first"].startswith("2026-11-11")
    assert data["last"].startswith("2026-11-11")


def test_the_html_report_is_self_contained_and_says_verified(trail: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = report(trail, "--output", str(out))
    assert result.returncode == 0, result.stderr
    page = out.read_text()
    assert "Verified." in page
    assert "<svg" in page
    assert "<script" not in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "source-region-not-allowed (forbidden)" in page


def test_a_tampered_trail_is_reported_as_failed_and_exits_non_zero(
    trail: Path, tmp_path: Path
) -> None:
    chain = next(trail.glob("processor-0.*.jsonl"))
    chain.write_bytes(chain.read_bytes().replace(b'"subject":"alice"', b'"subject":"mallory"', 1))
    out = tmp_path / "report.html"
    result = report(trail, "--output", str(out))
    assert result.returncode == 1
    page = out.read_text()
    assert "Verification failed." in page
    assert "Verified." not in page


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Chromium is not installed")
def test_the_report_renders_in_a_real_browser(trail: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    report(trail, "--output", str(out))
    shot = tmp_path / "report.png"
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         f"--screenshot={shot}", "--window-size=1000,1400", out.as_uri()],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert shot.is_file()
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
