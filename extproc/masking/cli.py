"""``extproc mask``: stdin → stdout, so security teams can try rules on real samples."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import BinaryIO, TextIO

import orjson

from extproc.masking.engine import Finding, Masker
from extproc.masking.profile import MaskingConfig, default_masking_config
from extproc.masking.stream import SseMasker


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
    masker = Masker(config.profiles[profile or config.default_profile], config.key)
    data = stdin.read()
    kind = (content_type or _sniff(data)).lower()
    findings: list[Finding]
    if kind.startswith("text/event-stream"):
        stream = SseMasker(masker, direction)
        out = stream.feed(data) + stream.finish()
        findings = stream.all_findings()
    elif "json" in kind:
        result = masker.mask_json(data, direction)
        out, findings = result.body, list(result.findings)
    else:
        result = masker.mask_bytes_as_text(data, direction)
        out, findings = result.body, list(result.findings)
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


def _sniff(data: bytes) -> str:
    stripped = data.lstrip()
    if stripped.startswith(b"data:"):
        return "text/event-stream"
    if stripped[:1] in (b"{", b"["):
        try:
            orjson.loads(data)
            return "application/json"
        except orjson.JSONDecodeError:
            pass
    return "text/plain"
