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

**Fit.** Levels, not differences, are fitted: regressing a smoothed dT/dt on
T differences noisy levels, which telescope to the window's two ends (with
±1 °C noise a 2-minute window's slope is about ten times less precise). For
every candidate (onset, tau) on a grid (onsets every quarter bucket, taus
span * 2**(k/2) for k in -9..8, `settle_time`, a straight line) the curve is
linear in (L0, r0), so all are fitted at once by closed-form 2x2 least
squares (separable least squares), then the best is refined by two rounds of
a 5 x 5 local search at half the step.

**Decision: forecast only what the window proves.** A forecast is raised when
(1) the best curve with RISE_POINTS buckets after its onset reaches the
threshold by the horizon's end while its latest level is below it, and (2) a
likelihood-ratio test (F, 0.1 %) rejects the null hypothesis "a load change
settling at or below the threshold": the best fit among curves with
tau <= settle_time, any onset, constrained to an asymptote <= threshold. Any
load change that settles below the threshold is in the null, so it never
passes, however steep its start; a ramp passes once the window shows it too
straight, or too close to the threshold, for any such load change. That is
also the price: the window must be long enough to see it. Measured
(bench/forecast.py): with the default 2-minute window, ramps of 12 °C/min and
more are forecast most of a horizon ahead, 5 °C/min ones not at all; a
5-minute window forecasts 3 °C/min ramps most of a horizon ahead. The test's
residual standard deviation is at least NOISE_FLOOR (integer sensor readings,
bucket medians), so noise-free data claims no certainty it does not have.

