"""Training(errors="log"): relative (log) errors for positive data, and the errors it refuses."""

import warnings

import numpy as np
import pytest
import torch

import sysid
from sysid import SparseODE, Training
from sysid.errors import ConfigError, DataError
from sysid.training import check_positive, compare_errors

FAST = {"gradient": "backprop", "rtol": 1e-4, "atol": 1e-6, "verbose": False}


def test_log_errors_compare_physical_values_on_both_array_kinds():
    center, spread, floor = np.array([5.0]), np.array([2.0]), np.array([0.01])
    pred, obs = np.array([[0.5], [-10.0]]), np.array([[0.0], [0.0]])  # physical 6 vs 5; -15 vs 5
    out = compare_errors(pred, obs, "log", center, spread, floor)
    assert out[0, 0] == pytest.approx(np.log(6 / 5)) and out[1, 0] == pytest.approx(np.log(0.01 / 5))
    p, o, c, s = (torch.as_tensor(a) for a in (pred, obs, center, spread))
    as_torch = compare_errors(p, o, "log", c, s, floor)
    np.testing.assert_allclose(as_torch.numpy(), out)
    assert compare_errors(pred, obs, "additive", center, spread, floor).tolist() == [[0.5], [-10.0]]


def test_errors_setting_is_checked():
    with pytest.raises(ConfigError, match="errors must be one of"):
        Training(errors="relative").check()
    with pytest.raises(ConfigError, match="errors='log' needs optimizer='adam'"):
        Training(errors="log", optimizer="least_squares").check()
    with pytest.raises(DataError, match=r"'b' has 2 value\(s\) <= 0 \(smallest -1\)"):
        check_positive([np.array([[1.0, 0.0], [2.0, -1.0]])], ["a", "b"])


def test_non_positive_data_are_refused_before_training():
    t = np.linspace(0, 1, 20)
    data = sysid.Trajectories.from_arrays([t], [np.column_stack([np.exp(-t), np.sin(3 * t)])], state_names=["a", "b"])
    with pytest.raises(DataError, match=r"'b' has .* value"):
        SparseODE(degree=1, errors="log", max_epochs=2, **FAST).fit(data)


def test_grey_box_models_refuse_log_errors():
    def decay(t, x, p, u):
        return -p["k"] * x

    t = np.linspace(0, 1, 20)
    data = sysid.Trajectories.from_arrays([t], [np.exp(-t)[:, None]], state_names=["a"])
    model = sysid.GreyBoxODE(decay, {"k": 0.5}, training=Training(optimizer="adam", errors="log", max_epochs=2))
    with pytest.raises(ConfigError, match=r"errors='log'. is not supported yet"):
        model.fit(data)


@pytest.mark.slow  # about 4 s: run by .ci/run's slow step, outside the default run
def test_log_errors_recover_a_decay_under_multiplicative_noise():
    t = np.linspace(0, 3, 40)
    rng = np.random.default_rng(0)
    y = 50.0 * np.exp(-1.5 * t) * np.exp(0.05 * rng.standard_normal(40))  # 50 down to 0.6: 5% errors
    data = sysid.Trajectories.from_arrays([t], [y[:, None]], state_names=["a"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SparseODE(degree=1, errors="log", max_epochs=30, **FAST).fit(data)
    assert set(model.coefficients_.index[model.coefficients_["a"] != 0]) == {"a"}
    assert model.coefficients_.loc["a", "a"] == pytest.approx(-1.5, rel=0.03)
    assert model.training_.errors == "log"
