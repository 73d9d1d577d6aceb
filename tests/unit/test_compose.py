"""docker-compose.yml and docker-compose.ha.yml, as the real Compose CLI validates and resolves them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerter.settings import DEFAULT_METRICS_PORT as ALERTER_PORT
from alerter.settings import load_settings as load_alerter_settings
from publisher.settings import DEFAULT_METRICS_PORT as PUBLISHER_PORT
from publisher.settings import load_settings as load_publisher_settings
from shared.config import Env, parse_duration
from tests.containers import (
    ALERT_LINE,
    COMPOSE_FILE,
    HA_FILE,
    HIGH_TEMP_LINE,
    REPO,
    compose_config,
    env_file,
    readme_section,
    run_compose,
)

SERVICES = {"redpanda-1", "redpanda-2", "redpanda-console", "gpu-temp-publisher", "gpu-temp-alert", "slack-stand-in"}
MONITORING = {"prometheus", "grafana", "alertmanager"}
BUILT = {"gpu-temp-publisher", "gpu-temp-publisher-nvml", "gpu-temp-alert", "slack-stand-in"}
STAND_IN_URL = "http://slack-stand-in:3001/services/stand-in"
WEBHOOK = "https://hooks.slack.com/services/T000/B000/XXXX"
LAYOUTS = {"two-node": (COMPOSE_FILE,), "ha": (COMPOSE_FILE, HA_FILE)}
GRAFANA_PASSWORD = "test-only-password"  # noqa: S105 - a value for the tests' own .env files


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return compose_config()


@pytest.fixture(scope="module")
def ha_config() -> dict[str, Any]:
    return compose_config(files=(COMPOSE_FILE, HA_FILE))


@pytest.fixture(scope="module")
def full_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A .env with what the optional profiles require (Grafana's password, the GPU host's name)."""
    return env_file(tmp_path_factory.mktemp("env") / ".env", GRAFANA_ADMIN_PASSWORD=GRAFANA_PASSWORD,
                    HOST_NAME="gpu-host-7")


@pytest.fixture(scope="module", params=list(LAYOUTS), ids=list(LAYOUTS))
def everything(request: pytest.FixtureRequest, full_env: Path) -> dict[str, Any]:
    """Each layout with every profile on: every container compose can start."""
    return compose_config(files=LAYOUTS[request.param], env_file=full_env, profiles=("monitoring", "gpu"))


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


@pytest.mark.parametrize("files", list(LAYOUTS.values()), ids=list(LAYOUTS))
@pytest.mark.parametrize("profiles", [(), ("monitoring",), ("gpu",), ("monitoring", "gpu")],
                         ids=["default", "monitoring", "gpu", "all"])
def test_compose_files_validate_against_the_specification(files: tuple[Path, ...], profiles: tuple[str, ...],
                                                          full_env: Path) -> None:
    """Both layouts, with and without the optional profiles, pass `docker-compose config` cleanly."""
    result = run_compose("config", "--quiet", files=files, profiles=profiles, env_file=full_env)
    assert result.returncode == 0, result.stderr
    assert "warn" not in result.stderr.lower(), result.stderr


def test_default_services_and_container_names(config: dict[str, Any]) -> None:
    """`docker compose up -d` starts exactly the pipeline, under the container names the guide uses."""
    assert set(config["services"]) == SERVICES
    for name, service in config["services"].items():
        assert service["container_name"] == name


def test_every_published_port_is_bound_to_loopback(everything: dict[str, Any]) -> None:
    """No container of any layout or profile listens on the host's other interfaces unless a user says so."""
    for name, service in everything["services"].items():
        for host_ip, published, _ in _ports(service):
            assert host_ip == "127.0.0.1", f"{name} publishes {published} on {host_ip or 'every interface'}"


def test_published_ports(config: dict[str, Any]) -> None:
    """Brokers on localhost:9092/9093 with admin APIs on 9644/9645, Console on 8080, the metrics on 8701/8702."""
    services = config["services"]
    assert _ports(services["redpanda-1"]) == {("127.0.0.1", 9092, 9092), ("127.0.0.1", 9644, 9644)}
    assert _ports(services["redpanda-2"]) == {("127.0.0.1", 9093, 9093), ("127.0.0.1", 9645, 9644)}
    assert _ports(services["redpanda-console"]) == {("127.0.0.1", 8080, 8080)}
    assert _ports(services["gpu-temp-publisher"]) == {("127.0.0.1", PUBLISHER_PORT, PUBLISHER_PORT)}
    assert _ports(services["gpu-temp-alert"]) == {("127.0.0.1", ALERTER_PORT, ALERTER_PORT)}
    assert not _ports(services["slack-stand-in"])


