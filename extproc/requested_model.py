"""The model a request body names, read the way the model server will read it.

Both services need it: authz decides on the model (a rule's ``model`` condition), the processor
refuses a body naming a model authz did not decide on. Both must read the same bytes the
upstream decodes, or a body one side reads differently from the other becomes a way around a
rule. So:

- The body is read after its content coding (gzip, deflate: inflated within the same bounds as
  for masking); a coding that cannot be undone leaves the model unreadable.
- JSON is recognised by what it is, not by its label (an optional byte order mark, whitespace,
  ``{``), and read as the lenient parsers of model servers read it when orjson refuses it
  (a byte order mark, NaN, a lone surrogate, UTF-16 or UTF-32, which Python's ``json`` detects
  by itself).
- The model is every top-level member whose name is ``model`` in any letter case (some parsers,
  Go's among them, match names without regard to case), every occurrence of a repeated one: a
  parser may keep the first or the last. authz decides on the last one named exactly
  ``model``, as orjson and most servers read it; the processor refuses a body in which any
  occurrence differs from that decision.
- Forms name it in a field ``model`` (urlencoded, or a part of a ``multipart/*`` body, as Rack
  reads them all). A body without a content type is a form to Rack too. A body labelled as a
  form, or not labelled, that is JSON names the models of both readings.
- A content type or a multipart body that masking refuses as read differently by different
  parsers (``forms.checked_media_type``, ``forms.boundary_of``, ``forms.part_fields``) is
  refused here with the same code; authz decides on no model.
- JSON that no parser here reads but that mentions ``model`` is unreadable, never "no model".

Pure: no I/O, no clock.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import orjson

from extproc.masking.forms import (
    FORM_TYPE,
    boundary_of,
    checked_media_type,
    form_fields,
    part_fields,
)
from extproc.masking.inflate import inflate
from extproc.masking.jsondoc import Members, parse_lenient
from extproc.masking.results import MaskingError

_JSON_START = re.compile(rb"(?:\xef\xbb\xbf)?[ \t\r\n]*\{")
# "model" as a JSON string, any of its letters possibly \u-escaped (checked on lower-cased text)
_MODEL_TOKEN = re.compile(rb'"(?:m|\\u006d)(?:o|\\u006f)(?:d|\\u0064)(?:e|\\u0065)(?:l|\\u006c)"')
_MODEL_TEXT = re.compile(r'"(?:m|\\u006d)(?:o|\\u006f)(?:d|\\u0064)(?:e|\\u0065)(?:l|\\u006c)"')
_UTF8 = ("utf-8", "utf-8-sig")


@dataclass(frozen=True, slots=True)
class BodyModels:
    """``values``: each top-level ``model`` value, in document order (strings, or whatever
    JSON type the body gave it). ``readable`` false: the body may name a model no reader here
    can see."""

    values: tuple[Any, ...] = ()
    readable: bool = True

    @property
    def decided(self) -> str | None:
        """The model to decide on: the last occurrence, as orjson keeps it; None when the body
        names none, names it by anything but a non-empty string, or cannot be read."""
        if not self.readable or not self.values:
            return None
        last = self.values[-1]
        return last if isinstance(last, str) and last else None

    def differs_from(self, model: str) -> bool:
        """Whether the body names, in any occurrence, a model other than ``model``. An empty
        string and ``null`` name none (the server's default); anything unreadable differs."""
        if not self.readable:
            return True
        return any(value not in (None, "", model) for value in self.values)


NO_MODEL = BodyModels()
UNREADABLE = BodyModels(readable=False)


def model_to_decide(
    body: bytes, content_type: str, encoding: str, *, max_bytes: int, max_ratio: int
) -> str | None:
    """The model authz decides on: the body's last top-level ``model`` named exactly so, as
    orjson and most servers read it, after the body's ``content-encoding``. Cheaper than every
    occurrence: a body whose occurrences disagree is the processor's to refuse."""
    if encoding and encoding.strip().lower() != "identity":
        try:
            body = inflate(body, encoding, max_bytes=max_bytes, max_ratio=max_ratio)
        except MaskingError:
            return None
    if body[:1] == b"{" and "form" not in content_type.lower():
        # The common case, on every Check: one parse, nothing else (the 8 KB Check budget).
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            pass  # read below as lenient parsers read it
        else:
            model = document.get("model") if isinstance(document, dict) else None
            return model if isinstance(model, str) and model else None
    return _models(body, content_type, every=False).decided


def body_models(body: bytes, content_type: str) -> BodyModels:
    """Every model a decoded body (no content coding left) names."""
    return _models(body, content_type, every=True)


def _models(body: bytes, content_type: str, *, every: bool) -> BodyModels:
    if not body:
        return NO_MODEL
    try:
        kind, params = checked_media_type(content_type)
        labelled_form = kind == FORM_TYPE or kind.startswith("multipart/")
        as_form = NO_MODEL
        if labelled_form:
            as_form = _from_form(body, kind, content_type, params)
        elif not kind and json.detect_encoding(body[:4]) in _UTF8:
            as_form = _from_fields(form_fields(body))  # Rack reads such a POST as a form
    except MaskingError:
        # Masking refuses what parsers read differently: the processor refuses it with the
        # same code; authz decides on no model, which the processor then refuses too.
        if every:
            raise
        return UNREADABLE
    if _JSON_START.match(body) is not None:
        # JSON labelled as a form, or not labelled: a server that reads JSON whatever the label
        # sees the JSON's model, one that trusts the label (or Rack, without one) the form's.
        # Both are the body's models; the JSON's come last, so they are the one decided on.
        as_json = _from_json(body, every)
        if as_form == NO_MODEL:
            return as_json
        return BodyModels(as_form.values + as_json.values, as_form.readable and as_json.readable)
    if labelled_form:
        return as_form
    encoding = json.detect_encoding(body[:4])
    if encoding not in _UTF8:  # UTF-16 or UTF-32 JSON, which Python's json reads as it is
        return _from_text(body, encoding, every)
    return as_form


def _from_form(body: bytes, kind: str, content_type: str, params: dict[str, str]) -> BodyModels:
    if kind == FORM_TYPE:
        return _from_fields(form_fields(body))
    return _from_fields(part_fields(body, boundary_of(content_type, params)))


def _from_fields(fields: list[tuple[str, str]]) -> BodyModels:
    return BodyModels(tuple(value for name, value in fields if name.lower() == "model"))


def _from_json(body: bytes, every: bool) -> BodyModels:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _from_text(body, json.detect_encoding(body[:4]), every)
    if not isinstance(document, dict):
        return NO_MODEL
    if not every:
        return BodyModels((document["model"],)) if "model" in document else NO_MODEL
    # orjson keeps one member of a repeated name: when the body could spell "model" more than
    # once (at any depth, any case, escaped or not), read every member of the top level.
    lowered = body.lower()
    mentions = lowered.count(b'"model"')
    if b"\\u00" in lowered:
        mentions = len(_MODEL_TOKEN.findall(lowered))
    if mentions > 1:
        return _from_text(body, "utf-8", every)
    return BodyModels(tuple(value for name, value in document.items() if name.lower() == "model"))


def _from_text(body: bytes, encoding: str, every: bool) -> BodyModels:
    """The lenient reading: every member kept, constants and a byte order mark accepted."""
    try:
        text = body.decode(encoding, "surrogatepass")
    except UnicodeDecodeError:
        text = body.decode("utf-8", "replace")  # unreadable as JSON; still looked through
    try:
        document = parse_lenient(text, strict=False)
    except (ValueError, RecursionError):
        return UNREADABLE if _MODEL_TEXT.search(text.lower()) is not None else NO_MODEL
    if not isinstance(document, Members):
        return NO_MODEL
    if not every:
        return BodyModels(tuple(value for name, value in document if name == "model"))
    return BodyModels(tuple(value for name, value in document if name.lower() == "model"))


_SHOWN = 64  # of a model name in a reason: enough to recognise it, never a whole padded value


def mismatch_reason(models: BodyModels, decided: str) -> str:
    """Why the processor refuses a body, and what the caller should send instead."""
    if not models.readable:
        return (
            "the body may name a model the gateway cannot read: send one top-level string "
            "model in plain JSON"
        )
    named = next(value for value in models.values if value not in (None, "", decided))
    shown = _shown(named)
    if decided:
        return (
            f"the body names the model {shown}, but the request was authorized for "
            f"{_shown(decided)}: name that model, once, or none"
        )
    return (
        f"the body names the model {shown}, which the request was not authorized for: send "
        "one top-level string model in plain JSON, so that it is decided on"
    )


def _shown(value: Any) -> str:
    if not isinstance(value, str):
        return "as a value that is not a string"
    return json.dumps(value[:_SHOWN] + ("..." if len(value) > _SHOWN else ""))
