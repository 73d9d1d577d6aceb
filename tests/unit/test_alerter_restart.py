"""Every kind survives a crash: the domain driven as the service drives it (tests/policy_support.py), killed after
any record with notifications undelivered, restarted from the last commit with the alerts topic read back."""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerter.domain.notification import Backlog, Kind
from alerter.domain.policy import AlertPolicy
from tests.policy_support import AlertsTopic, Rec, Run, Sent

T0 = 1_700_000_000.0
POLICY = AlertPolicy(
    100.0,
    300.0,
    10.0,
    warning_threshold=88.0,
    forecast_horizon=600.0,
    forecast_window=300.0,
    resolve_after=120.0,
    resolve_hysteresis=5.0,
    silence_after=120.0,
)
BEHAVIOURS = ("steady", "heating", "spike", "hot", "gap", "stops")


@dataclass(frozen=True)
class Device:
    name: str
    behaviour: str
    start: float  # seconds into the run at which its behaviour begins
    seed: int
    clock: float = 0.0  # seconds its clock is off (within the skew)

    def temperature(self, t: float, rng: random.Random) -> float | None:
        """°C at `t` seconds into the run, or None while it sends nothing."""
        noise = rng.uniform(-1.0, 1.0)
        since = t - self.start
        if self.behaviour == "heating" and since > 0:  # 5 °C/min up to 110, then back down (the fan recovers)
            peak_at = (110.0 - 50.0) / 5.0 * 60
            rise = min(since, peak_at) * 5.0 / 60
            fall = max(0.0, since - peak_at)
            return 50.0 + rise * math.exp(-fall / 30.0) + noise
        if self.behaviour == "spike" and 0 <= since < 1:
            return 60.0 + 80.0 + noise
        if self.behaviour == "hot" and 0 <= since < 600:
            return 170.0 + noise
        if self.behaviour == "gap" and 0 <= since < 400:
            return None
        if self.behaviour == "stops" and since >= 0:
            return None
        return (50.0 if self.behaviour == "heating" else 60.0) + noise


@dataclass(frozen=True)
class Stream:
    """A partition's records: devices every 5 s for `duration` seconds, read live, except that those before
    `backlog` seconds are read all at once at that moment (the alerter was down until then)."""

    devices: tuple[Device, ...]
    duration: int
    backlog: float

    def records(self) -> list[Rec]:
        rngs = {device.name: random.Random(device.seed) for device in self.devices}
        records = []
        for step in range(0, self.duration, 5):
            for device in self.devices:
                temperature = device.temperature(step, rngs[device.name])
                if temperature is not None:
                    t = T0 + step
                    now = max(t, T0 + self.backlog) + 0.5
                    records.append(Rec(device.name, temperature, t + device.clock, t, now))
        return records


@st.composite
def streams(draw: st.DrawFn) -> Stream:
    """1-3 devices of any behaviour, their clocks a few seconds off, for 25-40 minutes, read live or after a
    backlog of any length."""
    duration = draw(st.integers(25, 40)) * 60
    devices = tuple(
        Device(
            f"gpu-{d}",
            draw(st.sampled_from(BEHAVIOURS)),
            draw(st.floats(360, duration / 2)),
            draw(st.integers(0, 999)),
            draw(st.sampled_from([0.0, -8.0, 3.0, 8.0])),
        )
        for d in range(draw(st.integers(1, 3)))
    )
    return Stream(devices, duration, draw(st.sampled_from([0.0, duration / 2, duration + 30.0])))


def summary(sent: list[Sent]) -> Counter[tuple[Kind, str, float | None, bool]]:
    """What the receiver got: kind, device, event time (not for silences: noticed at a sweep) and what it ends."""
    return Counter((s.kind, s.device, None if s.kind is Kind.SILENT else s.at, s.ends_silence) for s in sent)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example])
