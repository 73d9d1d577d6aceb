"""Temperature forecasts: will a device reach its threshold within the horizon? Pure code, on event time.

Time base: every time is an event time in epoch seconds (float), the readings'
own timestamps; nothing here reads a clock. Readings may come in bursts and at
irregular intervals: only their timestamps matter.

**Model.** A GPU under a constant load heats toward a steady state with one
thermal time constant: dT/dt = (T_inf - T) / tau. From an onset t0 (a load
change, a fan failing) that is T(t) = L0 + r0 * tau * (1 - exp(-(t - t0)/tau)),
constant before t0, with asymptote T_inf = L0 + r0 * tau; tau -> infinity is a
straight line of slope r0. A load change is such a curve with a tau of tens of
seconds (at most `settle_time`, 2 min by default); a failing fan or a steady
ramp is one with a far higher asymptote and a long tau. Fitting tau and the
onset is what tells a load step's steep first seconds, which a straight line
(Prometheus's `predict_linear`) extrapolates past the threshold, from a trend.

**Fit.** Separable least squares on the bucket levels (below): for every
candidate (onset, tau), with onsets at quarter steps between buckets and taus
on a geometric grid from span/22 to 16*span plus `settle_time` and the
straight line, the curve is linear in (L0, r0), so all candidates are fitted
at once with closed-form 2x2 normal equations. Levels are fitted, not
differenced: differences of noisy levels telescope to the window's ends (with
+-1 degC noise, regressing dT/dt on T loses about ten times the precision).

**Decision: forecast only what the window proves.** A forecast is raised when
(1) the best curve with at least RISE_POINTS buckets after its onset reaches
the threshold within the horizon while its latest level is below it, and
(2) a likelihood-ratio (F) test at 0.1 % rejects the null hypothesis that the
device is settling, after a load change, at or below the threshold: the best
fit among curves with tau <= settle_time (any onset), each constrained to an
asymptote at or below the threshold. A settling curve is in the null, so it
cannot pass; a steady ramp passes once the window shows it too straight for
any load change that settles below the threshold. The cost is identifiability:
the window must be long enough to see that straightness, so slow ramps are
forecast late with a window close to `settle_time` (measured in
`bench/forecast.py`: use FORECAST_WINDOW of 2.5 x settle_time or more to
forecast 2 degC/min ramps a whole horizon ahead). The residual standard
deviation used by the test is at least NOISE_FLOOR and MODEL_ERROR of the
window's range, since bucket medians, grids and integer sensor readings limit
how exactly any curve fits.

**Spikes.** Readings pass a running median of three first: a single abnormal
reading, of any size, anywhere, is removed exactly. Runs of two or three
(0.25 % and 0.01 % of readings at the simulator's 5 %) are absorbed by the
bucket medians; where a bucket has too few readings for that, a bucket that
a running median of the bucket levels moves by more than OUTLIER_CUTOFF
robust deviations is left out (more than MAX_OUTLIERS: no forecast). A
monotone run is never moved by a running median, so a real rise is never
dropped.

**Bounded memory, O(1) updates.** The window is BUCKETS buckets of
window/BUCKETS seconds; each bucket keeps the first filtered reading of each of
its SAMPLES equal slots and becomes their median (at the median of their
times) when it closes. A device holds the open bucket's samples and a ring of
the last BUCKETS bucket points, whatever its reading rate: about 1.1 KB
(`sys.getsizeof(state)`). `add` is a few comparisons; the fit (a few hundred
microseconds of numpy) runs at most once per closed bucket, only when a
forecast is asked for, and not when the window's levels cannot reach the
threshold within the horizon; its answer is cached until the next bucket
closes.
"""

from __future__ import annotations

import math
import sys
from array import array
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]

