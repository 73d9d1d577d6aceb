"""Real HTTP peers for the Alertmanager receiver's tests: the real Alertmanager, its webhook, a misbehaving server.

- `alertmanager_binary()` finds the Debian package's binary, or skips (fails when
  REQUIRE_MONITORING_BINARIES=1, as CI sets) with a line naming the package.
- `AlertmanagerProcess` runs it on free loopback ports with its own data folder
  and a config that routes everything to a `WebhookSink`, so a test sees what
  Alertmanager notifies, as a real receiver would.
- `ScriptedServer` answers each request as told (a status, a hang, bytes that are
  not HTTP, a closed connection), for the client's error classification.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import socketserver
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support import free_ports, wait_until

PACKAGE = "prometheus-alertmanager"
BINARIES = ("prometheus-alertmanager", "alertmanager")


def alertmanager_binary() -> str:
    """The Alertmanager binary; skips the test when missing, or fails when REQUIRE_MONITORING_BINARIES=1."""
    for name in BINARIES:
        path = shutil.which(name)
        if path:
            return path
    reason = f"Alertmanager is not installed: apt-get install -y {PACKAGE} (the Debian package)"
    if os.environ.get("REQUIRE_MONITORING_BINARIES") == "1":
        pytest.fail(f"{reason}; REQUIRE_MONITORING_BINARIES=1 forbids skipping", pytrace=False)
    pytest.skip(reason)




# --- The webhook Alertmanager notifies ------------------------------------------------------------------------


class WebhookSink:
    """A webhook receiver on loopback: keeps every notification (the webhook JSON, version 4) Alertmanager posts."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with sink._lock:
                    sink.notifications.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/notify"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> WebhookSink:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def alerts(self, status: str | None = None) -> list[dict[str, Any]]:
        """Every alert of every notification so far, optionally only those with this status (firing, resolved)."""
        with self._lock:
            notified = list(self.notifications)
        return [a for n in notified for a in n["alerts"] if status is None or a["status"] == status]

    def wait_for(self, status: str, timeout: float = 20.0, **labels: str) -> dict[str, Any]:
        """The first notified alert with this status and these labels, waiting for it to arrive."""

        def found() -> dict[str, Any] | None:
            return next(
                (a for a in self.alerts(status) if all(a["labels"].get(k) == v for k, v in labels.items())), None
            )

        result: dict[str, Any] = wait_until(found, timeout, f"a {status} notification of {labels}")
        return result


# --- The real Alertmanager ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Routing:
    """The route's grouping and timers, short so a test sees notifications within seconds."""

    group_by: tuple[str, ...] = ("alertname", "device_id")
    group_wait: str = "0s"
    group_interval: str = "1s"
    repeat_interval: str = "1h"
    resolve_timeout: str = "1s"


def alertmanager_config(webhook_url: str, routing: Routing) -> str:
    """One route for everything to the test's webhook, with resolved notifications on."""
    return f"""\
global:
  resolve_timeout: {routing.resolve_timeout}
route:
  receiver: test-webhook
  group_by: [{", ".join(routing.group_by)}]
  group_wait: {routing.group_wait}
  group_interval: {routing.group_interval}
  repeat_interval: {routing.repeat_interval}
receivers:
  - name: test-webhook
    webhook_configs:
      - url: {webhook_url}
        send_resolved: true
"""


@dataclass
class AlertmanagerProcess:
    """A real Alertmanager on a free loopback port, clustering off, its data in `folder`."""

    folder: Path
    webhook_url: str
    routing: Routing = field(default_factory=Routing)
    port: int = field(default_factory=lambda: free_ports(1)[0])
    _process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.folder / "alertmanager.log"

    def start(self, timeout: float = 30.0) -> None:
        binary = alertmanager_binary()
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / "alertmanager.yml"
        config.write_text(alertmanager_config(self.webhook_url, self.routing))
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.path={self.folder / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--cluster.listen-address=",  # no gossip port: one instance, loopback only
                    "--log.level=debug",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._ready, timeout, f"Alertmanager to be ready (log: {self.log_path})", interval=0.1)

    def _ready(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            pytest.fail(f"Alertmanager exited with {self._process.returncode}: {self.log_tail()}")
        try:
            return requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def alerts(self, **filters: str) -> list[dict[str, Any]]:
        """GET /api/v2/alerts (active ones only, as Alertmanager lists them), filtered by labels."""
        response = requests.get(f"{self.url}/api/v2/alerts", timeout=5)
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()
        return [a for a in found if all(a["labels"].get(k) == v for k, v in filters.items())]

    def groups(self) -> list[dict[str, Any]]:
        """GET /api/v2/alerts/groups: the aggregation groups, each with its labels and alerts."""
        response = requests.get(f"{self.url}/api/v2/alerts/groups", timeout=5)
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()
        return found

    def post_raw(self, alerts: list[dict[str, Any]]) -> requests.Response:
        return requests.post(f"{self.url}/api/v2/alerts", json=alerts, timeout=5)


@contextmanager
def running_alertmanager(
    folder: Path, routing: Routing | None = None
) -> Iterator[tuple[AlertmanagerProcess, WebhookSink]]:
    """An Alertmanager and the webhook it notifies, both stopped on exit."""
    with WebhookSink() as sink:
        process = AlertmanagerProcess(folder, sink.url, routing or Routing())
        try:
            process.start()
            yield process, sink
        finally:
            process.stop()


# --- A server that misbehaves on cue ---------------------------------------------------------------------------

Answer = bytes | str  # raw bytes to send, or "hang" (never answer) or "close" (close without a word)


def http_answer(status: int, body: str = "", headers: dict[str, str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body.encode())}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


@dataclass(frozen=True)
class Request:
    head: str
    body: bytes


class ScriptedServer:
    """A TCP server on loopback that reads an HTTP request and answers the next scripted answer (then 200)."""

    def __init__(self, *answers: Answer) -> None:
        self.script: list[Answer] = list(answers)
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                server._serve(self.request)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def url(self, auth: str = "", path: str = "", query: str = "") -> str:
        return f"http://{auth + '@' if auth else ''}127.0.0.1:{self.port}{path}{'?' + query if query else ''}"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
        with self._lock:
            self.requests.append(Request(head.decode("latin-1"), body))
            answer = self.script.pop(0) if self.script else http_answer(200)
        if answer == "hang":
            self._stopping.wait(30)
        elif answer != "close":
            with contextlib.suppress(OSError):  # the client may hang up before reading it all
                conn.sendall(answer if isinstance(answer, bytes) else answer.encode())
