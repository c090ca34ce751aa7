"""The config's own patterns: custom detectors (RE2, an optional checksum) and RE2 compiling
with one clean problem per bad pattern (block rules use it too)."""

from __future__ import annotations

from typing import Any, Literal

import re2
from pydantic import Field
from stdnum import iban, luhn

from extproc.config.base import Name, SettingsModel
from extproc.config.problems import Problems
from extproc.masking.action_settings import ActionSetting
from extproc.masking.detectors import Detector

RESERVED_TYPES = ("restored",)  # the finding type of tokens put back (restore: true)


class CustomDetectorSettings(SettingsModel):
    """A detector of your own: an RE2 pattern (linear time: no rule can hang the data path)."""

    name: Name = Field(description="its type in masked output: <EMPLOYEE_ID:...>")
    pattern: Name = Field(description="an RE2 regular expression")
    validator: Literal["luhn", "iban"] | None = Field(
        None, description="a checksum a match must pass"
    )
    action: ActionSetting | None = Field(None, description="its action, unless `actions` names one")


def compile_custom(settings: CustomDetectorSettings, problems: Problems) -> Detector | None:
    if settings.name.lower() in RESERVED_TYPES:
        problems.add(("name",), f"{settings.name!r} is reserved for tokens put back (restore)")
        return None
    pattern = compile_re2(settings.pattern, problems.at("pattern"))
    if pattern is None:
        return None
    validate = None
    if settings.validator == "luhn":
        validate = _luhn_valid
    elif settings.validator == "iban":
        validate = _iban_valid
    return Detector(settings.name, settings.name.upper(), pattern, validate)


def _luhn_valid(match: Any) -> bool:
    return bool(luhn.is_valid("".join(c for c in match.group(0) if c.isdigit())))


def _iban_valid(match: Any) -> bool:
    return bool(iban.is_valid(match.group(0).replace(" ", "")))


def compile_re2(text: str, problems: Problems) -> Any:
    """An RE2 pattern, or ``None`` with one clean problem (RE2's own logging to stderr is off:
    the problem list says it all)."""
    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile(text, options=options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        problems.add((), f"invalid RE2 pattern: {reason}")
        return None
