"""Shared fixtures. Tests that read the shared MaxMind test databases skip when they are absent."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_GEOIP = REPO.parent / "shared" / "testdata" / "geoip"


@pytest.fixture
def shared_geoip() -> Path:
    """The directory of MaxMind's own test databases, read in place (never copied)."""
    if not (SHARED_GEOIP / "GeoIP2-Country-Test.mmdb").is_file():
        pytest.skip(f"MaxMind test databases not found beside the checkout ({SHARED_GEOIP})")
    return SHARED_GEOIP
