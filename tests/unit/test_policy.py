"""The alert policy as pure code: thresholds and kinds, cooldown per device and kind on event time, clock jumps,
forecasts, resolutions, backlogs, restarts."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerter.domain.notification import Backlog, Kind, Outlook, Recorded, Resolution
from alerter.domain.policy import AlertPolicy, DeviceState, Due, Verdict, event_time, folded
from shared.models import TemperatureReading

THRESHOLD = 150.0
COOLDOWN = 300.0
SKEW = 60.0
POLICY = AlertPolicy(THRESHOLD, COOLDOWN, SKEW)
T0 = 1_000_000.0


def hot_reading(
    temperature: float, at: float, device: str = "gpu-1", slowdown: float | None = None
) -> TemperatureReading:
    return TemperatureReading(
        device_id=device,
        temperature=temperature,
        timestamp=datetime.fromtimestamp(at, UTC),
        slowdown_temperature=msgspec.UNSET if slowdown is None else slowdown,
    )


def decide(policy: AlertPolicy, state: DeviceState, temperature: float, at: float, now: float | None = None) -> Verdict:
    """Judge one reading live (or at wall time `now`), every due notification delivered at once."""
    verdict, dues = policy.judge(state, hot_reading(temperature, at), 0, at, at if now is None else now)
    for due in dues:
        policy.delivered(state, due.kind, due.at)
    return verdict


def judged(
    policy: AlertPolicy, state: DeviceState, temperature: float, at: float, now: float | None = None
) -> list[Due]:
    """Judge one reading, leaving what it raised in flight."""
    return policy.judge(state, hot_reading(temperature, at), 0, at, at if now is None else now)[1]


def restored(policy: AlertPolicy, *records: Recorded) -> DeviceState:
    state = DeviceState()
    policy.restored(state, records)
    return state


@dataclass(frozen=True)
class Reading:
    device: str
    temperature: float
    reading_time: float  # what the device's clock says
    record_time: float  # when Kafka got it


def run(policy: AlertPolicy, readings: list[Reading], states: dict[str, DeviceState] | None = None) -> list[int]:
    """Feed readings in order, live, every alert delivered at once; returns the indices that raised an alert."""
    states = {} if states is None else states
    alerted = []
    for index, reading in enumerate(readings):
        at = event_time(reading.reading_time, reading.record_time, policy.max_clock_skew)
        state = states.setdefault(reading.device, DeviceState())
        due = judged(policy, state, reading.temperature, at, now=reading.record_time)
        for alert in due:
            policy.delivered(state, alert.kind, alert.at)
        if due:
            alerted.append(index)
    return alerted


# -- the original's rule, unchanged ---------------------------------------------------------------


def test_threshold_is_strict() -> None:
    """A reading exactly at the threshold is normal; the smallest step above it alerts."""
    assert decide(POLICY, DeviceState(), THRESHOLD, T0) is Verdict.NORMAL
    assert decide(POLICY, DeviceState(), THRESHOLD + 1e-9, T0) is Verdict.ALERT
    assert not POLICY.is_hot(THRESHOLD)


@given(st.floats(-273.15, THRESHOLD), st.floats(-1e9, 1e9))
def test_normal_readings_never_alert(temperature: float, at: float) -> None:
    """Nothing at or below the threshold raises anything, whatever the state, with no other kind configured."""
    state = restored(POLICY, Recorded(Kind.CRITICAL, at - 10.0))
    assert POLICY.judge(state, hot_reading(temperature, at), 0, at, at) == (Verdict.NORMAL, [])


def test_cooldown_starts_on_delivery_and_ends_after_cooldown() -> None:
    """After a delivered alert, hot readings are suppressed for exactly `cooldown` seconds of event time."""
    state = DeviceState()
    assert decide(POLICY, state, 200.0, T0) is Verdict.ALERT
    assert decide(POLICY, state, 200.0, T0 + COOLDOWN - 0.001) is Verdict.COOLDOWN
    assert decide(POLICY, state, 200.0, T0 + COOLDOWN) is Verdict.ALERT


def test_in_flight_alert_suppresses_without_starting_a_cooldown() -> None:
    """An undelivered alert covers its window, and once abandoned leaves no cooldown behind."""
    state = DeviceState()
    [due] = judged(POLICY, state, 200.0, T0)
    assert (due.kind, state.in_flight, state.delivered) == (Kind.CRITICAL, ((Kind.CRITICAL, T0),), ())
    assert POLICY.judge(state, hot_reading(200.0, T0 + 10), 0, T0 + 10, T0 + 10) == (Verdict.IN_FLIGHT, [])
    POLICY.abandoned(state, Kind.CRITICAL, T0)
    assert state.in_flight == ()
    assert decide(POLICY, state, 200.0, T0 + 10) is Verdict.ALERT


def test_long_outage_raises_one_alert_per_cooldown_while_undelivered() -> None:
    """While Slack is down, a device still hot a cooldown later gets its next alert due, as live traffic would."""
    state = DeviceState()
    due = [t for t in range(0, 1000, 10) if judged(POLICY, state, 200.0, T0 + t)]
    assert due == [0, 300, 600, 900]
    assert [t - T0 for _, t in state.in_flight] == [0, 300, 600, 900]


def test_replayed_reading_from_before_a_delivered_alert_is_suppressed() -> None:
    """Cooldown looks both ways: a replayed hot reading shortly before a delivered alert does not repeat it."""
    assert decide(POLICY, restored(POLICY, Recorded(Kind.CRITICAL, T0)), 200.0, T0 - 10) is Verdict.COOLDOWN
    assert decide(POLICY, restored(POLICY, Recorded(Kind.CRITICAL, T0)), 200.0, T0 - COOLDOWN) is Verdict.ALERT


@given(st.floats(-1e7, 1e7), st.floats(-1e7, 1e7), st.floats(0, 1e4))
def test_event_time_trusts_the_device_clock_within_the_skew(reading: float, record: float, skew: float) -> None:
    """The event time is the device's time when within `skew` of the record time, else the nearest bound."""
    at = event_time(reading, record, skew)
    assert record - skew <= at <= record + skew
    if record - skew <= reading <= record + skew:
        assert at == reading
    assert event_time(reading, None, skew) == reading


