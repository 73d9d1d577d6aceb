"""The alert policy: pure decisions on (reading, event time, wall time, device state); no clock, no I/O.

Rules, in the order they apply:

- **Event time.** Every decision is measured on the readings' own timestamps,
  so a backlog or a replay decides as live traffic did. A device clock is
  trusted only within `max_clock_skew` of the Kafka record timestamp: the event
  time is the reading's timestamp clamped to `[record_time - skew, record_time
  + skew]`. A clock that jumps into the far future therefore cannot extend a
  cooldown by more than the skew, and one that jumps into the past, or sticks,
  cannot bypass or freeze it: two alerts of a device and kind are at least
  `cooldown - 2*skew` apart in record time, and a hot reading at least
  `cooldown + 2*skew` after the last one always alerts.
- **Thresholds.** *Critical* means `temperature > threshold`, strictly, as in
  the original; with `gpu_thresholds`, a reading that carries its GPU's
  `slowdown_temperature` is critical above `slowdown - gpu_margin` instead,
  and its warning threshold keeps the configured distance below that.
  *Warning* means above `warning_threshold` and at or below the critical one.
- **Cooldown per device and kind.** A reading of a kind alerts unless an alert
  of the same device and kind lies less than `cooldown` away from it in event
  time, on either side (a reading replayed from before a delivered alert must
  not repeat it). A critical alert near in event time also holds back warnings
  and forecasts (as Alertmanager's inhibit rules would); a warning never holds
  back a critical: escalation alerts at once.
- **Forecast.** Below the critical threshold, the device's trend (a first-order
  heating model fitted over `forecast_window`, alerter.domain.forecast) is
  asked whether it reaches the critical threshold within `forecast_horizon`;
  it answers only when a spike or a settling load change cannot explain the
  window.
- **Resolved.** A device with an open alert (a critical, warning or forecast
  raised and not yet resolved) whose readings stay `resolve_hysteresis` below
  both its lowest threshold and the temperature its latest alert reported (a
  forecast is raised below every threshold), with no forecast standing, for
  `resolve_after` of event time after that alert gets one resolved notice.
- **Silent.** A device that reported and then sends nothing for
  `silence_after`, measured on its partition's own event-time clock (see
  Partitions.sweep), gets one silent alert; its next reading is a resolved
  notice that it reports again.
- **Backlog.** A reading is *late* when its event time is more than
  `late_after = max(cooldown, 2*skew)` behind the wall clock when it is
  judged: by then its device's next alert would already be due. Late critical
  readings are folded into one alert per device (first and last time, peak,
  count), raised when the device's readings are current again or its
  partition has caught up, and covered by any critical alert of the device
  that is later or less than a cooldown earlier (so a backlog read twice
  folds once). Late readings raise no warning, forecast or resolved notice.
- **Delivered, not due, starts a cooldown.** A notification handed over is *in
  flight*; it suppresses what its cooldown will cover, but only a delivery
  turns it into a cooldown. One refused for good starts one too (the caller
  treats it as `delivered`): a revoked webhook is asked once per cooldown, not
  at every reading; one given up (shutdown, a partition that moved) does not.
- **Memory.** An open alert, or a silence, is remembered for OPEN_MEMORY after
  it was raised: long enough for a resolved notice, short enough to read back
  from the alerts topic when a partition moves (Assignment restores that far).

A device's state is one mutable object owned by its partition; the methods
here change it in place and return what became due, in order. The forecast's
trend is part of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Final, NamedTuple

from alerter.domain.forecast import BUCKETS, Forecast, TrendModel, TrendState
from alerter.domain.notification import (
    TEMPERATURE_KINDS,
    Backlog,
    Detail,
    Kind,
    Outlook,
    Recorded,
    Resolution,
    Silence,
)
from shared.models import TemperatureReading

OPEN_MEMORY: Final = 3600.0  # seconds an open alert or a silence is remembered after it was raised
EXPIRY_MARGIN: Final = 60.0  # seconds beyond cooldown + 2*skew before a delivered alert is forgotten
REPLAY_MARGIN: Final = 10.0  # seconds read again beyond the longest window after a restart

_CRITICAL, _WARNING, _FORECAST, _RESOLVED, _SILENT = (
    Kind.CRITICAL,
    Kind.WARNING,
    Kind.FORECAST,
    Kind.RESOLVED,
    Kind.SILENT,
)
_NAN = math.nan
_INF = math.inf

Mark = tuple[Kind, float]  # a notification of that kind raised at that event time


class Verdict(Enum):
    """What became of a reading's temperature (resolved and forecast notices are counted by kind instead)."""

    NORMAL = "normal"  # at or below every alert threshold
    ALERT = "alert"  # a critical or warning alert is due
    COOLDOWN = "cooldown"  # suppressed: a delivered alert of this device and kind is near in event time
    IN_FLIGHT = "in_flight"  # suppressed: an undelivered alert of this device and kind is near
    INHIBITED = "inhibited"  # a warning held back by a critical alert of the device near in event time
    FOLDED = "folded"  # a late critical reading, folded into the device's backlog alert
    LATE = "late"  # a late warning: dropped (only critical readings are folded)


