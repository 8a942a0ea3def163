"""HybridODE and UDE fields: the physical parameters' uncertainty, conditional on the networks (issue #17)."""

import warnings

import numpy as np
import pytest
import torch

import sysid
from sysid.parameters import TABLE_COLUMNS
from tests.fields.test_practitioner_fields import oscillator  # noqa: F401 - a fixture: x' = v, v' = -4 x - 0.4 v

FAST = {
    "max_epochs": 30,
    "lbfgs_steps": 20,
    "hidden": (8,),
    "verbose": False,
    "gradient": "backprop",
    "random_state": 0,
}


def neural_friction(t, x, p, u, nn):
    """x' = v, v' = -k x + (friction, unknown) nn["friction"](v)."""
    return torch.stack([x[:, 1], -p["k"] * x[:, 0] + nn["friction"](x[:, 1:2])], -1)


def friction_twice(t, x, p, u, nn):
    """As neural_friction with a linear friction -c v as well, which the network can take over."""
    return torch.stack([x[:, 1], -p["k"] * x[:, 0] - p["c"] * x[:, 1] + nn["friction"](x[:, 1:2])], -1)


@pytest.fixture(scope="module")
def ude(oscillator):  # noqa: F811
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sysid.ExtrapolationWarning)
        return sysid.HybridODE(neural_friction, {"k": 2.0}, networks={"friction": 1}, **FAST).fit(oscillator)


def test_the_known_stiffness_lies_in_a_narrow_95_percent_interval(ude):
    row = ude.confidence_intervals(0.95).loc["k"]
    assert row["status"] == "estimated"
    assert row["lower"] < 4.0 < row["upper"]  # the simulated truth
    assert 0 < row["upper"] - row["lower"] < 0.2  # 5% of the value: informative, not absurdly wide
    assert ude.params_stderr_["k"] == pytest.approx(row["stderr"])
    assert ude.network_overlap_["k"] < 0.5  # -k x cannot be written as a function of v alone
    assert ude.covariance_.shape == (1, 1) and ude.refined_


def test_the_table_has_greybox_s_shape(ude, oscillator):  # noqa: F811
    def linear(t, x, p, u):
        return torch.stack([x[:, 1], -p["k"] * x[:, 0] - p["c"] * x[:, 1]], -1)

    grey = sysid.GreyBoxODE(linear, {"k": 2.0, "c": 0.1}, verbose=False).fit(oscillator)
    mine, theirs = ude.confidence_intervals(), grey.confidence_intervals()
    assert list(mine.columns) == list(theirs.columns) == list(TABLE_COLUMNS)
    assert mine.index.name == theirs.index.name == "parameter"
    assert mine.dtypes.equals(theirs.dtypes)
    for name in (
        "params_stderr_",
        "covariance_",
        "unidentifiable_",
        "dof_",
        "residual_variance_",
        "noise_levels_",
        "jacobian_condition_",
        "n_residuals_",
    ):
        assert type(getattr(ude, name)) is type(getattr(grey, name)), name


@pytest.mark.slow  # about 6 s: run by .ci/run's slow step, outside the default run
def test_a_parameter_a_network_can_absorb_is_flagged(oscillator):  # noqa: F811
    model = sysid.HybridODE(friction_twice, {"k": 2.0, "c": 0.1}, networks={"friction": 1}, **FAST)
    with pytest.warns(sysid.FitWarning, match=r"\['c'\] are not identifiable: the networks can reproduce"):
        model.fit(oscillator)
    table = model.confidence_intervals()
    assert table.loc["c", "status"] == "not identifiable" and np.isinf(table.loc["c", "stderr"])
    assert table.loc["k", "status"] == "estimated" and table.loc["k", "lower"] < 4.0 < table.loc["k", "upper"]
    assert model.unidentifiable_ == ["c"] and model.network_overlap_["c"] > 0.99
    assert np.isnan(model.covariance_.loc["c", "k"]) and np.isfinite(model.covariance_.loc["k", "k"])


@pytest.mark.slow  # about 5 s: run by .ci/run's slow step, outside the default run
def test_an_additive_correction_of_every_state_absorbs_the_physics(oscillator):  # noqa: F811
    def spring(t, x, p, u):
        return torch.stack([x[:, 1], -p["k"] * x[:, 0]], -1)

    model = sysid.HybridODE(spring, {"k": 2.0}, **FAST)
    with pytest.warns(sysid.FitWarning, match="networks can reproduce"):
        model.fit(oscillator)
    assert model.confidence_intervals().loc["k", "status"] == "not identifiable"


@pytest.mark.slow  # about 4 s: run by .ci/run's slow step, outside the default run
def test_fixed_parameters_only_give_an_empty_covariance(oscillator):  # noqa: F811
    model = sysid.HybridODE(neural_friction, {"k": 4.0}, fixed=["k"], networks={"friction": 1}, **FAST)
    model.fit(oscillator)
    assert model.confidence_intervals().loc["k"].tolist() == [4.0, 0.0, 4.0, 4.0, "fixed"]
    assert model.covariance_.shape == (0, 0) and not model.refined_


def test_save_and_load_keep_the_uncertainty_and_the_predictions(ude, tmp_path):
    path = sysid.save(ude, tmp_path / "ude.sysid")
    loaded = sysid.load(path, f=neural_friction)
    assert loaded.params_ == ude.params_ and loaded.params_stderr_ == ude.params_stderr_
    assert loaded.network_overlap_ == ude.network_overlap_ and loaded.unidentifiable_ == ude.unidentifiable_
    assert loaded.confidence_intervals().equals(ude.confidence_intervals())
    np.testing.assert_array_equal(loaded.covariance_.to_numpy(), ude.covariance_.to_numpy())
    t = np.linspace(0, 4, 11)
    np.testing.assert_array_equal(loaded.predict(t=t, x0=[0.5, -0.5]), ude.predict(t=t, x0=[0.5, -0.5]))
