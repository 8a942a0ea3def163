"""distill: equations from a fitted model's vector field."""

from types import SimpleNamespace

import numpy as np
import pysindy as ps
import pytest
import torch

from sysid import GreyBoxODE
from sysid.datasets import simulate, truth
from sysid.errors import ConfigError, DataError, NotFittedError
from sysid.estimators._distill import DistilledEquations, distill

LV = truth("lotka_volterra")


class FakeModel:
    """A 'fitted model' whose vector field is exactly Lotka-Volterra (optionally forced)."""

    def __init__(self, forced=False):
        self.state_names_ = ["prey", "predator"]
        self.input_names_ = ["u"] if forced else []
        self.n_controls_in_ = len(self.input_names_)
        self.scaling_ = SimpleNamespace(center=np.array([3.0, 1.5]), spread=np.array([1.5, 1.0]),
                                        input_center=np.array([0.0] if forced else []),
                                        input_spread=np.array([1.0] if forced else []))
        self.calls = []

    def __sklearn_is_fitted__(self):
        return True

    def vector_field(self, x, t=0.0, u=None):
        self.calls.append(np.asarray(x).copy())
        out = LV.rhs(0.0, np.asarray(x))
        if self.input_names_:
            out = out + np.column_stack([0.5 * np.asarray(u)[:, 0], np.zeros(len(out))])
        return out


def lotka_volterra(t, x, p, u):
    prey, predator = x[:, 0], x[:, 1]
    return torch.stack([p["alpha"] * prey - p["beta"] * prey * predator,
                        p["delta"] * prey * predator - p["gamma"] * predator], dim=-1)


def test_exact_field_gives_the_lotka_volterra_equations():
    result = distill(FakeModel())
    assert isinstance(result, DistilledEquations)
    assert result.equations() == ["d prey/dt = 1.50 prey - 1.00 prey predator",
                                  "d predator/dt = -3.00 predator + 1.00 prey predator"]
    table = result.coefficients_
    assert list(table.columns) == ["prey", "predator"]
    assert list(table.index) == ["1", "prey", "predator", "prey^2", "prey predator", "predator^2"]
    for state, row in LV.coefficients.items():
        for term, value in row.items():
            assert table.loc[term, state] == pytest.approx(value, rel=1e-6)
    assert (table != 0).sum().sum() == 4
    assert result.score_ == pytest.approx(1.0)
    x = np.array([[2.0, 1.0], [4.0, 3.0]])
    np.testing.assert_allclose(result.vector_field(x), LV.rhs(0.0, x), rtol=1e-6)
    assert "DistilledEquations(R^2=1.0000)" in repr(result)


def test_sampling_box_comes_from_scaling_data_or_bounds():
    model = FakeModel()
    default = distill(model, n_samples=50)
    np.testing.assert_allclose(default.box_["low"], [0.0, -0.5])
    np.testing.assert_allclose(default.box_["high"], [6.0, 3.5])
    data = simulate("lotka_volterra", n_trajectories=2, n_samples=30, noise=0.0, random_state=0)
    from_data = distill(model, data=data, n_samples=50)
    low, high = data.observed_range()
    assert np.all(from_data.box_["low"] < low) and np.all(from_data.box_["high"] > high)
    assert np.all(model.calls[-1] >= from_data.box_["low"].to_numpy())
    explicit = distill(model, bounds=[[1.0, 5.0], [0.5, 3.5]], n_samples=50)
    assert explicit.box_.loc["predator", "high"] == 3.5
    assert model.calls[-1][:, 0].min() >= 1.0 and model.calls[-1][:, 0].max() <= 5.0
    assert explicit.equations()[0] == "d prey/dt = 1.50 prey - 1.00 prey predator"


def test_inputs_are_sampled_and_appear_as_terms():
    result = distill(FakeModel(forced=True))
    assert result.coefficients_.loc["u", "prey"] == pytest.approx(0.5, rel=1e-6)
    assert result.equations()[0] == "d prey/dt = 1.50 prey + 0.500 u - 1.00 prey predator"


def test_same_seed_same_equations_and_library_not_mutated():
    library = ps.PolynomialLibrary(degree=3)
    first = distill(FakeModel(), library=library, n_samples=300, random_state=3)
    second = distill(FakeModel(), library=library, n_samples=300, random_state=3)
    assert first.coefficients_.equals(second.coefficients_)
    assert "prey^3" in first.coefficients_.index
    assert not hasattr(library, "n_features_in_")  # the user's library was copied, not fitted


def test_a_fitted_greybox_model_distils_to_its_equations():
    data = simulate("lotka_volterra", n_trajectories=2, n_samples=20, t_span=(0, 3), noise=0.02, random_state=1)
    model = GreyBoxODE(lotka_volterra, LV.params, max_epochs=1, collocation_steps=0, refine_steps=0,
                       gradient="backprop", rtol=1e-4, atol=1e-6, verbose=False).fit(data)
    result = distill(model, data=data)
    coefficients = result.coefficients_
    assert (coefficients != 0).sum().sum() == 4
    assert coefficients.loc["prey", "prey"] == pytest.approx(model.params_["alpha"], rel=1e-6)
    assert coefficients.loc["prey predator", "predator"] == pytest.approx(model.params_["delta"], rel=1e-6)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"library": "fourier"}, ConfigError, "library must be 'polynomial' or a pysindy"),
    ({"degree": 0}, ConfigError, "degree must be a positive integer"),
    ({"threshold": -1}, ConfigError, "threshold must be a non-negative number"),
    ({"n_samples": 1}, ConfigError, "n_samples must be an integer >= 2"),
    ({"bounds": [[0, 1]]}, ConfigError, r"bounds must be an array \(n_states \+ n_inputs, 2\)"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        distill(FakeModel(), **kwargs)


def test_unfitted_or_unsuitable_models_are_refused():
    with pytest.raises(NotFittedError):
        distill(GreyBoxODE(lotka_volterra, LV.params))
    with pytest.raises(ConfigError, match="vector_field"):
        distill(object())

    class Exploding(FakeModel):
        def vector_field(self, x, t=0.0, u=None):
            return np.full(np.shape(x), np.inf)

    with pytest.raises(DataError, match="not finite"):
        distill(Exploding())
