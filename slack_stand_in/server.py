"""A local stand-in for Slack's incoming webhooks: a real HTTP server for the demo, the tests and the soak.

It answers like Slack (200 `ok`; 400 `invalid_payload` for a body that is not
a JSON object with a non-empty `text` or `attachments`), keeps what it
accepted, prints each message as one readable block, and can be told to
misbehave for a while or for a number of requests: answer an error status,
answer 429 with `Retry-After`, or hang without answering.

    python -m slack_stand_in [--host H] [--port P] [--quiet]

Control (JSON over HTTP, so another process can drive it):
    POST /_control   {"mode": "error"|"rate_limit"|"hang"|"ok", "status": 500, "retry_after": 1 (or an HTTP date),
                      "hold": 30, "count": N, "seconds": S, "probability": 1.0}
    GET  /_received  {"messages": [{"path", "message", "at"}...], "requests", "refused", "invalid"}
                     (`?after=N`: only the messages after the first N, for pollers of long runs)
    GET  /_stats     the counts alone: {"accepted", "requests", "refused", "invalid"}
    POST /_reset     forget everything and behave
    GET  /healthz    200 ok
Any other POST is a webhook post, whatever its path.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO
from urllib.parse import parse_qs, urlsplit

MAX_BODY = 1024 * 1024
MODES = ("ok", "error", "rate_limit", "hang")


@dataclass(frozen=True)
class Received:
    path: str
    message: dict[str, Any]
    at: float  # wall-clock seconds when it was accepted


@dataclass(frozen=True)
class Answer:
    """One webhook post and how it was answered (status None: left hanging)."""

    at: float
    path: str
    status: int | None


@dataclass(frozen=True)
class Behaviour:
    """How to answer webhook posts; a misbehaviour ends after `count` requests or `seconds`, if given."""

    mode: str = "ok"
    status: int = 500
    retry_after: float | str = 1.0  # seconds, or a header value sent as it is (an HTTP date, say)
    hold: float = 30.0  # hang: how long a request stays unanswered (the connection is then dropped)
    count: int | None = None
    seconds: float | None = None
    probability: float = 1.0  # share of requests that misbehave (the soak's "10 % of requests")

    @classmethod
    def from_json(cls, data: Any) -> Behaviour:
        """A behaviour from a control request; raises ValueError saying what is wrong."""
        if not isinstance(data, dict) or data.get("mode", "ok") not in MODES:
            raise ValueError(f"expected an object with mode one of {', '.join(MODES)}")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown keys: {', '.join(sorted(unknown))}")
        behaviour = cls(
            mode=str(data.get("mode", "ok")),
            status=int(data.get("status", 500)),
            retry_after=_retry_after(data.get("retry_after", 1.0)),
            hold=float(data.get("hold", 30.0)),
            count=None if data.get("count") is None else int(data["count"]),
            seconds=None if data.get("seconds") is None else float(data["seconds"]),
            probability=float(data.get("probability", 1.0)),
        )
        if not 100 <= behaviour.status <= 599 or not 0.0 <= behaviour.probability <= 1.0:
            raise ValueError("status must be 100-599 and probability 0-1")
        return behaviour


def _retry_after(value: Any) -> float | str:
    return value if isinstance(value, str) else float(value)


def validate(body: bytes) -> dict[str, Any] | None:
    """The message if Slack would accept it, else None."""
    try:
        message = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return message if isinstance(message, dict) and _well_formed(message) else None


def _well_formed(message: dict[str, Any]) -> bool:
    """A string `text`, a list of attachment objects with lists of field objects, and one of them non-empty."""
    text = message.get("text")
    attachments = message.get("attachments")
    if (text is not None and not isinstance(text, str)) or not _objects(attachments, allow_none=True):
        return False
    if not all(_objects(a.get("fields"), allow_none=True) for a in attachments or []):
        return False
    return bool(text) or bool(attachments)


def _objects(value: Any, *, allow_none: bool) -> bool:
    if value is None:
        return allow_none
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


def render(message: dict[str, Any], at: float) -> str:
    """One readable block per message, as a person would want to see it in a terminal."""
    clock = time.strftime("%H:%M:%S", time.localtime(at))
    sender = message.get("username", "webhook")
    icon = message.get("icon_emoji", "")
    channel = message.get("channel", "(default channel)")
    lines = [f"── Slack {channel} · {sender} {icon} · {clock} " + "─" * 20]
    if message.get("text"):
        lines.append(str(message["text"]))
    for attachment in message.get("attachments", []):
        colour = attachment.get("color", "")
        lines.append(f"{attachment.get('title', '')}  [{colour}]".strip())
        if attachment.get("text"):
            lines.append(str(attachment["text"]))
        for field in attachment.get("fields", []):
            lines.append(f"  {field.get('title', '')}: {field.get('value', '')}")
        if attachment.get("footer"):
            lines.append(f"  — {attachment['footer']}")
    return "\n".join(lines)


class SlackStandIn:
    """The server; usable in-process (tests) or as a program (demo, compose, soak)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        echo: TextIO | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._echo = echo
        self._rng = rng
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._behaviour = Behaviour()
        self._remaining: int | None = None
        self._until: float | None = None
        self._received: list[Received] = []
        self._answers: list[Answer] = []
        self._changed = threading.Condition(self._lock)
        self.requests = 0
        self.refused = 0
        self.invalid = 0
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="slack-stand-in", daemon=True
        )

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def webhook_url(self, path: str = "services/T0000/B0000/stand-in") -> str:
        return self.url + path.lstrip("/")

    def start(self) -> SlackStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> SlackStandIn:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- what it received --------------------------------------------------------------------

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    @property
    def answers(self) -> list[Answer]:
        """Every webhook post in arrival order, with the status it got."""
        with self._lock:
            return list(self._answers)

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float) -> list[Received]:
        """Block until `predicate(received)` holds or `timeout` passes; returns what was received."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(list(self._received)):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(min(left, 0.5))
            return list(self._received)

    def reset(self) -> None:
        with self._lock:
            self._received.clear()
            self._answers.clear()
            self.requests = self.refused = self.invalid = 0
            self._set(Behaviour())

    # -- how it answers --------------------------------------------------------------------------

    def behave(self, behaviour: Behaviour) -> None:
        with self._lock:
            self._set(behaviour)

    def fail(self, status: int = 500, *, count: int | None = None, seconds: float | None = None) -> None:
        self.behave(Behaviour("error", status=status, count=count, seconds=seconds))

    def rate_limit(
        self, retry_after: float | str = 1.0, *, count: int | None = None, seconds: float | None = None
    ) -> None:
        self.behave(Behaviour("rate_limit", status=429, retry_after=retry_after, count=count, seconds=seconds))

    def hang(self, hold: float = 30.0, *, count: int | None = None, seconds: float | None = None) -> None:
        self.behave(Behaviour("hang", hold=hold, count=count, seconds=seconds))

    def recover(self) -> None:
        self.behave(Behaviour())

    def _set(self, behaviour: Behaviour) -> None:
        self._behaviour = behaviour
        self._remaining = behaviour.count
        self._until = None if behaviour.seconds is None else time.monotonic() + behaviour.seconds

    def _misbehaviour(self) -> Behaviour | None:
        """Called under the lock for each webhook post: the misbehaviour to apply to it, if any."""
        behaviour = self._behaviour
        if behaviour.mode == "ok":
            return None
        expired = (self._until is not None and time.monotonic() >= self._until) or self._remaining == 0
        if expired:
            self._set(Behaviour())
            return None
        if behaviour.probability < 1.0 and self._rng() >= behaviour.probability:
            return None
        if self._remaining is not None:
            self._remaining -= 1
        return behaviour

    def _accept(self, path: str, message: dict[str, Any]) -> None:
        entry = Received(path, message, time.time())
        with self._changed:
            self._received.append(entry)
            self._changed.notify_all()
        if self._echo is not None:
            self._echo.write(render(message, entry.at) + "\n")
            self._echo.flush()

    def _snapshot(self, after: int = 0, messages: bool = True) -> dict[str, Any]:
        with self._lock:
            snapshot: dict[str, Any] = {
                "accepted": len(self._received),
                "requests": self.requests,
                "refused": self.refused,
                "invalid": self.invalid,
            }
            if messages:
                snapshot["messages"] = [asdict(r) for r in self._received[max(0, after) :]]
            return snapshot

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Slack offers
            disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path == "/healthz":
                    self._answer(200, b"ok")
                elif url.path in ("/_received", "/_stats"):
                    after = parse_qs(url.query).get("after", ["0"])[0]
                    snapshot = stand_in._snapshot(int(after) if after.isdigit() else 0, url.path == "/_received")
                    self._answer(200, json.dumps(snapshot).encode(), "application/json")
                else:
                    self._answer(404, b"not_found")

            def do_POST(self) -> None:
                body = self._body()
                if body is None:
                    return
                path = self.path.split("?", 1)[0]
                if path == "/_control":
                    self._control(body)
                elif path == "/_reset":
                    stand_in.reset()
                    self._answer(200, b"ok")
                else:
                    self._webhook(path, body)

            def _webhook(self, path: str, body: bytes) -> None:
                message = validate(body)
                with stand_in._lock:
                    stand_in.requests += 1
                    misbehaviour = stand_in._misbehaviour()
                    if misbehaviour is not None:
                        stand_in.refused += 1
                        status = {"hang": None, "rate_limit": 429}.get(misbehaviour.mode, misbehaviour.status)
                    elif message is None:
                        stand_in.invalid += 1
                        status = 400
                    else:
                        status = 200
                    stand_in._answers.append(Answer(time.time(), path, status))
                if misbehaviour is not None:
                    self._misbehave(misbehaviour)
                elif message is None:
                    self._answer(400, b"invalid_payload")
                else:
                    stand_in._accept(path, message)
                    self._answer(200, b"ok")

            def _misbehave(self, behaviour: Behaviour) -> None:
                if behaviour.mode == "hang":
                    stand_in._stopping.wait(behaviour.hold)
                    self.close_connection = True  # drop it unanswered, as a dead upstream would
                elif behaviour.mode == "rate_limit":
                    after = behaviour.retry_after
                    value = after if isinstance(after, str) else f"{after:g}"
                    self._answer(429, b"rate_limited", headers={"Retry-After": value})
                else:
                    self._answer(behaviour.status, b"internal_error" if behaviour.status >= 500 else b"refused")

            def _control(self, body: bytes) -> None:
                try:
                    behaviour = Behaviour.from_json(json.loads(body))
                except (ValueError, TypeError) as exc:
                    self._answer(400, f"invalid control request: {exc}".encode())
                    return
                stand_in.behave(behaviour)
                self._answer(200, b"ok")

            def _body(self) -> bytes | None:
                try:
                    length = int(self.headers.get("Content-Length", "0"))
                except ValueError:
                    length = -1
                if not 0 <= length <= MAX_BODY:
                    self.close_connection = True
                    self._answer(400, b"invalid_payload")
                    return None
                return self.rfile.read(length)

            def _answer(
                self, status: int, body: bytes, content_type: str = "text/plain", headers: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Each accepted message is printed as a block already; access lines would only add noise."""

        return Handler


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpu-temp-slack-stand-in", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=3001, help="port (default 3001; 0 picks a free one)")
    parser.add_argument("--quiet", action="store_true", help="do not print the messages received")
    args = parser.parse_args(argv)
    try:
        server = SlackStandIn(args.host, args.port, echo=None if args.quiet else sys.stdout)
    except OSError as exc:
        sys.stderr.write(f"slack stand-in: cannot listen on {args.host}:{args.port}: {exc.strerror}\n")
        return 1
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    server.start()
    sys.stdout.write(f"listening on {server.url}\n")
    sys.stdout.flush()
    while not stop.wait(0.5):
        pass
    server.stop()
    sys.stdout.write("slack stand-in stopped\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
