"""Client address → country → regions, with MaxMind's test databases and generated ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from extproc.config.document import parse_document
from extproc.config.validation import load_section
from extproc.errors import ConfigError, GeoError
from extproc.geo.config import GeoConfig
from extproc.geo.locator import GeoLocator
from extproc.geo.maxmind import open_locator
from extproc.geo.settings import GeoSettings, compile_geo
from extproc.geo.writer import CountryRecord, write_country_database, write_demo_database


def geo_config(text: str, base: Path) -> GeoConfig:
    return load_section(
        parse_document(text, file="geo.yaml"),
        "geo",
        GeoSettings,
        lambda settings: compile_geo(settings, base),
    )


def locator(text: str, base: Path) -> GeoLocator:
    return open_locator(geo_config(text, base))


@pytest.mark.parametrize(
    ("address", "country", "registered"),
    [
        ("81.2.69.160", "GB", "US"),
        ("2.125.160.216", "GB", "FR"),
        ("89.160.20.112", "SE", "DE"),
        ("216.160.83.56", "US", "GB"),
        ("2a02:cf40::1", "NO", "NO"),
        ("2001:218::1", "JP", "JP"),
    ],
)
def test_the_configured_country_field_decides_the_country(
    shared_geoip: Path, address: str, country: str, registered: str
) -> None:
    database = shared_geoip / "GeoIP2-Country-Test.mmdb"
    by_country = open_locator(GeoConfig(database=database, country_field="country"))
    by_registered = open_locator(GeoConfig(database=database, country_field="registered_country"))
    assert by_country.locate(address).country == country
    assert by_registered.locate(address).country == registered


@pytest.mark.parametrize("address", ["1.1.1.1", "10.0.0.1", "127.0.0.1", "not-an-ip", ""])
def test_addresses_found_nowhere_are_unknown(shared_geoip: Path, address: str) -> None:
    found = open_locator(GeoConfig(database=shared_geoip / "GeoIP2-Country-Test.mmdb")).locate(
        address
    )
    assert (found.country, found.regions, found.region) == (None, (), "unknown")


def test_the_demo_database_maps_the_documentation_ranges(tmp_path: Path) -> None:
    database = write_demo_database(tmp_path / "demo.mmdb")
    geo = open_locator(GeoConfig(database=database))
    assert geo.locate("192.0.2.10").country == "DE"
    assert geo.locate("198.51.100.7").country == "US"
    assert geo.locate("203.0.113.200").country == "JP"
    assert geo.locate("2001:db8::7").country == "DE"
    assert geo.locate("::ffff:198.51.100.7").country == "US"
    assert geo.locate("192.0.3.1").country is None


def test_the_network_table_is_checked_first_and_the_longest_prefix_wins(tmp_path: Path) -> None:
    database = write_country_database(tmp_path / "c.mmdb", {"10.0.0.0/8": "US"})
    geo = locator(
        f"""
geo:
  database: {database}
  regions: {{eu: [DE, FR], us: [US], corp: [NL]}}
  networks:
    - {{cidr: 10.0.0.0/8, region: corp}}
    - {{cidr: 10.1.0.0/16, country: FR}}
