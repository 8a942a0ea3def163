"""Shared fixtures of the reliability tests: tiny data, every estimator fitted once, a work spy.

Fits are deliberately tiny (a 4-unit network, two epochs, no L-BFGS, five collocation
steps): these tests are about what happens around the numbers, not the numbers.
"""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

import sysid

TINY = {"max_epochs": 2, "lbfgs_steps": 0, "collocation_steps": 5, "gradient": "backprop", "verbose": False}
ESTIMATORS = ("NeuralODE", "SparseODE", "GreyBoxODE", "HybridODE", "SINDy", "ClassicalODE")


def decay_torch(t, x, p, u):
    """x' = -a x, v' = -b v (torch, batch first): the grey-box and hybrid right-hand side."""
    return torch.stack([-p["a"] * x[:, 0], -p["b"] * x[:, 1]], dim=-1)


def decay_numpy(t, x, p, u):
    """The same for ClassicalODE (one state vector at a time)."""
    return np.array([-p["a"] * x[0], -p["b"] * x[1]])


def make_estimator(name: str, **overrides):
    """An unfitted, tiny estimator of class ``name``."""
    from sysid.estimators import (
        ClassicalODE,
        GreyBoxODE,
        HybridODE,
        NeuralODE,
        SINDy,
        SparseODE,
    )

    makers = {
        "NeuralODE": lambda: NeuralODE(hidden=(4,), **TINY),
        "SparseODE": lambda: SparseODE(degree=1, threshold=0.05, n_threshold_rounds=0, **TINY),  # one training
        "GreyBoxODE": lambda: GreyBoxODE(decay_torch, {"a": 1.0, "b": 1.0}, refine_steps=0, **TINY),
        "HybridODE": lambda: HybridODE(decay_torch, {"a": 1.0, "b": 1.0}, hidden=(4,), **TINY),
        "SINDy": lambda: SINDy(degree=1),
        "ClassicalODE": lambda: ClassicalODE(decay_numpy, {"a": 1.0, "b": 1.0}, max_nfev=5),
    }
    return makers[name]().set_params(**overrides)


def decay_data(n_times: int = 12, inputs: bool = False, seed: int = 0) -> sysid.Trajectories:
    """Two runs of x' = -0.7 x, v' = -0.3 v (and an input u that does nothing), names 'a' and 'b'."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 2.0, n_times)
    ys = [np.c_[k * np.exp(-0.7 * t), k * np.exp(-0.3 * t)] + 1e-3 * rng.normal(size=(n_times, 2)) for k in (1, 2)]
    us = [np.sin(t)[:, None], np.cos(t)[:, None]] if inputs else None
    return sysid.Trajectories.from_arrays(
        [t, t], ys, us, state_names=["x", "v"], input_names=["u"] if inputs else None, names=["a", "b"]
    )


@pytest.fixture(scope="session")
def decay() -> sysid.Trajectories:
    return decay_data()


@pytest.fixture(scope="session")
def forced() -> sysid.Trajectories:
    return decay_data(inputs=True)


@pytest.fixture(scope="session")
def fitted(decay) -> dict:
    """Every estimator, fitted once on ``decay``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {name: make_estimator(name).fit(decay) for name in ESTIMATORS}


@pytest.fixture(scope="session")
def fitted_forced(forced) -> dict:
    """Two estimators fitted with an input (the input checks live in the shared base class)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {name: make_estimator(name).fit(forced) for name in ("NeuralODE", "SINDy")}


@pytest.fixture(scope="session")
def frame(decay) -> pd.DataFrame:
    """``decay`` as a long DataFrame with columns trajectory, t, x, v."""
    return decay.to_pandas()


class WorkSpy(SimpleNamespace):
    """Counts calls into the numerical work: ODE solves, least squares, pysindy, collocation."""


@pytest.fixture
def work(monkeypatch: pytest.MonkeyPatch) -> WorkSpy:
    """Wrap every entry point of real work with a counter (the calls still go through)."""
    import pysindy

    import sysid.estimators._classical as classical
    import sysid.estimators._ode_warm_start as ode_warm_start
    import sysid.estimators._sindy as sindy
    import sysid.integration._solve as solve
    import sysid.training._least_squares as parametric_lsq

    spy = WorkSpy(calls=[])

    def counted(owner, name):
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            spy.calls.append(f"{getattr(owner, '__name__', owner)}.{name}")
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper)

    for owner, name in [
        (solve, "odeint"),
        (solve, "odeint_adjoint"),
        (classical, "least_squares"),
        (parametric_lsq, "least_squares"),
        (classical, "simulate_numpy"),
        (sindy, "simulate_numpy"),
        (ode_warm_start, "collocation_fit"),
        (pysindy.SINDy, "fit"),
    ]:
        counted(owner, name)
    return spy  # monkeypatch undoes the counting wrappers
