"""Small HTTP servers that outside clients cannot exhaust or make print tracebacks.

The health endpoints and the Slack stand-in listen where anything may connect.
The standard library's ThreadingHTTPServer starts one thread per connection,
waits forever for a request that never completes and prints a raw traceback
when a client goes away mid-answer. Here:
- at most `max_connections` are handled at once; one more is closed at once
  (500 half-sent requests hold `max_connections` threads, not 500);
- each request must arrive within `request_timeout` seconds of its first wait,
  however slowly its bytes trickle in (a keep-alive connection idle that long
  is closed too);
- a client error, a timeout or an aborted connection costs one log line through
  `logging` (so LOG_FORMAT=json holds), at most one per kind every 10 s.
"""

from __future__ import annotations

import io
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from shared.logs import Throttle

log = logging.getLogger(__name__)

LOG_INTERVAL = 10.0  # seconds between two lines about the same kind of trouble


class _DeadlineSocketReader(io.RawIOBase):
    """Reads a socket, each read bounded by what is left of the current request's deadline."""

    def __init__(self, sock: socket.socket, deadline: Callable[[], float], write_timeout: float) -> None:
        self._sock = sock
        self._deadline = deadline
        self._write_timeout = write_timeout
        self.count = 0  # bytes read since the handler last reset it (at the start of each request)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._deadline() - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request did not arrive in time")
        self._sock.settimeout(left)
        try:
            read = self._sock.recv_into(buffer)
            self.count += read
            return read
        finally:
            self._sock.settimeout(self._write_timeout)  # the answer gets its own full timeout


class BoundedHandler(BaseHTTPRequestHandler):
    """A request handler whose reads share one deadline per request and whose errors go to `logging`."""

    server: BoundedHTTPServer
    _deadline = 0.0

    def setup(self) -> None:
        super().setup()
        timeout = self.server.request_timeout
        self.connection.settimeout(timeout)  # bounds each write too: a client that stops reading
        self._reader = _DeadlineSocketReader(self.connection, lambda: self._deadline, timeout)
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self) -> None:
        self._deadline = time.monotonic() + self.server.request_timeout
        self._reader.count = 0
        super().handle_one_request()

    def log_message(self, format: str, *args: object) -> None:
        """No access lines: scrapes every few seconds, or every webhook post, would drown the log."""

    def log_error(self, format: str, *args: object) -> None:
        """Malformed requests and timeouts: one throttled line (the client's text escaped by the log handler).

        A keep-alive connection that sent nothing more before the deadline is simply closed: that is no error.
        """
        if format.startswith("Request timed out") and self._reader.count == 0:
            return
        self.server.note("client", "%s from %s", format % args, _peer(self.client_address))


class BoundedHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with a connection bound, a per-request deadline and one-line error logs."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # the kernel's accept queue: a burst of connections is accepted (and refused) quickly

    def __init__(
        self,
        host: str,
        port: int,
        handler: type[BoundedHandler],
        *,
        name: str,
        max_connections: int = 32,
        request_timeout: float = 10.0,
        logger: logging.Logger = log,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.name = name
        self.request_timeout = request_timeout
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        self._log = logger
        self._throttle = Throttle(LOG_INTERVAL)
        self._throttle_lock = threading.Lock()
        super().__init__((host, port), handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.note("busy", "closed a connection from %s: all %d connections are in use",
                _peer(client_address), self.max_connections)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that failed (reset, broken pipe, a bug): one line with the error, never a traceback."""
        error = sys.exc_info()[1]
        kind = type(error).__name__
        self.note(kind, "a connection from %s ended in %s: %s", _peer(client_address), kind, error)

    def note(self, kind: str, message: str, *args: object) -> None:
        with self._throttle_lock:
            suppressed = self._throttle.allow(kind)
        if suppressed is None:
            return
        text = message % args
        if suppressed:
            text += f" ({suppressed} more like it in the last {LOG_INTERVAL:g}s)"
        self._log.warning("%s: %s", self.name, text, extra={"suppressed": suppressed})


def _peer(address: Any) -> str:
    try:
        return f"{address[0]}:{address[1]}"
    except (TypeError, IndexError):
        return str(address)
