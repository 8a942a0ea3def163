"""Partial observation: hidden dimensions start from a derivative embedding."""

import numpy as np
import pytest

import sysid
from sysid.training import embed_derivatives, smooth_trajectory


def test_embedding_is_the_scaled_derivative_and_its_rate():
    t = np.linspace(0.0, 6.0, 120)
    y = np.column_stack([2.0 * np.sin(t), np.cos(t)])
    spread, unit = np.array([2.0, 1.0]), 0.5
    embedded = embed_derivatives(smooth_trajectory(t, y), 3, spread, unit)
    inner = slice(10, -10)
    assert embedded.values.shape == (120, 5)
    np.testing.assert_allclose(embedded.values[inner, 2], unit * np.cos(t[inner]), atol=5e-3)
    np.testing.assert_allclose(embedded.values[inner, 3], -unit * np.sin(t[inner]), atol=5e-3)
    np.testing.assert_allclose(embedded.derivatives[inner, 2], -unit * np.sin(t[inner]), atol=5e-2)
    # a third hidden dimension has no observed state to embed: zero, and never fitted
    assert np.all(embedded.values[:, 4] == 0.0) and np.all(np.isnan(embedded.derivatives[:, 4]))


@pytest.mark.slow  # over 10 s: run by .ci/run's slow step, outside the default run
def test_hidden_states_follow_the_unmeasured_velocity():
    """Only x of a harmonic oscillator is observed; the hidden state must track v."""
    t = np.sort(np.random.default_rng(0).uniform(0, 12, 50))
    t[0] = 0.0
    runs = [(1.0, 0.0), (0.0, 1.5), (-1.2, 0.6)]
    xs = [np.column_stack([a * np.cos(t) + b * np.sin(t)]) for a, b in runs]
    data = sysid.Trajectories.from_arrays([t] * 3, xs, state_names=["x"])
    model = sysid.NeuralODE(
        hidden=(16,), n_augment=1, max_epochs=10, lbfgs_steps=20, collocation_steps=300, random_state=0, verbose=False
    ).fit(data)
    assert model.x0_.shape == (3, 2)
    assert model.score(data) > 0.95
    hidden = model.hidden_states(data)
    assert [h.shape for h in hidden] == [(50, 1)] * 3
    for (a, b), h in zip(runs, hidden):
        velocity = -a * np.sin(t) + b * np.cos(t)
        assert abs(np.corrcoef(h[:, 0], velocity)[0, 1]) > 0.95


def test_hidden_states_without_augmentation_are_empty():
    data = sysid.datasets.simulate("van_der_pol", n_trajectories=1, n_samples=20, random_state=0)
    model = sysid.NeuralODE(hidden=(8,), max_epochs=1, lbfgs_steps=0, collocation_steps=10, verbose=False).fit(data)
    assert model.hidden_states(data)[0].shape == (20, 0)


def test_hidden_states_needs_a_fitted_model():
    data = sysid.datasets.simulate("van_der_pol", n_trajectories=1, n_samples=20, random_state=0)
    with pytest.raises(sysid.NotFittedError):
        sysid.NeuralODE(n_augment=1).hidden_states(data)