@given(streams(), st.data())
def test_a_restart_repeats_nothing_and_misses_nothing_for_every_kind(stream: Stream, data: st.DataObject) -> None:
    """Crash after any record (undelivered notifications lost), restart from the last commit with the alerts topic
    read back: what the receiver got from both runs together is what one uninterrupted run sends, each once."""
    records = stream.records()
    whole = Run(POLICY, AlertsTopic(), pace=None)
    whole.feed(records, caught_up_at_end=True)
    whole.deliver()

    pace = data.draw(st.sampled_from([None, 1, 0]), label="pace")  # 0: the receiver is down until the crash
    crash = data.draw(st.integers(0, len(records)), label="crash")
    every = data.draw(st.integers(1, 50), label="commit every")
    topic = AlertsTopic()
    first = Run(POLICY, topic, pace=pace)
    for position in range(0, crash, every):
        first.feed(records, min(crash, position + every))
        first.commit()
    second = Run(POLICY, topic, start=first.committed, now=records[crash - 1].now if crash else T0)
    second.feed(records, caught_up_at_end=True)
    second.deliver()
    assert summary(first.sent + second.sent) == summary(whole.sent)


def test_the_streams_raise_every_kind() -> None:
    """The generator is worth its salt: one fixed stream with each behaviour raises all five kinds."""
    devices = [Device(f"gpu-{b}", b, 400.0, 1) for b in BEHAVIOURS]
    rngs = {device.name: random.Random(device.seed) for device in devices}
    records = [
        Rec(d.name, temperature, T0 + s, T0 + s, T0 + s + 0.5)
        for s in range(0, 2400, 5)
        for d in devices
        if (temperature := d.temperature(s, rngs[d.name])) is not None
    ]
    run = Run(POLICY, AlertsTopic())
    run.feed(records)
    assert {s.kind for s in run.sent} == set(Kind)


ORIGINAL = AlertPolicy(150.0, 300.0, 60.0)  # the defaults: none of the new settings


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 4),
    st.integers(0, 999),
    st.floats(0.0, 0.5),
    st.sampled_from([10, 30, 60]),
    st.data(),
)
def test_an_hour_behind_gives_one_alert_per_hot_device_even_across_a_crash(
    hot: int, seed: int, dips: float, interval: int, data: st.DataObject
) -> None:
    """An hour of readings, `hot` devices running above the threshold (with dips below it) and one cool, read all
    at once an hour late: one critical alert per hot device, a backlog summary with its first and last hot
    reading, peak and count; the same after a crash anywhere in the catch-up."""
    rng = random.Random(seed)
    records = []
    end = T0 + 3600
    for step in range(0, 3600, interval):
        for d in range(hot + 1):
            temperature = 60.0 if d == hot or rng.random() < dips else 151.0 + rng.uniform(0, 50)
            records.append(Rec(f"gpu-{d}", temperature, T0 + step, T0 + step, end + 10))
    crash = data.draw(st.integers(0, len(records)), label="crash")
    topic = AlertsTopic()
    first = Run(ORIGINAL, topic, now=end)
    first.feed(records, crash)
    first.commit()
    second = Run(ORIGINAL, topic, start=first.committed, now=end)
    second.feed(records, caught_up_at_end=True)
    second.deliver()
    sent = first.sent + second.sent
    backlogs = [s for s in sent if isinstance(s.detail, Backlog)]
    assert Counter(s.device for s in backlogs) == {f"gpu-{d}": 1 for d in range(hot)}
    for s in backlogs:
        assert isinstance(s.detail, Backlog)
        hot_readings = [r for r in records if r.device == s.device and r.temperature > 150.0]
        folded = [r for r in hot_readings if r.reading_time <= s.detail.last]
        assert (s.detail.first, s.detail.last, s.detail.count) == (hot_readings[0].reading_time, s.at, len(folded))
        assert s.detail.peak == max(r.temperature for r in folded)
        assert all(r.reading_time <= s.detail.last for r in hot_readings if end + 10 - r.reading_time > 300)
    for s in sent:
        assert s.kind is Kind.CRITICAL
        if s not in backlogs:  # a current reading, alerting as usual: a cooldown after the backlog alert
            assert end + 10 - s.at <= 300
            assert all(s.at - b.at >= 300 for b in backlogs if b.device == s.device)
