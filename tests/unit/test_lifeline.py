"""Children die with their parent, even when the parent is killed with SIGKILL (Linux)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest

from extproc.lifeline import orphaned, tied_to_parent
from tests.support.processes import kill_all, wait_until_gone

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")

MIDDLE = """
import subprocess, sys, time
from extproc.lifeline import tied_to_parent
child = subprocess.Popen(tied_to_parent(["sleep", "60"]), start_new_session=True)
print(child.pid, flush=True)
time.sleep(60)
"""


@linux_only
def test_a_tied_command_gets_sigterm_when_its_parent_is_killed() -> None:
    # start_new_session: like Envoy, the child is outside its parent's process group, so only
    # the kernel's parent-death signal can reach it.
    middle = subprocess.Popen([sys.executable, "-c", MIDDLE], stdout=subprocess.PIPE, text=True)
    assert middle.stdout is not None
    child = int(middle.stdout.readline())
    try:
        assert wait_until_gone({child}, timeout=0.5) == {child}  # it runs while its parent does
        middle.kill()
        middle.wait()
        assert wait_until_gone({child}, timeout=5) == set()
    finally:
        kill_all({child, middle.pid})


@linux_only
def test_a_parent_gone_before_the_command_starts_stops_it_at_once() -> None:
    # The parent named is not this process's parent: it is as if it had died already.
    command = tied_to_parent(["sleep", "60"])
    command[command.index(str(os.getpid()))] = "1"
    result = subprocess.run(command, timeout=30, check=False)
    assert result.returncode == -signal.SIGTERM


def test_the_tied_command_is_the_command_itself_once_started() -> None:
    result = subprocess.run(
        tied_to_parent([sys.executable, "-c", "print('hello')"]),
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert result.stdout == "hello\n"


def test_a_worker_notices_its_supervisor_is_gone_without_the_kernels_help() -> None:
    from extproc.server import _stop_when_orphaned

    assert not orphaned(os.getppid())
    assert orphaned(os.getppid() + 1_000_000)

    async def run() -> bool:
        stop = asyncio.Event()
        await asyncio.wait_for(_stop_when_orphaned(os.getppid() + 1_000_000, stop), timeout=5)
        return stop.is_set()

    assert asyncio.run(run())
