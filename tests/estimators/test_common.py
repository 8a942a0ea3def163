"""One conformance test over every estimator (scikit-learn's test_common.py, for trajectories).

scikit-learn's ``check_estimator`` skips every data check for estimators that do not take
2-D arrays, so the checks that need no data run as they are and the ones that need data are
ported onto a small trajectory fixture: fit returns self, is repeatable and idempotent,
leaves the parameters alone; an unfitted model raises NotFittedError; a pickle and a model
file give identical predictions; NaN and inf input is refused with our DataError.
"""

from __future__ import annotations

import inspect
import pickle
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.utils.estimator_checks import (
    check_do_not_raise_errors_in_init_or_set_params,
    check_estimator_cloneable,
    check_estimator_repr,
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)

import sysid


def _lotka_volterra_torch(t, x, p, u):
    prey, predator = x[:, 0], x[:, 1]
    return torch.stack([(p["alpha"] - p["beta"] * predator) * prey, (p["delta"] * prey - p["gamma"]) * predator], -1)


def _lotka_volterra_numpy(t, x, p, u):
    return [(p["alpha"] - p["beta"] * x[1]) * x[0], (p["delta"] * x[0] - p["gamma"]) * x[1]]


def _growth(t, x, p, u):
    return torch.stack([p["alpha"] * x[:, 0], -p["gamma"] * x[:, 1]], -1)


START = {"alpha": 1.0, "beta": 0.5, "delta": 0.5, "gamma": 1.0}
FAST = dict(max_epochs=3, lbfgs_steps=0, collocation_steps=10, verbose=False, gradient="backprop")

#: Every estimator, built with small settings (name -> factory of an unfitted instance).
ESTIMATORS: dict[str, Callable[[], object]] = {
    "NeuralODE": lambda: sysid.NeuralODE(hidden=(8,), **FAST),
    "SparseODE": lambda: sysid.SparseODE(degree=1, n_threshold_rounds=1, **FAST),
    "GreyBoxODE": lambda: sysid.GreyBoxODE(_lotka_volterra_torch, START, refine_steps=2, **FAST),
    "HybridODE": lambda: sysid.HybridODE(_growth, {"alpha": 1.0, "gamma": 1.0}, hidden=(8,), **FAST),
    "SINDy": lambda: sysid.SINDy(),
    "ClassicalODE": lambda: sysid.ClassicalODE(_lotka_volterra_numpy, START, n_starts=1),
    "NeuralODE with a torch module field": lambda: sysid.NeuralODE(_Linear(), **FAST),
    "NeuralODE, structured field, saturating sensor": lambda: sysid.NeuralODE(
        field=sysid.fields.Structured(
            reads={"prey": ["prey", "predator"], "predator": ["prey", "predator"]}, hidden=(4,)
        ),
        output=sysid.Sensor(high={"prey": 4.0}),
        **FAST,
    ),
    "NeuralODE, linear plus network": lambda: sysid.NeuralODE(field=sysid.fields.LinearMLP(hidden=(4,)), **FAST),
    "HybridODE as a UDE": lambda: sysid.HybridODE(_ude, {"alpha": 1.0}, networks={"predation": 1}, hidden=(4,), **FAST),
}


def _ude(t, x, p, u, nn):
    prey, predator = x[:, 0], x[:, 1]
    return torch.stack([p["alpha"] * prey - nn["predation"](x), nn["predation"](x) - predator], -1)


class _Linear(torch.nn.Module):
    """A user's own field: dx/dt = A x, A learned."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Parameter(torch.zeros(2, 2, dtype=torch.float64))

    def forward(self, t, x, u):
        return x @ self.a.T


@pytest.fixture(scope="module")
def data() -> sysid.Trajectories:
    return sysid.datasets.simulate("lotka_volterra", n_trajectories=2, n_samples=15, noise=0.01, random_state=0)


@dataclass
class _Fit:
    """One estimator fitted on the fixture: what ``fit`` returned, and the parameters before it."""

    model: object
    returned: object
    params_before: dict


@pytest.fixture(scope="module")
def fits(data) -> dict[str, _Fit]:
    out = {}
    for name, make in ESTIMATORS.items():
        model = make()
        before = clone(model).get_params()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[name] = _Fit(model, model.fit(data), before)
    return out


@pytest.fixture(scope="module")
def fitted(fits) -> dict[str, object]:
    return {name: fit.model for name, fit in fits.items()}


@pytest.fixture(scope="module")
def predicted(data, fitted) -> dict[str, np.ndarray]:
    """The fitted models' predictions of the fixture, made once (a prediction estimates each start state)."""
    return {name: _predict(model, data) for name, model in fitted.items()}


