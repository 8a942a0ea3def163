"""Figures of data, predictions, vector fields and comparison tables (matplotlib).

Every function builds and returns a :class:`matplotlib.figure.Figure` without touching
pyplot's global state: nothing is shown and nothing is left open. Save one with
``fig.savefig("file.png")``, or display it in a notebook by leaving it as the cell's
value.

Conventions shared by the figures: measurements are black dots; each model has one
colour (:func:`model_colours`), the same in every figure that gets the same names;
axes carry units, from the data's attributes (``variable_attrs[name]["units"]``,
``attrs["time_units"]``) or from column names ending in a unit (``t_s``, ``u_V``,
``hare_thousands``, ``omega_rad_s``); a legend entry exists only for something drawn.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from sysid.adapters import as_trajectories
from sysid.errors import ConfigError, DataError
from sysid.trajectories import Trajectories

__all__ = ["axis_label", "model_colours", "phase_portrait", "predict_dense", "scores", "trajectories"]

_PALETTE = ("C0", "C1", "C2", "C3", "C4", "C5", "C6", "C8", "C9")  # C7 (grey) is left for annotations
_DATA: dict[str, Any] = {"color": "black", "marker": "o", "markersize": 3.5, "linestyle": "none", "alpha": 0.85}
_HELD_OUT = ("test", "extrapolation")
_HIGHER_IS_BETTER = ("r2",)
_UNIT_SUFFIXES = {
    "rad_s": "rad/s",
    "m_s": "m/s",
    "m_s2": "m/s²",
    "deg_s": "deg/s",
    "rpm": "rpm",
    **{
        u: u
        for u in (
            "s",
            "ms",
            "us",
            "ns",
            "min",
            "h",
            "d",
            "days",
            "years",
            "yr",
            "V",
            "mV",
            "kV",
            "A",
            "mA",
            "W",
            "kW",
            "Hz",
            "kHz",
            "N",
            "Nm",
            "m",
            "mm",
            "cm",
            "um",
            "km",
            "kg",
            "g",
            "rad",
            "deg",
            "K",
            "degC",
            "Pa",
            "kPa",
            "bar",
            "percent",
            "thousands",
            "millions",
            "counts",
        )
    },
}


def _as_data(data: Any) -> Trajectories:
    return data if isinstance(data, Trajectories) else as_trajectories(data)


# -- colours and labels ----------------------------------------------------------------------------
def model_colours(names: Sequence[Any], colors: Mapping[Any, Any] | None = None) -> dict[Any, Any]:
    """One colour per model name, in order (matplotlib's cycle without its grey).

    Figures given the same names in the same order (or the same ``colors`` mapping) use
    the same colour for each model. ``colors`` overrides single names.

    Examples
    --------
    >>> model_colours(["NeuralODE", "SINDy"], {"SINDy": "red"})
    {'NeuralODE': 'C0', 'SINDy': 'red'}
    """
    given = dict(colors or {})
    return {name: given.get(name, _PALETTE[i % len(_PALETTE)]) for i, name in enumerate(names)}


def _split_unit(name: str) -> tuple[str, str | None]:
    """("omega", "rad/s") from "omega_rad_s"; (name, None) when no unit suffix is recognised."""
    for size in (2, 1):
        parts = name.rsplit("_", size)
        if len(parts) == size + 1 and parts[0]:
            suffix = "_".join(parts[1:])
            if suffix in _UNIT_SUFFIXES:
                return parts[0], _UNIT_SUFFIXES[suffix]
    return name, None


def axis_label(data: Trajectories, name: Any = None) -> str:
    """``"name [units]"`` for a state or input of ``data`` (or its time axis with ``name=None``).

    Units come from ``data.variable_attrs[name]["units"]`` (the time axis:
    ``attrs["time_units"]`` or the time coordinate's ``units``), else from a unit at the
    end of the column name (``t_s`` -> ``t [s]``, ``omega_rad_s`` -> ``omega [rad/s]``),
    else none is shown.

    Examples
    --------
    >>> import numpy as np
    >>> data = Trajectories.from_arrays(np.arange(3.0), np.ones((3, 2)), state_names=["theta_rad", "hare"])
    >>> data.variable_attrs["hare"] = {"units": "thousands of pelts"}
    >>> axis_label(data, "theta_rad"), axis_label(data, "hare"), axis_label(data)
    ('theta [rad]', 'hare [thousands of pelts]', 'time')
    """
    if name is None:
        label = str(data.source.get("time") or "time")
        units = data.attrs.get("time_units") or (data.source.get("time_attrs") or {}).get("units")
        if units is None and data.time_kind != "float":
            units = "s since the start"
    else:
        label = str(name)
        units = (data.variable_attrs.get(name) or {}).get("units")
    if units:
        return f"{label} [{units}]"
    base, suffix = _split_unit(label)
    return f"{base} [{suffix}]" if suffix else label


# -- dense predictions -----------------------------------------------------------------------------
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
    data = _as_data(data)
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


def _is_model(prediction: Any) -> bool:
    return not isinstance(prediction, Trajectories | np.ndarray | list | tuple) and callable(
        getattr(prediction, "predict", None)
    )


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


# -- trajectories ----------------------------------------------------------------------------------
def _window(data: Trajectories, j: int) -> tuple[float, float]:
    """The y range a prediction may use before it counts as diverged: the data's range, widened by 50%."""
    values = np.concatenate([tr.y[:, j] for tr in data])
    values = values[np.isfinite(values)]
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    pad = 0.5 * (high - low if high > low else max(abs(high), 1.0))
    return low - pad, high + pad


def _diverged_at(t: np.ndarray, y: np.ndarray, window: tuple[float, float]) -> tuple[float, float] | None:
    """Where a curve first leaves ``window`` (clamped to it), else where it stops for good (its last finite point).

    NaN between finite values (a prediction at the data's times, NaN where the data are
    missing) is not a failure; a NaN tail (a simulation that stopped) is.
    """
    low, high = window
    finite = np.isfinite(y)
    outside = finite & ((y < low) | (y > high))
    if outside.any():
        k = int(np.argmax(outside))
        return float(t[k]), float(np.clip(y[k], low, high))
    if not finite.any():
        return float(t[0]), 0.5 * (low + high)
    if not finite[-1]:
        k = int(np.flatnonzero(finite)[-1])
        return float(t[k]), float(y[k])
    return None


def trajectories(
    data: Any,
    *predictions: Any,
    labels: Sequence[str] | None = None,
    bands: Sequence[Any] | None = None,
    colors: Mapping[str, Any] | None = None,
    held_out_from: float | Sequence[float] | None = None,
    n_points: int = 200,
) -> Figure:
    """Measurements as dots and model predictions as curves, one row of panels per state.

    Parameters
    ----------
    data : Trajectories (or data :func:`sysid.as_trajectories` reads without options)
        Every observed sample is a black dot at its own (possibly irregular) time;
        missing entries are simply absent. Up to four trajectories get a column of
        panels each; more share one column.
    *predictions : fitted model, Trajectories, or list of arrays (n_times_i, n_states)
        A fitted model is simulated on a dense grid (:func:`predict_dense` with
        ``n_points``), so curves between irregular samples are the model's, not straight
        lines. Trajectories are drawn at their own times; arrays at the data's times.
        Each prediction has one colour in every panel.
    labels : list of str, optional
        Legend labels of the predictions (default: a model's class name).
    bands : list, optional
        One entry per prediction: None, or ``(lower, upper)`` in the same form as the
        prediction (not a model), drawn as a shaded band.
    colors : dict label -> colour, optional
        Overrides :func:`model_colours` of the labels.
    held_out_from : float or list of float, optional
        Time (one per trajectory, or one for all) after which the data were held out
        from fitting: drawn as a dotted line and a shaded span.
    n_points : int, default 200
        Grid size for predictions given as models.

    Returns
    -------
    matplotlib.figure.Figure
        Axes by rows (states) then columns (trajectories). In each, the first line is the
        observations (label ``"observed"``), then one line per prediction (its label).
        A prediction that diverges (leaves the data's range widened by half of it, or
        fails) does not stretch the axis: the axis keeps to the data and the predictions
        inside that range, and an "x" marks where it left (label ``"diverged"``).

    Examples
    --------
    >>> from sysid.datasets import simulate
    >>> data = simulate("lotka_volterra", n_trajectories=2, n_samples=30)
    >>> fig = trajectories(data, [tr.y for tr in data], labels=["itself"])
    >>> len(fig.axes), [line.get_label() for line in fig.axes[0].lines]
    (4, ['observed', 'itself'])
    """
    data = _as_data(data)
    if labels is None:
        labels = [type(p).__name__ if _is_model(p) else f"prediction {k + 1}" for k, p in enumerate(predictions)]
    labels = [str(label) for label in labels]
    if len(labels) != len(predictions):
        raise ConfigError(f"got {len(labels)} labels for {len(predictions)} predictions.")
    if bands is not None and len(bands) != len(predictions):
        raise ConfigError(f"got {len(bands)} bands for {len(predictions)} predictions; use None where there is none.")
    curves = [
        _prediction_curves(data, predict_dense(p, data, n_points) if _is_model(p) else p, f"prediction {k + 1}")
        for k, p in enumerate(predictions)
    ]
    shaded: list[Any] = []
    for k, band in enumerate(bands or [None] * len(predictions)):
        if band is None:
            shaded.append(None)
            continue
        try:
            lower, upper = band
        except (TypeError, ValueError):
            raise ConfigError(f"bands[{k}] must be None or a pair (lower, upper).") from None
        shaded.append(
            (_prediction_curves(data, lower, f"bands[{k}] lower"), _prediction_curves(data, upper, f"bands[{k}] upper"))
        )
    cuts = None
    if held_out_from is not None:
        cuts = np.broadcast_to(np.asarray(held_out_from, dtype=float).ravel(), (len(data),))
    palette = model_colours(labels, colors)
    n_cols = len(data) if len(data) <= 4 else 1
    columns = [[i] for i in range(len(data))] if n_cols > 1 else [list(range(len(data)))]
    fig = Figure(figsize=(max(8.0, 4.0 * n_cols + 1.0), 2.3 * data.n_states + 0.9), layout="constrained")
    grid = fig.subplots(data.n_states, n_cols, sharex="col", sharey="row", squeeze=False)
    marked = False
    for j, state in enumerate(data.state_names):
        window = _window(data, j)
        inside: list[np.ndarray] = []
        exits: list[tuple[Any, float, float, Any]] = []
        for c, members in enumerate(columns):
            ax = grid[j, c]
            t_obs = np.concatenate([data[i].t[~np.isnan(data[i].y[:, j])] for i in members])
            y_obs = np.concatenate([data[i].y[~np.isnan(data[i].y[:, j]), j] for i in members])
            ax.plot(t_obs, y_obs, label="observed", **_DATA)
            inside.append(y_obs)
            for k, series in enumerate(curves):
                for n, i in enumerate(members):
                    t, values = series[i]
                    ax.plot(
                        t,
                        values[:, j],
                        color=palette[labels[k]],
                        linewidth=1.5,
                        label=labels[k] if n == 0 else "_nolegend_",
                    )
                    y = values[:, j]
                    inside.append(y[np.isfinite(y) & (y >= window[0]) & (y <= window[1])])
                    if shaded[k] is not None:
                        (tl, low), (_, high) = shaded[k][0][i], shaded[k][1][i]
                        ax.fill_between(tl, low[:, j], high[:, j], color=palette[labels[k]], alpha=0.2, linewidth=0)
            for k, series in enumerate(curves):
                for i in members:
                    t, y = series[i][0], series[i][1][:, j]
                    if t.shape == data[i].t.shape and np.array_equal(t, data[i].t):  # NaN where the data are
                        seen = ~np.isnan(data[i].y[:, j])  # missing is no failure
                        t, y = t[seen], y[seen]
                    where = _diverged_at(t, y, window)
                    if where is not None:
                        exits.append((ax, *where, palette[labels[k]]))
            if cuts is not None:
                for i in members:
                    ax.axvspan(cuts[i], data[i].t[-1], color="0.9", zorder=0, linewidth=0)
                    ax.axvline(cuts[i], color="0.45", linestyle=":", linewidth=1.0)
            if j == 0 and n_cols > 1:
                ax.set_title(str(data[members[0]].name), fontsize="medium")
            if c == 0:
                ax.set_ylabel(axis_label(data, state))
        if exits:  # the axis keeps to the data and what stays near it; an X marks where a curve left
            values = np.concatenate([*inside, [e[2] for e in exits]])
            bottom, top = float(values.min()), float(values.max())
            pad = 0.06 * (top - bottom if top > bottom else 1.0)
            grid[j, 0].set_ylim(bottom - pad, top + pad)
            for ax, t_exit, y_exit, colour in exits:
                ax.plot(
                    t_exit,
                    y_exit,
                    linestyle="none",
                    marker="X",
                    markersize=9,
                    color=colour,
                    markeredgecolor="black",
                    label="diverged",
                    zorder=5,
                    clip_on=False,
                )
            marked = True
    for ax in grid[-1]:
        ax.set_xlabel(axis_label(data))
    handles: list[Any] = [Line2D([], [], label="observed", **_DATA)]
    handles += [Line2D([], [], color=palette[label], linewidth=1.5, label=label) for label in labels]
    if cuts is not None:
        handles.append(Patch(facecolor="0.9", edgecolor="0.45", linestyle=":", label="held out from fitting"))
    if marked:
        handles.append(
            Line2D(
                [],
                [],
                linestyle="none",
                marker="X",
                markersize=8,
                color="0.6",
                markeredgecolor="black",
                label="diverged (left the plot or failed)",
            )
        )
    fig.legend(handles=handles, loc="outside upper center", fontsize="small", ncols=min(len(handles), 6))
    return fig


# -- phase portraits -------------------------------------------------------------------------------
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


def phase_portrait(
    model: Any, data: Any, truth: Any = None, grid: int = 30, color: Any = "C0", title: str | None = None
) -> Figure:
    """The model's vector field as streamlines over the data's range, with the data on top.

    Parameters
    ----------
    model : fitted estimator with ``vector_field(x, t, u)``
    data : Trajectories
        Sets the plotted range (observed range of the first two states plus 10%) and
        is drawn as black dots, one line per trajectory. Further states are held at
        their mean, inputs at their mean.
    truth : callable ``rhs(t, x)`` or SystemTruth, optional
        The true field, drawn in grey in a second panel beside the model's.
    grid : int, default 30
        Grid points per axis.
    color : matplotlib colour, default "C0"
        Of the model's streamlines (pass the model's colour from :func:`model_colours`).
    title : str, optional
        Of the model's panel; default its class name.

    Returns
    -------
    matplotlib.figure.Figure with one axes (two with ``truth``).

    Examples
    --------
    >>> from sysid.datasets import simulate, truth
    >>> from sysid import SINDy
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
    fields = [(title or type(model).__name__, np.asarray(model.vector_field(points, 0.0, u), dtype=float), color)]
    if truth is not None:
        fields.append(("truth", _truth_field(truth)(points, u), "0.45"))
    fig = Figure(figsize=(5.0 * len(fields), 4.6), layout="constrained")
    axes = fig.subplots(1, len(fields), squeeze=False)[0]
    for ax, (name, values, shade) in zip(axes, fields):
        U = values[:, 0].reshape(X.shape)
        V = values[:, 1].reshape(X.shape)
        finite = np.isfinite(U) & np.isfinite(V)
        ax.streamplot(
            X,
            Y,
            np.where(finite, U, 0.0),
            np.where(finite, V, 0.0),
            color=shade,
            density=1.1,
            linewidth=0.8,
            arrowsize=0.9,
        )
        for n, tr in enumerate(data):
            both = ~np.isnan(tr.y[:, 0]) & ~np.isnan(tr.y[:, 1])
            ax.plot(
                tr.y[both, 0], tr.y[both, 1], label="observed" if n == 0 else "_nolegend_", **{**_DATA, "markersize": 3}
            )
        ax.set_title(name)
        ax.set_xlabel(axis_label(data, data.state_names[0]))
        ax.set_ylabel(axis_label(data, data.state_names[1]))
        ax.set_xlim(xs[0], xs[-1])
        ax.set_ylim(ys[0], ys[-1])
    axes[0].legend(loc="upper right", fontsize="small")
    return fig


# -- comparison bar chart --------------------------------------------------------------------------
def _split_order(splits: Sequence[str]) -> list[str]:
    held = [s for s in _HELD_OUT if s in splits]
    return held + [s for s in splits if s not in held]


def scores(
    table: pd.DataFrame, metric: str = "nrmse", rank: bool = True, colors: Mapping[str, Any] | None = None
) -> Figure:
    """Bar chart of a :func:`sysid.compare` table: one group per estimator, one bar per split.

    Held-out splits ("test", "extrapolation") come first in each group, solid; the
    in-sample split ("train") last, light and hatched. Each estimator keeps its colour
    (:func:`model_colours` in the table's order). A value far beyond the others (more
    than five times the median size, e.g. a diverged model) is drawn up to the axis limit
    and labelled with its value, so it does not flatten the rest.

    Parameters
    ----------
    table : pandas.DataFrame from :func:`sysid.compare`
    metric : str, default "nrmse"
        A numeric column: "rmse", "nrmse", "r2", "coefficient_error", "fit_seconds",
        "n_function_evals". Missing values (a failed estimator) are marked "n/a".
    rank : bool, default True
        Order the estimators best first by the metric on the first held-out split
        (higher is better for "r2", lower for the others); missing values last.
        Without a held-out split the table's order is kept.
    colors : dict estimator -> colour, optional

    Returns
    -------
    matplotlib.figure.Figure with one axes; its ``containers`` hold one bar group per split.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame(
    ...     {"estimator": ["A", "A", "B", "B"], "split": ["train", "test"] * 2, "nrmse": [0.1, 0.4, 0.3, 0.2]}
    ... )
    >>> fig = scores(table)
    >>> [t.get_text() for t in fig.axes[0].get_xticklabels()]  # B is better on held-out data
    ['B', 'A']
    >>> [[float(bar.get_height()) for bar in group] for group in fig.axes[0].containers]
    [[0.2, 0.4], [0.3, 0.1]]
    """
    if not isinstance(table, pd.DataFrame) or not {"estimator", "split"} <= set(table.columns):
        raise ConfigError("table must be the DataFrame returned by sysid.compare (columns estimator, split, ...).")
    numeric = [c for c in table.columns if c not in ("estimator", "split", "error")]
    if metric not in numeric:
        raise ConfigError(f"metric must be one of the table's numeric columns {numeric}, got {metric!r}.")
    original = list(dict.fromkeys(table["estimator"]))
    splits = _split_order(list(dict.fromkeys(table["split"])))
    values = table.pivot_table(index="estimator", columns="split", values=metric, aggfunc="first", dropna=False)
    values = values.reindex(index=original, columns=splits)
    held = next((s for s in _HELD_OUT if s in splits), None)
    estimators = original
    if rank and held is not None:
        key = values[held].astype(float) * (-1.0 if metric in _HIGHER_IS_BETTER else 1.0)
        estimators = list(key.sort_values(na_position="last", kind="stable").index)
        values = values.reindex(index=estimators)
    palette = model_colours(original, colors)
    fig = Figure(figsize=(max(5.5, 0.8 * len(estimators) * max(len(splits), 1) + 2.0), 4.4), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / max(len(splits), 1)
    positions = np.arange(len(estimators))
    finite = values.to_numpy(dtype=float)[np.isfinite(values.to_numpy(dtype=float))]
    typical = float(np.median(np.abs(finite))) if finite.size else 0.0
    inliers = finite[np.abs(finite) <= 5 * typical] if typical > 0 else finite
    top = max(float(inliers.max()), 0.0) * 1.15 if inliers.size else 1.0
    bottom = min(float(inliers.min()), 0.0) * 1.15 if inliers.size else 0.0
    styles: dict[str, dict[str, Any]] = {"train": {"alpha": 0.45, "hatch": "//"}}
    for k, split in enumerate(splits):
        heights = values[split].to_numpy(dtype=float)
        offsets = positions - 0.4 + width * (k + 0.5)
        style = styles.get(split, {"alpha": 1.0, "hatch": None if k == 0 else ".."})
        shown = np.clip(heights, bottom, top) if inliers.size < finite.size else heights
        ax.bar(
            offsets,
            shown,
            width,
            color=[palette[e] for e in estimators],
            edgecolor="black",
            linewidth=0.6,
            label=split,
            **style,
        )
        for x, h, s in zip(offsets, heights, shown):
            if not np.isfinite(h):
                ax.text(x, 0.0, "n/a", ha="center", va="bottom", fontsize="small", rotation=90)
            elif h != s:  # off the scale: a broken bar up to the axis limit, its value written on it
                for level in (0.9, 0.95):
                    ax.plot(
                        [x - 0.45 * width, x + 0.45 * width],
                        [s * (level - 0.02), s * (level + 0.02)],
                        color="white",
                        linewidth=2.5,
                        solid_capstyle="butt",
                    )
                ax.text(
                    x,
                    s,
                    f"{'↓' if h < 0 else '↑'} {h:.3g}",
                    ha="center",
                    va="top" if h < 0 else "bottom",
                    fontsize="small",
                    fontweight="bold",
                )
    if inliers.size < finite.size:
        ax.set_ylim(bottom - 0.05 * (top - bottom), top + 0.08 * (top - bottom))
    ax.set_xticks(positions, [str(e).replace(" (", "\n(") if len(str(e)) > 14 else str(e) for e in estimators])
    ax.set_xlim(-0.6, len(estimators) - 0.4)
    direction = "higher is better" if metric in _HIGHER_IS_BETTER else "lower is better"
    ax.set_ylabel(f"{metric} ({direction})")
    if rank and held is not None:
        ax.set_title(f"ranked by {metric} on held-out data ({held})", fontsize="medium")
    ax.axhline(0.0, color="0.5", linewidth=0.6)
    handles = [
        Patch(
            facecolor="0.55",
            edgecolor="black",
            label=f"{s} ({'in-sample' if s == 'train' else 'held out'})",
            **styles.get(s, {"hatch": None if k == 0 else ".."}),
        )
        for k, s in enumerate(splits)
    ]
    fig.legend(handles=handles, loc="outside upper center", fontsize="small", ncols=len(handles))
    return fig
