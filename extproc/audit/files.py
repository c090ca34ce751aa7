"""Where a chain lives on disk, and the few durable file operations the writer needs.

A directory holds any number of chains, one per writer process: ``<chain>.<n>.jsonl`` with
``n`` = 000000, 000001, ... (a full file rotates to the next number and the chain goes on),
``<chain>.head`` (the signed last durable record), ``<chain>.lock`` (held by the writing
process) and ``<file>.<offset>.torn`` (bytes of a torn write, moved aside at restart).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

CHAIN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_FILE_NAME = re.compile(r"(?P<chain>[A-Za-z0-9][A-Za-z0-9_-]{0,63})\.(?P<number>\d{6,})\.jsonl")


def check_chain_id(chain: str) -> None:
    if not CHAIN_ID.fullmatch(chain):
        raise ValueError(
            f"an audit chain id is 1-64 letters, digits, '-' or '_' (like processor-0), "
            f"got {chain!r}"
        )


def file_name(chain: str, number: int) -> str:
    return f"{chain}.{number:06d}.jsonl"


def parse_file_name(name: str) -> tuple[str, int] | None:
    """(chain, file number) of a chain file's name, or None for any other file."""
    match = _FILE_NAME.fullmatch(name)
    return (match["chain"], int(match["number"])) if match else None


def chain_files(directory: Path, chain: str) -> list[Path]:
    """The chain's files in chain order (by number, not by name)."""
    found = []
    for path in directory.glob(f"{chain}.*.jsonl"):
        parsed = parse_file_name(path.name)
        if parsed is not None and parsed[0] == chain:
            found.append((parsed[1], path))
    return [path for _number, path in sorted(found)]


def head_path(directory: Path, chain: str) -> Path:
    return directory / f"{chain}.head"


def lock_path(directory: Path, chain: str) -> Path:
    return directory / f"{chain}.lock"


def torn_path(chain_file: Path, offset: int) -> Path:
    return chain_file.with_name(f"{chain_file.name}.{offset}.torn")


def write_at(fd: int, data: bytes, offset: int) -> None:
    """All of ``data`` at ``offset`` (``os.pwrite`` may write less than asked)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def fsync_directory(directory: Path) -> None:
    """Make a new or renamed file's directory entry durable, not just its content."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_file(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically: a reader sees the old content or the new, never a mix."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def save_durably(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        write_at(fd, data, 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_directory(path.parent)


def read_tail(path: Path) -> tuple[bytes, int, bytes]:
    """(last complete line without its newline, the size up to and including that line, the
    bytes after it) of a file. The line is b"" when the file has no complete line; the bytes
    after it are a torn write (a record is complete only with its newline)."""
    size = path.stat().st_size
    window = 64 * 1024
    with path.open("rb") as handle:
        while True:
            start = max(0, size - window)
            handle.seek(start)
            data = handle.read(size - start)
            end = data.rfind(b"\n")
            if end < 0 and start > 0:
                window *= 4
                continue
            if end < 0:
                return b"", 0, data
            begin = data.rfind(b"\n", 0, end)
            if begin < 0 and start > 0:
                window *= 4
                continue
            return data[begin + 1 : end], start + end + 1, data[end + 1 :]
