"""Faults through the real Envoy with the shipped config, under paced load: a worker of either
service killed with SIGKILL, the issuer's JWKS endpoint down and back, the config and the GeoIP
database replaced while serving (by better files and by broken ones), and Envoy restarted.

Each test checks what the client saw, what the model saw (nothing unmasked, nothing that authz
could not clear) and what the audit trail holds (one event for every answered exchange, and a
trail that verifies)."""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import signal
import string
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from extproc.audit.read import read_events
from extproc.audit.verify import verify
from extproc.demo.upstream import RecordedRequest
from extproc.errors import Code, status_of
from extproc.geo.writer import CountryRecord, write_country_database
from tests.e2e.conftest import TEST_NETWORKS, e2e_config
from tests.e2e.harness import AUDIENCE, KEYS, Gateway, replace_file

pytestmark = pytest.mark.e2e

SWEDEN = "89.160.20.112"
AUDIT_KEY = KEYS["EXTPROC_E2E_AUDIT_KEY"].encode()
SENSITIVE = "card 4111 1111 1111 1111, mail jane.doe@example.com, ssn 123-45-6789"
RAW_VALUES = ("4111 1111 1111 1111", "jane.doe@example.com", "123-45-6789")
CLIENTS = 8  # concurrent clients of the paced load: at most this many requests are in flight
RATE = 20.0  # requests a second
MARKER = re.compile(rb"req-[a-z]{8}-[a-z]+")


def _networks(overrides: dict[str, str] | None = None) -> dict[str, CountryRecord | str]:
    networks: dict[str, CountryRecord | str] = {
        cidr: CountryRecord(country, registered)
        for cidr, (country, registered) in TEST_NETWORKS.items()
    }
    for cidr, country in (overrides or {}).items():
        networks[cidr] = CountryRecord(country, country)
    return networks


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("faults")
    # A database of this module's own: the tests replace it.
    database = write_country_database(root / "geoip" / "country.mmdb", _networks())
    gateway = Gateway(root, config_text=e2e_config(database))
    try:
        gateway.start()
        yield gateway
    finally:
        gateway.stop()


# -- load and what it must leave behind ----------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    marker: str
    status: int | None  # None: no HTTP answer at all (connection refused or cut)
    body: bytes
    ended: float  # time.monotonic() when the client had its answer (or gave up)


def _letters(number: int) -> str:
    return "".join(string.ascii_lowercase[int(digit)] for digit in str(number))


def paced_load(
    gateway: Gateway,
    count: int,
    *,
    fault_at: int | None = None,
    fault: Callable[[], None] | None = None,
) -> list[Outcome]:
    """``count`` chat requests with sensitive values, ``RATE`` a second from ``CLIENTS``
    clients; ``fault`` runs just before request ``fault_at`` is sent. Every prompt carries a
    marker (letters only, so no detector touches it) to find it again at the model."""
    token = gateway.token()
    run = "".join(secrets.choice(string.ascii_lowercase) for _ in range(8))
    start = time.monotonic() + 0.1

    def one(index: int) -> Outcome:
        delay = start + index / RATE - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if index == fault_at and fault is not None:
            fault()
        marker = f"req-{run}-{_letters(index)}"
        body = {
            "model": "demo-echo",
            "messages": [{"role": "user", "content": f"{marker} {SENSITIVE}"}],
        }
        try:
            reply = gateway.request(token=token, source=SWEDEN, body=body)
        except (OSError, http.client.HTTPException):
            return Outcome(marker, None, b"", time.monotonic())
        return Outcome(marker, reply.status, reply.body, time.monotonic())

    with ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(one, range(count)))


def _forwarded(gateway: Gateway) -> dict[str, list[RecordedRequest]]:
    """What the model received, by marker; and nothing it received holds a raw value."""
    by_marker: dict[str, list[RecordedRequest]] = {}
    for request in gateway.model.requests():
        for raw in RAW_VALUES:
            assert raw.encode() not in request.body, "an unmasked value reached the model"
        found = MARKER.search(request.body)
        if found:
            by_marker.setdefault(found.group().decode(), []).append(request)
    return by_marker


