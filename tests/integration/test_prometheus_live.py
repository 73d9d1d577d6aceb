"""The monitoring profile on live data: a real Prometheus scrapes the real services while readings and alerts flow.

Prometheus (the Debian package, its own port and data folder) runs the shipped prometheus.yml and
rules, with only what a machine without Docker needs changed: the compose host names become the
processes' loopback ports, scrapes and rule evaluations happen every second, and the Redpanda job
goes (the local cluster is Apache Kafka, without Redpanda's admin API). It scrapes two real
publishers (one healthy, one whose topic refuses every record, so delivery errors are real) and the
real alerter posting to the real Slack stand-in. Then every query of the Grafana dashboard goes
through Prometheus's HTTP API and must return series carrying the labels its panel's legend uses;
every rule must evaluate cleanly; and the rule that fires on the refused readings must reach a real
Alertmanager (the shipped config, group_wait shortened) and, through it, the stand-in.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
import yaml
from confluent_kafka.admin import AdminClient, NewTopic

from shared.kafka import ensure_topic
from tests.containers import BIN, DASHBOARD, REPO, dashboard_queries
from tests.monitoring_tools import monitoring_tool
from tests.support import free_port, wait_until

pytestmark = pytest.mark.integration

T = TypeVar("T")
RATE_INTERVAL = "10s"  # Grafana's $__rate_interval for a 1 s scrape interval, with room for a late scrape
RULE_FILES = sorted((REPO / "deploy" / "prometheus" / "rules").glob("*.rules.yml"))


def _get(url: str, **params: str) -> Any:
    """JSON from a loopback HTTP API, or None while it does not answer."""
    try:
        response = requests.get(url, params=params, timeout=5)
    except requests.RequestException:
        return None
    return response.json() if response.ok else None


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Process]]:
    """Starts a process with its output in a log file; every one is stopped (SIGTERM, then SIGKILL) afterwards."""
    started: list[Process] = []

    def run(name: str, command: list[str], env: dict[str, str] | None = None) -> Process:
        log = tmp_path / f"{name}.log"
        with log.open("wb") as sink:
            popen = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=sink, stderr=subprocess.STDOUT)
        process = Process(name, popen, log)
        started.append(process)
        return process

    yield run
    for process in reversed(started):
        if process.popen.poll() is None:
            process.popen.send_signal(signal.SIGTERM)
    for process in started:
        try:
            process.popen.wait(30)
        except subprocess.TimeoutExpired:
            process.popen.kill()
            process.popen.wait(10)


def _service_env(**values: str) -> dict[str, str]:
    return {"PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}", "LOG_LEVEL": "info", "LOG_FORMAT": "text",
            "METRICS_HOST": "127.0.0.1", **values}


def _prometheus_config(path: Path, targets: dict[str, list[str]], alertmanager: str) -> Path:
    """The shipped prometheus.yml with loopback targets, 1 s scrapes and evaluations, and the repository's rules."""
    config = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    shipped_dir = REPO / "deploy" / "prometheus"
    config["rule_files"] = [str(shipped_dir / pattern) for pattern in config["rule_files"]]
    config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [alertmanager]
    jobs = [job for job in config["scrape_configs"] if job["job_name"] != "redpanda"]
    assert {job["job_name"] for job in jobs} == set(targets), "every shipped job but Redpanda's is scraped here"
    for job in jobs:
        job["static_configs"] = [{"targets": targets[job["job_name"]]}]
    config["scrape_configs"] = jobs
    path.write_text(yaml.safe_dump(config))
    return path


def _alertmanager_config(path: Path, stand_in: str) -> Path:
    """The shipped alertmanager.yml sending to this test's stand-in, grouping after 1 s instead of 30 s."""
    text = (REPO / "deploy" / "alertmanager" / "alertmanager.yml").read_text()
    assert "http://slack-stand-in:3001/" in text
    config = yaml.safe_load(text.replace("http://slack-stand-in:3001/", stand_in))
    config["route"].update(group_wait="1s", group_interval="1s")
    path.write_text(yaml.safe_dump(config))
    return path


