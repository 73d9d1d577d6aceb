"""An HTTP peer written on a raw socket, so it can send what no well-behaved server library would.

Used to answer webhook posts with a malformed header line (urllib3 then logs
the full request URL at WARNING) and to hold connections half-open.
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType

# 200 with a header line that has no name: urllib3 logs "Failed to parse headers (url=...)".
BROKEN_HEADER_RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Length: 2\r\n"
    b"Connection: close\r\n"
    b": this line has no header name\r\n"
    b"\r\n"
    b"ok"
)


class RawHttpServer:
    """Answers every request on loopback with `response`, byte for byte, then closes the connection."""

    def __init__(self, response: bytes = BROKEN_HEADER_RESPONSE) -> None:
        self._response = response
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="raw-http", daemon=True)
        self.requests = 0

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def __enter__(self) -> RawHttpServer:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(5)
        self._socket.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(5)
                if _read_request(connection):
                    self.requests += 1
                    connection.sendall(self._response)


def _read_request(connection: socket.socket) -> bool:
    """Reads one request (headers, then Content-Length bytes of body); False if the peer went away first."""
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = connection.recv(65536)
            if not chunk:
                return False
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            chunk = connection.recv(65536)
            if not chunk:
                return False
            body += chunk
    except (OSError, ValueError):
        return False
    return True