**Spikes.** A reading sticking out beyond both its neighbours by more than
they differ (and more than SPIKE_MIN) is dropped: what remains is the
spike-free series with a reading missing, like any irregular sampling, and a
spike too small to be dropped is no bigger than the rise between its
neighbours. (A median of three, by contrast, shifts a steep rise on both sides
of a spike, and an interpolation invents a ramp at a step's knee: both made
settling load steps look like trends.) Two or three spikes in a row
(0.25 % and 0.01 % of readings at the simulator's 5 %) pass, but a bucket is a
median of its readings, and a bucket that a running median of the bucket
levels moves by more than OUTLIER_CUTOFF robust deviations is left out (more
than MAX_OUTLIERS of them: no forecast). A running median never moves a
monotone run, so a real rise is never left out.

**Bounded memory, O(1) updates.** The window is BUCKETS buckets of
window/BUCKETS seconds. A bucket keeps the first reading of each of its
SAMPLES slots and becomes their median, at the median of their times, when
it closes. A device holds the open bucket's samples and a ring of the last
BUCKETS points: about 1.1 KB whatever its reading rate (`sys.getsizeof`). An
update is a few comparisons (0.6 µs); a fit and test (about 0.4 ms) runs at
most once per bucket and only when a forecast is asked for, not when the
window is too flat for the test or too far below the threshold to reach it,
and its answer is cached until the next bucket closes. A gap longer than the
window, or a clock set back by more, starts the trend over; a reading at or
before the latest one is dropped (a duplicate, a replay, out of order).
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

BUCKETS: Final = 12  # per window: the fit sees up to this many points
SAMPLES: Final = 8  # readings kept per bucket, the first of each of its equal slots
MIN_POINTS: Final = 6  # usable buckets below which there is no forecast
RISE_POINTS: Final = 4  # buckets after its onset that a forecast's curve needs
ONSET_STEPS: Final = 4  # candidate onsets per interval between two buckets
TAU_RATIO: Final = math.sqrt(2)
TAU_STEPS: Final = range(-9, 9)  # tau grid: span * TAU_RATIO ** k
REFINE_ROUNDS: Final = 2  # local searches around the best grid candidate, each at half the previous step
SETTLE_TIME: Final = 120.0  # s: the slowest load-change time constant the forecast must not mistake for a trend
MAX_OUTLIERS: Final = 2  # isolated outlying buckets above which the window is not trusted
OUTLIER_CUTOFF: Final = 4.0  # robust standard deviations from the running median that make a bucket an outlier
SPIKE_MIN: Final = 2.0  # °C: a reading sticking out less than this beyond both neighbours is noise, not a spike
NOISE_FLOOR: Final = 0.3  # °C: the least residual standard deviation assumed for a bucket level
# 99.9 % quantiles of F(1, df) by degrees of freedom (usable buckets - 4: L0, r0, tau, onset).
_F999: Final = {2: 998.5, 3: 167.0, 4: 74.14, 5: 47.18, 6: 35.51, 7: 29.25, 8: 25.41}

_FLAT: Final = min(_F999.values()) * NOISE_FLOOR**2  # the least residual sum of squares the test can reject by
_ID, _TIME, _LEVEL = 0, 1, 2  # rows of the ring of closed buckets
_INF: Final = math.inf
_isfinite = math.isfinite


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
    eta: float  # seconds from the query's event time to the expected crossing (0: imminent)
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
        "_count",
        "_decision",
        "_kept",
        "_last_at",
        "_last_temperature",
        "_model",
        "_ring",
        "_slot",
        "_times",
        "_values",
        "_version",
    )

    def __init__(self, model: TrendModel) -> None:
        self._model = model
        self._ring: Floats = np.empty((3, BUCKETS))
        self._times = array("d")  # the open bucket's samples: at most SAMPLES
        self._values = array("d")
        self._version = 0
        self._decision: _Decision | None = None
        self._reset()

    def _reset(self) -> None:
        self._ring[_ID].fill(-math.inf)
        self._count = 0  # readings accepted since the reset, up to 2
        self._last_at = -math.inf  # the latest reading, not yet checked for a spike
        self._last_temperature = self._kept = math.nan  # and the reading before it that was kept
        self._bucket = self._slot = -math.inf  # ids of the open bucket and of the latest sample's slot
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
        elif at - last > self._model.window and self._count:
            self._reset()
            result = _RESET
        if self._count >= 2:
            # The previous reading, dropped if it sticks out beyond both neighbours (the last kept reading and this
            # one) by more than they differ and more than SPIKE_MIN: a spike goes, a rise or a step stays.
            kept, middle = self._kept, self._last_temperature
            low, high = (kept, temperature) if kept < temperature else (temperature, kept)
            margin = max(high - low, SPIKE_MIN)
            if low - margin <= middle <= high + margin:
                self._kept = middle
                self._sample(self._last_at, middle)
        elif self._count == 1:
            self._kept = self._last_temperature  # the first reading is only a neighbour
            self._count = 2
        else:
            self._count = 1
        self._last_at, self._last_temperature = at, temperature
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
            self._bucket = bucket
        self._times.append(at)
        self._values.append(value)

    def _close(self) -> None:
        """The open bucket becomes one point: the median of its samples at the median of their times."""
        slot = int(self._bucket) % BUCKETS
        self._ring[:, slot] = (self._bucket, _median(self._times), _median(self._values))
        del self._times[:]
        del self._values[:]
        self._version += 1

    def points(self) -> tuple[Floats, Floats]:
        """Event times and levels of the closed buckets within the window, oldest first."""
        ring = self._ring
        valid = ring[_ID] > self._bucket - BUCKETS
        order = np.argsort(ring[_ID][valid])
        return ring[_TIME][valid][order], ring[_LEVEL][valid][order]

    def forecast(self, threshold: float, horizon: float, at: float) -> Forecast | None:
        """The expected crossing of `threshold` within `horizon` seconds, seen at event time `at`, if the trend is sure.

        None while the latest reading is at or above the threshold (the critical
        alert covers it), before the window holds enough data, and whenever the
        window could still be a load change settling at or below the threshold.
        """
        if not self._last_temperature < threshold:
            return None
        decision = self._decision
        if (
            decision is None
            or decision.version != self._version
            or decision.threshold != threshold
            or decision.horizon != horizon
        ):
            curve = self._decide(threshold, horizon) if 0 < horizon < _INF else None
            decision = self._decision = _Decision(self._version, threshold, horizon, curve)
        curve = decision.curve
        if curve is None or not _isfinite(at):
            return None
        reach_at = curve.reaches(threshold)
        return Forecast(
            threshold=threshold,
            eta=max(0.0, reach_at - at),
            reach_at=reach_at,
            rate=curve.slope(at) * 60.0,
            level=curve.at(at),
            asymptote=curve.asymptote(),
        )

    def _decide(self, threshold: float, horizon: float) -> _Curve | None:
        times, levels = self.points()
        if len(times) < MIN_POINTS or times[-1] - times[0] < self._model.window / 2:
            return None
        end = self._bucket * self._model.bucket_width + horizon  # the answer stands until the open bucket closes
        # Cheap bound first: a forecast's curve is concave after its onset, which lies before the last RISE_POINTS
        # buckets, so from the window's end it rises at most as fast as over them; half the window's range is
        # slack for how far a fit may pass from the levels.
        last, rise_time = float(levels[-1]), float(times[-1] - times[-RISE_POINTS])
        rise = max(0.0, last - float(levels[-RISE_POINTS])) * (end - float(times[-1])) / rise_time
        slack = (float(levels.max()) - float(levels.min())) / 2 + 4 * NOISE_FLOOR
        if last + rise + slack < threshold:
            return None
        # And a window so flat that a constant below the threshold fits it within the test's least tolerance: the
        # null hypothesis, which includes that constant, cannot be rejected.
        if float(levels.max()) <= threshold and float(levels.var()) * len(levels) < _FLAT:
            return None
        return _decide(times, levels, threshold, end, self._model.settle_time)

    def __sizeof__(self) -> int:
        """Bytes this state holds, its own containers and numbers included (the shared model is not)."""
        size = object.__sizeof__(self)
        for value in (self._ring, self._times, self._values, self._bucket, self._slot):
            size += sys.getsizeof(value)
        for value in (self._last_at, self._last_temperature, self._kept):
            size += sys.getsizeof(value)
        if self._decision is not None:
            size += sys.getsizeof(self._decision) + 2 * sys.getsizeof(0.0)
            if self._decision.curve is not None:
                size += sys.getsizeof(self._decision.curve) + 4 * sys.getsizeof(0.0)
        return size


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

    level0: Floats
    rate0: Floats
    sse: Floats  # residual sum of squares (inf for a candidate that is flat over the buckets)


