"""The ``audit`` config section, as the security team writes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from extproc.audit.config import AuditConfig
from extproc.audit.settings import AuditSettings, compile_audit
from extproc.audit.writer import WriterSettings
from extproc.config.document import parse_document
from extproc.config.validation import load_section
from extproc.errors import ConfigError

FULL = """\
audit:
  directory: trail
  key_env: TEST_AUDIT_KEY
  rotate_bytes: 1048576
  batch_max_events: 64
  flush_interval_ms: 20
  queue_max_events: 5000
  when_full: deny
  block_timeout_ms: 250
  capture_payloads: true
  capture_max_bytes: 2048
"""


def parse(text: str, base: Path, file: str = "extproc.yaml") -> AuditConfig:
    return load_section(
        parse_document(text, file=file),
        "audit",
        AuditSettings,
        lambda settings: compile_audit(settings, base),
    )


def test_every_setting_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_AUDIT_KEY", "k" * 32)
    config = parse(FULL, tmp_path)
    assert config.directory == tmp_path / "trail"
    assert config.key == b"k" * 32
    assert config.writer == WriterSettings(
        rotate_bytes=1048576,
        batch_max_events=64,
        flush_interval=0.02,
        queue_max_events=5000,
        when_full="deny",
        block_timeout=0.25,
        capture_max_bytes=2048,
    )
    assert (config.capture_payloads, config.capture_max_bytes) == (True, 2048)


def test_defaults_block_when_full_and_capture_nothing(tmp_path: Path) -> None:
    (tmp_path / "audit.key").write_bytes(b"f" * 40 + b"\n")
    config = parse("audit: {key_file: audit.key}", tmp_path, file="c.yaml")
    assert config.directory == tmp_path / "audit"
    assert config.key == b"f" * 40
    assert config.writer == WriterSettings()
    assert config.writer.when_full == "block"
    assert config.writer.capture_max_bytes == 0
    assert "ffff" not in repr(config)


def test_a_key_written_inline_is_refused_naming_the_line(tmp_path: Path) -> None:
    text = "audit:\n  directory: trail\n  key: this-would-be-the-secret-in-the-config\n"
    with pytest.raises(ConfigError, match=r"extproc\.yaml:3: audit: unknown key 'key'"):
        parse(text, tmp_path)


def test_a_short_key_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHORT_KEY", "k" * 31)
    with pytest.raises(
        ConfigError, match=r"audit\.key_env: the audit key must be at least 32 bytes"
    ):
        parse("audit:\n  key_env: SHORT_KEY\n", tmp_path)


def test_an_unset_key_variable_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UNSET_AUDIT_KEY", raising=False)
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        parse("audit:\n  key_env: UNSET_AUDIT_KEY\n", tmp_path)


def test_an_unknown_full_policy_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_AUDIT_KEY", "k" * 32)
    with pytest.raises(ConfigError, match=r":3: audit.when_full: expected one of block, deny"):
        parse("audit:\n  key_env: TEST_AUDIT_KEY\n  when_full: drop\n", tmp_path)


def test_a_batch_larger_than_the_queue_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_AUDIT_KEY", "k" * 32)
    text = "audit:\n  key_env: TEST_AUDIT_KEY\n  queue_max_events: 10\n  batch_max_events: 20\n"
    with pytest.raises(ConfigError, match="batch_max_events: must not exceed queue_max_events"):
        parse(text, tmp_path)


def test_a_tiny_rotation_size_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_AUDIT_KEY", "k" * 32)
    with pytest.raises(ConfigError, match=r"audit\.rotate_bytes: must be at least 4096"):
        parse("audit:\n  key_env: TEST_AUDIT_KEY\n  rotate_bytes: 100\n", tmp_path)


def test_the_recording_settings_are_read_with_their_durations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_AUDIT_KEY", "k" * 32)
    text = (
        "audit:\n  key_env: TEST_AUDIT_KEY\n  recording:\n    enabled: true\n"
        "    paths: ['/eu/*']\n    max_bytes: 65536\n    max_age: 12h\n"
        "    max_total_bytes: 1000000\n    retention_interval: 5m\n"
    )
    recording = parse(text, tmp_path).recording
    assert recording.enabled
    assert recording.paths == ("/eu/*",)
    assert (recording.max_bytes, recording.max_age_seconds) == (65536, 12 * 3600)
    assert (recording.max_total_bytes, recording.retention_interval_seconds) == (1000000, 300)


def test_recording_is_off_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_AUDIT_KEY", "k" * 32)
    assert not parse("audit: {key_env: TEST_AUDIT_KEY}", tmp_path).recording.enabled


def test_bad_recording_settings_are_refused_naming_their_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_AUDIT_KEY", "k" * 32)
    text = (
        "audit:\n  key_env: TEST_AUDIT_KEY\n  recording:\n    enabled: true\n"
        "    max_age: 3 weeks\n    max_bytes: 10\n    maxbytes: 10\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse(text, tmp_path)
    errors = "\n".join(str(error) for error in caught.value.errors)
    assert "extproc.yaml:6: audit.recording.max_bytes: " in errors
    assert "extproc.yaml:7: audit.recording: unknown key 'maxbytes'" in errors
    text = "audit:\n  key_env: TEST_AUDIT_KEY\n  recording:\n    max_age: 3 weeks\n"
    with pytest.raises(ConfigError, match=r"extproc\.yaml:4: audit\.recording\.max_age: not a"):
        parse(text, tmp_path)


def test_the_recording_example_in_the_replay_doc_is_a_valid_audit_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = (Path(__file__).parents[2] / "docs" / "replay.md").read_text()
    example = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    monkeypatch.setenv("EXTPROC_AUDIT_KEY", "k" * 32)
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "audit.key").write_text("k" * 32)  # the example reads its key file
    recording = parse(example, tmp_path).recording
    assert recording.enabled
    assert recording.max_age_seconds == 30 * 86400
    assert recording.max_total_bytes == 10 * 1024**3
