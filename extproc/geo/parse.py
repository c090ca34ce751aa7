"""The ``geo`` section of the config → ``GeoConfig``."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from extproc.config.node import Node
from extproc.geo.config import GeoConfig, NetworkEntry
from extproc.geo.model import UNKNOWN_REGION

_COUNTRY = re.compile(r"^[A-Za-z]{2}$")
_REGION = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_KEYS = ("database", "country_field", "verify_database", "regions", "networks")


def parse_geo_config(node: Node, base_dir: Path) -> GeoConfig:
    node.reject_unknown(_KEYS)
    regions: dict[str, frozenset[str]] = {}
    for name, child in node.child("regions", {}).items():
        if not _REGION.match(name):
            raise child.error(f"region name {name!r} must be a lowercase identifier")
        if name == UNKNOWN_REGION:
            raise child.error(f"{UNKNOWN_REGION!r} is reserved for addresses found nowhere")
        regions[name] = frozenset(_country(element) for element in child.elements())
    networks = tuple(
        _network(element, regions) for element in node.child("networks", []).elements()
    )
    database = node.path_value("database", base_dir, None)
    if database is None and not networks:
        raise node.error("set 'database' (a MaxMind database) or 'networks' (a CIDR table)")
    return GeoConfig(
        database=database,
        country_field=node.choice(  # type: ignore[arg-type]
            "country_field", ("country", "registered_country"), "country"
        ),
        networks=networks,
        regions=regions,
        verify_database=node.boolean("verify_database", True),
    )


def _country(node: Node) -> str:
    if not isinstance(node.value, str) or not _COUNTRY.match(node.value):
        raise node.error(f"expected an ISO 3166-1 alpha-2 country code, got {node.value!r}")
    return node.value.upper()


def _network(node: Node, regions: dict[str, frozenset[str]]) -> NetworkEntry:
    node.reject_unknown(("cidr", "country", "region"))
    cidr = node.string("cidr")
    try:
        network = ipaddress.ip_network(cidr, strict=False)
    except ValueError as exc:
        raise node.child("cidr").error(f"invalid CIDR: {exc}") from None
    country = _country(node.child("country")) if node.has("country") else None
    region = node.optional_string("region")
    if country is None and region is None:
        raise node.error("a network needs a 'country' or a 'region'")
    if region is not None and region not in regions:
        raise node.child("region").error(f"unknown region {region!r}")
    return NetworkEntry(network=network, country=country, region=region)
