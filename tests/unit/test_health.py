"""The health server answers scrapes and probes over real HTTP on loopback, and hostile clients cannot exhaust it."""

from __future__ import annotations

import json
import logging
import socket
import struct
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from shared.health import HealthServer
from shared.logs import configure_logging


def _get(port: int, path: str, host: str = "127.0.0.1") -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=5) as response:
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


class JsonLog:
    """LOG_FORMAT=json from `start()` on (call it in the test: capsys captures stderr only there)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys
        self._seen: list[str] = []

    def start(self) -> None:
        configure_logging("info", "json")

    def wait_for(self, text: str, timeout: float = 10) -> list[dict[str, object]]:
        """Every entry so far, once one contains `text` (a sentinel) or `timeout` passed; fails on any raw line."""
        deadline = time.monotonic() + timeout
        while True:
            self._seen.extend(self._capsys.readouterr().err.splitlines())
            if any(text in line for line in self._seen) or time.monotonic() > deadline:
                raw = [line for line in self._seen if not line.startswith("{")]
                assert not raw, f"raw lines in the log: {raw}"
                return [json.loads(line) for line in self._seen]
            time.sleep(0.02)


@pytest.fixture
def json_log(capsys: pytest.CaptureFixture[str]) -> Iterator[JsonLog]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level, sys.excepthook, threading.excepthook
    yield JsonLog(capsys)
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    sys.excepthook, threading.excepthook = saved[2], saved[3]
    logging.captureWarnings(False)


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


def test_binds_loopback_unless_told_otherwise() -> None:
    """By default the endpoints listen on 127.0.0.1 only; an IPv6 address such as ::1 works too."""
    server = HealthServer(0, lambda: True, CollectorRegistry()).start()
    try:
        assert server._server.server_address[0] == "127.0.0.1"
        assert _get(server.port, "/healthz") == (200, "ok\n")
    finally:
        server.stop()
    server = HealthServer(0, lambda: True, CollectorRegistry(), host="::1").start()
    try:
        assert _get(server.port, "/healthz", host="[::1]") == (200, "ok\n")
    finally:
        server.stop()


def _half_sent(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # the blank line that ends the request never comes
    return sock


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True


def test_half_sent_requests_hold_a_bounded_number_of_threads(json_log: JsonLog) -> None:
    """500 connections that never finish their request hold at most `max_connections` threads: the rest are closed
    at once (one throttled log line), and the held ones are dropped after the request timeout, after which the
    server answers again."""
    json_log.start()
    before = threading.active_count()
    server = HealthServer(0, lambda: True, CollectorRegistry(), max_connections=8, request_timeout=1.0).start()
    clients: list[socket.socket] = []
    try:
        clients = [_half_sent(server.port) for _ in range(500)]
        peak = threading.active_count()
        for sock in clients:
            sock.settimeout(10)
        closed = [sock for sock in clients if _closed_by_server(sock)]
        assert len(closed) == 500, "every half-sent request is closed: at once, or when its time is up"
        assert peak <= before + 1 + 8, f"{peak - before} threads for 500 half-sent requests"
        assert _get(server.port, "/healthz") == (200, "ok\n")
    finally:
        for sock in clients:
            sock.close()
        server.stop()
    events = [str(e["event"]) for e in json_log.wait_for("all 8 connections are in use")]
    busy = [e for e in events if "all 8 connections are in use" in e]
    assert len(busy) == 1, events


def test_a_request_trickled_byte_by_byte_is_dropped_at_its_deadline() -> None:
    """A client sending one byte every 20 ms (each read well within the socket timeout) is still cut off once
    the whole request has taken `request_timeout`."""
    server = HealthServer(0, lambda: True, CollectorRegistry(), request_timeout=0.5).start()
    try:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"X-Padding: " + b"a" * 2000 + b"\r\n\r\n"
        sent = 0
        try:
            for byte in request:
                sock.sendall(bytes([byte]))
                sent += 1
                time.sleep(0.02)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert sent < len(request), "the server hung up before the trickled request was complete"
        sock.close()
    finally:
        server.stop()


def test_an_aborted_scrape_is_one_json_line_not_a_traceback(json_log: JsonLog) -> None:
    """A client that resets its connection mid-request costs one log line through logging (JSON here), naming the
    error; nothing is printed raw, and the next scrape is served."""
    json_log.start()
    server = HealthServer(0, lambda: True, CollectorRegistry()).start()
    try:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        sock.sendall(b"GET /metr")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # RST
        entries = json_log.wait_for("ConnectionResetError")
        assert _get(server.port, "/healthz")[0] == 200
    finally:
        server.stop()
    [entry] = [e for e in entries if "ConnectionResetError" in str(e["event"])]
    assert entry["level"] == "warning"
    assert entry["logger"] == "shared.health"
    assert "exception" not in entry


def test_a_failing_readiness_check_is_a_500_and_one_line(json_log: JsonLog) -> None:
    """If the service's ready() raises, /readyz answers 500 and one line says why; the server keeps serving."""
    json_log.start()

    def broken() -> bool:
        raise RuntimeError("ledger unavailable")

    server = HealthServer(0, broken, CollectorRegistry()).start()
    try:
        assert _get(server.port, "/readyz")[0] == 500
        assert _get(server.port, "/healthz")[0] == 200
    finally:
        server.stop()
    events = [str(e["event"]) for e in json_log.wait_for("ledger unavailable")]
    assert [e for e in events if "ledger unavailable" in e] == [
        "metrics server: /readyz failed: RuntimeError: ledger unavailable"
    ]
