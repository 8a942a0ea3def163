"""Figures of data, predictions, vector fields and comparison tables (matplotlib).

Every function builds and returns a :class:`matplotlib.figure.Figure` without touching
pyplot's global state: nothing is shown and nothing is left open. Save one with
``fig.savefig("file.png")``, or display it in a notebook by leaving it as the cell's
value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from sysid.adapters import as_trajectories
from sysid.errors import ConfigError, DataError
from sysid.trajectories import Trajectories

__all__ = ["compare", "phase_portrait", "trajectories"]

_STYLES = ("-", "--", ":", "-.")


def _colour(i: int) -> str:
    return f"C{i % 10}"


def _as_data(data: Any) -> Trajectories:
    return data if isinstance(data, Trajectories) else as_trajectories(data)


def _prediction_curves(data: Trajectories, prediction: Any, what: str) -> list[tuple[np.ndarray, np.ndarray]]:
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
            f"{what} must be Trajectories or a list of arrays (n_times, n_states), one per trajectory; "
            f"got {type(prediction).__name__}."
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


def trajectories(
    data: Any,
    *predictions: Any,
    labels: Sequence[str] | None = None,
    bands: Sequence[Any] | None = None,
) -> Figure:
    """Measurements as dots and model predictions as lines, one panel per state.

    Parameters
    ----------
    data : Trajectories (or data :func:`sysid.as_trajectories` reads without options)
        Each trajectory gets its own colour; every observed sample is a dot at its
        own (possibly irregular) time; missing entries are simply absent.
    *predictions : Trajectories or list of arrays (n_times_i, n_states)
        One or more models' predictions: Trajectories (plotted at their own times, e.g.
        a dense grid) or arrays at the data's times. Each prediction gets a line style.
    labels : list of str, optional
        Legend labels of the predictions.
    bands : list, optional
        One entry per prediction: None, or ``(lower, upper)`` in the same form as the
        prediction, drawn as a shaded band.

    Returns
    -------
    matplotlib.figure.Figure with one axes per state; each holds, per trajectory, one
    marker-only line of observations then one line per prediction.

    Examples
    --------
    >>> from sysid.datasets import simulate
    >>> data = simulate("lotka_volterra", n_trajectories=2, n_samples=30)
    >>> fig = trajectories(data, [tr.y for tr in data], labels=["itself"])
    >>> len(fig.axes), len(fig.axes[0].lines)
    (2, 4)
    """
    data = _as_data(data)
    labels = list(labels) if labels is not None else [f"prediction {k + 1}" for k in range(len(predictions))]
    if len(labels) != len(predictions):
        raise ConfigError(f"got {len(labels)} labels for {len(predictions)} predictions.")
    if bands is not None and len(bands) != len(predictions):
        raise ConfigError(f"got {len(bands)} bands for {len(predictions)} predictions; use None where there is none.")
    curves = [_prediction_curves(data, p, f"prediction {k + 1}") for k, p in enumerate(predictions)]
    shaded = []
    for k, band in enumerate(bands or [None] * len(predictions)):
        if band is None:
            shaded.append(None)
            continue
        try:
            lower, upper = band
        except (TypeError, ValueError):
            raise ConfigError(f"bands[{k}] must be None or a pair (lower, upper).") from None
        shaded.append((_prediction_curves(data, lower, f"bands[{k}] lower"),
                       _prediction_curves(data, upper, f"bands[{k}] upper")))
    fig = Figure(figsize=(8.0, 2.2 * data.n_states + 0.6), layout="constrained")
    axes = fig.subplots(data.n_states, 1, sharex=True, squeeze=False)[:, 0]
    for j, (ax, state) in enumerate(zip(axes, data.state_names)):
        for i, tr in enumerate(data):
            colour = _colour(i)
            seen = ~np.isnan(tr.y[:, j])
            ax.plot(tr.t[seen], tr.y[seen, j], linestyle="none", marker="o", markersize=3.5,
                    color=colour, alpha=0.8)
            for k, series in enumerate(curves):
                t, values = series[i]
                ax.plot(t, values[:, j], linestyle=_STYLES[k % len(_STYLES)], color=colour, linewidth=1.4)
                if shaded[k] is not None:
                    (tl, low), (_, high) = shaded[k][0][i], shaded[k][1][i]
                    ax.fill_between(tl, low[:, j], high[:, j], color=colour, alpha=0.2, linewidth=0)
        units = data.variable_attrs.get(state, {}).get("units")
        ax.set_ylabel(f"{state} [{units}]" if units else str(state))
    axes[-1].set_xlabel("time")
    handles = [Line2D([], [], linestyle="none", marker="o", color=_colour(i), label=str(tr.name))
               for i, tr in enumerate(data)]
    handles.append(Line2D([], [], linestyle="none", marker="o", color="0.4", label="observed"))
    handles += [Line2D([], [], linestyle=_STYLES[k % len(_STYLES)], color="0.2", label=label)
                for k, label in enumerate(labels)]
    fig.legend(handles=handles, loc="outside upper center", fontsize="small", ncols=min(len(handles), 6))
    return fig


def _truth_field(truth: Any) -> Callable[[np.ndarray, np.ndarray | None], np.ndarray]:
    """``field(points, u)`` from a SystemTruth or a callable ``rhs(t, x)``."""
    rhs = getattr(truth, "rhs", truth)
    if not callable(rhs):
        raise ConfigError(
            f"truth must be a callable rhs(t, x) or a sysid.datasets.SystemTruth, got {type(truth).__name__}."
        )
    takes_u = hasattr(truth, "rhs") and bool(getattr(truth, "input_names", ()))

    def field(points: np.ndarray, u: np.ndarray | None) -> np.ndarray:
        extra = (u,) if takes_u else ()
        try:
            values = np.asarray(rhs(0.0, points, *extra), dtype=float)
            if values.shape == points.shape:
                return values
        except Exception:  # noqa: BLE001 - not vectorised: evaluate point by point below
            pass
        return np.array([np.asarray(rhs(0.0, p, *extra), dtype=float).reshape(-1) for p in points])

    return field


def phase_portrait(model: Any, data: Any, truth: Any = None, grid: int = 30) -> Figure:
    """The model's vector field as streamlines over the data's range, with the data on top.

    Parameters
    ----------
    model : fitted estimator with ``vector_field(x, t, u)``
    data : Trajectories
        Sets the plotted range (observed range of the first two states plus 10%) and
        is drawn as dots, one colour per trajectory. Further states are held at their
        mean, inputs at their mean.
    truth : callable ``rhs(t, x)`` or SystemTruth, optional
        The true field, drawn in a second panel beside the model's.
    grid : int, default 30
        Grid points per axis.

    Returns
    -------
    matplotlib.figure.Figure with one axes (two with ``truth``).

    Examples
    --------
    >>> from sysid.datasets import simulate, truth
    >>> from sysid.estimators._sindy import SINDy
    >>> data = simulate("lotka_volterra", noise=0.0, irregular=False, n_samples=200)
    >>> fig = phase_portrait(SINDy().fit(data), data, truth=truth("lotka_volterra"), grid=15)
    >>> [ax.get_title() for ax in fig.axes]
    ['SINDy', 'truth']
    """
    data = _as_data(data)
    if data.n_states < 2:
        raise DataError(f"a phase portrait needs at least two states, the data has {list(data.state_names)}.")
    if isinstance(grid, bool) or not isinstance(grid, int | np.integer) or grid < 2:
        raise ConfigError(f"grid must be an integer >= 2, got {grid!r}.")
    if not hasattr(model, "vector_field"):
        raise ConfigError(f"model must have a vector_field(x, t, u) method, got {type(model).__name__}.")
    low, high = data.observed_range()
    pad = 0.1 * np.where(high > low, high - low, 1.0)
    xs = np.linspace(low[0] - pad[0], high[0] + pad[0], int(grid))
    ys = np.linspace(low[1] - pad[1], high[1] + pad[1], int(grid))
    X, Y = np.meshgrid(xs, ys)
    points = np.tile(np.nanmean(np.concatenate([tr.y for tr in data]), axis=0), (X.size, 1))
    points[:, 0], points[:, 1] = X.ravel(), Y.ravel()
    u = np.concatenate([tr.u for tr in data]).mean(axis=0) if data.n_inputs else None
    fields = [(type(model).__name__, np.asarray(model.vector_field(points, 0.0, u), dtype=float))]
    if truth is not None:
        fields.append(("truth", _truth_field(truth)(points, u)))
    fig = Figure(figsize=(5.0 * len(fields), 4.6), layout="constrained")
    axes = fig.subplots(1, len(fields), squeeze=False)[0]
    for ax, (title, values) in zip(axes, fields):
        U = values[:, 0].reshape(X.shape)
        V = values[:, 1].reshape(X.shape)
        finite = np.isfinite(U) & np.isfinite(V)
        ax.streamplot(X, Y, np.where(finite, U, 0.0), np.where(finite, V, 0.0),
                      color="0.55", density=1.1, linewidth=0.8, arrowsize=0.9)
        for i, tr in enumerate(data):
            both = ~np.isnan(tr.y[:, 0]) & ~np.isnan(tr.y[:, 1])
            ax.plot(tr.y[both, 0], tr.y[both, 1], linestyle="none", marker="o", markersize=3,
                    color=_colour(i), label=str(tr.name))
        ax.set_title(title)
        ax.set_xlabel(str(data.state_names[0]))
        ax.set_ylabel(str(data.state_names[1]))
        ax.set_xlim(xs[0], xs[-1])
        ax.set_ylim(ys[0], ys[-1])
    axes[0].legend(loc="upper right", fontsize="small")
    return fig


def compare(table: pd.DataFrame, metric: str = "rmse") -> Figure:
    """Grouped bar chart of a :func:`sysid.compare` table: one group per estimator, one bar per split.

    Parameters
    ----------
    table : pandas.DataFrame from :func:`sysid.compare`
    metric : str, default "rmse"
        A numeric column: "rmse", "nrmse", "r2", "coefficient_error", "fit_seconds",
        "n_function_evals". Missing values (a failed estimator) are marked "n/a".

    Returns
    -------
    matplotlib.figure.Figure with one axes; its ``containers`` hold one bar group per split.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"estimator": ["A", "A", "B", "B"], "split": ["train", "test"] * 2,
    ...                       "rmse": [0.1, 0.2, 0.3, float("nan")]})
    >>> fig = compare(table)
    >>> [[float(bar.get_height()) for bar in group] for group in fig.axes[0].containers]
    [[0.1, 0.3], [0.2, nan]]
    """
    if not isinstance(table, pd.DataFrame) or not {"estimator", "split"} <= set(table.columns):
        raise ConfigError("table must be the DataFrame returned by sysid.compare (columns estimator, split, ...).")
    numeric = [c for c in table.columns if c not in ("estimator", "split", "error")]
    if metric not in numeric:
        raise ConfigError(f"metric must be one of the table's numeric columns {numeric}, got {metric!r}.")
    estimators = list(dict.fromkeys(table["estimator"]))
    splits = list(dict.fromkeys(table["split"]))
    values = table.pivot_table(index="estimator", columns="split", values=metric, aggfunc="first", dropna=False)
    values = values.reindex(index=estimators, columns=splits)
    fig = Figure(figsize=(max(5.0, 1.3 * len(estimators) * max(len(splits), 1) + 1.5), 4.2), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / max(len(splits), 1)
    positions = np.arange(len(estimators))
    for k, split in enumerate(splits):
        heights = values[split].to_numpy(dtype=float)
        offsets = positions - 0.4 + width * (k + 0.5)
        ax.bar(offsets, heights, width, label=split, color=_colour(k))
        for x, h in zip(offsets, heights):
            if not np.isfinite(h):
                ax.text(x, 0.0, "n/a", ha="center", va="bottom", fontsize="small", rotation=90)
    ax.set_xticks(positions, [str(e) for e in estimators],
                  rotation=20 if max((len(str(e)) for e in estimators), default=0) > 12 else 0)
    ax.set_ylabel(metric)
    ax.axhline(0.0, color="0.5", linewidth=0.6)
    ax.legend(title="split", fontsize="small")
    return fig
