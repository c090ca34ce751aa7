"""Token verification, key refresh and the verified-token cache, with real keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jwt import api_jws as jws

from extproc.config.document import parse_document
from extproc.config.validation import load_section
from extproc.demo.issuer import PrivateKey, claims_for, public_jwk, sign
from extproc.errors import ConfigError, IdentityError, KeyRefreshNeeded
from extproc.identity.config import IdentityConfig, IssuerConfig
from extproc.identity.jwks import KeySourceError
from extproc.identity.key_cache import KeyCache
from extproc.identity.keys import KeyStore
from extproc.identity.settings import IdentitySettings, compile_identity
from extproc.identity.verifier import TokenVerifier
from tests.support import tokens

ISSUER = "https://idp.example/realms/corp"
JWKS_URL = "https://idp.example/jwks"


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeIssuerEndpoint:
    """Serves a JWKS from memory and counts fetches (a tiny fake for the HTTP fetcher)."""

    def __init__(self, keys: list[PrivateKey]) -> None:
        self.keys = keys
        self.fetches = 0

    def __call__(self, url: str, timeout: float) -> Any:
        assert url == JWKS_URL
        self.fetches += 1
        return {"keys": [public_jwk(key) for key in self.keys]}


def make(
    keys: list[PrivateKey],
    algorithms: tuple[str, ...] = ("RS256", "ES256", "EdDSA"),
    clock: FakeClock | None = None,
    **identity: Any,
) -> tuple[TokenVerifier, KeyStore, FakeIssuerEndpoint, FakeClock]:
    clock = clock or FakeClock()
    issuer = IssuerConfig(
        name="corp",
        issuer=ISSUER,
        audiences=("gateway",),
        algorithms=algorithms,
        jwks_uri=JWKS_URL,
        leeway_seconds=30,
        group_claims=("groups", "realm_access.roles"),
        location_claim="region",
    )
    config = IdentityConfig(issuers=(issuer,), **identity)
    endpoint = FakeIssuerEndpoint(keys)
    store = KeyStore(config, fetch_json=endpoint, clock=clock)
    assert store.load_all() == {"corp": None}
    return TokenVerifier(config, store, clock=clock), store, endpoint, clock


def identity_config(text: str, base: Path) -> IdentityConfig:
    return load_section(
        parse_document(text, file="c.yaml"),
        "identity",
        IdentitySettings,
        lambda settings: compile_identity(settings, base),
    )


def token(key: PrivateKey, clock: FakeClock, ttl: int = 600, **extra: Any) -> str:
    claims = claims_for(ISSUER, "alice", ["ml-eu"], "gateway", ttl, extra)
    claims.update({"iat": int(clock.now), "nbf": int(clock.now), "exp": int(clock.now) + ttl})
    claims.update(extra)
    return sign(key, claims)


@pytest.mark.parametrize("make_key", [tokens.rsa_key, tokens.ec_key, tokens.ed25519_key])
def test_tokens_signed_with_each_supported_key_type_verify(make_key: Any) -> None:
    key = make_key()
    verifier, *_rest, clock = make([key])
    identity = verifier.verify(token(key, clock, region="DE"))
    assert identity.subject == "alice"
    assert identity.issuer == "corp"
    assert identity.groups == frozenset({"ml-eu"})
    assert identity.declared_location == "DE"


def test_groups_are_merged_from_every_configured_claim_path() -> None:
    key = tokens.rsa_key()
    verifier, *_rest, clock = make([key])
    identity = verifier.verify(token(key, clock, realm_access={"roles": ["auditor", "ml-us"]}))
    assert identity.groups == {"ml-eu", "auditor", "ml-us"}


def test_an_unknown_kid_asks_for_a_refresh_then_verifies_after_rotation() -> None:
    old, new = tokens.rsa_key(), tokens.rsa_key()
    verifier, store, endpoint, clock = make([old], jwks_min_refresh_seconds=30)
    rotated = token(new, clock)
    with pytest.raises(KeyRefreshNeeded):
        verifier.verify(rotated)
    endpoint.keys = [old, new]
    assert store.refresh("corp")
    assert verifier.verify(rotated).subject == "alice"


def test_a_key_the_issuer_withdrew_stops_vouching_for_the_tokens_it_verified() -> None:
    """A compromised signing key is withdrawn from the JWKS: tokens it signed, even ones
    verified and cached before, are refused once a refresh no longer finds it."""
    old, new = tokens.rsa_key(), tokens.rsa_key()
    verifier, store, endpoint, clock = make([old], jwks_min_refresh_seconds=0)
    signed_by_old = token(old, clock)
    assert verifier.verify(signed_by_old).subject == "alice"
    assert verifier.verify_cached(signed_by_old) is not None
    endpoint.keys = [new]
    assert store.refresh("corp")
    assert verifier.verify_cached(signed_by_old) is None
    with pytest.raises(IdentityError) as caught:
        verifier.verify(signed_by_old, refreshed=True)
    assert caught.value.code == "unknown_key"


def test_headers_and_claims_no_token_may_carry_are_refused_as_the_callers_error() -> None:
    key = tokens.rsa_key()
    verifier, _store, _endpoint, clock = make([key])
    cases = [
        (sign_raw(key, _claims(clock), {"crit": ["zzz"]}), "malformed_token"),
        (sign_raw(key, _claims(clock), {"crit": "x"}), "malformed_token"),
        (sign_raw(key, {**_claims(clock), "iss": [ISSUER]}), "unknown_issuer"),
        (sign_raw(key, {**_claims(clock), "iss": {"a": 1}}), "unknown_issuer"),
        (sign_raw(key, {**_claims(clock), "exp": float("inf")}), "invalid_claim"),
        (sign_raw(key, {**_claims(clock), "exp": float("nan")}), "invalid_claim"),
        (sign_raw(key, {**_claims(clock), "nbf": float("nan")}), "invalid_claim"),
        (sign_raw(key, {**_claims(clock), "iat": float("-inf")}), "invalid_claim"),
    ]
    for signed, code in cases:
        with pytest.raises(IdentityError) as caught:
            verifier.verify(signed)
        assert caught.value.code == code, signed


def sign_raw(key: PrivateKey, claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
    """Signed as an issuer could sign anything (PyJWT's encoder refuses some of these)."""
    jwk = public_jwk(key)
    payload = json.dumps(claims).encode()  # NaN and Infinity as Python's json writes them
    return jws.encode(
        payload, key, algorithm=jwk["alg"], headers={"kid": jwk["kid"], **(headers or {})}
    )


def _claims(clock: FakeClock) -> dict[str, Any]:
    claims = claims_for(ISSUER, "alice", ["ml-eu"], "gateway", 600, {})
    claims.update({"iat": int(clock.now), "nbf": int(clock.now), "exp": int(clock.now) + 600})
    return claims


def test_refreshes_are_rate_limited_so_forged_kids_cannot_hammer_the_issuer() -> None:
    key = tokens.rsa_key()
    verifier, store, endpoint, clock = make([key], jwks_min_refresh_seconds=30)
    assert endpoint.fetches == 1
    store.refresh("corp")
    store.refresh("corp")
    store.refresh("corp")
    assert endpoint.fetches == 2
    clock.now += 31
    store.refresh("corp")
    assert endpoint.fetches == 3
    forged = token(tokens.rsa_key(), clock)
    with pytest.raises(IdentityError) as caught:
        verifier.verify(forged, refreshed=True)
    assert caught.value.code == "unknown_key"


def test_a_key_of_the_wrong_type_for_the_algorithm_is_refused() -> None:
    rsa_key = tokens.rsa_key()
    verifier, *_rest, clock = make([rsa_key])
    ec_key = tokens.ec_key()
    claims = claims_for(ISSUER, "alice", [], "gateway", 600, {})
    claims.update({"iat": int(clock.now), "exp": int(clock.now) + 600})
    forged = sign(ec_key, claims, headers={"kid": public_jwk(rsa_key)["kid"]})
    with pytest.raises(IdentityError) as caught:
        verifier.verify(forged)
    assert caught.value.code == "algorithm_not_allowed"


def test_an_algorithm_the_issuer_does_not_use_is_refused_even_with_a_valid_signature() -> None:
    key = tokens.ec_key()
    verifier, *_rest, clock = make([key], algorithms=("RS256",))
    with pytest.raises(IdentityError) as caught:
        verifier.verify(token(key, clock))
    assert caught.value.code == "algorithm_not_allowed"


def test_the_cache_serves_a_verified_token_until_exp_plus_leeway_and_not_after() -> None:
    key = tokens.rsa_key()
    verifier, *_rest, clock = make([key])
    issued = token(key, clock, ttl=60)
    assert verifier.verify_cached(issued) is None
    identity = verifier.verify(issued)
    assert verifier.verify_cached(issued) is identity
    clock.now += 60 + 29
    assert verifier.verify_cached(issued) is identity
    clock.now += 1
    assert verifier.verify_cached(issued) is None
    with pytest.raises(IdentityError) as caught:
        verifier.verify(issued)
    assert caught.value.code == "token_expired"


def test_the_cache_is_bounded() -> None:
    key = tokens.rsa_key()
    verifier, *_rest, clock = make([key], token_cache_size=2)
    first, second, third = (token(key, clock, jti=str(i)) for i in range(3))
    for issued in (first, second, third):
        verifier.verify(issued)
    assert verifier.verify_cached(first) is None
    assert verifier.verify_cached(third) is not None


@pytest.mark.parametrize(
    "bad", ["", "a.b", "a.b.c", "x" * 20_000, "eyJhbGciOiJSUzI1NiJ9.bm90LWpzb24.c2ln"]
)
def test_malformed_tokens_are_refused_without_a_crash(bad: str) -> None:
    verifier, *_rest = make([tokens.rsa_key()])
    with pytest.raises(IdentityError) as caught:
        verifier.verify(bad)
    assert caught.value.code in {"malformed_token", "unknown_issuer"}


def test_a_jwks_file_is_a_key_source(tmp_path: Path) -> None:
    key = tokens.rsa_key()
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [public_jwk(key)]}))
    config = identity_config(
        f"identity:\n  issuers:\n    - name: corp\n      issuer: {ISSUER}\n"
        "      jwks_file: jwks.json\n      audiences: [gateway]\n      algorithms: [RS256]\n",
        tmp_path,
    )
    store = KeyStore(config)
    assert store.load_all() == {"corp": None}
    clock = FakeClock()
    assert TokenVerifier(config, store, clock=clock).verify(token(key, clock)).subject == "alice"


