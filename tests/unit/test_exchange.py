"""The processor's exchange state machine without gRPC: refusals, profiles, gzip, capture."""

from __future__ import annotations

import gzip
import json

from extproc.clock import Clock
from extproc.decision import Decision, Obligations
from extproc.errors import Code
from extproc.exchange.machine import Exchange
from extproc.exchange.steps import BodyStep, HeaderStep
from extproc.masking.engine import Masker
from extproc.masking.profile import BlockRule, MaskingConfig, Profile

KEY = b"k" * 32
DECISION = Decision("d1", "r1", "allow", "eu-team", "ml-eu may reach eu models")


def exchange(
    profiles: dict[str, Profile] | None = None,
    compressed: str = "decode",
    group_profiles: tuple[tuple[str, str], ...] = (),
    **options: object,
) -> Exchange:
    profiles = profiles or {"standard": Profile("standard")}
    config = MaskingConfig(
        profiles,
        next(iter(profiles)),
        KEY,
        compressed,
        group_profiles,  # type: ignore[arg-type]
    )
    maskers = {name: Masker(profile, KEY) for name, profile in profiles.items()}
    return Exchange(config, maskers, **options)  # type: ignore[arg-type]


def test_an_exchange_without_an_authorization_decision_is_refused() -> None:
    step = exchange().request_headers({":method": "POST", ":path": "/v1/chat"})
    assert step.refusal is not None
    assert (step.refusal.status, step.refusal.error) == (403, "no_authorization_decision")


def test_an_exchange_is_refused_while_the_audit_trail_cannot_accept_events() -> None:
    ex = exchange(audit_available=False)
    ex.add_decision(DECISION)
    step = ex.request_headers({":method": "POST"})
    assert step.refusal is not None
    assert (step.refusal.status, step.refusal.error) == (503, "audit_unavailable")


def test_content_length_is_removed_whenever_a_body_may_change() -> None:
    ex = exchange()
    ex.add_decision(DECISION)
    assert ex.request_headers({"content-type": "application/json"}).remove == ("content-length",)
    assert ex.response_headers({":status": "200"}).remove == ("content-length",)


def test_the_route_profile_is_used_then_the_group_then_the_data_class_then_the_default() -> None:
    profiles = {"standard": Profile("standard"), "strict": Profile("strict"), "phi": Profile("phi")}
    ex = exchange(profiles)
    ex.add_decision(
        DECISION._replace(obligations=Obligations(masking_profile="strict"), data_class="phi")
    )
    assert ex.profile.name == "strict"
    ex = exchange(profiles, group_profiles=(("contractors", "strict"),))
    ex.add_decision(DECISION._replace(groups=("staff", "contractors"), data_class="phi"))
    assert ex.profile.name == "strict"
    ex = exchange(profiles)
    ex.add_decision(DECISION._replace(data_class="phi"))
    assert ex.profile.name == "phi"
    ex = exchange(profiles)
    ex.add_decision(DECISION._replace(obligations=Obligations(masking_profile="nope")))
    assert ex.profile.name == "standard"


def test_a_gzip_request_is_decoded_masked_and_re_encoded() -> None:
    ex = exchange()
    ex.add_decision(DECISION)
    ex.request_headers({"content-type": "application/json", "content-encoding": "gzip"})
    body = gzip.compress(b'{"q": "card 4111 1111 1111 1111"}')
    step = ex.request_body(body)
    assert step.body is not None
    assert json.loads(gzip.decompress(step.body)) == {"q": "card [REDACTED:CARD]"}


def test_compressed_bodies_are_refused_when_configured_and_unknown_encodings_always() -> None:
    ex = exchange(compressed="deny")
    ex.add_decision(DECISION)
    refused = ex.request_headers({"content-encoding": "gzip"}).refusal
    assert refused is not None
    assert refused.error == "compressed_body_refused"
    ex = exchange()
    ex.add_decision(DECISION)
    ex.request_headers({})
    refused = ex.response_headers({":status": "200", "content-encoding": "br"}).refusal
    assert refused is not None
    assert (refused.status, refused.error) == (502, "unsupported_encoding")


