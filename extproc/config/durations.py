"""Durations as a config writes them, one grammar for every section that takes one.

Seconds as a number (``90``, ``2.5``, or the same as a string), or units from the largest down,
each at most once: ``30d``, ``12h``, ``15m``, ``90s``, ``1h30m``, ``1d12h``. Never negative, never
infinite or NaN, never a boolean (YAML's ``yes`` is not a duration).

Pure: no I/O.
"""

from __future__ import annotations

import math
import re

_UNITS = re.compile(
    r"(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?"
)
_UNIT_SECONDS = (86400.0, 3600.0, 60.0, 1.0)
EXAMPLES = "90, 30s, 15m, 1h30m, 12h, 30d"


def parse_duration(value: object) -> float:
    """Seconds of ``value``. Raises ``ValueError`` saying what a duration looks like."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r} (use e.g. {EXAMPLES})")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _seconds_of_text(value)
    else:
        raise ValueError(f"not a duration: {value!r} (use e.g. {EXAMPLES})")
    if not math.isfinite(seconds):
        raise ValueError(f"a duration must be finite: {value!r}")
    if seconds < 0:
        raise ValueError(f"a duration must not be negative: {value!r}")
    return seconds


def _seconds_of_text(value: str) -> float:
    text = value.strip()
    try:
        return float(text)  # seconds, written as a number
    except ValueError:
        pass
    match = _UNITS.fullmatch(text)
    if not text or match is None:
        raise ValueError(f"not a duration: {value!r} (use e.g. {EXAMPLES})")
    amounts = zip(match.groups(), _UNIT_SECONDS, strict=True)
    return sum(float(amount) * unit for amount, unit in amounts if amount)
