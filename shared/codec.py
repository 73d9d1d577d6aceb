"""JSON bytes <-> model objects, with one error type for everything that can go wrong.

msgspec validates while it parses, so a decoded object already honours every
bound in shared.models; callers never see a half-valid reading.
"""

from __future__ import annotations

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


def encode(message: TemperatureReading | AlertEvent) -> bytes:
    return _encoder.encode(message)


T = TypeVar("T")


def _decode(decoder: msgspec.json.Decoder[T], data: bytes | None) -> T:
    if not data:  # None (a tombstone) or zero bytes
        raise DecodeError("empty record (no value)")
    if len(data) > MAX_RECORD_BYTES:
        raise DecodeError(f"record too large ({len(data)} bytes > {MAX_RECORD_BYTES})")
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


def decode_reading(data: bytes | None) -> TemperatureReading:
    return _decode(_reading_decoder, data)


def decode_alert(data: bytes | None) -> AlertEvent:
    return _decode(_alert_decoder, data)
