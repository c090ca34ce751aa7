"""The Envoy adapter: CheckRequest → RequestView and Answer → CheckResponse."""

from __future__ import annotations

import json

from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2
from google.rpc import code_pb2

from extproc.authz.mapping import check_response, request_view
from extproc.decide.answer import Answer
from extproc.decision import Decision, DryRunHit, Obligations, from_metadata
from extproc.errors import Code
from extproc.processor.mapping import struct_to_dict


def check_request(**http_fields: object) -> external_auth_pb2.CheckRequest:
    fields = {
        "id": "req-1",
        "method": "post",
        "path": "/eu/v1/chat/completions?x=1",
        "host": "gateway.example",
        "headers": {"authorization": "Bearer abc", "content-type": "application/json"},
    }
    fields.update(http_fields)
    return external_auth_pb2.CheckRequest(
        attributes=attribute_context_pb2.AttributeContext(
            source=attribute_context_pb2.AttributeContext.Peer(
                address=address_pb2.Address(
                    socket_address=address_pb2.SocketAddress(address="192.0.2.10", port_value=5555)
                )
            ),
            request=attribute_context_pb2.AttributeContext.Request(
                http=attribute_context_pb2.AttributeContext.HttpRequest(**fields)  # type: ignore[arg-type]
            ),
            context_extensions={"target_region": "eu"},
        )
    )


def test_the_view_carries_envoys_source_address_route_extensions_and_a_path_without_query() -> None:
    view = request_view(check_request(raw_body=b'{"model": "m"}'))
    assert view.source_address == "192.0.2.10"
    assert view.path == "/eu/v1/chat/completions"
    assert view.method == "POST"
    assert view.request_id == "req-1"
    assert view.route["target_region"] == "eu"
    assert view.headers["authorization"] == "Bearer abc"
    assert view.body == b'{"model": "m"}'


def test_an_allowed_answer_sets_headers_removes_caller_credentials_and_carries_metadata() -> None:
    answer = Answer(
        Decision("d-1", "req-1", "allow", "eu-team", "ok", groups=("ml-eu",)),
        set_headers=(("authorization", "Bearer upstream-secret"),),
        remove_headers=("x-api-key",),
    )
    response = check_response(answer)
    assert response.status.code == code_pb2.OK
    header = response.ok_response.headers[0]
    assert (header.header.key, header.header.value) == ("authorization", "Bearer upstream-secret")
    assert header.append_action == base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
    assert list(response.ok_response.headers_to_remove) == ["x-api-key"]
    assert response.dynamic_metadata["rule"] == "eu-team"
    assert list(response.dynamic_metadata["groups"]) == ["ml-eu"]


def test_a_401_carries_a_json_body_and_a_bearer_challenge() -> None:
    answer = Answer(
        Decision(
            "d-1", "req-1", "deny", "identity", "the token has expired", 401, Code.TOKEN_EXPIRED
        ),
        www_authenticate='Bearer realm="extproc", error="invalid_token"',
    )
    response = check_response(answer)
    assert response.status.code == code_pb2.UNAUTHENTICATED
    denied = response.denied_response
    assert denied.status.code == 401
    assert json.loads(denied.body) == {
        "error": "token_expired",
        "reason": "the token has expired",
        "rule": "identity",
        "request_id": "req-1",
    }
    headers = {h.header.key: h.header.value for h in denied.headers}
    assert headers["content-type"] == "application/json"
    assert headers["www-authenticate"].startswith("Bearer ")


def test_a_policy_denial_is_a_403_naming_the_rule() -> None:
    answer = Answer(
        Decision(
            "d-2",
            "req-2",
            "deny",
            "source-region-not-allowed",
            "not from there",
            403,
            Code.FORBIDDEN,
        )
    )
    response = check_response(answer)
    assert response.status.code == code_pb2.PERMISSION_DENIED
    assert response.denied_response.status.code == 403
    assert json.loads(response.denied_response.body)["rule"] == "source-region-not-allowed"


FULL_DECISION = Decision(
    decision_id="d-9",
    request_id="req-9",
    effect="deny",
    rule="us-shadow",
    reason="would deny",
    enforced=False,
    dry_run=(DryRunHit("shadow", "require_approval", "would hold"),),
    subject="alice",
    issuer="https://issuer.example",
    groups=("ml-eu", "ops"),
    source_address="192.0.2.10",
    source_country="DE",
    source_region="eu",
    declared_region="eu",
    target_region="eu",
    model="demo-echo",
    data_class="phi",
    policy_revision="abc123",
    obligations=Obligations(masking_profile="strict"),
)


def test_the_decision_survives_the_metadata_round_trip_through_protobuf() -> None:
    for decision in (
        FULL_DECISION,
        Decision("d-1", "req-1", "allow", "eu-team", "ok"),
        Decision("d-2", "r", "require_approval", "x", "y", 403, Code.APPROVAL_REQUIRED),
    ):
        response = check_response(Answer(decision))
        assert from_metadata(struct_to_dict(response.dynamic_metadata)) == decision


def test_the_metadata_says_what_happened_as_well_as_what_the_policy_said() -> None:
    metadata = check_response(Answer(FULL_DECISION)).dynamic_metadata
    assert (metadata["effect"], metadata["outcome"]) == ("deny", "dry_run")
    held = Decision("d", "r", "require_approval", "x", "y", 403, Code.APPROVAL_REQUIRED)
    assert check_response(Answer(held)).dynamic_metadata["outcome"] == "held"


def test_the_metadata_struct_is_exactly_what_struct_update_would_build() -> None:
    from google.protobuf import struct_pb2

    from extproc.decision import to_metadata

    values = to_metadata(FULL_DECISION)
    expected = struct_pb2.Struct()
    expected.update(values)
    assert check_response(Answer(FULL_DECISION)).dynamic_metadata == expected
