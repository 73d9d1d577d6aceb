"""What the receivers' HTTP clients read off an answer or a failure, safe for one log line and free of the URL.

Both receivers (Slack, Alertmanager) post with requests; the URL is a secret
(or holds credentials), so a failure is described by the innermost exception's
type, an answer by its short body, never by an exception's text.
"""

from __future__ import annotations

from typing import Final

import requests
from urllib3.exceptions import InvalidHeader
from urllib3.util import Retry

BODY_MAX: Final = 200  # characters of an answer kept for the log
_RETRY_AFTER: Final = Retry()  # only its Retry-After parser is used (seconds or an HTTP date)


def retry_after(response: requests.Response) -> float | None:
    """Seconds the peer asked us to wait (0 for a date in the past); None when missing or unreadable."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(_RETRY_AFTER.parse_retry_after(value)))
    except (InvalidHeader, OverflowError, ValueError):
        return None


def root_cause(exc: BaseException) -> str:
    """The innermost exception's type (ConnectionRefusedError, NameResolutionError...): informative and URL-free."""
    seen: set[int] = set()
    current: BaseException = exc
    while id(current) not in seen:
        seen.add(id(current))
        inner = current.__cause__ or current.__context__
        if inner is None and current.args and isinstance(current.args[0], BaseException):
            inner = current.args[0]
        if inner is None:
            break
        current = inner
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            current = reason
    return type(current).__name__


def printable(text: str) -> str:
    """An answer's short text (`ok`, `invalid_payload`, an error message) as one safe line, at most BODY_MAX long."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text.strip())
    return cleaned[:BODY_MAX]