# A device's clock either follows the record time with small jitter or jumps far away (past or future), or sticks.
clock_offsets = st.one_of(st.floats(-5, 5), st.floats(-1e7, 1e7), st.just(None))


@st.composite
def streams(draw: st.DrawFn, devices: int = 1) -> list[Reading]:
    """Hot-and-normal readings with non-decreasing record times and device clocks that may jump or stick."""
    count = draw(st.integers(1, 60))
    record_time = 1_000_000.0
    stuck: dict[str, float] = {}
    readings = []
    for _ in range(count):
        record_time += draw(st.floats(0, 200))
        device = f"gpu-{draw(st.integers(0, devices - 1))}"
        offset = draw(clock_offsets)
        reading_time = stuck.setdefault(device, record_time) if offset is None else record_time + offset
        temperature = draw(st.sampled_from([100.0, 160.0, 250.0]))
        readings.append(Reading(device, temperature, reading_time, record_time))
    return readings


@settings(max_examples=200)
@given(streams(), st.floats(1, 1000), st.floats(0, 120))
def test_clock_jumps_neither_bypass_nor_freeze_the_cooldown(
    readings: list[Reading], cooldown: float, skew: float
) -> None:
    """Whatever the device clock does, alerts are at least cooldown - 2*skew apart in record time,
    and a hot reading cooldown + 2*skew after the last alert (in record time) always alerts."""
    policy = AlertPolicy(THRESHOLD, cooldown, skew)
    alerted = run(policy, readings)
    hot = [i for i, r in enumerate(readings) if r.temperature > THRESHOLD]
    if hot:
        assert alerted[0] == hot[0], "the first hot reading alerts"
    for earlier, later in itertools.pairwise(alerted):
        assert readings[later].record_time - readings[earlier].record_time >= cooldown - 2 * skew - 1e-6
    last_alert = None
    for index in hot:
        if (
            last_alert is not None
            and readings[index].record_time >= readings[last_alert].record_time + cooldown + 2 * skew + 1e-6
        ):
            assert index in alerted, "a cooldown cannot be extended beyond cooldown + 2*skew"
        if index in alerted:
            last_alert = index


