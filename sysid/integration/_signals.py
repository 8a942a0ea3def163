"""Known inputs u(t) of every trajectory, interpolated inside the batched solve."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

Interpolation = Literal["linear", "zoh"]


class InputSignal(torch.nn.Module):
    """Piecewise-linear (or zero-order-hold) inputs of several trajectories, padded to one tensor.

    Parameters
    ----------
    times : list of arrays (n_times_i,)
        Each trajectory's sample times (on its own origin).
    values : list of arrays (n_times_i, n_inputs)
        The inputs at those times.
    kind : {"linear", "zoh"}
        Linear interpolation, or hold the last sample (zero-order hold).
    dtype : torch dtype

    Notes
    -----
    Evaluation is batched: ``signal(t, traj)`` reads trajectory ``traj[b]`` at time
    ``t[b]`` for every batch element with one ``searchsorted``; outside a trajectory's
    record the first/last sample is held. Linear interpolation is differentiable in
    ``t``, so learned time offsets get gradients through the inputs.

    Examples
    --------
    >>> import numpy as np, torch
    >>> sig = InputSignal([np.array([0., 1., 2.])], [np.array([[0.], [10.], [20.]])])
    >>> sig(torch.tensor([0.5, 1.5], dtype=torch.float64), torch.tensor([0, 0])).ravel().tolist()
    [5.0, 15.0]
    """

    # Buffers (registered in __init__), declared for type checkers.
    times: torch.Tensor
    values: torch.Tensor
    lengths: torch.Tensor

    def __init__(
        self,
        times: Sequence[np.ndarray],
        values: Sequence[np.ndarray],
        kind: Interpolation = "linear",
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        length = max(len(t) for t in times)
        n_inputs = values[0].shape[1]
        t_pad = np.full((len(times), length), np.inf)
        u_pad = np.zeros((len(times), length, n_inputs))
        for i, (t, u) in enumerate(zip(times, values)):
            t_pad[i, : len(t)] = t
            u_pad[i, : len(t)] = u
            u_pad[i, len(t):] = u[-1]
        self.register_buffer("times", torch.as_tensor(t_pad, dtype=dtype))
        self.register_buffer("values", torch.as_tensor(u_pad, dtype=dtype))
        self.register_buffer("lengths", torch.as_tensor([len(t) for t in times]))
        self.kind = kind

    @property
    def n_inputs(self) -> int:
        """Number of input channels."""
        return int(self.values.shape[-1])

    def forward(self, t: torch.Tensor, traj: torch.Tensor) -> torch.Tensor:
        """Inputs (batch, n_inputs) of trajectories ``traj`` at times ``t`` (both (batch,))."""
        times = self.times[traj]
        values = self.values[traj]
        last = (self.lengths[traj] - 1).clamp(min=0)
        t_clamped = torch.minimum(torch.maximum(t, times[:, 0]), times.gather(1, last[:, None])[:, 0])
        right = torch.searchsorted(times, t_clamped[:, None].detach(), right=True)[:, 0]
        right = torch.minimum(right, last).clamp(min=1) if times.shape[1] > 1 else right.clamp(max=0)
        left = (right - 1).clamp(min=0)
        u_left = values.gather(1, left[:, None, None].expand(-1, 1, values.shape[-1]))[:, 0]
        if self.kind == "zoh" or times.shape[1] == 1:
            hold = torch.where((t_clamped >= times.gather(1, right[:, None])[:, 0])[:, None],
                               values.gather(1, right[:, None, None].expand(-1, 1, values.shape[-1]))[:, 0],
                               u_left)
            return hold
        u_right = values.gather(1, right[:, None, None].expand(-1, 1, values.shape[-1]))[:, 0]
        t_left = times.gather(1, left[:, None])[:, 0]
        t_right = times.gather(1, right[:, None])[:, 0]
        width = torch.where(t_right > t_left, t_right - t_left, torch.ones_like(t_left))
        weight = ((t_clamped - t_left) / width).clamp(0.0, 1.0)
        return u_left + weight[:, None] * (u_right - u_left)
