"""The lean right-hand side (no data time, no inputs) gives the full path's values and gradients."""

import numpy as np
import pytest
import torch

from sysid.fields import MLPField, Scaling
from sysid.integration import BatchedField, Clock, SolverConfig, TimeParameters, simulate, solve


def _pair(learn_scale: bool, time_dependent: bool = False) -> tuple[BatchedField, Clock, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    center = torch.tensor([0.3, -0.2], dtype=torch.float64)
    spread = torch.tensor([2.0, 0.5], dtype=torch.float64)
    scaling = Scaling(center.numpy(), spread.numpy(), np.zeros(0), np.ones(0), 1.0)
    net = MLPField(2, hidden=(16, 16), scaling=scaling, time_dependent=time_dependent, generator=g)
    tp = TimeParameters(3, learn_scale=learn_scale, learn_offset=True)
    if learn_scale:
        with torch.no_grad():
            tp.log_scale_rest.copy_(torch.tensor([0.2, -0.3], dtype=torch.float64))
    rhs = BatchedField(net, center, spread, tp)
    knots = torch.cumsum(torch.rand(6, 4, dtype=torch.float64, generator=g) + 0.1, dim=1)
    clock = Clock(torch.arange(4, dtype=torch.float64), knots, end=torch.full((6,), 2.5, dtype=torch.float64))
    return rhs, clock, torch.tensor([0, 1, 2, 0, 1, 2])


@pytest.mark.parametrize("learn_scale", [False, True])
def test_lean_path_equals_full_path_in_values_and_gradients(learn_scale: bool) -> None:
    rhs, clock, traj = _pair(learn_scale)
    rhs.bind(clock, traj, None)
    assert rhs.lean  # autonomous MLP, no inputs
    z = torch.randn(6, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1), requires_grad=True)
    results = []
    for lean in (True, False):
        rhs.lean = lean
        for sigma in (0.4, 1.7, 2.9):  # inside the knots and past some elements' end
            out = rhs(torch.tensor(sigma, dtype=torch.float64), z)
            grads = torch.autograd.grad(out.pow(2).sum(), (z, *rhs.parameters()), allow_unused=True)
            results.append((out.detach(), [None if gr is None else gr.detach() for gr in grads]))
    for (a, ga), (b, gb) in zip(results[:3], results[3:]):
        torch.testing.assert_close(a, b, rtol=1e-14, atol=1e-15)
        for x, y in zip(ga, gb):
            if x is None or y is None:  # the offset: unused either way (it only moves t)
                assert x is None or torch.count_nonzero(x) == 0
                assert y is None or torch.count_nonzero(y) == 0
            else:
                torch.testing.assert_close(x, y, rtol=1e-14, atol=1e-15)


def test_lean_path_is_not_taken_when_time_or_inputs_are_read() -> None:
    rhs, clock, traj = _pair(False, time_dependent=True)
    assert not rhs.bind(clock, traj, None).lean  # a time-dependent field reads t

    class Opaque(torch.nn.Module):  # no uses_time attribute: assumed to read t
        def forward(self, t, x, u):
            return -x + 0 * t[:, None]

    one = torch.ones(1, dtype=torch.float64)
    rhs = BatchedField(Opaque(), 0 * one, one, TimeParameters(1))
    assert not rhs.bind(Clock(torch.tensor([0.0, 1.0]), torch.tensor([[0.0, 1.0]])), torch.tensor([0]), None).lean


@pytest.mark.parametrize("gradient", ["adjoint", "backprop"])
def test_solves_and_free_runs_agree_between_the_paths(gradient: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rhs, clock, traj = _pair(True)
    z0 = torch.randn(6, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    grid = torch.arange(4, dtype=torch.float64)
    outs, grads = [], []
    for lean in (True, False):
        rhs.bind(clock, traj, None)
        rhs.lean = lean
        rhs.zero_grad()
        z = solve(rhs, z0, grid, SolverConfig(rtol=1e-8, atol=1e-10), gradient, jump_t=grid[1:-1])
        z.pow(2).sum().backward()
        outs.append(z.detach())
        grads.append(rhs.field.net[0].weight.grad.clone())
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-10, atol=1e-12)
    times = [np.array([0.0, 0.4, 1.3, 2.0]), np.array([0.0, 0.9, 1.5])]
    rhs2 = BatchedField(rhs.field, rhs.center, rhs.spread, TimeParameters(2))
    free = []
    original = BatchedField.bind
    for lean in (True, False):
        def bind(self, c, tr, inp, _lean=lean):  # simulate binds its own clock: force the path
            original(self, c, tr, inp)
            self.lean = _lean
            return self

        monkeypatch.setattr(BatchedField, "bind", bind)
        free.append(simulate(rhs2, z0[:2], times, torch.arange(2), None, SolverConfig(rtol=1e-9, atol=1e-11)))
    for a, b in zip(*free):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
