"""docker-compose.yml and docker-compose.ha.yml, as the real Compose CLI validates and resolves them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from alerter.settings import load_settings as load_alerter_settings
from publisher.settings import load_settings as load_publisher_settings
from shared.config import Env, parse_duration
from tests.containers import (
    ALERT_LINE,
    COMPOSE_FILE,
    HA_FILE,
    HIGH_TEMP_LINE,
    REPO,
    compose_config,
    readme_section,
    run_compose,
)

SERVICES = {"redpanda-1", "redpanda-2", "redpanda-console", "gpu-temp-publisher", "gpu-temp-alert", "slack-stand-in"}
STAND_IN_URL = "http://slack-stand-in:3001/services/stand-in"


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return compose_config()


@pytest.fixture(scope="module")
def ha_config() -> dict[str, Any]:
    return compose_config(files=(COMPOSE_FILE, HA_FILE))


def _ports(service: dict[str, Any]) -> set[tuple[str, int, int]]:
    """(host ip, published, target) for each published port."""
    return {(p.get("host_ip", ""), int(p["published"]), int(p["target"])) for p in service.get("ports", [])}


def _depends(service: dict[str, Any]) -> dict[str, str]:
    return {name: dep["condition"] for name, dep in service.get("depends_on", {}).items()}


def test_compose_cli_rejects_what_the_specification_forbids(tmp_path: Path) -> None:
    """The validator really checks the schema: an unknown service key makes `config` fail, naming it."""
    broken = tmp_path / "docker-compose.yml"
    name_line = "    container_name: gpu-temp-alert\n"
    broken.write_text(COMPOSE_FILE.read_text().replace(name_line, name_line + "    restart_policy: always\n"))
    result = run_compose("config", "--quiet", files=(broken,))
    assert result.returncode != 0
    assert "restart_policy" in result.stderr


@pytest.mark.parametrize("files", [(COMPOSE_FILE,), (COMPOSE_FILE, HA_FILE)], ids=["two-node", "ha"])
@pytest.mark.parametrize("profiles", [(), ("monitoring",)], ids=["default", "monitoring"])
def test_compose_files_validate_against_the_specification(files: tuple[Path, ...], profiles: tuple[str, ...]) -> None:
    """Both layouts, with and without the monitoring profile, pass `docker-compose config` cleanly."""
    result = run_compose("config", "--quiet", files=files, profiles=profiles)
    assert result.returncode == 0, result.stderr
    assert "warn" not in result.stderr.lower(), result.stderr


def test_default_services_and_container_names(config: dict[str, Any]) -> None:
    """`docker compose up -d` starts exactly the pipeline, under the container names the guide uses."""
    assert set(config["services"]) == SERVICES
    for name, service in config["services"].items():
        assert service["container_name"] == name


def test_published_ports(config: dict[str, Any]) -> None:
    """Brokers on localhost:9092/9093, Console on 8080, the services' metrics on loopback only."""
    services = config["services"]
    assert ("", 9092, 9092) in _ports(services["redpanda-1"])
    assert ("", 9093, 9093) in _ports(services["redpanda-2"])
    assert _ports(services["redpanda-console"]) == {("", 8080, 8080)}
    assert _ports(services["gpu-temp-publisher"]) == {("127.0.0.1", 9100, 9100)}
    assert _ports(services["gpu-temp-alert"]) == {("127.0.0.1", 9101, 9101)}


def test_redpanda_listeners_and_cluster(config: dict[str, Any]) -> None:
    """Internal listeners redpanda-1:29092 and redpanda-2:29093 for the services, external ones for the host."""
    node1 = " ".join(config["services"]["redpanda-1"]["command"])
    node2 = " ".join(config["services"]["redpanda-2"]["command"])
    assert "--advertise-kafka-addr=internal://redpanda-1:29092,external://localhost:9092" in node1
    assert "--advertise-kafka-addr=internal://redpanda-2:29093,external://localhost:9093" in node2
    assert "--seeds=redpanda-1:33145" in node2, "the second node joins the first"
    for name in ("redpanda-1", "redpanda-2"):
        service = config["services"][name]
        image, _, tag = service["image"].rpartition(":")
        assert image == "docker.redpanda.com/redpandadata/redpanda"
        assert re.fullmatch(r"v\d+\.\d+\.\d+", tag), f"a pinned release, not {tag}"
        assert "rpk cluster health" in " ".join(service["healthcheck"]["test"])
        assert {(v["source"], v["target"]) for v in service["volumes"]} == {(name, "/var/lib/redpanda/data")}
        assert name in config["volumes"], "a named volume, so readings survive `down` / `up`"


