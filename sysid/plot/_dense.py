"""Predictions on a fine time grid, so that a model's curve is smooth between the measurements."""

from __future__ import annotations

from typing import Any

import numpy as np

from sysid.errors import ConfigError, DataError
from sysid.plot._style import as_data
from sysid.trajectories import Trajectories


def _inputs_on(grid: np.ndarray, t: np.ndarray, u: np.ndarray, how: str) -> np.ndarray:
    if how == "zoh":  # hold each sample until the next one, as the model does
        index = np.clip(np.searchsorted(t, grid, side="right") - 1, 0, len(t) - 1)
        return u[index]
    return np.column_stack([np.interp(grid, t, u[:, k]) for k in range(u.shape[1])])


def predict_dense(model: Any, data: Any, n_points: int = 200, x0: Any = None) -> Trajectories:
    """A fitted model's trajectories for ``data`` on a dense time grid, for smooth curves.

    Each trajectory is simulated on ``n_points`` evenly spaced times plus its own sample
    times, from the initial state ``model.predict(data)`` starts it at (or ``x0``), with
    its inputs interpolated onto the grid the way the model interpolates them (linear,
    or held for ``input_interpolation="zoh"``). Between irregular samples this shows
    what the model really does, where lines through ``model.predict(data)`` would be
    straight. (A model with hidden states, ``n_augment > 0``, starts them at zero here,
    as ``predict(t=..., x0=...)`` does.)

    Parameters
    ----------
    model : fitted sysid estimator
    data : Trajectories (or data :func:`sysid.as_trajectories` reads without options)
    n_points : int, default 200
    x0 : array (n_trajectories, n_states), optional
        Initial states; by default the ones ``model.predict(data)`` uses.

    Returns
    -------
    Trajectories
        Same names, inputs on the dense grid, states predicted (NaN where the
        simulation failed).

    Examples
    --------
    >>> from sysid.datasets import simulate
    >>> from sysid import SINDy
    >>> data = simulate("lotka_volterra", n_trajectories=1, n_samples=200, noise=0.0, irregular=False)
    >>> dense = predict_dense(SINDy().fit(data), data, n_points=100)
    >>> dense[0].n_times >= 100, bool(abs(dense[0].t[-1] - data[0].t[-1]) < 1e-12)
    (True, True)
    """
    data = as_data(data)
    if isinstance(n_points, bool) or not isinstance(n_points, int | np.integer) or n_points < 2:
        raise ConfigError(f"n_points must be an integer >= 2, got {n_points!r}.")
    if not callable(getattr(model, "predict", None)):
        raise ConfigError(f"model must be a fitted estimator with predict, got {type(model).__name__}.")
    if x0 is None:
        starts = np.array([np.asarray(tr.y, dtype=float)[0] for tr in model.predict(data)])
    else:
        starts = np.asarray(x0, dtype=float).reshape(len(data), data.n_states)
    how = getattr(model, "input_interpolation", "linear")
    pieces: list[Any] = []
    ys: list[np.ndarray] = []
    for tr, start in zip(data, starts):
        grid = np.union1d(np.linspace(tr.t[0], tr.t[-1], int(n_points)), tr.t)
        observed = np.full((grid.size, data.n_states), np.nan)
        observed[np.searchsorted(grid, tr.t)] = tr.y
        u = None if tr.u is None else _inputs_on(grid, tr.t, np.asarray(tr.u, dtype=float), how)
        pieces.append(tr.replace(t=grid, y=observed, u=u))
        if np.all(np.isfinite(start)):
            ys.append(np.asarray(model.predict(t=grid, x0=start, u=u), dtype=float).reshape(grid.size, -1))
        else:
            ys.append(np.full(observed.shape, np.nan))
    return data.subset(pieces).with_states(ys)


def is_model(prediction: Any) -> bool:
    return not isinstance(prediction, Trajectories | np.ndarray | list | tuple) and callable(
        getattr(prediction, "predict", None)
    )


def prediction_curves(data: Trajectories, prediction: Any, what: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(times, states) per trajectory of ``data`` for a prediction given in any supported form."""
    if isinstance(prediction, Trajectories):
        if len(prediction) != len(data):
            raise DataError(f"{what} has {len(prediction)} trajectories, the data has {len(data)}.")
        return [(tr.t, np.asarray(tr.y, dtype=float)) for tr in prediction]
    if isinstance(prediction, np.ndarray) and prediction.ndim == 2:
        prediction = [prediction]
    arrays = list(prediction) if isinstance(prediction, list | tuple | np.ndarray) else None
    if arrays is None:
        raise DataError(
            f"{what} must be a fitted model, Trajectories or a list of arrays (n_times, n_states), one per "
            f"trajectory; got {type(prediction).__name__}."
        )
    if len(arrays) != len(data):
        raise DataError(f"{what} has {len(arrays)} arrays, the data has {len(data)} trajectories.")
    out = []
    for tr, arr in zip(data, arrays):
        values = np.asarray(arr, dtype=float)
        if values.ndim == 1 and data.n_states == 1:
            values = values[:, None]
        if values.shape != tr.y.shape:
            raise DataError(
                f"{what}: trajectory {tr.name!r} has shape {values.shape}, expected {tr.y.shape} "
                "(its times by the states); pass Trajectories to plot at other times."
            )
        out.append((tr.t, values))
    return out
