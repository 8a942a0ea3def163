"""The least-squares machinery: residuals and Jacobians from one batched solve, the scipy driver."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sysid.datasets import simulate, truth
from sysid.fields import GreyBoxField, ParameterTransform
from sysid.integration import BatchedField, SolverConfig, SolverFailure, TimeParameters
from sysid.integration import simulate as integrate
from sysid.parameters import gauss_newton_distance
from sysid.training import CollocationResiduals, SegmentResiduals, TrajectoryResiduals, solve_least_squares
from sysid.training._differences import Differences

TRUE = truth("lotka_volterra").params
NAMES = ["alpha", "beta", "gamma", "delta"]


def lotka_volterra(t, x, p, u):
    prey, predator = x[:, 0], x[:, 1]
    return torch.stack(
        [p["alpha"] * prey - p["beta"] * prey * predator, p["delta"] * prey * predator - p["gamma"] * predator], dim=-1
    )


def scalar_only(t, x, p, u):
    """Multiplies the whole state by a parameter: wrong with one parameter value per row."""
    return torch.stack([-float(p["alpha"]) * x[:, 0] + 0 * p["beta"] + 0 * p["gamma"], -p["delta"] * x[:, 1]], -1)


@pytest.fixture(scope="module")
def data():
    return simulate(
        "lotka_volterra", n_trajectories=2, n_samples=20, t_span=(0, 3), noise=0.02, irregular=True, random_state=1
    )


def model(data, f=lotka_volterra, rtol=1e-8):
    y = np.concatenate([tr.y for tr in data])
    center, spread = np.nanmean(y, axis=0), np.nanstd(y, axis=0)
    field = GreyBoxField(f, TRUE, bounds={"beta": (0.0, None)})
    rhs = BatchedField(field, torch.as_tensor(center), torch.as_tensor(spread), TimeParameters(len(data)))
    return rhs, SolverConfig("dopri5", rtol, rtol * 1e-2)


def test_single_shooting_jacobian_agrees_with_autograd_through_the_solver(data):
    rhs, solver = model(data)
    lower, upper = np.array([-np.inf, 0.0, -np.inf, -np.inf]), np.full(4, np.inf)
    weights = np.array([2.0, 0.5])
    residuals = TrajectoryResiduals(
        rhs, [tr.t for tr in data], [tr.y for tr in data], None, solver, 2, weights, lower, upper
    )
    x = np.concatenate([[TRUE[n] * 1.1 for n in NAMES], np.concatenate([tr.y[0] for tr in data])])
    r, jac = residuals(x)
    module = rhs.field.params
    center, spread = rhs.center, rhs.spread

    def exact(vec):
        module.override = vec[:4]
        try:
            z0 = (vec[4:].reshape(2, 2) - center) / spread
            preds = integrate(rhs, z0, [tr.t for tr in data], torch.arange(2), None, solver, "backprop")
        finally:
            module.override = None
        seen = [torch.as_tensor(~np.isnan(tr.y)) for tr in data]
        w = torch.as_tensor(weights)
        return torch.cat(
            [
                ((center + spread * p - torch.as_tensor(np.nan_to_num(tr.y))) * w)[m]
                for p, tr, m in zip(preds, data, seen)
            ]
        )

    reference = torch.autograd.functional.jacobian(exact, torch.as_tensor(x), vectorize=True).numpy()
    np.testing.assert_allclose(r, exact(torch.as_tensor(x)).detach().numpy(), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(jac, reference, rtol=1e-5, atol=1e-6 * np.abs(reference).max())
    assert residuals.solves == 1  # residuals and Jacobian from one batched solve
    assert rhs.field.params.rowwise is True  # Lotka-Volterra takes one parameter value per row


def test_functions_that_need_scalar_parameters_fall_back_to_one_call_per_group(data):
    transform = ParameterTransform(TRUE)
    x = torch.rand(6, 2, dtype=torch.float64)
    groups = torch.as_tensor([[1.0, 1.0, 3.0, 1.0], [2.0, 1.0, 3.0, 0.5], [3.0, 1.0, 3.0, 2.0]], dtype=torch.float64)
    out = transform.evaluate_grouped(scalar_only, None, x, None, groups)
    assert transform.rowwise is False
    for g in range(3):
        expected = scalar_only(None, x[2 * g : 2 * g + 2], transform.values_from(groups[g]), None)
        torch.testing.assert_close(out[2 * g : 2 * g + 2], expected)
    rowwise = ParameterTransform(TRUE)
    torch.testing.assert_close(
        rowwise.evaluate_grouped(lotka_volterra, None, x, None, groups),
        transform._looped(lotka_volterra, None, x, None, groups),
    )
    assert rowwise.rowwise is True


@pytest.mark.slow  # about 5 s: run by .ci/run's slow step, outside the default run
def test_multiple_shooting_jacobian_agrees_with_differences_of_separate_evaluations(data):
    rhs, solver = model(data)
    lower, upper = np.array([-np.inf, 0.0, -np.inf, -np.inf]), np.full(4, np.inf)
    residuals = SegmentResiduals(
        rhs,
        [tr.t for tr in data],
        [tr.y for tr in data],
        None,
        solver,
        2,
        np.array([1.0, 2.0]),
        lower,
        upper,
        segment_length=5,
        continuity=3.0,
    )
    x = residuals.start_vector(np.array([TRUE[n] * 0.9 for n in NAMES]))
    x[4:] += 0.05 * np.sin(np.arange(x.size - 4))  # segments that do not join up
    r, jac = residuals(x)
    assert jac.shape == (r.size, 4 + 2 * len(residuals.segments))
    numeric = np.zeros_like(jac)
    for k in range(x.size):
        h = 1e-6 * max(abs(x[k]), 1.0)
        up, down = x.copy(), x.copy()
        up[k] += h
        down[k] -= h
        numeric[:, k] = (residuals(up)[0] - residuals(down)[0]) / (2 * h)
    np.testing.assert_allclose(jac, numeric, atol=2e-5 * np.abs(numeric).max())
    # each data row depends on the parameters and its own segment's start only
    assert np.count_nonzero(jac[: residuals.values.size, 4:], axis=1).max() <= 2


def test_collocation_residuals_are_exact_for_exact_derivatives():
    t = np.linspace(0, 1, 15)
    states = np.column_stack([1 + t, 2 - t])
    derivs = lotka_volterra(None, torch.as_tensor(states), {k: torch.tensor(v) for k, v in TRUE.items()}, None).numpy()
    field = GreyBoxField(lotka_volterra, dict.fromkeys(NAMES, 1.0))
    residuals = CollocationResiduals(
        field, t, states, derivs, None, np.ones(2), np.full(4, -np.inf), np.full(4, np.inf), torch.float64
    )
    fit = solve_least_squares(residuals, np.ones(4), np.full(4, -np.inf), np.full(4, np.inf))
    np.testing.assert_allclose(fit.x, [TRUE[n] for n in NAMES], rtol=1e-8)


def test_differences_are_one_sided_next_to_a_bound():
    diff = Differences(
        np.array([0.0, 1.0, 5.0]), np.array([0.0, -np.inf, -np.inf]), np.array([np.inf, np.inf, 5.0]), np.array([0.1])
    )
    sets = diff.parameter_sets()
    assert sets[:, 0].min() == 0.0 and sets[:, 2].max() == 5.0  # never past a bound
    assert sets[3:5, 1].tolist() == pytest.approx([1.00001, 0.99999])
    f = lambda p, s: np.array([p[0] ** 3 + 2 * p[1] ** 2 - p[2] ** 2 + 3 * s[0]])  # noqa: E731
    outputs = np.array([f(p, s) for p, s in zip(sets, diff.state_offsets())])
    np.testing.assert_allclose(diff.combine(outputs)[:, 0], [0.0, 4.0, -10.0, 3.0], atol=1e-8)


def test_a_start_that_cannot_be_simulated_raises_with_the_solver_reason(data):
    rhs, _ = model(data, rtol=1e-3)
    residuals = TrajectoryResiduals(
        rhs,
        [tr.t for tr in data],
        [tr.y for tr in data],
        None,
        SolverConfig("dopri5", 1e-3, 1e-5, {"max_num_steps": 3}),
        2,
        np.ones(2),
        np.full(4, -np.inf),
        np.full(4, np.inf),
    )
    x = np.concatenate([[TRUE[n] for n in NAMES], np.concatenate([tr.y[0] for tr in data])])
    with pytest.raises(SolverFailure, match="max_num_steps exceeded"):
        solve_least_squares(residuals, x, np.full(8, -np.inf), np.full(8, np.inf))


def test_stop_within_ends_the_fit_once_the_optimum_is_within_a_fraction_of_a_standard_error():
    rng = np.random.default_rng(0)
    t = np.linspace(0, 3, 50)
    y = 2 * np.exp(-0.7 * t) + 0.05 * rng.standard_normal(50)

    def evaluate(x):
        e = np.exp(-x[1] * t)
        return x[0] * e - y, np.column_stack([e, -x[0] * t * e])

    tight = solve_least_squares(evaluate, [1.0, 0.2], [-np.inf] * 2, [np.inf] * 2, ftol=1e-15, xtol=1e-15, gtol=1e-15)
    loose = solve_least_squares(
        evaluate, [1.0, 0.2], [-np.inf] * 2, [np.inf] * 2, stop_within=0.1, ftol=1e-15, xtol=1e-15, gtol=1e-15
    )
    assert loose.nfev < tight.nfev and loose.converged and "standard errors" in loose.message
    assert gauss_newton_distance(loose.jacobian, loose.residuals) < 0.1
    np.testing.assert_allclose(loose.x, tight.x, rtol=1e-2)