def test_a_body_that_cannot_be_read_does_not_pass() -> None:
    ex = exchange()
    ex.add_decision(DECISION)
    ex.request_headers({"content-type": "text/plain"})
    step = ex.request_body(b"\xc3\x28 binary")
    assert step.refusal is not None
    assert step.refusal.error == "invalid_utf8"
    ex = exchange()
    ex.add_decision(DECISION)
    ex.request_headers({"content-type": "text/plain"})
    utf16 = ex.request_body(b"\xff\xfe4\x001\x001\x001\x00")  # UTF-16 a model server might read
    assert utf16.refusal is not None
    assert utf16.refusal.error == "unsupported_charset"
    ex = exchange()
    ex.add_decision(DECISION)
    ex.request_headers({"content-type": "application/json", "content-encoding": "gzip"})
    broken = ex.request_body(b"not gzip at all")
    assert broken.refusal is not None
    assert broken.refusal.error == "invalid_encoding"


def test_a_blocked_prompt_is_refused_and_audited_as_a_deny() -> None:
    profile = Profile("p", block=(BlockRule("no-cards", "no card data here", detector="card"),))
    ex = exchange({"p": profile})
    ex.add_decision(DECISION)
    ex.request_headers({"content-type": "application/json"})
    step = ex.request_body(b'{"messages": [{"content": "4111 1111 1111 1111"}]}')
    assert step.refusal is not None
    assert (step.refusal.status, step.refusal.error, step.refusal.rule) == (
        403,
        "prompt_blocked",
        "no-cards",
    )
    event = ex.audit_event()
    assert (event["effect"], event["outcome"], event["rule"], event["error"]) == (
        "allow",
        "denied",
        "no-cards",
        "prompt_blocked",
    )


def test_payload_capture_holds_only_masked_text_and_is_capped() -> None:
    ex = exchange(capture_bytes=40)
    ex.add_decision(DECISION)
    ex.request_headers({"content-type": "application/json"})
    ex.request_body(json.dumps({"q": "card 4111 1111 1111 1111 " + "x" * 200}).encode())
    captured = ex.audit_event()["capture"]["request"]
    assert "4111" not in captured
    assert len(captured) == 40


def test_the_audit_event_counts_findings_by_direction_and_type() -> None:
    ex = exchange()
    ex.add_decision(DECISION._replace(subject="alice", source_country="DE"))
    ex.request_headers(
        {":method": "POST", ":path": "/v1/chat?x=1", "content-type": "application/json"}
    )
    ex.request_body(b'{"q": "a@example.com b@example.com"}')
    ex.response_headers({":status": "200", "content-type": "text/plain"})
    ex.response_body(b"call +1 415 555 0100")
    event = ex.audit_event()
    assert event["findings"] == {"request.EMAIL": 2, "response.PHONE": 1}
    assert (event["path"], event["upstream_status"], event["subject"]) == ("/v1/chat", 200, "alice")
    assert "a@example.com" not in json.dumps(event)


def test_a_malformed_decision_is_refused_before_anything_else() -> None:
    ex = exchange()
    ex.reject_decision("the decision's groups is not a list")
    step = ex.request_headers({":method": "POST", ":path": "/v1/chat"})
    assert step.refusal is not None
    assert (step.refusal.status, step.refusal.error) == (403, "invalid_authorization_decision")
    assert ex.audit_event()["outcome"] == "denied"


def test_a_dry_run_policy_lets_the_exchange_go_on_and_records_it_as_dry_run() -> None:
    ex = exchange()
    ex.add_decision(DECISION._replace(effect="deny", rule="us-shadow", enforced=False))
    assert ex.request_headers({":method": "POST"}).refusal is None
    event = ex.audit_event()
    assert (event["effect"], event["outcome"], event["enforced"]) == ("deny", "dry_run", False)


def test_a_denied_decision_that_still_reaches_the_processor_is_refused() -> None:
    ex = exchange()
    ex.add_decision(DECISION._replace(effect="deny", status=403, error=Code.FORBIDDEN))
    step = ex.request_headers({":method": "POST"})
    assert step.refusal is not None
    assert (step.refusal.status, step.refusal.error) == (403, "forbidden")


def test_the_clock_passed_in_dates_and_times_the_exchange() -> None:
    ticks = iter([100.0, 100.25])
    clock = Clock(wall=lambda: 1_790_000_000.0, monotonic=lambda: next(ticks))
    ex = exchange(clock=clock)
    ex.add_decision(DECISION)
    event = ex.audit_event()
    assert event["time"] == "2026-09-21T14:13:20.000000Z"
    assert event["duration_ms"] == 250.0


