"""The data's scales: fields and solvers work on states, inputs and times of order one."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from sysid.trajectories import DataSummary, Trajectories, swing_time

#: The time unit is a tenth of the median duration, but at most this many swing times
#: (:func:`sysid.trajectories.swing_time`): a record of many oscillations is scaled by
#: its dynamics, not by its length, so that derivatives stay of order one.
SWING_TIMES_PER_UNIT = 10.0


@dataclass(frozen=True)
class Scaling:
    """x = center + spread * z for the states, likewise for inputs, and a time unit.

    The spread of each state is its standard deviation over the observed entries,
    whatever its magnitude (data of scale 1e-300 or 1e300 is scaled by its own spread);
    a constant (or entirely unobserved) state uses a spread of 1. The time unit is a
    tenth of the median trajectory duration, but at most ``SWING_TIMES_PER_UNIT`` median
    :func:`~sysid.trajectories.swing_time`: a long record of fast oscillations (the
    Silverbox's 1,400 samples hold 160 periods) is scaled by its dynamics, so the scaled
    derivatives and the derivative embedding of hidden states stay of order ten rather
    than a hundred. Records of a few dozen swings or fewer keep a tenth of their duration.

    Examples
    --------
    >>> import sysid
    >>> tiny = sysid.Trajectories.from_arrays(np.arange(4.0), 1e-300 * np.arange(4.0)[:, None])
    >>> float(Scaling.of(tiny, 0).spread[0]) > 0
    True
    >>> Scaling.of(tiny, 0).scale(tiny[0].y).ravel().round(2).tolist()
    [-1.34, -0.45, 0.45, 1.34]
    """

    center: np.ndarray
    spread: np.ndarray
    input_center: np.ndarray
    input_spread: np.ndarray
    time_unit: float
    #: Per input, ``[minimum, maximum]`` over the training data (2, n_inputs); None when unknown
    #: (model files written before session 9). Networks read inputs clipped to it.
    input_range: np.ndarray | None = None

    @classmethod
    def of(cls, data: Trajectories, n_augment: int) -> Scaling:
        """Per-state mean and standard deviation over observed entries; time unit from spans and swings."""
        y = np.concatenate([tr.y for tr in data])
        u = np.concatenate([tr.u for tr in data]) if data.n_inputs else None
        input_center, input_spread = (np.zeros(0), np.zeros(0)) if u is None else _moments(u)
        center, spread = _moments(y)
        durations, swings = [tr.duration for tr in data], [swing_time(tr.t, tr.y) for tr in data]
        scaling = cls._from_moments(center, spread, input_center, input_spread, durations, swings, n_augment)
        return dataclasses.replace(scaling, input_range=cls.input_bounds(data))

    @staticmethod
    def input_bounds(data: Trajectories) -> np.ndarray:
        """Per input, ``[minimum, maximum]`` over every sample (2, n_inputs); NaN for an input never sampled.

        Examples
        --------
        >>> import sysid
        >>> u = np.array([[0.5], [-1.0], [2.0]])
        >>> Scaling.input_bounds(sysid.Trajectories.from_arrays(np.arange(3.0), np.zeros((3, 1)), u=u)).tolist()
        [[-1.0], [2.0]]
        """
        if not data.n_inputs:
            return np.zeros((2, 0))
        u = np.concatenate([tr.u for tr in data])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an input never sampled (all NaN)
            return np.stack([np.nanmin(u, axis=0), np.nanmax(u, axis=0)])

    @classmethod
    def of_summary(cls, summary: DataSummary, n_augment: int) -> Scaling:
        """The same as :meth:`of`, from statistics gathered chunk by chunk (streamed data).

        Examples
        --------
        >>> from sysid.datasets import simulate
        >>> data = simulate("lotka_volterra", n_trajectories=3, n_samples=20, noise=0.05, random_state=0)
        >>> summary = DataSummary.empty(2, 0)
        >>> for k in range(3):
        ...     summary.add(data[k : k + 1])
        >>> a, b = Scaling.of(data, 0), Scaling.of_summary(summary, 0)
        >>> bool(np.allclose(a.center, b.center) and np.allclose(a.spread, b.spread)), a.time_unit == b.time_unit
        (True, True)
        """
        inputs = summary.inputs
        scaling = cls._from_moments(
            summary.states.mean,
            summary.states.std,
            inputs.mean,
            inputs.std,
            summary.durations,
            summary.swing_times,
            n_augment,
        )
        return dataclasses.replace(scaling, input_range=inputs.bounds)

    @classmethod
    def _from_moments(
        cls,
        center: np.ndarray,
        spread: np.ndarray,
        input_center: np.ndarray,
        input_spread: np.ndarray,
        durations: Any,
        swing_times: Any,
        n_augment: int,
    ) -> Scaling:
        """Guard zero or undefined spreads, take the time unit from durations and swings, pad augmented dims."""
        spread = _guarded(np.asarray(spread, dtype=float), np.asarray(center, dtype=float))
        input_spread = _guarded(np.asarray(input_spread, dtype=float), np.asarray(input_center, dtype=float))
        time_unit = min(float(np.median(durations)) / 10.0, SWING_TIMES_PER_UNIT * float(np.median(swing_times)))
        time_unit = time_unit or 1.0
        return cls(
            np.concatenate([center, np.zeros(n_augment)]),
            np.concatenate([spread, np.ones(n_augment)]),
            input_center,
            input_spread,
            time_unit,
        )

    @classmethod
    def identity(cls, n_dims: int, n_inputs: int = 0) -> Scaling:
        """No scaling: centres 0, spreads 1, time unit 1."""
        return cls(np.zeros(n_dims), np.ones(n_dims), np.zeros(n_inputs), np.ones(n_inputs), 1.0)

    def scale(self, y: np.ndarray) -> np.ndarray:
        """Scaled observed states (n, n_states)."""
        n = y.shape[1]
        return (y - self.center[:n]) / self.spread[:n]

    def unscale(self, z: np.ndarray) -> np.ndarray:
        """Physical states from scaled ones (any number of leading dims)."""
        n = z.shape[-1]
        return self.center[:n] + self.spread[:n] * z

    def to_dict(self) -> dict[str, Any]:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scaling:
        fields: dict[str, Any] = {k: (np.asarray(v, dtype=float) if isinstance(v, list) else v) for k, v in d.items()}
        bounds = fields.get("input_range")
        if bounds is not None:
            expected = (2, *np.shape(fields.get("input_center", ())))
            if np.shape(bounds) != expected:
                raise ValueError(f"input_range has shape {np.shape(bounds)}, expected {expected}: minima, maxima")
        return cls(**fields)


def _moments(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each column over its finite entries, at any magnitude.

    Where the plain computation underflows (squares of data of scale 1e-300) or overflows
    (scale 1e200), the column is divided by its largest magnitude first.
    """
    with np.errstate(all="ignore"):
        center, spread = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
        redo = ~(np.isfinite(spread) & (spread > 0)) | ~np.isfinite(center)
        if redo.any() and values.shape[0]:
            size = np.nanmax(np.abs(values[:, redo]), axis=0)
            size = np.where(np.isfinite(size) & (size > 0), size, 1.0)
            unit = values[:, redo] / size
            center[redo], spread[redo] = np.nanmean(unit, axis=0) * size, np.nanstd(unit, axis=0) * size
        return center, spread


def _guarded(spread: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Spreads usable as divisors: one negligible against the center (a constant), zero or undefined
    becomes 1. Only relative to the center: tiny data keeps its own tiny spread."""
    ok = np.isfinite(spread) & (spread > 1e-12 * np.abs(center)) & (spread > 0)
    return np.where(ok, spread, 1.0)
