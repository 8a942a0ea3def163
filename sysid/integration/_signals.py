"""Known inputs u(t) of every trajectory, interpolated inside the batched solve."""

from __future__ import annotations

import bisect
import math
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
    last: torch.Tensor
    first_time: torch.Tensor
    last_time: torch.Tensor
    step: torch.Tensor
    width: torch.Tensor

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
        # Per trajectory and per interval, what every read would otherwise recompute. Derived from
        # the three buffers above, so not saved with them (checkpoints keep their old layout).
        rows = torch.arange(len(times))
        last = (self.lengths - 1).clamp(min=0)
        after = torch.cat([self.times[:, 1:], self.times[:, -1:]], dim=1)
        derived = {
            "last": last,
            "first_time": self.times[:, 0].clone(),
            "last_time": self.times[rows, last].clone(),
            "width": torch.where(after > self.times, after - self.times, torch.ones_like(self.times)),
            "step": torch.cat([self.values[:, 1:], self.values[:, -1:]], dim=1) - self.values,
        }
        for name, tensor in derived.items():
            self.register_buffer(name, tensor, persistent=False)
        self.kind = kind

    @property
    def n_inputs(self) -> int:
        """Number of input channels."""
        return int(self.values.shape[-1])

    def forward(self, t: torch.Tensor, traj: torch.Tensor) -> torch.Tensor:
        """Inputs (batch, n_inputs) of trajectories ``traj`` at times ``t`` (both (batch,)).

        Called at every evaluation of the field, so the search is chosen by its cost: one
        record is searched directly; a few long records (searching all of them costs less
        than copying one: records * log2(samples) <= samples) are each searched for every
        element, which then reads its own result; otherwise each element gets a copy of
        its own record's times to search.
        """
        last = self.last[traj]
        t_clamped = torch.minimum(torch.maximum(t, self.first_time[traj]), self.last_time[traj])
        n_records, n_samples = self.times.shape
        if n_records == 1:
            right = torch.searchsorted(self.times[0], t_clamped.detach(), right=True)
        elif n_records * max(math.log2(n_samples), 1.0) <= n_samples:
            query = t_clamped.detach()[None, :].expand(n_records, -1).contiguous()
            right = torch.searchsorted(self.times, query, right=True)[
                traj, torch.arange(traj.shape[0], device=traj.device)
            ]
        else:
            right = torch.searchsorted(self.times[traj], t_clamped.detach()[:, None], right=True)[:, 0]
        right = torch.minimum(right, last).clamp(min=1) if n_samples > 1 else right.clamp(max=0)
        left = (right - 1).clamp(min=0)
        u_left = self.values[traj, left]
        if self.kind == "zoh" or n_samples == 1:
            return torch.where((t_clamped >= self.times[traj, right])[:, None], self.values[traj, right], u_left)
        weight = ((t_clamped - self.times[traj, left]) / self.width[traj, left]).clamp(0.0, 1.0)
        return u_left + weight[:, None] * self.step[traj, left]

    #: The readers made so far, and the tables (and their versions) they copied (record_reader).
    _readers: dict[int, RecordReader] | None = None
    _readers_of: tuple[tuple[torch.Tensor, ...], tuple[int, ...]] = ((), ())

    def record_reader(self, record: int) -> RecordReader:
        """A reader of record ``record`` alone, for a batch of one element (see :class:`RecordReader`).

        Made once per record and kept while the signal's tables stay the same tensors with
        the same contents (a bound solve asks for it every time; copying a long record to
        Python lists costs a few milliseconds).

        Examples
        --------
        >>> import numpy as np
        >>> sig = InputSignal([np.array([0.0, 1.0, 2.0])], [np.array([[0.0], [10.0], [20.0]])])
        >>> read = sig.record_reader(0)
        >>> read.at(0.5), read.at(1.5), read.at(9.0)
        ([5.0], [15.0], [20.0])
        >>> sig.record_reader(0) is read
        True
        """
        tables = (self.times, self.values, self.width, self.step)
        versions = tuple(x._version for x in tables)
        copied, copied_versions = self._readers_of
        if self._readers is None or versions != copied_versions or any(a is not b for a, b in zip(tables, copied)):
            self._readers, self._readers_of = {}, (tables, versions)
        if record not in self._readers:
            self._readers[record] = RecordReader(self, record)
        return self._readers[record]


