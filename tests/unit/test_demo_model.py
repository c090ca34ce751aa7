"""The demo model serves only what carries the key the gateway injects, when it has one."""

from __future__ import annotations

import http.client
import json

from extproc.demo.upstream import DemoModel

BODY = json.dumps({"model": "demo-echo", "messages": [{"role": "user", "content": "hi"}]})


def post(model: DemoModel, headers: dict[str, str]) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", model.port, timeout=10)
    try:
        connection.request(
            "POST",
            "/v1/chat/completions",
            body=BODY,
            headers={"content-type": "application/json", **headers},
        )
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_a_request_without_the_gateways_key_is_refused_and_never_seen() -> None:
    model = DemoModel(required_key="gateway-only-key")
    model.start()
    try:
        assert post(model, {}) == 401
        assert post(model, {"authorization": "Bearer callers-own-key"}) == 401
        assert model.requests() == []
        assert model.refused == 2
        assert post(model, {"authorization": "Bearer gateway-only-key"}) == 200
        assert len(model.requests()) == 1
    finally:
        model.stop()
