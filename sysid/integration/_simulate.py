"""Free-run simulation of whole trajectories, all in one batched solve."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from sysid.integration._clock import Clock
from sysid.integration._field import BatchedField
from sysid.integration._signals import InputSignal
from sysid.integration._solve import Gradient, solve
from sysid.integration._solver import SolverConfig


def simulate(
    rhs: BatchedField,
    z0: torch.Tensor,
    times: Sequence[np.ndarray],
    traj_index: torch.Tensor,
    inputs: InputSignal | None,
    config: SolverConfig,
    gradient: Gradient = "none",
) -> list[torch.Tensor]:
    """Integrate each trajectory from its first time to its last, together.

    Parameters
    ----------
    rhs : BatchedField
    z0 : tensor (n_traj, n_dims)
        Scaled states at each trajectory's first time.
    times : list of arrays
        Each trajectory's output times (increasing, on its own origin).
    traj_index : tensor (n_traj,)
        Index of each trajectory into the time parameters and the input signal.
    inputs : InputSignal or None
    config : SolverConfig
    gradient : {"none", "backprop", "adjoint"}

    Returns
    -------
    list of tensors (n_times_i, n_dims)

    Notes
    -----
    The solver runs on the union of all elapsed times ``t - t[0]``; each trajectory is
    frozen after its own last time (a clock knot the solver steps onto), so the
    trajectories share one solve but cost no accuracy.

    Many short trajectories on different clocks (more trajectories than samples in the
    longest, and an adaptive solver) would make that union, and the number of knots,
    grow with the number of trajectories. They are solved on their sample index
    instead, as shooting segments are: solver time ``k`` is each trajectory's k-th
    sample, so the output grid is as long as the longest trajectory whatever their number.
    """
    dtype, device = z0.dtype, z0.device
    starts = torch.as_tensor([t[0] for t in times], dtype=dtype, device=device)
    elapsed = [np.asarray(t) - t[0] for t in times]
    grid_np = np.unique(np.concatenate(elapsed))
    if grid_np.size == 1:  # a single time stamp: nothing to integrate
        return [z0[i : i + 1] for i in range(len(times))]
    longest = max(len(t) for t in times)
    if config.adaptive and len(times) > longest and grid_np.size > longest:
        return _simulate_by_sample(rhs, z0, times, longest, traj_index, inputs, config, gradient)
    durations = torch.as_tensor([e[-1] for e in elapsed], dtype=dtype, device=device)
    clock = Clock.shifted(starts, durations)
    rhs.bind(clock, traj_index, inputs)
    grid = torch.as_tensor(grid_np, dtype=dtype, device=device)
    out = solve(rhs, z0, grid, config, gradient=gradient, jump_t=torch.unique(durations))
    positions = [np.searchsorted(grid_np, e) for e in elapsed]
    return [out[torch.as_tensor(pos, device=device), i] for i, pos in enumerate(positions)]


def _simulate_by_sample(
    rhs: BatchedField,
    z0: torch.Tensor,
    times: Sequence[np.ndarray],
    longest: int,
    traj_index: torch.Tensor,
    inputs: InputSignal | None,
    config: SolverConfig,
    gradient: Gradient,
) -> list[torch.Tensor]:
    """:func:`simulate` with solver time = sample index (each trajectory frozen after its last sample)."""
    knots = np.stack([np.concatenate([t, np.full(longest - len(t), t[-1])]) for t in times])
    sigma = torch.arange(longest, dtype=z0.dtype, device=z0.device)
    rhs.bind(Clock(sigma, torch.as_tensor(knots, dtype=z0.dtype, device=z0.device)), traj_index, inputs)
    out = solve(rhs, z0, sigma, config, gradient=gradient, jump_t=sigma[1:-1])
    return [out[: len(t), i] for i, t in enumerate(times)]