def _predict(model, data) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # extrapolation warnings of barely trained models
        return np.concatenate([tr.y for tr in model.predict(data)])


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_scikit_learn_checks_that_need_no_data(name):
    model = ESTIMATORS[name]()
    check_no_attributes_set_in_init(name, model)
    check_estimator_cloneable(name, model)
    check_estimator_repr(name, model)
    check_get_params_invariance(name, model)
    check_set_params(name, model)
    required = [
        p
        for p in inspect.signature(type(model)).parameters.values()
        if p.default is p.empty and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    ]
    check_parameters_default_constructible(name, model if required else type(model)())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # sklearn notes our ConfigErrors are raised in fit, as intended
        check_do_not_raise_errors_in_init_or_set_params(name, model)


def _same(a: dict, b: dict) -> bool:
    """Equal parameters; a torch module (a user's field) equals a copy with the same class and weights."""
    if a.keys() != b.keys():
        return False
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, torch.nn.Module):
            if (
                type(x) is not type(y)
                or x.state_dict().keys() != y.state_dict().keys()
                or not all(torch.equal(v, y.state_dict()[k]) for k, v in x.state_dict().items())
            ):
                return False
        elif x != y:
            return False
    return True


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_clone_keeps_every_parameter_nested_ones_included(name):
    model = ESTIMATORS[name]()
    twin = clone(model)
    assert _same(twin.get_params(), model.get_params())
    assert twin is not model


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_unfitted_models_raise_not_fitted(name, data):
    model = ESTIMATORS[name]()
    with pytest.raises(sysid.NotFittedError):
        model.predict(data)
    with pytest.raises(sysid.NotFittedError):
        model.score(data)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_fit_returns_self_and_leaves_the_parameters_alone(name, fits):
    fit = fits[name]  # the fixture's own fit (a fit costs up to 12 s here): fit twice is the slow test below
    assert fit.returned is fit.model
    assert _same(fit.model.get_params(), fit.params_before)


@pytest.mark.slow  # about 120 s over the estimators: run by .ci/run's slow step, outside the default run
@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_fitting_twice_gives_the_same_model(name, data, predicted):
    model = ESTIMATORS[name]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(data)
    np.testing.assert_array_equal(_predict(model, data), predicted[name])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(data)  # idempotent: a second fit starts afresh
    np.testing.assert_array_equal(_predict(model, data), predicted[name])


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_a_pickle_predicts_identically(name, data, fitted, predicted):
    twin = pickle.loads(pickle.dumps(fitted[name]))
    np.testing.assert_array_equal(_predict(twin, data), predicted[name])


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_a_model_file_predicts_identically(name, data, fitted, predicted, tmp_path):
    model = fitted[name]
    path = sysid.save(model, tmp_path / "model.sysid")
    own_f = {"GreyBoxODE": _lotka_volterra_torch, "HybridODE as a UDE": _ude}.get(name, _lotka_volterra_numpy)
    functions = {"f": own_f, "known": _growth, "field": _Linear()}
    loaded = sysid.load(path, **functions)
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(_predict(loaded, data), predicted[name])


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_infinite_states_and_nan_times_are_refused_naming_the_entry(name, data):
    y, t = data[0].y.copy(), data[0].t.copy()
    y[3, 1] = np.inf  # NaN states are missing observations; inf is an error
    with pytest.raises(sysid.DataError, match=r"x1.*row 3|row 3.*x1"):
        ESTIMATORS[name]().fit(y, t=t)
    t[5] = np.nan
    with pytest.raises(sysid.DataError, match="time"):
        ESTIMATORS[name]().fit(data[0].y, t=t)
