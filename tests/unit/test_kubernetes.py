"""deploy/kubernetes/: valid against the Kubernetes API schemas (offline), and wired the way the services read it."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest
import yaml

from alerter.settings import DEFAULT_METRICS_PORT as ALERTER_PORT
from alerter.settings import load_settings as load_alerter_settings
from publisher.settings import DEFAULT_METRICS_PORT as PUBLISHER_PORT
from publisher.settings import load_settings as load_publisher_settings
from shared.config import Env
from tests.containers import REPO, readme_section

KUBERNETES = REPO / "deploy" / "kubernetes"
KUSTOMIZATION = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
MANIFESTS = [KUBERNETES / name for name in KUSTOMIZATION["resources"]]
# The oldest Kubernetes release still in upstream support when this was written, and the newest schemas here.
VERSIONS = ("1.32.0", kubernetes_validate.latest_version())


def _objects() -> list[dict[str, Any]]:
    return [document for path in MANIFESTS for document in yaml.safe_load_all(path.read_text()) if document]


def _object(kind: str, name: str) -> dict[str, Any]:
    return next(o for o in _objects() if o["kind"] == kind and o["metadata"]["name"] == name)


def _pod(kind: str, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = _object(kind, name)["spec"]["template"]["spec"]
    return spec


def _container(kind: str, name: str) -> dict[str, Any]:
    containers = _pod(kind, name)["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _environment(kind: str, name: str) -> dict[str, str]:
    """What the container's process sees: its ConfigMaps' data, then its literal env (fieldRefs left out)."""
    container = _container(kind, name)
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(_object("ConfigMap", source["configMapRef"]["name"])["data"])
    env.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
    return env


def test_kustomization_lists_every_manifest_in_the_folder() -> None:
    """`kubectl apply -k deploy/kubernetes` applies each manifest file of the folder, and nothing missing."""
    on_disk = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(KUSTOMIZATION["resources"]) == on_disk
    assert {image["name"] for image in KUSTOMIZATION["images"]} == {"gpu-temp-publisher", "gpu-temp-alert"}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda path: path.name)
def test_manifests_validate_against_the_kubernetes_schemas(path: Path, version: str) -> None:
    """Each object passes the API's OpenAPI schema in strict mode (unknown fields rejected), offline."""
    for document in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(document, version, strict=True)