BUCKETS: Final = 12  # per window: the fit sees up to this many points
SAMPLES: Final = 8  # readings kept per bucket, the first of each of its equal slots
MIN_POINTS: Final = 6  # usable buckets below which there is no forecast
RISE_POINTS: Final = 4  # buckets after its onset that a forecast's curve needs
ONSET_STEPS: Final = 4  # candidate onsets per interval between two buckets
TAU_STEPS: Final = range(-9, 9)  # tau grid: span * 2 ** (k / 2)
SETTLE_TIME: Final = 120.0  # s: the slowest load-change time constant the forecast must not mistake for a trend
MAX_OUTLIERS: Final = 2  # isolated outlying buckets above which the window is not trusted
OUTLIER_CUTOFF: Final = 4.0  # robust standard deviations from the running median that make a bucket an outlier
NOISE_FLOOR: Final = 0.3  # °C: the least residual standard deviation assumed for a bucket level
MODEL_ERROR: Final = 0.02  # and at least this share of the window's range of levels
# 99.9 % quantiles of F(1, df) by degrees of freedom (usable buckets - 4: L0, r0, tau, onset).
_F999: Final = {2: 998.5, 3: 167.0, 4: 74.14, 5: 47.18, 6: 35.51, 7: 29.25, 8: 25.41}

_ID, _TIME, _LEVEL = 0, 1, 2  # rows of the ring of closed buckets
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
        "_last_at",
        "_last_temperature",
        "_model",
        "_prev_temperature",
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
        self._last_at = -math.inf
        self._last_temperature = self._prev_temperature = math.nan
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
        previous = self._last_temperature
        if self._count >= 2:
            # The previous reading, replaced by the median of it and its two neighbours.
            a, b, c = self._prev_temperature, previous, temperature
            if a > b:
                a, b = b, a
            self._sample(self._last_at, a if c < a else (b if c > b else c))
        else:
            self._count += 1
        self._prev_temperature = previous
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
        if not (self._last_temperature < threshold and 0 < horizon < math.inf and math.isfinite(at)):
            return None
        decision = self._decision
        if decision is None or (decision.version, decision.threshold, decision.horizon) != (
            self._version,
            threshold,
            horizon,
        ):
            decision = self._decision = _Decision(self._version, threshold, horizon, self._decide(threshold, horizon))
        curve = decision.curve
        if curve is None:
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
        return _decide(times, levels, threshold, end, self._model.settle_time)

    def __sizeof__(self) -> int:
        """Bytes this state holds, its own containers and numbers included (the shared model is not)."""
        size = object.__sizeof__(self)
        for value in (self._ring, self._times, self._values, self._last_at, self._bucket, self._slot):
            size += sys.getsizeof(value)
        for value in (self._last_temperature, self._prev_temperature):
            size += sys.getsizeof(value)
        if self._decision is not None:
            size += sys.getsizeof(self._decision) + 2 * sys.getsizeof(0.0)
            if self._decision.curve is not None:
                size += sys.getsizeof(self._decision.curve) + 4 * sys.getsizeof(0.0)
        return size


