"""`extproc demo init DIR`: a state directory that `extproc check` accepts as the user finds it,
and that a second init (or `extproc up`) completes without replacing keys or edits."""

from __future__ import annotations

from pathlib import Path

import pytest

from extproc.cli import main
from extproc.demo.state import init_demo_state

REPO = Path(__file__).resolve().parents[2]
KEEPS = ("keys/masking.key", "keys/audit.key", "keys/model.key", "issuer/signing-key.pem")


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Nothing from the environment: the directory alone must be enough.
    monkeypatch.delenv("EXTPROC_DEMO_MODEL_KEY", raising=False)
    return tmp_path / "demo"


def test_init_writes_a_state_that_check_accepts_as_it_is(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "init", str(state_dir)]) == 0
    assert f"extproc check {state_dir / 'config.yaml'}" in capsys.readouterr().out
    assert main(["check", str(state_dir / "config.yaml")]) == 0
    assert "OK" in capsys.readouterr().out
    config = (state_dir / "config.yaml").read_text()
    assert config.startswith("# yaml-language-server: $schema=extproc.schema.json\n")
    assert (state_dir / "extproc.schema.json").read_bytes() == (
        REPO / "extproc.schema.json"
    ).read_bytes()
    assert 'issuer: "http://127.0.0.1:18443"' in config


def test_a_token_can_be_minted_right_after_init(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "init", str(state_dir), "--issuer-port", "18999"]) == 0
    capsys.readouterr()
    assert main(["token", "--state-dir", str(state_dir), "--sub", "alice"]) == 0
    assert capsys.readouterr().out.count(".") == 2
    assert 'issuer: "http://127.0.0.1:18999"' in (state_dir / "config.yaml").read_text()


def test_a_second_init_keeps_keys_and_the_users_edits(state_dir: Path) -> None:
    config = init_demo_state(state_dir)
    before = {name: (state_dir / name).read_bytes() for name in KEEPS}
    config.write_text(config.read_text() + "# my edit\n")
    assert init_demo_state(state_dir) == config
    assert {name: (state_dir / name).read_bytes() for name in KEEPS} == before
    assert config.read_text().endswith("# my edit\n")


def test_init_for_another_issuer_address_keeps_the_old_config_beside_the_new(
    state_dir: Path,
) -> None:
    config = init_demo_state(state_dir)
    keys = (state_dir / "keys" / "audit.key").read_bytes()
    init_demo_state(state_dir, "http://127.0.0.1:19000")
    assert '"http://127.0.0.1:19000"' in config.read_text()
    assert '"http://127.0.0.1:18443"' in (state_dir / "config.yaml.bak").read_text()
    assert (state_dir / "keys" / "audit.key").read_bytes() == keys
