"""JSON bytes <-> model objects, with one error type for everything that can go wrong.

msgspec validates while it parses, so a decoded object already honours every
bound in shared.models; callers never see a half-valid reading.

Readings are read as the Go original's `encoding/json` read them: the strict
decode (exact key names, as our publisher writes them) is tried first and is
the fast path; only a reading it refuses for a field problem is read again
leniently, as Go would: keys matched case-insensitively (`Temperature`,
`DEVICE_ID`, Go's folding: `ſ` is an `s` and the Kelvin sign a `k`), the last
of several spellings winning, `null` leaving a field as it was, and a
missing `timestamp` taken from the caller (the record's timestamp). What
cannot be judged (not JSON, no device, no temperature, a value of the wrong
type or out of bounds) still raises DecodeError.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, TypeVar

import msgspec

from shared.models import AlertEvent, TemperatureReading

CONTENT_TYPE_HEADER: Final = ("content-type", b"application/json")
MAX_RECORD_BYTES: Final = 64 * 1024


class DecodeError(ValueError):
    """A record that is not a valid message; `reason` is short and safe to log.

    The only error decoding raises, whatever the bytes: a record either decodes or is a DecodeError.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_encoder = msgspec.json.Encoder()
_reading_decoder = msgspec.json.Decoder(TemperatureReading)
_alert_decoder = msgspec.json.Decoder(AlertEvent)
_fields_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])  # values left undecoded until chosen
_READING_FIELDS: Final = {name: name.encode() for name in TemperatureReading.__struct_fields__}
_NULL: Final = b"null"


def encode(message: TemperatureReading | AlertEvent) -> bytes:
    return _encoder.encode(message)


T = TypeVar("T")


def _decode(decoder: msgspec.json.Decoder[T], data: bytes | None) -> T:
    if not data:  # None (a tombstone) or zero bytes
        raise DecodeError("empty record (no value)")
    if len(data) > MAX_RECORD_BYTES:
        raise DecodeError(f"record too large ({len(data)} bytes > {MAX_RECORD_BYTES})")
    return _parse(decoder, data)


def _parse(decoder: msgspec.json.Decoder[T], data: bytes) -> T:
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise DecodeError(f"invalid field: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise DecodeError(f"malformed JSON: {exc}") from exc
    except UnicodeDecodeError as exc:  # msgspec raises it for invalid UTF-8 inside a string
        raise DecodeError(f"malformed JSON: invalid UTF-8 at byte {exc.start}") from exc
    except RecursionError as exc:  # a value nested deeper than msgspec's recursion limit
        raise DecodeError("malformed JSON: nested too deeply") from exc
    except (TypeError, ValueError) as exc:  # anything else the decoder may raise is still a bad record
        raise DecodeError(f"malformed JSON: {type(exc).__name__}") from exc


def decode_reading(data: bytes | None, default_time: datetime | None = None) -> TemperatureReading:
    """A reading, strictly or else as Go would read it; `default_time` stands in for a missing timestamp."""
    try:
        return _decode(_reading_decoder, data)
    except DecodeError as strict:
        if not strict.reason.startswith("invalid field"):
            raise  # empty, too large or not JSON: nothing to read leniently
        return decode_lenient(data, default_time, strict)  # type: ignore[arg-type]  # data is bytes here


def decode_lenient(
    data: bytes, default_time: datetime | None, strict: DecodeError | None = None
) -> TemperatureReading:
    """The slow path of decode_reading, for a reading the strict decode refused (`strict`, whose reason is kept
    when the document cannot even be split into fields)."""
    try:
        document = _fields_decoder.decode(data)
    except (msgspec.MsgspecError, ValueError, TypeError, RecursionError):
        raise strict or _lenient_error(data) from None
    chosen: dict[str, msgspec.Raw] = {}
    for key, value in document.items():
        name = _FOLDED.get(_fold(key))
        if name is not None and bytes(value) != _NULL:  # Go: null leaves the field as it was
            chosen[name] = value
    parts = [b'"' + _READING_FIELDS[name] + b'":' + bytes(value) for name, value in chosen.items()]
    if "timestamp" not in chosen and default_time is not None:
        parts.append(b'"timestamp":' + _encoder.encode(default_time))
    return _parse(_reading_decoder, b"{" + b",".join(parts) + b"}")


def _lenient_error(data: bytes) -> DecodeError:
    try:
        _parse(_reading_decoder, data)
    except DecodeError as error:
        return error
    return DecodeError("invalid field: not a reading")


def _fold(key: str) -> str:
    """Go's case folding, for our ASCII field names: ASCII case, and `ſ` (U+017F) as `s`, the Kelvin sign
    (U+212A, which lower() already maps to `k`) as `k`. No other character folds to an ASCII letter."""
    return key.lower().replace("\u017f", "s")


_FOLDED: Final = {name: name for name in _READING_FIELDS}


def decode_alert(data: bytes | None) -> AlertEvent:
    return _decode(_alert_decoder, data)
