"""Integration core: batched solve, clocks, inputs, adjoint against backprop and finite differences."""

import numpy as np
import pytest
import torch

from sysid.errors import ConfigError
from sysid.fields import MLPField
from sysid.integration import (
    BatchedField,
    InputSignal,
    ODEBlock,
    SolverConfig,
    SolverFailure,
    TimeParameters,
    simulate,
)
from sysid.training import MultipleShooting, make_segments


class Linear(torch.nn.Module):
    """dx/dt = A x + B u, known solution for the tests."""

    def __init__(self, a: float = -0.5, b: float = 0.0):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(a, dtype=torch.float64))
        self.b = b

    def forward(self, t, x, u):
        out = self.a * x
        if u is not None:
            out = out + self.b * u
        return out


def _rhs(field, n_traj=1, dims=1, learn_scale=False):
    one = torch.ones(dims, dtype=torch.float64)
    return BatchedField(field, 0 * one, one, TimeParameters(n_traj, learn_scale=learn_scale))


def test_simulate_matches_exponential_on_ragged_irregular_trajectories():
    times = [np.array([0.0, 0.3, 1.1, 2.0]), np.array([0.0, 0.5, 0.7]), np.array([1.0, 1.4, 3.0, 3.5, 4.0])]
    z0 = torch.tensor([[1.0], [2.0], [-1.0]], dtype=torch.float64)
    out = simulate(_rhs(Linear(-0.5), 3), z0, times, torch.arange(3), None, SolverConfig(rtol=1e-10, atol=1e-12))
    for t, x0, pred in zip(times, z0[:, 0].tolist(), out):
        expected = x0 * np.exp(-0.5 * (t - t[0]))
        np.testing.assert_allclose(pred[:, 0].numpy(), expected, rtol=1e-8)


def test_scaled_clock_makes_a_trajectory_run_slower():
    rhs = _rhs(Linear(-1.0), 2, learn_scale=True)
    with torch.no_grad():
        rhs.time.log_scale_rest.fill_(np.log(0.5))
    t = np.linspace(0, 2, 5)
    out = simulate(
        rhs, torch.ones(2, 1, dtype=torch.float64), [t, t], torch.arange(2), None, SolverConfig(rtol=1e-10, atol=1e-12)
    )
    np.testing.assert_allclose(out[0][:, 0].numpy(), np.exp(-t), rtol=1e-7)
    np.testing.assert_allclose(out[1][:, 0].numpy(), np.exp(-0.5 * t), rtol=1e-7)


def test_inputs_drive_the_solution_linear_and_zero_order_hold():
    # dx/dt = u with u a ramp u = t: x(t) = t^2 / 2 (linear interpolation is exact for a ramp)
    t = np.linspace(0, 2, 9)
    for kind, expected in (("linear", t**2 / 2), ("zoh", None)):
        signal = InputSignal([t], [t[:, None]], kind=kind)
        out = simulate(
            _rhs(Linear(0.0, b=1.0)),
            torch.zeros(1, 1, dtype=torch.float64),
            [t],
            torch.arange(1),
            signal,
            SolverConfig(rtol=1e-10, atol=1e-12),
        )[0][:, 0].numpy()
        if kind == "linear":
            np.testing.assert_allclose(out, expected, atol=1e-8)
        else:  # hold: integral of the left sample on each interval
            dt = np.diff(t)
            np.testing.assert_allclose(out, np.concatenate([[0.0], np.cumsum(t[:-1] * dt)]), atol=1e-8)


def _shooting(gradient):
    torch.manual_seed(0)
    field = MLPField(2, hidden=(6,), generator=torch.Generator().manual_seed(1), output_gain=1.0)
    rng = np.random.default_rng(0)
    times = [np.sort(rng.uniform(0, 2, 9)), np.sort(rng.uniform(0, 3, 7))]
    ys = [rng.normal(size=(9, 2)), rng.normal(size=(7, 2))]
    ys[0][2, 1] = np.nan
    segments = make_segments(times, ys, 3)
    rhs = _rhs(field, 2, dims=2, learn_scale=True)
    config = SolverConfig(rtol=1e-10, atol=1e-12)
    return MultipleShooting(rhs, segments, times, ys, 2, None, config, gradient, continuity=0.7)


