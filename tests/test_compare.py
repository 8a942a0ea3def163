"""compare(): one tidy table for several estimators, failures included, parallel = serial."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from joblib import parallel_config

from sysid import ClassicalODE, SINDy
from sysid.comparison import COLUMNS, compare, initial_states
from sysid.datasets import simulate, truth
from sysid.errors import ConfigError

LV = truth("lotka_volterra")


def lotka_volterra(t, x, p, u):
    prey, predator = x
    return [p["alpha"] * prey - p["beta"] * prey * predator, p["delta"] * prey * predator - p["gamma"] * predator]


class Broken(SINDy):
    """Fails in fit, as a misconfigured or buggy model would."""

    def __init__(self, reason: str = "boom") -> None:
        self.reason = reason

    def _fit(self, data):
        raise RuntimeError(f"cannot fit: {self.reason}")


def tiny_split():
    data = simulate("lotka_volterra", n_trajectories=3, n_samples=80, noise=0.01, random_state=2)
    return data.split(test_trajectories=["run2"])


@pytest.fixture(scope="module")
def tiny():
    return tiny_split()


def estimators():
    start = {name: 1.1 * value for name, value in LV.params.items()}
    return [SINDy(differentiation="spline"), ClassicalODE(lotka_volterra, start, rtol=1e-6, atol=1e-8), Broken()]


@pytest.fixture(scope="module")
def table(tiny):
    train, test = tiny
    return compare(estimators(), train, test, truth=LV, time_fraction=0.7)


def test_rows_and_columns_held_out_splits_first(table):
    assert list(table.columns) == COLUMNS
    assert table[["estimator", "split"]].values.tolist() == [
        ["SINDy", "test"], ["SINDy", "extrapolation"], ["SINDy", "train"],
        ["ClassicalODE", "test"], ["ClassicalODE", "extrapolation"], ["ClassicalODE", "train"],
        ["Broken", "test"], ["Broken", "extrapolation"], ["Broken", "train"],
    ]
    assert table.attrs["time_fraction"] == 0.7 and table.attrs["extrapolation_trajectories"] == ["run0", "run1"]


def test_working_estimators_have_finite_numbers_and_no_error(table):
    good = table[table.estimator != "Broken"]
    for column in ("fit_seconds", "rmse", "nrmse", "r2", "coefficient_error"):
        assert np.isfinite(good[column].astype(float)).all(), column
    assert good.error.isna().all()
    assert (good.r2 > 0.99).all() and (good.coefficient_error < 0.2).all()
    classical = table[table.estimator == "ClassicalODE"]
    assert (classical.n_function_evals > 0).all()
    assert table[table.estimator == "SINDy"].n_function_evals.isna().all()  # not counted by SINDy


def test_failing_estimator_gets_rows_with_its_message(table):
    broken = table[table.estimator == "Broken"]
    assert (broken.error == "RuntimeError: cannot fit: boom").all()
    assert broken[["rmse", "nrmse", "r2", "coefficient_error"]].isna().all().all()
    assert table.attrs["models"]["Broken"] is None


def test_fitted_models_are_kept_and_the_inputs_untouched(table):
    models = table.attrs["models"]
    assert set(models) == {"SINDy", "ClassicalODE", "Broken"}
    assert models["ClassicalODE"].params_["alpha"] == pytest.approx(1.5, rel=0.05)
    assert set(table.attrs["extrapolation_models"]) == set(models)
    subset = table[table.split == "train"]  # pandas copies attrs: the models are shared, not copied
    assert subset.attrs["models"]["SINDy"] is models["SINDy"]
    originals = estimators()
    compare(originals[:1], *tiny_split())
    assert not hasattr(originals[0], "coefficients_")


def test_extrapolation_scores_only_the_tail(tiny):
    train, _ = tiny
    table = compare([SINDy(differentiation="spline")], train, time_fraction=0.5)
    assert table.split.tolist() == ["extrapolation", "train"]
    model = table.attrs["extrapolation_models"]["SINDy"]
    _, future = train.split(time_fraction=0.5)
    whole = model.predict(train)
    tails = [w.y[-f.n_times:] for w, f in zip(whole, future)]
    from sysid.metrics import rmse

    assert table.loc[0, "rmse"] == pytest.approx(rmse(future, tails))


def test_initial_states_fitted_starts_by_name_else_where_predict_starts(tiny):
    train, test = tiny
    start = {name: 1.1 * value for name, value in LV.params.items()}
    model = ClassicalODE(lotka_volterra, start, rtol=1e-6, atol=1e-8).fit(train)
    both = train.subset([test[0], train[1]])  # an unseen trajectory, then a fitted one
    starts = initial_states(model, both)
    np.testing.assert_array_equal(starts[1], model.x0_[1])  # the fitted start, not re-estimated
    np.testing.assert_allclose(starts[0], model.predict(test)[0].y[0])
    sindy = SINDy(differentiation="spline").fit(train)  # no learned starts: where predict starts
    np.testing.assert_allclose(initial_states(sindy, train), [p.y[0] for p in sindy.predict(train)])


NUMBERS = ["estimator", "split", "n_function_evals", "rmse", "nrmse", "r2", "coefficient_error", "error"]


def test_parallel_gives_the_same_numbers_as_serial(tiny, table):
    train, test = tiny
    with parallel_config(backend="threading"):  # two workers without process start-up cost
        parallel = compare(estimators(), train, test, truth=LV, time_fraction=0.7, n_jobs=2)
    pd.testing.assert_frame_equal(parallel[NUMBERS], table[NUMBERS])


@pytest.mark.slow
def test_parallel_processes_give_the_same_numbers_as_serial(tiny, table):
    """joblib's default (loky) backend: estimators and data are pickled to worker processes."""
    train, test = tiny
    parallel = compare(estimators(), train, test, truth=LV, time_fraction=0.7, n_jobs=2)
    pd.testing.assert_frame_equal(parallel[NUMBERS], table[NUMBERS])


@pytest.mark.filterwarnings("ignore::sysid.errors.SolverWarning")  # plain SINDy diverges on this noisy data
def test_names_are_disambiguated_and_truth_forms(tiny):
    train, _ = tiny
    table = compare([SINDy(), SINDy(threshold=0.3), SINDy()], train,
                    truth={"alpha": 1.5, "beta": 1.0, "gamma": 3.0, "delta": 1.0})
    assert table.estimator.tolist() == ["SINDy #1", "SINDy(threshold=0.3)", "SINDy #3"]
    assert table.coefficient_error.isna().all()  # parameters given, SINDy has coefficients
    named = compare({"mine": SINDy()}, train, truth=LV.coefficients)
    assert named.estimator.tolist() == ["mine"] and named.coefficient_error.notna().all()
    with pytest.raises(ConfigError, match=r"truth must be a sysid\.datasets\.SystemTruth"):
        compare([SINDy()], train, truth=[1, 2])
    with pytest.raises(ConfigError, match="at least one estimator"):
        compare([], train)
