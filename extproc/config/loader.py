"""Load, validate and compile the one YAML config into an immutable ``Config``.

Every section is parsed by its owner (identity, geo, policy, upstreams, ...) from a ``Node``, so
every error names file, line and key. Nothing here does network or database I/O: opening the
GeoIP database and fetching issuer keys happen when a service builds its runtime from a
``Config`` (``extproc check`` does both too, to refuse a config that could not serve).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from extproc.audit.config import AuditConfig, parse_audit_config
from extproc.config.node import Node, parse_yaml
from extproc.credentials import Upstreams, parse_upstreams_config
from extproc.errors import ConfigError
from extproc.geo.config import GeoConfig
from extproc.geo.parse import parse_geo_config
from extproc.identity.config import IdentityConfig
from extproc.identity.parse import parse_identity_config
from extproc.masking.profile import MaskingConfig, parse_masking_config
from extproc.policy.engine import Policy, parse_policy_config

SUPPORTED_VERSIONS = (1,)
_TOP_LEVEL_KEYS = ("version", "identity", "geo", "policy", "upstreams", "masking", "audit")


@dataclass(frozen=True, slots=True)
class Config:
    """A validated config. ``revision`` identifies the file content (audit and metadata
    carry it)."""

    path: Path
    revision: str
    identity: IdentityConfig
    geo: GeoConfig
    policy: Policy
    upstreams: Upstreams
    root: Node
    masking: MaskingConfig | None = None
    audit: AuditConfig | None = None


def load_config(path: Path) -> Config:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    return parse_config(data, path)


def parse_config(data: bytes, path: Path) -> Config:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: config is not valid UTF-8") from None
    root = parse_yaml(text, file=str(path))
    if not root.is_mapping():
        raise root.error("the config must be a mapping of sections")
    root.reject_unknown(_TOP_LEVEL_KEYS)
    version = root.integer("version", 1)
    if version not in SUPPORTED_VERSIONS:
        raise root.child("version").error(f"unsupported config version {version}")
    base_dir = path.resolve().parent
    geo = parse_geo_config(root.child("geo"), base_dir)
    return Config(
        path=path,
        revision=hashlib.sha256(data).hexdigest()[:12],
        identity=parse_identity_config(root.child("identity"), base_dir),
        geo=geo,
        policy=parse_policy_config(root.child("policy"), regions=tuple(geo.regions)),
        upstreams=parse_upstreams_config(root.child("upstreams", {}), base_dir),
        root=root,
        masking=parse_masking_config(root.child("masking"), base_dir)
        if root.has("masking")
        else None,
        audit=parse_audit_config(root.child("audit"), base_dir) if root.has("audit") else None,
    )
