"""A full audit disk through the real Envoy (a 1 MiB tmpfs; the test needs root to mount it):
no exchange reaches the model unrecorded, in either `when_full` mode, the service recovers when
space is back, and the trail verifies and says what was refused."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from extproc.audit.read import read_events
from extproc.audit.verify import run_verify_cli
from tests.e2e.conftest import e2e_config, geoip_database
from tests.e2e.harness import KEYS, Gateway

pytestmark = pytest.mark.e2e

SWEDEN = "89.160.20.112"
AUDIT_KEY = KEYS["EXTPROC_E2E_AUDIT_KEY"].encode()


@contextlib.contextmanager
def small_disk(path: Path) -> Iterator[None]:
    path.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> Path:
    filler = directory / "filler"
    with filler.open("wb") as handle:
        assert _write_until_full(handle.fileno()) == errno.ENOSPC
    return filler


def _write_until_full(fd: int) -> int:
    while True:
        try:
            os.write(fd, b"\0" * 65536)
            os.fsync(fd)
        except OSError as exc:
            return exc.errno or 0


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
@pytest.mark.parametrize("when_full", ["deny", "block"])
def test_a_full_audit_disk_lets_no_exchange_through_unrecorded(
    tmp_path: Path, when_full: str
) -> None:
    root = tmp_path / "gateway"
    with small_disk(root / "audit"):
        config = e2e_config(geoip_database(tmp_path)).replace(
            "  flush_interval_ms: 10\n", f"  flush_interval_ms: 10\n  when_full: {when_full}\n"
        )
        gateway = Gateway(root, config_text=config, workers=1)
        gateway.start()
        try:
            token = gateway.token()
            assert gateway.request(token=token, source=SWEDEN).status == 200
            filler = fill(root / "audit")
            gateway.model.clear()
            replies = [gateway.request(token=token, source=SWEDEN) for _ in range(20)]
            statuses = {reply.status for reply in replies}
            assert statuses <= {200, 503}, statuses
            assert 503 in statuses
            refused = [r for r in replies if r.status == 503]
            assert all(r.json()["error"] == "audit_unavailable" for r in refused)
            served = [r for r in replies if r.status == 200]
            assert len(gateway.model.requests()) == len(served)
            filler.unlink()
            assert gateway.wait_until(
                lambda: gateway.request(token=token, source=SWEDEN).status == 200, timeout=20
            )
            # Every request the model saw has its record; the refusals are recorded as a gap.
            seen = {request.headers["x-request-id"] for request in gateway.model.requests()}
            recorded = {e.get("request_id") for e in read_events([root / "audit"], opens=True)}
            assert seen <= recorded
            out = io.StringIO()
            assert run_verify_cli([root / "audit"], AUDIT_KEY, out) == 0, out.getvalue()
            assert "refused" in out.getvalue()
        finally:
            gateway.stop()