def test_authzs_own_denial_passes_untouched_and_is_not_audited_twice() -> None:
    ex = exchange()
    ex.add_decision(DECISION._replace(effect="deny", status=403, error=Code.FORBIDDEN))
    assert ex.response_headers({":status": "403", "content-type": "application/json"}) == (
        HeaderStep()
    )
    assert ex.response_body(b'{"error": "forbidden", "reason": "x@example.com"}') == BodyStep()
    assert ex.audit_event() is None


def test_a_response_without_a_request_is_still_audited_when_authz_allowed() -> None:
    ex = exchange()
    ex.add_decision(DECISION)
    ex.response_headers({":status": "503", "content-type": "text/plain"})
    ex.response_body(b"upstream connect error")
    event = ex.audit_event()
    assert event is not None
    assert event["upstream_status"] == 503


def test_envoys_own_answer_is_recorded_as_the_gateways_refusal_with_its_code_and_request() -> None:
    """A request Envoy answered itself (authz unreachable, a body over the limit, a timeout)
    reaches neither authz nor the processor's request path; only its answer passes by."""
    ex = exchange()
    answer = {
        "error": "authz_unavailable",
        "reason": "the authorization service could not answer",
        "rule": "gateway",
        "request_id": "rid-503",
    }
    ex.response_headers({":status": "503", "content-type": "application/json"})
    assert ex.response_body(json.dumps(answer).encode()) == BodyStep()  # nothing to mask
    event = ex.audit_event()
    assert event is not None
    assert event["request_id"] == "rid-503"
    assert (event["outcome"], event["error"], event["rule"]) == (
        "denied",
        "authz_unavailable",
        "gateway",
    )
    assert (event["status"], event["upstream_status"]) == (503, 503)


def test_an_answer_of_envoys_that_is_not_the_gateways_shape_is_recorded_as_its_status_only() -> (
    None
):
    ex = exchange()
    ex.response_headers({":status": "503", "content-type": "text/plain"})
    ex.response_body(b'{"error": "not one of ours", "request_id": "forged"}')
    event = ex.audit_event()
    assert event is not None
    assert "error" not in event
    assert event["request_id"] != "forged"
    assert event["upstream_status"] == 503


def test_an_answer_cut_before_its_body_ended_is_recorded_as_incomplete() -> None:
    ex = exchange()
    ex.add_decision(DECISION)
    ex.request_headers({":method": "POST", "content-type": "application/json"})
    ex.request_body(b'{"q": "hello"}')
    ex.response_headers({":status": "200", "content-type": "application/json"})
    event = ex.audit_event()  # the stream ended here: Envoy refused the rest, or the client left
    assert event is not None
    assert (event["outcome"], event["error"]) == ("allowed", "exchange_incomplete")


def test_a_complete_answer_or_one_without_a_body_is_not_incomplete() -> None:
    for body_follows in (True, False):
        ex = exchange()
        ex.add_decision(DECISION)
        ex.request_headers({":method": "POST", "content-type": "application/json"})
        ex.request_body(b'{"q": "hello"}')
        ex.response_headers(
            {":status": "200", "content-type": "application/json"}, end_of_stream=not body_follows
        )
        if body_follows:
            ex.response_body(b'{"a": "hi"}')
        event = ex.audit_event()
        assert event is not None
        assert "error" not in event
    ex = exchange({"prompts": Profile("prompts", directions=frozenset({"request"}))})
    ex.add_decision(DECISION)
    ex.request_headers({":method": "POST", "content-type": "application/json"})
    ex.request_body(b'{"q": "hello"}')
    ex.response_headers({":status": "200", "content-type": "application/json"})
    event = ex.audit_event()  # Envoy was told not to send the body: nothing is missing
    assert event is not None
    assert "error" not in event