def test_metrics_ports_keep_clear_of_the_exporter_range() -> None:
    """The services' metrics ports lie outside 9100-9999, Prometheus's exporter range (node_exporter is 9100)."""
    for port in (PUBLISHER_PORT, ALERTER_PORT):
        assert not 9100 <= port <= 9999


def test_every_container_is_hardened(everything: dict[str, Any]) -> None:
    """Read-only root with a /tmp tmpfs, no capabilities, no privilege gain, bounded memory and processes."""
    for name, service in everything["services"].items():
        assert service.get("read_only") is True, name
        assert any(mount.split(":")[0] == "/tmp" for mount in service.get("tmpfs", [])), name
        assert service.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        assert 0 < int(service.get("mem_limit", 0)) <= 2 * 1024**3, name
        assert 0 < int(service.get("pids_limit", 0)) <= 4096, name


def test_third_party_images_are_pinned_by_digest(everything: dict[str, Any]) -> None:
    """Every image compose pulls names a release tag and the digest of its manifest; the built ones are never pulled."""
    for name, service in everything["services"].items():
        if name in BUILT:
            assert service["pull_policy"] == "build", f"{name}: compose must build it, never pull gpu-temp-*:local"
            continue
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+@sha256:[0-9a-f]{64}", service["image"]), service["image"]


def test_redpanda_listeners_and_cluster(config: dict[str, Any]) -> None:
    """Internal listeners redpanda-1:29092 and redpanda-2:29093 for the services, external ones for the host."""
    node1 = " ".join(config["services"]["redpanda-1"]["command"])
    node2 = " ".join(config["services"]["redpanda-2"]["command"])
    assert "--advertise-kafka-addr=internal://redpanda-1:29092,external://localhost:9092" in node1
    assert "--advertise-kafka-addr=internal://redpanda-2:29093,external://localhost:9093" in node2
    assert "--seeds=redpanda-1:33145" in node2, "the second node joins the first"
    for name in ("redpanda-1", "redpanda-2"):
        service = config["services"][name]
        assert service["image"].startswith("docker.redpanda.com/redpandadata/redpanda:v")
        volumes = {(v["source"], v["target"]) for v in service["volumes"]}
        assert volumes == {(name, "/var/lib/redpanda/data"), (f"{name}-config", "/etc/redpanda")}
        assert name in config["volumes"], "a named volume, so readings survive `down` / `up`"


@pytest.mark.parametrize("node", ["redpanda-1", "redpanda-2", "redpanda-3"])
def test_each_broker_checks_only_itself(ha_config: dict[str, Any], node: str) -> None:
    """A broker's health check asks its own internal listener for metadata, not the whole cluster's health.

    So with one node down the others stay healthy, and `up -d` still recreates the services (the HA promise).
    """
    service = ha_config["services"][node]
    command = " ".join(service["command"])
    own_listener = re.search(r"--kafka-addr=internal://0\.0\.0\.0:(\d+)", command)
    assert own_listener is not None
    assert service["healthcheck"]["test"] == ["CMD", "rpk", "cluster", "info", "-X",
                                              f"brokers=127.0.0.1:{own_listener.group(1)}"]
    assert "health" not in " ".join(service["healthcheck"]["test"])


def test_console_sees_both_brokers_and_admin_apis(config: dict[str, Any]) -> None:
    """Redpanda Console is pointed at both brokers' internal listeners and both admin APIs."""
    console = config["services"]["redpanda-console"]
    assert console["environment"]["KAFKA_BROKERS"] == "redpanda-1:29092,redpanda-2:29093"
    assert console["environment"]["REDPANDA_ADMINAPI_ENABLED"] == "true"
    assert console["environment"]["REDPANDA_ADMINAPI_URLS"] == "http://redpanda-1:9644,http://redpanda-2:9644"


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
    if name != "slack-stand-in":
        assert {"redpanda-1": "service_healthy", "redpanda-2": "service_healthy"}.items() <= _depends(service).items()
        test = " ".join(service["healthcheck"]["test"])
        assert "/readyz" in test
        assert "METRICS_PORT" in test