@dataclass(frozen=True)
class _Window:
    """One window's buckets, as the fits see them."""

    dt: Floats  # seconds after the first bucket
    levels: Floats
    weights: Floats  # 1 for a bucket in the fit, 0 for an outlier

    def fit(self, phi: Floats) -> _Fits:
        """Every candidate's (level0, rate0) at once, from the closed-form 2x2 normal equations."""
        levels, weights = self.levels, self.weights
        s0 = float(weights.sum())
        s1 = phi @ weights
        s2 = (phi * phi) @ weights
        sy = float(levels @ weights)
        s1y = (phi * levels) @ weights
        det = s0 * s2 - s1 * s1
        fits = det > 1e-9 * s0 * s2  # else the candidate is flat over the buckets: it fits nothing new
        rate0 = np.divide(s0 * s1y - s1 * sy, det, out=np.zeros_like(det), where=fits)
        level0 = (sy - rate0 * s1) / s0
        residuals = levels[None, :] - level0[:, None] - rate0[:, None] * phi
        sse = np.where(fits, (residuals * residuals) @ weights, np.inf)
        return _Fits(level0, rate0, sse)

    def sse(self, onsets: Floats, taus: Floats) -> Floats:
        return self.fit(_basis(self.dt, onsets, taus)).sse

    def settling_sse(self, phi: Floats, taus: Floats, fits: _Fits, ceiling: float) -> Floats:
        """Residual sums of squares of the fits constrained to an asymptote level0 + rate0 * tau <= ceiling.

        Where the unconstrained fit complies it is the answer; else the fit lies on the boundary,
        levels - ceiling = rate0 * (phi - tau), a one-parameter least-squares problem.
        """
        complies = fits.level0 + fits.rate0 * taus <= ceiling
        u = phi - taus[:, None]  # < 0 everywhere: phi < tau
        y = self.levels - ceiling
        rate = ((u * y) @ self.weights) / ((u * u) @ self.weights)
        residuals = y[None, :] - rate[:, None] * u
        constrained: Floats = np.where(complies, fits.sse, (residuals * residuals) @ self.weights)
        return constrained


