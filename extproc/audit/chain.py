"""The tamper-evident record format of the audit trail.

A record is one line. Take the event, add ``chain`` (its id), ``seq`` (0, 1, 2, ... within the
chain) and ``prev`` (the previous record's hash), and serialise canonically (orjson, sorted keys,
no whitespace): call those bytes C. The line is C with ``hash`` = SHA-256(C) and ``mac`` =
HMAC-SHA256(audit key, C), both hex, appended as its last two members, then a newline::

    {"chain":"processor-0","decision":"allow",...,"seq":7,"time":"..."(,"hash":"..","mac":"..")}

Invariants a verifier relies on:
- record 0 has ``prev`` = 64 zeros and ``genesis`` = {"chain": <id>, "format": 1}; no other record
  has ``genesis``. ``recovery`` marks a record the writer added after a restart found damage.
- a line is valid only when it is byte for byte what the writer produced: parsed, stripped of
  ``hash`` and ``mac`` and serialised again, it must come back unchanged. So an edit anywhere,
  even one that keeps the JSON's meaning, is found; one without the key cannot be re-sealed.
- the head (``<chain>.head``) names the last durable record (seq, hash and file number) under
  the same key, so records cut off the end are found too.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

GENESIS_PREV = "0" * 64
FORMAT_VERSION = 1
MIN_KEY_BYTES = 32
_SORTED = orjson.OPT_SORT_KEYS
_HEAD_CONTEXT = b"extproc audit head\n"  # a head's MAC can never pass for a record's
_NOTE_CONTEXT = b"extproc audit note\n"  # nor a note's for a head's or a record's
_EXPIRY_CONTEXT = b"extproc recording expiry\n"  # retention's word that it removed a recording


class RecordError(Exception):
    """A line or head that is not what the writer sealed; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class ChainTip:
    """The last durable record of a chain: the next record has seq + 1 and prev = hash."""

    seq: int
    hash: str

    @classmethod
    def empty(cls) -> ChainTip:
        return cls(-1, GENESIS_PREV)


@dataclass(frozen=True, slots=True)
class Head:
    chain: str
    tip: ChainTip
    file_number: int


@dataclass(frozen=True, slots=True)
class OpenedRecord:
    record: dict[str, Any]  # without hash and mac
    seq: int
    hash: str


class Sealer:
    """Seals and opens records and heads with one audit key (at least 32 bytes)."""

    __slots__ = ("_keyed",)

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"the audit key must be at least {MIN_KEY_BYTES} bytes")
        # Keyed once; each MAC copies this state (a third cheaper than keying per record).
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)

    def seal(self, chain: str, tip: ChainTip, fields: Mapping[str, Any]) -> tuple[bytes, ChainTip]:
        """The line that follows ``tip``, and the new tip. Raises ``TypeError`` when ``fields``
        cannot be serialised (orjson's error names the type, never the value)."""
        record = dict(fields)
        record["chain"] = chain
        record["seq"] = tip.seq + 1
        record["prev"] = tip.hash
        body = orjson.dumps(record, option=_SORTED)
        digest = hashlib.sha256(body).hexdigest()
        return _line(body, digest, self._mac(body)) + b"\n", ChainTip(tip.seq + 1, digest)

    def open(self, line: bytes) -> OpenedRecord:
        """Check one line (without its newline) and return its record, or raise RecordError."""
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise RecordError("not a complete JSON record (cut short or edited)") from None
        if not isinstance(record, dict):
            raise RecordError("not a record (edited)")
        digest, mac = record.pop("hash", None), record.pop("mac", None)
        if not isinstance(digest, str) or not isinstance(mac, str):
            raise RecordError("it has no hash or MAC (edited)")
        body = orjson.dumps(record, option=_SORTED)
        if not hmac.compare_digest(hashlib.sha256(body).hexdigest(), digest):
            raise RecordError("its content does not match its hash (edited)")
        if not hmac.compare_digest(self._mac(body), mac):
            raise RecordError(
                "its MAC does not verify with this key (written with another key, "
                "or edited and re-hashed)"
            )
        if _line(body, digest, mac) != line:
            raise RecordError("its bytes differ from the sealed form (edited)")
        seq = record.get("seq")
        if type(seq) is not int or seq < 0 or not isinstance(record.get("chain"), str):
            raise RecordError("its seq or chain is malformed")
        return OpenedRecord(record, seq, digest)

    def seal_head(self, chain: str, tip: ChainTip, file_number: int) -> bytes:
        head = {"chain": chain, "file": file_number, "hash": tip.hash, "seq": tip.seq}
        return self._seal_signed(_HEAD_CONTEXT, head)

    def open_head(self, data: bytes) -> Head:
        head = self._open_signed(_HEAD_CONTEXT, data, "the head")
        chain, seq, digest, number = (
            head.get("chain"),
            head.get("seq"),
            head.get("hash"),
            head.get("file"),
        )
        if not (
            isinstance(chain, str)
            and type(seq) is int
            and isinstance(digest, str)
            and type(number) is int
        ):
            raise RecordError("the head is malformed")
        if data != self.seal_head(chain, ChainTip(seq, digest), number):
            # Byte-exact, like every record: an edit that leaves the JSON's meaning (a space, a
            # tab for the newline) must still show.
            raise RecordError("the head is not exactly as it was sealed")
        return Head(chain, ChainTip(seq, digest), number)

    def seal_note(self, note: Mapping[str, Any]) -> bytes:
        """A writer's note to its successor (see ``pending``), signed so none can be forged."""
        return self._seal_signed(_NOTE_CONTEXT, note)

    def open_note(self, data: bytes) -> dict[str, Any]:
        return self._open_signed(_NOTE_CONTEXT, data, "the note")

    def seal_expiry(self, entry: Mapping[str, Any]) -> bytes:
        """A line of the recordings' expiry log: retention removed this recording (file,
        SHA-256), signed so a deletion cannot pass for one."""
        return self._seal_signed(_EXPIRY_CONTEXT, entry)

    def open_expiry(self, line: bytes) -> dict[str, Any]:
        entry = self._open_signed(_EXPIRY_CONTEXT, line, "the expiry entry")
        if self.seal_expiry(entry) != line + b"\n":
            raise RecordError("the expiry entry is not exactly as it was sealed")
        return entry

    def _seal_signed(self, context: bytes, fields: Mapping[str, Any]) -> bytes:
        body = orjson.dumps(fields, option=_SORTED)
        return body[:-1] + b',"mac":"' + self._mac(context + body).encode() + b'"}\n'

    def _open_signed(self, context: bytes, data: bytes, what: str) -> dict[str, Any]:
        try:
            signed = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise RecordError(f"{what} is not readable") from None
        if not isinstance(signed, dict) or not isinstance(signed.get("mac"), str):
            raise RecordError(f"{what} is not readable")
        mac = signed.pop("mac")
        try:
            body = orjson.dumps(signed, option=_SORTED)
        except TypeError:
            raise RecordError(f"{what} is not readable") from None
        if not hmac.compare_digest(self._mac(context + body), mac):
            raise RecordError(f"{what} is not signed with this key")
        return signed

    def _mac(self, data: bytes) -> str:
        mac = self._keyed.copy()
        mac.update(data)
        return mac.hexdigest()


def _line(body: bytes, digest: str, mac: str) -> bytes:
    return body[:-1] + b',"hash":"' + digest.encode() + b'","mac":"' + mac.encode() + b'"}'
