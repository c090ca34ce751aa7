"""The config file as a whole: every problem at once with its line, no silent typos, strict
values, cross-section checks, and a valid file compiled into the runtime objects."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extproc.config.document import parse_document
from extproc.errors import ConfigError
from extproc.geo.writer import write_demo_database
from extproc.settings import config_schema, load_config, parse_config

SEVERAL_PROBLEMS = """\
version: 1
identity:
  issuers:
    - name: corp
      issuer: https://idp.example
      discovery: true
      audiences: [gateway]
      algorithms: [RS256, HS256]
      leeway: 5
geo:
  database: geo.mmdb
  regions:
    eu: [DE, XX]
policy:
  group_regions: {ml-eu: [eu, mars]}
  rules:
    - name: eu-only
      when: {source_region: mars, source_country: [de, XY]}
      effect: allow
    - name: eu-only
      effect: deny
      status: 200
upstreams:
  credentials:
    model: {env: EXTPROC_TEST_UNSET_CREDENTIAL}
masking:
  key_env: EXTPROC_TEST_UNSET_MASKING_KEY
  group_profiles: {contractors: strict}
  profiles:
    standard:
      actions: {emial: tokenize}
      custom:
        - {name: employee, pattern: '(unclosed'}
audit:
  key_file: absent.key
  when_full: drop
"""

VALID = """\
version: 1
identity:
  issuers:
    - {name: corp, issuer: "https://idp.example", discovery: true, audiences: gateway,
       algorithms: RS256}
geo:
  database: demo.mmdb
  regions: {eu: [de, FR], us: [US]}
  networks: [{cidr: 10.0.0.0/8, region: eu}]
policy:
  group_regions: {ml-eu: eu}
  rules:
    - {name: eu-team, when: {groups_any: ml-eu, source_region: eu}, effect: allow}
upstreams:
  credentials:
    model: {header: x-api-key, file: model.key}
masking:
  key_file: masking.key
  profiles: {standard: {}}
audit:
  key_file: audit.key