class RecordReader:
    """One record of an :class:`InputSignal`, read at one time with Python numbers where it can.

    A solve of one long record evaluates its field thousands of times on a batch of one,
    where each of the dozen tensor operations of a batched read costs more than its
    arithmetic. The reader copies the record's tables to Python lists once and reads
    them with the same arithmetic as :meth:`InputSignal.forward`, so the numbers are the
    same to the last bit for float64 records.

    Parameters
    ----------
    signal : InputSignal
    record : int
        The record (trajectory) read.

    Examples
    --------
    >>> import numpy as np, torch
    >>> sig = InputSignal([np.array([0.0, 1.0, 2.0])], [np.array([[0.0], [10.0], [20.0]])])
    >>> t = torch.tensor([0.25], dtype=torch.float64, requires_grad=True)
    >>> u = RecordReader(sig, 0)(t)
    >>> u.tolist(), torch.autograd.grad(u.sum(), t)[0].tolist()
    ([[2.5]], [10.0])
    """

    def __init__(self, signal: InputSignal, record: int) -> None:
        self.signal, self.record = signal, record
        self.times: list[float] = signal.times[record].tolist()
        self.values: list[list[float]] = signal.values[record].tolist()
        self.width: list[float] = signal.width[record].tolist()
        self.step: list[list[float]] = signal.step[record].tolist()
        self.first, self.last_time = float(signal.first_time[record]), float(signal.last_time[record])
        self.last, self.n_samples = int(signal.last[record]), signal.times.shape[1]
        self.linear = signal.kind == "linear" and self.n_samples > 1
        self.bounds = (signal.first_time[record : record + 1], signal.last_time[record : record + 1])
        # the tensors a differentiable read needs on each interval, made when first read
        self.intervals: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def _interval(self, t: float) -> tuple[int, int]:
        """The samples (left, right) around the clamped time ``t``, as InputSignal.forward finds them."""
        right = bisect.bisect_right(self.times, t)
        right = max(min(right, self.last), 1) if self.n_samples > 1 else min(right, 0)
        return max(right - 1, 0), right

    def at(self, t: float) -> list[float]:
        """The inputs ``[u_1(t), ..., u_m(t)]`` at the Python-float time ``t``."""
        t = self.first if t < self.first else self.last_time if t > self.last_time else t
        left, right = self._interval(t)
        if not self.linear:
            return list(self.values[right] if t >= self.times[right] else self.values[left])
        weight = (t - self.times[left]) / self.width[left]
        weight = 0.0 if weight < 0.0 else 1.0 if weight > 1.0 else weight
        return [u + weight * d for u, d in zip(self.values[left], self.step[left])]

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        """Inputs (1, n_inputs) at the time ``t`` (1,): :meth:`InputSignal.forward`'s operations on ``t``.

        The operations through which a gradient reaches ``t`` are those of the batched
        read (so gradients are the same to the last bit); the search and the lookups of
        the interval's samples are Python ones.
        """
        if not (t.requires_grad and self.linear):  # a hold carries no gradient to t
            return torch.tensor([self.at(t.item())], dtype=t.dtype, device=t.device)
        first, last_time = self.bounds
        t_clamped = torch.minimum(torch.maximum(t, first), last_time)
        left, _ = self._interval(t_clamped.item())
        if left not in self.intervals:
            signal, k = self.signal, self.record
            tables = (signal.times, signal.width, signal.values, signal.step)
            self.intervals[left] = tuple(x[k, left : left + 1] for x in tables)  # type: ignore[assignment]
        times, width, u_left, step = self.intervals[left]
        weight = ((t_clamped - times) / width).clamp(0.0, 1.0)
        return u_left + weight[:, None] * step