def _median(values: array[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _phi(dt: float, tau: float) -> float:
    dt = max(dt, 0.0)
    return dt if math.isinf(tau) else -tau * math.expm1(-dt / tau)


def _basis(dt: Floats, onsets: Floats, taus: Floats) -> Floats:
    """phi(dt - onset) for every candidate (rows) at every time (columns): 0 before the onset."""
    since = np.maximum(dt[None, :] - onsets[:, None], 0.0)
    column = taus[:, None]
    with np.errstate(invalid="ignore"):
        curved = -column * np.expm1(-since / column)
    phi: Floats = np.where(np.isinf(column), since, curved)
    return phi


def _tukey_smooth(levels: Floats) -> Floats:
    """Running median of three, with Tukey's end-point rule."""
    padded = np.concatenate([[3 * levels[1] - 2 * levels[2]], levels, [3 * levels[-2] - 2 * levels[-3]]])
    smooth: Floats = np.median(np.vstack([padded[:-2], padded[1:-1], padded[2:]]), axis=0)
    return smooth


@dataclass(frozen=True)
class _Window:
    """Least-squares fits of every candidate (onset, tau) to one window's buckets."""

    dt: Floats  # bucket times, seconds after the first
    levels: Floats
    weights: Floats  # 1 for a bucket in the fit, 0 for an outlier
    phi: Floats  # candidates x buckets
    onsets: Floats  # seconds after the first bucket
    taus: Floats
    level0: Floats
    rate0: Floats
    sse: Floats

    @property
    def df(self) -> int:
        return int(self.weights.sum()) - 4

    @property
    def sigma(self) -> float:
        """Residual standard deviation of the best fit, at least what the model's approximations cause."""
        inliers = self.levels[self.weights > 0]
        floor = max(NOISE_FLOOR, MODEL_ERROR * float(inliers.max() - inliers.min()))
        return max(math.sqrt(float(self.sse.min()) / self.df), floor)


def _fit_window(times: Floats, levels: Floats, settle_time: float) -> _Window | None:
    dt = times - times[0]
    span = float(dt[-1])
    # Buckets a running median moves are isolated bumps (a run of spikes): left out. A running median leaves any
    # monotone run as it is, so a rise, however sudden, is never dropped.
    deviation = np.abs(levels - _tukey_smooth(levels))
    scale = max(1.4826 * float(np.median(deviation)), NOISE_FLOOR)
    weights = (deviation <= OUTLIER_CUTOFF * scale).astype(np.float64)
    if len(levels) - weights.sum() > MAX_OUTLIERS or weights.sum() < MIN_POINTS:
        return None
    grid = [*sorted({span * 2.0 ** (k / 2) for k in TAU_STEPS} | {settle_time}), math.inf]
    starts, steps = dt[:-1], np.diff(dt)
    onset_grid = (starts[:, None] + steps[:, None] * np.arange(ONSET_STEPS)[None, :] / ONSET_STEPS).ravel()
    onsets = np.repeat(onset_grid, len(grid))
    taus = np.tile(np.array(grid), len(onset_grid))
    phi = _basis(dt, onsets, taus)
    s0 = float(weights.sum())
    s1 = phi @ weights
    s2 = (phi * phi) @ weights
    sy = float(levels @ weights)
    s1y = (phi * levels) @ weights
    det = s0 * s2 - s1 * s1
    with np.errstate(divide="ignore", invalid="ignore"):
        rate0 = (s0 * s1y - s1 * sy) / det
    level0 = (sy - rate0 * s1) / s0
    residuals = levels[None, :] - level0[:, None] - rate0[:, None] * phi
    sse = (residuals * residuals) @ weights
    sse[~(det > 1e-9 * s0 * s2)] = np.inf  # a candidate whose curve is flat over the buckets fits nothing new
    return _Window(dt, levels, weights, phi, onsets, taus, level0, rate0, sse)


def _settling_sse(window: _Window, threshold: float, settle_time: float) -> float:
    """Least residual sum of squares of a load change settling at or below `threshold` (tau <= settle_time).

    Per candidate, the fit constrained to asymptote = level0 + rate0 * tau <= threshold: the unconstrained fit
    where it complies, else the fit on the boundary, levels - threshold = rate0 * (phi - tau).
    """
    null = window.taus <= settle_time
    if not null.any():
        return math.inf
    taus = window.taus[null]
    complies = window.level0[null] + window.rate0[null] * taus <= threshold
    u = window.phi[null] - taus[:, None]
    y = window.levels - threshold
    w = window.weights
    rate = ((u * y) @ w) / ((u * u) @ w)  # u < 0 everywhere: phi < tau
    residuals = y[None, :] - rate[:, None] * u
    constrained = np.where(complies, window.sse[null], (residuals * residuals) @ w)
    return float(constrained.min())


def _decide(times: Floats, levels: Floats, threshold: float, end: float, settle_time: float) -> _Curve | None:
    """The best curve if the window proves it reaches `threshold` by `end` and no load change explains it."""
    window = _fit_window(times, levels, settle_time)
    if window is None:
        return None
    rising = window.onsets < window.dt[-RISE_POINTS]
    best = int(np.flatnonzero(rising)[np.argmin(window.sse[rising])])
    if not math.isfinite(window.sse[best]):
        return None
    onset, tau = float(times[0] + window.onsets[best]), float(window.taus[best])
    curve = _Curve(onset, tau, float(window.level0[best]), float(window.rate0[best]))
    if not (curve.at(float(times[-1])) < threshold and curve.reaches(threshold) <= end):
        return None
    settling = _settling_sse(window, threshold, settle_time)
    sigma = window.sigma
    if not settling - float(window.sse[best]) >= _F999[min(window.df, max(_F999))] * sigma * sigma:
        return None
    return curve