@settings(max_examples=200)
@given(streams(devices=3), st.data())
def test_restart_with_restored_alerts_repeats_none_and_misses_none(
    readings: list[Reading], data: st.DataObject
) -> None:
    """Crash after any record, restart from any earlier committed offset with the delivered alerts restored:
    the alerts of both runs together are exactly those of an uninterrupted run, none twice."""
    uninterrupted = run(POLICY, readings)
    crash = data.draw(st.integers(0, len(readings)), label="crash")
    committed = data.draw(st.integers(0, crash), label="committed")
    before = run(POLICY, readings[:crash])
    states: dict[str, DeviceState] = {}
    for index in before:
        reading = readings[index]
        at = event_time(reading.reading_time, reading.record_time, SKEW)
        POLICY.restored(states.setdefault(reading.device, DeviceState()), (Recorded(Kind.CRITICAL, at),))
    after = [committed + i for i in run(POLICY, readings[committed:], states)]
    assert not set(before) & set(after), "no alert delivered twice"
    assert sorted(before + after) == uninterrupted


def test_delivered_alerts_are_forgotten_once_they_cannot_matter() -> None:
    """`forget` drops alerts older than the expiry horizon (cooldown + 2*skew + a margin), so a state stays small."""
    state = DeviceState()
    for i in range(100):
        assert decide(POLICY, state, 200.0, T0 + i * COOLDOWN) is Verdict.ALERT
    POLICY.forget(state, POLICY.expiry_horizon(T0 + 99 * COOLDOWN))
    assert [t for _, t in state.delivered] == [T0 + 98 * COOLDOWN, T0 + 99 * COOLDOWN]
    assert not POLICY.expired(state, T0 + 99 * COOLDOWN)
    POLICY.forget(state, POLICY.expiry_horizon(T0 + 101 * COOLDOWN))
    assert POLICY.expired(state, T0 + 101 * COOLDOWN)


def test_zero_cooldown_alerts_every_hot_reading() -> None:
    """ALERT_COOLDOWN=0 turns the cooldown off: every hot reading alerts and no state accumulates."""
    policy = AlertPolicy(THRESHOLD, 0.0, SKEW)
    readings = [Reading("a", 200, T0 + t, T0 + t) for t in range(5)]
    assert run(policy, readings) == [0, 1, 2, 3, 4]
    assert restored(policy, Recorded(Kind.CRITICAL, T0)).delivered == ()


@pytest.mark.parametrize("times", [(), (5.0,), (5.0, 7.0)])
def test_abandoning_an_unknown_alert_changes_nothing(times: tuple[float, ...]) -> None:
    """Abandoning a time that is not in flight (already handled) leaves the state as it was."""
    state = DeviceState()
    state.in_flight = tuple((Kind.CRITICAL, t) for t in times)
    POLICY.abandoned(state, Kind.CRITICAL, 6.0)
    assert state.in_flight == tuple((Kind.CRITICAL, t) for t in times)


def test_with_no_new_setting_only_hot_readings_matter() -> None:
    """The defaults leave the original's alerter: the source may skip every reading at or below the threshold,
    and no window is read again after a restart."""
    assert (POLICY.every_reading, POLICY.watch_above, POLICY.replay_window, POLICY.reach) == (
        False,
        THRESHOLD,
        0.0,
        COOLDOWN,
    )


# -- warnings ---------------------------------------------------------------------------------------

WARN = AlertPolicy(THRESHOLD, COOLDOWN, SKEW, warning_threshold=120.0)


def test_a_warning_is_above_the_warning_threshold_and_at_or_below_the_critical_one() -> None:
    """120 is normal, 120.01 to 150 warn (with the warning threshold in the alert), above 150 is critical."""
    assert judged(WARN, DeviceState(), 120.0, T0) == []
    [warning] = judged(WARN, DeviceState(), 120.01, T0)
    [at_critical] = judged(WARN, DeviceState(), 150.0, T0)
    [critical] = judged(WARN, DeviceState(), 150.01, T0)
    assert (warning.kind, warning.threshold) == (Kind.WARNING, 120.0)
    assert (at_critical.kind, critical.kind, critical.threshold) == (Kind.WARNING, Kind.CRITICAL, 150.0)
    assert WARN.watch_above == 120.0


