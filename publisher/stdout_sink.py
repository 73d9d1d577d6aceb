"""`--stdout`: each reading as one JSON line on stdout instead of a Kafka record, for checking a host's GPUs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from publisher.high_temp import HotReading


class StdoutSink:
    """Writes the record values, one per line, flushed every tick; nothing is ever pending or lost in flight."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._printed: list[HotReading] = []
        self._printed_count = 0
        self._broken: str | None = None

    def send(
        self,
        keys: Sequence[bytes],
        values: Sequence[bytes],
        give_up: Callable[[], bool],
        watched: npt.NDArray[np.intp] = np.zeros(0, dtype=np.intp),  # noqa: B008 - never modified
        named: Sequence[HotReading] = (),
    ) -> int:
        if not values:
            return 0
        try:
            self._out.write(b"\n".join(values) + b"\n")
            self._out.flush()
        except (BrokenPipeError, OSError) as error:  # `... --stdout | head`: the reader went away
            self._broken = f"stdout closed ({error.strerror or type(error).__name__})"
            return 0
        self._printed_count += len(watched)
        self._printed.extend(named)
        return len(values)

    def take_acknowledged(self) -> tuple[int, list[HotReading]]:
        """Printed is as far as it goes: every watched reading counts as acknowledged once written."""
        printed, self._printed = (self._printed_count, self._printed), []
        self._printed_count = 0
        return printed

    def pending(self) -> int:
        return 0

    def poll(self, timeout: float) -> None:
        """Nothing to serve."""

    def flush(self, timeout: float) -> int:
        return 0

    def take_failures(self) -> dict[str, int]:
        return {}

    def fatal_error(self) -> str | None:
        return self._broken
