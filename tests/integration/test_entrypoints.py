"""The images' exact commands, with the compose file's environment, run the pipeline end to end.

No Docker engine runs here, so each container is reproduced as a process: the command is the
Dockerfile's ENTRYPOINT/CMD (or the compose service's entrypoint/command) as BuildKit parses it,
the environment is the image's ENV overlaid with the compose service's `environment` as the
Compose CLI resolves it, and only the compose network's host names are mapped: the brokers to the
test cluster, slack-stand-in to a stand-in started here from its compose command, ports to free
ones, metrics bound to loopback. Topic and group names get a fresh suffix so runs never share records.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from shared.codec import decode_reading
from shared.kafka import consumer_config, ensure_topic
from tests.containers import (
    ALERT_LINE,
    BIN,
    HIGH_TEMP_LINE,
    REPO,
    compose_config,
    dashboard_queries,
    dockerfile_instructions,
    final_stage,
    image_command,
    promql_metric_names,
    queryable_names,
)
from tests.support import free_port, wait_until

pytestmark = pytest.mark.integration

T = TypeVar("T")
COMPOSE_BROKERS = "redpanda-1:29092,redpanda-2:29093"
STAND_IN_HOST = "slack-stand-in:3001"
SHUTDOWN_NOTICE = "GPU Temperature Alert Service shutting down"


def _http(url: str, data: bytes | None = None) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, data=data, timeout=5) as response:  # noqa: S310 - loopback only
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


def _image_env(dockerfile: Path) -> dict[str, str]:
    """The final stage's ENV, with ${PATH} pointing into this checkout's virtual environment."""
    env: dict[str, str] = {}
    for instruction in final_stage(dockerfile_instructions(dockerfile)):
        if instruction.cmd == "ENV":
            pairs = instruction.value
            env.update({pairs[i]: pairs[i + 1].strip('"') for i in range(0, len(pairs), 2)})
    env["PATH"] = f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    return env


@dataclass
class Container:
    """A process standing in for one container: its command, log file and exit."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 60) -> int:
        """`docker stop`: SIGTERM to the entrypoint process, then wait (SIGKILL only past the timeout)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            pytest.fail(f"{self.name} ignored SIGTERM for {timeout:.0f}s:\n{self.output()[-3000:]}")


@pytest.fixture
def run_container(tmp_path: Path) -> Iterator[Callable[[str, list[str], dict[str, str]], Container]]:
    started: list[Container] = []

    def run(name: str, command: list[str], env: dict[str, str]) -> Container:
        workdir = tmp_path / name  # the image's WORKDIR: empty, so no stray .env is read
        workdir.mkdir()
        log = tmp_path / f"{name}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(command, cwd=workdir, env=env, stdout=sink, stderr=subprocess.STDOUT)
        container = Container(name, process, log)
        started.append(container)
        return container

    yield run
    for container in started:
        if container.process.poll() is None:
            container.process.kill()
            container.process.wait(10)


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    # Through .env, as a user would: hot readings on every tick (threshold still 150 °C) and a
    # faster ticker, so an alert is due within seconds rather than minutes.
    env_file = tmp_path_factory.mktemp("compose") / ".env"
    env_file.write_text("ABNORMAL_PROBABILITY=1\nINTERVAL_MS=200\n")
    return compose_config(env_file=env_file)


def _mapped(environment: dict[str, str], *, bootstrap: str, stand_in: str, unique: str) -> dict[str, str]:
    """Compose host names to this machine, fresh topic/group names, and free metrics ports."""
    env = {}
    for key, value in environment.items():
        mapped = value.replace(COMPOSE_BROKERS, bootstrap).replace(STAND_IN_HOST, stand_in)
        if key in ("REDPANDA_TOPIC", "SOURCE_TOPIC", "ALERT_TOPIC", "DLQ_TOPIC", "CONSUMER_GROUP"):
            mapped = f"{mapped}-{unique}"
        env[key] = mapped
    assert "redpanda-" not in " ".join(env.values()), "every compose host name is mapped"
    assert env["METRICS_HOST"] == "0.0.0.0", "compose opens the metrics port to Prometheus on the compose network"
    env["METRICS_HOST"] = "127.0.0.1"  # tests listen on loopback only
    env["METRICS_PORT"] = str(free_port())
    return env


def _stand_in_command(compose: dict[str, Any], port: int) -> list[str]:
    """The compose service's entrypoint + command, listening on loopback and a free port."""
    service = compose["services"]["slack-stand-in"]
    command = [*service["entrypoint"], *service["command"]]
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    return command


