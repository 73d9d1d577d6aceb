"""The compose `monitoring` profile: Prometheus scrapes the services, Grafana shows a dashboard of real metrics."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from alerter.metrics import AlerterMetrics
from publisher.metrics import PublisherMetrics
from tests.containers import (
    DASHBOARD,
    REPO,
    compose_config,
    dashboard_queries,
    env_file,
    promql_metric_names,
    queryable_names,
)

DEPLOY = REPO / "deploy"
GRAFANA_PASSWORD = "test-only-password"  # noqa: S105 - a value for the test's own .env file


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    env = env_file(tmp_path_factory.mktemp("env") / ".env", GRAFANA_ADMIN_PASSWORD=GRAFANA_PASSWORD)
    return compose_config(env_file=env, profiles=("monitoring",))


@pytest.fixture(scope="module")
def registered() -> set[str]:
    """Every series name the publisher and the alerter register, read from their own metric classes."""
    publisher = CollectorRegistry()
    PublisherMetrics(publisher, device_series_limit=10_000)
    return queryable_names(publisher.collect()) | queryable_names(AlerterMetrics().registry.collect())


def _bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts."""
    return {v["target"]: Path(v["source"]) for v in service["volumes"] if v["type"] == "bind"}


def _prometheus_config(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Path]]:
    """prometheus.yml as the container reads it, and the container's bind mounts."""
    mounts = _bind_mounts(config["services"]["prometheus"])
    return yaml.safe_load(mounts["/etc/prometheus/prometheus.yml"].read_text()), mounts


def _in_container(mounts: dict[str, Path], container_path: PurePosixPath) -> Path:
    """The host file a container path resolves to through the bind mounts (a file mount or one under a folder)."""
    for target, source in mounts.items():
        if container_path == PurePosixPath(target):
            return source
        if PurePosixPath(target) in container_path.parents:
            return source / container_path.relative_to(target)
    raise AssertionError(f"{container_path} is not mounted into the Prometheus container")


def test_prometheus_scrapes_each_service_on_its_metrics_port(config: dict[str, Any]) -> None:
    """Each scrape target is a compose service and the METRICS_PORT that service is given."""
    prometheus_yml, mounts = _prometheus_config(config)
    jobs = {job["job_name"]: job for job in prometheus_yml["scrape_configs"]}
    for service in ("gpu-temp-publisher", "gpu-temp-alert"):
        port = config["services"][service]["environment"]["METRICS_PORT"]
        assert jobs[service]["static_configs"][0]["targets"] == [f"{service}:{port}"]
    target_files = [PurePosixPath("/etc/prometheus") / name for name in jobs["redpanda"]["file_sd_configs"][0]["files"]]
    targets = yaml.safe_load(_in_container(mounts, target_files[0]).read_text())
    assert targets == [{"targets": ["redpanda-1:9644", "redpanda-2:9644"]}]


def test_prometheus_loads_every_rule_file_and_alerts_the_profiles_alertmanager(config: dict[str, Any]) -> None:
    """The rule glob, read next to the mounted config, matches every file of deploy/prometheus/rules/; alerts go to
    the Alertmanager service on its container port."""
    prometheus_yml, mounts = _prometheus_config(config)
    shipped = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
    assert shipped
    loaded: list[Path] = []
    for pattern in prometheus_yml["rule_files"]:
        container_glob = PurePosixPath("/etc/prometheus") / pattern
        folder = _in_container(mounts, container_glob.parent)
        loaded += sorted(folder.glob(container_glob.name))
    assert loaded == shipped
    alertmanager = config["services"]["alertmanager"]
    targets = prometheus_yml["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == [f"alertmanager:{alertmanager['ports'][0]['target']}"]
    config_file = _bind_mounts(alertmanager)["/etc/alertmanager/alertmanager.yml"]
    assert config_file == DEPLOY / "alertmanager" / "alertmanager.yml"


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
