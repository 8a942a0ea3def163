"""Field parts: what they accept, what they refuse, and the modules they build."""

import numpy as np
import pytest
import torch
from sklearn.base import clone

import sysid
from sysid.fields import (
    MLP,
    UDE,
    FieldContext,
    GreyBox,
    Hybrid,
    LinearMLP,
    ModuleField,
    Polynomial,
    Scaling,
    Structured,
    as_field_spec,
)


def context(names=("x", "v"), inputs=(), n_augment=0) -> FieldContext:
    n = len(names) + n_augment
    scaling = Scaling(np.array([1.0] * n), np.array([2.0] * n), np.zeros(len(inputs)), np.ones(len(inputs)), 0.5)
    return FieldContext(list(names), list(inputs), n_augment, scaling, torch.Generator().manual_seed(0), torch.float64)


def decay(t, x, p, u):
    return -p["k"] * x


@pytest.mark.parametrize(
    "spec",
    [
        MLP(hidden=(4,)),
        LinearMLP(hidden=(4,)),
        Polynomial(degree=2),
        GreyBox(f=decay, params={"k": 1.0}),
        Hybrid(known=decay, params={"k": 1.0}),
        Structured(reads={"x": ["x"], "v": ["x", "v"]}),
    ],
)
def test_every_part_builds_a_field_of_the_data_shape(spec):
    module = spec.build(context())
    x = torch.ones(5, 2, dtype=torch.float64)
    assert module(torch.zeros(5), x, None).shape == (5, 2)
    assert clone(spec) == spec and clone(spec) is not spec


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (MLP(hidden=(0,)), r"MLP: hidden must be a non-empty tuple of positive ints"),
        (MLP(activation="sigmoid"), r"MLP: activation must be one of .* got 'sigmoid'"),
        (LinearMLP(time_dependent="yes"), r"LinearMLP: time_dependent must be True or False"),
        (Polynomial(degree=-1), r"Polynomial: degree must be a non-negative integer or 'auto', got -1"),
        (GreyBox(f=decay, params={}), r"GreyBox needs params"),
        (GreyBox(f="decay", params={"k": 1.0}), r"GreyBox: f must be a callable f\(t, x, p, u\)"),
        (Structured(), r"Structured needs reads"),
        (Structured(reads={"x": "x", "v": ["v"]}), r"reads\['x'\] must be a non-empty list"),
        (UDE(f=decay, params={"k": 1.0}), r"UDE needs networks"),
    ],
)
def test_bad_settings_name_the_part_and_parameter(spec, match):
    with pytest.raises(sysid.ConfigError, match=match):
        spec.check()


@pytest.mark.parametrize(
    "spec", [MLP(hidden=(4,)), LinearMLP(hidden=(4,)), Structured(reads={"x": ["x", "u"], "v": ["v"]})]
)
def test_a_field_built_with_inputs_refuses_to_run_without_them(spec):
    module = spec.build(context(inputs=("u",)))
    x = torch.ones(5, 2, dtype=torch.float64)
    assert module(torch.zeros(5), x, torch.ones(5, 1, dtype=torch.float64)).shape == (5, 2)
    with pytest.raises(sysid.DataError, match=r"reads 1 input\(s\) but was called with u=None"):
        module(torch.zeros(5), x, None)


def test_a_torch_module_is_a_field_and_a_bad_one_is_refused_at_build():
    class Wrong(torch.nn.Module):
        def forward(self, t, x, u):
            return x[:, :1]

    assert isinstance(as_field_spec(Wrong()), ModuleField)
    with pytest.raises(sysid.ConfigError, match=r"returned shape \(2, 1\) for a probe batch of x with shape \(2, 2\)"):
        as_field_spec(Wrong()).build(context())
    with pytest.raises(sysid.ConfigError, match="field must be a field part"):
        as_field_spec("mlp")


def test_flat_keywords_reach_the_part_that_owns_them():
    model = sysid.NeuralODE(hidden=(8,), rtol=1e-7, max_epochs=3)
    assert model.field == LinearMLP(hidden=(8,), linear_start="zero")  # NeuralODE's default field, hidden set
    assert model.solver.rtol == 1e-7 and model.training.max_epochs == 3 and model.training.horizons == (20, 80, None)
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'hiden'.* Did you mean 'hidden'"):
        sysid.NeuralODE(hiden=(8,))
    with pytest.raises(TypeError, match=r"'hidden' is a parameter of LinearMLP, but this field is Polynomial"):
        sysid.NeuralODE(field=Polynomial(), hidden=(8,))
    assert sysid.SparseODE(degree=3).get_params()["field__degree"] == 3
    given = MLP(hidden=(4,))
    model = sysid.NeuralODE(field=given, activation="relu")
    assert given.activation == "tanh" and model.field.activation == "relu"  # the user's part is not changed


def test_nested_parameters_work_with_set_params_and_grid_search():
    from sklearn.model_selection import ParameterGrid

    model = sysid.NeuralODE()
    model.set_params(field__hidden=(16,), training__lr=5e-3, rtol=1e-5)
    assert model.field.hidden == (16,) and model.training.lr == 5e-3 and model.solver.rtol == 1e-5
    for params in ParameterGrid({"field__hidden": [(4,), (8,)], "training__max_epochs": [1]}):
        assert clone(model).set_params(**params).get_params()["field__hidden"] == params["field__hidden"]