class Limits(NamedTuple):
    """A reading's thresholds, °C."""

    critical: float
    warning: float | None


class _Reading(NamedTuple):
    """One reading as the policy judges it."""

    reading: TemperatureReading
    offset: int
    at: float  # event time
    late: bool  # more than late_after behind the wall clock
    limits: Limits


@dataclass(frozen=True, slots=True)
class Due:
    """A notification the policy raised (already in flight in the device state): the partition hands it over."""

    kind: Kind
    at: float  # event time it was raised at; its cooldown mark
    reading: TemperatureReading  # what it is about
    threshold: float  # °C, the threshold it names
    offset: int  # the readings offset it holds until settled
    held: bool = False  # the offset is held already (a backlog's first reading)
    detail: Detail = None


class Fold:
    """A device's late critical readings, waiting to go out as one alert."""

    __slots__ = ("count", "first", "last", "offset", "peak", "threshold")

    def __init__(self, reading: TemperatureReading, at: float, offset: int, threshold: float) -> None:
        self.first = self.last = at
        self.peak = reading
        self.count = 1
        self.offset = offset  # the first reading's: held until the alert is settled, so a crash folds again
        self.threshold = threshold

    def add(self, reading: TemperatureReading, at: float, threshold: float) -> None:
        self.first, self.last = min(self.first, at), max(self.last, at)
        if reading.temperature > self.peak.temperature:
            self.peak = reading
        self.count += 1
        self.threshold = threshold


class DeviceState:
    """One device's memory: its alerts (by kind and event time) and newest reading's time; the rest, needed only
    with early-warning settings or a backlog, in `more` (made on first use: most devices of a large fleet never
    need it, and each slot costs 8 bytes a device)."""

    __slots__ = ("delivered", "in_flight", "more", "seen")

    def __init__(self) -> None:
        self.delivered: tuple[Mark, ...] = ()  # delivered alerts that may still hold others back
        self.in_flight: tuple[Mark, ...] = ()  # raised, not yet settled
        self.seen = -_INF  # event time of the newest reading
        self.more: More | None = None


