"""A development OIDC issuer: discovery and JWKS on localhost, keys generated at first start.

For ``extproc up``, ``extproc token`` and the tests. Never for production: it signs whatever it
is asked to. Its RSA key (kid = RFC 7638 thumbprint) and its URL live in ``state_dir`` so tokens
minted by ``extproc token`` verify against the issuer ``extproc up`` is running.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from extproc.demo.http import start_server, stop_server
from extproc.errors import ExtprocError

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
_KEY_FILE = "signing-key.pem"
_STATE_FILE = "issuer.json"
JWKS_FILE = "jwks.json"
DEFAULT_AUDIENCE = "extproc-demo"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def public_jwk(key: PrivateKey) -> dict[str, str]:
    """The public JWK of a key, with ``kid`` set to its RFC 7638 thumbprint and ``alg`` set."""
    public = key.public_key()
    jwk: dict[str, str]
    if isinstance(public, rsa.RSAPublicKey):
        rsa_numbers = public.public_numbers()
        e, n = rsa_numbers.e, rsa_numbers.n
        jwk = {
            "e": _b64(e.to_bytes((e.bit_length() + 7) // 8, "big")),
            "kty": "RSA",
            "n": _b64(n.to_bytes((n.bit_length() + 7) // 8, "big")),
        }
        alg = "RS256"
    elif isinstance(public, ec.EllipticCurvePublicKey):
        numbers = public.public_numbers()
        size = (public.curve.key_size + 7) // 8
        jwk = {
            "crv": "P-256",
            "kty": "EC",
            "x": _b64(numbers.x.to_bytes(size, "big")),
            "y": _b64(numbers.y.to_bytes(size, "big")),
        }
        alg = "ES256"
    else:
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        jwk = {"crv": "Ed25519", "kty": "OKP", "x": _b64(raw)}
        alg = "EdDSA"
    thumbprint = hashlib.sha256(json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode())
    return {**jwk, "kid": _b64(thumbprint.digest())[:16], "alg": alg, "use": "sig"}


def algorithm_of(key: PrivateKey) -> str:
    return public_jwk(key)["alg"]


def sign(
    key: PrivateKey, claims: Mapping[str, Any], headers: Mapping[str, Any] | None = None
) -> str:
    jwk = public_jwk(key)
    merged = {"kid": jwk["kid"], **(headers or {})}
    return jwt.encode(dict(claims), key, algorithm=jwk["alg"], headers=merged)


def claims_for(
    issuer_url: str,
    sub: str,
    groups: Sequence[str],
    audience: str,
    ttl: int,
    extra_claims: Mapping[str, Any],
) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer_url,
        "sub": sub,
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
    }
    if groups:
        claims["groups"] = list(groups)
    claims.update(extra_claims)
    return claims


def _load_or_create_key(state_dir: Path) -> rsa.RSAPrivateKey:
    path = state_dir / _KEY_FILE
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ExtprocError(f"{path} is not an RSA key")
        return key
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return key


class DevIssuer:
    """Serves ``/.well-known/openid-configuration`` and ``/jwks.json``.

    ``published`` is exactly the list of public JWKs served; tests replace it to simulate key
    rotation (``publish``) and count fetches (``jwks_fetches``).
    """

    def __init__(
        self,
        state_dir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        public_url: str | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.host = host
        self.port = port
        self.public_url = public_url  # the address tokens name, when clients reach it elsewhere
        self.key: rsa.RSAPrivateKey | None = None
        self.published: list[dict[str, str]] = []
        self.jwks_fetches = 0
        self._server: ThreadingHTTPServer | None = None

    @property
    def issuer_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer_url}/jwks.json"

    def start(self) -> None:
        self.key = prepare_issuer_state(self.state_dir, None)
        self.published = [public_jwk(self.key)]
        self._server = start_server(self.host, self.port, _handler(self))
        self.port = int(self._server.server_address[1])
        prepare_issuer_state(self.state_dir, self.issuer_url)

    def stop(self) -> None:
        stop_server(self._server)
        self._server = None

    def publish(self, keys: Sequence[PrivateKey]) -> None:
        """Serve exactly these keys' public halves from now on."""
        self.published = [public_jwk(key) for key in keys]

    def mint(
        self,
        sub: str,
        groups: Sequence[str] = (),
        audience: str = DEFAULT_AUDIENCE,
        ttl: int = 3600,
        extra_claims: Mapping[str, Any] | None = None,
        key: PrivateKey | None = None,
    ) -> str:
        signing_key = key or self.key
        if signing_key is None:
            raise ExtprocError("the issuer is not started")
        claims = claims_for(self.issuer_url, sub, groups, audience, ttl, extra_claims or {})
        return sign(signing_key, claims)


def prepare_issuer_state(state_dir: Path, issuer_url: str | None) -> rsa.RSAPrivateKey:
    """The issuer's signing key (created once, then kept) and, when given, the URL it serves
    at, so ``extproc token`` can mint tokens before and while the issuer runs."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = _load_or_create_key(state_dir)
    if issuer_url is not None:
        (state_dir / _STATE_FILE).write_text(json.dumps({"issuer": issuer_url}), encoding="utf-8")
    # The public keys, for tools that verify the demo's tokens offline (extproc explain --jwks).
    jwks = {"keys": [public_jwk(key)]}
    (state_dir / JWKS_FILE).write_text(json.dumps(jwks), encoding="utf-8")
    return key


def mint_from_state(
    state_dir: Path,
    *,
    sub: str,
    groups: Sequence[str] = (),
    audience: str = DEFAULT_AUDIENCE,
    ttl: int = 3600,
    extra_claims: Mapping[str, Any] | None = None,
) -> str:
    """Sign a token with the key of the issuer whose state is in ``state_dir``."""
    try:
        issuer_url = json.loads((state_dir / _STATE_FILE).read_text(encoding="utf-8"))["issuer"]
        key = _load_or_create_key(state_dir) if (state_dir / _KEY_FILE).exists() else None
    except (OSError, ValueError, KeyError):
        key = None
    if key is None:
        raise ExtprocError(f"no demo issuer state in {state_dir}: start `extproc up` first")
    return sign(key, claims_for(issuer_url, sub, groups, audience, ttl, extra_claims or {}))


def _handler(issuer: DevIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if self.path == "/.well-known/openid-configuration":
                body: dict[str, Any] = {
                    "issuer": issuer.issuer_url,
                    "jwks_uri": issuer.jwks_uri,
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "subject_types_supported": ["public"],
                    "response_types_supported": ["id_token"],
                }
            elif self.path == "/jwks.json":
                issuer.jwks_fetches += 1
                body = {"keys": list(issuer.published)}
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
