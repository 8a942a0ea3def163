"""Fits that go wrong: each keeps the best parameters seen, warns with what happened and what to
change (FitWarning), and either finishes usable or raises FitError with that advice.

tests/estimators/test_neural_ode.py already covers a far-too-high learning rate for
NeuralODE, Ctrl-C and warm_start; these add the other failure modes, on tiny fits.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import sysid
from sysid.errors import FitError, FitWarning, SolverWarning
from sysid.estimators import GreyBoxODE, NeuralODE

from .conftest import TINY, decay_data

ADVICE = r"Try a lower lr, a smaller segment_length, looser rtol/atol, or a larger solver max_num_steps"
FAST = dict(TINY, collocation_steps=0, max_epochs=6)


def fit_recording(model, data):
    """Fit; return (model, FitError or None, the FitWarnings given)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.fit(data)
            error = None
        except FitError as exc:
            error = exc
    return model, error, [w for w in caught if issubclass(w.category, FitWarning)]


def assert_kept_best_and_usable(model, data) -> None:
    """After a failed or troubled fit, the model holds its best parameters and still predicts."""
    assert (
        model.best_epoch_ == model.history_.loc[model.history_["val_loss"].idxmin(), "epoch"] or model.best_epoch_ == -1
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SolverWarning)
        pred = model.predict(t=data[0].t, x0=data[0].y[0])
    assert pred.shape == data[0].y.shape  # NaN (with a SolverWarning) where the field cannot be integrated


def blows_up(t, x, p, u):
    """x' = a x^5: reaches infinity in finite time, so the solver's step size underflows."""
    return p["a"] * x**5


def stiff(t, x, p, u):
    """x' = -k x with k huge: an explicit solver needs ~k steps per unit time."""
    return -p["k"] * x


def test_step_size_underflow_in_exploding_dynamics_raises_fit_error_with_advice():
    data = decay_data(n_times=6)
    one_state = sysid.Trajectories.from_arrays([data[0].t], [data[0].y[:, :1]])
    model = GreyBoxODE(blows_up, {"a": 50.0}, refine_steps=0, rtol=0.1, atol=0.1, optimizer="adam", **FAST)
    model, error, caught = fit_recording(model, one_state)
    assert error is not None and "underflow in dt" in str(error)
    assert "training failed 5 times in a row" in str(error) and "best parameters (epoch -1) were kept" in str(error)
    assert len(caught) == 4 and all("rolled back to the best parameters" in str(w.message) for w in caught)
    assert all("Try a lower lr" in str(w.message) for w in caught)
    assert model.stop_reason_ == "failed"  # the model is left with the best parameters, not half-trained
    assert model.rhs_.field.params()["a"].item() == pytest.approx(50.0)
    assert_kept_best_and_usable(model, one_state)


def test_least_squares_fit_of_exploding_dynamics_raises_fit_error_naming_the_solver_failure():
    data = decay_data(n_times=6)
    one_state = sysid.Trajectories.from_arrays([data[0].t], [data[0].y[:, :1]])
    model = GreyBoxODE(blows_up, {"a": 50.0}, rtol=0.1, atol=0.1, collocation_steps=0, verbose=False)
    with pytest.raises(
        FitError,
        match=r"cannot simulate the model at its start \(underflow in dt.*Check the start "
        r"values in params=",
    ):
        model.fit(one_state)


def test_stiff_dynamics_exhaust_the_step_budget_and_raise_fit_error():
    data = decay_data()
    one_state = sysid.Trajectories.from_arrays([tr.t for tr in data], [tr.y[:, :1] for tr in data])
    model = GreyBoxODE(
        stiff, {"k": 1e5}, refine_steps=0, solver_options={"max_num_steps": 50}, optimizer="adam", **FAST
    )
    model, error, caught = fit_recording(model, one_state)
    assert error is not None
    assert "max_num_steps exceeded" in str(error) and "larger solver max_num_steps" in str(error)
    assert caught and all("max_num_steps exceeded" in str(w.message) for w in caught)


