"""Client address → country → named regions.

The CIDR table is checked first (longest prefix wins), then the MaxMind database, reading the
country field the config trusts. An address found in neither, or one that does not parse, has
no country and no region (``unknown``); rules must handle that explicitly. A database that
cannot be opened or whose tree or data section is corrupt is refused when it is opened
(``extproc.geo.maxmind``, at start and at each reload), never discovered mid-request.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Protocol

from extproc.geo.config import GeoConfig, NetworkEntry
from extproc.geo.model import Location

_CACHE_LIMIT = 65_536
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class CountryDatabase(Protocol):
    """A country lookup by address (the MaxMind reader, or a test's dict)."""

    def country(self, ip: IPAddress) -> str | None: ...

    def close(self) -> None: ...


class GeoLocator:
    """``database`` is opened by the caller (``extproc.geo.maxmind``); the locator only reads."""

    def __init__(self, config: GeoConfig, database: CountryDatabase | None = None) -> None:
        self._regions_by_country = _regions_by_country(config.regions)
        self._table = _NetworkTable(config.networks)
        self._database = database
        self._cache: dict[str, Location] = {}

    def regions_of(self, country: str) -> tuple[str, ...]:
        return self._regions_by_country.get(country, ())

    def locate(self, address: str) -> Location:
        cached = self._cache.get(address)
        if cached is not None:
            return cached
        location = self._locate(address)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[address] = location
        return location

    def _locate(self, address: str) -> Location:
        ip = _parse(address)
        if ip is None:
            return Location(address, None, (), "none")
        entry = self._table.lookup(ip)
        if entry is not None:
            if entry.region is not None:
                regions: tuple[str, ...] = (entry.region,)
                if entry.country is not None:
                    regions += tuple(r for r in self.regions_of(entry.country) if r != entry.region)
            else:
                regions = self.regions_of(entry.country or "")
            return Location(address, entry.country, regions, "network_table")
        country = self._database.country(ip) if self._database is not None else None
        if country is None:
            return Location(address, None, (), "none")
        return Location(address, country, self.regions_of(country), "database")

    def close(self) -> None:
        if self._database is not None:
            self._database.close()
            self._database = None


def _parse(address: str) -> IPAddress | None:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _regions_by_country(regions: Mapping[str, frozenset[str]]) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for region, countries in regions.items():
        for country in countries:
            out[country] = (*out.get(country, ()), region)
    return out


class _NetworkTable:
    """Longest-prefix match: one dict per (IP version, prefix length), longest first."""

    def __init__(self, entries: tuple[NetworkEntry, ...]) -> None:
        buckets: dict[tuple[int, int], dict[int, NetworkEntry]] = {}
        for entry in entries:
            key = (entry.network.version, entry.network.prefixlen)
            buckets.setdefault(key, {}).setdefault(int(entry.network.network_address), entry)
        self._buckets = sorted(buckets.items(), key=lambda item: -item[0][1])

    def lookup(self, ip: IPAddress) -> NetworkEntry | None:
        if not self._buckets:
            return None
        value = int(ip)
        bits = ip.max_prefixlen
        for (version, prefix), networks in self._buckets:
            if version != ip.version:
                continue
            entry = networks.get(value >> (bits - prefix) << (bits - prefix))
            if entry is not None:
                return entry
        return None
