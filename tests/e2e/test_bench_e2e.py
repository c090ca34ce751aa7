"""The README's benchmark command runs as a new user would run it: the real Envoy, wrk, both
services and the constant-answer floor servers, ending with the JSON line the performance
issue asks for. Nothing here judges the numbers (timing belongs to the benchmark itself)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
KEYS = (
    "E1_over_S0", "E2_over_S0", "E1_p99_ms_at_500", "E2_p99_ms_at_500", "authz_cpu_ms_per_req",
    "processor_cpu_ms_per_req", "check_p50_us", "mask_mb_s", "mask_text_mb_s",
    "authz_floor_cpu_ms_per_req", "processor_floor_cpu_ms_per_req", "check_without_body_p50_us",
)  # fmt: skip


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is missing (apt-get install wrk)")
def test_the_quick_benchmark_runs_every_scenario_and_ends_with_its_json_line() -> None:
    results = REPO / "bench" / "RESULTS.md"
    recorded = results.read_bytes()
    finished = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--quick", "--duration", "1",
         "--rate", "500", "--scenarios", "S0,E1,E2,F1,F2"],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )  # fmt: skip
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-2000:]
    summary = json.loads(finished.stdout.strip().splitlines()[-1])
    for key in KEYS:
        assert isinstance(summary[key], float | int), (key, summary[key])
        assert summary[key] > 0, (key, summary[key])
    assert summary["errors"] == 0
    # The processor was on E2's path: the report says how many ext_proc messages it took (four
    # each, give or take the exchanges a one-second run cuts at its edges).
    sent = re.search(r"E2: Envoy sent (\d+\.\d) ext_proc messages per exchange", finished.stdout)
    assert sent is not None, finished.stdout[-2000:]
    assert 3.5 <= float(sent.group(1)) <= 4.5
    assert results.read_bytes() == recorded  # --quick records nothing without --write
