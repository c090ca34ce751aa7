"""The model a body names, read as the upstream reads it (``extproc.requested_model``), and the
processor's refusal of a model authz did not decide on (``Exchange``)."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest
from envoy.extensions.filters.http.ext_proc.v3.processing_mode_pb2 import ProcessingMode

from extproc.approval.policy import ApprovalPolicy
from extproc.decision import Decision
from extproc.exchange.machine import Exchange
from extproc.masking.engine import Masker
from extproc.masking.profile import MaskingConfig, Profile
from extproc.masking.results import MaskingError
from extproc.processor.mapping import request_headers_response
from extproc.requested_model import (
    NO_MODEL,
    UNREADABLE,
    BodyModels,
    body_models,
    mismatch_reason,
    model_to_decide,
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
    assert read(parts, 'multipart/mixed; boundary="XYZ"').values == ("whisper-large",)  # Rack
    # what masking refuses as read differently, the processor refuses with the same code
    for body, content_type in [
        (parts, "multipart/form-data; boundary=other"),
        (b"no parts", "multipart/form-data; boundary=other"),
        (parts, "multipart/form-data; boundary=XYZ; boundary=other"),
        (parts.replace(b"\r\n", b"\r"), "multipart/form-data; boundary=XYZ"),
        (
            parts.replace(b'; name="model"', b';\r\n name="model"'),
            "multipart/form-data; boundary=XYZ",
        ),
    ]:
        with pytest.raises(MaskingError):
            read(body, content_type)
        assert decide(body, content_type=content_type) is None


def test_a_part_named_by_its_content_id_alone_is_a_field_as_rack_reads_it() -> None:
    parts = b"--XYZ\r\nContent-ID: model\r\n\r\nwhisper-large\r\n--XYZ--\r\n"
    assert read(parts, "multipart/form-data; boundary=XYZ").values == ("whisper-large",)


def test_a_body_without_a_content_type_is_a_form_too() -> None:
    assert read("model=whisper-1&language=en", "").values == ("whisper-1",)
    assert read("mod%65l=a+b", "").values == ("a b",)
    assert read(sdk("gpt-x"), "").values == ("gpt-x",)  # JSON is read as JSON
    # JSON whose text a form parser splits into a field named model: both readings count
    body = '{"model":"gpt-x","messages":[],"&model=demo&":1}'
    assert read(body, "").values[-1] == "gpt-x"
    assert "demo" in read(body, "").values
    assert decide(body, content_type="") == "gpt-x"
    assert decide("model=whisper-1", content_type="") == "whisper-1"


def test_a_content_type_read_more_than_one_way_is_refused_with_its_own_code() -> None:
    for content_type in (
        "application/x-www-form-urlencoded,text/plain",
        "multipart/form-data; boundary=B,text/plain",
        "application/json; charset=utf-8; charset=utf-8",
    ):
        with pytest.raises(MaskingError) as caught:
            read("model=frontier-x", content_type)
        assert caught.value.code == "unsupported_content_type"
        assert decide("model=frontier-x", content_type=content_type) is None
        ex = started(ALLOWED, **{"content-type": content_type})
        step = ex.request_body(b"model=frontier-x")
        assert step.refusal is not None
        assert (step.refusal.status, step.refusal.error) == (415, "unsupported_content_type")
    ex = started(ALLOWED, "response", **{"content-type": "text/plain,multipart/form-data"})
    step = ex.request_body(b"model=demo")  # a profile that does not mask requests refuses too
    assert step.refusal is not None
    assert step.refusal.error == "unsupported_content_type"


def test_a_body_without_a_content_type_naming_another_model_is_refused() -> None:
    ex = started(ALLOWED, **{"content-type": ""})
    step = ex.request_body(b"model=frontier-x&language=en")
    assert step.refusal is not None
    assert step.refusal.error == "model_not_authorized"
    ex = started(ALLOWED, **{"content-type": ""})
    card = "%34%31%31%31%20%31%31%31%31%20%31%31%31%31%20%31%31%31%31"
    step = ex.request_body(f"model=demo&card={card}".encode())
    assert step.refusal is None
    assert step.body is not None
    assert b"REDACTED" in step.body


def decide(body: bytes | str, encoding: str = "", content_type: str = JSON) -> str | None:
    raw = body.encode() if isinstance(body, str) else body
    return model_to_decide(raw, content_type, encoding, **LIMITS)


def test_authz_reads_a_coded_body_after_its_coding_within_bounds() -> None:
    body = sdk("coded").encode()
    assert decide(gzip.compress(body), "gzip") == "coded"
    assert decide(zlib.compress(body), "Deflate") == "coded"
    assert decide(body, "identity") == "coded"
    assert decide(b"not gzip", "gzip") is None
    assert decide(body, "br") is None
    bomb = gzip.compress(b'{"model": "x", "pad": "' + b" " * (2 << 20) + b'"}')
    assert decide(bomb, "gzip") is None


def test_authz_decides_on_the_last_model_named_exactly_so_as_orjson_reads_it() -> None:
    assert decide('{"model": "first", "model": "last"}') == "last"
    assert decide("\ufeff" + sdk("bom")) == "bom"
    assert decide('{"model": "nan", "t": NaN, "model": "last"}') == "last"
    assert decide(sdk("wide").encode("utf-16")) == "wide"
    assert (
        decide("model=whisper-1", content_type="application/x-www-form-urlencoded") == "whisper-1"
    )
    # what it does not decide on, the processor refuses (every occurrence, any case)
    assert decide('{"Model": "upper"}') is None
    assert decide('{"model": "a", oops') is None
    for unnamed in (sdk(""), sdk(None), sdk(["a"]), '{"messages": []}', ""):
        assert decide(unnamed) is None


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


# -- the processor refuses a model authz did not decide on --------------------------------------
KEY = b"k" * 32
ALLOWED = Decision("d1", "r1", "allow", "eu-team", "ml-eu may reach eu models", model="demo")


def exchange(*directions: str, **options: object) -> Exchange:
    profile = Profile("standard", directions=frozenset(directions or ("request", "response")))
    config = MaskingConfig({"standard": profile}, "standard", KEY)
    return Exchange(config, {"standard": Masker(profile, KEY)}, **options)  # type: ignore[arg-type]


def started(decision: Decision = ALLOWED, *directions: str, **headers: str) -> Exchange:
    ex = exchange(*directions)
    ex.add_decision(decision)
    step = ex.request_headers({":method": "POST", ":path": "/v1/chat", "content-type": JSON,
                               **headers})  # fmt: skip
    assert step.refusal is None
    return ex


def test_the_model_authz_decided_on_passes() -> None:
    ex = started()
    assert ex.request_body(sdk("demo").encode()).refusal is None
    assert ex.request_body(b'{"messages": []}').refusal is None


def test_another_model_is_refused_before_anything_reaches_the_upstream_and_audited() -> None:
    ex = started()
    step = ex.request_body(sdk("frontier-x").encode())
    assert step.refusal is not None
    assert (step.refusal.status, step.refusal.error) == (403, "model_not_authorized")
    assert '"frontier-x"' in step.refusal.reason
    assert '"demo"' in step.refusal.reason
    assert ex.forwarding is False
    event = ex.audit_event()
    assert event is not None
    assert (event["error"], event["outcome"], event["status"]) == (
        "model_not_authorized",
        "denied",
        403,
    )


def test_a_decision_without_a_model_lets_no_body_name_one() -> None:
    ex = started(ALLOWED._replace(model=""))
    assert ex.request_body(sdk("anything").encode()).refusal is not None
    ex = started(ALLOWED._replace(model=""))
    assert ex.request_body(b'{"messages": []}').refusal is None


def test_a_repeated_model_key_is_refused_unless_every_occurrence_agrees() -> None:
    ex = started()
    assert ex.request_body(b'{"model": "frontier-x", "model": "demo"}').refusal is not None
    ex = started()
    assert ex.request_body(b'{"model": "demo", "model": "demo"}').refusal is None


def test_the_model_of_a_gzip_body_is_checked_after_inflating_it() -> None:
    ex = started(ALLOWED, **{"content-encoding": "gzip"})
    step = ex.request_body(gzip.compress(sdk("frontier-x").encode()))
    assert step.refusal is not None
    assert step.refusal.error == "model_not_authorized"


def test_a_profile_that_does_not_mask_requests_still_gets_the_body_and_checks_its_model() -> None:
    ex = exchange("response")
    ex.add_decision(ALLOWED)
    step = ex.request_headers({":method": "POST", "content-type": JSON, "content-length": "9"})
    answer = request_headers_response(step)  # Envoy is never told to leave the request body out
    assert (
        not answer.HasField("mode_override")
        or answer.mode_override.request_body_mode == ProcessingMode.BUFFERED
    )
    assert "content-length" not in step.remove  # the body passes unchanged
    assert ex.request_body(sdk("frontier-x").encode()).refusal is not None
    ex = exchange("response")
    ex.add_decision(ALLOWED)
    ex.request_headers({":method": "POST", "content-type": JSON})
    body = sdk("demo", note="card 4111 1111 1111 1111").encode()
    assert ex.request_body(body).body is None  # unchanged: this profile masks no request


def test_a_route_that_pins_the_model_lets_the_body_name_that_model_or_none() -> None:
    pinned = ALLOWED._replace(model="route-model")  # authz took it from context_extensions
    for body, refused in [
        (sdk("route-model"), False),
        ('{"messages": []}', False),
        (sdk(None), False),
        (sdk("other-model"), True),
    ]:
        ex = started(pinned)
        assert (ex.request_body(body.encode()).refusal is not None) is refused, body


def test_a_form_naming_another_model_is_refused() -> None:
    form = {"content-type": "application/x-www-form-urlencoded"}
    ex = started(ALLOWED, **form)
    assert ex.request_body(b"model=frontier-x&language=en").refusal is not None
    ex = started(ALLOWED, **form)
    assert ex.request_body(b"model=demo&language=en").refusal is None


def test_json_labelled_as_a_form_names_the_models_of_both_readings() -> None:
    """A server that reads JSON whatever the label sees ``gpt-x``; one that trusts the label
    sees a form field ``model=demo``, smuggled in a member name."""
    body = '{"model":"gpt-x","messages":[],"&model=demo&":1}'
    form = "application/x-www-form-urlencoded"
    assert read(body, form).values[-1] == "gpt-x"
    assert set(read(body, form).values) >= {"gpt-x", "demo"}
    assert decide(body, content_type=form) == "gpt-x"  # authz decides on the JSON's model
    # as multipart it has no parts a parser could read: the processor refuses it, as masking does
    with pytest.raises(MaskingError) as caught:
        read(body, "multipart/form-data; boundary=x")
    assert caught.value.code == "malformed_multipart"
    assert decide(body, content_type="multipart/form-data; boundary=x") is None
    ex = started(ALLOWED, **{"content-type": form})
    step = ex.request_body(b'{"model":"demo","messages":[],"&model=frontier-x&":1}')
    assert step.refusal is not None  # the form reading names a model authz did not decide on
    assert step.refusal.error == "model_not_authorized"


def test_a_streamed_request_is_checked_like_any_other() -> None:
    ex = started()
    assert ex.request_body(sdk("frontier-x", stream=True).encode()).refusal is not None
    ex = started()
    assert ex.request_body(sdk("demo", stream=True).encode()).refusal is None
    step = ex.response_headers({":status": "200", "content-type": "text/event-stream"})
    assert step.stream_body


def test_a_held_request_naming_another_model_is_refused_not_held() -> None:
    policy = ApprovalPolicy(approver_groups=("security",), any_of=1)
    held = ALLOWED._replace(effect="require_approval")
    ex = exchange(approval_for=lambda _rule: policy)
    ex.add_decision(held)
    ex.request_headers({":method": "POST", "content-type": JSON})
    step = ex.request_body(sdk("frontier-x").encode())
    assert step.refusal is not None
    assert step.refusal.error == "model_not_authorized"
    assert ex.pending_hold is None  # no approver is ever asked about it
    ex = exchange(approval_for=lambda _rule: policy)
    ex.add_decision(held)
    ex.request_headers({":method": "POST", "content-type": JSON})
    assert ex.request_body(sdk("demo").encode()).refusal is None
    assert ex.pending_hold is not None


def test_a_refusal_never_quotes_a_personal_value_the_body_put_in_its_model() -> None:
    ex = started()
    step = ex.request_body(sdk("demo for 4111 1111 1111 1111").encode())
    assert step.refusal is not None
    assert "4111 1111 1111 1111" not in step.refusal.reason
    assert "[REDACTED:CARD]" in step.refusal.reason
