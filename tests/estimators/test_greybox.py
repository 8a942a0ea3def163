"""GreyBoxODE: the user's equations, parameters recovered with honest uncertainties."""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import sysid
import sysid.io
from sysid import GreyBoxODE
from sysid.datasets import simulate, truth
from sysid.errors import ConfigError, FitWarning, ModelFileError, NotFittedError
from sysid.fields import GreyBoxField, ParameterTransform
from sysid.parameters import check_parameters

FAST = dict(gradient="backprop", rtol=1e-5, atol=1e-7, verbose=False)
TRUE = truth("lotka_volterra").params
START = {name: 0.5 * value for name, value in TRUE.items()}  # 50% off
POSITIVE = dict.fromkeys(TRUE, (0.0, None))


def lotka_volterra(t, x, p, u):
    prey, predator = x[:, 0], x[:, 1]
    return torch.stack([p["alpha"] * prey - p["beta"] * prey * predator,
                        p["delta"] * prey * predator - p["gamma"] * predator], dim=-1)


def overparameterised(t, x, p, u):
    prey, predator = x[:, 0], x[:, 1]
    return torch.stack([p["a"] * p["b"] * prey - p["beta"] * prey * predator,
                        p["delta"] * prey * predator - p["gamma"] * predator], dim=-1)


@pytest.fixture(scope="module")
def lv_data():
    return simulate("lotka_volterra", n_trajectories=3, n_samples=60, noise=0.05, irregular=True, random_state=0)


@pytest.fixture(scope="module")
def fitted(lv_data):
    return GreyBoxODE(lotka_volterra, START, bounds=POSITIVE, max_epochs=30, **FAST).fit(lv_data)


def short_data():
    return simulate("lotka_volterra", n_trajectories=2, n_samples=20, t_span=(0, 3), noise=0.02, random_state=1)


# -- recovery and uncertainty -----------------------------------------------------------
def test_recovers_lotka_volterra_parameters_from_50_percent_off(fitted):
    for name, value in TRUE.items():
        assert abs(fitted.params_[name] - value) < 0.05 * value, fitted.params_
    assert fitted.refined_


def test_confidence_intervals_cover_the_truth(fitted):
    table = fitted.confidence_intervals(0.95)
    assert list(table.index) == ["alpha", "beta", "gamma", "delta"] and table.index.name == "parameter"
    assert list(table.columns) == ["estimate", "stderr", "lower", "upper", "status"]
    assert (table["status"] == "estimated").all()
    for name, value in TRUE.items():
        assert table.loc[name, "lower"] < value < table.loc[name, "upper"], table
    # informative, not vacuous: a few percent at most
    assert np.all(table["stderr"] / table["estimate"] < 0.03)
    wider = fitted.confidence_intervals(0.99)
    assert np.all(wider["upper"] - wider["lower"] > table["upper"] - table["lower"])
    assert fitted.unidentifiable_ == [] and fitted.jacobian_condition_ < 1e4
    assert fitted.covariance_.shape == (4, 4)
    np.testing.assert_allclose(np.sqrt(np.diag(fitted.covariance_)), table["stderr"])


def test_unidentifiable_parameters_are_named_in_a_warning(lv_data):
    start = {"a": 1.0, "b": 1.0, "beta": 0.5, "gamma": 1.5, "delta": 0.5}
    with pytest.warns(FitWarning, match=r"GreyBoxODE: \['a', 'b'\] are not identifiable") as caught:
        model = GreyBoxODE(overparameterised, start, max_epochs=5, refine_steps=3, **FAST).fit(lv_data)
    assert caught[0].filename == __file__  # the warning points at the user's call
    assert model.unidentifiable_ == ["a", "b"]
    assert np.isinf(model.params_stderr_["a"]) and np.isinf(model.params_stderr_["b"])
    assert np.isfinite(model.params_stderr_["gamma"])
    assert list(model.confidence_intervals().loc[["a", "b"], "status"]) == ["not identifiable"] * 2
    # the product is what the data determine
    assert abs(model.params_["a"] * model.params_["b"] - TRUE["alpha"]) < 0.1 * TRUE["alpha"]


