"""Summary statistics of trajectories, accumulated one batch of trajectories at a time.

What the estimators' scaling needs (per-state mean and spread over observed entries,
per-input mean and spread, each trajectory's duration and :func:`swing_time`), gathered in a single pass that
never holds more than one batch: :class:`DataSummary` merges the moments of each batch
(Chan, Golub and LeVeque's pairwise update), so the result does not depend on how the
data was cut, up to rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from sysid.trajectories._container import Trajectory

#: Half-width, in standard deviations about the mean, of the band a state must cross
#: for :func:`swing_time` to count a swing (measurement noise inside it is not counted).
SWING_BAND = 0.5


def swing_time(t: np.ndarray, y: np.ndarray) -> float:
    """The time one trajectory takes to turn by a radian: duration / (pi * swings), fastest state.

    A swing is a passage of a state from above its mean plus ``SWING_BAND`` standard
    deviations to below its mean minus as many, or back. A sinusoid of angular frequency
    w swings twice a period, so this is 1 / w for it, and for any record the time its
    fastest oscillating state takes to change by about its own spread. NaN entries are
    skipped; a state that never swings (a decay, a drift, fewer than two swings) gives
    ``inf``, as does a trajectory whose every state is so.

    Examples
    --------
    >>> t = np.linspace(0.0, 1000.0, 50001)
    >>> round(swing_time(t, np.sin(3.0 * t)[:, None]), 3)  # 1 / w = 0.333, to within one swing in the record
    0.334
    >>> rng = np.random.default_rng(0)
    >>> noisy = np.sin(3.0 * t) + 0.1 * rng.standard_normal(t.size)
    >>> round(swing_time(t, np.column_stack([noisy, np.exp(-t)])), 3)  # noise and a decay do not count
    0.334
    >>> swing_time(t, np.exp(-t)[:, None])
    inf
    """
    times = []
    for column in np.asarray(y, dtype=float).T:
        seen = np.isfinite(column)
        values, spread = column[seen], np.std(column[seen]) if seen.any() else 0.0
        if spread == 0:
            continue
        z = (values - values.mean()) / spread
        signs = np.sign(z[np.abs(z) > SWING_BAND])
        swings = int(np.count_nonzero(np.diff(signs)))
        ts = np.asarray(t, dtype=float)[seen]
        if swings >= 2:
            times.append(float(ts[-1] - ts[0]) / (np.pi * swings))
    return min(times, default=float("inf"))


@dataclass
class Moments:
    """Count, mean and sum of squared deviations per column, ignoring NaN."""

    count: np.ndarray
    mean: np.ndarray
    m2: np.ndarray
    low: np.ndarray
    high: np.ndarray

    @classmethod
    def empty(cls, n_columns: int) -> Moments:
        """No values seen yet."""
        return cls(
            np.zeros(n_columns),
            np.zeros(n_columns),
            np.zeros(n_columns),
            np.full(n_columns, np.inf),
            np.full(n_columns, -np.inf),
        )

    def add(self, values: np.ndarray) -> None:
        """Merge the non-NaN entries of ``values`` (n_rows, n_columns) into these moments.

        Examples
        --------
        >>> m = Moments.empty(1)
        >>> m.add(np.array([[1.0], [np.nan]]))
        >>> m.add(np.array([[3.0]]))
        >>> m.count.tolist(), m.mean.tolist(), m.std.tolist(), m.bounds.tolist()
        ([2.0], [2.0], [1.0], [[1.0], [3.0]])
        """
        seen = ~np.isnan(values)
        self.low = np.fmin(self.low, np.where(seen, values, np.inf).min(axis=0, initial=np.inf))
        self.high = np.fmax(self.high, np.where(seen, values, -np.inf).max(axis=0, initial=-np.inf))
        count = seen.sum(axis=0).astype(float)
        safe = np.where(seen, values, 0.0)
        mean = np.divide(safe.sum(axis=0), count, out=np.zeros_like(count), where=count > 0)
        m2 = (np.where(seen, values - mean, 0.0) ** 2).sum(axis=0)
        total = self.count + count
        delta = mean - self.mean
        weight = np.divide(count, total, out=np.zeros_like(total), where=total > 0)
        self.mean = self.mean + delta * weight
        self.m2 = self.m2 + m2 + delta**2 * self.count * weight
        self.count = total

    @property
    def bounds(self) -> np.ndarray:
        """Per-column ``[minimum, maximum]`` (2, n_columns); NaN where nothing was seen."""
        seen = self.count > 0
        return np.stack([np.where(seen, self.low, np.nan), np.where(seen, self.high, np.nan)])

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation per column (NaN where nothing was seen)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.sqrt(np.where(self.count > 0, self.m2 / self.count, np.nan))


@dataclass
class DataSummary:
    """Moments of the states and inputs, and every trajectory's duration, length and swing time.

    Per-trajectory entries are three numbers each, small next to the data they summarise.

    Examples
    --------
    >>> from sysid import Trajectories
    >>> data = Trajectories.from_arrays([np.arange(3.0), np.arange(5.0)], [np.ones((3, 1)), np.zeros((5, 1))])
    >>> summary = DataSummary.empty(1, 0)
    >>> summary.add(data[:1])
    >>> summary.add(data[1:])
    >>> summary.states.mean.tolist(), summary.durations.tolist(), summary.n_observations
    ([0.375], [2.0, 4.0], 8)
    """

    states: Moments
    inputs: Moments
    duration_list: list[float] = field(default_factory=list)
    length_list: list[int] = field(default_factory=list)
    swing_list: list[float] = field(default_factory=list)

    @classmethod
    def empty(cls, n_states: int, n_inputs: int) -> DataSummary:
        """Nothing seen yet."""
        return cls(Moments.empty(n_states), Moments.empty(n_inputs))

    def add(self, trajectories: Sequence[Trajectory]) -> None:
        """Merge a batch of validated trajectories."""
        trajectories = list(trajectories)
        self.states.add(np.concatenate([tr.y for tr in trajectories]))
        if self.inputs.count.size:
            self.inputs.add(np.concatenate([tr.u for tr in trajectories]))
        self.duration_list += [tr.duration for tr in trajectories]
        self.length_list += [tr.n_times for tr in trajectories]
        self.swing_list += [swing_time(tr.t, tr.y) for tr in trajectories]

    @property
    def durations(self) -> np.ndarray:
        """Time span of every trajectory, in the order they were added."""
        return np.asarray(self.duration_list, dtype=float)

    @property
    def swing_times(self) -> np.ndarray:
        """:func:`swing_time` of every trajectory, in the order they were added."""
        return np.asarray(self.swing_list, dtype=float)

    @property
    def lengths(self) -> np.ndarray:
        """Number of time stamps of every trajectory."""
        return np.asarray(self.length_list, dtype=int)

    @property
    def n_observations(self) -> int:
        """Observed state entries in all trajectories."""
        return int(self.states.count.sum())
