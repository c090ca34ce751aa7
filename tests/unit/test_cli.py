"""`extproc check`, `explain` and `serve` refusing bad input, as a user runs them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from extproc.cli import main
from extproc.demo.issuer import DevIssuer
from extproc.envoy_runner import free_port
from extproc.geo.writer import write_demo_database

CONFIG = """\
version: 1
identity:
  issuers:
    - name: demo
      issuer: "{issuer_url}"
      jwks_file: jwks.json
      audiences: [extproc-demo]
      algorithms: [RS256]
      location_claim: region
geo:
  database: "{database}"
  regions:
    eu: [DE, FR]
    us: [US]
policy:
  group_regions: {{ml-eu: [eu]}}
  rules:
    - name: eu-team-to-eu
      when: {{groups_any: [ml-eu], source_region: eu, target_region: eu}}
      effect: allow
      reason: ml-eu may reach eu from the EU
    - name: watch-us-callers
      when: {{source_region: us}}
      effect: deny
      enforce: false
"""


@pytest.fixture
def issuer(tmp_path: Path) -> Iterator[DevIssuer]:
    issuer = DevIssuer(tmp_path / "issuer")
    issuer.start()
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": issuer.published}))
    yield issuer
    issuer.stop()


def write_config(tmp_path: Path, issuer: DevIssuer, database: Path | None = None) -> Path:
    if database is None:
        database = write_demo_database(tmp_path / "demo.mmdb")
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(issuer_url=issuer.issuer_url, database=database))
    return path


def test_check_accepts_a_valid_config(
    tmp_path: Path, issuer: DevIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, issuer)
    assert main(["check", str(config), "--fetch-keys"]) == 0
    assert "OK" in capsys.readouterr().out


def test_check_names_the_file_line_and_key_of_an_error(
    tmp_path: Path, issuer: DevIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, issuer)
    config.write_text(config.read_text().replace("effect: allow", "effect: alow"))
    assert main(["check", str(config)]) == 1
    error = capsys.readouterr().err
    assert f"{config}:20: policy.rules[0].effect: expected one of allow, deny" in error
    assert "got 'alow'" in error


def test_check_prints_every_error_one_per_line_and_exits_1(
    tmp_path: Path, issuer: DevIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, issuer)
    text = config.read_text().replace("effect: allow", "effect: alow")
    text = text.replace("us: [US]", "us: [XX]").replace("location_claim", "locaton_claim")
    config.write_text(text)
    assert main(["check", str(config)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{config}:9: identity.issuers[0]: unknown key 'locaton_claim' "
        "(did you mean 'location_claim'?)",
        f"{config}:14: geo.regions.us[0]: expected an ISO 3166-1 alpha-2 country code, got 'XX'",
        f"{config}:20: policy.rules[0].effect: expected one of allow, deny, require_approval, "
        "got 'alow'",
    ]


def test_check_refuses_an_algorithm_that_is_not_asymmetric(
    tmp_path: Path, issuer: DevIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, issuer)
    config.write_text(config.read_text().replace("[RS256]", "[RS256, HS256]"))
    assert main(["check", str(config)]) == 1
    assert ":8: identity.issuers[0].algorithms[1]: algorithm 'HS256' is not allowed" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    "name",
    [
        "GeoIP2-City-Test-Invalid-Node-Count.mmdb",
        "MaxMind-DB-test-broken-pointers-24.mmdb",
        "MaxMind-DB-test-broken-search-tree-24.mmdb",
    ],
)
def test_check_refuses_a_corrupt_geoip_database(
    tmp_path: Path,
    issuer: DevIssuer,
    shared_geoip: Path,
    name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, issuer, shared_geoip / name)
    assert main(["check", str(config)]) == 1
    error = capsys.readouterr().err
    assert name in error
    assert "corrupt" in error or "not a valid MaxMind database" in error


def test_check_refuses_a_file_that_is_not_a_geoip_database(
    tmp_path: Path, issuer: DevIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    bogus = tmp_path / "bogus.mmdb"
    bogus.write_bytes(b"not a database" * 100)
    assert main(["check", str(write_config(tmp_path, issuer, bogus))]) == 1
    assert "bogus.mmdb is not a valid MaxMind database" in capsys.readouterr().err


def test_serve_refuses_to_start_on_a_corrupt_database_with_a_clear_message(
    tmp_path: Path, issuer: DevIssuer, shared_geoip: Path
) -> None:
    config = write_config(
        tmp_path, issuer, shared_geoip / "MaxMind-DB-test-broken-pointers-24.mmdb"
    )
    result = subprocess.run(
        [sys.executable, "-m", "extproc", "serve", "authz", "--config", str(config),
         "--port", str(free_port()), "--workers", "1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "MaxMind-DB-test-broken-pointers-24.mmdb is corrupt" in result.stderr


def test_explain_prints_the_facts_and_the_deciding_rule(
    tmp_path: Path, issuer: DevIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, issuer)
    token = issuer.mint("alice", groups=("ml-eu",))
    args = ["explain", "--config", str(config), "--token", token,
            "--path", "/eu/v1/chat/completions", "--ext", "target_region=eu"]  # fmt: skip
    assert main([*args, "--source-ip", "192.0.2.10"]) == 0
    allowed = capsys.readouterr().out
    assert "source country:   DE" in allowed
    assert "eu-team-to-eu                    match -> allow" in allowed
    assert "decision: ALLOW" in allowed

    assert main([*args, "--source-ip", "198.51.100.7"]) == 3
    denied = capsys.readouterr().out
    assert "source regions:   us" in denied
    assert "watch-us-callers                 match (dry-run: would deny)" in denied
    assert "eu-team-to-eu                    no match: source_region is us, wanted eu" in denied
    assert "decision: DENY 403" in denied
    assert "rule:   default" in denied


def test_explain_shows_why_a_token_was_refused(
    tmp_path: Path, issuer: DevIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, issuer)
    token = issuer.mint("alice", groups=("ml-eu",), ttl=-3600)
    assert main(["explain", "--config", str(config), "--token", token,
                 "--source-ip", "192.0.2.10", "--path", "/eu/v1/x"]) == 3  # fmt: skip
    out = capsys.readouterr().out
    assert "DENY 401" in out
    assert "error:  token_expired" in out


def run_cli(
    *args: str, stdin: bytes = b"", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "extproc", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        env=env,
    )


def test_mask_masks_stdin_with_the_built_in_defaults_and_reports_without_values() -> None:
    body = (
        b'{"messages": [{"role": "user", "content": "card 4111 1111 1111 1111 ssn 123-45-6789"}]}'
    )
    result = run_cli("mask", "--report", stdin=body)
    assert result.returncode == 0
    assert json.loads(result.stdout)["messages"][0]["content"] == (
        "card [REDACTED:CARD] ssn [REDACTED:US_SSN]"
    )
    findings = [json.loads(line) for line in result.stderr.decode().splitlines()]
    assert findings == [
        {
            "type": "CARD",
            "direction": "request",
            "location": "$.messages[0].content@5",
            "action": "redact",
        },
        {
            "type": "US_SSN",
            "direction": "request",
            "location": "$.messages[0].content@29",
            "action": "redact",
        },
    ]
    assert b"4111" not in result.stderr


def test_mask_uses_a_config_profile_and_masks_sse(tmp_path: Path) -> None:
    (tmp_path / "masking.key").write_text("m" * 40)
    config = tmp_path / "config.yaml"
    config.write_text(
        "masking:\n  key_file: masking.key\n  profiles:\n    p: {actions: {email: tokenize}}\n"
    )
    # A config with only a masking section is enough for `extproc mask`.
    stream = b'data: {"choices":[{"index":0,"delta":{"content":"mail jane@exa"}}]}\n\n'
    stream += (
        b'data: {"choices":[{"index":0,"delta":{"content":"mple.com ok"},'
        b'"finish_reason":"stop"}]}\n\n'
    )
    stream += b"data: [DONE]\n\n"
    result = run_cli("mask", "--config", str(config), "--direction", "response", stdin=stream)
    assert result.returncode == 0, result.stderr
    assert b"jane@" not in result.stdout
    assert b"<EMAIL:" in result.stdout


def test_audit_verify_passes_then_names_the_edited_record(tmp_path: Path) -> None:
    from extproc.audit.writer import AuditWriter

    key = b"v" * 40
    writer = AuditWriter(tmp_path / "audit", "processor-0", key)
    for i in range(3):
        writer.submit({"request_id": f"r{i}", "time": "2026-11-23T00:00:00Z"})
    writer.close()
    (tmp_path / "audit.key").write_bytes(key)
    args = ("audit", "verify", str(tmp_path / "audit"), "--key-file", str(tmp_path / "audit.key"))
    ok = run_cli(*args)
    assert ok.returncode == 0
    assert b"processor-0: 4 records" in ok.stdout
    chain = tmp_path / "audit" / "processor-0.000000.jsonl"
    chain.write_bytes(chain.read_bytes().replace(b'"r1"', b'"r7"'))
    bad = run_cli(*args)
    assert bad.returncode == 1
    assert b"processor-0.000000.jsonl:3: record seq 2" in bad.stdout


def test_every_option_of_every_command_explains_itself_and_shows_its_default() -> None:
    import argparse

    from extproc.cli import _parser

    def walk(parser: argparse.ArgumentParser, path: str) -> list[str]:
        missing = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    missing += walk(sub, f"{path} {name}".strip())
            elif action.dest != "help" and not action.help:
                missing.append(f"{path}: {action.option_strings or action.dest}")
        return missing

    assert walk(_parser(), "") == []
    serve_help = run_cli("serve", "--help").stdout.decode()
    assert "(default: 1.0)" in serve_help  # --reload-interval
    # One default per line, and none for a flag or an option that has none.
    for command in (("serve",), ("approvals", "watch"), ("audit", "verify"), ("token",)):
        text = run_cli(*command, "--help").stdout.decode()
        assert "(default: False)" not in text, command
        assert "(default: None)" not in text, command
        for entry in re.split(r"\n  (?=-|\w)", text):
            assert entry.count("default") <= 1, (command, entry)


def test_token_and_explain_work_offline_against_a_demo_state_directory(tmp_path: Path) -> None:
    init = run_cli("demo", "init", str(tmp_path))
    assert init.returncode == 0, init.stderr
    token = run_cli("token", "--state-dir", str(tmp_path / "issuer").replace("/issuer", ""),
                    "--sub", "alice", "--groups", "ml-eu")  # fmt: skip
    assert token.returncode == 0, token.stderr
    explained = run_cli(
        "explain", "--config", str(tmp_path / "config.yaml"),
        "--jwks", str(tmp_path / "issuer" / "jwks.json"),
        "--token", token.stdout.decode().strip(), "--source-ip", "192.0.2.10",
        "--path", "/eu/v1/chat/completions", "--ext", "target_region=eu",
    )  # fmt: skip
    assert explained.returncode == 0, explained.stdout + explained.stderr
    assert b"decision: ALLOW" in explained.stdout


def test_a_mistyped_address_or_a_negative_ttl_is_refused_and_the_version_is_printed() -> None:
    mistyped = run_cli("explain", "--config", "c.yaml", "--source-ip", "192.0.2.1O", "--path", "/")
    assert mistyped.returncode == 2
    assert b"not an IP address: '192.0.2.1O'" in mistyped.stderr
    expired = run_cli("token", "--sub", "alice", "--ttl", "-5")
    assert expired.returncode == 2
    assert b"must be more than 0 seconds" in expired.stderr
    version = run_cli("--version")
    assert version.returncode == 0
    assert version.stdout.decode().startswith("extproc ")


def test_mask_with_a_profile_the_config_lacks_names_the_ones_it_has(tmp_path: Path) -> None:
    assert run_cli("demo", "init", str(tmp_path)).returncode == 0
    unknown = run_cli("mask", "--config", str(tmp_path / "config.yaml"), "--profile", "nope")
    assert unknown.returncode != 0
    assert b"no masking profile named 'nope' (defined: " in unknown.stderr
