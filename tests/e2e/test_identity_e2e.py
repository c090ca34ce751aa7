"""Identity through the real Envoy: every way a token can be wrong is a 401 with its reason."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from extproc.demo.issuer import DevIssuer
from tests.e2e.harness import AUDIENCE, Gateway
from tests.support import tokens

pytestmark = pytest.mark.e2e

SWEDEN = "89.160.20.112"


def expect_401(gateway: Gateway, token: str, error: str) -> None:
    reply = gateway.request(token=token, source=SWEDEN)
    assert reply.status == 401, reply.body
    body = reply.json()
    assert body["error"] == error, body
    assert body["rule"] == "identity"
    assert body["reason"]
    assert token not in reply.body.decode()
    assert reply.headers["www-authenticate"].startswith(
        'Bearer realm="extproc", error="invalid_token"'
    )


def claims(gateway: Gateway, **changes: object) -> dict[str, object]:
    now = int(time.time())
    base: dict[str, object] = {
        "iss": gateway.issuer.issuer_url,
        "sub": "mallory",
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 600,
        "groups": ["ml-eu"],
    }
    base.update(changes)
    return base


CASES: dict[str, tuple[Callable[[Gateway], str], str]] = {
    "expired": (lambda g: g.issuer.mint("alice", ("ml-eu",), AUDIENCE, ttl=-120), "token_expired"),
    "not-yet-valid": (
        lambda g: g.issuer.mint(
            "alice", ("ml-eu",), AUDIENCE, extra_claims={"nbf": int(time.time()) + 600}
        ),
        "token_not_yet_valid",
    ),
    "wrong-audience": (
        lambda g: g.issuer.mint("alice", ("ml-eu",), "another-api"),
        "invalid_audience",
    ),
    "bad-signature": (lambda g: tokens.tamper_signature(g.token()), "invalid_signature"),
    "edited-claims": (
        lambda g: tokens.tamper_claims(g.token(groups=("ml-us",)), groups=["ml-eu"]),
        "invalid_signature",
    ),
    "alg-none": (lambda g: tokens.unsigned_token(claims(g)), "algorithm_not_allowed"),
    "hs256-with-the-rsa-public-key": (
        lambda g: tokens.hs256_with_public_key(
            claims(g),
            g.issuer.key,
            g.issuer.published[0]["kid"],  # type: ignore[arg-type]
        ),
        "algorithm_not_allowed",
    ),
    "not-a-jwt": (lambda g: "not.a.jwt", "malformed_token"),
    "missing-exp": (
        lambda g: g.issuer.mint("alice", ("ml-eu",), AUDIENCE, extra_claims={"exp": None}),
        "missing_claim",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_an_invalid_token_is_401_with_its_reason(gateway: Gateway, case: str) -> None:
    make, error = CASES[case]
    expect_401(gateway, make(gateway), error)


def test_a_token_from_an_untrusted_issuer_is_401(
    gateway: Gateway, tmp_path_factory: pytest.TempPathFactory
) -> None:
    stranger = DevIssuer(tmp_path_factory.mktemp("stranger"))
    stranger.start()
    try:
        expect_401(gateway, stranger.mint("alice", ("ml-eu",), AUDIENCE), "unknown_issuer")
    finally:
        stranger.stop()


def test_an_unknown_key_is_401_until_the_issuer_publishes_it(gateway: Gateway) -> None:
    rotated = tokens.rsa_key()
    token = gateway.issuer.mint("alice", ("ml-eu",), AUDIENCE, key=rotated)
    expect_401(gateway, token, "unknown_key")
    assert gateway.issuer.key is not None
    gateway.issuer.publish([gateway.issuer.key, rotated])
    try:
        allowed = gateway.wait_until(
            lambda: gateway.request(token=token, source=SWEDEN).status == 200, timeout=10
        )
        assert allowed, "the rotated key was never fetched"
    finally:
        gateway.issuer.publish([gateway.issuer.key])


def test_an_es256_token_from_a_published_ec_key_is_accepted(gateway: Gateway) -> None:
    ec_key = tokens.ec_key()
    assert gateway.issuer.key is not None
    gateway.issuer.publish([gateway.issuer.key, ec_key])
    try:
        token = gateway.issuer.mint("alice", ("ml-eu",), AUDIENCE, key=ec_key)
        assert gateway.wait_until(
            lambda: gateway.request(token=token, source=SWEDEN).status == 200, timeout=10
        )
    finally:
        gateway.issuer.publish([gateway.issuer.key])
