"""The tamper-evident record format of the audit trail.

One JSON line per record: ``seq`` (0, 1, 2, ... within a chain), ``chain`` (its id), ``kind``
(``genesis``, ``event`` or ``recovery``), ``prev`` (the previous record's ``hash``; 64 zeros for
the genesis), ``body`` (the event), then ``hash`` = SHA-256 and ``mac`` = HMAC-SHA256 (audit key)
over the canonical JSON of everything else. Editing, deleting, inserting or reordering a record
breaks ``hash``/``prev``/``seq``; recomputing them without the key breaks ``mac``. The head file
(``<chain>.head``) holds the last sealed ``seq`` and ``hash`` under the same key, so cutting
records off the end of a chain is found too.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import orjson

GENESIS_PREV = "0" * 64
MIN_KEY_BYTES = 32


def canonical(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


@dataclass(slots=True)
class ChainState:
    chain: str
    seq: int = -1
    last_hash: str = GENESIS_PREV


class Sealer:
    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"the audit key must be at least {MIN_KEY_BYTES} bytes")
        self._key = key

    def seal(self, state: ChainState, kind: str, body: dict[str, Any]) -> bytes:
        """The next record of the chain as one JSON line; advances ``state``."""
        record: dict[str, Any] = {
            "seq": state.seq + 1,
            "chain": state.chain,
            "kind": kind,
            "prev": state.last_hash,
            "body": body,
        }
        digest, mac = self.digest(record)
        record["hash"] = digest
        record["mac"] = mac
        state.seq += 1
        state.last_hash = digest
        return orjson.dumps(record) + b"\n"

    def digest(self, record: dict[str, Any]) -> tuple[str, str]:
        data = canonical({k: v for k, v in record.items() if k not in ("hash", "mac")})
        return (
            hashlib.sha256(data).hexdigest(),
            hmac.new(self._key, data, hashlib.sha256).hexdigest(),
        )

    def head(self, state: ChainState) -> bytes:
        record = {"chain": state.chain, "seq": state.seq, "hash": state.last_hash}
        mac = hmac.new(self._key, canonical(record), hashlib.sha256).hexdigest()
        return orjson.dumps({**record, "mac": mac})

    def head_is_authentic(self, head: dict[str, Any]) -> bool:
        record = {k: head.get(k) for k in ("chain", "seq", "hash")}
        mac = hmac.new(self._key, canonical(record), hashlib.sha256).hexdigest()
        return hmac.compare_digest(mac, str(head.get("mac", "")))

    def check(self, record: dict[str, Any]) -> str | None:
        """None when the record's hash and MAC are right, else what is wrong."""
        digest, mac = self.digest(record)
        if not hmac.compare_digest(digest, str(record.get("hash", ""))):
            return "its content does not match its hash (edited)"
        if not hmac.compare_digest(mac, str(record.get("mac", ""))):
            return "its MAC is wrong (edited and re-hashed, or written with another key)"
        return None
