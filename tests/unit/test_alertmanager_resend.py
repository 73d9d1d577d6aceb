"""The resend policy: an alert stays firing in Alertmanager while it is seen, lapses within 4 intervals after, and a
resolution ends it; all as pure functions of (book, now), with Alertmanager's merge rule modelled as the later
explicit endsAt winning."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from alerter.alertmanager import GpuAlert, Kind, Post, ResendPolicy, Tracked
from shared.models import AlertEvent

R = 60.0
POLICY = ResendPolicy(interval=R)
V = POLICY.validity
T0 = 1_800_000_000.0
ALERT = GpuAlert(Kind.CRITICAL, "gpu-0003", "node-07", "A100", 95.0, 90.0, T0 - 3)


def resolved_event(device: str = "gpu-0003", temperature: float = 70.0) -> AlertEvent:
    return AlertEvent(
        device_id=device,
        temperature=temperature,
        timestamp=datetime.fromtimestamp(T0, UTC),
        gpu_model="A100",
        host_name="node-07",
        power_consume=0.0,
        gpu_util=0.0,
        temperature_threshold=90.0,
    )


gaps = st.lists(st.floats(min_value=0.01 * R, max_value=R), min_size=1, max_size=60)


def timeline(observation_gaps: list[float], tick_gaps: list[float]) -> list[tuple[float, str]]:
    """Observations and ticks at their times; at equal times an observation comes first."""
    events: list[tuple[float, str]] = []
    for gaps_, what in ((observation_gaps, "seen"), (tick_gaps, "tick")):
        t = T0
        for gap in gaps_:
            t += gap
            events.append((t, what))
    return sorted(events, key=lambda e: (e[0], e[1] != "seen"))


def run(
    events: list[tuple[float, str]], on_event: Callable[[float, list[tuple[float, Post]]], None] = lambda *_: None
) -> list[tuple[float, Post]]:
    """Delivers ALERT at T0, then plays the events with every post accepted; returns (time, post) of each re-send."""
    book = POLICY.delivered({}, ALERT, T0)
    sent: list[tuple[float, Post]] = [(T0, POLICY.first(ALERT, T0))]
    for t, what in events:
        on_event(t, sent)
        if what == "seen":
            book = POLICY.seen(book, replace(ALERT, temperature=96.0), t)
        else:
            book = POLICY.expired(book, t)
            posts = POLICY.due(book, t)
            book = POLICY.sent(book, posts, t)
            sent += [(t, post) for post in posts]
    return sent


def held_until(sent: list[tuple[float, Post]]) -> float:
    """The endsAt Alertmanager holds: of explicit endsAt, the latest wins (types.Alert.Merge)."""
    return max(post.ends_at for _, post in sent)


@given(observation_gaps=gaps, tick_gaps=gaps)
def test_an_alert_seen_at_least_every_interval_never_lapses(
    observation_gaps: list[float], tick_gaps: list[float]
) -> None:
    """While the condition is seen and re-sends are tried at least once an interval, Alertmanager's endsAt stays
    at least one interval ahead, so the alert never resolves while the GPU stays hot."""
    events = timeline(observation_gaps, tick_gaps)
    last_seen = max(t for t, what in events if what == "seen")
    last_tick = max(t for t, what in events if what == "tick")

    def check(t: float, sent: list[tuple[float, Post]]) -> None:
        if t <= min(last_seen, last_tick):
            assert held_until(sent) > t + R * 0.99

    run(events, check)


@given(observation_gaps=gaps, tick_gaps=gaps)
def test_re_sends_come_at_most_once_an_interval(observation_gaps: list[float], tick_gaps: list[float]) -> None:
    """Two posts of one alert are at least an interval apart, however often it is seen or ticks come."""
    times = [t for t, _ in run(timeline(observation_gaps, tick_gaps))]
    assert all(b - a >= R for a, b in itertools.pairwise(times))


@given(observation_gaps=gaps, tick_gaps=st.lists(st.floats(min_value=0.01 * R, max_value=R), min_size=1, max_size=80))
def test_an_alert_no_longer_seen_lapses_within_validity(observation_gaps: list[float], tick_gaps: list[float]) -> None:
    """Once sightings stop, every post claims at most V past the last one, and the book lets it go after V."""
    events = timeline(observation_gaps, tick_gaps)
    last_seen = max((t for t, what in events if what == "seen"), default=T0)
    sent = run(events)
    assert held_until(sent) <= max(T0, last_seen) + V
    assert all(t <= max(T0, last_seen) + V for t, _ in sent)
    book = POLICY.delivered({}, ALERT, T0)
    for t, what in events:
        if what == "seen":
            book = POLICY.seen(book, ALERT, t)
    assert POLICY.expired(book, max(T0, last_seen) + V + 0.001) == {}


@given(
    observation_gaps=gaps,
    resolve_after=st.floats(min_value=0.0, max_value=10 * R),
    later_ticks=st.lists(st.floats(min_value=0.01, max_value=R), max_size=20),
)
def test_a_resolution_ends_the_alert_and_its_re_sends(
    observation_gaps: list[float], resolve_after: float, later_ticks: list[float]
) -> None:
    """A resolved notice posts endsAt no later than now for the device's alerts, and nothing is re-sent after it."""
    book = POLICY.delivered({}, ALERT, T0)
    t = T0
    for gap in observation_gaps:
        t += gap
        book = POLICY.seen(book, ALERT, t)
    now = t + resolve_after
    book, posts = POLICY.resolution(book, resolved_event(), at=now + 30.0, now=now)
    assert all(p.resolved and p.ends_at <= now for p in posts)
    assert ALERT.key in {p.alert.key for p in posts}
    assert book == {}
    for gap in later_ticks:
        now += gap
        assert POLICY.due(book, now) == []