def test_console_sees_both_brokers_and_admin_apis(config: dict[str, Any]) -> None:
    """Redpanda Console is pointed at both brokers' internal listeners and both admin APIs."""
    console = config["services"]["redpanda-console"]
    assert console["environment"]["KAFKA_BROKERS"] == "redpanda-1:29092,redpanda-2:29093"
    assert console["environment"]["REDPANDA_ADMINAPI_ENABLED"] == "true"
    assert console["environment"]["REDPANDA_ADMINAPI_URLS"] == "http://redpanda-1:9644,http://redpanda-2:9644"
    assert ":latest" not in console["image"]


@pytest.mark.parametrize(("name", "dockerfile"), [("gpu-temp-publisher", "Dockerfile.publisher"),
                                                  ("gpu-temp-alert", "Dockerfile.alerter"),
                                                  ("slack-stand-in", "Dockerfile.alerter")])
def test_services_are_built_here_and_wait_for_a_healthy_cluster(config: dict[str, Any], name: str,
                                                                dockerfile: str) -> None:
    """Each service is built from its Dockerfile, restarts unless stopped, and keeps bounded json-file logs."""
    service = config["services"][name]
    assert Path(service["build"]["context"]) == REPO
    assert service["build"]["dockerfile"] == dockerfile
    assert service["restart"] == "unless-stopped"
    assert service["init"] is True, "an init process forwards SIGTERM and reaps children"
    assert service["logging"]["driver"] == "json-file"
    assert service["logging"]["options"]["max-size"]
    assert service["logging"]["options"]["max-file"]
    if name != "slack-stand-in":
        assert {"redpanda-1": "service_healthy", "redpanda-2": "service_healthy"}.items() <= _depends(service).items()
        test = " ".join(service["healthcheck"]["test"])
        assert "/readyz" in test
        assert "METRICS_PORT" in test


def test_every_long_running_service_has_a_health_check_and_bounded_logs(config: dict[str, Any]) -> None:
    """`docker compose ps` shows health for the cluster and the pipeline, and no log grows without bound."""
    for name, service in config["services"].items():
        if name != "redpanda-console":  # a UI nothing depends on, whose image ships no HTTP client
            assert service["healthcheck"]["test"], name
        assert service["logging"] == {"driver": "json-file", "options": {"max-size": "10m", "max-file": "3"}}, name


def test_publisher_environment_uses_the_originals_names(config: dict[str, Any]) -> None:
    """The publisher gets the original's variables, the internal listeners, and replication factor 1."""
    env = config["services"]["gpu-temp-publisher"]["environment"]
    assert env == {
        "REDPANDA_BROKERS": "redpanda-1:29092,redpanda-2:29093",
        "REDPANDA_TOPIC": "gpu-temperature",
        "NUM_DEVICES": "5",
        "INTERVAL_MS": "1000",
        "ABNORMAL_PROBABILITY": "0.05",
        "TOPIC_PARTITIONS": "6",
        "TOPIC_REPLICATION_FACTOR": "1",
        "LOG_LEVEL": "info",
        "LOG_FORMAT": "text",
        "METRICS_PORT": "9100",
    }


