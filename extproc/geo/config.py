"""Typed geo configuration (built by extproc.config from the YAML file)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Literal

CountryField = Literal["country", "registered_country"]


@dataclass(frozen=True, slots=True)
class NetworkEntry:
    """A CIDR range (private, internal, or an override) and what it maps to.

    At least one of ``country`` and ``region`` is set. A ``region`` here is used as is; a
    ``country`` alone is mapped to regions through the region table.
    """

    network: IPv4Network | IPv6Network
    country: str | None = None
    region: str | None = None


@dataclass(frozen=True, slots=True)
class GeoConfig:
    """``regions`` maps a region name to its ISO 3166-1 alpha-2 country codes (upper case);
    config order is kept and a country may be in several regions."""

    database: Path | None
    country_field: CountryField = "country"
    networks: tuple[NetworkEntry, ...] = ()
    regions: Mapping[str, frozenset[str]] = field(default_factory=dict)
    verify_database: bool = True
