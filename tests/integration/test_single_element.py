"""A batch of one element (a whole long record) read with Python numbers: the same bits as the batched path.

A solve of one record evaluates its field thousands of times on a batch of one, where the
tensor operations of the batched clock and input reads cost more than their arithmetic.
The one-element path (:meth:`Clock.time_and_rate`, :class:`RecordReader`, the bound
``BatchedField``) must give exactly the batched path's values and gradients: the horizon
schedule's last stage is compared bit for bit before and after.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sysid.fields import LinearMLPField, Scaling
from sysid.integration import BatchedField, Clock, InputSignal, SolverConfig, TimeParameters, simulate, solve

from .strategies import ragged_records

F64 = torch.float64


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0.01, 3.0), min_size=1, max_size=6),
    st.lists(st.floats(0.01, 3.0), min_size=7, max_size=7),
    st.floats(-5.0, 5.0),
    st.lists(st.floats(-1.0, 20.0), min_size=1, max_size=10),
    st.booleans(),
)
def test_time_and_rate_are_the_clock_forward_numbers(steps, data_steps, start, sigmas, with_end) -> None:
    sigma_knots = torch.tensor(np.concatenate([[0.0], np.cumsum(steps)]), dtype=F64)
    times = start + np.concatenate([[0.0], np.cumsum(data_steps)])[: len(sigma_knots)]
    end = torch.tensor([float(sigma_knots[-1]) / 2], dtype=F64) if with_end else None
    clock = Clock(sigma_knots, torch.tensor(times[None, :], dtype=F64), end=end)
    for sigma in sigmas:
        t, rate = clock(torch.tensor(sigma, dtype=F64))
        assert clock.time_and_rate(sigma) == (float(t[0]), float(rate[0]))


def test_time_and_rate_reads_only_a_clock_of_one_element() -> None:
    clock = Clock(torch.tensor([0.0, 1.0]), torch.tensor([[0.0, 1.0], [0.0, 2.0]]))
    assert not clock.single
    with pytest.raises(ValueError, match="one element; this one has 2"):
        clock.time_and_rate(0.5)


@st.composite
def one_record(draw):
    """A record (1-12 increasing sample times, 2 channels) among 1-3 others, and times to read it at."""
    times, values = draw(ragged_records(3))
    n = len(times)
    record = draw(st.integers(0, n - 1))
    reads = draw(st.lists(st.floats(-10.0, 45.0), min_size=1, max_size=8))
    reads += [float(s) for s in times[record]]  # exactly on the samples: the ends of the intervals
    return times, values, record, reads


@pytest.mark.parametrize("kind", ["linear", "zoh"])
@settings(max_examples=40, deadline=None)
@given(data=one_record())
def test_record_reader_gives_the_batched_reads_values_and_time_gradients(kind, data) -> None:
    times, values, record, reads = data
    signal = InputSignal(times, values, kind)
    reader = signal.record_reader(record)
    traj = torch.tensor([record])
    for s in reads:
        t = torch.tensor([s], dtype=F64, requires_grad=True)
        expected = signal(t, traj)
        assert reader.at(s) == expected[0].tolist()
        got = reader(t)
        assert torch.equal(got, expected)
        assert got.requires_grad == expected.requires_grad
        if expected.requires_grad:  # linear: the same gradient with respect to the time, to the last bit
            weights = torch.tensor([[0.7, -1.3]], dtype=F64)
            (g_expected,) = torch.autograd.grad((expected * weights).sum(), t)
            (g_got,) = torch.autograd.grad((got * weights).sum(), t)
            assert torch.equal(g_got, g_expected)


def test_a_record_reader_is_made_once_and_again_when_the_tables_change() -> None:
    t = np.linspace(0.0, 2.0, 5)
    signal = InputSignal([t, t], [t[:, None], 2 * t[:, None]])
    reader = signal.record_reader(1)
    assert signal.record_reader(1) is reader and signal.record_reader(0) is not reader
    assert reader.at(1.25) == [2.5]
    with torch.no_grad():
        signal.values.mul_(10.0)  # in place: the same tensor, a new version
    assert signal.record_reader(1) is not reader
    assert (
        signal.record_reader(1).at(1.0)
        == [20.0]
        == signal(torch.tensor([1.0], dtype=F64), torch.tensor([1]))[0].tolist()
    )


def _field(n_inputs: int, stable: bool) -> LinearMLPField:
    g = torch.Generator().manual_seed(3)
    scaling = Scaling(np.array([0.5, -1.0]), np.array([2.0, 0.5]), np.full(n_inputs, 0.2), np.full(n_inputs, 3.0), 1.7)
    field = LinearMLPField(2, n_inputs, hidden=(8,), scaling=scaling, generator=g, stable=stable)
    with torch.no_grad():
        field.linear_state.copy_(torch.tensor([[0.3, 1.0], [-1.2, 0.1]], dtype=F64))
        if n_inputs:
            field.linear_input.copy_(torch.linspace(-1.0, 1.0, 2 * n_inputs, dtype=F64).reshape(2, n_inputs))
    return field


class Physical(torch.nn.Module):
    """A field in physical units that reads the time (not fused, so BatchedField scales it)."""

    uses_time = True

    def __init__(self) -> None:
        super().__init__()
        self.k = torch.nn.Parameter(torch.tensor([-0.4, -0.9], dtype=F64))

    def forward(self, t, x, u):
        out = self.k * x + 0.1 * torch.sin(t)[:, None]
        return out if u is None else out + u[:, :1]


def _solve_both_ways(rhs, clock, inputs, z0, grid, gradient):
    """Solutions and parameter gradients with the one-element path and with the batched path forced."""
    results = []
    for single in (True, False):
        rhs.bind(clock, torch.tensor([0]), inputs)
        if not single:
            rhs._single = None
        rhs.zero_grad()
        z = solve(rhs, z0, grid, SolverConfig(rtol=1e-5, atol=1e-7), gradient)
        grads = []
        if gradient != "none":
            (z.pow(2).sum() + z[-1, 0, 0]).backward()
            grads = [p.grad.clone() for p in rhs.parameters()]
        results.append((z.detach(), grads))
    return results


@pytest.mark.parametrize("gradient", ["none", "backprop"])
@pytest.mark.parametrize("field_kind", ["linear_stable", "linear_free", "physical"])
@pytest.mark.parametrize("rate", [1.0, 0.75])
def test_a_batch_of_one_solves_to_the_same_bits_as_the_batched_path(gradient, field_kind, rate) -> None:
    rng = np.random.default_rng(0)
    t = np.cumsum(rng.uniform(0.05, 0.3, 40))
    signal = InputSignal([t], [np.stack([np.sin(t), np.cos(3 * t)], axis=1)])
    field = Physical() if field_kind == "physical" else _field(2, stable=field_kind == "linear_stable")
    center, spread = torch.tensor([0.5, -1.0], dtype=F64), torch.tensor([2.0, 0.5], dtype=F64)
    rhs = BatchedField(field, center, spread, TimeParameters(1))
    assert rhs._fused == (field_kind != "physical")
    horizon = float(t[-1] - t[0]) / rate
    clock = Clock(torch.tensor([0.0, horizon], dtype=F64), torch.tensor([[t[0], t[-1]]], dtype=F64))
    z0 = torch.tensor([[0.3, -0.2]], dtype=F64, requires_grad=gradient != "none")
    grid = torch.linspace(0.0, horizon, 25, dtype=F64)
    (z_one, g_one), (z_batch, g_batch) = _solve_both_ways(rhs, clock, signal, z0, grid, gradient)
    assert torch.equal(z_one, z_batch)
    assert len(g_one) == len(g_batch) == (0 if gradient == "none" else len(list(rhs.parameters())))
    for a, b in zip(g_one, g_batch):
        assert torch.equal(a, b)


def test_free_runs_of_one_record_are_the_same_bits_either_way(monkeypatch: pytest.MonkeyPatch) -> None:
    """simulate's clock freezes the record after its end (a rate of zero there), read with Python numbers too."""
    rng = np.random.default_rng(1)
    t = np.cumsum(rng.uniform(0.05, 0.3, 30))
    signal = InputSignal([t], [np.sin(t)[:, None]])
    field = _field(1, stable=True)
    rhs = BatchedField(field, field.center, field.spread, TimeParameters(1))
    z0 = torch.tensor([[0.3, -0.2]], dtype=F64)
    config = SolverConfig(rtol=1e-7, atol=1e-9)
    one = simulate(rhs, z0, [t], torch.arange(1), signal, config)[0]
    original = BatchedField.bind

    def batched(self, clock, traj, inputs):
        original(self, clock, traj, inputs)
        self._single = None
        return self

    monkeypatch.setattr(BatchedField, "bind", batched)
    assert torch.equal(one, simulate(rhs, z0, [t], torch.arange(1), signal, config)[0])


