"""HybridODE: known physics plus a learned correction that recovers the missing terms."""

import numpy as np
import pytest
import torch

import sysid
import sysid.io
from sysid.datasets import simulate
from sysid.errors import ConfigError, DataError, ModelFileError, NotFittedError
from sysid.estimators._hybrid import HybridODE

FAST = dict(gradient="backprop", rtol=1e-4, atol=1e-6, verbose=False)
KNOWN = {"alpha": 1.5, "gamma": 3.0}


def growth_and_death(t, x, p, u):
    """Lotka-Volterra without its interaction terms."""
    return torch.stack([p["alpha"] * x[:, 0], -p["gamma"] * x[:, 1]], dim=-1)


@pytest.fixture(scope="module")
def split():
    data = simulate("lotka_volterra", n_trajectories=4, n_samples=60, noise=0.05, irregular=True, random_state=0)
    return data.split(test_trajectories=["run3"])


@pytest.fixture(scope="module")
def fitted(split):
    train, _ = split
    return HybridODE(growth_and_death, KNOWN, fixed=["alpha", "gamma"], max_epochs=1, lbfgs_steps=60,
                     **FAST).fit(train)


def short_data():
    return simulate("lotka_volterra", n_trajectories=2, n_samples=20, t_span=(0, 3), noise=0.02, random_state=1)


def test_correction_learns_the_missing_interaction_terms(fitted, split):
    train, test = split
    assert fitted.score(test) > 0.9  # a trajectory it never saw
    assert fitted.params_ == KNOWN
    x = np.concatenate([tr.y for tr in train])
    x = x[~np.isnan(x).any(axis=1)]
    interaction = np.stack([-x[:, 0] * x[:, 1], x[:, 0] * x[:, 1]], axis=1)
    learned = fitted.correction(x)
    relative = np.linalg.norm(learned - interaction, axis=0) / np.linalg.norm(interaction, axis=0)
    assert np.all(relative < 0.1), relative
    # vector_field = known part + correction
    known = np.stack([1.5 * x[:, 0], -3.0 * x[:, 1]], axis=1)
    np.testing.assert_allclose(fitted.vector_field(x), known + learned, rtol=1e-10, atol=1e-10)


def test_correction_accepts_one_state_and_checks_shape(fitted):
    assert fitted.correction([2.0, 1.0]).shape == (2,)
    with pytest.raises(DataError, match="x must have 2 columns"):
        fitted.correction(np.ones((3, 5)))


def test_correction_penalty_is_part_of_the_loss_during_fit_only():
    model = HybridODE(growth_and_death, KNOWN, fixed=["alpha", "gamma"], hidden=(8,), max_epochs=2,
                      lbfgs_steps=0, correction_penalty=0.5, **FAST)
    seen = []
    original = model._field_penalty

    def spy():
        value = original()
        seen.append(None if value is None else float(value.detach()))
        return value

    model._field_penalty = spy
    model.fit(short_data())
    assert seen and all(v is not None and v > 0 for v in seen)
    assert not hasattr(model, "_penalty_points")
    assert model._field_penalty() is None


def test_free_known_parameters_are_reported():
    model = HybridODE(growth_and_death, {"alpha": 1.0, "gamma": 2.0}, bounds={"alpha": (0, None)}, hidden=(8,),
                      max_epochs=2, lbfgs_steps=0, **FAST).fit(short_data())
    assert set(model.params_) == {"alpha", "gamma"} and model.params_["alpha"] > 0


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"known": lambda t, x, p, u: x.sum(dim=1)}, r"known returned shape \(2,\)"),
    ({"params": {"alpha": 1.0}}, "looked up parameter 'gamma'"),
    ({"fixed": ["delta"]}, "fixed names 'delta', which is not a parameter"),
    ({"hidden": ()}, "hidden must be a non-empty tuple"),
    ({"activation": "sigmoid"}, "activation must be one of"),
    ({"correction_penalty": -1.0}, "correction_penalty must be a non-negative number"),
])
def test_bad_settings_are_reported_in_fit(kwargs, match):
    settings = {"known": growth_and_death, "params": KNOWN, **kwargs}
    with pytest.raises(ConfigError, match=match):
        HybridODE(**settings, max_epochs=1, **FAST).fit(short_data())



def test_not_fitted_errors():
    model = HybridODE(growth_and_death, KNOWN)
    with pytest.raises(NotFittedError):
        model.predict(t=[0, 1], x0=[1.0, 1.0])
    with pytest.raises(NotFittedError):
        model.correction([1.0, 1.0])


def test_same_seed_same_model_and_save_load_is_exact(tmp_path):
    data = short_data()
    settings = dict(fixed=["alpha", "gamma"], hidden=(8,), max_epochs=3, lbfgs_steps=10, **FAST)
    first = HybridODE(growth_and_death, KNOWN, **settings).fit(data)
    second = HybridODE(growth_and_death, KNOWN, **settings).fit(data)
    x = np.array([[1.0, 1.0], [2.5, 0.7]])
    np.testing.assert_array_equal(first.correction(x), second.correction(x))
    path = sysid.save(first, tmp_path / "hybrid.sysid")
    with pytest.raises(ModelFileError, match="known"):
        sysid.load(path)
    loaded = sysid.load(path, known=growth_and_death)
    np.testing.assert_array_equal(loaded.correction(x), first.correction(x))
    assert loaded.params_ == first.params_
    t = np.linspace(0, 3, 9)
    np.testing.assert_array_equal(loaded.predict(t=t, x0=[1.5, 1.0]), first.predict(t=t, x0=[1.5, 1.0]))


@pytest.mark.slow
def test_default_settings_learn_the_interaction(split):
    train, test = split
    model = HybridODE(growth_and_death, KNOWN, fixed=["alpha", "gamma"], verbose=False).fit(train)
    assert model.score(test) > 0.9