def test_escalation_alerts_at_once_and_a_critical_holds_warnings_back() -> None:
    """A warning does not delay a critical alert a second later; after a critical alert, warnings of that
    device are held back for a cooldown (inhibited), then warn again."""
    state = DeviceState()
    assert decide(WARN, state, 130.0, T0) is Verdict.ALERT
    assert decide(WARN, state, 135.0, T0 + 1) is Verdict.COOLDOWN
    assert decide(WARN, state, 160.0, T0 + 2) is Verdict.ALERT
    assert decide(WARN, state, 140.0, T0 + 100) is Verdict.INHIBITED
    assert decide(WARN, state, 140.0, T0 + 2 + COOLDOWN) is Verdict.ALERT
    assert [k for k, _ in state.delivered] == [Kind.WARNING, Kind.CRITICAL, Kind.WARNING]


@settings(max_examples=100)
@given(st.lists(st.tuples(st.floats(0, 30), st.sampled_from([100.0, 130.0, 160.0])), min_size=1, max_size=80))
def test_cooldown_is_per_device_and_kind(steps: list[tuple[float, float]]) -> None:
    """Alerts of one kind are at least a cooldown apart in event time; a critical always alerts when its own
    cooldown allows, whatever warnings did."""
    state, at, raised = DeviceState(), T0, []
    for step, temperature in steps:
        at += step
        for due in judged(WARN, state, temperature, at):
            WARN.delivered(state, due.kind, due.at)
            raised.append((due.kind, due.at))
    for kind in (Kind.CRITICAL, Kind.WARNING):
        times = [t for k, t in raised if k is kind]
        assert all(b - a >= COOLDOWN for a, b in itertools.pairwise(times))
    critical_times = [t for k, t in raised if k is Kind.CRITICAL]
    hot = [t for t in itertools.accumulate(s for s, _ in steps)]
    for (_, temperature), offset in zip(steps, hot, strict=True):
        if temperature > THRESHOLD:
            assert any(abs(T0 + offset - t) < COOLDOWN for t in critical_times), "every hot reading is covered"


# -- thresholds from the GPU ---------------------------------------------------------------------------

GPU = AlertPolicy(THRESHOLD, COOLDOWN, SKEW, warning_threshold=120.0, gpu_thresholds=True, gpu_margin=5.0)


def test_a_gpu_s_slowdown_temperature_sets_its_thresholds() -> None:
    """With THRESHOLDS_FROM_GPU, a reading carrying slowdown_temperature=90 is critical above 85 and warns above
    55 (the configured 30 °C below); one without it keeps the configured thresholds; off, it is ignored."""
    assert GPU.limits(hot_reading(60.0, T0, slowdown=90.0)) == (85.0, 55.0)
    assert GPU.limits(hot_reading(60.0, T0)) == (150.0, 120.0)
    assert GPU.limits(hot_reading(60.0, T0, slowdown=0.0)) == (150.0, 120.0)
    assert WARN.limits(hot_reading(60.0, T0, slowdown=90.0)) == (150.0, 120.0)
    verdict, [due] = GPU.judge(DeviceState(), hot_reading(86.0, T0, slowdown=90.0), 0, T0, T0)
    assert (verdict, due.kind, due.threshold) == (Verdict.ALERT, Kind.CRITICAL, 85.0)
    assert GPU.every_reading
    assert GPU.watch_above == float("-inf")


# -- forecasts -------------------------------------------------------------------------------------------

WINDOW = 300.0
CRITICAL = 100.0
WARNING = 88.0  # 12 °C below: a ramp of up to 6 °C/min is forecast before it gets there
FORECAST = AlertPolicy(
    CRITICAL, COOLDOWN, SKEW, warning_threshold=WARNING, forecast_horizon=600.0, forecast_window=WINDOW
)


