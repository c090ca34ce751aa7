"""One duration grammar for every section that takes one (recording retention, approvals, the
CLI's --max-age and --ttl): what it reads, and what it refuses with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from extproc.approval.policy import parse_approval_policy
from extproc.audit.config import AuditConfig
from extproc.audit.settings import AuditSettings, compile_audit
from extproc.config.document import parse_document
from extproc.config.durations import parse_duration
from extproc.config.validation import load_section
from extproc.errors import ConfigError


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        (90, 90),
        (2.5, 2.5),
        ("90", 90),
        (" 1.5 ", 1.5),
        ("30s", 30),
        ("15m", 900),
        ("1.5m", 90),
        ("12h", 43_200),
        ("30d", 2_592_000),
        ("1h30m", 5_400),
        ("1d12h", 129_600),
        ("1d2h3m4s", 93_784),
        ("0s", 0),
        (0, 0),
    ],
)
def test_a_duration_is_seconds_or_units_from_the_largest_down(
    written: object, seconds: float
) -> None:
    assert parse_duration(written) == seconds


@pytest.mark.parametrize(
    ("written", "says"),
    [
        ("", "not a duration"),
        ("m", "not a duration"),
        ("1m1h", "not a duration"),  # units from the largest down, each once
        ("1h1h", "not a duration"),
        ("5w", "not a duration"),
        ("5 m", "not a duration"),
        ("-5", "must not be negative"),
        (-1, "must not be negative"),
        ("nan", "must be finite"),
        ("inf", "must be finite"),
        (float("inf"), "must be finite"),
        (True, "not a duration"),  # YAML's yes
        (None, "not a duration"),
        ([30], "not a duration"),
    ],
)
def test_what_is_not_a_duration_is_refused_with_what_one_looks_like(
    written: object, says: str
) -> None:
    with pytest.raises(ValueError) as refused:
        parse_duration(written)
    assert says in str(refused.value)


def test_approvals_and_recordings_read_the_same_durations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Days in an approval's grant and hours-and-minutes in a recording's retention: each
    section reads what the other does."""
    policy = parse_approval_policy(
        {"approver_groups": ["security"], "max_grant_ttl": "1d", "grant_ttl": "1h30m"}
    )
    assert (policy.max_grant_ttl_seconds, policy.grant_ttl_seconds) == (86_400, 5_400)
    monkeypatch.setenv("TEST_AUDIT_KEY", "k" * 32)
    text = (
        "audit:\n  key_env: TEST_AUDIT_KEY\n  recording:\n"
        "    max_age: 1d12h\n    retention_interval: 1h30m\n"
    )
    recording = audit_section(text, tmp_path).recording
    assert (recording.max_age_seconds, recording.retention_interval_seconds) == (129_600, 5_400)


def test_a_recording_interval_of_zero_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_AUDIT_KEY", "k" * 32)
    text = "audit:\n  key_env: TEST_AUDIT_KEY\n  recording:\n    retention_interval: 0s\n"
    with pytest.raises(ConfigError, match=r"retention_interval: must be more than 0"):
        audit_section(text, tmp_path)


def audit_section(text: str, base: Path) -> AuditConfig:
    return load_section(
        parse_document(text, file="extproc.yaml"),
        "audit",
        AuditSettings,
        lambda settings: compile_audit(settings, base),
    )