def test_the_validator_rejects_a_broken_manifest() -> None:
    """The schemas really bite: a misspelt field and a wrong type are both errors (so a pass means something)."""
    daemonset = _object("DaemonSet", "gpu-temp-publisher")
    misspelt = {**daemonset, "spec": {**daemonset["spec"], "nodeSelectr": {}}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misspelt, VERSIONS[-1], strict=True)
    wrong_type = {**daemonset, "spec": {**daemonset["spec"], "minReadySeconds": "soon"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong_type, VERSIONS[-1], strict=True)


def test_publisher_runs_as_a_daemonset_on_every_gpu_node_like_dcgm_exporter() -> None:
    """GPU nodes only (GPU feature discovery's label, the GPU taint tolerated), in the NVIDIA runtime, all GPUs seen."""
    pod = _pod("DaemonSet", "gpu-temp-publisher")
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["runtimeClassName"] == "nvidia"
    container = _container("DaemonSet", "gpu-temp-publisher")
    assert "nvidia.com/gpu" not in str(container["resources"]), "a monitor must not take GPUs from workloads"
    env = _environment("DaemonSet", "gpu-temp-publisher")
    assert env["READINGS_SOURCE"] == "nvml"
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all"
    assert "utility" in env["NVIDIA_DRIVER_CAPABILITIES"].split(","), "NVML is one of the driver's utility libraries"


def test_publisher_names_the_node_from_the_downward_api() -> None:
    """HOST_NAME is the node's name (spec.nodeName), so device ids are unique across nodes and survive restarts."""
    host = next(e for e in _container("DaemonSet", "gpu-temp-publisher")["env"] if e["name"] == "HOST_NAME")
    assert host["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}


def test_alerter_reads_the_webhook_from_the_mounted_secret() -> None:
    """SLACK_WEBHOOK_URL_FILE is the file the Secret's key is mounted as; no webhook in any ConfigMap or env."""
    container = _container("Deployment", "gpu-temp-alert")
    env = _environment("Deployment", "gpu-temp-alert")
    assert "SLACK_WEBHOOK_URL" not in env
    webhook_file = PurePosixPath(env["SLACK_WEBHOOK_URL_FILE"])
    mount = next(m for m in container["volumeMounts"] if PurePosixPath(m["mountPath"]) == webhook_file.parent)
    assert mount["readOnly"] is True
    volume = next(v for v in _pod("Deployment", "gpu-temp-alert")["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "gpu-temp-alert-slack"
    assert {"key": "webhook-url", "path": webhook_file.name} in volume["secret"]["items"]
    assert volume["secret"]["defaultMode"] & 0o007 == 0, "not readable by others"
    assert _pod("Deployment", "gpu-temp-alert")["securityContext"]["fsGroup"] == 10001, "readable by the app user"


@pytest.mark.parametrize(("kind", "name"), [("DaemonSet", "gpu-temp-publisher"), ("Deployment", "gpu-temp-alert")])
def test_pods_meet_the_restricted_pod_security_standard(kind: str, name: str) -> None:
    """Non-root, no privilege escalation, no capabilities, RuntimeDefault seccomp, read-only root with a /tmp."""
    pod, container = _pod(kind, name), _container(kind, name)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001, "the images' own unprivileged user"
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False, "neither talks to the Kubernetes API"
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}}
    assert "/tmp" in {m["mountPath"] for m in container["volumeMounts"]}
    assert container["resources"]["limits"]["memory"]
    namespace = _object("Namespace", KUSTOMIZATION["namespace"])
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize(("kind", "name", "port"), [("DaemonSet", "gpu-temp-publisher", PUBLISHER_PORT),
                                                    ("Deployment", "gpu-temp-alert", ALERTER_PORT)])
def test_probes_and_scrape_annotations_use_the_metrics_port(kind: str, name: str, port: int) -> None:
    """Liveness asks /healthz, readiness /readyz, Prometheus scrapes /metrics, all on the METRICS_PORT given."""
    container, env = _container(kind, name), _environment(kind, name)
    assert env["METRICS_PORT"] == str(port)
    assert env["METRICS_HOST"] == "0.0.0.0", "reachable by the kubelet's probes and by Prometheus"
    assert container["ports"] == [{"name": "metrics", "containerPort": port}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    annotations = _object(kind, name)["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/port": str(port),
                           "prometheus.io/path": "/metrics"}


def test_services_accept_their_configmaps() -> None:
    """Each service's own settings loader accepts its ConfigMap (the alerter given a webhook as the Secret would)."""
    publisher = load_publisher_settings(Env(_environment("DaemonSet", "gpu-temp-publisher")))
    assert publisher.common.topic_replication_factor == 3
    assert publisher.common.metrics_port == PUBLISHER_PORT
    env = _environment("Deployment", "gpu-temp-alert")
    del env["SLACK_WEBHOOK_URL_FILE"]
    alerter = load_alerter_settings(Env({**env, "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/X"}))
    assert alerter.common.brokers == publisher.common.brokers
    assert alerter.source_topic == _environment("DaemonSet", "gpu-temp-publisher")["REDPANDA_TOPIC"]
    grace = _pod("Deployment", "gpu-temp-alert")["terminationGracePeriodSeconds"]
    assert grace > alerter.shutdown_timeout + alerter.slack_timeout
    assert _pod("DaemonSet", "gpu-temp-publisher")["terminationGracePeriodSeconds"] > publisher.flush_timeout


def test_readme_creates_the_secret_the_deployment_mounts() -> None:
    """The README's kubectl commands apply this folder and create the Secret and key the alerter mounts."""
    section = readme_section("Monitoring real GPUs")
    assert "kubectl apply -k deploy/kubernetes" in section
    volume = next(v for v in _pod("Deployment", "gpu-temp-alert")["volumes"] if "secret" in v)["secret"]
    namespace = KUSTOMIZATION["namespace"]
    create = (f"kubectl -n {namespace} create secret generic {volume['secretName']} "
              f"--from-file={volume['items'][0]['key']}=")
    assert create in section
