"""ClassicalODE: least squares over simulations of the user's own model."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import (
    check_do_not_raise_errors_in_init_or_set_params,
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_set_params,
)

import sysid.io
from sysid import ClassicalODE
from sysid.datasets import simulate, truth
from sysid.errors import ConfigError, FitWarning, SolverWarning
from sysid.estimators._numpy_simulation import simulate_numpy

LV = truth("lotka_volterra").params


def lotka_volterra(t, x, p, u):
    prey, predator = x
    return [p["alpha"] * prey - p["beta"] * prey * predator, p["delta"] * prey * predator - p["gamma"] * predator]


def decay(t, x, p, u):
    return -p["k"] * x


def product_decay(t, x, p, u):
    return -p["a"] * p["b"] * x


@pytest.fixture(scope="module")
def noisy_lv():
    return simulate("lotka_volterra", n_trajectories=3, noise=0.05, irregular=True, random_state=0)


@pytest.fixture(scope="module")
def lv_fit(noisy_lv):
    start = {name: 1.5 * value for name, value in LV.items()}  # 50% off
    return ClassicalODE(lotka_volterra, start, n_starts=4, random_state=0, rtol=1e-6, atol=1e-8).fit(noisy_lv)


@pytest.fixture(scope="module")
def exp_data():
    t = np.linspace(0.0, 3.0, 30)
    noise = 0.01 * np.random.default_rng(0).standard_normal((30, 1))
    return t, 2.0 * np.exp(-0.6 * t)[:, None] + noise


# ------------------------------------------------------------------ recovery
def test_multistart_recovers_lotka_volterra_from_fifty_percent_off(lv_fit):
    for name, value in LV.items():
        assert lv_fit.params_[name] == pytest.approx(value, rel=0.05), name
    assert lv_fit.start_costs_.shape == (4,)
    assert lv_fit.start_costs_[0] > 10 * lv_fit.start_costs_.min()  # the initial guess alone is a local minimum
    assert lv_fit.x0_.shape == (3, 2) and lv_fit.n_function_evals_ > 0


def test_confidence_intervals_cover_the_truth(lv_fit):
    table = lv_fit.confidence_intervals(0.95)
    assert list(table.columns) == ["estimate", "stderr", "lower", "upper", "status"]
    assert list(table.index) == ["alpha", "beta", "gamma", "delta"] and table.index.name == "parameter"
    assert (table.status == "estimated").all()
    truth_values = table.index.map(LV)
    assert ((table.lower <= truth_values) & (truth_values <= table.upper)).all()
    assert (table.stderr > 0).all() and (table.stderr < 0.05 * table.estimate).all()
    wider = lv_fit.confidence_intervals(0.99)
    assert (wider.upper - wider.lower > table.upper - table.lower).all()


def test_predict_and_score_on_new_trajectories(lv_fit):
    new = simulate("lotka_volterra", n_trajectories=2, noise=0.05, random_state=7)
    assert lv_fit.score(new) > 0.9
    clean = simulate("lotka_volterra", n_trajectories=1, noise=0.0, random_state=7)
    x0 = np.array(clean.attrs["x0"])
    predicted = lv_fit.predict(clean, x0=x0)[0].y
    assert np.allclose(predicted, clean[0].y, rtol=0.05, atol=0.05)
    assert np.allclose(lv_fit.vector_field([3.0, 1.5]), [0.0, 0.0], atol=0.05)


@pytest.mark.slow
def test_single_shooting_from_the_initial_guess_finds_a_local_minimum(noisy_lv, lv_fit):
    """Documents why n_starts exists: the landscape of single shooting is rough on LV."""
    single = clone(lv_fit).set_params(n_starts=1)
    single.fit(noisy_lv)
    assert single.cost_ > 10 * lv_fit.cost_


# --------------------------------------------------------- parameters: bounds etc.
def test_unidentifiable_parameters_are_named_in_a_fit_warning(exp_data):
    t, y = exp_data
    with pytest.warns(FitWarning, match=r"\['a', 'b'\] are not identifiable"):
        model = ClassicalODE(product_decay, {"a": 1.0, "b": 0.5}).fit(y, t=t)
    assert model.unidentifiable_ == ["a", "b"] and model.not_identifiable_ == ["a", "b"]
    assert model.params_["a"] * model.params_["b"] == pytest.approx(0.6, rel=0.02)  # the product is identified
    assert np.isinf(model.params_stderr_["a"]) and np.isinf(model.params_stderr_["b"])


def test_identifiable_model_gives_no_warning(exp_data, recwarn):
    t, y = exp_data
    model = ClassicalODE(decay, {"k": 0.2}).fit(y, t=t)
    assert not [w for w in recwarn if issubclass(w.category, FitWarning)]
    assert model.params_["k"] == pytest.approx(0.6, rel=0.02) and model.unidentifiable_ == []


def test_bounds_are_respected_by_every_evaluation(exp_data):
    t, y = exp_data
    seen = []

    def spy(t, x, p, u):
        seen.append(p["k"])
        return -p["k"] * x

    model = ClassicalODE(spy, {"k": 0.2}, bounds={"k": (0.1, 0.5)}, n_starts=3, random_state=1).fit(y, t=t)
    assert max(seen) <= 0.5 and min(seen) >= 0.1
    assert model.params_["k"] == pytest.approx(0.5)  # the truth (0.6) is outside: the fit sits on the bound


def test_fixed_parameters_stay_fixed(exp_data):
    t, y = exp_data
    seen = set()

    def spy(t, x, p, u):
        seen.add(p["b"])
        return -p["a"] * p["b"] * x

    model = ClassicalODE(spy, {"a": 1.0, "b": 0.5}, fixed=["b"]).fit(y, t=t)
    assert seen == {0.5} and model.params_["b"] == 0.5 and model.params_stderr_["b"] == 0.0
    assert model.params_["a"] == pytest.approx(1.2, rel=0.02)
    row = model.confidence_intervals().loc["b"]
    assert row.lower == row.upper == 0.5 and row.status == "fixed"


def test_fit_x0_false_uses_the_first_observations(exp_data):
    t, y = exp_data
    model = ClassicalODE(decay, {"k": 0.2}, fit_x0=False).fit(y, t=t)
    assert model.x0_.tolist() == [[y[0, 0]]]


def test_solver_failures_during_fit_do_not_crash(exp_data):
    t, y = exp_data
    start = time.perf_counter()
    model = ClassicalODE(lambda t, x, p, u: p["a"] * x**2, {"a": 1.0}).fit(y, t=t)  # blows up at t = 0.5
    assert time.perf_counter() - start < 10.0
    assert np.isfinite(model.cost_) and model.params_["a"] < 0


def test_missing_entries_are_skipped_and_starts_interpolated():
    gappy = simulate("lotka_volterra", n_trajectories=2, noise=0.02, missing=0.3, random_state=4)
    start = {name: 1.1 * value for name, value in LV.items()}
    model = ClassicalODE(lotka_volterra, start, rtol=1e-6, atol=1e-8).fit(gappy)
    assert model.n_observations_ == sum(int((~np.isnan(tr.y)).sum()) for tr in gappy)
    for name, value in LV.items():
        assert model.params_[name] == pytest.approx(value, rel=0.02), name


def test_inputs_reach_the_model():
    def forced(t, x, p, u):
        return [x[1], (u[0] - p["c"] * x[1] - p["k"] * x[0]) / p["m"]]

    data = simulate("mass_spring_damper", n_trajectories=1, noise=0.01, n_samples=40, t_span=(0, 8))
    model = ClassicalODE(forced, {"m": 1.0, "c": 0.4, "k": 3.5}, fixed=["m"], rtol=1e-6, atol=1e-8).fit(data)
    assert model.params_["k"] == pytest.approx(4.0, rel=0.05)
    assert model.params_["c"] == pytest.approx(0.5, rel=0.1)
    assert model.vector_field([1.0, 0.0], u=[2.0]).tolist() == pytest.approx([0.0, 2.0 - model.params_["k"]])


def test_prediction_failure_is_reported_with_nan_tail(exp_data):
    t, y = exp_data
    model = ClassicalODE(lambda t, x, p, u: p["a"] * x**2, {"a": -0.3}).fit(y, t=t)
    model.params_["a"] = 1.0  # now it blows up at t = 1 / (a x0) = 0.5
    with pytest.warns(SolverWarning, match=r"trajectory\(ies\) failed: 0 at t="):
        out = model.predict(t=t, x0=[2.0])
    assert model.simulation_failed_ == [0]
    assert np.isfinite(out[t < 0.4]).all() and np.isnan(out[t > 0.6]).all()


def test_simulate_numpy_reports_instead_of_hanging():
    result = simulate_numpy(lambda s, x: x**2, np.linspace(0, 5, 11), np.array([1.0]), max_steps=10_000)
    assert result.failed_at is not None and result.failed_at <= 1.0 + 1e-9
    assert np.isnan(result.y[-1]).all() and result.y[0, 0] == 1.0


# ------------------------------------------------------------ validation, sklearn
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"f": "lv"}, r"f must be a callable f\(t, x, p, u\) -> dx/dt, got str"),
        ({"params": {}}, r"params must be a non-empty dict"),
        ({"params": {"k": "fast"}}, r"params\['k'\] must be a finite number, got 'fast'"),
        ({"bounds": {"q": (0, 1)}}, r"bounds names 'q', which is not a parameter; the parameters are \['k'\]"),
        ({"bounds": {"k": (1.0, 2.0)}}, r"the start value params\['k'\] = 0.2 is outside its bounds"),
        ({"bounds": {"k": (1.0, 0.0)}}, r"low must be below high"),
        ({"bounds": {"k": 5}}, r"bounds\['k'\] must be a pair \(low, high\)"),
        ({"fixed": ["q"]}, r"fixed names 'q', which is not a parameter"),
        ({"solver": "euler"}, r"solver must be one of"),
        ({"n_starts": 0}, r"n_starts must be an integer >= 1, got 0"),
        ({"loss": "l1"}, r"loss must be one of"),
        ({"rtol": -1.0}, r"rtol must be a positive number"),
    ],
)
def test_bad_settings_raise_config_errors_before_any_work(kwargs, message, exp_data):
    t, y = exp_data
    settings = {"f": decay, "params": {"k": 0.2}, **kwargs}
    model = ClassicalODE(**settings)
    with pytest.raises(ConfigError, match=message):
        model.fit(y, t=t)


def test_a_broken_f_is_reported_with_its_call(exp_data):
    t, y = exp_data
    with pytest.raises(ConfigError, match=r"f\(t, x, p, u\) raised KeyError: 'kk' when called with t=0.0"):
        ClassicalODE(lambda t, x, p, u: -p["kk"] * x, {"k": 0.2}).fit(y, t=t)
    with pytest.raises(ConfigError, match=r"f must return dx/dt with shape \(1,\) .* got shape \(2,\)"):
        ClassicalODE(lambda t, x, p, u: [1.0, 2.0], {"k": 0.2}).fit(y, t=t)


@pytest.mark.parametrize(
    "check",
    [check_no_attributes_set_in_init, check_get_params_invariance, check_set_params,
     check_do_not_raise_errors_in_init_or_set_params],
)
def test_sklearn_checks_that_need_no_data(check):
    check("ClassicalODE", ClassicalODE(decay, {"k": 0.2}))


def test_not_fitted_and_clone(exp_data):
    with pytest.raises(NotFittedError):
        ClassicalODE(decay, {"k": 0.2}).predict(t=[0.0, 1.0], x0=[1.0])
    t, y = exp_data
    model = ClassicalODE(decay, {"k": 0.2}, n_starts=2, random_state=3).fit(y, t=t)
    again = clone(model).fit(y, t=t)
    assert again.params_ == model.params_ and again.x0_.tolist() == model.x0_.tolist()


def test_save_load_round_trip_is_bit_identical(tmp_path, monkeypatch, exp_data):
    t, y = exp_data
    model = ClassicalODE(decay, {"k": 0.2, "unused": 1.0}, bounds={"k": (0.0, None)}, fixed=["unused"]).fit(y, t=t)
    path = sysid.io.save(model, tmp_path / "decay.sysid")
    with pytest.raises(sysid.errors.ModelFileError, match=r"pass it again: sysid.load\(path, f=your_function\)"):
        sysid.io.load(path)
    loaded = sysid.io.load(path, f=decay)
    assert loaded.params_ == model.params_ and loaded.params_stderr_ == model.params_stderr_
    assert np.array_equal(loaded.predict(y, t=t), model.predict(y, t=t))  # x0 re-estimated identically
    assert np.array_equal(loaded.predict(t=t, x0=[1.0]), model.predict(t=t, x0=[1.0]))
    pd.testing.assert_frame_equal(loaded.confidence_intervals(), model.confidence_intervals())
