"""The compose `monitoring` profile: Prometheus scrapes the services, Grafana shows a dashboard of real metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from alerter.metrics import AlerterMetrics
from publisher.metrics import PublisherMetrics
from tests.containers import DASHBOARD, REPO, compose_config, dashboard_queries, promql_metric_names, queryable_names

DEPLOY = REPO / "deploy"


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return compose_config(profiles=("monitoring",))


@pytest.fixture(scope="module")
def registered() -> set[str]:
    """Every series name the publisher and the alerter register, read from their own metric classes."""
    publisher = CollectorRegistry()
    PublisherMetrics(publisher, device_series_limit=10_000)
    return queryable_names(publisher.collect()) | queryable_names(AlerterMetrics().registry.collect())


def _bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts."""
    return {v["target"]: Path(v["source"]) for v in service["volumes"] if v["type"] == "bind"}


def test_prometheus_scrapes_each_service_on_its_metrics_port(config: dict[str, Any]) -> None:
    """Each scrape target is a compose service and the METRICS_PORT that service is given."""
    mounts = _bind_mounts(config["services"]["prometheus"])
    prometheus_yml = yaml.safe_load(mounts["/etc/prometheus/prometheus.yml"].read_text())
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in prometheus_yml["scrape_configs"]}
    for service in ("gpu-temp-publisher", "gpu-temp-alert"):
        port = config["services"][service]["environment"]["METRICS_PORT"]
        assert targets[service] == [f"{service}:{port}"]
    assert targets["redpanda"] == ["redpanda-1:9644", "redpanda-2:9644"]


def test_grafana_provisions_prometheus_and_the_dashboard(config: dict[str, Any]) -> None:
    """Grafana's provisioned datasource is the compose Prometheus, and its provider loads the mounted dashboard."""
    grafana = config["services"]["grafana"]
    mounts = _bind_mounts(grafana)
    provisioning = mounts["/etc/grafana/provisioning"]
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"][0]
    port = config["services"]["prometheus"]["ports"][0]["target"]
    assert datasource["url"] == f"http://prometheus:{port}"
    assert datasource["uid"] == "prometheus"
    provider = yaml.safe_load((provisioning / "dashboards" / "gpu-temperature.yml").read_text())["providers"][0]
    dashboards_dir = provider["options"]["path"]
    assert mounts[dashboards_dir] == DASHBOARD.parent
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards_dir}/{DASHBOARD.name}"


def test_dashboard_panels_are_well_formed() -> None:
    """The dashboard parses, has a fixed uid, unique panel ids, and every query uses the provisioned datasource."""
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "gpu-temperature"
    panels = dashboard["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        for target in panel.get("targets", []):
            assert target["datasource"] == {"type": "prometheus", "uid": "prometheus"}, panel["title"]
            assert target["expr"].strip(), panel["title"]


def test_dashboard_queries_name_only_registered_metrics(registered: set[str]) -> None:
    """Every query is valid PromQL and selects only series the services actually register."""
    queries = dashboard_queries()
    assert queries
    for title, expr in queries:
        unknown = promql_metric_names(expr) - registered
        assert not unknown, f"panel {title!r} queries {sorted(unknown)}, which no service registers"


def test_dashboard_covers_fleet_temperatures_and_alert_latency(registered: set[str]) -> None:
    """The fleet panel plots the per-device gauge by device/model/host; latency panels take histogram quantiles."""
    queries = dashboard_queries()
    fleet = [expr for title, expr in queries if title == "GPU temperature per device"]
    assert fleet == ["gpu_temperature_celsius"]
    legends = [t["legendFormat"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p.get("targets", [])
               if t["expr"] == "gpu_temperature_celsius"]
    assert all(label in legends[0] for label in ("{{device}}", "{{model}}", "{{host}}"))
    assert "gpu_temperature_celsius" in registered
    latency = [expr for title, expr in queries if title == "End-to-end alert latency"]
    assert len(latency) == 3
    assert all(expr.startswith("histogram_quantile(") and "_bucket[" in expr for expr in latency)