def test_the_first_post_fires_for_v_from_its_attempt() -> None:
    """The first post of a raised alert is firing until V after the attempt, whenever that attempt is made."""
    assert POLICY.first(ALERT, T0 + 500).ends_at == T0 + 500 + V


def test_an_unknown_alert_seen_is_adopted_and_sent_at_once() -> None:
    """A sighting of an alert not in the book (raised before a restart) is posted at the next tick, V long."""
    book = POLICY.seen({}, ALERT, T0)
    assert POLICY.due(book, T0) == [Post(ALERT, T0 + V)]
    assert POLICY.next_due(book, T0) == T0


def test_an_adopted_alert_starts_no_later_than_its_sighting() -> None:
    """An adopted alert whose event time is ahead of the wall clock starts at the sighting instead."""
    book = POLICY.seen({}, replace(ALERT, starts_at=T0 + 50), T0)
    assert book[ALERT.key].alert.starts_at == T0


def test_a_sighting_just_after_a_post_waits_for_the_interval() -> None:
    """Seen right after it was accepted, an alert is due an interval after that acceptance, not before."""
    book = POLICY.seen(POLICY.delivered({}, ALERT, T0), ALERT, T0 + 1)
    assert POLICY.due(book, T0 + R - 1) == []
    assert POLICY.next_due(book, T0 + 1) == T0 + R
    assert POLICY.due(book, T0 + R) == [Post(ALERT, T0 + 1 + V)]


def test_nothing_is_due_without_a_new_sighting() -> None:
    """An alert not seen since its last post is not re-sent, and no re-send is scheduled for it."""
    book = POLICY.delivered({}, ALERT, T0)
    assert POLICY.due(book, T0 + 3 * R) == []
    assert POLICY.next_due(book, T0 + 3 * R) is None


def test_a_clock_stepping_back_does_not_stall_re_sends() -> None:
    """After the wall clock steps back an hour, a sighting is re-sent at once rather than an hour later."""
    book = POLICY.delivered({}, ALERT, T0)
    book = POLICY.seen(book, ALERT, T0 - 3600)
    assert POLICY.due(book, T0 - 3600) == [Post(ALERT, T0 - 3600 + V)]


def test_a_re_raised_alert_keeps_its_start_while_alive() -> None:
    """An alert raised again (after the cooldown) while still kept alive keeps its first startsAt."""
    book = POLICY.delivered({}, ALERT, T0)
    book = POLICY.seen(book, ALERT, T0 + 100)
    later = replace(ALERT, starts_at=T0 + 300)
    assert POLICY.delivered(book, later, T0 + 300)[ALERT.key].alert.starts_at == ALERT.starts_at


def test_a_new_episode_after_expiry_starts_anew() -> None:
    """An alert raised after the previous one lapsed (not seen for V) starts at its own event time."""
    book = POLICY.delivered({}, ALERT, T0)
    later = replace(ALERT, starts_at=T0 + V + 100)
    assert POLICY.delivered(book, later, T0 + V + 100)[ALERT.key].alert.starts_at == T0 + V + 100


def test_due_posts_the_longest_waiting_first_up_to_the_limit() -> None:
    """Due alerts come oldest acceptance first (never accepted before all), at most `limit` per batch."""
    book: dict[tuple[Kind, str, str, str], Tracked] = {}
    for i in range(5):
        alert = replace(ALERT, device_id=f"gpu-{i}")
        book[alert.key] = Tracked(alert, T0 + 500, None if i == 3 else T0 + 10 * (5 - i), fresh=True)
    assert [p.alert.device_id for p in POLICY.due(book, T0 + 500, limit=3)] == ["gpu-3", "gpu-4", "gpu-2"]


def test_resolution_ends_tracked_and_untracked_kinds_of_the_device_only() -> None:
    """A resolved notice ends the device's tracked alerts (whatever their host label) and, untracked, its critical,
    warning and forecast alerts; its silent alert and other devices' alerts are kept alive."""
    moved = replace(ALERT, host_name="node-08")
    silent = replace(ALERT, kind=Kind.SILENT)
    other = replace(ALERT, device_id="gpu-9")
    book = {a.key: Tracked(a, T0, T0, fresh=False) for a in (moved, silent, other)}
    book, posts = POLICY.resolution(book, resolved_event(temperature=71.0), at=T0 + 10, now=T0 + 20)
    assert set(book) == {silent.key, other.key}
    assert {p.alert.key for p in posts} == {
        moved.key,
        (Kind.CRITICAL, "gpu-0003", "node-07", "A100"),
        (Kind.WARNING, "gpu-0003", "node-07", "A100"),
        (Kind.FORECAST, "gpu-0003", "node-07", "A100"),
    }
    assert {(p.ends_at, p.alert.temperature, p.resolved) for p in posts} == {(T0 + 10, 71.0, True)}
    tracked = next(p for p in posts if p.alert.key == moved.key)
    assert tracked.alert.starts_at == ALERT.starts_at
