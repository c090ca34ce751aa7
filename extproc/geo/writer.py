"""Write small MaxMind databases in the GeoIP2-Country record shape.

``extproc up`` writes its demo database with this, and tests on a checkout without MaxMind's own
test databases build equivalents. The output is an IPv6 tree with IPv4 reachable through the
IPv4-mapped subtree, like MaxMind's own databases.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mmdb_writer import MMDBWriter
from netaddr import IPSet

_CONTINENTS = {"DE": "EU", "FR": "EU", "SE": "EU", "GB": "EU", "NO": "EU", "NL": "EU",
               "US": "NA", "JP": "AS", "CN": "AS", "PH": "AS"}  # fmt: skip

DEMO_NETWORKS: Mapping[str, str] = {
    "192.0.2.0/24": "DE",
    "198.51.100.0/24": "US",
    "203.0.113.0/24": "JP",
    "2001:db8::/32": "DE",
}


@dataclass(frozen=True, slots=True)
class CountryRecord:
    country: str
    registered_country: str | None = None


def write_country_database(
    path: Path,
    networks: Mapping[str, CountryRecord | str],
    database_type: str = "extproc-Country",
) -> Path:
    writer = MMDBWriter(
        ip_version=6,
        database_type=database_type,
        languages=["en"],
        description={"en": "extproc generated country database"},
        ipv4_compatible=True,
    )
    for cidr, value in networks.items():
        record = value if isinstance(value, CountryRecord) else CountryRecord(value)
        registered = record.registered_country or record.country
        network = ipaddress.ip_network(cidr, strict=False)
        writer.insert_network(
            IPSet([str(network)]),
            {
                "country": {"iso_code": record.country},
                "registered_country": {"iso_code": registered},
                "continent": {"code": _CONTINENTS.get(record.country, "EU")},
            },
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    writer.to_db_file(str(path))
    return path


def write_demo_database(path: Path) -> Path:
    """192.0.2.0/24 DE, 198.51.100.0/24 US, 203.0.113.0/24 JP, 2001:db8::/32 DE."""
    return write_country_database(path, DEMO_NETWORKS)
