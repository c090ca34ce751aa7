"""``extproc mask``: stdin → stdout, so security teams can try rules on real samples.

It does what the processor does to a body: block rules first (a blocked body is not masked: the
answer is printed and the exit status is 3), then masking by what the body is (JSON wherever it
parses, NDJSON, forms, multipart, text) or, for event streams and NDJSON labelled as such,
the stream maskers of every dialect. ``--content-type`` is optional: streams are sniffed by
their first field, the rest by ``mask_body``."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import BinaryIO, TextIO

import orjson

from extproc.errors import Code
from extproc.masking.bodies import LINE_TYPES
from extproc.masking.engine import Finding, Masker, MaskingError
from extproc.masking.forms import media_type
from extproc.masking.profile import MaskingConfig, default_masking_config
from extproc.masking.stream import stream_masker

BLOCKED = 3  # like `extproc explain` for a denial
STREAMED_TYPES = ("text/event-stream", *LINE_TYPES)


def masking_config(config_path: Path | None) -> MaskingConfig:
    if config_path is None:
        # Built-in defaults; tokens are stable only when a key is given.
        key = os.environ.get("EXTPROC_MASKING_KEY", "").encode() or secrets.token_bytes(32)
        return default_masking_config(key if len(key) >= 32 else secrets.token_bytes(32))
    from extproc.config.document import read_document
    from extproc.config.validation import load_section
    from extproc.masking.settings import MaskingSettings, compile_masking

    # Only the masking section is read: a file holding just that section is enough.
    base_dir = config_path.resolve().parent
    return load_section(
        read_document(config_path),
        "masking",
        MaskingSettings,
        lambda settings: compile_masking(settings, base_dir),
    )


def run_mask(
    config: MaskingConfig,
    *,
    profile: str | None,
    content_type: str | None,
    direction: str,
    report: bool,
    stdin: BinaryIO,
    stdout: BinaryIO,
    stderr: TextIO,
) -> int:
    """Exit 0 with the masked body, 3 when a block rule refuses it (its answer on stdout, as
    the gateway's 403 body), 1 when it cannot be masked (the gateway would refuse it too)."""
    chosen = config.profiles[profile or config.default_profile]
    masker = Masker(chosen, config.key)
    data = stdin.read()
    if direction not in chosen.directions:
        # As through the gateway: the processor never inspects (nor even receives) that body.
        stdout.write(data)
        stdout.flush()
        stderr.write(f"profile {chosen.name!r} does not inspect {direction} bodies: unchanged\n")
        return 0
    kind = content_type or _sniff(data)
    try:
        hit = masker.blocked(data, direction, kind)
        if hit is not None:
            answer = {"error": str(Code.PROMPT_BLOCKED), "reason": hit.reason, "rule": hit.rule}
            stdout.write(orjson.dumps(answer) + b"\n")
            stdout.flush()
            stderr.write(f"blocked by rule {hit.rule}: {hit.reason}\n")
            return BLOCKED
        out, findings = _masked(masker, data, kind, direction)
    except MaskingError as exc:
        stderr.write(f"extproc mask: {exc.reason} ({exc.code})\n")
        return 1
    stdout.write(out)
    stdout.flush()
    if report:
        for finding in findings:
            line = {
                "type": finding.type,
                "direction": finding.direction,
                "location": finding.location,
                "action": finding.action,
            }
            stderr.write(orjson.dumps(line).decode() + "\n")
    return 0


def _masked(masker: Masker, data: bytes, kind: str, direction: str) -> tuple[bytes, list[Finding]]:
    """The body as the processor masks it: streams by their dialect, anything else whole, read
    by what it is (``mask_body``)."""
    if media_type(kind)[0] in STREAMED_TYPES:
        stream = stream_masker(kind, masker, direction)
        out = stream.feed(data) + stream.finish()
        return out, stream.all_findings()
    result = masker.mask_body(data, kind, direction, binary_parts=masker.profile.binary_parts)
    return result.body, list(result.findings)


def _sniff(data: bytes) -> str:
    """An event stream is told by its first field; everything else ``mask_body`` sniffs."""
    stripped = data.lstrip()
    if stripped.startswith((b"data:", b"event:", b"id:")):
        return "text/event-stream"
    return ""
