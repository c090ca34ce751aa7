"""The short variant of the soak (bench/soak.py): both services with masking and write-ahead
audit under steady load; no error, one closing audit record per request served, a trail that
verifies, and no worker gone."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_a_steady_load_is_served_without_error_and_every_exchange_is_recorded(
    tmp_path: Path,
) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        from soak import soak

        result = soak(0.25, 0.5, 1, tmp_path, segment=5.0, rate=40.0)
    finally:
        sys.path.remove(str(BENCH))
    assert result.requests >= 500
    assert (result.ok, result.errors) == (result.requests, 0)
    assert result.audit_records == result.requests
    assert result.verified
    assert set(result.rss_mb) == {"authz-0", "processor-0"}
    assert all(len(samples) == len(result.segments) for samples in result.rss_mb.values())
