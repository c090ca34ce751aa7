"""A rule on the requested model holds for the model the upstream will read, through the real
Envoy: however large the prompt, wherever the ``model`` key sits, whatever the content coding,
and even when authz and the upstream could read a body differently (the processor refuses a
model authz did not decide on)."""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest

from extproc.audit.read import read_events
from tests.e2e.conftest import e2e_config, geoip_database
from tests.e2e.harness import Gateway

pytestmark = pytest.mark.e2e

SWEDEN = "89.160.20.112"
DENY_FRONTIER = """\
    - name: no-frontier-models
      when: {model: ["frontier-*"]}
      effect: deny
      reason: frontier models are not cleared for this gateway
"""
PADDING = 300 * 1024  # past the 256 KiB that authz used to be sent


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("model-integrity")
    config = e2e_config(geoip_database(root))
    anchor = "  rules:\n"
    assert anchor in config
    config = config.replace(anchor, anchor + DENY_FRONTIER, 1)
    gateway = Gateway(root, config_text=config)
    try:
        gateway.start()
        yield gateway
    finally:
        gateway.stop()


def send(
    gateway: Gateway, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    sent = {
        "authorization": f"Bearer {gateway.token()}",
        "x-forwarded-for": SWEDEN,
        "content-type": "application/json",
        **(headers or {}),
    }
    connection = http.client.HTTPConnection("127.0.0.1", gateway.listener_port, timeout=30)
    try:
        connection.request("POST", "/eu/v1/chat/completions", body=body, headers=sent)
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = {"raw": raw[:200].decode("utf-8", "replace")}
    return response.status, answer if isinstance(answer, dict) else {"raw": answer}


def sdk_body(model: str, content_bytes: int = 16) -> bytes:
    """As the OpenAI SDK writes it: ``model`` after ``messages``. The content is random text, so
    that gzip shrinks it as little as a real prompt's (within the inflate ratio)."""
    noise = random.Random(content_bytes).randbytes(content_bytes)
    content = base64.b64encode(noise).decode()[:content_bytes]
    return json.dumps({"messages": [{"role": "user", "content": content}], "model": model}).encode()


def models_seen(gateway: Gateway) -> list[object]:
    """The ``model`` of every request the upstream served, as it decodes the body."""
    seen: list[object] = []
    for request in gateway.model.requests():
        body = request.body
        if request.headers.get("content-encoding", "") == "gzip":
            body = gzip.decompress(body)
        try:
            seen.append(json.loads(body).get("model"))
        except ValueError:
            seen.append(None)
    return seen


def test_a_small_body_naming_a_denied_model_is_denied(gateway: Gateway) -> None:
    gateway.model.clear()
    status, answer = send(gateway, sdk_body("frontier-x"))
    assert status == 403, answer
    assert answer["rule"] == "no-frontier-models"
    assert gateway.model.requests() == []


def test_a_padded_prompt_naming_a_denied_model_last_is_denied(gateway: Gateway) -> None:
    gateway.model.clear()
    status, answer = send(gateway, sdk_body("frontier-x", PADDING))
    assert status == 403, answer
    assert answer["rule"] == "no-frontier-models"
    assert "frontier-x" not in models_seen(gateway)


def test_a_gzipped_body_naming_a_denied_model_is_denied(gateway: Gateway) -> None:
    gateway.model.clear()
    for size in (16, PADDING):
        body = gzip.compress(sdk_body("frontier-x", size))
        status, answer = send(gateway, body, {"content-encoding": "gzip"})
        assert status == 403, (size, answer)
        assert answer["rule"] == "no-frontier-models"
    assert "frontier-x" not in models_seen(gateway)


def test_a_body_only_a_lenient_parser_reads_is_judged_by_its_model(gateway: Gateway) -> None:
    """A byte order mark: orjson refuses it, Python's json (and so many model servers) reads
    it. Either authz reads the model as the upstream will, or the processor refuses it."""
    gateway.model.clear()
    status, answer = send(gateway, b"\xef\xbb\xbf" + sdk_body("frontier-x"))
    assert status == 403, answer
    assert answer["error"] in ("forbidden", "model_not_authorized")
    assert "frontier-x" not in models_seen(gateway)


def test_a_model_authz_did_not_decide_on_is_refused_by_the_processor(gateway: Gateway) -> None:
    """Two ``model`` keys: authz decides on the last (as orjson and most parsers read it); an
    upstream that keeps the first would serve the denied model. The processor refuses."""
    gateway.model.clear()
    events_before = len(list(read_events([gateway.root / "audit"])))
    body = (
        b'{"model": "frontier-x", "messages": [{"role": "user", "content": "hi"}], '
        b'"model": "demo-echo"}'
    )
    status, answer = send(gateway, body)
    assert status == 403, answer
    assert answer["error"] == "model_not_authorized"
    assert "demo-echo" in answer["reason"]
    assert gateway.model.requests() == []
    events = gateway.wait_until(
        lambda: [
            e
            for e in list(read_events([gateway.root / "audit"]))[events_before:]
            if e.get("error") == "model_not_authorized"
        ],
        timeout=10,
    )
    assert events, "the refusal was not audited"
    assert events[0]["outcome"] == "denied"


@pytest.mark.parametrize("size", [16, PADDING, 2 * 1024 * 1024, 7 * 1024 * 1024])
def test_ordinary_and_large_prompts_still_pass(gateway: Gateway, size: int) -> None:
    gateway.model.clear()
    status, answer = send(gateway, sdk_body("demo-echo", size))
    assert status == 200, answer
    assert models_seen(gateway) == ["demo-echo"], (status, answer)
    # Masking megabytes keeps a worker's loop busy past a health check or two: let the worker
    # come back before the next test counts on it.
    for index in range(gateway.workers):
        assert gateway.wait_until(
            lambda i=index: gateway.upstream_host("processor", i).get("health_flags") == "healthy"
        )


def test_a_gzipped_prompt_for_an_allowed_model_passes(gateway: Gateway) -> None:
    gateway.model.clear()
    body = gzip.compress(sdk_body("demo-echo", PADDING))
    status, answer = send(gateway, body, {"content-encoding": "gzip"})
    # The demo model itself reads no gzip (400): what counts is that the request reached it.
    assert status not in (403, 413), answer
    assert models_seen(gateway) == ["demo-echo"], (status, answer)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        # a server matching names without regard to case (Go's encoding/json) reads "Model"
        (b'{"messages": [], "model": "demo-echo", "Model": "frontier-x"}', "application/json"),
        (b'{"messages": [], "Model": "frontier-x"}', "application/json"),
        # a form (an audio transcription, say) names it in a field
        (b"model=frontier-x&language=en", "application/x-www-form-urlencoded"),
    ],
)
def test_a_model_only_some_parsers_read_is_refused_before_the_upstream(
    gateway: Gateway, body: bytes, content_type: str
) -> None:
    gateway.model.clear()
    status, answer = send(gateway, body, {"content-type": content_type})
    assert status == 403, answer
    assert answer["error"] in ("forbidden", "model_not_authorized")
    assert gateway.model.requests() == []