def test_alerter_environment_threshold_and_stand_in_default(config: dict[str, Any]) -> None:
    """Threshold 150 °C as the original compose, RF 1 for its topics, and the stand-in when .env has no webhook."""
    alerter = config["services"]["gpu-temp-alert"]
    assert alerter["environment"] == {
        "REDPANDA_BROKERS": "redpanda-1:29092,redpanda-2:29093",
        "SOURCE_TOPIC": "gpu-temperature",
        "CONSUMER_GROUP": "gpu-temp-alert-group",
        "CONSUMER_OFFSET_RESET": "latest",
        "TEMPERATURE_THRESHOLD": "150",
        "ALERT_COOLDOWN": "5m",
        "SLACK_WEBHOOK_URL": STAND_IN_URL,
        "SLACK_CHANNEL": "#alerts",
        "ALERT_TOPIC": "gpu-temperature-alerts",
        "DLQ_TOPIC": "gpu-temperature-dlq",
        "TOPIC_REPLICATION_FACTOR": "1",
        "LOG_LEVEL": "info",
        "LOG_FORMAT": "text",
        "METRICS_PORT": "9101",
    }
    assert _depends(alerter)["slack-stand-in"] == "service_healthy"


def test_slack_webhook_comes_from_env_file(tmp_path: Path) -> None:
    """A webhook and channel in .env replace the stand-in's URL and the default channel."""
    env_file = tmp_path / ".env"
    env_file.write_text("SLACK_WEBHOOK_URL=https://hooks.slack.com/services/T000/B000/XXXX\nSLACK_CHANNEL=#gpu-ops\n")
    env = compose_config(env_file=env_file)["services"]["gpu-temp-alert"]["environment"]
    assert env["SLACK_WEBHOOK_URL"] == "https://hooks.slack.com/services/T000/B000/XXXX"
    assert env["SLACK_CHANNEL"] == "#gpu-ops"


def test_env_example_is_the_documented_template() -> None:
    """.env.example is committed with an empty webhook (no secret), and .env itself is ignored by git."""
    example = (REPO / ".env.example").read_text().splitlines()
    assert "SLACK_WEBHOOK_URL=" in example
    assert ".env" in (REPO / ".gitignore").read_text().splitlines()


def test_slack_stand_in_runs_the_projects_stand_in(config: dict[str, Any]) -> None:
    """The stand-in service runs the project's stand-in on port 3001, where the alerter's default URL points."""
    stand_in = config["services"]["slack-stand-in"]
    assert stand_in["entrypoint"] == ["gpu-temp-slack-stand-in"]
    assert stand_in["command"] == ["--host", "0.0.0.0", "--port", "3001"]
    assert "3001/healthz" in " ".join(stand_in["healthcheck"]["test"])


def test_services_accept_the_compose_environment(config: dict[str, Any]) -> None:
    """Each service's own settings loader accepts the environment compose gives it, with the intended values."""
    publisher = load_publisher_settings(Env(config["services"]["gpu-temp-publisher"]["environment"]))
    assert publisher.common.brokers == "redpanda-1:29092,redpanda-2:29093"
    assert publisher.common.topic_replication_factor == 1
    assert publisher.num_devices == 5
    alerter = load_alerter_settings(Env(config["services"]["gpu-temp-alert"]["environment"]))
    assert alerter.threshold == 150.0
    assert alerter.webhook_url.reveal() == STAND_IN_URL
    assert alerter.common.topic_replication_factor == 1


def test_docker_stop_waits_for_a_graceful_shutdown(config: dict[str, Any]) -> None:
    """docker stop's grace period outlasts the publisher's flush and the alerter's drain plus shutdown notice."""
    services = config["services"]
    publisher = load_publisher_settings(Env(services["gpu-temp-publisher"]["environment"]))
    assert parse_duration(services["gpu-temp-publisher"]["stop_grace_period"]) > publisher.flush_timeout
    alerter = load_alerter_settings(Env(services["gpu-temp-alert"]["environment"]))
    grace = parse_duration(services["gpu-temp-alert"]["stop_grace_period"])
    assert grace > alerter.shutdown_timeout + alerter.slack_timeout


