"""The HTTP side of observability: /metrics (Prometheus text), /healthz and /readyz.

Runs in a daemon thread so the service loop never waits on a scrape. Port 0
binds a free port (tests); `server.port` tells which. It binds loopback unless
told otherwise (METRICS_HOST; containers set 0.0.0.0 so Prometheus can
scrape them), and as shared.http_server it serves a bounded number of
connections, each request within REQUEST_TIMEOUT, with one-line error logs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Final

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from shared.http_server import BoundedHandler, BoundedHTTPServer

log = logging.getLogger(__name__)

DEFAULT_HOST: Final = "127.0.0.1"
MAX_CONNECTIONS: Final = 16  # Prometheus, a probe or two and a person with curl need far fewer
REQUEST_TIMEOUT: Final = 10.0  # seconds; Prometheus's default scrape timeout is 10 s too


class HealthServer:
    """Serves metrics of `registry`; /readyz answers 200 only while `ready()` is true."""

    def __init__(
        self,
        port: int,
        ready: Callable[[], bool],
        registry: CollectorRegistry = REGISTRY,
        host: str = DEFAULT_HOST,
        *,
        max_connections: int = MAX_CONNECTIONS,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self._ready = ready
        self._registry = registry
        self._host = host
        self._server = BoundedHTTPServer(
            host,
            port,
            self._handler_class(),
            name="metrics server",
            max_connections=max_connections,
            request_timeout=request_timeout,
            logger=log,
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="health-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        log.info(
            "serving /metrics, /healthz and /readyz on port %d (bound to %s)",
            self.port,
            self._host,
            extra={"port": self.port, "host": self._host},
        )
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler_class(self) -> type[BoundedHandler]:
        outer = self

        class Handler(BoundedHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                try:
                    answer = outer._answer(path)
                except Exception as exc:  # noqa: BLE001 - a failing collector or ready() is a 500 and one line, not a dead scrape thread
                    self.server.note(f"{path} error", "%s failed: %s: %s", path, type(exc).__name__, exc)
                    answer = (500, b"internal error\n", "text/plain; charset=utf-8")
                self._send(*answer)

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def _answer(self, path: str) -> tuple[int, bytes, str]:
        text = "text/plain; charset=utf-8"
        if path == "/metrics":
            return 200, generate_latest(self._registry), CONTENT_TYPE_LATEST
        if path == "/healthz":
            return 200, b"ok\n", text
        if path == "/readyz":
            ready = self._ready()
            return (200, b"ready\n", text) if ready else (503, b"not ready\n", text)
        return 404, b"not found\n", text
