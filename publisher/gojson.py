"""Go's encoding/json, byte for byte, for the values a reading holds: floats, strings, times, ints.

The Go original marshals its TemperatureReading with `json.Marshal`; a consumer
that compares bytes, hashes records or keeps full precision must see the same
bytes from us. The rules, from Go's encoder (pinned by vectors that Go itself
wrote, tests/go_reference/vectors.json):

- floats: the shortest decimal that reads back as the same float64 (as Python's
  repr), written positionally (`100`, `0.000001`, `999999999999999900000`)
  unless |x| < 1e-6 or |x| >= 1e21, where it is `1e-7`, `1.5e+21` (no padded
  negative exponent); NaN and infinities cannot be marshalled at all;
- strings: `"` and `\\` escaped, `\b \f \n \r \t` short, other controls and
  `< > &` as `\\u00XX`, U+2028/U+2029 escaped, each byte of invalid UTF-8 as
  `\\ufffd`, everything else (DEL, C1, bidi controls) as it is;
- times: RFC 3339 with nanoseconds, trailing zeros (and a bare dot) trimmed, `Z`
  for UTC.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

_HEX: Final = "0123456789abcdef"
_SHORT: Final = {ord("\\"): b"\\\\", ord('"'): b'\\"', 8: b"\\b", 12: b"\\f", 10: b"\\n", 13: b"\\r", 9: b"\\t"}
_ASCII_ESCAPES: Final = {
    **{b: b"\\u00" + (_HEX[b >> 4] + _HEX[b & 0xF]).encode() for b in (*range(0x20), ord("<"), ord(">"), ord("&"))},
    **_SHORT,
}
# Well-formed UTF-8 (Unicode table 3-7, which Go's decoder follows), or one byte that is not.
_UTF8_TOKEN: Final = re.compile(
    rb"[\x00-\x7f]+"
    rb"|(?:[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}"
    rb"|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}"
    rb"|\xf4[\x80-\x8f][\x80-\xbf]{2})+"
    rb"|[\x80-\xff]"
)
_ASCII_SPECIAL: Final = re.compile(rb'[\x00-\x1f"\\<>&]')
# Fast-path help: below this magnitude msgspec writes exponents where Go does not.
MSGSPEC_POSITIONAL_MIN: Final = 1e-5
_NS: Final = 1_000_000_000


def go_float(value: float) -> bytes:
    """`json.Marshal(float64)`; ValueError for NaN and infinities, which Go refuses too."""
    if not math.isfinite(value):
        raise ValueError(f"json: unsupported value: {value!r}")
    if value == 0:
        return b"-0" if math.copysign(1.0, value) < 0 else b"0"
    text = repr(value)  # the shortest round-trip digits, as Go's strconv finds them
    sign = "-" if text[0] == "-" else ""
    mantissa, _, exponent = text.lstrip("-").partition("e")
    whole, _, fraction = mantissa.partition(".")
    all_digits = whole + fraction
    significant = all_digits.lstrip("0")
    point = len(whole) + int(exponent or 0) - (len(all_digits) - len(significant))
    digits = significant.rstrip("0")  # |value| = 0.<digits> * 10**point
    if abs(value) < 1e-6 or abs(value) >= 1e21:
        power = point - 1
        head = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{head}e{'-' if power < 0 else '+'}{abs(power):02d}".replace("e-0", "e-", 1).encode()
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}".encode()
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}".encode()
    return f"{sign}{digits[:point]}.{digits[point:]}".encode()


def needs_go_float(values: Floats) -> npt.NDArray[np.intp]:
    """Indices where msgspec's shortest float text differs from Go's (integral, tiny): format those with go_float.

    Elsewhere both write the same shortest digits positionally (pinned by tests).
    """
    magnitude = np.abs(values)
    return np.flatnonzero((values == np.trunc(values)) | (magnitude < MSGSPEC_POSITIONAL_MIN) | ~np.isfinite(values))


def _escape_ascii(match: re.Match[bytes]) -> bytes:
    return _ASCII_ESCAPES[match.group()[0]]


def go_string(text: str | bytes) -> bytes:
    """`json.Marshal(string)` including the quotes; `str` with lone surrogates counts as invalid UTF-8 bytes."""
    data = text if isinstance(text, bytes) else _utf8(text)
    if data.isascii():
        return b'"' + _ASCII_SPECIAL.sub(_escape_ascii, data) + b'"'
    out = [b'"']
    for match in _UTF8_TOKEN.finditer(data):
        token = match.group()
        if token[0] < 0x80:
            out.append(_ASCII_SPECIAL.sub(_escape_ascii, token))
        elif len(token) == 1:
            out.append(b"\\ufffd")
        else:
            out.append(token.replace("\u2028".encode(), b"\\u2028").replace("\u2029".encode(), b"\\u2029"))
    out.append(b'"')
    return b"".join(out)


def _utf8(text: str) -> bytes:
    """The bytes Go would hold: surrogate escapes back to the bytes they stand for, other lone surrogates as is."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            return text.encode("utf-8", "surrogatepass")


