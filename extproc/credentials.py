"""Upstream credentials: secrets only the gateway holds, injected into allowed requests.

Values come from an environment variable or a file, never from the config file itself, and are
never logged or returned to a client: ``UpstreamCredential.__repr__`` hides the value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from extproc.config.node import Node

DEFAULT_STRIPPED_HEADERS = ("authorization", "proxy-authorization", "x-api-key", "api-key")
_CREDENTIAL_KEYS = ("header", "prefix", "env", "file")


@dataclass(frozen=True, slots=True)
class UpstreamCredential:
    name: str
    header: str
    value: str = field(repr=False)

    def __repr__(self) -> str:
        return f"UpstreamCredential(name={self.name!r}, header={self.header!r}, value=<hidden>)"


@dataclass(frozen=True, slots=True)
class Upstreams:
    """Credentials by name (routes choose one with ``context_extensions.upstream_credential``) and
    the caller headers that never reach an upstream."""

    credentials: Mapping[str, UpstreamCredential]
    strip_request_headers: tuple[str, ...] = DEFAULT_STRIPPED_HEADERS


def parse_upstreams_config(node: Node, base_dir: Path) -> Upstreams:
    node.reject_unknown(("credentials", "strip_request_headers"))
    strip = tuple(
        h.lower() for h in node.string_list("strip_request_headers", list(DEFAULT_STRIPPED_HEADERS))
    )
    credentials: dict[str, UpstreamCredential] = {}
    for name, child in node.child("credentials", {}).items():
        credentials[name] = _parse_credential(name, child, base_dir)
    return Upstreams(credentials=credentials, strip_request_headers=strip)


def _parse_credential(name: str, node: Node, base_dir: Path) -> UpstreamCredential:
    node.reject_unknown(_CREDENTIAL_KEYS)
    header = node.string("header", "authorization").lower()
    prefix = node.child("prefix", "Bearer " if header == "authorization" else "").value
    if not isinstance(prefix, str):
        raise node.child("prefix").error("expected a string")
    if node.has("env") == node.has("file"):
        raise node.error("set exactly one of 'env' (environment variable) or 'file'")
    if node.has("env"):
        variable = node.string("env")
        secret = os.environ.get(variable, "")
        if not secret:
            raise node.child("env").error(f"environment variable {variable} is not set or empty")
    else:
        path = node.path_value("file", base_dir)
        assert path is not None
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise node.child("file").error(f"cannot read credential file {path}: {exc}") from None
        if not secret:
            raise node.child("file").error(f"credential file {path} is empty")
    if any(ch in secret for ch in "\r\n\0"):
        raise node.error("the credential contains a line break or NUL, which no header may carry")
    return UpstreamCredential(name=name, header=header, value=prefix + secret)
