"""`extproc check`, `explain` and `serve` refusing bad input, as a user runs them."""

from __future__ import annotations

import json
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


def test_check_refuses_an_algorithm_that_is_not_asymmetric(
    tmp_path: Path, issuer: DevIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, issuer)
    config.write_text(config.read_text().replace("[RS256]", "[RS256, HS256]"))
    assert main(["check", str(config)]) == 1
    assert ":8: identity.issuers[0].algorithms: algorithm 'HS256' is not allowed" in (
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
