"""The ``geo`` section of the config: its model, and its compile step → ``GeoConfig``.

```yaml
geo:
  database: geoip/country.mmdb       # a MaxMind country database
  country_field: country             # or registered_country: say which one you trust
  regions:
    eu: [DE, FR, NL]
    us: [US]
  networks:                          # checked first: private and internal ranges, overrides
    - {cidr: 10.0.0.0/8, region: eu}
```
"""

from __future__ import annotations

import functools
import ipaddress
import re
from pathlib import Path
from typing import Annotated

import pycountry
from pydantic import AfterValidator, Field, WithJsonSchema

from extproc.config.base import FilePath, SettingsModel, resolve_path, runtime_default
from extproc.config.problems import Problems
from extproc.geo.config import CountryField, GeoConfig, NetworkEntry
from extproc.geo.model import UNKNOWN_REGION

_REGION_PATTERN = "^[a-z][a-z0-9_-]{0,62}$"


@functools.cache
def _iso_country_codes() -> frozenset[str]:
    return frozenset(country.alpha_2 for country in pycountry.countries)


def is_country_code(code: str) -> bool:
    """Whether ``code`` (any case) is an ISO 3166-1 alpha-2 country code."""
    return code.upper() in _iso_country_codes()


def _country_code(code: str) -> str:
    if not is_country_code(code):
        raise ValueError(f"expected an ISO 3166-1 alpha-2 country code, got {code!r}")
    return code.upper()


def _region_name(name: str) -> str:
    if not re.fullmatch(_REGION_PATTERN, name):
        raise ValueError(f"region name {name!r} must be a lowercase identifier")
    if name == UNKNOWN_REGION:
        raise ValueError(f"{UNKNOWN_REGION!r} is reserved for addresses found nowhere")
    return name


def _cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError as exc:
        raise ValueError(f"invalid CIDR: {exc}") from None
    return value


CountryCode = Annotated[
    str,
    AfterValidator(_country_code),
    WithJsonSchema(
        {"type": "string", "pattern": "^[A-Za-z]{2}$", "description": "ISO 3166-1 alpha-2"}
    ),
]
"""An ISO 3166-1 alpha-2 country code (``DE``; ``de`` too), upper-cased."""

RegionName = Annotated[
    str,
    AfterValidator(_region_name),
    WithJsonSchema({"type": "string", "pattern": _REGION_PATTERN}),
]


class NetworkSettings(SettingsModel):
    """A CIDR range and what it maps to: a country (mapped to regions through the region table),
    a region (used as is), or both."""

    cidr: Annotated[str, AfterValidator(_cidr)] = Field(description="10.0.0.0/8, 2001:db8::/32")
    country: CountryCode | None = Field(None, description="the range's country")
    region: RegionName | None = Field(None, description="the range's region, one of `regions`")


class GeoSettings(SettingsModel):
    """From where: the client address Envoy computed → country → named regions. Set a
    ``database``, ``networks``, or both. An address found nowhere is in region ``unknown``."""

    database: FilePath | None = Field(None, description="a MaxMind country database (.mmdb)")
    country_field: CountryField = Field(
        runtime_default(GeoConfig, "country_field"),
        description="which country of a database record you trust",
    )
    verify_database: bool = Field(
        runtime_default(GeoConfig, "verify_database"),
        description="check the whole database's structure when it is opened",
    )
    regions: dict[RegionName, tuple[CountryCode, ...]] = Field(
        default_factory=dict,
        description="region name → its country codes; a country may be in several regions",
    )
    networks: tuple[NetworkSettings, ...] = Field(
        (), description="CIDR ranges checked before the database; the longest prefix wins"
    )


def compile_geo(settings: GeoSettings, base_dir: Path) -> GeoConfig:
    problems = Problems()
    if settings.database is None and not settings.networks:
        problems.add((), "set 'database' (a MaxMind database) or 'networks' (a CIDR table)")
    networks: list[NetworkEntry] = []
    for index, network in enumerate(settings.networks):
        if network.country is None and network.region is None:
            problems.add(("networks", index), "a network needs a 'country' or a 'region'")
        if network.region is not None and network.region not in settings.regions:
            problems.add(
                ("networks", index, "region"),
                f"unknown region {network.region!r} (defined: {_names(settings)})",
            )
        address_range = ipaddress.ip_network(network.cidr, strict=False)
        networks.append(NetworkEntry(address_range, network.country, network.region))
    problems.check()
    return GeoConfig(
        database=resolve_path(settings.database, base_dir) if settings.database else None,
        country_field=settings.country_field,
        networks=tuple(networks),
        regions={name: frozenset(codes) for name, codes in settings.regions.items()},
        verify_database=settings.verify_database,
    )


def _names(settings: GeoSettings) -> str:
    return ", ".join(settings.regions) or "none"