def test_header_values_holding_a_finding_are_masked_both_ways_and_counted() -> None:
    ex = exchange(credential_headers=frozenset({"api-key"}))
    ex.add_decision(DECISION)
    step = ex.request_headers(
        {
            ":method": "POST",
            ":path": "/v1/chat",
            "content-type": "application/json",
            "x-note": "card 4111 1111 1111 1111",
            "x-user": "jane.doe@example.com",
            "x-forwarded-for": "203.0.113.7",  # the address Envoy computed: left alone
            "api-key": "sk-proj-Abcdefghijklmnopqrstuvwx12",  # the gateway's credential
            "user-agent": "openai-python/1.40.0",
        }
    )
    assert dict(step.set) == {
        "x-note": "card [REDACTED:CARD]",
        "x-user": "[REDACTED:EMAIL]",
    }
    answer = ex.response_headers(
        {":status": "200", "content-type": "application/json", "x-debug": "ssn 123-45-6789"}
    )
    assert dict(answer.set) == {"x-debug": "ssn [REDACTED:US_SSN]"}
    event = ex.audit_event()
    assert event is not None
    assert event["findings"] == {"request.CARD": 1, "request.EMAIL": 1, "response.US_SSN": 1}


def test_headers_are_left_alone_in_a_direction_the_profile_does_not_mask() -> None:
    ex = exchange({"responses": Profile("responses", directions=frozenset({"response"}))})
    ex.add_decision(DECISION)
    step = ex.request_headers({":method": "POST", "x-note": "card 4111 1111 1111 1111"})
    assert step.set == ()
    report = exchange({"r": Profile("r", mode="report")})
    report.add_decision(DECISION)
    assert report.request_headers({":method": "POST", "x-note": "ssn 123-45-6789"}).set == ()


def test_every_header_a_client_or_a_model_writes_is_read_and_removed_ones_stay_removed() -> None:
    ex = exchange()
    ex.add_decision(DECISION)
    step = ex.request_headers(
        {
            ":method": "POST",
            "x-approval-justification": "my ssn 078-05-1120",  # for the approver only
            "referer": "http://app.example/?e=jane.doe%40example.com",
            "x-extproc-note": "card 4111 1111 1111 1111",  # a client-invented "own" name
            "x-forwarded-for": "jane.doe@example.com, 89.160.20.112",
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        }
    )
    assert "x-approval-justification" in step.remove
    masked = dict(step.set)
    assert "x-approval-justification" not in masked
    assert masked["referer"] == "http://app.example/?e=[REDACTED:EMAIL]"
    assert masked["x-extproc-note"] == "card [REDACTED:CARD]"
    assert "jane.doe" not in masked["x-forwarded-for"]
    assert "traceparent" not in masked


def test_a_repeated_header_is_read_whole_not_only_its_last_value() -> None:
    from envoy.config.core.v3 import base_pb2
    from envoy.service.ext_proc.v3 import external_processor_pb2 as ep

    from extproc.processor.mapping import headers, request_headers_response

    message = ep.HttpHeaders(
        headers=base_pb2.HeaderMap(
            headers=[
                base_pb2.HeaderValue(key="x-note", raw_value=b"card 4111 1111 1111 1111"),
                base_pb2.HeaderValue(key="X-Note", raw_value=b"hello world"),
            ]
        )
    )
    read = headers(message)
    assert read["x-note"] == "card 4111 1111 1111 1111,hello world"
    read.add(":method", "POST")
    ex = exchange()
    ex.add_decision(DECISION)
    step = ex.request_headers(read)
    # Each value is masked and written back on its own (one Set-Cookie per cookie).
    assert [pair for pair in step.set if pair[0] == "x-note"] == [
        ("x-note", "card [REDACTED:CARD]"),
        ("x-note", "hello world"),
    ]
    answer = request_headers_response(step)
    options = [o for o in answer.request_headers.response.header_mutation.set_headers]
    # The first replaces every value Envoy holds; the next is appended (ext_proc reads the
    # "append" flag: an unset one replaces).
    assert [(o.header.key, o.HasField("append"), o.append.value) for o in options] == [
        ("x-note", False, False),
        ("x-note", True, True),
    ]
    assert options[0].append_action == base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD


def test_a_decoded_header_value_never_carries_a_line_break_and_versions_are_not_addresses() -> None:
    ex = exchange()
    ex.add_decision(DECISION)
    step = ex.request_headers(
        {
            ":method": "POST",
            "x-note": "jane.doe%40example.com%0d%0aX-Injected:%20evil",
            "user-agent": "Mozilla/5.0 AppleWebKit/537.36 Chrome/120.0.0.0 Safari/537.36",
            "content-type": 'multipart/form-data; boundary="===============4876232860129040479=="',
        }
    )
    masked = dict(step.set)
    assert masked["x-note"] == "[REDACTED:EMAIL]%0D%0AX-Injected: evil"
    assert "user-agent" not in masked
    assert "content-type" not in masked
