"""How the config names an action: by its name, or as an operator with its parameters.

```yaml
actions:
  default: redact
  email: tokenize                                  # a name: the operator with its defaults
  card: {mask: {chars_to_mask: 12, masking_char: "*", from_end: false}}
  phone: {replace: "<phone>"}                      # or {replace: {new_value: "<phone>"}}
  ipv4: keep
```

The operators are those of ``extproc.masking.operators``. The form is told by its shape (a
string, or a mapping with the one key ``mask`` or ``replace``), so a mistake gets one message
about the form meant, not one per form it might have been.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Discriminator, Field, Tag

from extproc.config.base import SettingsModel, one_message
from extproc.masking.operators import ACTIONS, Action, ActionSpec, Operator


class MaskOptions(SettingsModel):
    """Presidio's mask operator: some characters of the value written as one character."""

    chars_to_mask: int | None = Field(
        None, ge=1, description="how many characters are masked (default: all of them)"
    )
    masking_char: Annotated[
        str, Field(min_length=1, max_length=1), one_message("expected one character")
    ] = Field("*", description="the character written instead")
    from_end: bool = Field(False, description="count the masked characters from the end")


class MaskAction(SettingsModel):
    mask: MaskOptions = Field(description="mask characters of the value")


class ReplaceOptions(SettingsModel):
    new_value: str = Field(description="the text written instead of the value")


class ReplaceAction(SettingsModel):
    replace: Annotated[
        str | ReplaceOptions,
        one_message("expected the text written instead, or a mapping {new_value: TEXT}"),
    ] = Field(description="the text written instead of the value (or {new_value: TEXT})")


def _form(value: Any) -> str | None:
    if isinstance(value, str):
        return "name"
    if isinstance(value, MaskAction | ReplaceAction):
        return "mask" if isinstance(value, MaskAction) else "replace"
    if isinstance(value, dict) and len(value) == 1:
        key = next(iter(value))
        return key if key in ("mask", "replace") else None
    return None


ActionSetting = Annotated[
    Annotated[Action, Tag("name")]
    | Annotated[MaskAction, Tag("mask")]
    | Annotated[ReplaceAction, Tag("replace")],
    Discriminator(
        _form,
        custom_error_type="action",
        custom_error_message=(
            f"expected an action ({', '.join(ACTIONS)}) or a mapping with one key, "
            "mask: {chars_to_mask, masking_char, from_end} or replace: TEXT"
        ),
    ),
]


def compile_action(setting: Action | MaskAction | ReplaceAction) -> ActionSpec:
    """The runtime form: a bare name stays a name (the operator with its defaults)."""
    if isinstance(setting, MaskAction):
        options = setting.mask
        return Operator(
            "mask",
            chars_to_mask=options.chars_to_mask,
            masking_char=options.masking_char,
            from_end=options.from_end,
        )
    if isinstance(setting, ReplaceAction):
        replace = setting.replace
        text = replace if isinstance(replace, str) else replace.new_value
        return Operator("replace", new_value=text)
    return setting