def test_encryption_keys_and_garbage_in_a_jwks_are_skipped() -> None:
    key = tokens.rsa_key()
    endpoint = FakeIssuerEndpoint([key])
    good = public_jwk(key)
    document = {"keys": [{**good, "use": "enc", "kid": "enc"}, {"kty": "RSA", "kid": "junk"}, good]}
    config = IdentityConfig(
        issuers=(IssuerConfig("corp", ISSUER, ("gateway",), ("RS256",), jwks_uri=JWKS_URL),)
    )
    store = KeyStore(config, fetch_json=lambda url, timeout: document)
    assert store.load_all() == {"corp": None}
    assert store.key("corp", good["kid"]) is not None
    assert store.key("corp", "enc") is None
    assert endpoint.fetches == 0


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("algorithms: [none]", "algorithm 'none' is not allowed"),
        ("algorithms: [HS256]", "algorithm 'HS256' is not allowed"),
        ("algorithms: [RS256]\n      jwks_uri: https://x/jwks", "set exactly one key source"),
        ("algorithms: [RS256]\n      audience: x", "unknown key 'audience'"),
    ],
)
def test_identity_config_errors_name_the_problem(snippet: str, message: str) -> None:
    text = (
        f"identity:\n  issuers:\n    - name: corp\n      issuer: {ISSUER}\n"
        f"      discovery: true\n      audiences: [gateway]\n      {snippet}\n"
    )
    with pytest.raises(ConfigError) as caught:
        identity_config(text, Path("."))
    assert message in caught.value.reason
    assert caught.value.reason.startswith("c.yaml:")


