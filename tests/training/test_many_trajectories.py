"""Many short trajectories: minibatches of them in one batched solve per step, and a free run whose
cost does not grow with their number."""

from __future__ import annotations

import numpy as np
import torch

import sysid
import sysid.integration._simulate as simulate_module
import sysid.training._shooting as shooting_module
from sysid.integration import BatchedField, SolverConfig, TimeParameters, simulate


def short_trajectories(n_traj=40, n_times=6, seed=0):
    """Exponential decays, each on its own irregular clock: every trajectory is one segment."""
    rng = np.random.default_rng(seed)
    ts, ys = [], []
    for _ in range(n_traj):
        t = np.sort(np.concatenate([[0.0], rng.uniform(0, 2, n_times - 1)]))
        ts.append(t)
        ys.append((rng.uniform(0.5, 2.0) * np.exp(-0.7 * t))[:, None])
    return sysid.Trajectories.from_arrays(ts, ys, state_names=["x"])


def test_each_step_solves_one_minibatch_of_trajectories_together(monkeypatch):
    data = short_trajectories()
    steps, free_runs = [], []
    solve_step, solve_run = shooting_module.solve, simulate_module.solve

    def spy_step(rhs, z0, grid, *args, **kwargs):
        _, traj, _ = rhs._context
        steps.append(traj.tolist())
        return solve_step(rhs, z0, grid, *args, **kwargs)

    def spy_run(rhs, z0, grid, *args, **kwargs):
        free_runs.append((z0.shape[0], grid.numel()))
        return solve_run(rhs, z0, grid, *args, **kwargs)

    monkeypatch.setattr(shooting_module, "solve", spy_step)
    monkeypatch.setattr(simulate_module, "solve", spy_run)
    epochs, batch = 2, 16
    sysid.NeuralODE(hidden=(8,), max_epochs=epochs, batch_size=batch, lbfgs_steps=0, collocation_steps=0,
                    gradient="backprop", patience=None, verbose=False).fit(data)
    per_epoch = -(-len(data) // batch)  # 40 one-segment trajectories in 16s: 3 solves per epoch
    assert len(steps) == epochs * per_epoch
    for epoch in range(epochs):
        seen = [i for step in steps[epoch * per_epoch:(epoch + 1) * per_epoch] for i in step]
        assert sorted(seen) == list(range(len(data)))  # every trajectory once per epoch
    assert all(len(step) <= batch and len(set(step)) == len(step) for step in steps)
    assert steps[0] != sorted(steps[0])  # a shuffled minibatch of trajectories, not a block of neighbours
    # free-run validation: all 40 trajectories in one solve on a grid of 6 sample indices
    # (the union of their 40 x 6 irregular times would be 201 points)
    assert free_runs and set(free_runs) == {(len(data), 6)}


def test_many_clocks_are_solved_on_the_sample_index_with_the_same_result():
    data = short_trajectories(n_traj=30, n_times=5, seed=1)
    times = [tr.t for tr in data]
    field = torch.nn.Linear(1, 1, dtype=torch.float64)
    with torch.no_grad():
        field.weight.fill_(-0.7)
        field.bias.fill_(0.1)
    rhs = BatchedField(_Autonomous(field), torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64),
                       TimeParameters(len(times), learn_scale=True))
    with torch.no_grad():
        rhs.time.log_scale_rest.uniform_(-0.2, 0.2, generator=torch.Generator().manual_seed(0))
    z0 = torch.linspace(0.5, 2.0, len(times), dtype=torch.float64)[:, None]
    config = SolverConfig("dopri5", rtol=1e-10, atol=1e-12)
    together = simulate(rhs, z0, times, torch.arange(len(times)), None, config)  # 30 clocks > 5 samples
    for i in range(0, len(times), 7):  # one at a time: the union-of-times path
        alone = simulate(rhs, z0[i:i + 1], [times[i]], torch.tensor([i]), None, config)[0]
        exact = _exact(times[i], float(z0[i, 0]), float(rhs.time.scale[i].detach()))
        np.testing.assert_allclose(together[i].numpy()[:, 0], exact, rtol=1e-7, atol=1e-10)
        np.testing.assert_allclose(alone.numpy()[:, 0], exact, rtol=1e-7, atol=1e-10)


class _Autonomous(torch.nn.Module):
    def __init__(self, linear: torch.nn.Module) -> None:
        super().__init__()
        self.linear = linear

    def forward(self, t, x, u):
        return self.linear(x)


def _exact(t: np.ndarray, x0: float, scale: float) -> np.ndarray:
    """x' = scale * (-0.7 x + 0.1) from x0 at t[0]."""
    rest = 0.1 / 0.7
    return rest + (x0 - rest) * np.exp(-0.7 * scale * (t - t[0]))