def _legend_labels(legend: str) -> set[str]:
    return set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))


def _panel_targets() -> list[tuple[str, str, set[str]]]:
    """(panel title, PromQL with $__rate_interval filled in, labels its legend names) for every dashboard query."""
    legends = {}
    pending = list(json.loads(DASHBOARD.read_text())["panels"])
    while pending:
        panel = pending.pop(0)
        pending += panel.get("panels", [])
        for target in panel.get("targets", []):
            legends[(panel["title"], target["expr"])] = _legend_labels(target.get("legendFormat", ""))
    return [(title, expr.replace("$__rate_interval", RATE_INTERVAL), legends[(title, expr)])
            for title, expr in dashboard_queries()]


def _unanswered(prometheus: str, queries: list[tuple[str, str, set[str]]]) -> list[str]:
    """Why each query does not (yet) return series with its legend's labels and a number; [] when all do."""
    problems = []
    for title, expr, labels in queries:
        body = _get(f"{prometheus}/api/v1/query", query=expr)
        if body is None or body.get("status") != "success":
            problems.append(f"{title}: {expr}: {body}")
            continue
        series = body["data"]["result"]
        if not series:
            problems.append(f"{title}: {expr}: no series")
            continue
        for one in series:
            missing = labels - set(one["metric"])
            if missing:
                problems.append(f"{title}: {expr}: a series lacks {sorted(missing)}: {one['metric']}")
            if math.isnan(float(one["value"][1])):
                problems.append(f"{title}: {expr}: NaN for {one['metric']}")
    return problems