def heating(rng: random.Random, base: float, rate: float, interval: float, quiet: float) -> list[tuple[float, float]]:
    """(event time, °C): `quiet` seconds near `base` (±1 °C), then a steady rise of `rate` °C/min, until 10 °C
    above the critical threshold."""
    series, t = [], T0
    while True:
        temperature = base + max(0.0, t - T0 - quiet) * rate / 60 + rng.uniform(-1.0, 1.0)
        series.append((t, temperature))
        if temperature > CRITICAL + 10:
            return series
        t += interval


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 2**32),
    st.floats(40.0, 60.0),
    st.floats(3.0, 6.0),
    st.sampled_from([1.0, 2.0, 5.0]),
    st.floats(WINDOW, 2 * WINDOW),
)
def test_a_steadily_heating_device_gets_forecast_then_warning_then_critical(
    seed: int, base: float, rate: float, interval: float, quiet: float
) -> None:
    """A device heating at 3 to 6 °C/min from 40-60 °C: a forecast first (below the warning threshold), then a
    warning, then a critical alert; each kind at least a cooldown apart, none after a critical alert but
    criticals."""
    state, raised = DeviceState(), []
    for at, temperature in heating(random.Random(seed), base, rate, interval, quiet):
        for due in judged(FORECAST, state, temperature, at):
            FORECAST.delivered(state, due.kind, due.at)
            raised.append((due.kind, due.at, due.reading.temperature))
    kinds = [kind for kind, _, _ in raised]
    assert {Kind.FORECAST, Kind.WARNING, Kind.CRITICAL} <= set(kinds), kinds
    first = {kind: kinds.index(kind) for kind in (Kind.FORECAST, Kind.WARNING, Kind.CRITICAL)}
    assert first[Kind.FORECAST] < first[Kind.WARNING] < first[Kind.CRITICAL], kinds
    assert raised[first[Kind.FORECAST]][2] <= WARNING, "forecast while still below the warning threshold"
    assert all(kind is Kind.CRITICAL for kind in kinds[first[Kind.CRITICAL] :])
    for kind in (Kind.FORECAST, Kind.WARNING, Kind.CRITICAL):
        times = [at for k, at, _ in raised if k is kind]
        assert all(b - a >= COOLDOWN for a, b in itertools.pairwise(times)), kind


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 2**32),
    st.floats(40.0, 80.0),
    st.floats(20.0, 100.0),
    st.sampled_from([1.0, 2.0, 5.0]),
    st.floats(0.3, 0.9),
)
def test_a_single_spike_never_forecasts(seed: int, level: float, spike: float, interval: float, where: float) -> None:
    """A steady device (±1 °C) with one abnormal reading anywhere, up to 100 °C above its level (the simulator's
    spikes), never raises a forecast, whatever the spike itself raises."""
    count = int(3 * WINDOW / interval)
    spike_at = int(count * where)
    state, kinds, rng = DeviceState(), [], random.Random(seed)
    for i in range(count):
        temperature = level + rng.uniform(-1.0, 1.0) + (spike if i == spike_at else 0.0)
        for due in judged(FORECAST, state, temperature, T0 + i * interval):
            FORECAST.delivered(state, due.kind, due.at)
            kinds.append(due.kind)
    assert Kind.FORECAST not in kinds


def test_a_forecast_carries_its_outlook_and_is_held_back_by_a_critical_alert() -> None:
    """A forecast names the threshold, time to go and rate; after a critical alert the device raises no forecast
    for a cooldown (it is already there)."""
    state, outlooks = DeviceState(), []
    for at, temperature in heating(random.Random(3), 50.0, 5.0, 1.0, WINDOW):
        for due in judged(FORECAST, state, temperature, at):
            FORECAST.delivered(state, due.kind, due.at)
            if isinstance(due.detail, Outlook):
                outlooks.append((due.at, due.detail))
    at, outlook = outlooks[0]
    assert outlook.threshold == CRITICAL
    assert 60 < outlook.eta < 600
    assert 3.0 < outlook.rate < 7.0
    critical = [t for k, t in state.delivered if k is Kind.CRITICAL]
    assert not any(c <= t < c + COOLDOWN for c in critical for t, _ in outlooks)


# -- resolved ----------------------------------------------------------------------------------------------

