"""The Envoy adapter: CheckRequest → RequestView and Answer → CheckResponse."""

from __future__ import annotations

import json

from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2
from google.rpc import code_pb2

from extproc.authz.mapping import check_response, request_view
from extproc.authz.pipeline import Answer
from extproc.policy.decision import Decision


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
        allowed=True,
        status=200,
        decision=Decision("allow", "eu-team", "ok"),
        request_id="req-1",
        decision_id="d-1",
        set_headers=(("authorization", "Bearer upstream-secret"),),
        remove_headers=("x-api-key",),
        metadata={"rule": "eu-team", "groups": ["ml-eu"], "enforced": True},
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
        allowed=False,
        status=401,
        decision=Decision("deny", "identity", "the token has expired", 401),
        request_id="req-1",
        decision_id="d-1",
        error="token_expired",
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
        allowed=False,
        status=403,
        decision=Decision("deny", "source-region-not-allowed", "not from there", 403),
        request_id="req-2",
        decision_id="d-2",
        error="forbidden",
    )
    response = check_response(answer)
    assert response.status.code == code_pb2.PERMISSION_DENIED
    assert response.denied_response.status.code == 403
    assert json.loads(response.denied_response.body)["rule"] == "source-region-not-allowed"
