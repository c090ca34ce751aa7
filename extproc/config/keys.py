"""Keys (audit MAC, masking HMAC) come from an environment variable or a file, never inline."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field

from extproc.config.base import FilePath, Name, SettingsModel, resolve_path
from extproc.config.problems import Problems

MIN_KEY_BYTES = 32


class KeySource(SettingsModel):
    """Where a section's secret key comes from: exactly one of ``key_env`` and ``key_file``."""

    key_env: Name | None = Field(
        None, description=f"environment variable holding the key (at least {MIN_KEY_BYTES} bytes)"
    )
    key_file: FilePath | None = Field(
        None,
        description=f"file holding the key (at least {MIN_KEY_BYTES} bytes; trailing "
        "whitespace is ignored)",
    )


def read_key(source: KeySource, base_dir: Path, what: str, problems: Problems) -> bytes:
    """The key named by ``source``; problems (none or both set, unreadable, too short) are
    recorded and an empty key returned."""
    if (source.key_env is None) == (source.key_file is None):
        problems.add((), f"set exactly one of 'key_env' or 'key_file' for the {what} key")
        return b""
    if source.key_env is not None:
        where = "key_env"
        key = os.environ.get(source.key_env, "").encode()
        if not key:
            problems.add(
                (where,),
                f"environment variable {source.key_env} is not set "
                f"(the {what} key must be at least {MIN_KEY_BYTES} bytes)",
            )
            return b""
    else:
        assert source.key_file is not None
        where = "key_file"
        try:
            key = resolve_path(source.key_file, base_dir).read_bytes().strip()
        except OSError as exc:
            problems.add((where,), f"cannot read the {what} key: {exc.strerror}")
            return b""
    if len(key) < MIN_KEY_BYTES:
        problems.add((where,), f"the {what} key must be at least {MIN_KEY_BYTES} bytes")
    return key