RESOLVE = AlertPolicy(THRESHOLD, COOLDOWN, SKEW, warning_threshold=120.0, resolve_after=120.0, resolve_hysteresis=5.0)
LEVEL = 115.0  # the lowest threshold less the hysteresis


@settings(max_examples=200)
@given(st.lists(st.tuples(st.floats(0.5, 40), st.sampled_from([60.0, 114.0, 116.0, 130.0, 160.0])), max_size=120))
def test_resolved_comes_once_and_only_after_the_hold_time(steps: list[tuple[float, float]]) -> None:
    """After an alert, one resolved notice comes exactly when the device has stayed below the lowest threshold
    less the hysteresis for RESOLVE_AFTER; never without an alert since the last one, never sooner."""
    state, at = DeviceState(), T0
    history: list[tuple[float, float]] = []  # (at, °C) of every reading
    events: list[tuple[Kind, float]] = []
    for step, temperature in [(0.0, 160.0), *steps]:
        at += step
        history.append((at, temperature))
        for due in judged(RESOLVE, state, temperature, at):
            RESOLVE.delivered(state, due.kind, due.at)
            events.append((due.kind, due.at))
    open_since: float | None = None
    cool_since: float | None = None
    for t, temperature in history:
        raised = [k for k, when in events if when == t]
        if Kind.RESOLVED in raised:
            assert open_since is not None, "a resolved notice only for an open alert"
            assert cool_since is not None
            assert t - cool_since >= 120.0, "only after the hold time"
            open_since = cool_since = None
        elif open_since is not None and cool_since is not None and temperature < LEVEL:
            assert t - cool_since < 120.0, "no later than the first reading past the hold time"
        if any(k is not Kind.RESOLVED for k in raised):
            open_since = t
        if open_since is not None:
            cool_since = (cool_since if cool_since is not None else t) if temperature < LEVEL else None
        if Kind.RESOLVED in raised:
            cool_since = None


def test_a_resolved_notice_says_since_when_and_below_what() -> None:
    """The notice carries the start of the cool run and the level it stayed below; the device is closed."""
    state = DeviceState()
    decide(RESOLVE, state, 160.0, T0)
    assert judged(RESOLVE, state, 100.0, T0 + 10) == []
    assert judged(RESOLVE, state, 100.0, T0 + 129) == []
    [due] = judged(RESOLVE, state, 100.0, T0 + 130)
    assert (due.kind, due.detail, due.threshold) == (
        Kind.RESOLVED,
        Resolution((Kind.CRITICAL, Kind.WARNING, Kind.FORECAST), T0 + 10, LEVEL),
        LEVEL,
    )
    RESOLVE.delivered(state, due.kind, due.at)
    assert judged(RESOLVE, state, 100.0, T0 + 500) == []


def test_an_alert_open_longer_than_the_memory_resolves_no_more() -> None:
    """An alert raised more than OPEN_MEMORY (an hour) ago, never repeated, gets no resolved notice: as after a
    restart, which reads only that much back."""
    state = DeviceState()
    decide(RESOLVE, state, 160.0, T0)
    for t in (3700, 3800, 3900):
        assert judged(RESOLVE, state, 100.0, T0 + t) == []


# -- backlogs ------------------------------------------------------------------------------------------------


def test_late_critical_readings_fold_into_one_alert_when_the_device_is_current_again() -> None:
    """An hour of hot readings read an hour late: each is folded, none alerts; the device's first current reading,
    still hot, joins them and raises one alert with first and last time, peak and count."""
    state, now = DeviceState(), T0 + 3600
    verdicts = [
        POLICY.judge(state, hot_reading(160.0 + (t % 7), T0 + t), t, T0 + t, now)[0] for t in range(0, 3300, 10)
    ]
    assert set(verdicts) == {Verdict.FOLDED}
    verdict, [due] = POLICY.judge(state, hot_reading(155.0, T0 + 3310), 3310, T0 + 3310, now)
    assert verdict is Verdict.IN_FLIGHT
    assert (due.kind, due.at, due.offset, due.held) == (Kind.CRITICAL, T0 + 3310, 0, True)
    assert due.detail == Backlog(T0, T0 + 3310, 166.0, 331)
    assert due.reading.temperature == 166.0