# A processor worker killed with SIGKILL takes with it the audit events it had not written yet:
# the closing record is produced when the exchange ends, after the last answer went back to
# Envoy, and written in batches (every 10 ms here). So an exchange that ended within moments of
# the kill may lack its closing record even though its client got a 200; its opening record,
# made durable before the request could reach the model (write-ahead audit), is never missing.
# Only exchanges that ended this close to the kill are excused a close; none recorded twice.
IN_FLIGHT = 0.25  # seconds either side of the kill


def assert_nothing_unmasked_unaudited_or_untrailed(
    gateway: Gateway,
    outcomes: list[Outcome],
    *,
    failures: set[int | None],
    processor_died_at: float | None = None,
) -> None:
    forwarded = _forwarded(gateway)
    answered = [outcome for outcome in outcomes if outcome.status == 200]
    for outcome in outcomes:
        assert outcome.status == 200 or outcome.status in failures, (outcome.status, outcome.body)
        if outcome.status is not None and outcome.status != 200:
            body = json.loads(outcome.body)
            assert status_of(Code(body["error"])) == outcome.status
        if outcome.status == 503:
            # authz could not decide: the request went nowhere.
            assert outcome.marker not in forwarded
    request_ids: dict[str, str] = {}
    excused: set[str] = set()
    for outcome in answered:
        # What the client got is the masked prompt, echoed: never a raw value.
        for raw in RAW_VALUES:
            assert raw.encode() not in outcome.body
        content = json.loads(outcome.body)["choices"][0]["message"]["content"]
        assert content.startswith(f"{outcome.marker} card [REDACTED:CARD], mail <EMAIL:")
        (seen,) = forwarded[outcome.marker]  # the model saw it exactly once
        request_ids[outcome.marker] = seen.headers["x-request-id"]
        if processor_died_at is not None and abs(outcome.ended - processor_died_at) < IN_FLIGHT:
            excused.add(seen.headers["x-request-id"])
    required = set(request_ids.values()) - excused

    def processor_events() -> Counter[object] | None:
        counts = Counter(
            event.get("request_id")
            for event in read_events([gateway.root / "audit"])
            if event.get("service") == "processor"
        )
        return counts if all(counts[rid] for rid in required) else None

    counts = gateway.wait_until(processor_events, timeout=10)
    assert counts, "an answered exchange has no audit event"
    assert {counts[rid] for rid in required} <= {1}
    assert {counts[rid] for rid in excused} <= {0, 1}
    assert len(excused) < len(required)  # the excuse covers a moment, not the run
    # Write-ahead: whatever reached the model, answered or cut off by the kill, was opened.
    opened = {
        event.get("request_id")
        for event in read_events([gateway.root / "audit"], opens=True)
        if event.get("service") == "processor"
    }
    reached = {
        seen.headers["x-request-id"] for seen_list in forwarded.values() for seen in seen_list
    }
    assert reached <= opened, sorted(reached - opened)
    time.sleep(0.2)  # the writers flush every 10 ms
    report = verify([gateway.root / "audit"], AUDIT_KEY)
    assert report.ok, [chain.problem for chain in report.chains if chain.problem]


def wait_back_in_rotation(gateway: Gateway, service: str, index: int) -> None:
    """Envoy sends traffic to the worker again once it is healthy."""
    token = gateway.token()
    before = int(gateway.upstream_host(service, index).get("rq_total", "0"))

    def served() -> bool:
        gateway.request(token=token, source=SWEDEN)
        host = gateway.upstream_host(service, index)
        return host.get("health_flags") == "healthy" and int(host["rq_total"]) > before

    assert gateway.wait_until(served, timeout=20), gateway.upstream_host(service, index)


def assert_denied(gateway: Gateway, rule: str) -> None:
    reply = gateway.request(token=gateway.token(), source=SWEDEN)
    assert reply.status == 403, reply.body
    assert reply.json()["rule"] == rule


