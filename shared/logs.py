"""Logging set-up: readable text by default, one JSON object per line with LOG_FORMAT=json.

Services log with the standard library and pass identifiers (device,
partition, offset, ...) through `extra=`; both formats carry them, so log
shippers get fields and people get a readable line.

The handler is also the last line of defence for what a line may hold,
whatever library wrote it (urllib3 logs the full URL of a response whose
headers it cannot parse, and a Slack webhook's URL is its secret):
- every registered secret, and the path of a secret URL, becomes `********`
  in the final text, exception text included (`register_secret`);
- control, format and line-separator characters (a newline or a bidi
  override in a device id) are written as visible escapes (`shared.text`),
  so text from the stream cannot forge a line or disguise one.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import msgspec

from shared.text import visible

LOG_LEVELS: Final = ("debug", "info", "warning", "error")
LOG_FORMATS: Final = ("text", "json")
REDACTED: Final = "********"
MIN_SECRET_PART: Final = 8  # shorter parts of a secret URL ("/", "/x") are too common to blank out everywhere
MIN_SECRET_TEXT: Final = 4  # a shorter credential ("a", "12") would blank out every line it happens to occur in

# Attributes every LogRecord has; anything else came from `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class _Secrets:
    """The texts no log line may hold, as one regex (longest first, so a whole URL wins over its path)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._texts: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, texts: Iterable[str]) -> None:
        with self._lock:
            self._texts |= {t for t in texts if t}
            ordered = sorted(self._texts, key=len, reverse=True)
            self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def redact(self, text: str) -> str:
        pattern = self._pattern
        return text if pattern is None else pattern.sub(REDACTED, text)


_secrets = _Secrets()


def register_secret(value: str) -> None:
    """Never let `value` reach a log line; for a URL, neither its path nor its long path segments.

    The path counts separately because libraries log URLs rebuilt from their
    parts (lowercased host, default port added, percent-encoded): the path
    is what carries a webhook's token. Safe to call before or after
    `configure_logging`, from any thread.
    """
    forms = {value}
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    if parts is not None and parts.scheme and parts.netloc:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        segments = [s for s in parts.path.split("/") if len(s) >= 2 * MIN_SECRET_PART]
        candidates = [path.lstrip("/"), unquote(path).lstrip("/"), *segments, *map(unquote, segments)]
        forms |= {c for c in candidates if len(c) >= MIN_SECRET_PART}
    _secrets.add(forms)


def register_secret_texts(texts: Iterable[str]) -> None:
    """Never let any of `texts` reach a log line, each as it is (credentials taken out of a URL: a password, a
    token in the query); texts shorter than MIN_SECRET_TEXT are too common to blank out everywhere."""
    _secrets.add(t for t in texts if len(t) >= MIN_SECRET_TEXT)


def redact(text: str) -> str:
    """`text` with every registered secret replaced by `********`."""
    return _secrets.redact(text)


def _safe(text: str) -> str:
    return visible(_secrets.redact(text))


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


def _trace(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    """The record's exception and stack text, or ""."""
    parts = []
    if record.exc_info:
        parts.append(formatter.formatException(record.exc_info))
    elif record.exc_text:
        parts.append(record.exc_text)
    if record.stack_info:
        parts.append(formatter.formatStack(record.stack_info))
    return "\n".join(parts)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, event, then the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": _safe(record.name),
            "event": _safe(record.getMessage()),
        }
        entry.update({_safe(k): _json_value(v) for k, v in _fields(record).items()})
        trace = _trace(self, record)
        if trace:
            # A traceback keeps its line breaks (JSON escapes them); anything else unsafe in it is escaped.
            entry["exception"] = "\n".join(_safe(line) for line in trace.split("\n"))
        return redact(msgspec.json.encode(entry).decode())


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    if isinstance(value, dict):
        return {_safe(str(k)): _json_value(v) for k, v in value.items()}
    return _safe(str(value))


class TextFormatter(logging.Formatter):
    """`time level logger: message key=value ...` for people at a terminal.

    A traceback follows on lines of its own, each prefixed `  | ` so no line
    of it can pass for a log line.
    """

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        line = _safe(self.formatMessage(record))
        extras = _fields(record)
        if extras:
            line += "  " + " ".join(f"{_safe(k)}={_safe(str(v))}" for k, v in extras.items())
        trace = _trace(self, record)
        if trace:
            line += "".join(f"\n  | {_safe(part)}" for part in trace.split("\n"))
        return redact(line)


_REMOTE_DRIVEN = ("urllib3", "requests")  # what these log is about a peer's answer, not a bug of ours


def _one_line_library_errors(record: logging.LogRecord) -> bool:
    """An HTTP library's warning about a peer (a malformed header) is one line: its exception joins the message.

    Tracebacks stay for our own code, where they point at a bug.
    """
    if record.exc_info and record.name.split(".", 1)[0] in _REMOTE_DRIVEN:
        error = record.exc_info[1]
        record.msg = f"{record.getMessage()} ({type(error).__name__})"
        record.args = None
        record.exc_info = None
        record.exc_text = None
    return True


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stderr handler whose own failures cost one line that repeats nothing of the record (it may hold a secret)."""

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        try:
            self.stream.write(f"logging error: {type(error).__name__} while writing a record of {record.name!r}\n")
            self.flush()
        except Exception:  # noqa: BLE001, S110 - the log stream itself is gone: nothing left to tell
            pass


def configure_logging(level: str = "info", fmt: str = "text") -> None:
    """Install one stderr handler on the root logger; called once, by each entry point.

    Python warnings and uncaught exceptions (main thread or not) go through it
    too, so they are formatted, escaped and redacted like every other line.
    """
    handler = _Handler(sys.stderr)
    handler.addFilter(_one_line_library_errors)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # HTTP libraries stay at warning even when we debug: their request lines
    # carry the URL path, and a Slack webhook's path is its secret.
    for noisy in ("urllib3", "requests"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(
    kind: type[BaseException], error: BaseException, trace: TracebackType | None, thread: str = "main thread"
) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, trace)
        return
    logging.getLogger("uncaught").critical(
        "uncaught %s in %s", kind.__name__, thread, exc_info=(kind, error, trace)
    )


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None or issubclass(args.exc_type, SystemExit):
        return
    name = args.thread.name if args.thread is not None else "a thread"
    _log_uncaught(args.exc_type, args.exc_value, args.exc_traceback, f"thread {name}")


class Throttle:
    """Says whether a repeated event should be logged now: once per `interval` seconds per key.

    Broker outages and Slack failures repeat for every record; an incident
    should cost a few log lines, with a count of what was suppressed.
    """

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def allow(self, key: str) -> int | None:
        """None to stay quiet; otherwise how many were suppressed since the last allowed one."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._suppressed.pop(key, 0)