def test_adjoint_and_backprop_gradients_agree_with_finite_differences():
    grads = {}
    for gradient in ("adjoint", "backprop"):
        objective = _shooting(gradient)
        loss, _ = objective(torch.arange(len(objective.segments)))
        loss.backward()
        grads[gradient] = torch.cat([p.grad.reshape(-1) for p in objective.parameters()])
    np.testing.assert_allclose(grads["adjoint"].numpy(), grads["backprop"].numpy(), rtol=1e-5, atol=1e-8)

    objective = _shooting("backprop")
    params = list(objective.parameters())
    batch = torch.arange(len(objective.segments))
    eps = 1e-6
    checked = 0
    offsets = np.cumsum([0] + [q.numel() for q in params])
    for k, p in enumerate(params):
        flat = p.data.view(-1)
        for i in range(0, flat.numel(), max(1, flat.numel() // 3)):
            old = float(flat[i])
            flat[i] = old + eps
            up = float(objective(batch)[0])
            flat[i] = old - eps
            down = float(objective(batch)[0])
            flat[i] = old
            numeric = (up - down) / (2 * eps)
            index = offsets[k] + i
            assert numeric == pytest.approx(float(grads["adjoint"][index]), rel=1e-4, abs=1e-7)
            checked += 1
    assert checked >= 8


def test_solver_config_rejects_unknown_methods_and_options():
    with pytest.raises(ConfigError, match="unknown solver 'rk45'"):
        SolverConfig("rk45")
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['step'\]"):
        SolverConfig("dopri5", options={"step": 1})
    with pytest.raises(ConfigError, match="rtol must be a positive number"):
        SolverConfig("dopri5", rtol=-1)


class Decay(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.k = torch.nn.Parameter(torch.tensor(1.0, dtype=torch.float64))

    def forward(self, t, h):
        return -self.k * h


@pytest.mark.parametrize("gradient", ["adjoint", "backprop"])
def test_odeblock_solution_and_gradient_with_respect_to_t1(gradient):
    block = ODEBlock(Decay(), t1=0.7, learn_t1=True, gradient=gradient, rtol=1e-10, atol=1e-12)
    h0 = torch.tensor([[2.0]], dtype=torch.float64)
    out = block(h0)
    assert float(out) == pytest.approx(2.0 * np.exp(-0.7), rel=1e-7)
    out.sum().backward()
    # d/dt1 of 2 exp(-k t1) = -2 k exp(-k t1); d/dk = -2 t1 exp(-k t1)
    assert float(block.t1.grad) == pytest.approx(-2.0 * np.exp(-0.7), rel=1e-6)
    assert float(block.field.k.grad) == pytest.approx(-2.0 * 0.7 * np.exp(-0.7), rel=1e-6)


@pytest.mark.slow  # over 15 s: run by .ci/run's slow step, outside the default run
def test_a_backpropagated_solve_that_goes_stiff_stops_at_its_evaluation_budget():
    # dx/dt = -2000 x over 10 time units: dopri5 is stable only for steps below ~1.6e-3, about 6,000 steps.
    # Without gradients the solve completes (within the per-interval step budget); backpropagated, it would
    # keep all ~36,000 evaluations' graphs, so it fails fast with a SolverFailure that says why.

    times = [np.array([0.0, 10.0])]
    z0 = torch.ones(1, 1, dtype=torch.float64)
    config = SolverConfig(rtol=1e-4, atol=1e-6)
    rhs = _rhs(Linear(-2000.0))
    out = simulate(rhs, z0, times, torch.arange(1), None, config, gradient="none")
    assert abs(float(out[0][-1, 0])) < 1e-3 and rhs.nfe > 20_000
    rhs.nfe = 0
    with pytest.raises(SolverFailure, match="more than 5000 evaluations"):
        simulate(rhs, z0, times, torch.arange(1), None, config, gradient="backprop")
    assert rhs.nfe == 5_000  # stopped at the budget, not after the whole solve
    mild = _rhs(Linear(-2.0))  # a field that is not stiff is untouched: same solution with and without gradients
    free = simulate(mild, z0, times, torch.arange(1), None, config, gradient="none")[0]
    traced = simulate(mild, z0, times, torch.arange(1), None, config, gradient="backprop")[0]
    torch.testing.assert_close(traced.detach(), free)


def test_a_step_budget_stops_a_stiff_solve_early_and_leaves_a_mild_one_alone():
    # dx/dt = -2000 x over one time unit: dopri5 tries about 750 steps (stable below ~1.6e-3; rejected
    # steps count towards the budget).
    times = [np.array([0.0, 1.0])]
    z0 = torch.ones(1, 1, dtype=torch.float64)
    config = SolverConfig(rtol=1e-4, atol=1e-6)
    stiff = _rhs(Linear(-2000.0))
    with pytest.raises(SolverFailure, match="max_num_steps"):
        simulate(stiff, z0, times, torch.arange(1), None, config.with_step_budget(100), gradient="none")
    assert 600 <= stiff.nfe <= 7 * 100  # six evaluations per dopri5 step, stopped at the 100th step
    stiff.nfe = 0
    out = simulate(stiff, z0, times, torch.arange(1), None, config.with_step_budget(5_000), gradient="none")
    assert abs(float(out[0][-1, 0])) < 1e-3 and stiff.nfe > 3_000
    mild = _rhs(Linear(-2.0))
    capped = simulate(mild, z0, times, torch.arange(1), None, config.with_step_budget(100), gradient="none")[0]
    torch.testing.assert_close(capped, simulate(mild, z0, times, torch.arange(1), None, config, gradient="none")[0])
    assert SolverConfig("rk4").with_step_budget(100) == SolverConfig("rk4")  # fixed steps: nothing to cap
    with pytest.raises(ConfigError, match=r"max_num_steps must be a positive integer, got 2\.5"):
        config.with_step_budget(2.5)
