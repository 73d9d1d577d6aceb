"""The alert policy: a pure function of (temperature, event time, device state) -> (verdict, new state).

Rules, in the order they apply:

- **Hot** means `temperature > threshold`, strictly, as in the original.
- **Event time.** Cooldown is measured on the readings' own timestamps, so a
  backlog or a replay decides as live traffic did. A device clock is trusted
  only within `max_clock_skew` of the Kafka record timestamp (set when the
  reading was produced): the event time is the reading's timestamp clamped to
  `[record_time - skew, record_time + skew]`. A clock that jumps into the far
  future therefore cannot extend a cooldown by more than the skew, and one that
  jumps into the past, or sticks, cannot bypass or freeze it: two alerts of a
  device are at least `cooldown - 2*skew` apart in record time, and a hot
  reading at least `cooldown + 2*skew` after the last alert always alerts.
- **Cooldown.** A hot reading alerts unless an alert of the same device lies
  less than `cooldown` away from it in event time, on either side (a reading
  replayed from before an alert that was already delivered must not repeat it).
- **Delivered, not due, starts a cooldown.** An alert handed to Slack is *in
  flight*; it suppresses the readings its cooldown will cover, but only a
  delivery turns it into a cooldown. An alert refused for good starts one too
  (the caller treats it as `delivered`): a revoked webhook is asked once per
  cooldown, not at every hot reading.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Verdict(Enum):
    NORMAL = "normal"  # not above the threshold
    ALERT = "alert"  # an alert is due
    COOLDOWN = "cooldown"  # suppressed: a delivered alert of this device is near in event time
    IN_FLIGHT = "in_flight"  # suppressed: an alert of this device near in event time awaits delivery


@dataclass(frozen=True, slots=True)
class DeviceState:
    """Event times (epoch seconds) of a device's recent alerts."""

    delivered: tuple[float, ...] = ()
    in_flight: tuple[float, ...] = ()


EMPTY = DeviceState()


def event_time(reading_time: float, record_time: float | None, max_skew: float) -> float:
    """The reading's timestamp, trusted only within `max_skew` of the record's Kafka timestamp."""
    if record_time is None:
        return reading_time
    return min(max(reading_time, record_time - max_skew), record_time + max_skew)


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    threshold: float
    cooldown: float
    max_clock_skew: float

    def is_hot(self, temperature: float) -> bool:
        return temperature > self.threshold

    def decide(self, temperature: float, at: float, state: DeviceState) -> tuple[Verdict, DeviceState]:
        """Whether a reading at event time `at` raises an alert; an alert is recorded as in flight."""
        if not temperature > self.threshold:
            return Verdict.NORMAL, state
        cooldown = self.cooldown
        for t in state.delivered:
            if abs(at - t) < cooldown:
                return Verdict.COOLDOWN, state
        for t in state.in_flight:
            if abs(at - t) < cooldown:
                return Verdict.IN_FLIGHT, state
        return Verdict.ALERT, DeviceState(state.delivered, (*state.in_flight, at))

    def delivered(self, state: DeviceState, at: float) -> DeviceState:
        """Slack accepted the alert raised at `at`: its cooldown starts now.

        Alerts older than `at - cooldown - 2*skew` can no longer suppress
        anything (later readings are later in record time), so they are dropped.
        """
        horizon = at - self.cooldown - 2 * self.max_clock_skew
        delivered = () if self.cooldown <= 0 else tuple(t for t in (*state.delivered, at) if t > horizon)
        return DeviceState(delivered, _without(state.in_flight, at))

    def abandoned(self, state: DeviceState, at: float) -> DeviceState:
        """The alert raised at `at` will not be delivered (given up, or its partition moved): no cooldown."""
        return DeviceState(state.delivered, _without(state.in_flight, at))

    def restored(self, state: DeviceState, times: tuple[float, ...]) -> DeviceState:
        """Alerts delivered earlier (read back from the alerts topic) join the state."""
        if self.cooldown <= 0 or not times:
            return state
        return DeviceState(tuple(sorted({*state.delivered, *times})), state.in_flight)


def _without(times: tuple[float, ...], at: float) -> tuple[float, ...]:
    if at not in times:
        return times
    index = times.index(at)
    return times[:index] + times[index + 1 :]