"""


def problems_of(text: str, tmp_path: Path) -> list[str]:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.reason == "\n".join(caught.value.errors)
    return [error.removeprefix(f"{tmp_path}/") for error in caught.value.errors]


def test_every_problem_of_a_file_is_reported_with_its_line_and_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EXTPROC_TEST_UNSET_CREDENTIAL", raising=False)
    monkeypatch.delenv("EXTPROC_TEST_UNSET_MASKING_KEY", raising=False)
    assert problems_of(SEVERAL_PROBLEMS, tmp_path) == [
        "config.yaml:8: identity.issuers[0].algorithms[1]: algorithm 'HS256' is not allowed "
        "(asymmetric only: ES256, ES384, ES512, EdDSA, PS256, PS384, PS512, RS256, RS384, RS512)",
        "config.yaml:9: identity.issuers[0]: unknown key 'leeway' (did you mean 'leeway_seconds'?)",
        "config.yaml:13: geo.regions.eu[1]: expected an ISO 3166-1 alpha-2 country code, got 'XX'",
        "config.yaml:15: policy.group_regions.ml-eu: unknown region 'mars' (defined: eu)",
        "config.yaml:18: policy.rules[0].when.source_country: expected an ISO 3166-1 alpha-2 "
        "country code or unknown, got 'XY'",
        "config.yaml:18: policy.rules[0].when.source_region: unknown region 'mars' "
        "(defined: eu, unknown)",
        "config.yaml:20: policy.rules[1].name: rule name 'eu-only' is used twice",
        "config.yaml:22: policy.rules[1].status: a deny status must be between 400 and 599",
        "config.yaml:25: upstreams.credentials.model.env: environment variable "
        "EXTPROC_TEST_UNSET_CREDENTIAL is not set or empty",
        "config.yaml:27: masking.key_env: environment variable EXTPROC_TEST_UNSET_MASKING_KEY "
        "is not set (the masking key must be at least 32 bytes)",
        "config.yaml:28: masking.group_profiles.contractors: no profile named 'strict' "
        "(defined: standard)",
        "config.yaml:31: masking.profiles.standard.actions.emial: this profile runs no detector "
        "'emial' (did you mean 'email'?)",
        "config.yaml:33: masking.profiles.standard.custom[0].pattern: invalid RE2 pattern: "
        "missing ): (unclosed",
        "config.yaml:36: audit.when_full: expected one of block, deny, got 'drop'",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "version: 1\npolcy: {}\n",
            [
                "config.yaml:1: (top level): missing required key 'identity'",
                "config.yaml:1: (top level): missing required key 'geo'",
                "config.yaml:1: (top level): missing required key 'policy'",
                "config.yaml:2: (top level): unknown key 'polcy' (did you mean 'policy'?)",
            ],
        ),
        (
            "identity: {issuers: []}\ngeo: {networks: [{cidr: 10.0.0.0/8, country: DE}]}\n"
            "policy:\n  rules:\n    - name: a\n      effect: allow\n      when: {methd: GET}\n",
            [
                "config.yaml:1: identity.issuers: expected at least 1 entry, got none",
                "config.yaml:7: policy.rules[0].when: unknown key 'methd' (did you mean 'method'?)",
            ],
        ),
    ],
)
def test_a_typo_in_a_key_is_an_error_that_names_the_key_meant(
    text: str, expected: list[str], tmp_path: Path
) -> None:
    assert problems_of(text, tmp_path) == expected


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("regions: {eu: [XX]}", "geo.regions.eu[0]: expected an ISO 3166-1 alpha-2 country code"),
        ("regions: {eu: [DEU]}", "got 'DEU'"),
        ("networks: [{cidr: 10.0.0.0/8, country: XX}]", "geo.networks[0].country: expected an ISO"),
    ],
)
def test_a_country_code_outside_iso_3166_is_refused(
    snippet: str, expected: str, tmp_path: Path
) -> None:
    text = f"identity: {{}}\ngeo:\n  {snippet}\npolicy: {{}}\n"
    assert any(expected in problem for problem in problems_of(text, tmp_path))


def test_a_bad_re2_pattern_is_one_line_and_nothing_reaches_stderr(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    text = (
        "masking:\n  key_file: k\n  profiles:\n    p:\n      block:\n"
        "        - {name: b, pattern: '(a)\\1'}\n"
    )
    (tmp_path / "k").write_text("k" * 40)
    problems = [p for p in problems_of(text, tmp_path) if "RE2" in p]
    assert problems == [
        "config.yaml:6: masking.profiles.p.block[0].pattern: invalid RE2 pattern: "
        "invalid escape sequence: \\1"
    ]
    assert capfd.readouterr().err == ""  # RE2 logs through C++ to fd 2 unless told not to


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("policy: {}\npolicy: {}\n", 'config.yaml:2: invalid YAML: found duplicate key "policy"'),
        ("identity: [unclosed\n", "config.yaml:2: invalid YAML"),
        ("- a list\n", "config.yaml:1: (top level): expected a mapping, got a list"),
    ],
)
def test_broken_yaml_and_duplicate_keys_are_refused(
    text: str, expected: str, tmp_path: Path
) -> None:
    assert expected in problems_of(text, tmp_path)[0]


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("enforce: 'false'", "policy.enforce: expected true or false, got 'false'"),
        ("enforce: 0", "policy.enforce: expected true or false, got the number 0"),
        ("rules: [{name: a, effect: deny, status: '403'}]", "expected an integer, got '403'"),
        ("rules: [{name: 7, effect: deny}]", "rules[0].name: expected a string, got the number 7"),
        ("rules: {name: a}", "policy.rules: expected a list, got a mapping"),
        ("rules: [{name: a, effect: deny, when: {method: [GET, 5]}}]", "method[1]: expected a"),
    ],
)
def test_values_are_never_coerced(snippet: str, expected: str, tmp_path: Path) -> None:
    text = f"identity: {{}}\ngeo: {{}}\npolicy: {{{snippet}}}\n"
    assert any(expected in problem for problem in problems_of(text, tmp_path))


def test_a_valid_file_is_compiled_into_the_runtime_config(tmp_path: Path) -> None:
    write_demo_database(tmp_path / "demo.mmdb")
    for name in ("masking.key", "audit.key"):
        (tmp_path / name).write_text("s" * 40 + "\n")
    (tmp_path / "model.key").write_text("model-secret\n")
    config = parse_config(VALID.encode(), tmp_path / "config.yaml")
    assert len(config.revision) == 12
    issuer = config.identity.issuers[0]
    assert issuer.audiences == ("gateway",)
    assert issuer.discovery_url == "https://idp.example/.well-known/openid-configuration"
    assert issuer.leeway_seconds == 30.0
    assert config.geo.database == tmp_path / "demo.mmdb"
    assert config.geo.regions == {"eu": frozenset({"DE", "FR"}), "us": frozenset({"US"})}
    assert config.geo.networks[0].region == "eu"
    assert config.policy.group_regions == {"ml-eu": frozenset({"eu"})}
    assert [rule.name for rule in config.policy.rules] == ["eu-team"]
    assert config.policy.default.effect == "deny"
    credential = config.upstreams.credentials["model"]
    assert (credential.header, credential.value) == ("x-api-key", "model-secret")
    assert config.masking is not None
    assert config.masking.key == b"s" * 40
    assert config.masking.default_profile == "standard"
    assert config.audit is not None
    assert config.audit.directory == tmp_path / "audit"
    assert config.audit.writer.when_full == "block"


def _schema_keys(node: Any) -> set[str]:
    keys: set[str] = set()
    if isinstance(node, dict):
        keys.update(node.get("properties", {}))
        for value in node.values():
            keys |= _schema_keys(value)
    elif isinstance(node, list):
        for value in node:
            keys |= _schema_keys(value)
    return keys


CONFIG_KEYS = sorted(_schema_keys(config_schema()))
scalars = (
    st.none() | st.booleans() | st.integers(-5, 5000) | st.floats(-1, 1e4) | st.text(max_size=6)
)
junk = st.recursive(
    scalars | st.sampled_from(["eu", "DE", "XX", "RS256", "allow", "(x", "$.a", "10.0.0.0/8"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(CONFIG_KEYS) | st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)
sections = st.fixed_dictionaries(
    {},
    optional={
        name: junk
        for name in ("version", "identity", "geo", "policy", "upstreams", "masking", "audit")
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sections)
def test_any_input_gives_readable_located_errors_and_never_crashes(data: dict[str, Any]) -> None:
    assert_readable(data)


def assert_readable(data: Any) -> None:
    """Load ``data`` as a config file: either it loads, or every error is one located,
    readable line (JSON is YAML, so any structure can be written as a config file)."""
    try:
        parse_config(json.dumps(data).encode(), Path("fuzz/config.yaml"))
    except ConfigError as error:
        errors = error.errors
    else:
        errors = ()
    for line in errors:
        assert re.match(r"fuzz/config\.yaml:\d+: \S[^:]*: \S", line), line
        for noise in ("Input should", "Value error", "pydantic", "https://"):
            assert noise not in line, line


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


VALID_DATA = json.loads(json.dumps(parse_document(VALID, file="v").data))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_valid_file_with_any_one_part_broken_gives_readable_errors(data: st.DataObject) -> None:
    config = copy.deepcopy(VALID_DATA)
    path = data.draw(st.sampled_from(_paths(config)[1:]))
    parent = config
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = data.draw(junk)
    assert_readable(config)


def _mask_with(profile: str, text: str, tmp_path: Path) -> str:
    from extproc.masking.engine import Masker

    write_demo_database(tmp_path / "demo.mmdb")
    for name in ("masking.key", "audit.key"):
        (tmp_path / name).write_text("s" * 40 + "\n")
    (tmp_path / "model.key").write_text("model-secret\n")
    config_text = VALID.replace("profiles: {standard: {}}", f"profiles: {{standard: {profile}}}")
    config = parse_config(config_text.encode(), tmp_path / "config.yaml")
    assert config.masking is not None
    masker = Masker(config.masking.profiles["standard"], config.masking.key)
    return masker.mask_text(text, "request")


def test_a_profile_names_the_countries_whose_national_phone_formats_it_reads(
    tmp_path: Path,
) -> None:
    spanish = "llámame al 612 34 56 78 mañana"
    assert _mask_with("{}", spanish, tmp_path) == spanish  # not among the default regions
    masked = _mask_with("{phone_regions: [ES, DE]}", spanish, tmp_path)
    assert masked == "llámame al [REDACTED:PHONE] mañana"


def test_an_unknown_phone_region_is_a_located_config_error(tmp_path: Path) -> None:
    text = VALID.replace("profiles: {standard: {}}", "profiles: {standard: {phone_regions: [ZZ]}}")
    problems = problems_of(text, tmp_path)
    assert any("masking.profiles.standard.phone_regions" in p and "'ZZ'" in p for p in problems)
