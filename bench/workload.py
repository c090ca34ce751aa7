"""What the benchmark sends and serves: the extproc config (identity, GeoIP, a 20-rule policy,
masking, audit), the request and response bodies, the SSE events of the streaming upstream and
the bodies of the in-process masking cases. Every body is made here, deterministically."""

from __future__ import annotations

import json

from masking_bench import records_body

GROUP = "ml-eu"
AUDIENCE = "extproc-demo"
CLIENT_ADDRESS = "192.0.2.10"  # DE in the demo GeoIP database: region eu
TARGET_REGION = "eu"
PATH = "/eu/v1/chat/completions"
SSE_EVENTS = 200
SSE_TEXT = (
    "Sure, here is the summary of the account. The customer wrote from jane.doe@example.com "
    "about the card 4111 1111 1111 1111 and the order that shipped late."
)

# The shape the product ships semantics for (bench/authz_bench.py's CONFIG and
# bench/processor_bench.py's MASKING), with a realistic policy: 19 rules that do not match the
# benchmark's caller before the one that allows it, so every Check walks all 20.
CONFIG = """
version: 1
identity:
  issuers:
    - name: bench
      issuer: "{issuer_url}"
      discovery: true
      audiences: [{audience}]
      algorithms: [RS256]
geo:
  database: "{database}"
  regions: {{eu: [AT, BE, DE, ES, FR, IE, IT, NL, PL, SE], us: [US], apac: [AU, JP, KR, SG]}}
policy:
  group_regions: {{ml-eu: [eu], ml-us: [us], ml-apac: [apac]}}
  rules:
{rules}
upstreams:
  credentials:
    model: {{env: BENCH_MODEL_KEY}}
masking:
  key_env: BENCH_MASKING_KEY
  default_profile: standard
  profiles:
    standard: {{actions: {{default: redact, email: tokenize}}}}
audit:
  directory: "{audit}"
  key_env: BENCH_AUDIT_KEY
  durability: {durability}
"""

# (name, when, effect): none of them holds for subject "bench", groups [ml-eu], a POST from DE
# to /eu/v1/chat/completions, model demo-echo, data class personal.
NON_MATCHING_RULES: tuple[tuple[str, str, str], ...] = (
    ("unknown-source", "{source_region: unknown}", "deny"),
    ("sanctioned-sources", "{source_country: [BY, CU, IR, KP, RU, SY]}", "deny"),
    ("retired-service-accounts", '{subject: ["svc-legacy-*", "contractor-2023-*"]}', "deny"),
    ("declared-region-mismatch", "{declared_region_matches_source: false}", "deny"),
    ("admin-needs-approval", '{path: ["/admin/*", "/*/admin/*"]}', "require_approval"),
    ("fine-tuning-needs-approval", '{path: "/*/v1/fine_tuning/*"}', "require_approval"),
    ("read-and-infer-only", "{method: [DELETE, PUT, PATCH]}", "deny"),
    ("partner-hosts", '{host: ["partner.*", "*.partner.example"]}', "deny"),
    ("outdated-clients", '{headers: {user-agent: ["python-requests/1.*", "curl/7.1*"]}}', "deny"),
    ("staging-routes", "{route: {environment: staging}}", "deny"),
    ("us-team-to-us", "{groups_any: [ml-us], source_region: us, target_region: us}", "allow"),
    (
        "apac-team-to-apac",
        "{groups_any: [ml-apac], source_region: apac, target_region: apac}",
        "allow",
    ),
    ("research-frontier-models", '{groups_any: [research], model: ["frontier-*"]}', "allow"),
    ("frontier-models-restricted", '{model: ["frontier-*", "o-preview-*"]}', "deny"),
    ("health-data-clearance", "{data_class: [health, phi], not: {groups_any: [clinical]}}", "deny"),
    ("finance-data-clearance", "{data_class: finance, not: {groups_any: [finance]}}", "deny"),
    ("interns-no-personal-data", "{groups_any: [interns], data_class: personal}", "deny"),
    ("batch-api-for-services", '{subject: "svc-*", path: "/*/v1/batches*"}', "allow"),
    ("embeddings-for-staff", '{groups_any: [staff], path: "/*/v1/embeddings"}', "allow"),
)
ALLOWING_RULE = (
    "eu-team-to-eu",
    "{groups_any: [ml-eu], source_region: eu, target_region: eu}",
    "allow",
)


