"""The alert policy as pure code: threshold, cooldown per device on event time, clock jumps, restarts."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerter.domain.policy import EMPTY, AlertPolicy, DeviceState, Verdict, event_time

THRESHOLD = 150.0
COOLDOWN = 300.0
SKEW = 60.0
POLICY = AlertPolicy(THRESHOLD, COOLDOWN, SKEW)


@dataclass(frozen=True)
class Reading:
    device: str
    temperature: float
    reading_time: float  # what the device's clock says
    record_time: float  # when Kafka got it


def run(policy: AlertPolicy, readings: list[Reading], states: dict[str, DeviceState] | None = None) -> list[int]:
    """Feed readings in order, every alert delivered at once; returns the indices that alerted."""
    states = {} if states is None else states
    alerted = []
    for index, reading in enumerate(readings):
        at = event_time(reading.reading_time, reading.record_time, policy.max_clock_skew)
        verdict, state = policy.decide(reading.temperature, at, states.get(reading.device, EMPTY))
        if verdict is Verdict.ALERT:
            state = policy.delivered(state, at)
            alerted.append(index)
        states[reading.device] = state
    return alerted


def test_threshold_is_strict() -> None:
    """A reading exactly at the threshold is normal; the smallest step above it alerts."""
    assert POLICY.decide(THRESHOLD, 0.0, EMPTY)[0] is Verdict.NORMAL
    assert POLICY.decide(THRESHOLD + 1e-9, 0.0, EMPTY)[0] is Verdict.ALERT
    assert not POLICY.is_hot(THRESHOLD)


@given(st.floats(-273.15, THRESHOLD), st.floats(-1e9, 1e9))
def test_normal_readings_never_alert_or_change_state(temperature: float, at: float) -> None:
    """Nothing at or below the threshold alerts, whatever the state, and the state is returned unchanged."""
    state = DeviceState(delivered=(at - 10.0,), in_flight=(at + 5.0,))
    assert POLICY.decide(temperature, at, state) == (Verdict.NORMAL, state)


def test_cooldown_starts_on_delivery_and_ends_after_cooldown() -> None:
    """After a delivered alert, hot readings are suppressed for exactly `cooldown` seconds of event time."""
    verdict, state = POLICY.decide(200.0, 1000.0, EMPTY)
    assert verdict is Verdict.ALERT
    state = POLICY.delivered(state, 1000.0)
    assert POLICY.decide(200.0, 1000.0 + COOLDOWN - 0.001, state)[0] is Verdict.COOLDOWN
    assert POLICY.decide(200.0, 1000.0 + COOLDOWN, state)[0] is Verdict.ALERT


def test_in_flight_alert_suppresses_without_starting_a_cooldown() -> None:
    """An undelivered alert covers its window, and once abandoned leaves no cooldown behind."""
    verdict, state = POLICY.decide(200.0, 1000.0, EMPTY)
    assert verdict is Verdict.ALERT
    assert state.in_flight == (1000.0,)
    assert state.delivered == ()
    assert POLICY.decide(200.0, 1010.0, state)[0] is Verdict.IN_FLIGHT
    state = POLICY.abandoned(state, 1000.0)
    assert state == EMPTY
    assert POLICY.decide(200.0, 1010.0, state)[0] is Verdict.ALERT


def test_long_outage_raises_one_alert_per_cooldown_while_undelivered() -> None:
    """While Slack is down, a device still hot a cooldown later gets its next alert due, as live traffic would."""
    _, state = POLICY.decide(200.0, 0.0, EMPTY)
    verdicts = []
    for t in range(10, 1000, 10):
        verdict, state = POLICY.decide(200.0, float(t), state)
        verdicts.append((t, verdict))
    due = [t for t, v in verdicts if v is Verdict.ALERT]
    assert due == [300, 600, 900]
    assert state.in_flight == (0.0, 300.0, 600.0, 900.0)
    assert state.delivered == ()


def test_cooldown_is_per_device() -> None:
    """One device in cooldown does not silence another."""
    readings = [Reading("a", 200, 0, 0), Reading("b", 200, 1, 1), Reading("a", 200, 2, 2), Reading("b", 200, 3, 3)]
    assert run(POLICY, readings) == [0, 1]


def test_replayed_reading_from_before_a_delivered_alert_is_suppressed() -> None:
    """Cooldown looks both ways: a replayed hot reading shortly before a delivered alert does not repeat it."""
    state = POLICY.restored(EMPTY, (1000.0,))
    assert POLICY.decide(200.0, 990.0, state)[0] is Verdict.COOLDOWN
    assert POLICY.decide(200.0, 1000.0 - COOLDOWN, state)[0] is Verdict.ALERT


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
    restored: dict[str, DeviceState] = {}
    for index in before:
        reading = readings[index]
        at = event_time(reading.reading_time, reading.record_time, SKEW)
        restored[reading.device] = POLICY.restored(restored.get(reading.device, EMPTY), (at,))
    after = [committed + i for i in run(POLICY, readings[committed:], restored)]
    assert not set(before) & set(after), "no alert delivered twice"
    assert sorted(before + after) == uninterrupted


def test_delivered_alerts_are_pruned_once_they_cannot_matter() -> None:
    """The state keeps only alerts within cooldown + 2*skew of the newest, so it stays small forever."""
    state = EMPTY
    for i in range(100):
        at = i * COOLDOWN
        verdict, state = POLICY.decide(200.0, at, state)
        assert verdict is Verdict.ALERT
        state = POLICY.delivered(state, at)
    assert len(state.delivered) <= 2
    assert state.delivered[-1] == 99 * COOLDOWN


def test_zero_cooldown_alerts_every_hot_reading() -> None:
    """ALERT_COOLDOWN=0 turns the cooldown off: every hot reading alerts and no state accumulates."""
    policy = AlertPolicy(THRESHOLD, 0.0, SKEW)
    readings = [Reading("a", 200, t, t) for t in range(5)]
    assert run(policy, readings) == [0, 1, 2, 3, 4]
    assert policy.restored(EMPTY, (1.0,)) == EMPTY


@pytest.mark.parametrize("times", [(), (5.0,), (5.0, 7.0)])
def test_abandoning_an_unknown_alert_changes_nothing(times: tuple[float, ...]) -> None:
    """Abandoning a time that is not in flight (already handled) leaves the state as it was."""
    state = DeviceState(in_flight=times)
    assert POLICY.abandoned(state, 6.0) == state