def test_the_one_element_path_is_taken_only_where_it_gives_the_same_numbers() -> None:
    t = np.linspace(0.0, 1.0, 5)
    signal = InputSignal([t, t], [t[:, None], t[:, None]])
    field = _field(1, stable=False)
    center, spread = field.center, field.spread
    clock = Clock(torch.tensor([0.0, 1.0], dtype=F64), torch.tensor([[0.0, 1.0]], dtype=F64))
    rhs = BatchedField(field, center, spread, TimeParameters(2))
    assert rhs.bind(clock, torch.tensor([1]), signal)._single is not None
    two = Clock(torch.tensor([0.0, 1.0], dtype=F64), torch.tensor([[0.0, 1.0], [0.0, 1.0]], dtype=F64))
    assert rhs.bind(two, torch.tensor([0, 1]), signal)._single is None  # two elements
    learned = BatchedField(field, center, spread, TimeParameters(2, learn_offset=True))
    assert learned.bind(clock, torch.tensor([1]), signal)._single is None  # t carries the offset's gradient
    single = Clock(torch.tensor([0.0, 1.0]), torch.tensor([[0.0, 1.0]]))  # float32 knots: not double arithmetic
    assert rhs.bind(single, torch.tensor([1]), signal)._single is None


def test_one_scaling_of_inputs_without_gradient_gives_the_two_scalings_bits() -> None:
    field = _field(2, stable=True)
    rng = np.random.default_rng(2)
    z = torch.tensor(rng.normal(size=(1, 2)), dtype=F64, requires_grad=True)
    u = torch.tensor(rng.normal(size=(1, 2)), dtype=F64)
    shared = field.scaled_forward(None, z, u)  # u carries no gradient: scaled once
    each = field.network(None, z, field.scaled_inputs(u)) + field._linear_scaled(z, u)
    assert torch.equal(shared, each)
    grads = [torch.autograd.grad(out.sum(), (z, *field.parameters())) for out in (shared, each)]
    for a, b in zip(*grads):
        assert torch.equal(a, b)
    x = torch.tensor(rng.normal(size=(3, 4, 2)), dtype=F64)  # more than one batch dimension: no fused product
    flat = field.linear_part(None, x.reshape(12, 2), u.expand(12, 2)).reshape(3, 4, 2)
    torch.testing.assert_close(field.linear_part(None, x, u.expand(3, 4, 2)), flat, rtol=1e-14, atol=1e-14)