def _denied_by(gateway: Gateway, rule: str, times: int) -> bool:
    """``times`` answers in a row denied by ``rule`` (so every worker has it)."""
    for _ in range(times):
        reply = gateway.request(token=gateway.token(), source=SWEDEN)
        if reply.status != 403 or reply.json()["rule"] != rule:
            return False
    return True


def _allowed(gateway: Gateway, times: int) -> bool:
    return all(
        gateway.request(token=gateway.token(), source=SWEDEN).status == 200 for _ in range(times)
    )


# -- a worker dies ------------------------------------------------------------------------------
@pytest.mark.parametrize("service", ["processor", "authz"])
def test_kill_9_of_a_worker_under_load_fails_at_most_the_requests_in_flight(
    gateway: Gateway, service: str
) -> None:
    gateway.model.clear()
    killed: list[int] = []
    died: list[float] = []

    def kill() -> None:
        killed.append(gateway.kill_worker(service, 0))
        died.append(time.monotonic())

    outcomes = paced_load(gateway, 60, fault_at=10, fault=kill)
    failed = [outcome.status for outcome in outcomes if outcome.status != 200]
    # Only requests in flight at the kill may fail (Envoy ejects the worker on the first failed
    # connection and retries what the dead worker never answered): at most one per client.
    assert len(failed) <= CLIENTS, failed
    assert_nothing_unmasked_unaudited_or_untrailed(
        gateway,
        outcomes,
        failures={500} if service == "processor" else {503},
        processor_died_at=died[0] if service == "processor" else None,
    )
    # The supervisor starts a new worker, and Envoy sends it traffic once it is healthy.
    gateway.wait_worker_serving(service, 0, not_pid=killed[0], timeout=20)
    wait_back_in_rotation(gateway, service, 0)


def test_a_hung_processor_worker_fails_closed_and_is_taken_out_of_rotation(
    gateway: Gateway,
) -> None:
    """SIGSTOP: the worker keeps its connections but answers nothing (a deadlock, a long
    pause). Exchanges caught on it end with the gateway's 500 once message_timeout passes;
    health checks take it out meanwhile; it serves again once it resumes."""
    gateway.model.clear()
    pid = gateway.worker_pid("processor", 1)
    assert pid is not None
    try:
        outcomes = paced_load(gateway, 60, fault_at=10, fault=lambda: os.kill(pid, signal.SIGSTOP))
        assert "failed_active_hc" in gateway.upstream_host("processor", 1)["health_flags"]
    finally:
        os.kill(pid, signal.SIGCONT)
    failed = [outcome.status for outcome in outcomes if outcome.status != 200]
    assert len(failed) <= CLIENTS, failed  # at most the requests it held when it stopped
    assert_nothing_unmasked_unaudited_or_untrailed(gateway, outcomes, failures={500})
    wait_back_in_rotation(gateway, "processor", 1)


# -- the issuer's keys --------------------------------------------------------------------------
def test_jwks_down_cached_keys_serve_a_new_key_is_refused_until_it_is_back(
    gateway: Gateway,
) -> None:
    issuer = gateway.issuer
    assert issuer.key is not None
    current = issuer.key
    rotated = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert gateway.request(token=gateway.token(sub="before"), source=SWEDEN).status == 200
    issuer.stop()
    denied: list[str] = []
    try:
        # Tokens signed with a cached key keep working (fresh tokens: no verification cache).
        for i in range(6):
            reply = gateway.request(token=gateway.token(sub=f"cached-{i}"), source=SWEDEN)
            assert reply.status == 200, reply.body
        # The issuer rotates while its endpoint is down: a token with the new kid is refused.
        issuer.publish([current, rotated])
        fresh = issuer.mint("alice", groups=("ml-eu",), audience=AUDIENCE, key=rotated)
        for _ in range(4):
            reply = gateway.request(token=fresh, source=SWEDEN)
            assert reply.status == 401, reply.body
            body = reply.json()
            assert body["error"] == "unknown_key"
            denied.append(body["request_id"])
            time.sleep(0.3)  # refreshes are rate limited (0.5 s here): let some be tried
    finally:
        issuer.start()
        issuer.publish([current, rotated])
    # Back: the unknown kid makes each worker fetch the JWKS again.
    assert gateway.wait_until(lambda: _allowed_with(gateway, fresh, 4), timeout=15)

    def denials() -> Counter[object]:
        return Counter(
            event.get("request_id")
            for event in read_events([gateway.root / "audit"])
            if event.get("service") == "authz" and event.get("error") == "unknown_key"
        )

    # authz recorded each refusal once.
    assert gateway.wait_until(lambda: all(denials()[rid] for rid in denied), timeout=5)
    assert {denials()[rid] for rid in denied} == {1}


