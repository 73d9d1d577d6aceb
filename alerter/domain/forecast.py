"""Temperature forecasts: will a device reach its threshold within the horizon? Pure code, on event time.

API: `TrendModel(window)` holds the settings shared by all devices;
`state = model.new_state()` is one device's trend, owned by one caller;
`state.add(at, temperature)` takes a reading; `state.forecast(threshold,
horizon, at)` answers with a `Forecast` (time to go, rate, threshold) or None.
Every time is an event time in epoch seconds (float), the readings' own
timestamps; nothing here reads a clock, so bursts after a backlog and
irregular intervals change nothing but the timestamps.

**Model.** A GPU under a constant load heats toward a steady state with one
thermal time constant, dT/dt = (T_inf - T) / tau. From an onset t0 (a load
change, a fan failing) that is T(t) = L0 + r0 * tau * (1 - exp(-(t - t0) / tau)),
L0 before t0, settling at T_inf = L0 + r0 * tau; tau -> inf is a straight line.
A load change settles within minutes (tau <= `settle_time`, 2 min by default);
a failing fan or a steady ramp heads far higher with a long tau. A straight
line through a load step's first seconds overshoots its asymptote (the
weakness of Prometheus's `predict_linear`); fitting the onset and tau does not.

**Spikes.** Each reading waits for SPIKE_RUN more, then is dropped if it
stands more than SPIKE_MARGIN from the median of itself and its SPIKE_RUN
neighbours each side. That median is not moved by SPIKE_RUN spikes, so any
run of up to SPIKE_RUN goes, at any sampling rate (at the simulator's 5 % a
run of four is 6e-6 of readings), and it never moves a monotone run (the
median of a rising run is its middle reading), so no reading of a real rise,
however steep, is dropped while its noise stays within ±SPIKE_MARGIN / 2. A
spike that stays is within SPIKE_MARGIN of that median. The price is
SPIKE_RUN readings of delay. (The first version compared a reading with its
two neighbours only: two spikes in a row before a load step, with two
readings per bucket, made a ramp of 80 °C/min out of a step to 63 °C.)

**Buckets.** The window is BUCKETS buckets of window / BUCKETS seconds. A
bucket keeps the first kept reading of each of its SAMPLES slots and becomes
the mean of those within SPIKE_MARGIN of their median, at their mean time
(a median of uniform noise varies twice as much as a mean). A bucket that a
running median of the bucket levels moves by more than OUTLIER_CUTOFF robust
deviations is left out (more than MAX_OUTLIERS: no forecast); a running
median never moves a monotone run either.

**Fit.** Levels, not differences, are fitted: regressing a smoothed dT/dt on
T differences noisy levels, which telescope to the window's two ends. For
every candidate (onset, tau) on a grid (onsets at every bucket, taus span *
2**(k/2) for k in -9..8, `settle_time`, a straight line) the curve is linear
in (L0, r0), so all are fitted at once by closed-form 2x2 least squares
(separable least squares); local searches (5 x 5 candidates, halving steps)
start from the best few. The null's search also starts from the best curve
with tau cut to settle_time, and a rejection is confirmed by a thorough
search (THOROUGH): a search that misses the null's best makes the null look
worse than it is (a noise-free load step of 67 °C was forecast that way).

**Decision: forecast only what the window proves.** A forecast is raised when
(1) the best curve with RISE_POINTS buckets after its onset reaches the
threshold by the horizon's end while its latest level is below it; (2) a
likelihood-ratio test at SIGNIFICANCE rejects the null hypothesis "a load
change settling at or below the threshold": the best fit among curves with
tau <= settle_time, any onset, constrained to an asymptote <= threshold. The
null is bounded in two parameters, so the test takes two degrees of freedom,
F(2, buckets - 4): with one, noise took a slow load change settling 1 °C
below the threshold for a ramp about once in 60 (±1 °C, read every 5 s).
The residual standard deviation is taken as at least NOISE_FLOOR (integer
sensor readings), so noise-free data claims no certainty it does not have;
(3) the curve describes the latest readings, checked at every query, not
only when a bucket closes: it has not reached the threshold at the query's
time, the crossing is within the horizon from it, and the median of the
latest 2 * SPIKE_RUN + 1 readings' residuals from the curve is not below
-SPIKE_MARGIN, so a forecast goes once most of them leave its curve.

**What it guarantees, and where that ends.** A load change that settles
below the threshold is in the null; at the null's very edge (tau =
settle_time, asymptote at the threshold) the test passes it at most
SIGNIFICANCE of the times it is asked, and far less inside: none of 1,200
simulated load changes (tau = settle_time settling 0.05 or 1.05 °C below
the threshold, tau = settle_time / 2 settling 0.05 °C below; ±1 °C noise;
a reading every 1, 5 or 10 s) was forecast, nor any in the hunts of the
property tests (tests/unit/test_forecast.py). A ramp is told from every such
load change once the best of them misses it by enough: over a 2-minute
window (24 buckets) by a residual RMS of about 0.058 °C per °C/min of the
ramp, over a 5-minute one 0.28 °C; the test needs about 1.4 x the bucket
level's noise (at least NOISE_FLOOR; ±1 °C read every 5 s is 0.58 °C) for a
sure answer. So under ±1 °C noise read every 5 s the default window
forecasts ramps from 12 °C/min most of a horizon ahead, a 5-minute one from
3 °C/min (the property tests pin both); read every second (bucket levels at
NOISE_FLOOR) the default window forecasts 5 °C/min ones too; read every
10 s, a third of 12-40 °C/min ramps come less than half a horizon ahead.

**Bounded memory, O(1) updates.** A device holds the latest 2 * SPIKE_RUN + 1
readings, the open bucket's samples and a ring of the last BUCKETS points:
about 1.3 KB whatever its reading rate (`sys.getsizeof`). An update is a
median of seven and a few comparisons (about 1 µs); a fit and test (about
1 ms, twice that when a rejection is confirmed) runs at most once per bucket
and only when a forecast is asked for, not when the window is too flat for
the test or too far below the threshold to reach it, and its answer is
cached until the next bucket closes. A gap longer than the window, or a clock
set back by more, starts the trend over; a reading at or before the latest
one is dropped (a duplicate, a replay, out of order).
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

BUCKETS: Final = 24  # per window: the fit sees up to this many points
SAMPLES: Final = 4  # readings kept per bucket, the first of each of its equal slots
MIN_POINTS: Final = 8  # usable buckets below which there is no forecast
RISE_POINTS: Final = 8  # buckets after its onset that a forecast's curve needs
ONSET_STEPS: Final = 1  # candidate onsets per interval between two buckets
TAU_RATIO: Final = math.sqrt(2)
TAU_STEPS: Final = range(-9, 9)  # tau grid: span * TAU_RATIO ** k
SEARCH: Final = (2, 4)  # a local search: from this many best grid candidates, this many rounds of halving steps
THOROUGH: Final = (10, 10)  # the search that confirms a rejection of the null
SETTLE_TIME: Final = 120.0  # s: the slowest load-change time constant the forecast must not mistake for a trend
MAX_OUTLIERS: Final = 4  # isolated outlying buckets above which the window is not trusted
OUTLIER_CUTOFF: Final = 4.0  # robust standard deviations from the running median that make a bucket an outlier
SPIKE_RUN: Final = 3  # readings each side of a reading that its spike test sees: runs of up to this many spikes go
SPIKE_MARGIN: Final = 3.0  # °C from the median of a reading and its neighbours that makes it a spike
NOISE_FLOOR: Final = 0.3  # °C: the least residual standard deviation assumed for a bucket level
SIGNIFICANCE: Final = 0.001  # of the test that rejects the null (a load change settling below the threshold)
_SPIKE_WINDOW: Final = 2 * SPIKE_RUN + 1
_MOVES: Final = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])  # of a step, each way
_ONSET_MOVES: Final = np.repeat(_MOVES, 5)
_TAU_MOVES: Final = np.tile(_MOVES, 5)


def _critical(df: int) -> float:
    """The SIGNIFICANCE quantile of 2 * F(2, df): the excess of the null's residual sum of squares, in residual
    variances, that rejects it. Two degrees of freedom: the null is bounded in both tau and asymptote, and where both
    bounds bind (a slow load change settling near the threshold) its likelihood ratio is chi-squared with two."""
    return df * (math.pow(SIGNIFICANCE, -2 / df) - 1)


_FLAT: Final = _critical(BUCKETS - 4) * NOISE_FLOOR**2  # the least residual sum of squares the test can reject by
_INF: Final = math.inf
_isfinite, _isnan = math.isfinite, math.isnan


class Update(Enum):
    """What `TrendState.add` did with a reading (for the caller's counters)."""

    ACCEPTED = "accepted"
    LATE = "late"  # at or before the latest accepted time (a duplicate or out of order): dropped
    RESET = "reset"  # after a gap longer than the window, or a clock set back by more: history dropped
    INVALID = "invalid"  # a time or temperature that is not a finite number: dropped


_ACCEPTED, _LATE, _RESET, _INVALID = Update.ACCEPTED, Update.LATE, Update.RESET, Update.INVALID  # fast to look up


@dataclass(frozen=True, slots=True)
class Forecast:
    """A crossing expected within the horizon, with what a notification needs."""

    threshold: float  # °C
    eta: float  # seconds from the query's event time to the expected crossing (> 0: the curve has not crossed)
    reach_at: float  # event time at which the fitted curve reaches the threshold
    rate: float  # °C/min of the fitted curve at the query's event time
    level: float  # °C of the fitted curve at the query's event time
    asymptote: float | None  # °C the fitted curve settles at; None for a straight line


@dataclass(frozen=True, slots=True)
class TrendModel:
    """Per-deployment settings, shared by every device's state."""

    window: float  # seconds of event time the trend is fitted over
    settle_time: float = SETTLE_TIME  # seconds: load changes settle with at most this time constant
    bucket_width: float = field(init=False)
    slot_width: float = field(init=False)

    def __post_init__(self) -> None:
        for name in ("window", "settle_time"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"forecast {name} must be a positive number of seconds, not {value!r}")
        object.__setattr__(self, "bucket_width", self.window / BUCKETS)
        object.__setattr__(self, "slot_width", self.window / (BUCKETS * SAMPLES))

    def new_state(self) -> TrendState:
        return TrendState(self)


@dataclass(frozen=True, slots=True)
class _Curve:
    """One fitted curve: level0 until onset, then level0 + rate0 * tau * (1 - exp(-(t - onset) / tau))."""

    onset: float
    tau: float  # math.inf for a straight line
    level0: float
    rate0: float  # °C/s just after the onset

    def at(self, t: float) -> float:
        return self.level0 + self.rate0 * _phi(t - self.onset, self.tau)

    def slope(self, t: float) -> float:
        if t < self.onset:
            return 0.0
        return self.rate0 if math.isinf(self.tau) else self.rate0 * math.exp(-(t - self.onset) / self.tau)

    def asymptote(self) -> float | None:
        return None if math.isinf(self.tau) else self.level0 + self.rate0 * self.tau

    def reaches(self, threshold: float) -> float:
        """Event time at which the curve reaches `threshold` from below (inf: never)."""
        gap = threshold - self.level0
        if gap <= 0:
            return self.onset
        if self.rate0 <= 0:
            return math.inf
        if math.isinf(self.tau):
            return self.onset + gap / self.rate0
        share = gap / (self.rate0 * self.tau)  # of the way to the asymptote
        return math.inf if share >= 1 else self.onset - self.tau * math.log1p(-share)


@dataclass(frozen=True, slots=True)
class _Decision:
    version: int
    threshold: float
    horizon: float
    curve: _Curve | None  # None: no forecast from this window


class TrendState:
    """One device's recent trend: O(1) updates, fixed size. Owned by one caller; not thread-safe."""

    __slots__ = (
        "_bucket",
        "_decision",
        "_last_at",
        "_model",
        "_recent",
        "_recent_times",
        "_recent_values",
        "_ring_levels",
        "_ring_times",
        "_slot",
        "_times",
        "_values",
        "_version",
    )

    def __init__(self, model: TrendModel) -> None:
        self._model = model
        # The closed buckets: bucket b in slot b % BUCKETS, its time NaN where it had no sample or left the window.
        self._ring_times = array("d", [math.nan] * BUCKETS)
        self._ring_levels = array("d", [math.nan] * BUCKETS)
        # The latest _SPIKE_WINDOW readings, spikes included: reading number n (from 0 since the reset) in slot
        # n % _SPIKE_WINDOW; self._recent is n + 1 for the latest.
        self._recent_times = array("d", [0.0] * _SPIKE_WINDOW)
        self._recent_values = array("d", [0.0] * _SPIKE_WINDOW)
        self._times = array("d")  # the open bucket's samples: at most SAMPLES
        self._values = array("d")
        self._version = 0
        self._decision: _Decision | None = None
        self._reset()

    def _reset(self) -> None:
        self._ring_times[:] = array("d", [math.nan] * BUCKETS)
        self._last_at = -math.inf  # the latest reading's time
        self._bucket = self._slot = -math.inf  # ids of the open bucket and of the latest sample's slot
        self._recent = 0
        del self._times[:]
        del self._values[:]
        self._version += 1

    def add(self, at: float, temperature: float) -> Update:
        """Take one reading at event time `at`; one at or before the latest accepted reading is dropped."""
        if not (_isfinite(at) and _isfinite(temperature)):
            return _INVALID
        last = self._last_at
        result = _ACCEPTED
        if at <= last:
            if at >= last - self._model.window:
                return _LATE
            self._reset()
            result = _RESET
        elif at - last > self._model.window and last > -_INF:
            self._reset()
            result = _RESET
        self._last_at = at
        times, values, count = self._recent_times, self._recent_values, self._recent
        slot = count % _SPIKE_WINDOW
        times[slot], values[slot] = at, temperature
        self._recent = count = count + 1
        # The reading SPIKE_RUN back is now the middle of its neighbourhood: a spike if it stands more than
        # SPIKE_MARGIN from their median. A median is not moved by up to SPIKE_RUN spikes, and never moves a
        # monotone run (the median of a rising run is its middle reading), so a real rise, however steep, stays.
        if count > SPIKE_RUN:
            middle = (slot - SPIKE_RUN) % _SPIKE_WINDOW
            value = values[middle]
            around = sorted(values if count >= _SPIKE_WINDOW else values[:count])
            if abs(value - around[(len(around) - 1) // 2]) <= SPIKE_MARGIN:
                self._sample(times[middle], value)
        return result

    def _sample(self, at: float, value: float) -> None:
        slot = at // self._model.slot_width
        if slot == self._slot:
            return
        self._slot = slot
        bucket = slot // SAMPLES
        if bucket != self._bucket:
            if self._values:
                self._close()
            self._open(bucket)
        self._times.append(at)
        self._values.append(value)

    def _close(self) -> None:
        """The open bucket becomes one point: the median of its samples at the median of their times."""
        slot = int(self._bucket) % BUCKETS
        self._ring_times[slot], self._ring_levels[slot] = _level(self._times, self._values)
        del self._times[:]
        del self._values[:]
        self._version += 1

    def _open(self, bucket: float) -> None:
        """Make `bucket` the open one; the columns of the buckets skipped (no sample) and its own are emptied."""
        skipped = bucket - self._bucket
        times = self._ring_times
        if skipped >= BUCKETS:
            times[:] = array("d", [math.nan] * BUCKETS)
        else:
            for step in range(1, int(skipped) + 1):
                times[int(self._bucket + step) % BUCKETS] = math.nan
        self._bucket = bucket

    def points(self) -> tuple[Floats, Floats]:
        """Event times and levels of the closed buckets within the window, oldest first."""
        times, levels = self._points()
        return np.array(times), np.array(levels)

    def _points(self) -> tuple[list[float], list[float]]:
        oldest = int(self._bucket + 1) % BUCKETS if _isfinite(self._bucket) else 0
        times = self._ring_times[oldest:] + self._ring_times[:oldest]
        levels = self._ring_levels[oldest:] + self._ring_levels[:oldest]
        valid = [slot for slot, at in enumerate(times) if not _isnan(at)]
        return [times[slot] for slot in valid], [levels[slot] for slot in valid]

    def forecast(self, threshold: float, horizon: float, at: float) -> Forecast | None:
        """The expected crossing of `threshold` within `horizon` seconds, seen at event time `at`, if the trend is sure.

        None while the latest reading is at or above the threshold (the critical
        alert covers it), before the window holds enough data, whenever the
        window could still be a load change settling at or below the threshold,
        and whenever the curve does not describe the latest readings (it stands
        above them, or has crossed already).
        """
        count = self._recent
        if not (count and self._recent_values[(count - 1) % _SPIKE_WINDOW] < threshold):
            return None
        if not (0 < horizon < _INF and _isfinite(at)):
            return None
        decision = self._decision
        if (
            decision is None
            or decision.version != self._version
            or decision.threshold != threshold
            or decision.horizon != horizon
        ):
            decision = self._decision = _Decision(self._version, threshold, horizon, self._decide(threshold, horizon))
        curve = decision.curve
        if curve is None:
            return None
        reach_at = curve.reaches(threshold)
        if not (at < reach_at <= at + horizon) or not self._describes_latest(curve):
            return None
        return Forecast(
            threshold=threshold,
            eta=reach_at - at,
            reach_at=reach_at,
            rate=curve.slope(at) * 60.0,
            level=curve.at(at),
            asymptote=curve.asymptote(),
        )

    def _describes_latest(self, curve: _Curve) -> bool:
        """Whether the curve stands no more than SPIKE_MARGIN above the latest readings (their median residual)."""
        count = min(self._recent, _SPIKE_WINDOW)
        recent = zip(self._recent_times[:count], self._recent_values[:count], strict=True)
        residuals = sorted(value - curve.at(at) for at, value in recent)
        return residuals[(len(residuals) - 1) // 2] >= -SPIKE_MARGIN

    def _decide(self, threshold: float, horizon: float) -> _Curve | None:
        times, levels = self._points()
        count = len(times)
        if count < MIN_POINTS or times[-1] - times[0] < self._model.window / 2:
            return None
        # The answer stands until the open bucket closes: a crossing later than its end + horizon is out of reach.
        end = (self._bucket + 1) * self._model.bucket_width + horizon
        # Cheap bound first: a forecast's curve is concave after its onset, which lies before the last RISE_POINTS
        # buckets, so from the window's end it rises at most as fast as over them; half the window's range is
        # slack for how far a fit may pass from the levels.
        last, rise_time = levels[-1], times[-1] - times[-RISE_POINTS]
        rise = max(0.0, last - levels[-RISE_POINTS]) * (end - times[-1]) / rise_time
        high, low = max(levels), min(levels)
        if last + rise + (high - low) / 2 + 4 * NOISE_FLOOR < threshold:
            return None
        # And a window so flat that a constant below the threshold fits it within the test's least tolerance: the
        # null hypothesis, which includes that constant, cannot be rejected.
        mean = sum(levels) / count
        if high <= threshold and sum((level - mean) ** 2 for level in levels) < _FLAT:
            return None
        return _decide(np.array(times), np.array(levels), threshold, end, self._model.settle_time)

    def __sizeof__(self) -> int:
        """Bytes this state holds, its own containers and numbers included (the shared model is not)."""
        size = object.__sizeof__(self) + sys.getsizeof(self._bucket) + sys.getsizeof(self._slot)
        size += sys.getsizeof(self._recent)
        for values in (self._recent_times, self._recent_values, self._times, self._values):
            size += sys.getsizeof(values)
        size += sys.getsizeof(self._ring_times) + sys.getsizeof(self._ring_levels) + sys.getsizeof(self._last_at)
        if self._decision is not None:
            size += sys.getsizeof(self._decision) + 2 * sys.getsizeof(0.0)
            if self._decision.curve is not None:
                size += sys.getsizeof(self._decision.curve) + 4 * sys.getsizeof(0.0)
        return size


def _level(times: array[float], values: array[float]) -> tuple[float, float]:
    """(time, level) of a bucket: the mean of the samples within SPIKE_MARGIN of their median, at their mean time."""
    count = len(values)
    ordered = sorted(values)
    half = count // 2
    middle = ordered[half] if count % 2 else (ordered[half - 1] + ordered[half]) / 2
    low, high = middle - SPIKE_MARGIN, middle + SPIKE_MARGIN
    if low <= ordered[0] and ordered[-1] <= high:  # the usual case: all of them
        return sum(times) / count, sum(values) / count
    kept = [index for index, value in enumerate(values) if low <= value <= high]
    if not kept:
        return _median(times), middle
    return sum(times[index] for index in kept) / len(kept), sum(values[index] for index in kept) / len(kept)


def _median(values: array[float] | Floats) -> float:
    ordered: list[float] = sorted(values.tolist())
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _phi(dt: float, tau: float) -> float:
    dt = max(dt, 0.0)
    return dt if math.isinf(tau) else -tau * math.expm1(-dt / tau)


def _basis(dt: Floats, onsets: Floats, taus: Floats) -> Floats:
    """phi(dt - onset) for every candidate (rows) at every time (columns): 0 before the onset."""
    since = np.maximum(dt[None, :] - onsets[:, None], 0.0)
    line = np.isinf(taus)[:, None]
    column = np.where(line, 1.0, taus[:, None])
    phi: Floats = np.where(line, since, -column * np.expm1(-since / column))
    return phi


def _tukey_smooth(levels: Floats) -> Floats:
    """Running median of three, with Tukey's end-point rule."""
    padded = np.concatenate([[3 * levels[1] - 2 * levels[2]], levels, [3 * levels[-2] - 2 * levels[-3]]])
    a, b, c = padded[:-2], padded[1:-1], padded[2:]
    smooth: Floats = np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))
    return smooth


@dataclass(frozen=True)
class _Fits:
    """Least-squares fits of candidate curves (onset, tau) to one window's buckets, one per element."""

    level0: Floats  # relative to the window's mean level
    rate0: Floats
    sse: Floats  # residual sum of squares (inf for a candidate that is flat over the buckets)
    s1: Floats  # the weighted sums of phi, phi * phi and phi * level the fits came from
    s2: Floats
    s1y: Floats


@dataclass(frozen=True)
class _Window:
    """One window's buckets, as the fits see them: levels relative to their weighted mean, so sums stay small."""

    dt: Floats  # seconds after the first bucket
    levels: Floats
    weights: Floats  # 1 for a bucket in the fit, 0 for an outlier

    def fit(self, phi: Floats) -> _Fits:
        """Every candidate's (level0, rate0) at once, from the closed-form 2x2 normal equations."""
        levels, weights = self.levels, self.weights
        s0, sy, syy = float(weights.sum()), float(levels @ weights), float((levels * levels) @ weights)
        weighted = phi * weights
        s1 = weighted.sum(axis=1)
        s2 = (weighted * phi).sum(axis=1)
        s1y = weighted @ levels
        det = s0 * s2 - s1 * s1
        fits = det > 1e-9 * s0 * s2  # else the candidate is flat over the buckets: it fits nothing new
        rate0 = np.divide(s0 * s1y - s1 * sy, det, out=np.zeros_like(det), where=fits)
        level0 = (sy - rate0 * s1) / s0
        sse = np.where(fits, np.maximum(syy - level0 * sy - rate0 * s1y, 0.0), np.inf)
        return _Fits(level0, rate0, sse, s1, s2, s1y)

    def sse(self, onsets: Floats, taus: Floats) -> Floats:
        return self.fit(_basis(self.dt, onsets, taus)).sse

    def settling_sse(self, taus: Floats, fits: _Fits, ceiling: float) -> Floats:
        """Residual sums of squares of the fits constrained to an asymptote level0 + rate0 * tau <= ceiling.

        Where the unconstrained fit complies it is the answer; else the fit lies on the boundary,
        levels - ceiling = rate0 * (phi - tau), a one-parameter least-squares problem (from the same sums).
        """
        levels, weights = self.levels, self.weights
        s0, sy, syy = float(weights.sum()), float(levels @ weights), float((levels * levels) @ weights)
        s1, s2, s1y = fits.s1, fits.s2, fits.s1y
        suy = s1y - ceiling * s1 - taus * (sy - ceiling * s0)  # sums of (phi - tau) * (level - ceiling)
        suu = s2 - 2 * taus * s1 + taus * taus * s0  # and of (phi - tau) ** 2: > 0, as phi < tau
        syy_c = syy - 2 * ceiling * sy + ceiling * ceiling * s0
        boundary = np.maximum(syy_c - suy * suy / suu, 0.0)
        constrained: Floats = np.where(fits.level0 + fits.rate0 * taus <= ceiling, fits.sse, boundary)
        return constrained


Score = Callable[[Floats, Floats], Floats]  # residual sums of squares of candidates (onsets, taus)
Allowed = Callable[[Floats, Floats], Bools]


def _scores(score: Score, allowed: Allowed, onsets: Floats, taus: Floats) -> Floats:
    """The score of each allowed candidate, inf for the others."""
    keep = allowed(onsets, taus)
    scores = np.full(len(onsets), np.inf)
    if keep.any():
        scores[keep] = score(onsets[keep], taus[keep])
    return scores


def _best(
    score: Score,
    allowed: Allowed,
    grid: tuple[Floats, Floats, Floats],
    extra: tuple[Floats, Floats],
    onset_step: float,
    *,
    search: tuple[int, int] = SEARCH,
) -> tuple[float, float, float]:
    """(onset, tau, score) of the best allowed candidate: local searches from the best few of the grid (onsets,
    taus, their scores) and from the `extra` (onsets, taus), each a few rounds of 5 x 5 candidates around its best
    so far, every round at half the step of the previous one; `search` is (starts from the grid, rounds)."""
    starts, rounds = search
    onsets, taus, scores = grid
    top = np.argsort(scores)[:starts]
    top = top[np.isfinite(scores[top])]
    extra_onsets, extra_taus = extra
    at_onsets = np.concatenate([onsets[top], extra_onsets])
    at_taus = np.concatenate([taus[top], extra_taus])
    best = np.concatenate([scores[top], _scores(score, allowed, extra_onsets, extra_taus)])
    if not np.isfinite(best).any():
        return math.nan, math.nan, math.inf
    rows = np.arange(len(best))
    ratio = TAU_RATIO
    for _ in range(rounds):
        near_onsets = np.maximum(at_onsets[:, None] + _ONSET_MOVES[None, :] * onset_step, 0.0)
        near_taus = at_taus[:, None] * ratio ** _TAU_MOVES[None, :]  # a straight line (inf) stays one
        near = _scores(score, allowed, near_onsets.ravel(), near_taus.ravel()).reshape(near_taus.shape)
        pick = near.argmin(axis=1)
        better = near[rows, pick] < best
        at_onsets = np.where(better, near_onsets[rows, pick], at_onsets)
        at_taus = np.where(better, near_taus[rows, pick], at_taus)
        best = np.where(better, near[rows, pick], best)
        onset_step, ratio = onset_step / 2, math.sqrt(ratio)
    pick = int(np.argmin(best))
    return float(at_onsets[pick]), float(at_taus[pick]), float(best[pick])


def _inliers(levels: Floats) -> Floats | None:
    """Weights 1, or 0 for a bucket a running median moves (an isolated bump: a run of spikes); None if too many.

    A running median leaves any monotone run as it is, so a rise, however sudden, is never dropped.
    """
    deviation = np.abs(levels - _tukey_smooth(levels))
    scale = max(1.4826 * _median(deviation), NOISE_FLOOR)
    weights = (deviation <= OUTLIER_CUTOFF * scale).astype(np.float64)
    if len(levels) - weights.sum() > MAX_OUTLIERS or weights.sum() < MIN_POINTS:
        return None
    return weights


def _could_reject(levels: Floats, threshold: float) -> bool:
    """Whether the test could reject the null on these levels, bounded without fitting (cheap, for quiet windows).

    Every candidate curve is monotone, so none fits better than the best monotone sequence (pool adjacent
    violators); a constant at or below the threshold is in the null, so the null fits no worse than that.
    """
    values: list[float] = levels.tolist()
    monotone = min(_monotone_sse(values), _monotone_sse([-value for value in values]))
    level = min(sum(values) / len(values), threshold)
    constant = sum((value - level) ** 2 for value in values)
    df = len(values) - 4
    return constant - monotone >= _critical(df) * max(monotone / df, NOISE_FLOOR**2)


def _monotone_sse(values: list[float]) -> float:
    """Residual sum of squares of the least-squares non-decreasing fit to `values`."""
    means: list[float] = []
    counts: list[int] = []
    for value in values:
        mean, count = value, 1
        while means and means[-1] > mean:
            pooled = counts.pop()
            mean = (means.pop() * pooled + mean * count) / (pooled + count)
            count += pooled
        means.append(mean)
        counts.append(count)
    fitted = (mean for mean, count in zip(means, counts, strict=True) for _ in range(count))
    return sum((value - mean) ** 2 for value, mean in zip(values, fitted, strict=True))


def _decide(times: Floats, levels: Floats, threshold: float, end: float, settle_time: float) -> _Curve | None:
    """The best curve if the window proves it reaches `threshold` by `end` and no load change settling below it fits."""
    weights = _inliers(levels)
    if weights is None:
        return None
    mean = float(levels @ weights) / float(weights.sum())
    if not _could_reject(levels[weights > 0] - mean, threshold - mean):
        return None
    window = _Window(times - times[0], levels - mean, weights)
    dt = window.dt
    grid = [*sorted({float(dt[-1]) * TAU_RATIO**k for k in TAU_STEPS} | {settle_time}), math.inf]
    steps = np.diff(dt)
    onset_grid = (dt[:-1, None] + steps[:, None] * np.arange(ONSET_STEPS)[None, :] / ONSET_STEPS).ravel()
    onsets, taus = np.repeat(onset_grid, len(grid)), np.tile(np.array(grid), len(onset_grid))
    onset_step = _median(steps) / ONSET_STEPS
    last_onset = float(dt[-RISE_POINTS])

    def rising(onsets: Floats, taus: Floats) -> Bools:
        return onsets < last_onset  # a forecast's curve has RISE_POINTS buckets after its onset

    def settling(onsets: Floats, taus: Floats) -> Bools:
        return taus <= settle_time

    # The alternative: the best curve, which must reach the threshold within the horizon.
    fits = window.fit(_basis(dt, onsets, taus))
    none = np.empty(0)
    alternative = (onsets, taus, np.where(rising(onsets, taus), fits.sse, np.inf))
    onset, tau, sse = _best(window.sse, rising, alternative, (none, none), onset_step)
    if not math.isfinite(sse):
        return None
    fit = window.fit(_basis(dt, np.array([onset]), np.array([tau])))
    curve = _Curve(float(times[0]) + onset, tau, mean + float(fit.level0[0]), float(fit.rate0[0]))
    if not (curve.at(float(times[-1])) < threshold and curve.reaches(threshold) <= end):
        return None

    # The null: a load change settling at or below the threshold.
    ceiling = threshold - mean

    def settling_sse(onsets: Floats, taus: Floats) -> Floats:
        return window.settling_sse(taus, window.fit(_basis(dt, onsets, taus)), ceiling)

    null = settling(onsets, taus)
    null_fits = _Fits(fits.level0[null], fits.rate0[null], fits.sse[null], fits.s1[null], fits.s2[null], fits.s1y[null])
    null_grid = (onsets[null], taus[null], window.settling_sse(taus[null], null_fits, ceiling))
    # Searched from the null's own best grid candidates and from the best curve with tau cut to settle_time: a
    # search that missed the null's best would make a rejection of it worthless.
    nearest = (np.array([onset]), np.array([min(tau, settle_time)]))
    df = int(weights.sum()) - 4  # level0, rate0, tau, onset
    sigma = max(math.sqrt(min(sse, float(fits.sse.min())) / df), NOISE_FLOOR)
    least = _critical(df) * sigma * sigma  # the least excess of the null's residuals that rejects it
    for search in (SEARCH, THOROUGH):  # a rejection is confirmed by a thorough search (rare, so cheap overall)
        _, _, null_sse = _best(settling_sse, settling, null_grid, nearest, onset_step, search=search)
        if not null_sse - sse >= least:
            return None
    return curve
