"""NeuralODE says when its fitted model does not reproduce its own training data."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import sysid


def _swing(n: int = 120) -> sysid.Trajectories:
    t = np.arange(n) / 50.0
    y = np.column_stack([np.cos(2 * np.pi * 5.0 * t), -np.sin(2 * np.pi * 5.0 * t)])
    return sysid.Trajectories.from_arrays([t], [y], state_names=["x", "v"])


def test_a_fit_that_does_not_reproduce_its_data_warns_with_its_free_run_error() -> None:
    starved = sysid.NeuralODE(
        hidden=(8,), max_epochs=1, lbfgs_steps=0, collocation_steps=0, horizons=None, random_state=0
    )
    with pytest.warns(sysid.FitWarning, match=r"RMSE over its training trajectories is \S+ standard deviations"):
        starved.fit(_swing())
    best = float(np.nanmin(starved.history_["val_loss"]))
    assert best > sysid.training.POOR_FREE_RUN


def test_a_fit_that_reproduces_its_data_does_not_warn() -> None:
    t = np.linspace(0.0, 3.0, 40)
    data = sysid.Trajectories.from_arrays([t], [np.exp(-t)[:, None]], state_names=["x"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", sysid.FitWarning)
        model = sysid.NeuralODE(hidden=(8,), max_epochs=30, random_state=0).fit(data)
    assert float(np.nanmin(model.history_["val_loss"])) < sysid.training.POOR_FREE_RUN
