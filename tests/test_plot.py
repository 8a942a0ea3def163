"""Figures: the right axes and artists, one colour per model, units, dense curves, divergence kept off the scale."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgba

from sysid import SINDy, Trajectories, plot
from sysid.datasets import simulate, truth
from sysid.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def lv():
    return simulate("lotka_volterra", n_trajectories=2, n_samples=40, noise=0.0, irregular=True, missing=0.1)


@pytest.fixture(scope="module")
def lv_model():
    return SINDy().fit(simulate("lotka_volterra", noise=0.0, irregular=False, n_samples=300))


def xy(line):
    x, y = line.get_data()
    return np.asarray(x, dtype=float), np.asarray(y, dtype=float)


def legend_texts(fig):
    return [t.get_text() for t in fig.legends[0].get_texts()]


def test_trajectories_a_column_per_trajectory_black_dots_and_one_colour_per_model(lv):
    first = [tr.y * 1.1 for tr in lv]
    dense = lv.with_states([tr.y * 0.9 for tr in lv])
    fig = plot.trajectories(lv, first, dense, labels=["scaled up", "scaled down"])
    assert len(fig.axes) == 4  # rows: states, columns: trajectories
    for n, ax in enumerate(fig.axes):
        j, i = divmod(n, len(lv))
        tr = lv[i]
        dots, up, down = ax.lines
        seen = ~np.isnan(tr.y[:, j])
        assert dots.get_linestyle() == "None" and dots.get_marker() == "o" and dots.get_color() == "black"
        assert np.array_equal(xy(dots)[0], tr.t[seen]) and np.array_equal(xy(dots)[1], tr.y[seen, j])
        assert np.array_equal(xy(up)[0], tr.t) and np.allclose(xy(up)[1], first[i][:, j], equal_nan=True)
        assert np.allclose(xy(down)[1], tr.y[:, j] * 0.9, equal_nan=True)
        assert (up.get_color(), down.get_color()) == ("C0", "C1")  # per model, the same in every panel
        assert [line.get_label() for line in ax.lines] == ["observed", "scaled up", "scaled down"]
    assert [ax.get_title() for ax in fig.axes[:2]] == ["run0", "run1"]
    assert [fig.axes[0].get_ylabel(), fig.axes[2].get_ylabel()] == ["prey", "predator"]
    assert fig.axes[-1].get_xlabel() == "t"
    assert legend_texts(fig) == ["observed", "scaled up", "scaled down"]  # every entry is drawn


def test_many_trajectories_share_one_column(lv):
    many = simulate("lotka_volterra", n_trajectories=5, n_samples=20, noise=0.0)
    fig = plot.trajectories(many, [tr.y for tr in many], colors={"prediction 1": "red"})
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 1 + 5
    assert {line.get_color() for line in fig.axes[0].lines[1:]} == {"red"}


def test_units_from_attributes_and_column_names():
    t = np.linspace(0.0, 1.0, 6)
    data = Trajectories.from_arrays(t, np.ones((6, 2)), state_names=["theta_rad", "omega_rad_s"])
    data.variable_attrs["theta_rad"] = {"units": "radian"}
    data.attrs["time_units"] = "years since 1900"
    fig = plot.trajectories(data)
    assert [ax.get_ylabel() for ax in fig.axes] == ["theta_rad [radian]", "omega [rad/s]"]
    assert fig.axes[-1].get_xlabel() == "time [years since 1900]"
    frame = pd.DataFrame({"t_s": t, "u_V": np.sin(t), "hare_thousands": np.exp(t), "vir": t})
    data = Trajectories.from_arrays(t, frame[["hare_thousands", "vir"]].to_numpy(), state_names=["hare_thousands",
                                                                                                  "vir"])
    data.source["time"] = "t_s"
    assert [plot.axis_label(data, "hare_thousands"), plot.axis_label(data, "vir"), plot.axis_label(data)] == [
        "hare [thousands]", "vir", "t [s]"]


def test_a_model_is_drawn_as_a_dense_curve_through_its_predictions(lv, lv_model):
    fig = plot.trajectories(lv, lv_model, n_points=300)
    curve = fig.axes[0].lines[1]
    t, y = xy(curve)
    assert curve.get_label() == "SINDy" and t.size >= 300 and np.isin(lv[0].t, t).all()
    at_samples = lv_model.predict(lv)[0].y[:, 0]
    np.testing.assert_allclose(y[np.isin(t, lv[0].t)], at_samples, rtol=1e-4, atol=1e-4)


def test_predict_dense_uses_the_inputs_between_samples():
    data = simulate("mass_spring_damper", n_trajectories=1, n_samples=60, noise=0.0, random_state=1)
    model = SINDy(threshold=0.05).fit(data)
    dense = plot.predict_dense(model, data, n_points=400)
    tr, fine = data[0], dense[0]
    on_samples = np.isin(fine.t, tr.t)
    assert fine.t.size >= 400 and on_samples.sum() == tr.n_times
    np.testing.assert_allclose(fine.u[:, 0], np.interp(fine.t, tr.t, tr.u[:, 0]))
    np.testing.assert_allclose(fine.y[on_samples], model.predict(data)[0].y, rtol=1e-4, atol=1e-4)


def test_predict_dense_holds_inputs_for_zero_order_hold_models():
    class Recorder:
        input_interpolation = "zoh"

        def predict(self, X=None, t=None, x0=None, u=None):
            if X is not None:
                return X
            self.u = u
            return np.zeros((len(t), 1))

    t = np.array([0.0, 1.0, 3.0])
    data = Trajectories.from_arrays(t, np.ones((3, 1)), u=np.array([[0.0], [10.0], [20.0]]))
    recorder = Recorder()
    dense = plot.predict_dense(recorder, data, n_points=7)  # grid 0, 0.5, 1, 1.5, ... 3
    assert dense[0].t.tolist() == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    assert recorder.u[:, 0].tolist() == [0.0, 0.0, 10.0, 10.0, 10.0, 10.0, 20.0]


def test_diverged_predictions_are_marked_and_do_not_set_the_axis_range(lv):
    blown = []
    for tr in lv:
        y = tr.y.copy()
        y[25:] *= np.exp(np.arange(tr.n_times - 25))[:, None]  # leaves for 1e6 x the data
        blown.append(y)
    failed = [np.where(np.arange(tr.n_times)[:, None] >= 30, np.nan, tr.y) for tr in lv]
    fig = plot.trajectories(lv, blown, failed, labels=["blows up", "fails"], held_out_from=[5.0, 6.0])
    ax = fig.axes[0]
    low, high = lv.observed_range()[0][0], lv.observed_range()[1][0]
    assert ax.get_ylim()[1] < high + 0.6 * (high - low)  # at most half the data's range beyond it, not 1e6
    marks = [line for line in ax.lines if line.get_label() == "diverged"]
    assert len(marks) == 2 and {m.get_color() for m in marks} == {"C0", "C1"}
    failed_mark = next(m for m in marks if m.get_color() == "C1")
    last = max(k for k in range(30) if not np.isnan(lv[0].y[k, 0]))  # the last point the simulation reached
    assert xy(failed_mark)[0][0] == lv[0].t[last] and xy(failed_mark)[1][0] == pytest.approx(lv[0].y[last, 0])
    assert legend_texts(fig) == ["observed", "blows up", "fails", "held out from fitting",
                                 "diverged (left the plot or failed)"]
    assert any(p.get_x() == 5.0 for p in ax.patches)  # the held-out span of run0
    quiet = plot.trajectories(lv, [tr.y for tr in lv])
    assert "diverged (left the plot or failed)" not in legend_texts(quiet) and len(quiet.legends[0].get_texts()) == 2


def test_trajectories_prediction_on_its_own_time_grid_and_bands(lv, lv_model):
    fine = [np.linspace(tr.t[0], tr.t[-1], 200) for tr in lv]
    predicted = [lv_model.predict(t=t, x0=tr.y[0] if not np.isnan(tr.y[0]).any() else [1.5, 1.0])
                 for t, tr in zip(fine, lv)]
    grid = Trajectories.from_arrays(fine, predicted, state_names=list(lv.state_names), names=lv.names)
    lower = grid.with_states([p - 0.2 for p in predicted])
    upper = grid.with_states([p + 0.2 for p in predicted])
    fig = plot.trajectories(lv, grid, bands=[(lower, upper)])
    ax = fig.axes[0]
    assert np.array_equal(xy(ax.lines[1])[0], fine[0]) and np.array_equal(xy(ax.lines[1])[1], predicted[0][:, 0])
    assert sum(isinstance(c, PolyCollection) for c in ax.collections) == 1


def test_trajectories_input_errors(lv):
    with pytest.raises(DataError, match=r"trajectory 'run0' has shape \(3, 2\), expected \(40, 2\)"):
        plot.trajectories(lv, [np.zeros((3, 2)), np.zeros((40, 2))])
    with pytest.raises(ConfigError, match="got 2 labels for 1 predictions"):
        plot.trajectories(lv, [tr.y for tr in lv], labels=["a", "b"])
    with pytest.raises(DataError, match="must be a fitted model, Trajectories or a list of arrays"):
        plot.trajectories(lv, 3.0)
    with pytest.raises(ConfigError, match="n_points must be an integer >= 2"):
        plot.predict_dense(object(), lv, n_points=1)


def test_phase_portrait_with_truth(lv, lv_model):
    fig = plot.phase_portrait(lv_model, lv, truth=truth("lotka_volterra"), grid=12, color="C3", title="mine")
    assert len(fig.axes) == 2 and [ax.get_title() for ax in fig.axes] == ["mine", "truth"]
    for ax in fig.axes:
        assert ax.collections, "streamplot draws line collections"
        assert len(ax.lines) == len(lv)
        for line, tr in zip(ax.lines, lv):
            both = ~np.isnan(tr.y).any(axis=1)
            assert np.array_equal(xy(line)[0], tr.y[both, 0]) and np.array_equal(xy(line)[1], tr.y[both, 1])
            assert line.get_color() == "black"
        assert ax.get_xlabel() == "prey" and ax.get_ylabel() == "predator"
    streamlines = fig.axes[0].collections[0]
    assert tuple(streamlines.get_color()[0]) == to_rgba("C3")  # the model's colour
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["observed"]
    low, high = lv.observed_range()
    assert fig.axes[0].get_xlim()[0] < low[0] and fig.axes[0].get_xlim()[1] > high[0]


def test_phase_portrait_callable_truth_and_higher_dimensions():
    lorenz = simulate("lorenz", n_trajectories=1, n_samples=200, noise=0.0, irregular=False)
    model = SINDy().fit(lorenz)
    rhs = truth("lorenz").rhs
    fig = plot.phase_portrait(model, lorenz, truth=lambda t, x: rhs(t, x), grid=10)
    assert len(fig.axes) == 2 and fig.axes[0].get_xlabel() == "x" and fig.axes[0].get_ylabel() == "y"
    single = plot.phase_portrait(model, lorenz, grid=10)
    assert len(single.axes) == 1 and single.axes[0].get_title() == "SINDy"


def test_phase_portrait_needs_two_states():
    one = simulate("lotka_volterra", n_trajectories=1, n_samples=20, noise=0.0)
    one = one.with_states([tr.y[:, :1] for tr in one], ["prey"])
    with pytest.raises(DataError, match="at least two states"):
        plot.phase_portrait(object(), one)


TABLE = pd.DataFrame({
    "estimator": ["A", "A", "A", "B", "B", "B", "C", "C", "C"],
    "split": ["train", "test", "extrapolation"] * 3,
    "rmse": [0.1, 0.5, 0.3, 0.4, 0.2, 0.6, 0.1, np.nan, np.nan],
    "r2": [0.9, 0.5, 0.7, 0.6, 0.8, 0.4, 0.95, np.nan, np.nan],
    "error": [None] * 7 + ["boom", "boom"],
})


def test_compare_ranks_by_held_out_error_held_out_bars_first():
    fig = plot.scores(TABLE, metric="rmse")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["B", "A", "C"]  # by test rmse, failed last
    heights = [[bar.get_height() for bar in group] for group in ax.containers]
    assert np.allclose(heights, [[0.2, 0.5, np.nan], [0.6, 0.3, np.nan], [0.4, 0.1, 0.1]], equal_nan=True)
    assert [t.get_text() for t in ax.texts] == ["n/a", "n/a"]
    assert legend_texts(fig) == ["test (held out)", "extrapolation (held out)", "train (in-sample)"]
    assert ax.get_ylabel() == "rmse (lower is better)" and "held-out" in ax.get_title()
    by_r2 = plot.scores(TABLE, metric="r2")  # higher is better
    assert [t.get_text() for t in by_r2.axes[0].get_xticklabels()] == ["B", "A", "C"]
    as_given = plot.scores(TABLE, metric="rmse", rank=False)
    assert [t.get_text() for t in as_given.axes[0].get_xticklabels()] == ["A", "B", "C"]
    with pytest.raises(ConfigError, match=r"metric must be one of the table's numeric columns \['rmse', 'r2'\]"):
        plot.scores(TABLE, metric="accuracy")


def test_compare_keeps_each_model_colour_and_an_outlier_off_the_scale():
    colours = plot.model_colours(["A", "B", "C"])
    fig = plot.scores(TABLE.assign(rmse=[0.1, 0.5, 0.3, 0.4, 48.0, 0.6, 0.1, 0.2, 0.3]), metric="rmse",
                       colors=colours)
    ax = fig.axes[0]
    ranked = [t.get_text() for t in ax.get_xticklabels()]
    for group in ax.containers:
        assert [to_rgba(bar.get_facecolor())[:3] for bar in group] == [to_rgba(colours[e])[:3] for e in ranked]
    assert ax.get_ylim()[1] < 5.0  # 48 does not flatten the others
    assert [t.get_text() for t in ax.texts] == ["↑ 48"]
    one = simulate("lotka_volterra", n_trajectories=1, n_samples=10)
    lines = plot.trajectories(one, *[[one[0].y]] * 3, labels=["A", "B", "C"], colors=colours)
    assert [line.get_color() for line in lines.axes[0].lines[1:]] == [colours["A"], colours["B"], colours["C"]]


def test_no_pyplot_figures_are_left_open(lv, lv_model):
    plt.close("all")
    plot.trajectories(lv, lv_model)
    plot.phase_portrait(lv_model, lv, grid=5)
    plot.scores(TABLE, metric="r2")
    assert plt.get_fignums() == []
