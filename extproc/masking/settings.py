"""The ``masking`` section of the config: its model, and its compile step → ``MaskingConfig``.

```yaml
masking:
  key_env: EXTPROC_MASKING_KEY      # or key_file: path (>= 32 bytes); tokens and hashes are keyed
  default_profile: standard
  group_profiles: {contractors: strict}    # callers in these groups get this profile
  profiles:
    standard:
      mode: enforce                 # or report: find and audit, change nothing
      directions: [request, response]
      detectors: [card, us_ssn, email, phone, iban, ipv4, ipv6, secret]
      actions: {default: redact, email: tokenize, card: last4}
      response_actions: {email: redact}          # overrides for one direction
      # an action with parameters (extproc.masking.action_settings):
      #   card: {mask: {chars_to_mask: 12, masking_char: "*", from_end: false}}
      #   phone: {replace: "<phone>"}               ipv4: keep
      restore: false                # true: tokens of a request are put back in its response
      custom:
        - {name: employee_id, pattern: 'EMP-[0-9]{6}', action: tokenize}
      fields:
        - {path: $.patient.ssn, action: redact}  # always masked, whatever the value
        - {path: $..email, action: tokenize}
      scan: ['$.messages[*].content']            # only these strings are scanned (default: all)
      invalid_json: text                         # or deny
      block:
        - {name: reveal-instructions, pattern: '(?i)ignore (all )?previous instructions',
           reason: prompt injection}
        - {name: no-cards-to-this-model, detector: card}
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from extproc.approval.settings import ApprovalSettings, compile_approval
from extproc.config.base import (
    SINGLE_AS_LIST,
    Name,
    OneOf,
    SettingsModel,
    runtime_default,
)
from extproc.config.keys import KeySource, read_key
from extproc.config.messages import closest
from extproc.config.problems import Problems
from extproc.masking.action_settings import ActionSetting, compile_action
from extproc.masking.detectors import (
    DEFAULT_PHONE_REGIONS,
    DETECTOR_NAMES,
    Detector,
    builtin_detectors,
)
from extproc.masking.paths import PathError, Step, compile_path
from extproc.masking.patterns import CustomDetectorSettings, compile_custom, compile_re2
from extproc.masking.profile import (
    DIRECTIONS,
    ActionSpec,
    BlockRule,
    Direction,
    FieldRule,
    MaskingConfig,
    Profile,
)

DetectorName = Annotated[
    str, OneOf(DETECTOR_NAMES, "unknown detector {value!r} (built in: {allowed})")
]
Actions = dict[Name, ActionSetting]


class FieldRuleSettings(SettingsModel):
    """A JSON field that is always masked, whatever its value."""

    path: Name = Field(description="a JSON path: $.patient.ssn, $.messages[*].content, $..email")
    action: ActionSetting = Field("redact", description="what becomes of the field")


class BlockRuleSettings(SettingsModel):
    """Refuse a request (403 prompt_blocked) whose body matches; one of ``pattern`` and
    ``detector``."""

    name: Name = Field(description="the rule's name in the answer and the audit trail")
    reason: Name | None = Field(None, description="the reason the caller reads")
    pattern: Name | None = Field(None, description="an RE2 regular expression")
    detector: DetectorName | None = Field(None, description="a built-in detector")
    directions: Annotated[tuple[Direction, ...], Field(min_length=1), SINGLE_AS_LIST] = Field(
        ("request",), description="the bodies the rule reads"
    )
    approval: ApprovalSettings | None = Field(
        None,
        description="hold a matching request for a human approval instead of refusing it "
        "(request direction only)",
    )


class ProfileSettings(SettingsModel):
    """What is found and what becomes of it, for the exchanges that use this profile."""

    mode: Literal["enforce", "report"] = Field(
        runtime_default(Profile, "mode"),
        description="report finds and audits but changes nothing",
    )
    directions: Annotated[tuple[Direction, ...], SINGLE_AS_LIST] = Field(
        DIRECTIONS, description="the bodies that are masked"
    )
    detectors: Annotated[tuple[DetectorName, ...], SINGLE_AS_LIST] = Field(
        DETECTOR_NAMES, description="the built-in detectors that run"
    )
    phone_regions: Annotated[tuple[Name, ...], SINGLE_AS_LIST] = Field(
        DEFAULT_PHONE_REGIONS,
        description="countries (ISO 3166 codes) whose national phone formats the phone detector"
        " reads; numbers with a + country prefix are found whatever this says",
    )
    actions: Actions = Field(
        default_factory=dict,
        description="detector name → action, both ways; `default` for the ones not named",
    )
    request_actions: Actions = Field(
        default_factory=dict, description="overrides of `actions` for requests"
    )
    response_actions: Actions = Field(
        default_factory=dict, description="overrides of `actions` for responses"
    )
    custom: tuple[CustomDetectorSettings, ...] = Field((), description="detectors of your own")
    fields: tuple[FieldRuleSettings, ...] = Field((), description="JSON fields always masked")
    scan: tuple[Name, ...] | None = Field(
        None, description="JSON paths of the only strings scanned (default: every string)"
    )
    invalid_json: Literal["text", "deny"] = Field(
        runtime_default(Profile, "invalid_json"),
        description="a JSON body that does not parse is scanned as text, or denied",
    )
    block: tuple[BlockRuleSettings, ...] = Field((), description="content that is refused")
    restore: bool = Field(
        runtime_default(Profile, "restore"),
        description="tokens an exchange's request was given are put back in its response, for"
        " the caller who sent them (tokenized types only; nothing is kept after the exchange)",
    )
    binary_parts: Literal["refuse", "pass"] = Field(
        runtime_default(Profile, "binary_parts"),
        description="a multipart part that cannot be read as text is refused, or passed as is",
    )


class MaskingSettings(KeySource):
    """Masking of request and response bodies, by profile. Set exactly one of ``key_env`` and
    ``key_file``: tokens and hashes are keyed HMACs."""

    default_profile: Name | None = Field(
        None, description="the profile used when nothing else picks one (default: the first)"
    )
    group_profiles: dict[Name, Name] = Field(
        default_factory=dict,
        description="group → profile; the first group of the caller's in this order decides",
    )
    profiles: Annotated[dict[Name, ProfileSettings], Field(min_length=1)] = Field(
        description="profile name → profile"
    )
    max_inflated_bytes: int = Field(
        runtime_default(MaskingConfig, "max_inflated_bytes"),
        ge=1024,
        description="a compressed body that inflates beyond this many bytes is refused (413)",
    )
    max_inflate_ratio: int = Field(
        runtime_default(MaskingConfig, "max_inflate_ratio"),
        ge=2,
        description="a compressed body that inflates more than this many times is refused (413)",
    )
    compressed: Literal["decode", "deny"] = Field(
        runtime_default(MaskingConfig, "compressed"),
        description="compressed bodies are decoded and masked, or denied",
    )


def compile_masking(settings: MaskingSettings, base_dir: Path) -> MaskingConfig:
    """Compile every profile (RE2 patterns, JSON paths, action tables) and read the key."""
    problems = Problems()
    key = read_key(settings, base_dir, "masking", problems)
    profiles: dict[str, Profile] = {}
    for name, profile in settings.profiles.items():
        profiles[name] = _profile(name, profile, problems.at("profiles", name))
    default = settings.default_profile or next(iter(settings.profiles))
    if default not in settings.profiles:
        problems.add(("default_profile",), _no_profile(default, settings))
    for group, profile_name in settings.group_profiles.items():
        if profile_name not in settings.profiles:
            problems.add(("group_profiles", group), _no_profile(profile_name, settings))
    problems.check()
    return MaskingConfig(
        profiles,
        default,
        key,
        settings.compressed,
        tuple(settings.group_profiles.items()),
        settings.max_inflated_bytes,
        settings.max_inflate_ratio,
    )


def _no_profile(name: str, settings: MaskingSettings) -> str:
    return f"no profile named {name!r} (defined: {', '.join(settings.profiles)})"


def _profile(name: str, settings: ProfileSettings, problems: Problems) -> Profile:
    custom = [compile_custom(c, problems.at("custom", i)) for i, c in enumerate(settings.custom)]
    detected = set(settings.detectors) | {c.name for c in settings.custom}
    for table in ("actions", "request_actions", "response_actions"):
        for detector in getattr(settings, table):
            if detector != "default" and detector not in detected:
                problems.add((table, detector), _not_detected(detector, detected))
    base = {_label(d): compile_action(a) for d, a in settings.actions.items() if d != "default"}
    for detector_settings, detector in zip(settings.custom, custom, strict=True):
        if detector_settings.action is not None and detector is not None:
            base.setdefault(detector.type, compile_action(detector_settings.action))
    overrides = {"request": settings.request_actions, "response": settings.response_actions}
    actions: dict[str, dict[str, ActionSpec]] = {
        direction: {
            **base,
            **{_label(d): compile_action(a) for d, a in overrides[direction].items()},
        }
        for direction in DIRECTIONS
    }
    default_action = settings.actions.get("default")
    fields = [_field(f, problems.at("fields", i)) for i, f in enumerate(settings.fields)]
    scan = None
    if settings.scan is not None:
        scan = tuple(_path(p, problems.at("scan", i)) for i, p in enumerate(settings.scan))
    block = [_block(b, problems.at("block", i)) for i, b in enumerate(settings.block)]
    return Profile(
        name=name,
        mode=settings.mode,
        directions=frozenset(settings.directions),
        detectors=_builtins(settings, problems) + tuple(d for d in custom if d),
        actions=actions,
        default_action=runtime_default(Profile, "default_action")
        if default_action is None
        else compile_action(default_action),
        fields=tuple(f for f in fields if f),
        scan=None if scan is None else tuple(s for s in scan if s is not None),
        invalid_json=settings.invalid_json,
        block=tuple(b for b in block if b),
        binary_parts=settings.binary_parts,
        restore=settings.restore,
    )


def _builtins(settings: ProfileSettings, problems: Problems) -> tuple[Detector, ...]:
    try:
        return builtin_detectors(settings.detectors, phone_regions=settings.phone_regions)
    except ValueError as exc:
        problems.add(("phone_regions",), str(exc))
        return builtin_detectors(settings.detectors)


def _not_detected(detector: str, detected: set[str]) -> str:
    close = closest(detector, detected)
    hint = f"did you mean {close!r}?" if close else f"it runs: {', '.join(sorted(detected))}"
    return f"this profile runs no detector {detector!r} ({hint})"


def _label(detector: str) -> str:
    """A detector's type in masked output and findings (``email`` → ``EMAIL``)."""
    return detector.upper()


def _field(settings: FieldRuleSettings, problems: Problems) -> FieldRule | None:
    path = _path(settings.path, problems.at("path"))
    return None if path is None else FieldRule(path, settings.path, compile_action(settings.action))


def _path(text: str, problems: Problems) -> tuple[Step, ...] | None:
    try:
        return compile_path(text)
    except PathError as exc:
        problems.add((), str(exc))
        return None


def _block(settings: BlockRuleSettings, problems: Problems) -> BlockRule | None:
    if (settings.pattern is None) == (settings.detector is None):
        problems.add((), "a block rule needs exactly one of 'pattern' or 'detector'")
        return None
    pattern = None
    if settings.pattern is not None:
        pattern = compile_re2(settings.pattern, problems.at("pattern"))
        if pattern is None:
            return None
    approval = None
    if settings.approval is not None:
        if set(settings.directions) != {"request"}:
            problems.add(("approval",), "only a rule on requests can hold one for approval")
        approval = compile_approval(settings.approval, problems.at("approval"))
    return BlockRule(
        name=settings.name,
        reason=settings.reason or f"the content matches blocking rule {settings.name}",
        pattern=pattern,
        detector=settings.detector,
        directions=frozenset(settings.directions),
        approval=approval,
    )
