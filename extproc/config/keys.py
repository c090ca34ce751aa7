"""Keys (audit MAC, masking HMAC) come from an environment variable or a file, never inline."""

from __future__ import annotations

import os
from pathlib import Path

from extproc.config.node import Node

MIN_KEY_BYTES = 32


def read_key(node: Node, base_dir: Path, what: str) -> bytes:
    """A key from ``key_env`` or ``key_file`` (never inline), at least 32 bytes."""
    if node.has("key_env") == node.has("key_file"):
        raise node.error(f"set exactly one of 'key_env' or 'key_file' for the {what} key")
    if node.has("key_env"):
        where = node.child("key_env")
        key = os.environ.get(node.string("key_env"), "").encode()
    else:
        where = node.child("key_file")
        path = node.path_value("key_file", base_dir)
        try:
            key = path.read_bytes().strip() if path else b""
        except OSError as exc:
            raise where.error(f"cannot read the {what} key: {exc.strerror}") from None
    if len(key) < MIN_KEY_BYTES:
        raise where.error(f"the {what} key must be at least {MIN_KEY_BYTES} bytes")
    return key
