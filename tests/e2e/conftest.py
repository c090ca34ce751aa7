"""One gateway for the end-to-end tests of a module: the real Envoy, real worker processes, a
real OIDC discovery/JWKS server and the real MaxMind test database (or, on a checkout without
the shared test data, a database generated with the same addresses)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from extproc.geo.writer import CountryRecord, write_country_database
from tests.conftest import SHARED_GEOIP
from tests.e2e.harness import Gateway

# Addresses of MaxMind's GeoIP2-Country-Test database: (country, registered country).
TEST_NETWORKS = {
    "89.160.20.112/28": ("SE", "DE"),
    "81.2.69.160/27": ("GB", "US"),
    "216.160.83.56/29": ("US", "GB"),
    "2a02:cf40::/29": ("NO", "NO"),
}

E2E_CONFIG = """
version: 1
identity:
  jwks_min_refresh_seconds: 0.5
  issuers:
    - name: e2e
      issuer: "{issuer_url}"
      discovery: true
      audiences: [extproc-e2e]
      algorithms: [RS256, ES256]
      leeway_seconds: 5
      group_claims: [groups, realm_access.roles]
      location_claim: region
geo:
  database: "{database}"
  country_field: country
  regions:
    eu: [DE, FR, SE, NL, "NO"]
    us: [US]
    uk: [GB]
  networks:
    - {cidr: 192.0.2.0/24, country: DE}
    - {cidr: 198.51.100.0/24, country: US}
policy:
  group_regions:
    ml-eu: [eu]
    ml-us: [us]
  rules:
    - name: no-red-tenant
      when: {headers: {x-tenant: red}}
      effect: deny
      reason: the red tenant may not use this gateway
    - name: unknown-source
      when: {source_region: unknown}
      effect: deny
      reason: the client address maps to no known region
    - name: declared-region-mismatch
      when: {declared_region_matches_source: false}
      effect: deny
      reason: the declared region differs from the source region
    - name: eu-team-to-eu
      when: {groups_any: [ml-eu], source_region: eu, target_region: eu}
      effect: allow
      reason: ml-eu may reach eu models from the EU
    - name: us-team-to-us
      when: {groups_any: [ml-us], source_region: us, target_region: us}
      effect: allow
      reason: ml-us may reach us models from the US
    - name: target-region-not-allowed
      when: {target_region_allowed_for_groups: false}
      effect: deny
      reason: none of the caller's groups may reach this target region
    - name: source-region-not-allowed
      when: {target_region_allowed_for_groups: true}
      effect: deny
      reason: the caller's groups may not reach this target from this source region
  default: {effect: deny, reason: no rule allows this request}
upstreams:
  credentials:
    model-eu: {env: EXTPROC_E2E_MODEL_KEY}
    model-us: {env: EXTPROC_E2E_MODEL_KEY}
masking:
  key_env: EXTPROC_E2E_MASKING_KEY
  default_profile: standard
  profiles:
    standard:
      actions: {default: redact, email: tokenize}
      block:
        - name: reveal-instructions
          pattern: '(?i)ignore (all )?previous instructions'
          reason: prompt injection attempts are blocked
audit:
  directory: audit
  key_env: EXTPROC_E2E_AUDIT_KEY
  flush_interval_ms: 10
"""


def geoip_database(directory: Path) -> Path:
    shared = SHARED_GEOIP / "GeoIP2-Country-Test.mmdb"
    if shared.is_file():
        return shared
    generated = directory / "country-test.mmdb"
    write_country_database(
        generated,
        {
            cidr: CountryRecord(country, registered)
            for cidr, (country, registered) in TEST_NETWORKS.items()
        },
    )
    return generated


def e2e_config(database: Path) -> str:
    return E2E_CONFIG.replace("{database}", str(database))


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("gateway")
    gateway = Gateway(root, config_text=e2e_config(geoip_database(root)))
    try:
        gateway.start()
        yield gateway
    finally:
        gateway.stop()