def _read_devices(bootstrap: str, topic: str, group: str, devices: int, timeout: float) -> dict[str, int]:
    """Readings per device on the topic, read until `devices` devices were seen (or the timeout)."""
    consumer = Consumer(consumer_config(bootstrap, "entrypoint-test-reader", group, "earliest"))
    consumer.subscribe([topic])
    seen: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    try:
        while len(seen) < devices and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            key, value = message.key(), message.value()
            assert key is not None
            assert value is not None
            reading = decode_reading(value)
            assert key.decode() == reading.device_id, "records are keyed by device"
            seen[reading.device_id] = seen.get(reading.device_id, 0) + 1
    finally:
        consumer.close()
    return seen


def _image_healthcheck(dockerfile: Path) -> list[str]:
    check = next(i for i in final_stage(dockerfile_instructions(dockerfile)) if i.cmd == "HEALTHCHECK")
    assert check.value[0] == "CMD"
    return list(check.value[1:])


def _probe(command: list[str], env: dict[str, str]) -> int:
    """Run a health-check command as Docker would (exec form); its exit code is the verdict."""
    return subprocess.run(command, env=env, capture_output=True, timeout=30).returncode


def _scraped_names(port: int) -> set[str]:
    status, body = _http(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    return queryable_names(text_string_to_metric_families(body))


def test_images_commands_run_the_pipeline_end_to_end(
    compose: dict[str, Any], run_container: Callable[[str, list[str], dict[str, str]], Container],
    kafka_bootstrap: str, kafka_admin: AdminClient, unique: str,
) -> None:
    """Stand-in, alerter and publisher, started by their image commands, turn hot readings into alerts.

    Readings reach the topic keyed by device, the alerter's threshold is compose's 150 °C, an alert
    arrives at the stand-in, /healthz and /readyz answer, /metrics has every series the dashboard
    queries, the log lines the README quotes appear, and SIGTERM stops both services cleanly.
    """
    services = compose["services"]
    stand_in_port = free_port()
    stand_in = run_container("slack-stand-in", _stand_in_command(compose, stand_in_port), _image_env(
        REPO / services["slack-stand-in"]["build"]["dockerfile"]))
    stand_in_url = f"http://127.0.0.1:{stand_in_port}"
    wait_until(lambda: _http(f"{stand_in_url}/healthz")[0] == 200, 30, "the stand-in's /healthz")

    mapping = {"bootstrap": kafka_bootstrap, "stand_in": f"127.0.0.1:{stand_in_port}", "unique": unique}
    alerter_env = _mapped(services["gpu-temp-alert"]["environment"], **mapping)
    publisher_env = _mapped(services["gpu-temp-publisher"]["environment"], **mapping)
    assert alerter_env["SLACK_WEBHOOK_URL"] == f"{stand_in_url}/services/stand-in"
    assert alerter_env["TEMPERATURE_THRESHOLD"] == "150"
    topic = publisher_env["REDPANDA_TOPIC"]
    assert alerter_env["SOURCE_TOPIC"] == topic

    # The alerter starts at the newest records (CONSUMER_OFFSET_RESET=latest), so let it own the
    # partitions before the first reading; the publisher leaves an existing topic as it is.
    ensure_topic(kafka_admin, topic, partitions=int(publisher_env["TOPIC_PARTITIONS"]), replication_factor=1)
    alerter_command = image_command(REPO / services["gpu-temp-alert"]["build"]["dockerfile"])
    assert alerter_command == ["gpu-temp-alert"]
    alerter = run_container("gpu-temp-alert", alerter_command, {
        **_image_env(REPO / services["gpu-temp-alert"]["build"]["dockerfile"]), **alerter_env})
    alerter_port = int(alerter_env["METRICS_PORT"])

    def alerter_ready_or_gone() -> bool:
        return alerter.process.poll() is not None or _http(f"http://127.0.0.1:{alerter_port}/readyz")[0] == 200

    wait_until(alerter_ready_or_gone, 90, "the alerter's /readyz (partitions assigned)")
    assert alerter.process.poll() is None, f"the alerter exited:\n{alerter.output()[-3000:]}"

    publisher_command = image_command(REPO / services["gpu-temp-publisher"]["build"]["dockerfile"])
    assert publisher_command == ["gpu-temp-publisher"]
    publisher = run_container("gpu-temp-publisher", publisher_command, {
        **_image_env(REPO / services["gpu-temp-publisher"]["build"]["dockerfile"]), **publisher_env})
    publisher_port = int(publisher_env["METRICS_PORT"])

    def critical_alerts() -> list[dict[str, Any]]:
        """Critical alerts only: compose also turns on warnings (145 °C), which may come first."""
        status, body = _http(f"{stand_in_url}/_received")
        messages = json.loads(body)["messages"] if status == 200 else []
        return [
            attachment
            for m in messages
            for attachment in m["message"].get("attachments") or []
            if "exceeding threshold of" in attachment.get("text", "")
        ]

    received = wait_until(critical_alerts, 90, "a critical alert at the stand-in", interval=0.5)
    assert "exceeding threshold of *150.00°C*" in received[0]["text"]

    # The image's HEALTHCHECK (/healthz) and compose's (/readyz) pass, run exactly as written.
    probes = {}
    for name, env in (("gpu-temp-publisher", publisher_env), ("gpu-temp-alert", alerter_env)):
        port = env["METRICS_PORT"]
        assert _http(f"http://127.0.0.1:{port}/healthz")[0] == 200, f"{name} /healthz"
        assert _http(f"http://127.0.0.1:{port}/readyz")[0] == 200, f"{name} /readyz"
        dockerfile = REPO / services[name]["build"]["dockerfile"]
        probe_env = {**_image_env(dockerfile), **env}
        probes[name] = (_image_healthcheck(dockerfile), probe_env)
        assert _probe(probes[name][0], probe_env) == 0, f"{name}: the image's HEALTHCHECK fails"
        assert services[name]["healthcheck"]["test"][0] == "CMD"
        assert _probe(services[name]["healthcheck"]["test"][1:], probe_env) == 0, f"{name}: compose's check fails"
    stand_in_check = [part.replace("127.0.0.1:3001", f"127.0.0.1:{stand_in_port}")
                      for part in services["slack-stand-in"]["healthcheck"]["test"][1:]]
    assert _probe(stand_in_check, _image_env(REPO / "Dockerfile.alerter")) == 0, "the stand-in's health check fails"
    scraped = _scraped_names(publisher_port) | _scraped_names(alerter_port)
    dashboard_names = set().union(*(promql_metric_names(expr) for _, expr in dashboard_queries()))
    assert dashboard_names <= scraped, f"the dashboard queries series no service serves: {dashboard_names - scraped}"

    devices = int(publisher_env["NUM_DEVICES"])
    per_device = _read_devices(kafka_bootstrap, topic, f"entrypoint-reader-{unique}", devices, 60)
    assert len(per_device) == devices, f"readings of every simulated GPU are on the topic: {per_device}"

    assert publisher.stop() == 0, f"publisher exit code after SIGTERM:\n{publisher.output()[-3000:]}"
    assert alerter.stop() == 0, f"alerter exit code after SIGTERM:\n{alerter.output()[-3000:]}"
    for name, (command, env) in probes.items():
        assert _probe(command, env) != 0, f"{name}: the HEALTHCHECK still passes with the service gone"
    notices = wait_until(lambda: [
        m for m in json.loads(_http(f"{stand_in_url}/_received")[1])["messages"]
        if SHUTDOWN_NOTICE in m["message"].get("text", "")], 10, "the alerter's shutdown notification")
    assert len(notices) == 1
    stand_in.stop()

    # The log lines the README quotes (docker logs -f gpu-temp-publisher / gpu-temp-alert).
    assert re.search(HIGH_TEMP_LINE, publisher.output()), publisher.output()[-3000:]
    assert re.search(ALERT_LINE, alerter.output()), alerter.output()[-3000:]