def test_a_reload_while_the_issuer_is_down_keeps_the_keys_that_still_verify() -> None:
    key = tokens.rsa_key()
    _verifier, old_store, _endpoint, clock = make([key])

    def down(url: str, timeout: float) -> Any:
        from extproc.identity.jwks import KeySourceError

        raise KeySourceError("GET https://idp.example/jwks failed: connection refused")

    config = IdentityConfig(issuers=old_store._config.issuers)
    reloaded = KeyStore(config, fetch_json=down, clock=clock)
    assert reloaded.load_all()["corp"] is not None  # the issuer is down
    assert reloaded.adopt(old_store) == ["corp"]
    verifier = TokenVerifier(config, reloaded, clock=clock)
    assert verifier.verify(token(key, clock)).subject == "alice"


def test_keys_are_not_carried_to_an_issuer_whose_configuration_changed() -> None:
    _verifier, old_store, _endpoint, _clock = make([tokens.rsa_key()])
    from dataclasses import replace as changed

    moved = changed(old_store._config.issuers[0], jwks_uri="https://other.example/jwks")
    fresh = KeyStore(IdentityConfig(issuers=(moved,)), fetch_json=lambda u, t: {"keys": []})
    fresh.load_all()
    assert fresh.adopt(old_store) == []
    assert not fresh.has_keys("corp")


