"""Phase portraits: two states against each other, over the vector fields of the models (and a truth)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from sysid.errors import ConfigError, DataError
from sysid.plot._style import DATA_STYLE, as_data, axis_label


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
    data = as_data(data)
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
                tr.y[both, 0],
                tr.y[both, 1],
                label="observed" if n == 0 else "_nolegend_",
                **{**DATA_STYLE, "markersize": 3},
            )
        ax.set_title(name)
        ax.set_xlabel(axis_label(data, data.state_names[0]))
        ax.set_ylabel(axis_label(data, data.state_names[1]))
        ax.set_xlim(xs[0], xs[-1])
        ax.set_ylim(ys[0], ys[-1])
    axes[0].legend(loc="upper right", fontsize="small")
    return fig