class More:
    """What a device needs beyond its alerts: open alerts, silences, its trend, backlog, last reading.

    `alerted`/`resolved` and `silenced`/`heard` only ever grow (maxima of
    event times), so state read back from the alerts topic merges in any order:
    an alert is open while alerted > resolved, a device silent while
    silenced > heard.
    """

    __slots__ = (
        "alerted",
        "alerted_temperature",
        "cool_since",
        "fold",
        "heard",
        "last",
        "offset",
        "resolved",
        "silenced",
        "trend",
    )

    def __init__(self) -> None:
        self.alerted = -_INF  # latest critical/warning/forecast raised (kept with RESOLVE_AFTER)
        self.alerted_temperature = _INF  # °C it reported
        self.resolved = -_INF  # latest resolved notice for them
        self.cool_since = _NAN  # while open: event time of the first reading of the current cool run
        self.silenced = -_INF  # latest silent alert (kept with SILENCE_AFTER)
        self.heard = -_INF  # latest "reports again" notice (or silent alert given up)
        self.offset = -1  # readings offset of the newest reading
        self.last: TemperatureReading | None = None  # the newest reading (kept only for silence)
        self.trend: TrendState | None = None  # kept only for forecasts
        self.fold: Fold | None = None  # late critical readings not yet raised


