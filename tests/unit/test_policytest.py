"""`extproc test`: policy suites a security team writes, run against a config without a server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from extproc.demo.state import POLICY_TESTS, init_demo_state


def extproc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "extproc", *args], capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    init_demo_state(tmp_path)
    return tmp_path


def test_the_demo_config_ships_with_a_suite_that_passes(demo: Path) -> None:
    result = extproc("test", str(demo / POLICY_TESTS), "--junit", str(demo / "junit.xml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout
    assert result.stdout.strip().endswith("10 passed, 0 failed")
    suite = ElementTree.parse(demo / "junit.xml").getroot()[0]
    assert (suite.get("tests"), suite.get("failures")) == ("10", "0")


def test_a_wrong_expectation_fails_with_a_readable_diff_and_the_policy_trace(demo: Path) -> None:
    suite = demo / POLICY_TESTS
    text = suite.read_text().replace(
        "expect: {effect: allow, rule: us-team-to-us}",
        "expect: {effect: allow, rule: eu-team-to-eu}",
    )
    suite.write_text(text)
    result = extproc("test", str(suite), "--junit", str(demo / "junit.xml"))
    assert result.returncode == 1
    assert "FAIL  bob (ml-us) reaches the us model from the US" in result.stdout
    assert "rule: expected eu-team-to-eu, got us-team-to-us" in result.stdout
    assert "eu-team-to-eu                    no match: groups_any is ml-us, wanted ml-eu" in (
        result.stdout
    )
    failure = ElementTree.parse(demo / "junit.xml").find(".//failure")
    assert failure is not None
    assert "expected eu-team-to-eu" in (failure.get("message") or "")


def test_changing_the_config_is_caught_by_the_suite(demo: Path) -> None:
    config = demo / "config.yaml"
    config.write_text(config.read_text().replace("groups_any: [ml-eu]", "groups_any: [ml-uk]"))
    result = extproc("test", str(demo / POLICY_TESTS))
    assert result.returncode == 1
    assert "FAIL  alice (ml-eu) reaches the eu model from Germany" in result.stdout


def test_a_suite_naming_an_unknown_fixture_or_key_is_refused_with_its_place(
    tmp_path: Path, demo: Path
) -> None:
    suite = tmp_path / "bad_test.yaml"
    suite.write_text(
        f"config: {demo / 'config.yaml'}\n"
        "fixtures:\n  sources: {germany: 192.0.2.10}\n  routes: {r: {path: /eu/v1/x}}\n"
        "tests:\n"
        "  - {name: one, principal: nobody, source: germany, route: r, expect: {effect: allow}}\n"
        "  - {name: two, source: germany, route: r, expect: {efect: allow}}\n"
    )
    result = extproc("test", str(suite))
    assert result.returncode == 1
    assert ":7: tests[1].expect: unknown key 'efect' (did you mean 'effect'?)" in result.stderr
    suite.write_text(suite.read_text().replace("efect", "effect"))
    result = extproc("test", str(suite))
    assert result.returncode == 1
    assert "tests[0] (one): no principal named 'nobody' (defined: none)" in result.stderr