def test_an_authz_worker_restarted_while_the_jwks_is_down_verifies_with_its_siblings_keys(
    gateway: Gateway,
) -> None:
    """A worker that starts during an issuer outage cannot fetch the keys; it takes the last
    ones its siblings fetched instead of refusing every token they accept."""
    assert gateway.request(token=gateway.token(sub="before-outage"), source=SWEDEN).status == 200
    gateway.issuer.stop()
    try:
        pid = gateway.kill_worker("authz", 1)
        gateway.wait_worker_serving("authz", 1, not_pid=pid, timeout=20)
        wait_back_in_rotation(gateway, "authz", 1)
        served = int(gateway.upstream_host("authz", 1)["rq_total"])
        # Fresh subjects: nothing comes from a worker's verified-token cache.
        for i in range(8):
            reply = gateway.request(token=gateway.token(sub=f"outage-{i}"), source=SWEDEN)
            assert reply.status == 200, reply.body
        assert int(gateway.upstream_host("authz", 1)["rq_total"]) > served
        assert "issuer keys taken from another worker's last fetch" in gateway.authz_log()
    finally:
        gateway.issuer.start()


def test_an_issuer_that_withdraws_every_key_is_believed_also_by_a_restarted_worker(
    gateway: Gateway,
) -> None:
    """A JWKS fetched with no usable signing key is the issuer's word, not an outage: tokens
    its old keys signed are refused, and a worker restarted afterwards, while the issuer is
    unreachable, does not take the withdrawn keys back from its siblings' last fetch."""
    issuer = gateway.issuer
    assert issuer.key is not None
    current = issuer.key
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    unknown = issuer.mint("alice", groups=("ml-eu",), audience=AUDIENCE, key=other)
    assert (
        gateway.request(token=gateway.token(sub="before-withdrawal"), source=SWEDEN).status == 200
    )
    issuer.publish([])
    try:

        def withdrawn() -> bool:
            gateway.request(token=unknown, source=SWEDEN)  # an unknown kid: each worker asks
            return _refused_with(gateway, gateway.token(sub="after-withdrawal"), 4)

        assert gateway.wait_until(withdrawn, timeout=15)
        assert "issuer keys withdrawn" in gateway.authz_log()
        shared = "issuer keys taken from another worker's last fetch"
        taken = gateway.authz_log().count(shared)
        issuer.stop()
        pid = gateway.kill_worker("authz", 1)
        gateway.wait_worker_serving("authz", 1, not_pid=pid, timeout=20)
        wait_back_in_rotation(gateway, "authz", 1)
        assert _refused_with(gateway, gateway.token(sub="after-restart"), 8)
        assert gateway.authz_log().count(shared) == taken
    finally:
        issuer.start()
        issuer.publish([current])
    assert gateway.wait_until(
        lambda: _allowed_with(gateway, gateway.token(sub="republished"), 4), timeout=15
    )


def _refused_with(gateway: Gateway, token: str, times: int) -> bool:
    for _ in range(times):
        reply = gateway.request(token=token, source=SWEDEN)
        if reply.status != 401 or reply.json().get("error") != "keys_unavailable":
            return False
    return True


def _allowed_with(gateway: Gateway, token: str, times: int) -> bool:
    return all(gateway.request(token=token, source=SWEDEN).status == 200 for _ in range(times))


# -- files replaced while serving ---------------------------------------------------------------
MAINTENANCE = """  rules:
    - name: eu-maintenance
      when: {target_region: eu}
      effect: deny
      reason: eu models are in maintenance
"""


