"""The model a body names, read as the upstream reads it (``extproc.requested_model``), and the
processor's refusal of a model authz did not decide on (``Exchange``)."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest

from extproc.requested_model import (
    NO_MODEL,
    UNREADABLE,
    BodyModels,
    body_models,
    encoded_body_models,
    mismatch_reason,
)

LIMITS = {"max_bytes": 1 << 20, "max_ratio": 100}
JSON = "application/json"


def sdk(model: object, **extra: object) -> str:
    """As the OpenAI SDK writes a request: ``model`` after ``messages``."""
    return json.dumps({"messages": [{"role": "user", "content": "hi"}], "model": model, **extra})


def read(body: bytes | str, content_type: str = JSON) -> BodyModels:
    return body_models(body.encode() if isinstance(body, str) else body, content_type)


# -- what the body names ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "models"),
    [
        (sdk("gpt-x"), ("gpt-x",)),
        ('{"model": "a", "messages": []}', ("a",)),
        ('  \r\n{"model": "a"}', ("a",)),
        ("\ufeff" + sdk("bom"), ("bom",)),  # orjson refuses a BOM; Python's json reads it
        ('{"model": "nan", "temperature": NaN}', ("nan",)),
        ('{"model": "a", "s": "\\ud800"}', ("a",)),  # a lone surrogate
        ('{"model": "a", "big": 123456789012345678901234567890}', ("a",)),
        # every occurrence, in order: parsers keep the first or the last
        ('{"model": "first", "messages": [], "model": "last"}', ("first", "last")),
        # any letter case (Go's encoding/json matches names so) and \u-escaped spellings
        ('{"Model": "upper"}', ("upper",)),
        ('{"model": "a", "MODEL": "b"}', ("a", "b")),
        ('{"mod\\u0065l": "escaped", "model": "plain"}', ("escaped", "plain")),
        ('{"\\u006d\\u006F\\u0064\\u0065\\u006C": "all escaped"}', ("all escaped",)),
        # only the top level counts; the word in a prompt or a nested key does not
        ('{"messages": [{"content": "which \\"model\\" are you?"}], "model": "a"}', ("a",)),
        ('{"metadata": {"model": "nested"}, "model": "top"}', ("top",)),
        ('{"metadata": {"model": "nested"}}', ()),
        ('{"model": null}', (None,)),
        ('{"model": ["a", "b"]}', (["a", "b"],)),
        ('{"messages": []}', ()),
        ('[{"model": "in an array"}]', ()),
        ("plain text about a model", ()),
        ("", ()),
    ],
)
def test_the_models_a_json_body_names(body: str, models: tuple[object, ...]) -> None:
    result = read(body)
    assert result.readable
    assert result.values == models


def test_utf16_and_utf32_json_is_read_as_pythons_json_reads_it() -> None:
    for encoding in ("utf-16", "utf-16-le", "utf-32"):
        assert read(sdk("wide").encode(encoding)).values == ("wide",)


def test_json_no_parser_reads_is_unreadable_when_it_mentions_a_model() -> None:
    assert read('{"model": "a", oops') == UNREADABLE
    assert read('{"mod\\u0065l": "a",') == UNREADABLE
    assert read('{"messages": [], oops') == NO_MODEL


def test_the_label_does_not_decide_what_is_read_as_json() -> None:
    assert read(sdk("a"), "text/plain").values == ("a",)
    assert read(sdk("a"), "").values == ("a",)


def test_forms_name_the_model_in_a_field() -> None:
    form = "application/x-www-form-urlencoded"
    assert read("model=whisper-1&language=en", form).values == ("whisper-1",)
    assert read("mod%65l=a+b&model=c", form).values == ("a b", "c")
    assert read("language=en", form).values == ()
    parts = (
        b"--XYZ\r\n"
        b'Content-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
        b"RIFF....\r\n"
        b"--XYZ\r\n"
        b'Content-Disposition: form-data; name="model"\r\n\r\n'
        b"whisper-large\r\n"
        b"--XYZ--\r\n"
    )
    assert read(parts, "multipart/form-data; boundary=XYZ").values == ("whisper-large",)
    assert read(parts, "multipart/form-data; boundary=other") == UNREADABLE
    assert read(b"no parts", "multipart/form-data; boundary=other") == NO_MODEL


def test_a_coded_body_is_read_after_its_coding_within_bounds() -> None:
    body = sdk("coded").encode()
    assert encoded_body_models(gzip.compress(body), JSON, "gzip", **LIMITS).values == ("coded",)
    assert encoded_body_models(zlib.compress(body), JSON, "Deflate", **LIMITS).values == ("coded",)
    assert encoded_body_models(body, JSON, "identity", **LIMITS).values == ("coded",)
    assert encoded_body_models(b"not gzip", JSON, "gzip", **LIMITS) == UNREADABLE
    assert encoded_body_models(body, JSON, "br", **LIMITS) == UNREADABLE
    bomb = gzip.compress(b'{"model": "x", "pad": "' + b" " * (2 << 20) + b'"}')
    assert encoded_body_models(bomb, JSON, "gzip", **LIMITS) == UNREADABLE


def test_authz_decides_on_the_last_occurrence_as_orjson_keeps_it() -> None:
    assert read('{"model": "first", "model": "last"}').decided == "last"
    assert read(sdk("")).decided is None
    assert read(sdk(None)).decided is None
    assert read(sdk(["a"])).decided is None
    assert UNREADABLE.decided is None


def test_a_body_differs_from_a_decision_when_any_occurrence_names_another_model() -> None:
    assert not read(sdk("a")).differs_from("a")
    assert not read('{"messages": []}').differs_from("a")
    assert not read(sdk(None)).differs_from("a")  # null and "" name none: the route's default
    assert not read(sdk("")).differs_from("a")
    assert read(sdk("b")).differs_from("a")
    assert read(sdk("b")).differs_from("")
    assert read('{"model": "a", "model": "b"}').differs_from("b")
    assert read(sdk(["a"])).differs_from("a")
    assert UNREADABLE.differs_from("a")


def test_the_reason_says_what_to_send_and_never_quotes_a_padded_value() -> None:
    reason = mismatch_reason(read(sdk("b" * 500)), "a")
    assert '"a"' in reason
    assert "b" * 64 + "..." in reason
    assert "b" * 65 not in reason
    assert "not authorized" in mismatch_reason(read(sdk("b")), "")
    assert "cannot read" in mismatch_reason(UNREADABLE, "a")
    assert "not a string" in mismatch_reason(read(sdk(7)), "a")
