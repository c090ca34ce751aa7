"""The whole config file: its model (the root of the JSON Schema), and loading it into a
``Config``.

Loading validates every section against its model, then compiles each section that is valid
(patterns, predicates, region tables, keys read from the environment or files), and reports every
problem found, each with file, line and key, in one ``ConfigError``. Checks across sections (a
rule naming a region ``geo`` does not define) run when both sections are valid. Nothing here
opens the GeoIP database or fetches issuer keys: the services do that when they build their
runtime from a ``Config`` (``extproc check`` does both too).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field

from extproc.approval.config import ApprovalsSettings
from extproc.approval.section import ApprovalsSection, compile_approvals
from extproc.audit.config import AuditConfig
from extproc.audit.settings import AuditSettings, compile_audit
from extproc.config.base import SettingsModel
from extproc.config.document import ABSENT, Document, parse_document
from extproc.config.schema import json_schema
from extproc.config.validation import Validation
from extproc.credentials import Upstreams
from extproc.errors import ConfigError
from extproc.geo.config import GeoConfig
from extproc.geo.settings import GeoSettings, compile_geo
from extproc.identity.config import IdentityConfig
from extproc.identity.settings import IdentitySettings, compile_identity
from extproc.masking.profile import MaskingConfig
from extproc.masking.settings import MaskingSettings, compile_masking
from extproc.policy.engine import Policy
from extproc.policy.settings import PolicySettings, compile_policy
from extproc.tracing.settings import TRACING_OFF, TracingConfig, TracingSettings, compile_tracing
from extproc.upstream_settings import UpstreamsSettings, compile_upstreams

R = TypeVar("R")
SCHEMA_TITLE = "extproc config"
SCHEMA_DESCRIPTION = (
    "The one YAML file of the extproc policy enforcement point: who may call (identity), from "
    "where (geo), what is allowed (policy), the secrets injected upstream (upstreams), how "
    "bodies are masked (masking), where the audit trail goes (audit) and where traces go "
    "(tracing)."
)


class ExtprocSettings(SettingsModel):
    """The extproc config file."""

    version: Literal[1] = Field(1, description="the config format's version")
    identity: IdentitySettings = Field(description="who may call: trusted token issuers")
    geo: GeoSettings = Field(description="from where: GeoIP database, CIDR table, regions")
    policy: PolicySettings = Field(description="ordered rules → allow, deny or require_approval")
    upstreams: UpstreamsSettings = Field(
        UpstreamsSettings(), description="credentials only the gateway holds"
    )
    masking: MaskingSettings | None = Field(
        None, description="masking of bodies (the processor needs it)"
    )
    audit: AuditSettings | None = Field(
        None, description="the tamper-evident audit trail (the processor needs it)"
    )
    approvals: ApprovalsSection = Field(
        ApprovalsSection(), description="where approvals are kept, who is told about them"
    )
    tracing: TracingSettings = Field(
        TracingSettings(), description="OpenTelemetry traces over OTLP (off by default)"
    )


@dataclass(frozen=True, slots=True)
class Config:
    """A validated, compiled config. ``revision`` identifies the file content (audit events and
    metadata carry it)."""

    path: Path
    revision: str
    identity: IdentityConfig
    geo: GeoConfig
    policy: Policy
    upstreams: Upstreams
    masking: MaskingConfig | None = None
    audit: AuditConfig | None = None
    approvals: ApprovalsSettings | None = None
    tracing: TracingConfig = TRACING_OFF


def load_config(path: Path) -> Config:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    return parse_config(data, path)


def parse_config(data: bytes, path: Path) -> Config:
    """Validate and compile; raise one ``ConfigError`` naming every problem."""
    document = parse_document(data, file=str(path))
    validation = Validation(document)
    sections = _valid_sections(document, validation)
    base_dir = path.resolve().parent

    def build(name: str, compile_section: Callable[[Any], R]) -> R | None:
        section = sections.get(name)
        if section is None:
            return None
        return validation.compile(lambda: compile_section(section), name)

    identity = build("identity", lambda s: compile_identity(s, base_dir))
    geo = build("geo", lambda s: compile_geo(s, base_dir))
    regions = _region_names(document, sections.get("geo"))
    policy = None
    if regions is not None:
        policy = build("policy", lambda s: compile_policy(s, regions=regions))
    upstreams = build("upstreams", lambda s: compile_upstreams(s, base_dir))
    masking = build("masking", lambda s: compile_masking(s, base_dir))
    masking_section = sections.get("masking")
    profile_names = None if masking_section is None else tuple(masking_section.profiles)
    audit = build("audit", lambda s: compile_audit(s, base_dir, profile_names))
    approvals = build("approvals", lambda s: compile_approvals(s, base_dir))
    if approvals is None and not validation.failed("approvals"):
        approvals = compile_approvals(ApprovalsSection(), base_dir)
    tracing = build("tracing", compile_tracing)
    validation.raise_if_any()
    if identity is None or geo is None or policy is None or upstreams is None:
        raise AssertionError("no problem was recorded, yet a required section did not compile")
    return Config(
        path=path,
        revision=hashlib.sha256(data).hexdigest()[:12],
        identity=identity,
        geo=geo,
        policy=policy,
        upstreams=upstreams,
        masking=masking,
        audit=audit,
        approvals=approvals,
        tracing=tracing or TRACING_OFF,
    )


def _valid_sections(document: Document, validation: Validation) -> dict[str, Any]:
    """Each section's model, for the sections that are valid (all problems are recorded)."""
    root = validation.validate(ExtprocSettings)
    if root is not None:
        return {name: getattr(root, name) for name in ExtprocSettings.model_fields}
    if not isinstance(document.data, dict):
        return {}
    sections: dict[str, Any] = {}
    for name, field in ExtprocSettings.model_fields.items():
        if name == "version" or validation.failed(name):
            continue
        if name in document.data:
            # Valid on its own: the root failed elsewhere. Compile it so its problems show too.
            sections[name] = Validation(document).validate(_model_of(field.annotation), name)
        elif not field.is_required():
            sections[name] = field.get_default(call_default_factory=True)
    return sections


def _region_names(document: Document, geo: GeoSettings | None) -> tuple[str, ...] | None:
    """The regions rules may name: the valid geo section's, or else the names written under
    geo.regions, so a policy beside a broken geo section is still checked. ``None`` when not
    even the names can be read (the policy's region checks would all be noise)."""
    if geo is not None:
        return tuple(geo.regions)
    written = document.value_at(("geo", "regions"))
    if written is ABSENT and isinstance(document.value_at(("geo",)), dict):
        return ()
    if isinstance(written, dict) and all(isinstance(name, str) for name in written):
        return tuple(written)
    return None


def _model_of(annotation: Any) -> type[SettingsModel]:
    for member in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(member, type) and issubclass(member, SettingsModel):
            return member
    raise TypeError(f"no settings model in {annotation!r}")


def config_schema() -> dict[str, Any]:
    """The JSON Schema of the config file (``extproc schema``)."""
    return json_schema(ExtprocSettings, title=SCHEMA_TITLE, description=SCHEMA_DESCRIPTION)


def config_schema_text() -> str:
    """The schema as ``extproc schema`` prints it and ``extproc.schema.json`` holds it."""
    return json.dumps(config_schema(), indent=2, ensure_ascii=False) + "\n"
