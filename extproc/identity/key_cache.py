"""The last JWKS each issuer served, shared by the workers of one service.

A worker restarted while an issuer's endpoint is down (it crashed, it was killed, it hung and
was replaced) would start without that issuer's keys and refuse every token its siblings still
accept. The supervisor gives its workers a private directory (mode 0700, removed when it stops);
a worker writes each JWKS it fetched there, and one that cannot fetch reads it back.

An issuer whose JWKS was fetched and holds no usable signing key has withdrawn its keys: its
file is removed (``forget``), so a worker that starts during a later outage starts without them.

Only public keys are written. A file is keyed by everything that says where the keys come
from (name, issuer, discovery URL, JWKS URI), so keys fetched for one configuration are never
taken for another. A file that cannot be read or parsed counts as absent, with a log line.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from extproc.identity.config import IssuerConfig

log = logging.getLogger("extproc.identity")


@dataclass(frozen=True, slots=True)
class CachedKeys:
    document: Any
    saved_at: float  # wall-clock time of the fetch


class KeyCache:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def save(self, issuer: IssuerConfig, document: Any, now: float) -> None:
        """Keep ``document`` (a JWKS that yielded keys) for ``issuer``; a failure to write is
        logged and costs nothing else: the keys in memory serve."""
        data = orjson.dumps({"saved_at": now, "jwks": document})
        try:
            handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=".jwks-")
            try:
                with os.fdopen(handle, "wb") as file:
                    file.write(data)
                os.replace(temporary, self._path(issuer))  # readers see the old or the new
            except BaseException:
                os.unlink(temporary)
                raise
        except OSError as exc:
            log.warning(
                "issuer keys not shared with the other workers",
                extra={"issuer": issuer.name, "reason": exc.strerror},
            )

    def forget(self, issuer: IssuerConfig) -> None:
        """Remove ``issuer``'s keys (it withdrew them). A failure to remove is logged as an
        error: a worker restarted during an outage could take the withdrawn keys back."""
        try:
            self._path(issuer).unlink(missing_ok=True)
        except OSError as exc:
            log.error(
                "withdrawn issuer keys still shared with the other workers",
                extra={"issuer": issuer.name, "reason": exc.strerror},
            )

    def load(self, issuer: IssuerConfig) -> CachedKeys | None:
        try:
            saved = orjson.loads(self._path(issuer).read_bytes())
        except FileNotFoundError:
            return None
        except OSError as exc:
            return _unreadable(issuer, exc.strerror or "unreadable")
        except orjson.JSONDecodeError:
            return _unreadable(issuer, "not JSON")
        saved_at = saved.get("saved_at") if isinstance(saved, dict) else None
        if not isinstance(saved_at, (int, float)) or "jwks" not in saved:
            return _unreadable(issuer, "no JWKS in it")
        return CachedKeys(saved["jwks"], float(saved_at))

    def _path(self, issuer: IssuerConfig) -> Path:
        source = "\0".join(
            (issuer.name, issuer.issuer, issuer.discovery_url or "", issuer.jwks_uri or "")
        )
        return self.directory / f"{hashlib.sha256(source.encode()).hexdigest()[:32]}.json"


def _unreadable(issuer: IssuerConfig, reason: str) -> CachedKeys | None:
    """None (as if absent), after saying why."""
    log.warning("shared issuer keys unreadable", extra={"issuer": issuer.name, "reason": reason})
    return None
