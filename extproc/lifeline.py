"""Child processes that die with their parent.

A parent killed with SIGKILL runs no cleanup: without help, Envoy (in its own session) and the
``extproc serve`` trees started by ``extproc up``, or the workers of an ``extproc serve``
supervisor, would keep running and keep their ports. On Linux the kernel can signal a process
when its parent dies (``prctl(PR_SET_PDEATHSIG)``); the setting survives ``exec``, so a command
started through ``tied_to_parent`` (``python -m extproc.lifeline PARENT_PID COMMAND...``) sets it
and then becomes COMMAND. This avoids ``preexec_fn``, which is unsafe in a parent with threads.
Elsewhere the commands run unchanged, and the workers also poll ``os.getppid()`` (``orphaned``).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Sequence

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int, signum: int = signal.SIGTERM) -> bool:
    """Ask for ``signum`` when the parent dies (Linux); if ``parent`` is already gone (it died
    before the request took effect), send it now. False where the kernel cannot do this."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        done = bool(libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False
    if done and os.getppid() != parent:
        os.kill(os.getpid(), signum)
    return done


def orphaned(parent: int) -> bool:
    """True once the process that started this one has gone (this one was re-parented)."""
    return os.getppid() != parent


def tied_to_parent(command: Sequence[str]) -> list[str]:
    """``command`` so that it gets SIGTERM when this process dies (unchanged off Linux)."""
    if not sys.platform.startswith("linux"):
        return list(command)
    return [sys.executable, "-m", "extproc.lifeline", str(os.getpid()), *command]


def main(argv: Sequence[str]) -> int:
    if len(argv) < 2 or not argv[0].isdigit():
        print("usage: python -m extproc.lifeline PARENT_PID COMMAND [ARG...]", file=sys.stderr)
        return 2
    die_with_parent(int(argv[0]))
    try:
        os.execvp(argv[1], list(argv[1:]))  # noqa: S606 - the caller's own argv, no shell
    except OSError as exc:
        print(f"extproc: cannot run {argv[1]}: {exc.strerror}", file=sys.stderr)
        return 127
    return 0  # not reached: exec replaced this process


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