def test_every_long_running_service_has_a_health_check_and_bounded_logs(everything: dict[str, Any]) -> None:
    """`docker compose ps` shows health for the cluster and the pipeline, and no log grows without bound."""
    for name, service in everything["services"].items():
        if name not in ("redpanda-console", "redpanda-topics"):  # a UI whose image has no HTTP client; a one-shot
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
        "FAILING_FANS": "gpu-0000",
        "TOPIC_PARTITIONS": "6",
        "TOPIC_REPLICATION_FACTOR": "1",
        "LOG_LEVEL": "info",
        "LOG_FORMAT": "text",
        "METRICS_HOST": "0.0.0.0",
        "METRICS_PORT": str(PUBLISHER_PORT),
    }


def test_alerter_environment_threshold_and_stand_in_default(config: dict[str, Any]) -> None:
    """Threshold 150 °C as the original compose, RF 1 for its topics, the stand-in (plain http allowed) by default."""
    alerter = config["services"]["gpu-temp-alert"]
    assert alerter["environment"] == {
        "REDPANDA_BROKERS": "redpanda-1:29092,redpanda-2:29093",
        "SOURCE_TOPIC": "gpu-temperature",
        "CONSUMER_GROUP": "gpu-temp-alert-group",
        "CONSUMER_OFFSET_RESET": "latest",
        "TEMPERATURE_THRESHOLD": "150",
        "ALERT_COOLDOWN": "5m",
        "WARNING_THRESHOLD": "145",
        "THRESHOLDS_FROM_GPU": "true",
        "FORECAST_HORIZON": "5m",
        "FORECAST_WINDOW": "5m",
        "RESOLVE_AFTER": "1m",
        "SILENCE_AFTER": "2m",
        "SLACK_WEBHOOK_URL": STAND_IN_URL,
        "SLACK_ALLOW_HTTP": "true",
        "SLACK_CHANNEL": "#alerts",
        "ALERTMANAGER_URL": "",
        "ALERT_TOPIC": "gpu-temperature-alerts",
        "DLQ_TOPIC": "gpu-temperature-dlq",
        "TOPIC_REPLICATION_FACTOR": "1",
        "LOG_LEVEL": "info",
        "LOG_FORMAT": "text",
        "METRICS_HOST": "0.0.0.0",
        "METRICS_PORT": str(ALERTER_PORT),
    }
    assert "secrets" not in alerter, "no webhook file configured: nothing mounted"
    assert _depends(alerter)["slack-stand-in"] == "service_healthy"
    assert alerter["depends_on"]["alertmanager"] == {"condition": "service_healthy", "required": False}


def test_slack_webhook_comes_from_env_file(tmp_path: Path) -> None:
    """A webhook and channel in .env replace the stand-in's URL and the channel; plain http is no longer allowed."""
    env = compose_config(env_file=env_file(tmp_path / ".env", SLACK_WEBHOOK_URL=WEBHOOK, SLACK_CHANNEL="#gpu-ops"))
    alerter = env["services"]["gpu-temp-alert"]
    assert alerter["environment"]["SLACK_WEBHOOK_URL"] == WEBHOOK
    assert alerter["environment"]["SLACK_CHANNEL"] == "#gpu-ops"
    assert "SLACK_ALLOW_HTTP" not in alerter["environment"]
    assert "SLACK_WEBHOOK_URL_FILE" not in alerter["environment"]


def test_an_empty_slack_channel_reaches_the_alerter_empty(tmp_path: Path) -> None:
    """`SLACK_CHANNEL=` in .env passes an empty channel (the webhook's own is used), not the default #alerts."""
    env = compose_config(env_file=env_file(tmp_path / ".env", SLACK_CHANNEL=""))
    assert env["services"]["gpu-temp-alert"]["environment"]["SLACK_CHANNEL"] == ""


def test_slack_webhook_file_becomes_a_compose_secret(tmp_path: Path) -> None:
    """SLACK_WEBHOOK_URL_FILE in .env mounts that file as a secret; the URL itself is in no environment or output."""
    webhook = tmp_path / "slack-webhook-url"
    webhook.write_text(WEBHOOK + "\n")
    result = run_compose("config", "--format", "json", env_file=env_file(tmp_path / ".env",
                                                                         SLACK_WEBHOOK_URL_FILE=str(webhook)))
    assert result.returncode == 0, result.stderr
    assert "hooks.slack.com" not in result.stdout
    config = yaml.safe_load(result.stdout)
    alerter = config["services"]["gpu-temp-alert"]
    assert alerter["environment"]["SLACK_WEBHOOK_URL_FILE"] == "/run/secrets/slack_webhook_url"
    assert "SLACK_WEBHOOK_URL" not in alerter["environment"]
    assert "SLACK_ALLOW_HTTP" not in alerter["environment"]
    assert alerter["secrets"] == [{"source": "slack_webhook_url", "target": "/run/secrets/slack_webhook_url"}]
    assert Path(config["secrets"]["slack_webhook_url"]["file"]) == webhook