def _reload_failures(gateway: Gateway) -> int:
    return sum(
        (gateway.root / f"{service}.log")
        .read_text(encoding="utf-8", errors="replace")
        .count("config reload failed; the last good config keeps serving")
        for service in ("authz", "processor")
    )


def test_config_replaced_by_a_better_one_then_by_garbage_while_a_worker_dies(
    gateway: Gateway,
) -> None:
    good = gateway.config_path.read_bytes()
    better = good.replace(b"  rules:\n", MAINTENANCE.encode(), 1)
    assert better != good
    try:
        replace_file(gateway.config_path, better)
        # Every worker of both services decides by the new config within seconds.
        assert gateway.wait_until(lambda: _denied_by(gateway, "eu-maintenance", 6), timeout=10)

        failures = _reload_failures(gateway)
        replace_file(gateway.config_path, b"version: 1\npolicy: [unclosed\n")
        # Each worker of each service tries it, refuses it and says why.
        assert gateway.wait_until(
            lambda: _reload_failures(gateway) >= failures + 2 * gateway.workers, timeout=10
        )
        assert _denied_by(gateway, "eu-maintenance", 6)  # the last good config still decides
        # A worker that dies now comes back with the last good config, not the file on disk.
        pid = gateway.kill_worker("authz", 1)
        gateway.wait_worker_serving("authz", 1, not_pid=pid, timeout=20)
        wait_back_in_rotation(gateway, "authz", 1)
        assert _denied_by(gateway, "eu-maintenance", 6)
        assert "the worker restarts with the last good one" in gateway.authz_log()
    finally:
        replace_file(gateway.config_path, good)
    assert gateway.wait_until(lambda: _allowed(gateway, 6), timeout=10)


def test_geoip_database_replaced_by_a_corrupt_file_then_by_a_new_one(gateway: Gateway) -> None:
    database = gateway.root / "geoip" / "country.mmdb"
    good = database.read_bytes()
    moved = gateway.root / "geoip" / "moved.mmdb"
    # The Swedish test network now belongs to the US.
    write_country_database(moved, _networks({"89.160.20.112/28": "US"}))
    try:
        failures = _reload_failures(gateway)
        replace_file(database, good[: len(good) // 2])  # cut short: not a database
        assert gateway.wait_until(
            lambda: _reload_failures(gateway) > failures + gateway.workers - 1, timeout=10
        )
        assert _allowed(gateway, 6)  # the database that was open keeps answering: SE, eu

        replace_file(database, moved.read_bytes())
        assert gateway.wait_until(
            lambda: _denied_by(gateway, "source-region-not-allowed", 6), timeout=10
        )
        reply = gateway.request(token=gateway.token(), source=SWEDEN)
        request_id = reply.json()["request_id"]
        event = gateway.wait_until(
            lambda: next(
                (
                    e
                    for e in read_events([gateway.root / "audit"])
                    if e.get("request_id") == request_id
                ),
                None,
            ),
            timeout=5,
        )
        assert event is not None
        assert (event["source_country"], event["source_region"]) == ("US", "us")
    finally:
        replace_file(database, good)
    assert gateway.wait_until(lambda: _allowed(gateway, 6), timeout=10)


# -- Envoy itself -------------------------------------------------------------------------------
def test_envoy_restarted_while_the_services_run_loses_nothing(gateway: Gateway) -> None:
    gateway.model.clear()
    workers = {
        (service, i): gateway.worker_pid(service, i)
        for service in ("authz", "processor")
        for i in range(gateway.workers)
    }
    outcomes = paced_load(
        gateway, 80, fault_at=20, fault=lambda: gateway.restart_envoy(down_for=1.0)
    )
    # While Envoy is down, clients cannot connect (or are cut off mid-request); nothing else.
    assert None in {outcome.status for outcome in outcomes}  # it really was down
    assert_nothing_unmasked_unaudited_or_untrailed(gateway, outcomes, failures={None})
    # Traffic resumes once it is back: the last requests of the run were all answered.
    assert [outcome.status for outcome in outcomes[-10:]] == [200] * 10
    # The services never noticed.
    assert workers == {key: gateway.worker_pid(*key) for key in workers}
