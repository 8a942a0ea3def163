"""Figures: the right axes and artists, and the plotted data read back equal to the input."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402

from sysid import plot  # noqa: E402
from sysid.datasets import simulate, truth  # noqa: E402
from sysid.errors import ConfigError, DataError  # noqa: E402
from sysid.estimators._sindy import SINDy  # noqa: E402


@pytest.fixture(scope="module")
def lv():
    return simulate("lotka_volterra", n_trajectories=2, n_samples=40, noise=0.0, irregular=True, missing=0.1)


@pytest.fixture(scope="module")
def lv_model():
    return SINDy().fit(simulate("lotka_volterra", noise=0.0, irregular=False, n_samples=300))


def xy(line):
    x, y = line.get_data()
    return np.asarray(x, dtype=float), np.asarray(y, dtype=float)


def test_trajectories_panels_dots_and_lines(lv):
    first = [tr.y * 1.1 for tr in lv]
    dense = lv.with_states([tr.y * 0.9 for tr in lv])
    fig = plot.trajectories(lv, first, dense, labels=["scaled up", "scaled down"])
    assert len(fig.axes) == 2 and [ax.get_ylabel() for ax in fig.axes] == ["prey", "predator"]
    for j, ax in enumerate(fig.axes):
        assert len(ax.lines) == len(lv) * 3  # per trajectory: observations, then two predictions
        for i, tr in enumerate(lv):
            dots, up, down = ax.lines[3 * i: 3 * i + 3]
            seen = ~np.isnan(tr.y[:, j])
            assert dots.get_linestyle() == "None" and dots.get_marker() == "o"
            assert np.array_equal(xy(dots)[0], tr.t[seen]) and np.array_equal(xy(dots)[1], tr.y[seen, j])
            assert np.array_equal(xy(up)[0], tr.t) and np.allclose(xy(up)[1], first[i][:, j], equal_nan=True)
            assert np.allclose(xy(down)[1], tr.y[:, j] * 0.9, equal_nan=True)
            assert dots.get_color() == up.get_color() == down.get_color() == f"C{i}"
            assert up.get_linestyle() != down.get_linestyle()
    irregular = np.diff(lv[0].t)
    assert irregular.max() > 2 * irregular.min()  # the dots sit at the irregular sample times


def test_trajectories_prediction_on_its_own_time_grid_and_bands(lv, lv_model):
    fine = [np.linspace(tr.t[0], tr.t[-1], 200) for tr in lv]
    predicted = [lv_model.predict(t=t, x0=tr.y[0] if not np.isnan(tr.y[0]).any() else [1.5, 1.0])
                 for t, tr in zip(fine, lv)]
    from sysid import Trajectories

    grid = Trajectories.from_arrays(fine, predicted, state_names=list(lv.state_names), names=lv.names)
    lower = grid.with_states([p - 0.2 for p in predicted])
    upper = grid.with_states([p + 0.2 for p in predicted])
    fig = plot.trajectories(lv, grid, bands=[(lower, upper)])
    ax = fig.axes[0]
    assert np.array_equal(xy(ax.lines[1])[0], fine[0]) and np.array_equal(xy(ax.lines[1])[1], predicted[0][:, 0])
    assert sum(isinstance(c, PolyCollection) for c in ax.collections) == len(lv)


def test_trajectories_input_errors(lv):
    with pytest.raises(DataError, match=r"trajectory 'run0' has shape \(3, 2\), expected \(40, 2\)"):
        plot.trajectories(lv, [np.zeros((3, 2)), np.zeros((40, 2))])
    with pytest.raises(ConfigError, match="got 2 labels for 1 predictions"):
        plot.trajectories(lv, [tr.y for tr in lv], labels=["a", "b"])


def test_phase_portrait_with_truth(lv, lv_model):
    fig = plot.phase_portrait(lv_model, lv, truth=truth("lotka_volterra"), grid=12)
    assert len(fig.axes) == 2 and [ax.get_title() for ax in fig.axes] == ["SINDy", "truth"]
    for ax in fig.axes:
        assert ax.collections, "streamplot draws line collections"
        assert len(ax.lines) == len(lv)
        for line, tr in zip(ax.lines, lv):
            both = ~np.isnan(tr.y).any(axis=1)
            assert np.array_equal(xy(line)[0], tr.y[both, 0]) and np.array_equal(xy(line)[1], tr.y[both, 1])
        assert ax.get_xlabel() == "prey" and ax.get_ylabel() == "predator"
    low, high = lv.observed_range()
    assert fig.axes[0].get_xlim()[0] < low[0] and fig.axes[0].get_xlim()[1] > high[0]


def test_phase_portrait_callable_truth_and_higher_dimensions():
    lorenz = simulate("lorenz", n_trajectories=1, n_samples=200, noise=0.0, irregular=False)
    model = SINDy().fit(lorenz)
    rhs = truth("lorenz").rhs
    fig = plot.phase_portrait(model, lorenz, truth=lambda t, x: rhs(t, x), grid=10)
    assert len(fig.axes) == 2 and fig.axes[0].get_xlabel() == "x" and fig.axes[0].get_ylabel() == "y"
    single = plot.phase_portrait(model, lorenz, grid=10)
    assert len(single.axes) == 1


def test_phase_portrait_needs_two_states():
    one = simulate("lotka_volterra", n_trajectories=1, n_samples=20, noise=0.0)
    one = one.with_states([tr.y[:, :1] for tr in one], ["prey"])
    with pytest.raises(DataError, match="at least two states"):
        plot.phase_portrait(object(), one)


def test_compare_bars_equal_the_table():
    table = pd.DataFrame({
        "estimator": ["A", "A", "A", "B", "B", "B"],
        "split": ["train", "test", "extrapolation"] * 2,
        "rmse": [0.1, 0.2, 0.3, 0.4, np.nan, 0.6],
        "r2": [0.9, 0.8, 0.7, 0.6, np.nan, 0.4],
        "error": [None] * 4 + ["boom", None],
    })
    fig = plot.compare(table, metric="r2")
    ax = fig.axes[0]
    assert len(fig.axes) == 1 and len(ax.containers) == 3
    heights = [[bar.get_height() for bar in group] for group in ax.containers]
    assert np.allclose(heights, [[0.9, 0.6], [0.8, np.nan], [0.7, 0.4]], equal_nan=True)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["A", "B"] and ax.get_ylabel() == "r2"
    assert [t.get_text() for t in ax.texts] == ["n/a"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "test", "extrapolation"]
    with pytest.raises(ConfigError, match=r"metric must be one of the table's numeric columns \['rmse', 'r2'\]"):
        plot.compare(table, metric="accuracy")


def test_no_pyplot_figures_are_left_open(lv, lv_model):
    plt.close("all")
    plot.trajectories(lv)
    plot.phase_portrait(lv_model, lv, grid=5)
    assert plt.get_fignums() == []