def test_slack_webhook_url_and_file_together_are_refused(tmp_path: Path) -> None:
    """Both in .env: compose stops with a line saying to keep one, rather than guessing."""
    result = run_compose("config", "--quiet", env_file=env_file(
        tmp_path / ".env", SLACK_WEBHOOK_URL=WEBHOOK, SLACK_WEBHOOK_URL_FILE=str(tmp_path / "url")))
    assert result.returncode != 0
    assert "sets both SLACK_WEBHOOK_URL and SLACK_WEBHOOK_URL_FILE; keep one" in result.stderr


def test_env_example_is_the_documented_template() -> None:
    """.env.example is committed with an empty webhook (no secret), and .env itself is ignored by git."""
    example = (REPO / ".env.example").read_text().splitlines()
    assert "SLACK_WEBHOOK_URL=" in example
    assert "#SLACK_WEBHOOK_URL_FILE=./slack-webhook-url" in example
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert ".env" in ignored
    assert "/slack-webhook-url" in ignored


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
    assert publisher.common.metrics_port == PUBLISHER_PORT
    assert publisher.num_devices == 5
    alerter = load_alerter_settings(Env(config["services"]["gpu-temp-alert"]["environment"]))
    assert alerter.threshold == 150.0
    assert alerter.webhook_url is not None
    assert (alerter.early.warning_threshold, alerter.early.forecast_horizon, alerter.early.silence_after) == (
        145.0,
        300.0,
        120.0,
    )
    assert publisher.source.fans.devices == ("gpu-0000",)
    assert alerter.webhook_url.reveal() == STAND_IN_URL
    assert not alerter.alertmanager.enabled, "ALERTMANAGER_URL is empty unless .env sets it"
    assert alerter.common.topic_replication_factor == 1
    assert alerter.common.metrics_port == ALERTER_PORT


def test_docker_stop_waits_for_a_graceful_shutdown(config: dict[str, Any]) -> None:
    """docker stop's grace period outlasts the publisher's flush and the alerter's drain plus shutdown notice."""
    services = config["services"]
    publisher = load_publisher_settings(Env(services["gpu-temp-publisher"]["environment"]))
    assert parse_duration(services["gpu-temp-publisher"]["stop_grace_period"]) > publisher.flush_timeout
    alerter = load_alerter_settings(Env(services["gpu-temp-alert"]["environment"]))
    grace = parse_duration(services["gpu-temp-alert"]["stop_grace_period"])
    assert grace > alerter.shutdown_timeout + alerter.slack_timeout


def test_the_network_is_the_originals_redpanda_network(config: dict[str, Any], tmp_path: Path) -> None:
    """The stack's network is named redpanda_network, the external network the original alerter's compose joins."""
    assert config["networks"]["default"]["name"] == "redpanda_network"
    assert all(set(service["networks"]) == {"default"} for service in config["services"].values())
    original = tmp_path / "docker-compose.yml"  # the shape of the original gpu-temp-alert compose file
    original.write_text(
        "services:\n  gpu-temp-alert-go:\n    image: gpu-temp-alert-go\n    networks: [redpanda_network]\n"
        "networks:\n  redpanda_network:\n    external: true\n")
    joined = compose_config(files=(original,))
    network = joined["networks"]["redpanda_network"]
    assert (network["name"], network["external"]) == ("redpanda_network", True)


def test_ha_override_adds_a_third_node_and_creates_topics_with_rf3(ha_config: dict[str, Any]) -> None:
    """The HA layout has three nodes and creates the three topics with RF 3 and min.insync.replicas 2 first."""
    services = ha_config["services"]
    assert SERVICES | {"redpanda-3", "redpanda-topics"} == set(services)
    node3 = " ".join(services["redpanda-3"]["command"])
    assert "--advertise-kafka-addr=internal://redpanda-3:29094,external://localhost:9094" in node3
    assert "--seeds=redpanda-1:33145" in node3
    assert _ports(services["redpanda-3"]) == {("127.0.0.1", 9094, 9094), ("127.0.0.1", 9646, 9644)}
    assert "redpanda-3" in ha_config["volumes"]

    init = services["redpanda-topics"]
    assert init["entrypoint"] == ["/bin/sh", "-ec"]
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


