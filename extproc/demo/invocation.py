"""How the user can run extproc again: the commands the demo prints must work when pasted.

``make up`` runs ``.venv/bin/extproc``, which is not on PATH: a printed ``extproc token ...``
would fail with "command not found". The printed command is ``extproc`` only when that name
finds the running program; otherwise it is the running script's absolute path, or
``python -m extproc`` with this interpreter.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path


def extproc_command() -> str:
    """The running extproc as a shell command (already quoted)."""
    script = _running_script()
    on_path = shutil.which("extproc")
    if on_path is not None and (script is None or _same(Path(on_path), script)):
        return "extproc"
    if script is not None:
        return shlex.quote(str(script.absolute()))
    return f"{shlex.quote(sys.executable)} -m extproc"


def _running_script() -> Path | None:
    """The ``extproc`` script this process runs from, or the one beside this interpreter."""
    started = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if started is not None and started.name == "extproc" and started.is_file():
        return started
    beside = Path(sys.executable).parent / "extproc"
    return beside if beside.is_file() else None


def _same(first: Path, second: Path) -> bool:
    try:
        return first.resolve() == second.resolve()
    except OSError:
        return False
