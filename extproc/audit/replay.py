"""``extproc audit replay ID``: one recorded exchange, printed or re-streamed as it happened.

The exchange is found by its request id (or decision id) among the sealed events of the trail;
its event must open with the audit key, and the recording's bytes must have the SHA-256 that
event holds, or nothing is printed (a recording edited, deleted or removed by retention is
refused with the reason). ``--stream`` writes the response as the client received it: each
chunk of a streamed response at its original offset (scaled by ``speed``), a whole body at once.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO, TextIO

import orjson

from extproc.audit.chain import Sealer
from extproc.audit.recording import digest, is_recording_name
from extproc.audit.recording_files import find_event, read_expiry_log
from extproc.audit.verify import collect

_SUMMARY = (
    "time", "outcome", "effect", "rule", "reason", "error", "status", "subject", "groups",
    "source_region", "target_region", "model", "upstream_status", "masking_profile",
    "findings", "duration_ms", "approval_id",
)  # fmt: skip


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class ReplayRefused(Exception):
    """The exchange cannot be replayed; the message says why."""


def load_recording(paths: Iterable[Path], wanted: str, key: bytes) -> tuple[dict[str, Any], Any]:
    """(the sealed event, the recording document) of exchange ``wanted``, or ReplayRefused."""
    sealer = Sealer(key)
    chains, _errors = collect(paths)
    found = find_event(((d, files) for (d, _chain), files in chains.items()), wanted, sealer)
    if found is None:
        raise ReplayRefused(f"no sealed audit event has the id {wanted!r}")
    event, recording = found.event, found.event.get("recording")
    if not isinstance(recording, dict):
        raise ReplayRefused(f"exchange {wanted} ({found.where}) was not recorded")
    if "error" in recording:
        raise ReplayRefused(
            f"the recording of exchange {wanted} was not written ({recording['error']})"
        )
    name = str(recording.get("file"))
    if not is_recording_name(name) or ".." in name:
        raise ReplayRefused(f"the event at {found.where} names no recording file")
    try:
        data = (found.directory / name).read_bytes()
    except FileNotFoundError:
        entry = read_expiry_log(found.directory, sealer).entries.get(name)
        if entry is not None and entry.get("sha256") == recording.get("sha256"):
            raise ReplayRefused(
                f"the recording of exchange {wanted} was removed by retention "
                f"({entry.get('reason')}, {entry.get('expired_at')})"
            ) from None
        raise ReplayRefused(
            f"the recording of exchange {wanted} ({name}) is missing: deleted or moved"
        ) from None
    if digest(data) != recording.get("sha256"):
        raise ReplayRefused(
            f"the recording of exchange {wanted} ({name}) was edited: its SHA-256 differs from "
            f"the one its audit event ({found.where}) holds; refusing to replay it"
        )
    return event, orjson.loads(data)


def print_exchange(event: Mapping[str, Any], document: Mapping[str, Any], out: TextIO) -> None:
    """The event's summary, then the request and the response as the processor let them
    through (``>`` request, ``<`` response, each streamed chunk with its offset)."""
    recording = event["recording"]
    out.write(f"exchange {document.get('request_id')}\n")
    for name in _SUMMARY:
        if event.get(name) not in (None, "", [], {}):
            value = event[name]
            shown = value if isinstance(value, str) else orjson.dumps(value).decode()
            out.write(f"  {name}: {_printable(shown)}\n")
    cut = (
        f", truncated at {document.get('max_bytes')} bytes ({document.get('dropped_bytes')} "
        "bytes not recorded)"
        if document.get("truncated")
        else ""
    )
    out.write(f"  recording: {recording['file']} (SHA-256 verified{cut})\n\n")
    request, response = document.get("request") or {}, document.get("response") or {}
    out.write(_printable(f"> {document.get('method')} {document.get('path')}") + "\n")
    _side(request, ">", out)
    if response:
        first_byte = f"  (after {response['at_ms']:.3f} ms)" if "at_ms" in response else ""
        out.write(f"\n< {response.get('status', '')}{first_byte}\n")
        _side(response, "<", out)


def _printable(text: str) -> str:
    """Control characters shown escaped: a recorded reply must not drive the auditor's terminal
    (``--stream`` writes the bytes as they were, for a program to read)."""
    return _CONTROL.sub(lambda match: repr(match[0])[1:-1], text)


def _side(side: Mapping[str, Any], mark: str, out: TextIO) -> None:
    for name, value in (side.get("headers") or {}).items():
        if name != ":status":  # shown on the response's first line
            out.write(f"{mark} {name}: {_printable(str(value))}\n")
    if side.get("headers_withheld"):
        out.write(f"{mark} ({side['headers_withheld']} more headers withheld)\n")
    out.write(f"{mark}\n")
    if "omitted" in side:
        size = f", {side['omitted_bytes']} bytes" if "omitted_bytes" in side else ""
        out.write(f"(body not recorded: {side['omitted']}{size})\n")
    elif "chunks" in side:
        for chunk in side["chunks"]:
            data = _printable(str(chunk["data"])) or "(end of stream)"
            out.write(f"[+{chunk['at_ms']:>10.3f} ms] {data}")
            out.write("" if data.endswith("\n") else "\n")
    elif "body" in side:
        body = _printable(str(side["body"]))
        out.write(body if body.endswith("\n") else body + "\n")


def stream_response(
    document: Mapping[str, Any],
    out: BinaryIO,
    speed: float,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Write the response as the client received it; each chunk at its offset divided by
    ``speed`` (0: no waiting). Returns the number of chunks written."""
    response = document.get("response") or {}
    if "omitted" in response:
        raise ReplayRefused(f"the response was not recorded: {response['omitted']}")
    chunks = response.get("chunks")
    if chunks is None:
        out.write(str(response.get("body", "")).encode("utf-8"))
        out.flush()
        return 1
    previous = chunks[0]["at_ms"] if chunks else 0.0
    for chunk in chunks:
        wait = (chunk["at_ms"] - previous) / 1000
        if speed > 0 and wait > 0:
            sleep(wait / speed)
        previous = chunk["at_ms"]
        out.write(str(chunk["data"]).encode("utf-8"))
        out.flush()
    return len(chunks)