def test_dashboard_queries_rules_and_alerting_on_live_services(
    start: Callable[..., Process], tmp_path: Path, kafka_bootstrap: str, kafka_admin: AdminClient, unique: str,
) -> None:
    """Every dashboard query answers with its panel's labels, every rule evaluates, a firing rule reaches Slack."""
    prometheus_bin, alertmanager_bin = monitoring_tool("prometheus"), monitoring_tool("prometheus-alertmanager")

    stand_in_process = start("slack-stand-in", [str(BIN / "gpu-temp-slack-stand-in"), "--host", "127.0.0.1",
                                                "--port", "0"], _service_env())
    match = wait_until(lambda: re.search(
        r"listening on (http://127\.0\.0\.1:\d+/)", stand_in_process.output()), 30, "the stand-in's address")
    stand_in = match.group(1)

    alertmanager_port = free_port()
    am_config = _alertmanager_config(tmp_path / "alertmanager.yml", stand_in)
    start("alertmanager", [alertmanager_bin, f"--config.file={am_config}", f"--storage.path={tmp_path / 'am-data'}",
                           f"--web.listen-address=127.0.0.1:{alertmanager_port}", "--cluster.listen-address="])
    alertmanager = f"http://127.0.0.1:{alertmanager_port}"

    readings, refusing = f"readings-{unique}", f"refusing-{unique}"
    ensure_topic(kafka_admin, readings, partitions=3, replication_factor=2)
    # A topic whose brokers refuse every batch as too large: the second publisher's deliveries fail for real.
    kafka_admin.create_topics([NewTopic(refusing, 1, 2, config={"max.message.bytes": "64"})])[refusing].result(30)

    ports = {name: free_port() for name in ("alerter", "publisher", "refused-publisher")}
    alerter = start("alerter", [str(BIN / "gpu-temp-alert")], _service_env(
        REDPANDA_BROKERS=kafka_bootstrap, SOURCE_TOPIC=readings, CONSUMER_GROUP=f"group-{unique}",
        CONSUMER_OFFSET_RESET="earliest", ALERT_TOPIC=f"alerts-{unique}", DLQ_TOPIC=f"dlq-{unique}",
        TEMPERATURE_THRESHOLD="100", ALERT_COOLDOWN="2s", SLACK_WEBHOOK_URL=f"{stand_in}services/alerter",
        METRICS_PORT=str(ports["alerter"])))
    publisher_env = {"REDPANDA_BROKERS": kafka_bootstrap, "NUM_DEVICES": "3", "INTERVAL_MS": "200",
                     "ABNORMAL_PROBABILITY": "1", "TOPIC_PARTITIONS": "3"}
    start("publisher", [str(BIN / "gpu-temp-publisher")], _service_env(
        **publisher_env, REDPANDA_TOPIC=readings, METRICS_PORT=str(ports["publisher"])))
    start("refused-publisher", [str(BIN / "gpu-temp-publisher")], _service_env(
        **publisher_env, REDPANDA_TOPIC=refusing, METRICS_PORT=str(ports["refused-publisher"])))

    prometheus_port = free_port()
    config = _prometheus_config(tmp_path / "prometheus.yml", {
        "gpu-temp-publisher": [f"127.0.0.1:{ports['publisher']}", f"127.0.0.1:{ports['refused-publisher']}"],
        "gpu-temp-alert": [f"127.0.0.1:{ports['alerter']}"],
    }, f"127.0.0.1:{alertmanager_port}")
    prometheus_process = start("prometheus", [prometheus_bin, f"--config.file={config}",
                                              f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                                              f"--web.listen-address=127.0.0.1:{prometheus_port}"])
    prometheus = f"http://127.0.0.1:{prometheus_port}"

    def alerts_from_the_alerter() -> int:
        stats = _get(f"{stand_in}_stats")
        return int(stats["accepted"]) if stats else 0

    wait_until(lambda: alerts_from_the_alerter() >= 3, 90, "alerts from the alerter at the stand-in")
    assert alerter.popen.poll() is None, alerter.output()

    def every_target_up() -> bool:
        body = _get(f"{prometheus}/api/v1/targets")
        if body is None:
            assert prometheus_process.popen.poll() is None, prometheus_process.output()
            return False
        active = body["data"]["activeTargets"]
        return len(active) == 3 and all(target["health"] == "up" for target in active)

    wait_until(every_target_up, 60, "Prometheus scraping all three services")

    queries = _panel_targets()
    assert len(queries) == len(dashboard_queries())
    deadline = time.monotonic() + 60
    while (problems := _unanswered(prometheus, queries)) and time.monotonic() < deadline:
        time.sleep(1)
    assert not problems, "dashboard queries without an answer:\n" + "\n".join(problems)

    def rules_evaluated() -> list[dict[str, Any]] | None:
        body = _get(f"{prometheus}/api/v1/rules")
        rules = [rule for group in body["data"]["groups"] for rule in group["rules"]] if body else []
        return rules if rules and all(rule["health"] == "ok" for rule in rules) else None

    rules = wait_until(rules_evaluated, 30, "every rule evaluated without error")
    shipped = {rule["alert"] for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]
               for rule in group["rules"]}
    assert {rule["name"] for rule in rules} == shipped

    def refused_readings_alert() -> list[dict[str, Any]]:
        alerts = _get(f"{alertmanager}/api/v2/alerts") or []
        return [a for a in alerts if a["labels"].get("alertname") == "GpuTempReadingsFailed"]

    received = wait_until(refused_readings_alert, 60, "GpuTempReadingsFailed at Alertmanager")
    labels = received[0]["labels"]
    assert labels["severity"] == "critical"
    assert labels["component"] == "publisher"
    assert labels["reason"] == "MSG_SIZE_TOO_LARGE"
    assert labels["instance"] == f"127.0.0.1:{ports['refused-publisher']}"

    def routed_to_slack() -> list[dict[str, Any]]:
        body = _get(f"{stand_in}_received")
        return [m for m in (body or {}).get("messages", []) if m["path"] == "/services/alertmanager"
                and "GpuTempReadingsFailed" in str(m["message"])]

    notification = wait_until(routed_to_slack, 60, "Alertmanager's notification at the Slack stand-in")
    assert "FIRING" in notification[0]["message"]["attachments"][0]["title"]