def _second_prefix(second: int) -> str:
    t = time.gmtime(second)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"


def rfc3339_nano(unix_ns: int) -> str:
    """`time.Time.MarshalJSON` in UTC without the quotes: `2026-11-28T10:11:12.1234567Z`."""
    second, fraction = divmod(unix_ns, _NS)
    digits = f"{fraction:09d}".rstrip("0")
    return f"{_second_prefix(second)}{'.' + digits if digits else ''}Z"


def rfc3339_nano_many(unix_ns: Ints) -> list[str]:
    """rfc3339_nano for a whole array, vectorized (about 70 ns a reading instead of 1 µs): one text per element.

    The nine fraction digits come from a table of three-digit groups; the one
    reading in ten whose fraction ends in zero is trimmed afterwards.
    """
    if not len(unix_ns):
        return []
    seconds, fractions = np.divmod(unix_ns, _NS)
    first, last = int(seconds.min()), int(seconds.max())
    prefixes = [_second_prefix(s) for s in range(first, last + 1)] if last - first <= 64 else []
    if not prefixes or any(len(p) != 19 for p in prefixes):  # spread over minutes, or years past 9999
        return [rfc3339_nano(ns) for ns in unix_ns.tolist()]
    codes = np.empty((len(unix_ns), _STAMP_WIDTH), dtype=np.uint32)
    codes[:] = _codes(prefixes[0] + ".000000000Z")
    for offset in range(1, len(prefixes)):  # a tick that straddles a second
        codes[seconds == first + offset, :19] = _codes(prefixes[offset])
    high, rest = np.divmod(fractions, 1_000_000)
    middle, low = np.divmod(rest, 1_000)
    for column, group in ((20, high), (23, middle), (26, low)):
        codes[:, column : column + 3] = np.take(_THREE_DIGITS, group, axis=0)
    _trim_fractions(codes, high, middle, low)
    texts: list[str] = codes.view(f"U{_STAMP_WIDTH}").ravel().tolist()
    return texts


_STAMP_WIDTH: Final = len("2006-01-02T15:04:05.999999999Z")
_THREE_DIGITS: Final = np.array([f"{i:03d}" for i in range(1000)]).view(np.uint32).reshape(1000, 3)
_TRAILING_ZEROS: Final = np.array([3 if i == 0 else len(str(i)) - len(str(i).rstrip("0")) for i in range(1000)])
_COLUMNS: Final = np.arange(_STAMP_WIDTH)


def _codes(text: str) -> npt.NDArray[np.uint32]:
    return np.array([text]).view(np.uint32)


def _trim_fractions(codes: npt.NDArray[np.uint32], high: Ints, middle: Ints, low: Ints) -> None:
    """Cut trailing zeros (and a dot left alone) from the rows whose fraction ends in 0; NULs vanish in `U` text."""
    rows = np.flatnonzero(low % 10 == 0)
    if not len(rows):
        return
    zeros = _TRAILING_ZEROS[low[rows]]
    low_zero = low[rows] == 0
    zeros[low_zero] += _TRAILING_ZEROS[middle[rows][low_zero]]
    both_zero = low_zero & (middle[rows] == 0)
    zeros[both_zero] += _TRAILING_ZEROS[high[rows][both_zero]]
    z_column = np.where(zeros == 9, 19, 29 - zeros)
    trimmed = codes[rows]
    trimmed[_COLUMNS[None, :] > z_column[:, None]] = 0
    trimmed[np.arange(len(rows)), z_column] = ord("Z")
    codes[rows] = trimmed


def go_value(value: object) -> bytes:
    """One JSON value as Go marshals the corresponding Go type (float64, string, int, bool, []string)."""
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str | bytes):
        return go_string(value)
    if isinstance(value, Sequence):
        return b"[" + b",".join(go_value(item) for item in value) + b"]"
    raise TypeError(f"no JSON form for {type(value).__name__}")


def go_object(fields: Sequence[tuple[str, object]]) -> bytes:
    """A JSON object with these fields in this order, compact, as Go marshals a struct."""
    return b"{" + b",".join(go_string(name) + b":" + go_value(value) for name, value in fields) + b"}"
