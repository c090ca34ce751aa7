"""The Grafana dashboard in deploy/ queries only metrics that exist: extproc's own (from its
registry) and Envoy's (from a running Envoy's /stats/prometheus)."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

import extproc.metrics  # noqa: F401 - registers the services' metrics
from tests.e2e.harness import Gateway

pytestmark = pytest.mark.e2e

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana-dashboard.json"
NAME = re.compile(r"\b((?:extproc|envoy)_[a-z0-9_]+)\b")
SUFFIXES = ("", "_total", "_bucket", "_sum", "_count")
# Envoy creates these ext_authz counters on first use (an error, a failure-mode allow); their
# siblings ok and denied prove the family is exported under this name.
CREATED_ON_FIRST_USE = {
    "envoy_cluster_ext_authz_error",
    "envoy_cluster_ext_authz_failure_mode_allowed",
}


def queried_metrics() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert expressions
    # Label names (in "by (...)" and "{...}") are not metrics.
    bare = [re.sub(r"by \([^)]*\)|\{[^}]*\}", "", expr) for expr in expressions]
    return {name for expr in bare for name in NAME.findall(expr)}


def extproc_metrics() -> set[str]:
    names = set()
    for family in REGISTRY.collect():
        names.update(family.name + suffix for suffix in SUFFIXES)
    return names


def test_every_extproc_metric_the_dashboard_queries_is_exported() -> None:
    wanted = {name for name in queried_metrics() if name.startswith("extproc_")}
    assert wanted
    assert wanted <= extproc_metrics(), sorted(wanted - extproc_metrics())


def test_every_envoy_metric_the_dashboard_queries_exists_in_envoy(gateway: Gateway) -> None:
    gateway.request(token=gateway.token(), source="89.160.20.112")  # allowed
    gateway.request(token=gateway.token(), source="198.51.100.7")  # denied by authz
    gateway.request(token=None, source="89.160.20.112")  # denied: no token
    url = f"http://127.0.0.1:{gateway.admin_port}/stats/prometheus"
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode()
    exported = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    wanted = {name for name in queried_metrics() if name.startswith("envoy_")}
    assert wanted
    assert wanted - CREATED_ON_FIRST_USE <= exported, sorted(wanted - exported)
    assert {"envoy_cluster_ext_authz_ok", "envoy_cluster_ext_authz_denied"} <= exported