def policy_rules() -> str:
    rules = [*NON_MATCHING_RULES, ALLOWING_RULE]
    assert len(rules) == 20
    approval = ", approval: {approver_groups: [security], any_of: 1}"
    return "\n".join(
        f"    - {{name: {name}, when: {when}, effect: {effect}"
        f"{approval if effect == 'require_approval' else ''}}}"
        for name, when, effect in rules
    )


def extproc_config(
    issuer_url: str, database: str, audit: str, durability: str = "before_forward"
) -> str:
    return CONFIG.format(
        durability=durability,
        issuer_url=issuer_url,
        audience=AUDIENCE,
        database=database,
        audit=audit,
        rules=policy_rules(),
    )


# -- exchanged bodies -----------------------------------------------------------------------------
def chat_request(size: int = 8 * 1024, *, stream: bool = False) -> bytes:
    """An OpenAI-style chat request of about ``size`` bytes: a conversation whose turns carry a
    few e-mails, a card number and a phone number among ordinary prose."""
    turns = [
        "Please draft a reply to the customer about the delayed order and keep it friendly.",
        "The customer is jane.doe@example.com and paid with card 4111 1111 1111 1111.",
        "Summarize the support history for the account in three bullet points.",
        "Their phone is +1 415 555 0100; the ticket mentions order 20241115 and release 2.4.1.",
    ]
    messages: list[dict[str, str]] = [
        {"role": "system", "content": "You are a careful assistant for the support team."}
    ]
    i = 0
    while len(json.dumps({"model": "demo-echo", "messages": messages})) < size - 200:
        role = "user" if i % 2 == 0 else "assistant"
        messages.append({"role": role, "content": f"{turns[i % len(turns)]} (turn {i})"})
        i += 1
    body: dict[str, object] = {"model": "demo-echo", "messages": messages}
    if stream:
        body["stream"] = True
    return json.dumps(body).encode()


def json_response(size: int = 8 * 1024) -> bytes:
    """The upstream's 8 KB JSON answer: customer records (e-mails, every third with a card)."""
    return records_body(size)


def sse_events(count: int = SSE_EVENTS) -> list[bytes]:
    """``count`` chat.completion.chunk events (the last one ``[DONE]``), a few words each, with
    an e-mail and a card number among them, the card split across two events."""
    words = SSE_TEXT.split()
    events = []
    for i in range(count - 1):
        delta = " ".join(words[(i * 3) % len(words) : (i * 3) % len(words) + 3]) + " "
        chunk = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1732893412,
            "model": "demo-echo",
            "choices": [{"index": 0, "delta": {"content": delta}, "finish_reason": None}],
        }
        events.append(b"data: " + json.dumps(chunk).encode() + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


# -- in-process masking cases ---------------------------------------------------------------------
def numbers_json(size: int = 8 * 1024) -> bytes:
    """JSON dense with numbers that are not personal data: metrics, ids, amounts, timestamps,
    versions, trace ids, as numbers and as numeric strings."""
    rows = []
    i = 0
    while len(json.dumps(rows)) < size:
        rows.append(
            {
                "ts": 1732893412 + i,
                "latency_ms": round(12.5 + i * 0.37, 2),
                "tokens": [i, i * 7 % 97, 4096, 128 + i],
                "order": f"ORD-2024{i % 12 + 1:02d}15-{i:06d}",
                "amount": f"{1234.56 + i:.2f}",
                "version": f"1.{i % 9}.{i % 31}",
                "trace": f"{i * 2654435761 % 2**64:016x}",
                "date": f"2024-{i % 12 + 1:02d}-{i % 28 + 1:02d}T10:{i % 60:02d}:00Z",
            }
        )
        i += 1
    return json.dumps(rows).encode()


def plain_text(size: int = 8 * 1024) -> bytes:
    """Prose without personal data (a few years and counts, no e-mails, cards or phones)."""
    sentence = (
        "The quarterly review covered the roadmap, the hiring plan and the budget for 2025; "
        "the team shipped 3 releases and closed most of the open questions from the last meeting. "
    )
    return (sentence * (size // len(sentence) + 1))[:size].encode()