# -- the parameter transforms -----------------------------------------------------------
def test_bounds_hold_by_transform_and_round_trip():
    initial = {"free": -2.0, "low": 3.0, "high": -1.0, "both": 0.25, "held": 7.0}
    bounds = {"low": (1.0, None), "high": (None, 0.0), "both": (0.0, 1.0)}
    pt = ParameterTransform(initial, bounds, fixed=["held"])
    values = {k: float(v.detach()) for k, v in pt().items()}
    assert values == pytest.approx(initial, rel=1e-12)
    with torch.no_grad():
        pt.raw.copy_(torch.tensor([50.0, -50.0, -50.0, 50.0], dtype=torch.float64))
    extreme = {k: float(v.detach()) for k, v in pt().items()}
    assert extreme["low"] >= 1.0 and extreme["high"] <= 0.0 and 0.0 <= extreme["both"] <= 1.0
    target = torch.tensor([5.0, 1.5, -0.2, 0.9], dtype=torch.float64)
    pt.set_free_values(target)
    torch.testing.assert_close(pt.free_values().detach(), target)
    assert pt.free_names == ["free", "low", "high", "both"] and pt.fixed_names == ["held"]
    field = GreyBoxField(lambda t, x, p, u: -p["low"] * x, {"low": 2.0})
    assert field(torch.zeros(1), torch.ones(1, 1, dtype=torch.float64), None).item() == pytest.approx(-2.0)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"bounds": {"alpha": (0, None), "zeta": (0, 1)}}, ConfigError, "bounds names 'zeta', which is not a parameter"),
    ({"fixed": ["alpha", "eta"]}, ConfigError, "fixed names 'eta', which is not a parameter"),
    ({"bounds": {"alpha": (1.0, 2.0)}}, ConfigError, r"start value params\['alpha'\] = 0.75 is outside its bounds"),
    ({"bounds": {"alpha": (2.0, 1.0)}}, ConfigError, "low must be below high"),
    ({"params": {**START, "beta": "one"}}, ConfigError, r"params\['beta'\] must be a finite number"),
    ({"f": lambda t, x, p, u: x[:, 0]}, ConfigError, r"returned shape \(2,\) .* expected \(2, 2\)"),
    ({"f": lambda t, x, p, u: [x[:, 0], x[:, 1]]}, ConfigError, "got list .*torch.stack"),
    ({"f": lambda t, x, p, u: p["kappa"] * x}, ConfigError, "looked up parameter 'kappa'"),
    ({"f": "lotka_volterra"}, ConfigError, "f must be a callable"),
])
def test_bad_specifications_are_reported_before_training(kwargs, error, match):
    settings = {"f": lotka_volterra, "params": START, **kwargs}
    with pytest.raises(error, match=match):
        GreyBoxODE(**settings, max_epochs=1, **FAST).fit(short_data())


def test_check_parameters_normalises():
    spec = check_parameters({"k": 1, "c": 2.0}, {"k": [0, None]}, ("c",))
    assert spec.initial == {"k": 1.0, "c": 2.0} and spec.bounds == {"k": (0.0, None)} and spec.fixed_names == ["c"]


def test_fixed_parameters_stay_put_and_have_no_interval():
    data = short_data()
    model = GreyBoxODE(lotka_volterra, {**TRUE, "gamma": 2.5}, fixed=["gamma"], max_epochs=3, refine_steps=3,
                       **FAST).fit(data)
    assert model.params_["gamma"] == 2.5 and model.params_stderr_["gamma"] == 0.0
    row = model.confidence_intervals().loc["gamma"]
    assert row["status"] == "fixed" and row["lower"] == row["upper"] == 2.5
    with pytest.raises(ConfigError, match="level must be a number in"):
        model.confidence_intervals(95)


def test_held_out_tails_stay_out_of_the_refinement():
    data = short_data()
    model = GreyBoxODE(lotka_volterra, TRUE, validation_fraction=0.25, max_epochs=2, refine_steps=2,
                       **FAST).fit(data)
    assert model.n_residuals_ < sum(int((~np.isnan(tr.y)).sum()) for tr in data)


# -- scikit-learn conventions, files ----------------------------------------------------

def test_not_fitted_errors():
    model = GreyBoxODE(lotka_volterra, START)
    with pytest.raises(NotFittedError):
        model.predict(t=[0, 1], x0=[1.0, 1.0])
    with pytest.raises(NotFittedError):
        model.confidence_intervals()


def test_same_seed_same_parameters_and_save_load_is_exact(tmp_path):
    data = short_data()
    settings = dict(bounds=POSITIVE, max_epochs=3, refine_steps=2, **FAST)
    first = GreyBoxODE(lotka_volterra, START, **settings).fit(data)
    second = GreyBoxODE(lotka_volterra, START, **settings).fit(data)
    assert first.params_ == second.params_
    path = sysid.save(first, tmp_path / "greybox.sysid")
    with pytest.raises(ModelFileError, match="pass it again"):
        sysid.load(path)
    loaded = sysid.load(path, f=lotka_volterra)
    assert loaded.params_ == first.params_
    pd.testing.assert_frame_equal(loaded.confidence_intervals(), first.confidence_intervals(), check_exact=True)
    t = np.linspace(0, 3, 9)
    np.testing.assert_array_equal(loaded.predict(t=t, x0=[1.5, 1.0]), first.predict(t=t, x0=[1.5, 1.0]))


def test_predicts_a_new_experiment(fitted):
    lv = truth("lotka_volterra")
    t = np.linspace(0, 5, 30)
    expected = lv.simulate(t, [1.8, 1.2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pred = fitted.predict(t=t, x0=[1.8, 1.2])
    assert np.max(np.abs(pred - expected)) < 0.1 * np.max(np.abs(expected))


@pytest.mark.slow
def test_default_settings_recover_lotka_volterra(lv_data):
    model = GreyBoxODE(lotka_volterra, START, bounds=POSITIVE, verbose=False).fit(lv_data)
    table = model.confidence_intervals()
    for name, value in TRUE.items():
        assert abs(model.params_[name] - value) < 0.05 * value
        assert table.loc[name, "lower"] < value < table.loc[name, "upper"]