Score = Callable[[Floats, Floats], Floats]  # residual sums of squares of candidates (onsets, taus)
Allowed = Callable[[Floats, Floats], Bools]


def _best(
    score: Score, allowed: Allowed, grid: tuple[Floats, Floats, Floats], onset_step: float
) -> tuple[float, float, float]:
    """(onset, tau, score) of the best allowed candidate of the grid (onsets, taus, their scores), refined by
    REFINE_ROUNDS local 5 x 5 searches, each at half the step of the previous one."""
    onsets, taus, scores = grid
    keep = allowed(onsets, taus)
    if not keep.any():
        return math.nan, math.nan, math.inf
    pick = int(np.flatnonzero(keep)[np.argmin(scores[keep])])
    best, onset, tau = float(scores[pick]), float(onsets[pick]), float(taus[pick])
    ratio = TAU_RATIO
    offsets = np.array([-2.0, -1.0, 0.0, 1.0, 2.0]) / 2
    for _ in range(REFINE_ROUNDS):
        near_onsets = np.repeat(np.maximum(onset + offsets * onset_step, 0.0), 5)
        near_taus = np.tile(tau * ratio**offsets, 5) if math.isfinite(tau) else np.full(25, math.inf)
        onset_step, ratio = onset_step / 2, math.sqrt(ratio)
        keep = allowed(near_onsets, near_taus)
        scores = score(near_onsets[keep], near_taus[keep])
        pick = int(np.argmin(scores))
        if scores[pick] < best:
            best, onset, tau = float(scores[pick]), float(near_onsets[keep][pick]), float(near_taus[keep][pick])
    return onset, tau, best


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


def _decide(times: Floats, levels: Floats, threshold: float, end: float, settle_time: float) -> _Curve | None:
    """The best curve if the window proves it reaches `threshold` by `end` and no load change settling below it fits."""
    weights = _inliers(levels)
    if weights is None:
        return None
    window = _Window(times - times[0], levels, weights)
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
    phi = _basis(dt, onsets, taus)
    fits = window.fit(phi)
    onset, tau, sse = _best(window.sse, rising, (onsets, taus, fits.sse), onset_step)
    if not math.isfinite(sse):
        return None
    fit = window.fit(_basis(dt, np.array([onset]), np.array([tau])))
    curve = _Curve(float(times[0]) + onset, tau, float(fit.level0[0]), float(fit.rate0[0]))
    if not (curve.at(float(times[-1])) < threshold and curve.reaches(threshold) <= end):
        return None

    # The null: a load change settling at or below the threshold.
    def settling_sse(onsets: Floats, taus: Floats) -> Floats:
        phi = _basis(dt, onsets, taus)
        return window.settling_sse(phi, taus, window.fit(phi), threshold)

    null = settling(onsets, taus)
    null_fits = _Fits(fits.level0[null], fits.rate0[null], fits.sse[null])
    null_grid = (onsets[null], taus[null], window.settling_sse(phi[null], taus[null], null_fits, threshold))
    _, _, null_sse = _best(settling_sse, settling, null_grid, onset_step)
    df = int(weights.sum()) - 4  # level0, rate0, tau, onset
    sigma = max(math.sqrt(min(sse, float(fits.sse.min())) / df), NOISE_FLOOR)
    if not null_sse - sse >= _F999[min(df, max(_F999))] * sigma * sigma:
        return None
    return curve
