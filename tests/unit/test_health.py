"""The health server answers scrapes and probes over real HTTP on loopback."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Counter

from shared.health import HealthServer


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture
def served():
    registry = CollectorRegistry()
    counter = Counter("demo_things", "Things seen.", registry=registry)
    ready = [False]
    server = HealthServer(0, lambda: ready[0], registry, host="127.0.0.1").start()
    yield server, counter, ready
    server.stop()


def test_metrics_text_reflects_counters(served) -> None:
    """/metrics serves the registry in Prometheus text format, current values included."""
    server, counter, _ = served
    counter.inc(3)
    status, body = _get(server.port, "/metrics")
    assert status == 200
    assert "demo_things_total 3.0" in body


def test_readiness_follows_callback_and_liveness_is_constant(served) -> None:
    """/readyz is 503 until the service says it is ready; /healthz is always 200; unknown paths 404."""
    server, _, ready = served
    assert _get(server.port, "/readyz")[0] == 503
    ready[0] = True
    assert _get(server.port, "/readyz")[0] == 200
    assert _get(server.port, "/healthz")[0] == 200
    assert _get(server.port, "/nope")[0] == 404
