"""Trajectory and equation metrics, checked against scikit-learn and by hand."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import r2_score, root_mean_squared_error

from sysid import Trajectories
from sysid.datasets import truth
from sysid.errors import DataError
from sysid.metrics import canonical_term, coefficient_error, nrmse, parameter_error, r2, rmse


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    ts = [np.sort(rng.uniform(0, 5, 12)), np.sort(rng.uniform(0, 5, 9))]
    ys = [rng.normal(size=(12, 3)) * [1.0, 10.0, 0.1], rng.normal(size=(9, 3)) * [1.0, 10.0, 0.1]]
    preds = [y + rng.normal(scale=0.3, size=y.shape) for y in ys]
    return Trajectories.from_arrays(ts, ys, state_names=["a", "b", "c"]), preds


def test_fully_observed_metrics_agree_with_sklearn(pair):
    data, preds = pair
    y, p = np.concatenate([tr.y for tr in data]), np.concatenate(preds)
    assert rmse(data, preds) == pytest.approx(root_mean_squared_error(y, p))
    assert np.allclose(
        rmse(data, preds, multioutput="raw_values"), root_mean_squared_error(y, p, multioutput="raw_values")
    )
    assert r2(data, preds) == pytest.approx(r2_score(y, p))
    assert np.allclose(r2(data, preds, multioutput="raw_values"), r2_score(y, p, multioutput="raw_values"))
    assert np.allclose(
        nrmse(data, preds, multioutput="raw_values"),
        root_mean_squared_error(y, p, multioutput="raw_values") / y.std(axis=0),
    )


def test_missing_observations_are_skipped_and_r2_matches_score(pair):
    data, preds = pair
    holes = [tr.y.copy() for tr in data]
    holes[0][[1, 4], 0] = np.nan
    holes[1][2, :] = np.nan
    gappy = data.with_states(holes)
    y, p = np.concatenate(holes), np.concatenate(preds)
    keep = ~np.isnan(y[:, 0])
    assert rmse(gappy, preds, multioutput="raw_values")[0] == pytest.approx(
        np.sqrt(np.mean((y[keep, 0] - p[keep, 0]) ** 2))
    )
    per_state = [r2_score(y[~np.isnan(y[:, j]), j], p[~np.isnan(y[:, j]), j]) for j in range(3)]
    assert r2(gappy, preds) == pytest.approx(np.mean(per_state))
    predictions = gappy.with_states(preds)  # Trajectories work as predictions too
    assert rmse(gappy, predictions) == rmse(gappy, preds)


def test_r2_is_the_estimators_score(pair):
    """One R^2 (#16): score is metrics.r2 of its predictions (failed="penalize", the same when nothing failed)."""
    import sysid

    data, _ = pair
    model = sysid.SINDy(degree=1).fit(data)
    with warnings.catch_warnings():  # random data: the simulation may fail or extrapolate, not the point here
        warnings.simplefilter("ignore")
        predictions = [tr.y for tr in model.predict(data)]
        score = model.score(data)
    assert score == r2(data, predictions, failed="penalize")


@pytest.mark.parametrize("magnitude", [1e-300, 1e-150, 1e150, 1e300])
def test_r2_does_not_depend_on_the_data_s_magnitude(pair, magnitude):
    """Squares of data of magnitude 1e-300 underflow to 0: a constant prediction once scored R^2 = 1."""
    data, preds = pair
    scaled = Trajectories.from_arrays(
        [tr.t for tr in data], [tr.y * magnitude for tr in data], state_names=list(data.state_names)
    )
    expected = r2(data, preds, multioutput="raw_values")
    got = r2(scaled, [p * magnitude for p in preds], multioutput="raw_values")
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    means = [np.broadcast_to(np.mean(np.concatenate([tr.y for tr in scaled]), axis=0), tr.y.shape) for tr in scaled]
    assert r2(scaled, means) < 0.01  # the mean of the data explains nothing


def test_a_failed_simulation_scores_very_bad_but_finite_for_ranking(pair):
    data, preds = pair
    early, late = [p.copy() for p in preds], [p.copy() for p in preds]
    early[0][3:, 1] = np.nan  # fails at row 3 of 12
    late[0][9:, 1] = np.nan  # fails at row 9
    assert np.isnan(r2(data, early))  # reports never average a failure away
    bad, less_bad = r2(data, early, failed="penalize"), r2(data, late, failed="penalize")
    assert np.isfinite(bad) and np.isfinite(less_bad)
    assert bad < less_bad < -1e3 < r2(data, preds, failed="penalize") == r2(data, preds)
    huge = [p * 1e300 for p in preds]  # no overflow whatever the magnitude
    assert np.isfinite(r2(data, huge, failed="penalize"))
    with pytest.raises(DataError, match="failed must be 'nan' or 'penalize'"):
        r2(data, preds, failed="zero")


def test_a_state_observed_once_is_left_out_of_the_average(pair):
    data, preds = pair
    holes = [tr.y.copy() for tr in data]
    holes[0][1:, 2] = np.nan
    holes[1][:, 2] = np.nan  # state c observed once: no R^2
    gappy = data.with_states(holes)
    raw = r2(gappy, preds, multioutput="raw_values")
    assert np.isnan(raw[2]) and np.isfinite(raw[:2]).all()
    assert r2(gappy, preds) == pytest.approx(raw[:2].mean())


def test_failed_predictions_give_nan_not_an_average(pair):
    data, preds = pair
    broken = [p.copy() for p in preds]
    broken[1][-1, 2] = np.nan
    values = rmse(data, broken, multioutput="raw_values")
    assert np.isfinite(values[:2]).all() and np.isnan(values[2])
    assert np.isnan(rmse(data, broken)) and np.isnan(r2(data, broken)) and np.isnan(nrmse(data, broken))


def test_shape_mismatches_are_data_errors(pair):
    data, preds = pair
    with pytest.raises(DataError, match="predictions for 1 trajectories but the data has 2"):
        rmse(data, preds[:1])
    with pytest.raises(DataError, match=r"trajectory 1: predictions have shape \(9, 2\) but the data has \(9, 3\)"):
        rmse(data, [preds[0], preds[1][:, :2]])
    with pytest.raises(DataError, match="multioutput must be"):
        rmse(data, preds, multioutput="variance_weighted")


def test_coefficient_error_on_the_exact_truth_is_zero():
    lv = truth("lotka_volterra")
    table = pd.DataFrame(
        0.0, index=["1", "prey", "predator", "prey^2", "prey predator", "predator^2"], columns=["prey", "predator"]
    )
    for state, terms in lv.coefficients.items():
        for term, value in terms.items():
            table.loc[term, state] = value
    result = coefficient_error(table, lv.coefficients)
    assert result == (0.0, 0, 0, 4)


def test_coefficient_error_counts_spurious_and_missed_terms():
    true = {"x": {"x": -1.0, "x y": 2.0}, "y": {"y": 1.0}}
    table = pd.DataFrame(
        {"x": [0.1, -1.0, 0.0, 0.01], "y": [0.0, 0.0, 1.0, 0.0]}, index=["1", "x", "y", "y x"]
    )  # "y x" is "x y"; it was estimated ~0
    result = coefficient_error(table, true, threshold=0.05)
    expected = np.sqrt(0.1**2 + (0.01 - 2.0) ** 2) / np.sqrt(1 + 4 + 1)
    assert result.relative_error == pytest.approx(expected)
    assert (result.n_spurious, result.n_missed, result.n_true_terms) == (1, 1, 3)
    assert canonical_term("y x") == canonical_term("x y")


def test_coefficient_error_refuses_different_states():
    with pytest.raises(DataError, match=r"has states \['x'\] but the truth has \['prey', 'predator'\]"):
        coefficient_error(pd.DataFrame({"x": [1.0]}, index=["x"]), truth("lotka_volterra").coefficients)


def test_parameter_error():
    assert parameter_error({"a": 1.0, "b": 2.0, "extra": 5.0}, {"a": 1.0, "b": 2.0}) == 0.0
    assert parameter_error({"a": 0.0}, {"a": 2.0}) == 1.0
    with pytest.raises(DataError, match=r"lack the true parameter\(s\) \['b'\]"):
        parameter_error({"a": 1.0}, {"a": 1.0, "b": 1.0})