def test_ha_override_has_prometheus_scrape_all_three_nodes(full_env: Path) -> None:
    """With monitoring on, the HA layout's Prometheus reads a target file listing redpanda-3's admin API too."""
    for files, nodes in ((LAYOUTS["two-node"], 2), (LAYOUTS["ha"], 3)):
        prometheus = compose_config(files=files, env_file=full_env, profiles=("monitoring",))["services"]["prometheus"]
        mounted = {v["target"]: Path(v["source"]) for v in prometheus["volumes"] if v["type"] == "bind"}
        targets = yaml.safe_load(mounted["/etc/prometheus/targets/redpanda.yml"].read_text())
        assert targets == [{"targets": [f"redpanda-{n}:9644" for n in range(1, nodes + 1)]}]


def test_monitoring_profile_is_opt_in_and_requires_a_grafana_password(config: dict[str, Any], full_env: Path,
                                                                     tmp_path: Path) -> None:
    """Prometheus, Grafana and Alertmanager start only with the profile, which refuses to run without a password."""
    assert not MONITORING & set(config["services"])
    refused = run_compose("config", "--quiet", profiles=("monitoring",))
    assert refused.returncode != 0
    assert "set GRAFANA_ADMIN_PASSWORD in .env for the monitoring profile" in refused.stderr
    monitoring = compose_config(env_file=full_env, profiles=("monitoring",))["services"]
    assert monitoring["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == GRAFANA_PASSWORD
    assert _ports(monitoring["prometheus"]) == {("127.0.0.1", 9090, 9090)}
    assert _ports(monitoring["grafana"]) == {("127.0.0.1", 3000, 3000)}
    assert _ports(monitoring["alertmanager"]) == {("127.0.0.1", 9095, 9093)}
    assert _depends(monitoring["grafana"]) == {"prometheus": "service_healthy"}
    assert _depends(monitoring["prometheus"]) == {"alertmanager": "service_healthy"}
    for name in MONITORING:
        for volume in monitoring[name]["volumes"]:
            if volume["type"] == "bind":
                assert Path(volume["source"]).exists(), f"{name} mounts a missing {volume['source']}"
    wired = compose_config(env_file=env_file(tmp_path / ".env", GRAFANA_ADMIN_PASSWORD=GRAFANA_PASSWORD,
                                             ALERTMANAGER_URL="http://alertmanager:9093"), profiles=("monitoring",))
    assert wired["services"]["gpu-temp-alert"]["environment"]["ALERTMANAGER_URL"] == "http://alertmanager:9093"


def test_gpu_profile_runs_the_publisher_on_nvml_with_the_gpus_reserved(full_env: Path) -> None:
    """`--profile gpu` adds a publisher reading NVML, with every NVIDIA GPU reserved and HOST_NAME required."""
    refused = run_compose("config", "--quiet", profiles=("gpu",))
    assert refused.returncode != 0
    assert "set HOST_NAME in .env" in refused.stderr
    services = compose_config(env_file=full_env, profiles=("gpu",))["services"]
    nvml, simulated = services["gpu-temp-publisher-nvml"], services["gpu-temp-publisher"]
    assert nvml["environment"] == {**simulated["environment"], "READINGS_SOURCE": "nvml", "HOST_NAME": "gpu-host-7",
                                   "NVIDIA_DRIVER_CAPABILITIES": "utility"}
    assert nvml["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "count": -1, "capabilities": ["gpu"]}]  # count -1: all
    assert nvml["image"] == simulated["image"]
    assert nvml["networks"]["default"]["aliases"] == ["gpu-temp-publisher"], "scraped under the publisher's name"
    assert _ports(nvml) == _ports(simulated), "one host port: the two publishers cannot run side by side"
    assert nvml["healthcheck"] == simulated["healthcheck"]


def test_readme_docker_quick_start_matches_the_compose_files(config: dict[str, Any], full_env: Path) -> None:
    """Every container, port and URL the README's Docker section names is what the compose files define."""
    section = readme_section("Docker")
    every = {
        **compose_config(env_file=full_env, profiles=("monitoring", "gpu"))["services"],
        **compose_config(files=LAYOUTS["ha"], env_file=full_env)["services"],
    }
    published = {port for service in every.values() for _, port, _ in _ports(service)}
    assert set(re.findall(r"docker logs -f ([\w-]+)", section)) <= {s["container_name"] for s in every.values()}
    assert {"gpu-temp-publisher", "gpu-temp-alert"} <= set(re.findall(r"docker logs -f ([\w-]+)", section))
    table = set(re.findall(r"^\| `([a-z0-9-]+)`", section, flags=re.MULTILINE))  # the container table
    assert table == SERVICES, "the table lists exactly the default services"
    for port in re.findall(r"localhost:(\d+)", section):
        assert int(port) in published, f"README names localhost:{port}, which compose does not publish"
    for port in ("8080", "3000", "9090", "9092", "9093", "9094", "9095"):
        assert f"localhost:{port}" in section
    assert "150 °C" in section
    assert config["services"]["gpu-temp-alert"]["environment"]["TEMPERATURE_THRESHOLD"] == "150"
    for command in ("docker compose up -d", "docker compose -f docker-compose.yml -f docker-compose.ha.yml up -d",
                    "docker compose --profile monitoring up -d",
                    "docker compose --profile gpu up -d --scale gpu-temp-publisher=0"):
        assert command in section


def test_readme_tells_an_article_reader_where_the_webhook_goes() -> None:
    """Where the article says to replace YOUR_WEBHOOK_URL in docker-compose.yml, README and that file say what to do."""
    section = readme_section("Docker")
    assert "YOUR_WEBHOOK_URL" in section
    assert "SLACK_WEBHOOK_URL=https://hooks.slack.com/services/" in section
    assert "SLACK_WEBHOOK_URL_FILE" in section
    compose_text = COMPOSE_FILE.read_text()
    alerter_block = compose_text[compose_text.index("  gpu-temp-alert:"):compose_text.index("  slack-stand-in:")]
    assert "YOUR_WEBHOOK_URL" in alerter_block
    assert "put your webhook in .env" in alerter_block


def test_readme_says_what_two_nodes_and_dev_mode_cost() -> None:
    """The README states the two-node quorum loss and that dev-container mode skips fsync."""
    section = " ".join(readme_section("Docker").split())
    assert "losing either one also loses the controller quorum" in section
    assert "`--mode dev-container` skips fsync" in section


def test_readme_quotes_the_log_lines_the_services_print() -> None:
    """The README's sample log lines have the exact form the entrypoint test finds in the real output."""
    section = readme_section("Docker")
    assert re.search(HIGH_TEMP_LINE, section)
    assert re.search(ALERT_LINE, section)


def test_readme_security_table_names_real_tests_and_the_pinned_digests(everything: dict[str, Any]) -> None:
    """Each test the Security section cites exists, and its digest table matches every image compose pulls."""
    section = readme_section("Security")
    test_sources = "".join(path.read_text() for path in (REPO / "tests").rglob("test_*.py"))
    for name in set(re.findall(r"`(test_\w+)`", section)):
        assert f"def {name}(" in test_sources, f"the README cites {name}, which no test defines"
    for name, service in everything["services"].items():
        if name in BUILT:
            continue
        image, _, digest = service["image"].partition("@sha256:")
        row = next((line for line in section.splitlines() if f"`{image}`" in line), None)
        assert row is not None, f"{image} is missing from the README's digest table"
        assert f"`{digest[:8]}…{digest[-5:]}`" in row or f"`{digest[:8]}…{digest[-6:]}`" in row, row


def test_an_empty_early_warning_setting_in_env_turns_it_off(tmp_path: Path) -> None:
    """Compose turns the early warnings on; `WARNING_THRESHOLD=` and `FAILING_FANS=` in .env turn a warning and the
    failing fan off again (the services read an empty value as unset)."""
    config = compose_config(env_file=env_file(tmp_path / ".env", WARNING_THRESHOLD="", FAILING_FANS=""))
    alerter = load_alerter_settings(Env(config["services"]["gpu-temp-alert"]["environment"]))
    publisher = load_publisher_settings(Env(config["services"]["gpu-temp-publisher"]["environment"]))
    assert alerter.early.warning_threshold is None
    assert alerter.early.forecast_horizon == 300.0
    assert publisher.source.fans.devices == ()
