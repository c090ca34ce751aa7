"""In-process cost of one Check without gRPC: parse the CheckRequest, decide (JWT cache hit,
GeoIP, policy), build and serialize the CheckResponse.

    python bench/authz_micro.py
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import tempfile
import timeit
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from envoy.service.auth.v3 import external_auth_pb2  # noqa: E402

from extproc.app import build_authz  # noqa: E402
from extproc.authz.mapping import check_response, request_view  # noqa: E402
from extproc.authz.wire import check_response_bytes  # noqa: E402
from extproc.demo.issuer import DevIssuer  # noqa: E402
from extproc.geo.writer import write_demo_database  # noqa: E402
from extproc.settings import load_config  # noqa: E402
from tests.unit.test_authz_service import CONFIG, check  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))
from workload import chat_request  # noqa: E402


def with_body(request: external_auth_pb2.CheckRequest, body: bytes, **headers: str) -> bytes:
    """The request with a body as Envoy forwards it (``pack_as_bytes``), serialized."""
    copy = external_auth_pb2.CheckRequest()
    copy.CopyFrom(request)
    http = copy.attributes.request.http
    http.raw_body = body
    http.headers.update({"content-type": "application/json", **headers})
    return copy.SerializeToString()


def model_last(size: int) -> bytes:
    """A large prompt as the OpenAI SDK writes it: ``messages`` first, ``model`` last."""
    messages = json.loads(chat_request(size))["messages"]
    return json.dumps({"messages": messages, "model": "demo-echo"}).encode()


def main() -> None:
    os.environ["TEST_MODEL_KEY"] = "bench"
    root = Path(tempfile.mkdtemp())
    issuer = DevIssuer(root / "issuer")
    issuer.start()
    (root / "jwks.json").write_text(json.dumps({"keys": issuer.published}))
    write_demo_database(root / "demo.mmdb")
    (root / "config.yaml").write_text(CONFIG.format(issuer=issuer.issuer_url))
    runtime = build_authz(load_config(root / "config.yaml")).authorizer
    wire = check(issuer.mint("alice", audience="api"), "192.0.2.10").SerializeToString()
    request = external_auth_pb2.CheckRequest.FromString(wire)
    answer = runtime.decide(request_view(request))

    def full(wire: bytes = wire) -> bytes:
        parsed = external_auth_pb2.CheckRequest.FromString(wire)
        return check_response_bytes(runtime.decide(request_view(parsed)))

    small = with_body(request, chat_request())
    zipped = with_body(request, gzip.compress(chat_request()), **{"content-encoding": "gzip"})
    large = with_body(request, model_last(1 << 20))

    cases = {
        "parse CheckRequest": lambda: external_auth_pb2.CheckRequest.FromString(wire),
        "decide (cached JWT, GeoIP, policy)": lambda: runtime.decide(request_view(request)),
        "build + serialize CheckResponse (protobuf objects)": lambda: check_response(
            answer
        ).SerializeToString(),
        "write CheckResponse bytes (what Check sends)": lambda: check_response_bytes(answer),
        "whole Check without gRPC": full,
        "whole Check, 8 KB JSON body": lambda: full(small),
        "whole Check, 8 KB JSON body, gzip": lambda: full(zipped),
        "whole Check, 1 MiB JSON body, model last": lambda: full(large),
    }
    for name, case in cases.items():
        number = 100 if "MiB" in name else 10_000
        best = min(timeit.repeat(case, number=number, repeat=3)) / number
        print(f"| {name} | {best * 1e6:.1f} |")
    issuer.stop()


if __name__ == "__main__":
    main()
