"""Webhooks against a local receiver (127.0.0.1 only): retries with backoff, signatures, per
event filters, the queue's bound, and a hanging receiver that never holds up a caller."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from extproc.approval import rules
from extproc.approval.config import WebhookSettings, parse_approvals_settings
from extproc.approval.notice import verify_signature
from extproc.approvals.webhooks import WebhookNotifier
from extproc.demo.http import start_server, stop_server
from extproc.errors import ConfigError
from tests.unit.test_approval_rules import SEC, T0, pending

SECRET = b"s" * 40


@dataclass
class Receiver:
    """Answers 503 to the first ``fail_first`` posts, then 200; or hangs ``hang`` seconds."""

    fail_first: int = 0
    hang: float = 0.0
    posts: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    attempts: int = 0
    url: str = ""
    received: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            state.attempts += 1
            if state.hang:
                time.sleep(state.hang)
            ok = state.attempts > state.fail_first
            if ok:
                state.posts.append(({k.lower(): v for k, v in self.headers.items()}, body))
                state.received.set()
            self.send_response(200 if ok else 503)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = start_server("127.0.0.1", 0, Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/T000/secret-path"
    yield state
    stop_server(server)


def notifier(hook: WebhookSettings, **kwargs: object) -> WebhookNotifier:
    options: dict[str, object] = {"backoff": 0.05, "backoff_max": 0.2, **kwargs}
    return WebhookNotifier([hook], **options)  # type: ignore[arg-type]


def test_a_failing_receiver_gets_the_event_after_retries_signed_each_time(
    receiver: Receiver,
) -> None:
    receiver.fail_first = 3
    sender = notifier(WebhookSettings(receiver.url, secret=SECRET), attempts=6)
    approval = pending()
    assert sender.submit("requested", approval, version=4, time="t") == 1
    assert receiver.received.wait(10)
    sender.close(timeout=5)
    assert receiver.attempts == 4
    assert sender.counts == {
        "submitted": 1,
        "delivered": 1,
        "retried": 3,
        "failed": 0,
        "dropped": 0,
    }
    headers, body = receiver.posts[0]
    assert json.loads(body)["approval"]["id"] == approval.id
    assert headers["x-extproc-event"] == "requested"
    assert headers["x-extproc-delivery"] == f"{approval.id}.4"
    assert headers["content-type"] == "application/json"
    assert verify_signature(headers["x-extproc-signature"], body, SECRET, now=time.time())
    assert not verify_signature(headers["x-extproc-signature"], body, b"x" * 40, now=time.time())


def test_a_receiver_that_keeps_failing_is_given_up_after_the_attempts_and_logged(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.fail_first = 100
    sender = notifier(WebhookSettings(receiver.url), attempts=3)
    with caplog.at_level(logging.WARNING, logger="extproc.approvals"):
        sender.submit("denied", pending(), version=1, time="t")
        deadline = time.monotonic() + 10
        while sender.counts["failed"] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
    sender.close(timeout=5)
    assert receiver.attempts == 3
    assert (sender.counts["retried"], sender.counts["failed"]) == (2, 1)
    messages = [r.getMessage() for r in caplog.records]
    assert "webhook delivery failed; giving up" in messages
    # The URL's path may hold a token: logs name scheme and host only.
    assert all("secret-path" not in json.dumps(r.__dict__, default=str) for r in caplog.records)


def test_submitting_while_the_receiver_hangs_returns_at_once(receiver: Receiver) -> None:
    receiver.hang = 2.0
    sender = notifier(WebhookSettings(receiver.url, timeout_seconds=0.5), attempts=1)
    sender.submit("requested", pending(), version=1, time="t")
    time.sleep(0.2)  # a sender is now stuck on the hanging receiver
    started = time.monotonic()
    for version in range(2, 12):
        sender.submit("requested", pending(), version=version, time="t")
    assert time.monotonic() - started < 0.05
    sender.close()


def test_drops_beyond_the_bound_are_counted_and_logged(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.hang = 1.0
    sender = notifier(
        WebhookSettings(receiver.url, timeout_seconds=0.3), queue_max=2, senders=1, attempts=1
    )
    with caplog.at_level(logging.ERROR, logger="extproc.approvals"):
        accepted = [sender.submit("requested", pending(), version=v, time="t") for v in range(5)]
    assert accepted.count(1) == 2
    assert sender.counts["dropped"] == 3
    assert [r.getMessage() for r in caplog.records].count(
        "webhook queue full; notification dropped"
    ) == 3
    sender.close()


def test_each_webhook_gets_only_the_events_it_asked_for_in_its_format(receiver: Receiver) -> None:
    slack = WebhookSettings(receiver.url, events=frozenset({"granted"}), format="slack")
    sender = notifier(slack)
    approval = pending()
    assert sender.submit("requested", approval, version=1, time="t") == 0
    granted, _ = rules.review(approval, SEC, "approve", reason=None, ttl_seconds=None, now=T0 + 1)
    assert sender.submit("granted", granted, version=3, time="t") == 1
    assert receiver.received.wait(10)
    sender.close(timeout=5)
    body = json.loads(receiver.posts[0][1])
    assert body["text"].startswith("Approval granted")
    assert "blocks" in body
    assert "x-extproc-signature" not in receiver.posts[0][0]  # no secret configured: unsigned


def test_no_webhooks_start_no_threads() -> None:
    before = threading.active_count()
    sender = WebhookNotifier([])
    assert sender.submit("requested", pending(), version=1, time="t") == 0
    assert threading.active_count() == before
    sender.close()


def test_settings_read_webhook_secrets_from_env_or_file_and_refuse_bad_ones(
    tmp_path: Path,
) -> None:
    (tmp_path / "hook.key").write_bytes(SECRET + b"\n")
    settings = parse_approvals_settings(
        {
            "store": "state/approvals.db",
            "expire_interval": "10s",
            "webhooks": [
                {"url": "https://hooks.example/T/B/tok", "format": "slack", "secret_env": "K"},
                {"url": "http://127.0.0.1:9/x", "events": ["requested"], "secret_file": "hook.key"},
            ],
        },
        tmp_path,
        env={"K": "k" * 32},
    )
    assert settings.store_path == tmp_path / "state" / "approvals.db"
    assert settings.expire_interval_seconds == 10
    slack, local = settings.webhooks
    assert (slack.format, slack.secret, slack.shown) == (
        "slack",
        b"k" * 32,
        "https://hooks.example",
    )
    assert "kkkk" not in repr(slack)
    assert (local.events, local.secret) == (frozenset({"requested"}), SECRET)
    for bad, message in [
        ({"webhooks": [{"url": "ftp://x"}]}, "http or https"),
        ({"webhooks": [{"url": "https://x", "events": ["used"]}]}, "events must list"),
        ({"webhooks": [{"url": "https://x", "secret_env": "NOPE"}]}, "NOPE is not set"),
        ({"webhooks": [{"url": "https://x", "secret_env": "SHORT"}]}, "at least 32 bytes"),
        ({"webhooks": [{"url": "https://x", "secret_file": "missing.key"}]}, "cannot read"),
        ({"webhooks": [{"url": "https://x", "format": "xml"}]}, "format must be one of"),
        ({"webhooks": [{"url": "https://x", "when": 1}]}, "unknown key(s) when"),
        ({"poll_interval": 0}, "poll_interval must be positive"),
        ({"webhook_queue_max": 0}, "webhook_queue_max must be"),
        ({"listen": 1}, "unknown key(s) listen"),
    ]:
        with pytest.raises(ConfigError) as caught:
            parse_approvals_settings(bad, tmp_path, env={"SHORT": "short"})
        assert message in caught.value.reason, (bad, caught.value.reason)
