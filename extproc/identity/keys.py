"""Issuer keys: OIDC discovery → JWKS → prepared public keys by ``kid``. An I/O edge: it reads
files, fetches through ``fetch_json`` and holds a lock.

Keys are prepared once when a JWKS is loaded, never per request. A token naming an unknown
``kid`` triggers a refresh (the issuer may have rotated), at most once per
``jwks_min_refresh_seconds`` per issuer, so a flood of forged kids cannot make us hammer the
issuer. A failed refresh (network, HTTP error, not JSON, not a JWKS) is an outage: it keeps the
keys we had, and a worker that has none yet takes the last keys a sibling fetched
(``KeyCache``). A JWKS that was fetched and parsed is the issuer's word, whatever it holds: one
with no usable signing key (``{"keys": []}``, only ``use: enc`` or unsupported keys) withdraws
every key. The store drops them (so the verifier's cache stops vouching for the tokens they
signed), and the shared copy is removed, so a worker restarted later never takes them back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
import orjson

from extproc.identity.config import IdentityConfig, IssuerConfig
from extproc.identity.fetch import http_get_json
from extproc.identity.jwks import KeySourceError, parse_jwks
from extproc.identity.key_cache import KeyCache
from extproc.metrics import JWKS_LOADS

log = logging.getLogger("extproc.identity")

FetchJson = Callable[[str, float], Any]


@dataclass(slots=True)
class _IssuerKeys:
    keys: dict[str | None, jwt.PyJWK] = field(default_factory=dict)
    loaded_at: float | None = None
    last_attempt: float | None = None
    error: str | None = None


class KeyStore:
    def __init__(
        self,
        config: IdentityConfig,
        fetch_json: FetchJson = http_get_json,
        clock: Callable[[], float] = time.monotonic,
        cache: KeyCache | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._cache = cache
        self._wall = wall
        self._issuers = {issuer.name: issuer for issuer in config.issuers}
        self._fetch = fetch_json
        self._clock = clock
        self._state = {name: _IssuerKeys() for name in self._issuers}
        self._lock = threading.Lock()

    def load_all(self) -> dict[str, str | None]:
        """Load every issuer's keys. Returns issuer name → error text (None when loaded)."""
        return {name: self._load(name) for name in self._issuers}

    def refresh(self, issuer_name: str) -> bool:
        """Reload one issuer's keys unless it was tried too recently. True if keys changed."""
        state = self._state.get(issuer_name)
        if state is None:
            return False
        with self._lock:
            now = self._clock()
            if (
                state.last_attempt is not None
                and now - state.last_attempt < self._config.jwks_min_refresh_seconds
            ):
                return False
            state.last_attempt = now
        before = set(state.keys)
        return self._load(issuer_name) is None and set(state.keys) != before

    def refresh_stale(self) -> None:
        """Periodic refresh: reload keys older than ``jwks_max_age_seconds`` (or never loaded)."""
        now = self._clock()
        for name, state in self._state.items():
            if (
                state.loaded_at is None
                or now - state.loaded_at >= self._config.jwks_max_age_seconds
            ):
                self.refresh(name)

    def adopt(self, previous: KeyStore) -> list[str]:
        """Keep the keys ``previous`` held for issuers this store could not load and whose
        configuration did not change (a reload during an issuer's outage must not drop keys
        that still verify). An issuer whose JWKS this store loaded, even one withdrawing every
        key, adopts nothing: its answer stands. Returns the issuers adopted."""
        adopted = []
        for name, state in self._state.items():
            old = previous._state.get(name)
            if state.keys or state.loaded_at is not None or old is None or not old.keys:
                continue
            if previous._issuers.get(name) != self._issuers[name]:
                continue
            state.keys, state.loaded_at = old.keys, old.loaded_at
            adopted.append(name)
        return adopted

    def key(self, issuer_name: str, kid: str | None) -> jwt.PyJWK | None:
        keys = self._state[issuer_name].keys
        found = keys.get(kid)
        if found is None and kid is None and len(keys) == 1:
            return next(iter(keys.values()))
        return found

    def has_keys(self, issuer_name: str) -> bool:
        return bool(self._state[issuer_name].keys)

    def error(self, issuer_name: str) -> str | None:
        return self._state[issuer_name].error

    # -- loading --------------------------------------------------------------------------------
    def _load(self, issuer_name: str) -> str | None:
        issuer = self._issuers[issuer_name]
        state = self._state[issuer_name]
        try:
            document = self._jwks_document(issuer)
            keys = parse_jwks(document, issuer.name)
        except KeySourceError as exc:
            return self._failed(issuer, state, str(exc))
        if not keys:
            return self._withdrawn(issuer, state)
        if self._cache is not None and issuer.jwks_file is None:
            self._cache.save(issuer, document, self._wall())
        JWKS_LOADS.labels(issuer.name, "ok").inc()
        state.keys = keys  # swapped whole: readers never see a half-built set
        state.loaded_at = self._clock()
        state.error = None
        log.info(
            "issuer keys loaded", extra={"issuer": issuer.name, "kids": sorted(map(str, keys))}
        )
        return None

    def _withdrawn(self, issuer: IssuerConfig, state: _IssuerKeys) -> str:
        """The issuer answered with no usable signing key: it trusts none of its old keys any
        more, so neither do we, nor a worker that starts after this one."""
        reason = "the JWKS has no usable signing key"
        if self._cache is not None and issuer.jwks_file is None:
            self._cache.forget(issuer)
        JWKS_LOADS.labels(issuer.name, "withdrawn").inc()
        had = sorted(map(str, state.keys))
        state.keys = {}  # swapped whole; key() now finds nothing, cached tokens stop vouching
        state.loaded_at = self._clock()  # the issuer's answer: no outage to retry early
        state.error = reason
        log.warning(
            "issuer keys withdrawn: its JWKS has no usable signing key",
            extra={"issuer": issuer.name, "dropped_kids": had},
        )
        return reason

    def _failed(self, issuer: IssuerConfig, state: _IssuerKeys, reason: str) -> str:
        JWKS_LOADS.labels(issuer.name, "failed").inc()
        state.error = reason
        log.warning("issuer keys not loaded", extra={"issuer": issuer.name, "reason": reason})
        if not state.keys:
            self._take_shared(issuer, state)
        return reason

    def _take_shared(self, issuer: IssuerConfig, state: _IssuerKeys) -> None:
        """The keys a sibling worker last fetched, when this one has none. ``loaded_at`` stays
        unset, so the periodic refresh keeps trying the issuer itself."""
        if self._cache is None or issuer.jwks_file is not None:
            return
        cached = self._cache.load(issuer)
        if cached is None:
            return
        try:
            keys = parse_jwks(cached.document, issuer.name)
        except KeySourceError:
            keys = {}
        if not keys:
            return
        state.keys = keys
        JWKS_LOADS.labels(issuer.name, "shared").inc()
        log.warning(
            "issuer keys taken from another worker's last fetch",
            extra={
                "issuer": issuer.name,
                "kids": sorted(map(str, keys)),
                "age_seconds": round(max(0.0, self._wall() - cached.saved_at), 1),
            },
        )

    def _jwks_document(self, issuer: IssuerConfig) -> Any:
        timeout = self._config.http_timeout_seconds
        if issuer.jwks_file is not None:
            try:
                return orjson.loads(issuer.jwks_file.read_bytes())
            except OSError as exc:
                raise KeySourceError(f"cannot read {issuer.jwks_file}: {exc.strerror}") from None
            except orjson.JSONDecodeError:
                raise KeySourceError(f"{issuer.jwks_file} is not JSON") from None
        jwks_uri = issuer.jwks_uri
        if issuer.discovery_url is not None:
            document = self._fetch(issuer.discovery_url, timeout)
            if not isinstance(document, Mapping):
                raise KeySourceError(f"{issuer.discovery_url}: not a discovery document")
            if document.get("issuer") != issuer.issuer:
                # OIDC discovery: the document must name the issuer we trust, exactly.
                raise KeySourceError(
                    f"{issuer.discovery_url} names issuer {document.get('issuer')!r}, "
                    f"expected {issuer.issuer!r}"
                )
            jwks_uri = document.get("jwks_uri")
            if not isinstance(jwks_uri, str):
                raise KeySourceError(f"{issuer.discovery_url} has no jwks_uri")
        assert jwks_uri is not None
        return self._fetch(jwks_uri, timeout)