""",
        tmp_path,
    )
    assert geo.locate("10.9.9.9").regions == ("corp",)
    found = geo.locate("10.1.2.3")
    assert (found.country, found.regions, found.source) == ("FR", ("eu",), "network_table")


def test_a_country_in_two_regions_keeps_the_config_order(tmp_path: Path) -> None:
    database = write_country_database(tmp_path / "c.mmdb", {"192.0.2.0/24": CountryRecord("DE")})
    geo = locator(
        f"geo:\n  database: {database}\n  regions:\n    emea: [DE, AE]\n    eu: [de, FR]\n",
        tmp_path,
    )
    assert geo.locate("192.0.2.1").regions == ("emea", "eu")
    assert geo.regions_of("DE") == ("emea", "eu")


@pytest.mark.parametrize(
    "name",
    [
        "GeoIP2-City-Test-Invalid-Node-Count.mmdb",
        "MaxMind-DB-test-broken-pointers-24.mmdb",
        "MaxMind-DB-test-broken-search-tree-24.mmdb",
    ],
)
def test_corrupt_databases_are_refused_at_load_naming_the_file(
    shared_geoip: Path, name: str
) -> None:
    with pytest.raises(GeoError) as caught:
        open_locator(GeoConfig(database=shared_geoip / name))
    assert name in caught.value.reason


def test_a_missing_database_is_refused(tmp_path: Path) -> None:
    with pytest.raises(GeoError, match="does not exist"):
        open_locator(GeoConfig(database=tmp_path / "absent.mmdb"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "geo:\n  networks:\n    - {cidr: 10.0.0.0/33, region: eu}\n",
            "geo.yaml:3: geo.networks[0].cidr: invalid CIDR",
        ),
        (
            "geo:\n  regions: {eu: [DEU]}\n  networks: []\n",
            "expected an ISO 3166-1 alpha-2 country code",
        ),
        ("geo:\n  regions: {unknown: [DE]}\n  networks: []\n", "'unknown' is reserved"),
        ("geo:\n  networks:\n    - {cidr: 10.0.0.0/8, region: mars}\n", "unknown region 'mars'"),
        (
            "geo:\n  country_field: city\n  networks: [{cidr: 10.0.0.0/8, country: DE}]\n",
            "expected one of country, registered_country",
        ),
        ("geo:\n  regions: {}\n", "set 'database'"),
    ],
)
def test_geo_config_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        geo_config(text, Path("."))
    assert message in caught.value.reason


@pytest.mark.parametrize("how", ["junk", "another database", "truncated"])
def test_an_open_database_does_not_change_when_its_file_is_overwritten_in_place(
    tmp_path: Path, how: str
) -> None:
    database = write_demo_database(tmp_path / "demo.mmdb")
    geo = open_locator(GeoConfig(database=database))
    inode = database.stat().st_ino
    if how == "junk":  # echo junk > demo.mmdb
        database.write_text("junk\n")
    elif how == "another database":  # cp new.mmdb demo.mmdb: the same file, rewritten
        other = write_country_database(tmp_path / "new.mmdb", {"192.0.2.0/24": "FR"})
        database.write_bytes(other.read_bytes())
    else:  # a copy caught half-way
        database.write_bytes(database.read_bytes()[:100])
    assert database.stat().st_ino == inode
    assert geo.locate("192.0.2.10").country == "DE"
    assert geo.locate("198.51.100.7").country == "US"


def test_a_failed_lookup_gives_the_client_a_fixed_reason_and_the_log_the_details(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import maxminddb

    from extproc.errors import Code
    from extproc.geo.maxmind import MaxMindCountries

    database = write_demo_database(tmp_path / "demo.mmdb")
    countries = MaxMindCountries(database, country_field="country", verify=True)

    class Corrupt:
        def get(self, _ip: object) -> None:
            raise maxminddb.InvalidDatabaseError("The MaxMind DB file's search tree is corrupt")

    countries._reader = Corrupt()
    geo = GeoLocator(GeoConfig(database=database), countries)
    with pytest.raises(GeoError) as caught:
        geo.locate("192.0.2.10")
    assert caught.value.code == Code.GEO_LOOKUP_FAILED
    assert caught.value.reason == "GeoIP lookup failed"
    assert any("search tree is corrupt" in str(vars(record)) for record in caplog.records)


def test_a_corrupt_file_is_named_not_the_private_copy(tmp_path: Path) -> None:
    database = tmp_path / "demo.mmdb"
    database.write_text("junk\n")
    with pytest.raises(GeoError) as caught:
        open_locator(GeoConfig(database=database))
    assert str(database) in caught.value.reason
    assert "/proc/self/fd" not in caught.value.reason
