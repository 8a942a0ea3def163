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
    >>> sig = InputSignal([np.array([0.0, 1.0, 2.0])], [np.array([[0.0], [10.0], [20.0]])])
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
            u_pad[i, len(t) :] = u[-1]
        self.register_buffer("times", torch.as_tensor(t_pad, dtype=dtype))
        self.register_buffer("values", torch.as_tensor(u_pad, dtype=dtype))
        self.register_buffer("lengths", torch.as_tensor([len(t) for t in times]))
        self.kind = kind

    @property
    def n_inputs(self) -> int:
        """Number of input channels."""
        return int(self.values.shape[-1])

    def forward(self, t: torch.Tensor, traj: torch.Tensor) -> torch.Tensor:
        """Inputs (batch, n_inputs) of trajectories ``traj`` at times ``t`` (both (batch,)).

        Called at every evaluation of the field: each batch element reads only the samples
        it needs (one search of ``t`` in every trajectory's times, then its own row), never
        a copy of its whole record (which cost 0.2 ms an evaluation on a 1,000-sample record).
        """
        batch = torch.arange(traj.shape[0], device=traj.device)
        last = (self.lengths[traj] - 1).clamp(min=0)
        t_clamped = torch.minimum(torch.maximum(t, self.times[traj, 0]), self.times[traj, last])
        query = t_clamped.detach()[None, :].expand(self.times.shape[0], -1).contiguous()
        right = torch.searchsorted(self.times, query, right=True)[traj, batch]
        right = torch.minimum(right, last).clamp(min=1) if self.times.shape[1] > 1 else right.clamp(max=0)
        left = (right - 1).clamp(min=0)
        u_left = self.values[traj, left]
        if self.kind == "zoh" or self.times.shape[1] == 1:
            return torch.where((t_clamped >= self.times[traj, right])[:, None], self.values[traj, right], u_left)
        u_right = self.values[traj, right]
        t_left = self.times[traj, left]
        t_right = self.times[traj, right]
        width = torch.where(t_right > t_left, t_right - t_left, torch.ones_like(t_left))
        weight = ((t_clamped - t_left) / width).clamp(0.0, 1.0)
        return u_left + weight[:, None] * (u_right - u_left)
