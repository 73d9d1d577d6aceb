"""The pipeline's alerting rules, Prometheus's and Alertmanager's configs, checked by the real promtool and amtool."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from tests.containers import REPO, readme_section
from tests.monitoring_tools import monitoring_tool

PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
RULES = sorted((PROMETHEUS_DIR / "rules").glob("*.rules.yml"))
RULE_TESTS = REPO / "tests" / "prometheus" / "pipeline.rules.test.yml"
ALERTMANAGER_CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
# The conditions issue 15 asks the pipeline to alert on, and the alert for each.
REQUIRED_ALERTS = {
    "GpuTempPublisherDown", "GpuTempPublisherNotProducing", "GpuTempReadingsNotDelivered", "GpuTempReadingsFailed",
    "GpuTempAlerterDown", "GpuTempAlerterNotReady", "GpuTempAlerterNotConsuming", "GpuTempAlerterLagGrowing",
    "GpuTempDeadLetters", "GpuTempSlackFailing", "GpuTempSlackRefusing", "GpuTempAlertsStuck",
}


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def _alerts(path: Path) -> dict[str, dict[str, object]]:
    return {rule["alert"]: rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]
            if "alert" in rule}


def test_rule_files_pass_promtool_check_rules() -> None:
    """Every rule file parses, and every expression and template is valid, by Prometheus's own checker."""
    assert RULES
    result = _run(monitoring_tool("promtool"), "check", "rules", *map(str, RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_config_passes_promtool_check_config() -> None:
    """prometheus.yml, the rule files it loads and its target files are valid, read where the container has them."""
    result = _run(monitoring_tool("promtool"), "check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(RULES)} rule files found" in result.stdout


def test_promtool_check_config_reads_the_target_files(tmp_path: Path) -> None:
    """A broken target file fails `check config`, so the check above covers the Redpanda target lists too."""
    (tmp_path / "targets").mkdir()
    (tmp_path / "targets" / "redpanda.yml").write_text("- targets: redpanda-1:9644\n")
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config.pop("rule_files")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = _run(monitoring_tool("promtool"), "check", "config", str(tmp_path / "prometheus.yml"))
    assert result.returncode != 0


def test_alertmanager_config_passes_amtool() -> None:
    """The profile's Alertmanager configuration is valid by Alertmanager's own checker."""
    result = _run(monitoring_tool("amtool"), "check-config", str(ALERTMANAGER_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass() -> None:
    """`promtool test rules`: with the input series of each case, exactly the expected alerts fire, when expected."""
    result = _run(monitoring_tool("promtool"), "test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rule_unit_tests_catch_a_weakened_rule(tmp_path: Path) -> None:
    """The same unit tests fail against rules whose `for` was lengthened, so they pin the timing, not just syntax."""
    (tmp_path / "deploy" / "prometheus" / "rules").mkdir(parents=True)
    (tmp_path / "tests" / "prometheus").mkdir(parents=True)
    for rules in RULES:
        text = rules.read_text().replace("for: 2m", "for: 3m")
        (tmp_path / "deploy" / "prometheus" / "rules" / rules.name).write_text(text)
    copy = tmp_path / "tests" / "prometheus" / RULE_TESTS.name
    copy.write_text(RULE_TESTS.read_text())
    result = _run(monitoring_tool("promtool"), "test", "rules", str(copy))
    assert result.returncode != 0
    assert "GpuTempPublisherNotProducing" in result.stdout + result.stderr


def test_every_required_condition_has_a_tested_alert() -> None:
    """Each pipeline condition has an alert with severity and component, and the unit tests make each one fire."""
    alerts = {name: rule for path in RULES for name, rule in _alerts(path).items()}
    assert set(alerts) >= REQUIRED_ALERTS
    for name, rule in alerts.items():
        labels = rule["labels"]
        assert isinstance(labels, dict)
        assert labels["severity"] in ("critical", "warning"), name
        assert labels["component"] in ("publisher", "alerter", "slack", "alertmanager"), name
        annotations = rule["annotations"]
        assert isinstance(annotations, dict)
        assert set(annotations) == {"summary", "description"}, name
    cases = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {check["alertname"] for case in cases for check in case["alert_rule_test"] if check["exp_alerts"]}
    silent = {check["alertname"] for case in cases for check in case["alert_rule_test"] if not check["exp_alerts"]}
    assert set(alerts) <= fired, f"never shown firing: {set(alerts) - fired}"
    assert set(alerts) <= silent, f"never shown silent: {set(alerts) - silent}"


def test_alertmanager_routes_everything_somewhere_and_inhibits_by_component() -> None:
    """One default receiver takes every alert; a component's Down alert mutes that component's other alerts."""
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    receivers = {receiver["name"] for receiver in config["receivers"]}
    assert config["route"]["receiver"] in receivers
    down = {rule["source_matchers"][0].split("=")[1].strip(): rule["target_matchers"][0].split("=")[1].strip()
            for rule in config["inhibit_rules"]}
    assert down == {"GpuTempAlerterDown": "alerter", "GpuTempPublisherDown": "publisher"}
    alerts = {name: rule for path in RULES for name, rule in _alerts(path).items()}
    for source, component in down.items():
        assert alerts[source]["labels"]["component"] == component  # type: ignore[index]


def test_readme_lists_every_pipeline_alert() -> None:
    """The README's monitoring profile table names each alert the rules define, and no other."""
    section = readme_section("Docker")
    listed = set(re.findall(r"`(GpuTemp\w+)`", section))
    assert listed == {name for path in RULES for name in _alerts(path)}
