"""Size limits through the real Envoy with the shipped config: every body over the limit is
answered at once with a JSON 413 and its memory is freed (declared, chunked, slow, with
``expect: 100-continue``, many at a time); an answer over the limit is refused with a JSON 502,
never passed on cut short or unmasked; bodies under the limit keep working, masked."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from extproc.audit.read import read_events
from extproc.errors import Code, status_of
from extproc.server import MAX_MESSAGE_BYTES
from tests.e2e.harness import ANSWER_BYTES_HEADER, ANSWER_CARD, Gateway, Upload, upload

pytestmark = pytest.mark.e2e

SWEDEN = "89.160.20.112"
LIMIT = 8 * 1024 * 1024
OVERSIZE = 50 * 1024 * 1024
# "At once": the hang this guards against lasted until Envoy's 300 s stream idle timeout.
PROMPTLY = 10.0
SHIPPED = Path(__file__).resolve().parents[2] / "envoy"


def _headers(gateway: Gateway) -> dict[str, str]:
    return {"authorization": f"Bearer {gateway.token()}", "x-forwarded-for": SWEDEN}


def _assert_refused_as_too_large(result: Upload) -> None:
    assert result.status == 413, (result.status, round(result.seconds, 1), result.body[:200])
    assert result.seconds < PROMPTLY, result.seconds
    body = result.json()
    assert body["error"] == "body_too_large"
    assert status_of(Code(body["error"])) == 413
    assert body["rule"] == "gateway"
    assert body["reason"]
    assert body["request_id"]
    assert result.headers["content-type"] == "application/json"


def _assert_envoy_holds_nothing(gateway: Gateway, allocated_before: int) -> None:
    """No stream left open, no byte left buffered, the memory of the refused bodies freed."""

    def settled() -> dict[str, int] | None:
        stats = gateway.envoy_stats(
            r"^(http\.inference\.downstream_(rq_active|cx_rx_bytes_buffered)"
            r"|cluster\.model_eu\.upstream_rq_active|server\.memory_allocated)$"
        )
        idle = (
            stats["http.inference.downstream_rq_active"] == 0
            and stats["http.inference.downstream_cx_rx_bytes_buffered"] == 0
            and stats["cluster.model_eu.upstream_rq_active"] == 0
        )
        return stats if idle else None

    stats = gateway.wait_until(settled, timeout=10)
    assert stats, gateway.envoy_stats(r"downstream_rq_active|bytes_buffered")
    # Each refused body held up to the limit while it was read; all of it is given back.
    assert stats["server.memory_allocated"] < allocated_before + 2 * LIMIT, (
        stats["server.memory_allocated"] - allocated_before
    )


def _allocated(gateway: Gateway) -> int:
    return gateway.envoy_stats(r"^server\.memory_allocated$")["server.memory_allocated"]


# -- the shipped configs -------------------------------------------------------------------------
def _config(name: str) -> Any:
    return YAML(typ="safe").load((SHIPPED / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", ["envoy.yaml", "demo.yaml"])
def test_the_shipped_configs_enforce_one_limit_before_any_filter_that_waits(name: str) -> None:
    listener = _config(name)["static_resources"]["listeners"][0]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    filters = [f["name"] for f in hcm["http_filters"]]
    # The body is complete (or refused) before ext_authz or ext_proc waits for an answer.
    assert filters.index("envoy.filters.http.buffer") < filters.index(
        "envoy.filters.http.ext_authz"
    )
    assert filters.index("envoy.filters.http.ext_authz") < filters.index(
        "envoy.filters.http.ext_proc"
    )
    buffer = hcm["http_filters"][filters.index("envoy.filters.http.buffer")]["typed_config"]
    assert int(buffer["max_request_bytes"]) == listener["per_connection_buffer_limit_bytes"]
    assert int(buffer["max_request_bytes"]) == LIMIT
    # authz is sent the whole body it decides the model on, never a part of a body the buffer
    # filter let in.
    authz = hcm["http_filters"][filters.index("envoy.filters.http.ext_authz")]["typed_config"]
    assert int(authz["with_request_body"]["max_request_bytes"]) == LIMIT
    assert MAX_MESSAGE_BYTES >= 2 * LIMIT  # the whole body and its headers fit one Check
    # A declared content-length over the limit is refused by the first route, before any read.
    first = hcm["route_config"]["virtual_hosts"][0]["routes"][0]
    (declared,) = first["match"]["headers"]
    assert declared["name"] == "content-length"
    assert declared["range_match"]["start"] == LIMIT + 1
    assert first["direct_response"]["status"] == 413
    # A stalled or trickling upload is bounded too.
    assert hcm["request_timeout"]
    assert hcm["request_headers_timeout"]
    # Envoy's own answers use codes of extproc's table, with the status the table names.
    for mapper in hcm["local_reply_config"]["mappers"]:
        code = Code(mapper["body_format_override"]["json_format"]["error"])
        assert mapper["body_format_override"]["json_format"]["rule"] == "gateway"
        if "status_code" in mapper:
            assert mapper["status_code"] == status_of(code)


# -- requests ------------------------------------------------------------------------------------
def test_concurrent_oversize_uploads_all_get_a_json_413_at_once(gateway: Gateway) -> None:
    """18 uploads of 50 MB at once, which used to leave up to 16 of 18 without an answer: with a
    content-length, chunked, and with ``expect: 100-continue`` either way."""
    gateway.model.clear()
    headers = _headers(gateway)
    allocated = _allocated(gateway)
    kinds: list[dict[str, Any]] = [
        {"chunked": False},
        {"chunked": True},
        {"chunked": False, "expect_continue": True},
        {"chunked": True, "expect_continue": True},
    ]
    jobs = [kinds[i % len(kinds)] for i in range(18)]
    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(
            pool.map(
                lambda kind: upload(
                    gateway.listener_port, OVERSIZE, headers=headers, timeout=60, **kind
                ),
                jobs,
            )
        )
    for result in results:
        _assert_refused_as_too_large(result)
    assert gateway.model.requests() == []
    _assert_envoy_holds_nothing(gateway, allocated)


def test_a_slow_sender_is_answered_without_waiting_for_its_body(gateway: Gateway) -> None:
    gateway.model.clear()
    headers = _headers(gateway)
    jobs: list[dict[str, Any]] = [
        {"chunked": False, "rate": 256 * 1024},  # 50 MB at 256 KB/s would take 200 s
        {"chunked": False, "rate": 256 * 1024},
        {"chunked": True, "rate": 3 * 1024 * 1024},  # crosses the limit after ~3 s
        {"chunked": True, "rate": 3 * 1024 * 1024},
    ]
    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(
            pool.map(
                lambda kind: upload(
                    gateway.listener_port, OVERSIZE, headers=headers, timeout=60, **kind
                ),
                jobs,
            )
        )
    for kind, result in zip(jobs, results, strict=True):
        _assert_refused_as_too_large(result)
        if kind["chunked"]:
            assert LIMIT <= result.sent < OVERSIZE  # read up to the limit, then refused
        else:
            assert result.sent < 1024 * 1024  # refused from its headers
    assert gateway.model.requests() == []


def _prompt(size: int) -> bytes:
    filler = "lorem ipsum dolor sit amet " * (size // 27)
    content = f"card {ANSWER_CARD} {filler} card {ANSWER_CARD}"
    return json.dumps(
        {"model": "demo-echo", "messages": [{"role": "user", "content": content}]}
    ).encode()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_four_megabyte_prompt_still_passes_masked(gateway: Gateway, chunked: bool) -> None:
    gateway.model.clear()
    body = _prompt(4 * 1024 * 1024)
    result = upload(
        gateway.listener_port, body, headers=_headers(gateway), chunked=chunked, timeout=60
    )
    assert result.status == 200, result.body[:300]
    (seen,) = gateway.model.requests()
    assert len(seen.body) > 4_000_000
    assert ANSWER_CARD.encode() not in seen.body
    content = seen.json()["messages"][0]["content"]
    assert content.startswith("card [REDACTED:CARD] lorem ipsum")
    assert content.endswith("card [REDACTED:CARD]")
    answer = result.json()["choices"][0]["message"]["content"]
    assert answer == content


def test_a_body_just_under_the_limit_is_not_refused(gateway: Gateway) -> None:
    gateway.model.clear()
    result = upload(gateway.listener_port, LIMIT - 1024, headers=_headers(gateway), timeout=60)
    assert result.status == 200, result.body[:300]
    (seen,) = gateway.model.requests()
    assert len(seen.body) == LIMIT - 1024


# -- responses -----------------------------------------------------------------------------------
def test_an_oversize_answer_is_refused_with_a_json_502_never_cut_short(gateway: Gateway) -> None:
    token = gateway.token()
    allocated = _allocated(gateway)

    def ask(size: int) -> tuple[float, Any]:
        started = time.monotonic()
        reply = gateway.request(
            token=token, source=SWEDEN, headers={ANSWER_BYTES_HEADER: str(size)}
        )
        return time.monotonic() - started, reply

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(ask, [20 * 1024 * 1024] * 6))
    for seconds, reply in results:
        assert reply.status == 502, reply.body[:200]
        assert seconds < PROMPTLY
        body = reply.json()  # the whole body is the gateway's JSON: nothing of the answer
        assert set(body) == {"error", "reason", "rule", "request_id"}
        assert body["error"] == "response_too_large"
        assert status_of(Code(body["error"])) == 502
        assert ANSWER_CARD.encode() not in reply.body
    _assert_envoy_holds_nothing(gateway, allocated)
    # The trail says so: each exchange's event records that its answer never completed.
    ids = {reply.json()["request_id"] for _seconds, reply in results}

    def recorded() -> list[dict[str, Any]]:
        return [e for e in read_events([gateway.root / "audit"]) if e.get("request_id") in ids]

    events = gateway.wait_until(lambda: len(closing(recorded())) == len(ids) and recorded())
    for event in closing(events):
        assert (event["outcome"], event["error"]) == ("allowed", "exchange_incomplete")


def closing(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e.get("kind", "close") == "close" and e["service"] == "processor"]


def test_an_answer_under_the_limit_passes_whole_and_masked(gateway: Gateway) -> None:
    reply = gateway.request(
        token=gateway.token(), source=SWEDEN, headers={ANSWER_BYTES_HEADER: str(4 * 1024 * 1024)}
    )
    assert reply.status == 200, reply.body[:200]
    content = reply.json()["choices"][0]["message"]["content"]
    assert ANSWER_CARD not in content
    assert content.startswith("[REDACTED:CARD] xxx")
    assert content.endswith("xxx [REDACTED:CARD]")
    assert len(content) > 4_000_000
