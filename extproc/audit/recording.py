"""Session recordings: which exchanges are recorded, where a recording lives, how it is bound to
its audit event (compiled from ``audit.recording`` by ``extproc.audit.settings``).

A recording is one JSON file per exchange under ``<audit directory>/recordings/<day>/``, written
by the processor after the exchange ends and before its closing audit event. It holds what the
processor let through after masking: the request and response bodies as forwarded (decoded when
they were compressed), a streamed response as its chunks with their time offsets, and an
allowlist of headers whose values were masked too. The closing event carries the recording's
SHA-256 (``recording``), so the chain's own hash and MAC protect the binding: an edited file no
longer matches, a deleted one is missing, and retention records what it removes in a signed
expiry log so that a removal by retention is told apart from a deletion.

Pure: names, limits and digests; the files are written by ``extproc.audit.recording_files``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase

RECORDING_FORMAT = "extproc-recording/1"
RECORDINGS_DIRECTORY = "recordings"
EXPIRY_LOG = "expired.jsonl"
_SAFE_ID = re.compile(r"[A-Za-z0-9._-]{1,96}")
_FILE = re.compile(
    # ``~N``: a second recording of the same request id in the same microsecond
    r"(?P<day>\d{4}-\d{2}-\d{2})/(?P<clock>\d{6}\.\d{6})_(?P<rest>[A-Za-z0-9._-]+)(?:~\d{1,2})?\.json"
)


@dataclass(frozen=True, slots=True)
class RecordingConfig:
    """``enabled`` turns recording on; an exchange is recorded when its masking profile is in
    ``profiles`` or its (masked) path matches a glob of ``paths``; with neither listed, every
    exchange is. ``max_bytes`` bounds what one recording holds (bodies, chunks, headers);
    retention removes recordings older than ``max_age_seconds`` and, oldest first, beyond
    ``max_total_bytes`` (0: no limit)."""

    enabled: bool = False
    profiles: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    max_bytes: int = 1024 * 1024
    max_age_seconds: float = 30 * 24 * 3600.0
    max_total_bytes: int = 0
    retention_interval_seconds: float = 60.0

    def selects(self, profile: str, path: str) -> bool:
        if not self.enabled:
            return False
        if not self.profiles and not self.paths:
            return True
        return profile in self.profiles or any(fnmatchcase(path, glob) for glob in self.paths)


def recording_name(started_at: str, chain: str, request_id: str) -> str:
    """The recording's path relative to the audit directory, e.g.
    ``recordings/2026-11-29/211733.123456_processor-0_<request id>.json``: sortable by the
    exchange's start, which retention reads back. A request id that is not a safe file name
    (it may come from a header) is replaced by its digest."""
    day, _, clock = started_at.partition("T")
    compact = clock.rstrip("Z").replace(":", "")
    safe = request_id if _SAFE_ID.fullmatch(request_id) else digest(request_id.encode())[:32]
    return f"{RECORDINGS_DIRECTORY}/{day}/{compact}_{chain}_{safe}.json"


def started_at_of(name: str) -> str | None:
    """The exchange's start (RFC 3339 UTC, as in the trail) of a recording's relative name, or
    None for a name the processor does not write."""
    match = _FILE.fullmatch(name.removeprefix(f"{RECORDINGS_DIRECTORY}/"))
    if match is None:
        return None
    clock = match["clock"]
    return f"{match['day']}T{clock[0:2]}:{clock[2:4]}:{clock[4:]}Z"


def is_recording_name(name: str) -> bool:
    """A relative name the processor writes (never absolute, never leaving the directory)."""
    return name.startswith(f"{RECORDINGS_DIRECTORY}/") and started_at_of(name) is not None


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
