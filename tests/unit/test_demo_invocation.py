"""The commands the demo prints run as printed, whether or not ``extproc`` is on PATH."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from extproc.demo import invocation
from extproc.demo.invocation import extproc_command


def venv(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text("")
    (bin_dir / "extproc").write_text("")
    return bin_dir


def test_make_up_runs_the_venv_script_which_is_not_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = venv(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["venv/bin/extproc", "up"])
    monkeypatch.setattr(invocation.shutil, "which", lambda _name: None)
    assert extproc_command() == str(bin_dir / "extproc")


def test_extproc_on_path_is_printed_bare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = venv(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(bin_dir / "extproc"), "up"])
    monkeypatch.setattr(invocation.shutil, "which", lambda _name: str(bin_dir / "extproc"))
    assert extproc_command() == "extproc"


def test_another_extproc_on_path_is_not_the_running_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = venv(tmp_path)
    other = venv(tmp_path / "other")
    monkeypatch.setattr(sys, "argv", [str(bin_dir / "extproc"), "up"])
    monkeypatch.setattr(invocation.shutil, "which", lambda _name: str(other / "extproc"))
    assert extproc_command() == str(bin_dir / "extproc")


def test_python_m_extproc_names_the_script_beside_the_interpreter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = venv(tmp_path)
    monkeypatch.setattr(sys, "argv", ["/src/extproc/__main__.py", "up"])
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    monkeypatch.setattr(invocation.shutil, "which", lambda _name: None)
    assert extproc_command() == str(bin_dir / "extproc")


def test_without_a_script_the_interpreter_runs_the_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    interpreter = tmp_path / "with space" / "python3"
    monkeypatch.setattr(sys, "argv", ["/src/extproc/__main__.py", "up"])
    monkeypatch.setattr(sys, "executable", str(interpreter))
    monkeypatch.setattr(invocation.shutil, "which", lambda _name: None)
    assert extproc_command() == f"'{interpreter}' -m extproc"