def test_late_warnings_are_dropped_and_a_backlog_read_twice_folds_once() -> None:
    """A late warning raises nothing; once a backlog alert is delivered, the same late readings read again
    (after a crash) are covered by it."""
    state, now = DeviceState(), T0 + 3600
    assert WARN.judge(state, hot_reading(130.0, T0), 0, T0, now)[0] is Verdict.LATE
    for t in range(10, 100, 10):
        WARN.judge(state, hot_reading(170.0, T0 + t), t, T0 + t, now)
    due = WARN.unfold(state)
    assert due is not None
    WARN.delivered(state, due.kind, due.at)
    again = restored(WARN, Recorded(Kind.CRITICAL, due.at))
    assert {WARN.judge(again, hot_reading(170.0, T0 + t), t, T0 + t, now)[0] for t in range(10, 100, 10)} == {
        Verdict.COOLDOWN
    }
    assert folded(again) is None


@settings(max_examples=100)
@given(st.floats(0, 10 * COOLDOWN), st.floats(0, 2 * COOLDOWN))
def test_a_reading_is_late_when_more_than_a_cooldown_behind(behind: float, at_offset: float) -> None:
    """Late means more than max(cooldown, 2*skew) behind the wall clock: a live reading, even with a clock
    skew, never is."""
    at = T0 + at_offset
    verdict = POLICY.judge(DeviceState(), hot_reading(200.0, at), 0, at, at + behind)[0]
    assert verdict is (Verdict.FOLDED if behind > COOLDOWN else Verdict.ALERT)


# -- silence -----------------------------------------------------------------------------------------------

SILENT = AlertPolicy(THRESHOLD, COOLDOWN, SKEW, silence_after=120.0)


def test_a_device_silent_for_silence_after_gets_one_silent_alert_and_a_notice_when_it_reports_again() -> None:
    """Silence is measured on the partition's clock from the device's newest reading; one alert with the last
    reading, none again while silent, then a resolved notice (ends: silent) at its next reading."""
    state = DeviceState()
    SILENT.judge(state, hot_reading(91.4, T0), 7, T0, T0)
    assert SILENT.silence(state, T0 + 119) is None
    due = SILENT.silence(state, T0 + 120)
    assert due is not None
    assert (due.kind, due.at, due.offset, due.reading.temperature) == (Kind.SILENT, T0 + 120, 7, 91.4)
    SILENT.delivered(state, due.kind, due.at)
    assert SILENT.silence(state, T0 + 500) is None
    [back] = judged(SILENT, state, 60.0, T0 + 600)
    assert back.kind is Kind.RESOLVED
    assert isinstance(back.detail, Resolution)
    assert (back.detail.ends, back.detail.since) == ((Kind.SILENT,), T0)


def test_a_restored_silence_is_not_ended_by_its_own_readings_read_again() -> None:
    """Read back from the alerts topic, a silence noticed at T ends only with a reading after T - SILENCE_AFTER,
    so the device's last readings, read again after a restart, do not look like it reports again."""
    state = restored(SILENT, Recorded(Kind.SILENT, T0 + 120))
    assert judged(SILENT, state, 60.0, T0) == []
    [back] = judged(SILENT, state, 60.0, T0 + 121)
    assert back.kind is Kind.RESOLVED


def test_a_forecast_resolves_only_once_the_device_is_back_below_where_it_was() -> None:
    """A forecast raised at 70 °C opens an alert that readings at 70-80 °C do not resolve, even with no forecast
    standing (the trend may lapse for a while as a device heats); below 65 °C for RESOLVE_AFTER, it resolves."""
    policy = AlertPolicy(150.0, COOLDOWN, SKEW, warning_threshold=120.0, resolve_after=120.0)
    state = DeviceState()
    state.in_flight = ((Kind.FORECAST, T0),)
    policy.restored(state, (Recorded(Kind.FORECAST, T0, (), 70.0),))
    for t in range(10, 400, 10):
        assert judged(policy, state, 70.0 + t / 40, T0 + t) == []
    assert judged(policy, state, 64.0, T0 + 400) == []
    [due] = judged(policy, state, 64.0, T0 + 520)
    assert (due.kind, due.threshold) == (Kind.RESOLVED, 65.0)