def _down(url: str, timeout: float) -> Any:
    raise KeySourceError(f"GET {url} failed: connection refused")


def test_a_worker_started_while_the_issuer_is_down_takes_the_keys_a_sibling_fetched(
    tmp_path: Path,
) -> None:
    key = tokens.rsa_key()
    _verifier, running, endpoint, clock = make([key])
    config = running._config
    shared = KeyCache(tmp_path)
    sibling = KeyStore(config, fetch_json=endpoint, clock=clock, cache=shared)
    assert sibling.load_all() == {"corp": None}
    (saved,) = tmp_path.glob("*.json")
    assert '"d"' not in saved.read_text()  # public keys only

    restarted = KeyStore(config, fetch_json=_down, clock=clock, cache=shared)
    assert restarted.load_all()["corp"] == "GET https://idp.example/jwks failed: connection refused"
    assert restarted.has_keys("corp")
    verifier = TokenVerifier(config, restarted, clock=clock)
    assert verifier.verify(token(key, clock)).subject == "alice"

    # Shared keys are not a fetch: the periodic refresh keeps asking the issuer itself.
    restarted._fetch = endpoint
    before = endpoint.fetches
    restarted.refresh_stale()
    assert endpoint.fetches == before + 1
    assert restarted.error("corp") is None


def test_shared_keys_are_never_taken_for_another_configuration_or_from_a_bad_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from dataclasses import replace as changed

    _verifier, running, endpoint, clock = make([tokens.rsa_key()])
    shared = KeyCache(tmp_path)
    KeyStore(running._config, fetch_json=endpoint, clock=clock, cache=shared).load_all()
    moved = changed(running._config.issuers[0], jwks_uri="https://other.example/jwks")
    elsewhere = KeyStore(IdentityConfig(issuers=(moved,)), fetch_json=_down, cache=shared)
    elsewhere.load_all()
    assert not elsewhere.has_keys("corp")

    (saved,) = tmp_path.glob("*.json")
    saved.write_text('{"saved_at": 1, "jwks": {"keys"')
    restarted = KeyStore(running._config, fetch_json=_down, cache=shared)
    restarted.load_all()
    assert not restarted.has_keys("corp")
    (unreadable,) = [r for r in caplog.records if r.getMessage() == "shared issuer keys unreadable"]
    assert getattr(unreadable, "reason", None) == "not JSON"


def test_keys_read_from_a_jwks_file_are_not_shared(tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [public_jwk(tokens.rsa_key())]}))
    issuer = IssuerConfig(
        name="local", issuer=ISSUER, audiences=("gateway",), algorithms=("RS256",), jwks_file=jwks
    )
    cache = tmp_path / "shared"
    cache.mkdir()
    store = KeyStore(IdentityConfig(issuers=(issuer,)), cache=KeyCache(cache))
    assert store.load_all() == {"local": None}
    assert list(cache.iterdir()) == []


def _withdrawing(document: Any) -> Any:
    def fetch(url: str, timeout: float) -> Any:
        return document

    return fetch


def _encryption_only() -> Any:
    return {"keys": [{**public_jwk(tokens.rsa_key()), "use": "enc"}]}


WITHDRAWALS = [
    pytest.param(lambda: {"keys": []}, id="empty"),
    pytest.param(_encryption_only, id="encryption-only"),
    pytest.param(lambda: {"keys": [{"kty": "XYZ", "kid": "k1"}]}, id="unsupported"),
]