def more(state: DeviceState) -> More:
    """The state's `more`, made on first use."""
    found = state.more
    if found is None:
        found = state.more = More()
    return found


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
    warning_threshold: float | None = None
    gpu_thresholds: bool = False
    gpu_margin: float = 5.0
    forecast_horizon: float | None = None
    forecast_window: float = 120.0
    resolve_after: float | None = None
    resolve_hysteresis: float = 5.0
    silence_after: float | None = None
    late_after: float = field(init=False)
    model: TrendModel | None = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "late_after", max(self.cooldown, 2 * self.max_clock_skew))
        model = None if self.forecast_horizon is None else TrendModel(self.forecast_window)
        object.__setattr__(self, "model", model)

    # -- what the shell needs to know ------------------------------------------------------------

    @property
    def every_reading(self) -> bool:
        """Whether readings below every threshold matter (trends, resolutions, silence, per-GPU thresholds)."""
        return (
            self.gpu_thresholds
            or self.forecast_horizon is not None
            or self.resolve_after is not None
            or self.silence_after is not None
        )

    @property
    def watch_above(self) -> float:
        """Readings at or below this cannot matter: the readings source may skip them."""
        if self.every_reading:
            return -_INF
        return self.threshold if self.warning_threshold is None else min(self.threshold, self.warning_threshold)

    @property
    def reach(self) -> float:
        """How far back in event time a delivered notification can still change a decision."""
        if self.resolve_after is None and self.silence_after is None:
            return self.cooldown
        return max(self.cooldown, OPEN_MEMORY)

    @property
    def replay_window(self) -> float:
        """Event time a restart must read again to rebuild trends, cool runs and silence timers (0: none)."""
        windows = [0.0]
        if self.forecast_horizon is not None:
            windows.append(self.forecast_window * (1 + 2 / BUCKETS))
        if self.resolve_after is not None:
            windows.append(self.resolve_after)
        if self.silence_after is not None:
            windows.append(self.silence_after)
        longest = max(windows)
        return longest + REPLAY_MARGIN if longest else 0.0

    def limits(self, reading: TemperatureReading) -> Limits:
        if self.gpu_thresholds:
            slowdown = reading.slowdown_temperature
            if isinstance(slowdown, float) and slowdown > 0:
                critical = slowdown - self.gpu_margin
                warning = self.warning_threshold
                if warning is not None:
                    warning = critical - (self.threshold - warning)
                return Limits(critical, warning)
        return Limits(self.threshold, self.warning_threshold)

    def is_hot(self, temperature: float) -> bool:
        return temperature > self.threshold

    # -- one reading -----------------------------------------------------------------------------

    def judge(
        self, state: DeviceState, reading: TemperatureReading, offset: int, at: float, now: float
    ) -> tuple[Verdict, list[Due]]:
        """Everything one reading (at event time `at`, judged at wall time `now`) makes due, in order."""
        dues: list[Due] = []
        this = _Reading(reading, offset, at, now - at > self.late_after, self.limits(reading))
        temperature, limits = reading.temperature, this.limits
        if at > state.seen:
            if self.silence_after is not None:
                extra = more(state)
                if extra.silenced > extra.heard and at - extra.silenced <= OPEN_MEMORY:
                    since = state.seen if state.seen > -_INF else extra.silenced
                    resolution = Resolution((_SILENT,), since, _NAN)
                    dues.append(self._raise(state, _RESOLVED, this, limits.critical, resolution))
                extra.offset, extra.last = offset, reading
            state.seen = at
        found = state.more
        if found is not None and found.fold is not None and not this.late:  # current again: the backlog goes out
            if temperature > limits.critical:
                found.fold.add(reading, at, limits.critical)  # and says it is still hot now
            dues.append(self._unfold(state, found, found.fold))
        trend = None
        if self.model is not None:
            found = more(state)
            trend = found.trend
            if trend is None:
                trend = found.trend = self.model.new_state()
            trend.add(at, temperature)
        verdict = Verdict.NORMAL
        if temperature > limits.critical:
            verdict = self._critical(state, this, dues)
        elif limits.warning is not None and temperature > limits.warning:
            verdict = self._warning(state, this, limits.warning, dues)
        forecast = None
        if trend is not None and self.forecast_horizon is not None and not this.late and temperature <= limits.critical:
            forecast = trend.forecast(limits.critical, self.forecast_horizon, at)
            if forecast is not None:
                self._forecast(state, forecast, this, dues)
        if self.resolve_after is not None:
            self._resolve(state, more(state), this, dues, forecasting=forecast is not None)
        return verdict, dues

    def _critical(self, state: DeviceState, this: _Reading, dues: list[Due]) -> Verdict:
        at, threshold = this.at, this.limits.critical
        if this.late:  # covered by any critical alert later than a cooldown before it; else into the backlog
            cooldown = self.cooldown
            for kind, t in state.delivered:
                if kind is _CRITICAL and t > at - cooldown:
                    return Verdict.COOLDOWN
            for kind, t in state.in_flight:
                if kind is _CRITICAL and t > at - cooldown:
                    return Verdict.IN_FLIGHT
            extra = more(state)
            if extra.fold is None:
                extra.fold = Fold(this.reading, at, this.offset, threshold)
            else:
                extra.fold.add(this.reading, at, threshold)
            return Verdict.FOLDED
        verdict = self._suppressed(state, _CRITICAL, at)
        if verdict is not None:
            return verdict
        dues.append(self._raise(state, _CRITICAL, this, threshold))
        return Verdict.ALERT

    def _warning(self, state: DeviceState, this: _Reading, threshold: float, dues: list[Due]) -> Verdict:
        if this.late:
            return Verdict.LATE
        if self._suppressed(state, _CRITICAL, this.at) is not None:
            return Verdict.INHIBITED
        verdict = self._suppressed(state, _WARNING, this.at)
        if verdict is not None:
            return verdict
        dues.append(self._raise(state, _WARNING, this, threshold))
        return Verdict.ALERT

    def _forecast(self, state: DeviceState, forecast: Forecast, this: _Reading, dues: list[Due]) -> None:
        at, threshold = this.at, this.limits.critical
        if self._suppressed(state, _CRITICAL, at) or self._suppressed(state, _FORECAST, at):
            return
        outlook = Outlook(threshold, forecast.eta, forecast.rate, forecast.level)
        dues.append(self._raise(state, _FORECAST, this, threshold, outlook))

    def _resolve(self, state: DeviceState, extra: More, this: _Reading, dues: list[Due], *, forecasting: bool) -> None:
        """A reading is cool when a hysteresis below both the lowest threshold and the temperature the latest alert
        reported, with no forecast standing; a cool run counts from after the device's latest alert (so readings
        read again after a restart, older than an alert read back, start none). A backlog alert still waiting
        counts as raised at its last reading."""
        at, limits, alerted = this.at, this.limits, extra.alerted
        if extra.fold is not None:
            alerted = max(alerted, extra.fold.last)
        if not (extra.resolved < alerted <= at and at - alerted <= OPEN_MEMORY):
            extra.cool_since = _NAN
            return
        lowest = limits.critical if limits.warning is None else min(limits.critical, limits.warning)
        below = min(lowest, extra.alerted_temperature) - self.resolve_hysteresis
        if forecasting or not this.reading.temperature < below:
            extra.cool_since = _NAN
            return
        since = extra.cool_since
        if not alerted <= since <= at:  # nan (a new cool run), from before the latest alert, or out of order
            since = extra.cool_since = at if math.isnan(since) or since < alerted else min(since, at)
        if this.late or self.resolve_after is None or at - since < self.resolve_after:
            return
        dues.append(self._raise(state, _RESOLVED, this, below, Resolution(TEMPERATURE_KINDS, since, below)))
        extra.cool_since = _NAN

    # -- the partition's sweep -------------------------------------------------------------------

    def silence(self, state: DeviceState, clock: float) -> Due | None:
        """A silent alert, if the device's newest reading is `silence_after` behind its partition's clock."""
        after, extra = self.silence_after, state.more
        if after is None or extra is None or extra.last is None or extra.silenced > extra.heard:
            return None
        if clock - state.seen < after:
            return None
        this = _Reading(extra.last, extra.offset, clock, False, self.limits(extra.last))
        return self._raise(state, _SILENT, this, this.limits.critical, Silence(state.seen, clock - state.seen))

    def still_silent(self, state: DeviceState) -> TemperatureReading | None:
        """The device's newest reading while its silent alert stands (raised, no "reports again" since)."""
        extra = state.more
        if self.silence_after is None or extra is None or extra.silenced <= extra.heard:
            return None
        return extra.last

    def unfold(self, state: DeviceState) -> Due | None:
        """The device's backlog alert, if it has one waiting (its partition caught up)."""
        extra = state.more
        return None if extra is None or extra.fold is None else self._unfold(state, extra, extra.fold)

    def _unfold(self, state: DeviceState, extra: More, fold: Fold) -> Due:
        extra.fold = None
        this = _Reading(fold.peak, fold.offset, fold.last, False, Limits(fold.threshold, None))
        backlog = Backlog(fold.first, fold.last, fold.peak.temperature, fold.count)
        due = self._raise(state, _CRITICAL, this, fold.threshold, backlog)
        return Due(due.kind, due.at, due.reading, due.threshold, due.offset, True, due.detail)

    def _raise(self, state: DeviceState, kind: Kind, this: _Reading, threshold: float, detail: Detail = None) -> Due:
        at = this.at
        state.in_flight = (*state.in_flight, (kind, at))
        if kind is _RESOLVED:
            extra = more(state)
            if isinstance(detail, Resolution) and _SILENT in detail.ends:
                extra.heard = max(extra.heard, at)
            else:
                extra.resolved = max(extra.resolved, at)
        elif kind is _SILENT:
            extra = more(state)
            extra.silenced = max(extra.silenced, at)
        elif self.resolve_after is not None:
            _alerted(more(state), at, this.reading.temperature)
        return Due(kind, at, this.reading, threshold, this.offset, detail=detail)

    def _suppressed(self, state: DeviceState, kind: Kind, at: float) -> Verdict | None:
        cooldown = self.cooldown
        for k, t in state.delivered:
            if k is kind and abs(at - t) < cooldown:
                return Verdict.COOLDOWN
        for k, t in state.in_flight:
            if k is kind and abs(at - t) < cooldown:
                return Verdict.IN_FLIGHT
        return None

    # -- results, restores, expiry ---------------------------------------------------------------

    def delivered(self, state: DeviceState, kind: Kind, at: float) -> None:
        """The receiver accepted what was raised at `at`: for an alert, its cooldown starts now."""
        state.in_flight = _without(state.in_flight, (kind, at))
        if kind in TEMPERATURE_KINDS and self.cooldown > 0 and (kind, at) not in state.delivered:
            state.delivered = (*state.delivered, (kind, at))

    def abandoned(self, state: DeviceState, kind: Kind, at: float) -> None:
        """What was raised at `at` will not be delivered (given up, or its partition moved): no cooldown; a silence
        may be noticed again."""
        state.in_flight = _without(state.in_flight, (kind, at))
        if kind is _SILENT:
            extra = more(state)
            extra.heard = max(extra.heard, at)

    def restored(self, state: DeviceState, records: tuple[Recorded, ...]) -> None:
        """Notifications delivered earlier (read back from the alerts topic) join the state, in any order."""
        for record in records:
            kind, at = record.kind, record.at
            if kind in TEMPERATURE_KINDS:
                if self.resolve_after is not None:
                    _alerted(more(state), at, record.temperature if math.isfinite(record.temperature) else _INF)
                if self.cooldown > 0 and (kind, at) not in state.delivered:
                    state.delivered = (*state.delivered, (kind, at))
            elif kind is _SILENT and self.silence_after is not None:
                extra = more(state)
                extra.silenced = max(extra.silenced, at)
                state.seen = max(state.seen, at - self.silence_after)  # its last reading was no later
            elif kind is _RESOLVED:
                ends = record.ends or TEMPERATURE_KINDS
                if _SILENT in ends and self.silence_after is not None:
                    extra = more(state)
                    extra.heard = max(extra.heard, at)
                if any(k in TEMPERATURE_KINDS for k in ends) and self.resolve_after is not None:
                    extra = more(state)
                    extra.resolved = max(extra.resolved, at)

    def forget(self, state: DeviceState, horizon: float) -> None:
        """Drop delivered alerts older than `horizon`: they can no longer hold anything back."""
        if state.delivered and any(t < horizon for _, t in state.delivered):
            state.delivered = tuple(mark for mark in state.delivered if mark[1] >= horizon)

    def expiry_horizon(self, clock: float) -> float:
        """Delivered alerts before this event time can hold back no reading still to come near `clock`."""
        return clock - self.cooldown - 2 * self.max_clock_skew - EXPIRY_MARGIN

    def memory_horizon(self, clock: float) -> float:
        """Open alerts and silences raised before this event time can change no decision still to come."""
        return clock - OPEN_MEMORY - 2 * self.max_clock_skew - EXPIRY_MARGIN

    def expired(self, state: DeviceState, clock: float) -> bool:
        """Whether nothing in the state can matter any more at partition clock `clock` (after `forget`)."""
        if state.in_flight or state.delivered:
            return False
        extra = state.more
        if extra is None:
            return True
        memory = self.memory_horizon(clock)
        open_alert = self.resolve_after is not None and extra.alerted > extra.resolved and extra.alerted >= memory
        silence = False
        if self.silence_after is not None:
            silent = extra.silenced > extra.heard
            # A silence is remembered for OPEN_MEMORY; a device not yet called silent is still watched.
            silence = extra.silenced >= memory if silent else extra.last is not None
        trend = self.model is not None and clock - state.seen < self.forecast_window
        return extra.fold is None and not (open_alert or silence or trend)


def folded(state: DeviceState) -> Fold | None:
    """The device's backlog alert still waiting, if any."""
    return None if state.more is None else state.more.fold


def _alerted(extra: More, at: float, temperature: float) -> None:
    if at > extra.alerted:
        extra.alerted, extra.alerted_temperature = at, temperature
    elif at == extra.alerted:
        extra.alerted_temperature = max(extra.alerted_temperature, temperature)


def _without(marks: tuple[Mark, ...], mark: Mark) -> tuple[Mark, ...]:
    if mark not in marks:
        return marks
    index = marks.index(mark)
    return marks[:index] + marks[index + 1 :]
