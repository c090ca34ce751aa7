"""The MaxMind database reader: the I/O edge of geo.

A database that cannot be opened, whose tree or data section is corrupt, or which holds no
country data is refused when it is opened (at start and at each reload), never discovered
mid-request.

The open database is a private copy in memory, read once when it is opened: the file on disk
may be replaced or overwritten in place (``cp new.mmdb demo.mmdb``, even ``echo junk >``)
without changing what the service reads. A memory map of the file itself would see such a
write at once, and the last good database would then answer from a corrupt tree until the
next good one loads. On Linux the copy lives in an anonymous memory file mapped by the C
extension (its lookups stay as fast as from the file); elsewhere the pure-Python reader holds
it (``MODE_MEMORY``). Each worker holds its own copy: the database's size per worker.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import logging
import os
from pathlib import Path
from typing import Any

import maxminddb

from extproc.errors import Code, GeoError
from extproc.geo.config import CountryField, GeoConfig
from extproc.geo.locator import GeoLocator

log = logging.getLogger("extproc.geo")

_COUNTRY_TYPES = ("country", "city", "enterprise", "extproc")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def open_locator(config: GeoConfig) -> GeoLocator:
    """The locator of a geo config, with its database opened and verified."""
    database = None
    if config.database is not None:
        database = MaxMindCountries(
            config.database, country_field=config.country_field, verify=config.verify_database
        )
    return GeoLocator(config, database)


class MaxMindCountries:
    """Country codes from one MaxMind database, read from the field the config trusts."""

    def __init__(self, path: Path, *, country_field: CountryField, verify: bool) -> None:
        self._field = country_field
        self._reader: Any = open_database(path, verify=verify)

    def country(self, ip: IPAddress) -> str | None:
        if self._reader is None:
            return None
        try:
            record = self._reader.get(ip)
        except (maxminddb.InvalidDatabaseError, ValueError) as exc:
            # The library's words describe the file, not the request: logs only.
            log.error(
                "GeoIP lookup failed", extra={"reason": str(exc), "error_type": type(exc).__name__}
            )
            raise GeoError("GeoIP lookup failed", code=Code.GEO_LOOKUP_FAILED) from None
        if not isinstance(record, dict):
            return None
        field = record.get(self._field)
        code = field.get("iso_code") if isinstance(field, dict) else None
        return code.upper() if isinstance(code, str) and len(code) == 2 else None

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


def open_database(path: Path, *, verify: bool) -> Any:
    """Open a MaxMind database, refusing one that is missing, corrupt or has no country data."""
    try:
        reader = _open_private_copy(path)
    except FileNotFoundError:
        raise GeoError(f"GeoIP database {path} does not exist") from None
    except (maxminddb.InvalidDatabaseError, OSError, ValueError) as exc:
        raise GeoError(f"GeoIP database {path} is not a valid MaxMind database: {exc}") from None
    if verify:
        try:
            for _network, _record in reader:
                pass
        except (maxminddb.InvalidDatabaseError, ValueError, KeyError) as exc:
            reader.close()
            raise GeoError(f"GeoIP database {path} is corrupt: {exc}") from None
    database_type = str(reader.metadata().database_type)
    if not any(kind in database_type.lower() for kind in _COUNTRY_TYPES):
        reader.close()
        raise GeoError(
            f"GeoIP database {path} is of type {database_type!r}, which has no country data"
        )
    return reader


def _open_private_copy(path: Path) -> Any:
    """A reader of the database as it is now, in this process's memory (see the module's doc)."""
    if not hasattr(os, "memfd_create") or importlib.util.find_spec("maxminddb.extension") is None:
        return maxminddb.open_database(str(path), maxminddb.MODE_MEMORY)
    data = memoryview(path.read_bytes())
    fd = os.memfd_create("extproc-geoip", os.MFD_CLOEXEC)
    copy = f"/proc/self/fd/{fd}"
    try:
        while data:
            data = data[os.write(fd, data) :]
        return maxminddb.open_database(copy, maxminddb.MODE_MMAP_EXT)
    except maxminddb.InvalidDatabaseError as exc:  # name the file, not the copy
        raise maxminddb.InvalidDatabaseError(str(exc).replace(copy, str(path))) from None
    finally:
        os.close(fd)  # the reader's own mapping keeps the copy while it is open