def test_step_budget_exhausted_in_every_validation_is_a_fit_error_not_a_silent_initial_model():
    # Training segments fit in 2 steps per interval but whole-trajectory validation never does:
    # no parameters can be validated, which used to return the untrained model silently.
    model, error, _ = fit_recording(NeuralODE(hidden=(4,), solver_options={"max_num_steps": 2}, **FAST), decay_data())
    assert error is not None
    assert "no parameters could be validated" in str(error) and "max_num_steps exceeded" in str(error)
    assert model.stop_reason_ == "failed" and len(model.history_) == FAST["max_epochs"] + 1


class NaNAfter:
    """Patch the vector field to return NaN for calls ``start`` to ``stop`` (counted from 1)."""

    def __init__(self, monkeypatch, start: int, stop: float):
        from sysid.integration import BatchedField as cls

        self.calls, self.start, self.stop = 0, start, stop
        original = cls.forward

        def forward(module, *args):
            self.calls += 1
            out = original(module, *args)
            return out * np.nan if self.start <= self.calls <= self.stop else out

        monkeypatch.setattr(cls, "forward", forward)


def test_nan_appearing_mid_training_is_rolled_back_and_the_fit_finishes_usable(monkeypatch):
    data = decay_data()
    reference, _, _ = fit_recording(NeuralODE(hidden=(4,), **FAST), data)
    nan = NaNAfter(monkeypatch, start=300, stop=302)  # a short burst of NaN after epoch 0
    model, error, caught = fit_recording(NeuralODE(hidden=(4,), **FAST), data)
    assert error is None and nan.calls > 302
    assert caught and any(s in str(caught[0].message) for s in ("NaN or infinite", "non-finite", "returns NaN/inf"))
    assert "rolled back to the best parameters and halved the learning rate" in str(caught[0].message)
    assert model.stop_reason_ == "max_epochs"
    assert np.isfinite(model.predict(data)[0].y).all()
    # the halving lasts: later epochs run at half the scheduled rate per failure (a failed epoch
    # does not advance the schedule), not back at the full rate after one epoch
    n = sum("rolled back" in str(w.message) for w in caught)
    last = FAST["max_epochs"] - 1
    lr, ref_lr = model.history_.set_index("epoch")["lr"], reference.history_.set_index("epoch")["lr"]
    assert np.isclose(lr[last], ref_lr[last - n] / 2**n)


def test_nan_that_never_goes_away_ends_in_fit_error_keeping_the_best_parameters(monkeypatch):
    data = decay_data()
    NaNAfter(monkeypatch, start=300, stop=np.inf)
    model, error, caught = fit_recording(NeuralODE(hidden=(4,), **{**FAST, "max_epochs": 12}), data)
    assert error is not None and "training failed 5 times in a row" in str(error)
    assert len(caught) >= 4
    assert model.stop_reason_ == "failed"
    best = model.history_["val_loss"].min()
    assert np.isfinite(best)  # the epochs before the NaN were validated and kept
    monkeypatch.undo()
    assert np.isfinite(model.predict(data)[0].y).all()


def test_learning_rate_far_too_high_for_grey_box_parameters():
    data = decay_data()
    model = GreyBoxODE(
        lambda t, x, p, u: torch.stack([-p["a"] * x[:, 0], -p["b"] * x[:, 1]], dim=-1),
        {"a": 1.0, "b": 1.0},
        refine_steps=0,
        lr=50.0,
        solver_options={"max_num_steps": 200},
        optimizer="adam",
        **{**FAST, "max_epochs": 8},
    )
    model, error, caught = fit_recording(model, data)
    assert caught, "a far too high rate must not pass silently"
    assert any("Try a lower lr" in str(w.message) for w in caught)
    if error is not None:
        assert "Try a lower lr" in str(error)
    else:
        assert np.isfinite(model.score(data))
    assert_kept_best_and_usable(model, data)


def test_prediction_step_budget_has_a_default_so_a_huge_horizon_cannot_hang(fitted, monkeypatch):
    import sysid.integration._solve as solve

    monkeypatch.setattr(solve, "DEFAULT_MAX_NUM_STEPS", 20)  # the real default is 10 000 per output interval
    with pytest.warns(SolverWarning, match=r"could not integrate .*max_num_steps exceeded.*raise solver_options"):
        pred = fitted["NeuralODE"].predict(t=[0.0, 1e12], x0=[1.0, 1.0])
    assert np.isnan(pred).all()