@pytest.mark.parametrize("withdrawal", WITHDRAWALS)
def test_a_jwks_with_no_usable_signing_key_withdraws_every_key(withdrawal: Any) -> None:
    """The issuer answered: it trusts none of its keys any more. Tokens they signed, verified
    and cached before or new, are refused; it is not an outage to ride out on old keys."""
    key = tokens.rsa_key()
    verifier, store, _endpoint, clock = make([key], jwks_min_refresh_seconds=0)
    cached = token(key, clock)
    assert verifier.verify(cached).subject == "alice"
    store._fetch = _withdrawing(withdrawal())
    assert not store.refresh("corp")
    assert not store.has_keys("corp")
    assert store.error("corp") == "the JWKS has no usable signing key"
    assert verifier.verify_cached(cached) is None
    for signed in (cached, token(key, clock, ttl=300)):
        with pytest.raises(KeyRefreshNeeded):
            verifier.verify(signed)
        with pytest.raises(IdentityError) as caught:
            verifier.verify(signed, refreshed=True)
        assert caught.value.code == "keys_unavailable"


@pytest.mark.parametrize(
    "fetch",
    [
        pytest.param(_down, id="network"),
        pytest.param(_withdrawing({"error": "maintenance"}), id="not-a-jwks"),
        pytest.param(_withdrawing([1, 2]), id="not-an-object"),
    ],
)
def test_a_fetch_that_fails_is_an_outage_and_keeps_the_keys(fetch: Any) -> None:
    key = tokens.rsa_key()
    verifier, store, _endpoint, clock = make([key], jwks_min_refresh_seconds=0)
    signed = token(key, clock)
    assert verifier.verify(signed).subject == "alice"
    store._fetch = fetch
    assert not store.refresh("corp")
    assert store.has_keys("corp")
    assert store.error("corp") is not None
    assert verifier.verify_cached(signed) is not None
    assert verifier.verify(token(key, clock, ttl=300)).subject == "alice"


@pytest.mark.parametrize("withdrawal", WITHDRAWALS)
def test_withdrawn_keys_are_not_shared_with_a_worker_restarted_during_an_outage(
    tmp_path: Path, withdrawal: Any
) -> None:
    key = tokens.rsa_key()
    _verifier, running, endpoint, clock = make([key], jwks_min_refresh_seconds=0)
    config = running._config
    shared = KeyCache(tmp_path)
    sibling = KeyStore(config, fetch_json=endpoint, clock=clock, cache=shared)
    withdrawing = KeyStore(config, fetch_json=endpoint, clock=clock, cache=shared)
    assert sibling.load_all() == withdrawing.load_all() == {"corp": None}
    assert len(list(tmp_path.glob("*.json"))) == 1

    withdrawing._fetch = _withdrawing(withdrawal())
    assert not withdrawing.refresh("corp")
    assert list(tmp_path.glob("*.json")) == []  # the shared copy is gone

    # A worker restarted while the issuer is then unreachable starts with no keys.
    restarted = KeyStore(config, fetch_json=_down, clock=clock, cache=shared)
    assert restarted.load_all()["corp"] is not None
    assert not restarted.has_keys("corp")
    with pytest.raises(IdentityError) as caught:
        TokenVerifier(config, restarted, clock=clock).verify(token(key, clock), refreshed=True)
    assert caught.value.code == "keys_unavailable"
    # The withdrawing worker itself, down in turn, takes nothing back from the cache.
    withdrawing._fetch = _down
    assert not withdrawing.refresh("corp")
    assert not withdrawing.has_keys("corp")
    # Keys the issuer publishes again are shared again.
    withdrawing._fetch = endpoint
    assert withdrawing.refresh("corp")
    assert len(list(tmp_path.glob("*.json"))) == 1


def test_a_reload_after_the_issuer_withdrew_its_keys_does_not_adopt_them() -> None:
    _verifier, old_store, _endpoint, clock = make([tokens.rsa_key()])
    config = IdentityConfig(issuers=old_store._config.issuers)
    reloaded = KeyStore(config, fetch_json=_withdrawing({"keys": []}), clock=clock)
    assert reloaded.load_all()["corp"] == "the JWKS has no usable signing key"
    assert reloaded.adopt(old_store) == []
    assert not reloaded.has_keys("corp")
