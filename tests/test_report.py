"""sysid.report: held-out error first, models ranked by it, honest notes, the figures written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sysid import SINDy, report
from sysid.comparison import compare
from sysid.datasets import simulate, truth
from sysid.errors import ExtrapolationWarning, SolverWarning
from sysid.estimators import ClassicalODE

LV = truth("lotka_volterra")


def lotka_volterra(t, x, p, u):
    prey, predator = x
    return [p["alpha"] * prey - p["beta"] * prey * predator, p["delta"] * prey * predator - p["gamma"] * predator]


@pytest.fixture(scope="module")
def data():
    return simulate("lotka_volterra", n_trajectories=3, n_samples=60, noise=0.01, random_state=3)


@pytest.fixture(scope="module")
def table(data):
    train, test = data.split(test_trajectories=["run2"])
    estimators = {"SINDy": SINDy(differentiation="spline"),
                  "ClassicalODE": ClassicalODE(lotka_volterra, {k: 1.1 * v for k, v in LV.params.items()}),
                  "SINDy loose": SINDy(threshold=0.0, degree=3)}
    with pytest.warns((SolverWarning, ExtrapolationWarning)):  # the loose SINDy diverges or extrapolates
        return report.run_comparison(estimators, train, test, truth=LV, time_fraction=0.7)


def test_run_comparison_is_compare_one_model_at_a_time(data, table):
    train, test = data.split(test_trajectories=["run2"])
    one = compare({"ClassicalODE": ClassicalODE(lotka_volterra, {k: 1.1 * v for k, v in LV.params.items()})},
                  train, test, truth=LV, time_fraction=0.7)
    mine = table[table.estimator == "ClassicalODE"].reset_index(drop=True)
    columns = ["estimator", "split", "rmse", "nrmse", "r2", "coefficient_error"]
    pd.testing.assert_frame_equal(mine[columns], one[columns])
    assert table.attrs["time_fraction"] == 0.7 and set(table.attrs["models"]) == {"SINDy", "ClassicalODE",
                                                                                   "SINDy loose"}


def test_rank_puts_the_best_held_out_model_first_and_held_out_rows_first(table):
    ranked = report.rank(table)
    test_scores = ranked[ranked.split == "test"]["nrmse"].to_numpy(dtype=float)
    finite = test_scores[np.isfinite(test_scores)]
    assert np.all(np.diff(finite) >= 0) and np.all(np.isfinite(test_scores[: finite.size]))
    for name in ranked.estimator.unique():
        assert ranked[ranked.estimator == name].split.tolist() == ["test", "extrapolation", "train"]
    shown = report.display_table(table)
    assert list(shown.columns[:5]) == ["estimator", "split", "nrmse", "r2", "rmse"]
    assert shown.attrs["models"] is table.attrs["models"]


def test_long_errors_are_cut_in_the_display_not_in_the_table():
    long = "sysid.errors.FitError: " + "the solver could not go on " * 10
    table = pd.DataFrame({"estimator": ["A"], "split": ["train"], "nrmse": [np.nan], "r2": [np.nan],
                          "rmse": [np.nan], "error": [long]})
    shown = report.display_table(table)
    assert shown.error[0].startswith("FitError: the solver") and shown.error[0].endswith(" …")
    assert len(shown.error[0]) <= 102 and table.error[0] == long


def test_report_says_held_out_or_in_sample_only(tmp_path: Path, table):
    notes = report.model_notes(table.attrs["models"])
    path = report.write_report(tmp_path, "LV", ["simulated"], table, notes, [])
    text = path.read_text()
    assert "ranked by nrmse on held-out data (split `test`" in text
    order = [line.strip("*") for line in text.splitlines() if line.startswith("**")]
    assert order == list(dict.fromkeys(report.rank(table).estimator))  # notes in rank order too
    in_sample = table[table.split == "train"]
    text = report.write_report(tmp_path, "LV", [], in_sample, notes, [], name="in_sample.md").read_text()
    assert "In-sample only" in text


def test_model_notes_show_parameters_to_the_digits_their_errors_support(table):
    notes = report.model_notes(table.attrs["models"])
    classical = table.attrs["models"]["ClassicalODE"]
    alpha = notes["ClassicalODE"][0]
    assert alpha.startswith("alpha = ") and " ± " in alpha
    value, error = (float(v) for v in alpha.removeprefix("alpha = ").split(" ± "))
    assert value == pytest.approx(classical.params_["alpha"], abs=error) and error == pytest.approx(
        classical.params_stderr_["alpha"], rel=0.5)
    assert notes["SINDy"][0].startswith("d prey/dt = ")


def test_write_figures_draws_fits_extrapolation_phase_portraits_and_the_ranking(tmp_path: Path, data, table):
    with pytest.warns((SolverWarning, ExtrapolationWarning)):  # as in the table: the loose SINDy
        paths = report.write_figures(tmp_path, data, table.attrs["models"], table, grid=8, n_points=80)
    names = [p.name for p in paths]
    assert names[:2] == ["fits.png", "extrapolation.png"] and names[-1] == "comparison.png"
    assert {"phase_SINDy.png", "phase_ClassicalODE.png", "phase_SINDy_loose.png"} <= set(names)
    assert all(p.stat().st_size > 10_000 for p in paths)