def test_ha_override_adds_a_third_node_and_creates_topics_with_rf3(ha_config: dict[str, Any]) -> None:
    """The HA layout has three nodes and creates the three topics with RF 3 and min.insync.replicas 2 first."""
    services = ha_config["services"]
    assert SERVICES | {"redpanda-3", "redpanda-topics"} == set(services)
    node3 = " ".join(services["redpanda-3"]["command"])
    assert "--advertise-kafka-addr=internal://redpanda-3:29094,external://localhost:9094" in node3
    assert "--seeds=redpanda-1:33145" in node3
    assert "redpanda-3" in ha_config["volumes"]

    init = services["redpanda-topics"]
    script = " ".join(init["command"])
    assert "rpk topic create gpu-temperature gpu-temperature-alerts gpu-temperature-dlq" in script
    assert "--replicas 3" in script
    assert "min.insync.replicas=2" in script
    assert "--if-not-exists" in script
    assert _depends(init) == {f"redpanda-{n}": "service_healthy" for n in (1, 2, 3)}

    brokers = "redpanda-1:29092,redpanda-2:29093,redpanda-3:29094"
    for name in ("gpu-temp-publisher", "gpu-temp-alert"):
        service = services[name]
        assert service["environment"]["REDPANDA_BROKERS"] == brokers
        assert service["environment"]["TOPIC_REPLICATION_FACTOR"] == "3"
        assert _depends(service)["redpanda-topics"] == "service_completed_successfully"
        assert _depends(service)["redpanda-1"] == "service_healthy", "the base file's dependencies are kept"
    assert services["redpanda-console"]["environment"]["KAFKA_BROKERS"] == brokers


def test_monitoring_profile_is_opt_in(config: dict[str, Any]) -> None:
    """Prometheus and Grafana start only with `--profile monitoring`, on ports 9090 and 3000."""
    assert not {"prometheus", "grafana"} & set(config["services"])
    monitoring = compose_config(profiles=("monitoring",))["services"]
    assert _ports(monitoring["prometheus"]) == {("", 9090, 9090)}
    assert _ports(monitoring["grafana"]) == {("", 3000, 3000)}
    assert _depends(monitoring["grafana"]) == {"prometheus": "service_healthy"}
    for name in ("prometheus", "grafana"):
        for volume in monitoring[name]["volumes"]:
            if volume["type"] == "bind":
                assert Path(volume["source"]).exists(), f"{name} mounts a missing {volume['source']}"


def test_readme_docker_quick_start_matches_the_compose_files(config: dict[str, Any], ha_config: dict[str, Any]) -> None:
    """Every container, port and URL the README's Docker section names is what the compose files define."""
    section = readme_section("Docker")
    monitoring = compose_config(profiles=("monitoring",))
    every = {**monitoring["services"], **ha_config["services"]}
    published = {port for service in every.values() for _, port, _ in _ports(service)}
    assert set(re.findall(r"docker logs -f ([\w-]+)", section)) <= {s["container_name"] for s in every.values()}
    assert {"gpu-temp-publisher", "gpu-temp-alert"} <= set(re.findall(r"docker logs -f ([\w-]+)", section))
    table = set(re.findall(r"^\| `([\w-]+)`", section, flags=re.MULTILINE))
    assert table == SERVICES, "the table lists exactly the default services"
    for port in re.findall(r"localhost:(\d+)", section):
        assert int(port) in published, f"README names localhost:{port}, which compose does not publish"
    for port in ("8080", "3000", "9090", "9092", "9093", "9094"):
        assert f"localhost:{port}" in section
    assert "150 °C" in section
    assert config["services"]["gpu-temp-alert"]["environment"]["TEMPERATURE_THRESHOLD"] == "150"
    assert "docker compose up -d" in section
    assert "docker compose -f docker-compose.yml -f docker-compose.ha.yml up -d" in section
    assert "docker compose --profile monitoring up -d" in section


def test_readme_quotes_the_log_lines_the_services_print() -> None:
    """The README's sample log lines have the exact form the entrypoint test finds in the real output."""
    section = readme_section("Docker")
    assert re.search(HIGH_TEMP_LINE, section)
    assert re.search(ALERT_LINE, section)
