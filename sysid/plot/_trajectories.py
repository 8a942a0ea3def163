"""Time plots of measured trajectories with the models' predictions, uncertainty bands and divergences."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from sysid.errors import ConfigError
from sysid.plot._dense import is_model, predict_dense, prediction_curves
from sysid.plot._style import DATA_STYLE, as_data, axis_label, model_colours
from sysid.trajectories import Trajectories


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
    data = as_data(data)
    if labels is None:
        labels = [type(p).__name__ if is_model(p) else f"prediction {k + 1}" for k, p in enumerate(predictions)]
    labels = [str(label) for label in labels]
    if len(labels) != len(predictions):
        raise ConfigError(f"got {len(labels)} labels for {len(predictions)} predictions.")
    if bands is not None and len(bands) != len(predictions):
        raise ConfigError(f"got {len(bands)} bands for {len(predictions)} predictions; use None where there is none.")
    curves = [
        prediction_curves(data, predict_dense(p, data, n_points) if is_model(p) else p, f"prediction {k + 1}")
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
            (prediction_curves(data, lower, f"bands[{k}] lower"), prediction_curves(data, upper, f"bands[{k}] upper"))
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
            ax.plot(t_obs, y_obs, label="observed", **DATA_STYLE)
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
    handles: list[Any] = [Line2D([], [], label="observed", **DATA_STYLE)]
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
