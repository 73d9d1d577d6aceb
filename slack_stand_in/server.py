"""A local stand-in for Slack's incoming webhooks: a real HTTP server for the demo, the tests and the soak.

It answers like Slack (200 `ok`; 400 `invalid_payload` for a body that is not
a JSON object with a non-empty `text` or `attachments`, or that it could not
show), keeps the last messages it accepted, prints each message as one
readable block, and can be told to misbehave for a while or for a number of
requests: answer an error status, answer 429 with `Retry-After`, or hang
without answering.

    gpu-temp-slack-stand-in [--host H] [--port P] [--keep N] [--quiet]
    python -m slack_stand_in ...         (the same)

Control (JSON over HTTP, so another process can drive it):
    POST /_control   {"mode": "error"|"rate_limit"|"hang"|"ok", "status": 500, "retry_after": 1 (or an HTTP date),
                      "hold": 30, "count": N, "seconds": S, "probability": 1.0}
                     every value is checked (types, ranges, no control characters): a bad one is a 400 with one line
    GET  /_received  {"messages": [{"path", "message", "at"}...], "first", "accepted", "requests", "refused", "invalid"}
                     `?after=N`: only messages accepted after the first N. Only the last `keep` messages are kept
                     (default 10,000; the counts stay exact): `first` is the number of messages accepted before the
                     first one listed, so `first - N` messages after N were dropped by the bound
    GET  /_stats     the counts alone: {"accepted", "requests", "refused", "invalid"}
    POST /_reset     forget everything and behave
    GET  /healthz    200 ok
Any other POST is a webhook post, whatever its path.

It is a tool people run on their machines, so it is as careful as the
services: a bounded number of connections, each request within a deadline
(shared.http_server), text from posts shown with control characters escaped.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TextIO
from urllib.parse import parse_qs, urlsplit

from shared.http_server import BoundedHandler, BoundedHTTPServer
from shared.logs import configure_logging
from shared.text import visible

log = logging.getLogger("slack_stand_in")

MAX_BODY = 1024 * 1024
MODES = ("ok", "error", "rate_limit", "hang")
DEFAULT_KEEP = 10_000  # messages kept for /_received and `received`; an alert message is a few KiB
MAX_CONNECTIONS = 64
REQUEST_TIMEOUT = 30.0  # seconds for one request to arrive (and for a keep-alive connection to stay idle)
MAX_HOLD = 600.0  # seconds a hanging request may be held
MAX_SECONDS = 7 * 24 * 3600.0
MAX_RETRY_AFTER = 24 * 3600.0
MAX_COUNT = 10**9
MAX_HEADER_TEXT = 64


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
    """How to answer webhook posts; a misbehaviour ends after `count` requests or `seconds`, if given.

    Every value is checked on construction (from Python or from /_control): a
    wrong type, a number out of range (NaN included) or a Retry-After text with
    control characters (a CRLF would add response headers) is a ValueError.
    """

    mode: str = "ok"
    status: int = 500
    retry_after: float | str = 1.0  # seconds, or a header value sent as it is (an HTTP date, say)
    hold: float = 30.0  # hang: how long a request stays unanswered (the connection is then dropped)
    count: int | None = None
    seconds: float | None = None
    probability: float = 1.0  # share of requests that misbehave (the soak's "10 % of requests")

    def __post_init__(self) -> None:
        if not isinstance(self.mode, str) or self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        if not _is_int(self.status) or not 100 <= self.status <= 599:
            raise ValueError("status must be an integer from 100 to 599")
        if isinstance(self.retry_after, str):
            text = self.retry_after
            if not 0 < len(text) <= MAX_HEADER_TEXT or not all(" " <= c <= "~" for c in text):
                raise ValueError(f"retry_after text must be 1 to {MAX_HEADER_TEXT} printable ASCII characters")
        else:
            object.__setattr__(self, "retry_after", _number("retry_after", self.retry_after, MAX_RETRY_AFTER))
        object.__setattr__(self, "hold", _number("hold", self.hold, MAX_HOLD))
        if self.count is not None and (not _is_int(self.count) or not 0 <= self.count <= MAX_COUNT):
            raise ValueError(f"count must be an integer from 0 to {MAX_COUNT}")
        if self.seconds is not None:
            object.__setattr__(self, "seconds", _number("seconds", self.seconds, MAX_SECONDS))
        object.__setattr__(self, "probability", _number("probability", self.probability, 1.0))

    @classmethod
    def from_json(cls, data: Any) -> Behaviour:
        """A behaviour from a control request; raises ValueError saying what is wrong."""
        if not isinstance(data, dict):
            raise ValueError(f"expected an object with mode one of {', '.join(MODES)}")  # noqa: TRY004 - one error type for every bad request
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown keys: {', '.join(sorted(visible(str(k))[:40] for k in unknown))}")
        return cls(**data)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(name: str, value: Any, maximum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= maximum:
        raise ValueError(f"{name} must be a number from 0 to {maximum:g}")  # NaN fails the range test too
    return float(value)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _loads(body: bytes) -> Any:
    """JSON as Slack reads it: no NaN or Infinity; too deep or too big is a ValueError like any other bad body."""
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def validate(body: bytes) -> dict[str, Any] | None:
    """The message if Slack would accept it and it can be shown, else None."""
    parsed = _parse(body)
    return None if parsed is None else parsed[0]


def _parse(body: bytes) -> tuple[dict[str, Any], str] | None:
    """(message, its rendering with the time left for later), or None for a body to refuse with invalid_payload."""
    try:
        message = _loads(body)
    except ValueError:  # UnicodeDecodeError included
        return None
    if not isinstance(message, dict) or not _well_formed(message):
        return None
    try:
        block = render(message, 0.0)
    except Exception:  # noqa: BLE001 - what cannot be shown is refused, never accepted and then lost
        return None
    return message, block


def _well_formed(message: dict[str, Any]) -> bool:
    """A string `text`, a list of attachment objects with lists of field objects, and one of them non-empty.

    `null` counts as absent, as in Slack's own decoding.
    """
    text = message.get("text")
    attachments = message.get("attachments")
    if (text is not None and not isinstance(text, str)) or not _objects(attachments):
        return False
    if not all(_objects(a.get("fields")) for a in attachments or []):
        return False
    return bool(text) or bool(attachments)


def _objects(value: Any) -> bool:
    return value is None or (isinstance(value, list) and all(isinstance(item, dict) for item in value))


def _show(value: Any) -> str:
    """One line of text from a post, as it would read: control, format and separator characters escaped."""
    return visible(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))


def _show_lines(value: Any) -> list[str]:
    """Text that may span lines (a message's text): each line shown on its own, everything else escaped."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return [visible(line) for line in text.split("\n")]


def render(message: dict[str, Any], at: float) -> str:
    """One readable block per message, as a person would want to see it in a terminal."""
    clock = time.strftime("%H:%M:%S", time.localtime(at))
    sender = _show(message.get("username") or "webhook")
    icon = _show(message.get("icon_emoji") or "")
    channel = _show(message.get("channel") or "(default channel)")
    lines = [f"── Slack {channel} · {sender} {icon} · {clock} " + "─" * 20]
    if message.get("text"):
        lines += _show_lines(message["text"])
    for attachment in message.get("attachments") or []:
        colour = _show(attachment.get("color") or "")
        lines.append(f"{_show(attachment.get('title') or '')}  [{colour}]".strip())
        if attachment.get("text"):
            lines += _show_lines(attachment["text"])
        for field in attachment.get("fields") or []:
            lines.append(f"  {_show(field.get('title') or '')}: {_show(field.get('value') or '')}")
        if attachment.get("footer"):
            lines.append(f"  — {_show(attachment['footer'])}")
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
        keep: int = DEFAULT_KEEP,
        max_connections: int = MAX_CONNECTIONS,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self._echo = echo
        self._echo_lock = threading.Lock()
        self._rng = rng
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._behaviour = Behaviour()
        self._remaining: int | None = None
        self._until: float | None = None
        self.keep = keep
        self._received: deque[Received] = deque(maxlen=keep)
        self._answers: deque[Answer] = deque(maxlen=keep)
        self._changed = threading.Condition(self._lock)
        self.accepted = 0  # exact, however many `keep` lets it remember
        self.requests = 0
        self.refused = 0
        self.invalid = 0
        self._server = BoundedHTTPServer(
            host,
            port,
            self._handler_class(),
            name="slack stand-in",
            max_connections=max_connections,
            request_timeout=request_timeout,
            logger=log,
        )
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
        """The last `keep` messages accepted, oldest first (`accepted` counts them all)."""
        with self._lock:
            return list(self._received)

    @property
    def answers(self) -> list[Answer]:
        """The last `keep` webhook posts in arrival order, with the status each got."""
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
            self.accepted = self.requests = self.refused = self.invalid = 0
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
            self.accepted += 1
            self._changed.notify_all()
        if self._echo is not None:
            self._print(self._echo, render(message, entry.at))

    def _print(self, echo: TextIO, block: str) -> None:
        """Echo a message; a closed or broken stdout costs one log line, never the answer to the post."""
        try:
            with self._echo_lock:
                echo.write(block + "\n")
                echo.flush()
        except (OSError, ValueError) as exc:
            self._server.note("echo", "cannot print a message: %s", type(exc).__name__)

    def _snapshot(self, after: int = 0, messages: bool = True) -> dict[str, Any]:
        with self._lock:
            snapshot: dict[str, Any] = {
                "accepted": self.accepted,
                "requests": self.requests,
                "refused": self.refused,
                "invalid": self.invalid,
            }
            if messages:
                first_kept = self.accepted - len(self._received)
                first = max(after, first_kept)
                kept = list(self._received)[first - first_kept :] if first < self.accepted else []
                snapshot["first"] = min(first, self.accepted)
                snapshot["messages"] = [asdict(r) for r in kept]
            return snapshot

    def _handler_class(self) -> type[BoundedHandler]:
        stand_in = self

        class Handler(BoundedHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Slack offers
            disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path == "/healthz":
                    self._answer(200, b"ok")
                elif url.path in ("/_received", "/_stats"):
                    after = parse_qs(url.query).get("after", ["0"])[0]
                    if not (after.isascii() and after.isdigit() and len(after) <= 18):
                        self._answer(400, b"invalid_after: expected ?after=N with N a whole number >= 0")
                        return
                    snapshot = stand_in._snapshot(int(after), url.path == "/_received")
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
                    behaviour = Behaviour.from_json(_loads(body))
                except (ValueError, TypeError) as exc:
                    self._answer(400, f"invalid control request: {visible(str(exc))}".encode())
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
                body = self.rfile.read(length)
                if len(body) < length:  # the client went away mid-body: nobody to answer
                    self.close_connection = True
                    return None
                return body

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

        return Handler


def _bounded_int(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected an integer from {low} to {high}, got {text!r}")
        return value

    return parse


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpu-temp-slack-stand-in", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=_bounded_int(0, 65535), default=3001, help="port (default 3001; 0 picks a free one)"
    )
    parser.add_argument(
        "--keep",
        type=_bounded_int(1, 10_000_000),
        default=DEFAULT_KEEP,
        help=f"how many of the last messages /_received keeps (default {DEFAULT_KEEP:,}; counts stay exact)",
    )
    parser.add_argument("--quiet", action="store_true", help="do not print the messages received")
    args = parser.parse_args(argv)
    configure_logging("info", "text")
    try:
        server = SlackStandIn(args.host, args.port, echo=None if args.quiet else sys.stdout, keep=args.keep)
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
