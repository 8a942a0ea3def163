"""Multiple shooting whose items are minibatches of trajectories, read from storage when needed.

With data too large for memory (:class:`~sysid.trajectories.LazyTrajectories`, e.g.
Dask-backed xarray), an optimisation step reads one minibatch of trajectories, scales
it, cuts it into segments (:func:`~sysid.training.make_segments`) and solves all of them
in one batched solve (:class:`~sysid.training.MultipleShooting`), then lets it go. No
segment start is a parameter (their number grows with the data): every segment starts
from the smoothing-spline value of the observations at its first row
(:func:`~sysid.training._collocation.smooth_trajectory`), fixed. Those start values are
computed the first time a minibatch is read and kept (one row of ``n_dims`` numbers per
segment, about ``1 / segment_length`` of the observations); the spline's strength is
chosen once per state by cross-validation on the first minibatch and reused. The continuity penalty still ties each
segment's end to the next one's start, and so shapes the field.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from sysid.integration import BatchedField, Gradient, InputSignal, Interpolation, SolverConfig
from sysid.training._collocation import Smoothed, smooth_trajectory, smoothing_strengths
from sysid.training._segments import Segments, make_segments
from sysid.training._shooting import MultipleShooting
from sysid.trajectories import LazyTrajectories, Trajectories


@dataclass(frozen=True)
class StreamSettings:
    """How minibatches become shooting problems; every field is resolved by the estimator.

    ``scale`` maps physical states (n, n_states) to the scaled ones the field works in;
    ``split`` returns each trajectory's number of training rows and where its held-out
    tail starts (``None``: no tails), as ``SolverTrainedODE._validation_split`` does.
    """

    n_dims: int
    segment_length: int
    solver: SolverConfig
    gradient: Gradient
    continuity: float
    input_interpolation: Interpolation
    scale: Callable[[np.ndarray], np.ndarray]
    split: Callable[[Trajectories], tuple[list[int], list[float] | None]]


class StreamingShooting(torch.nn.Module):
    """Loss of one minibatch of trajectories, read when asked for: ``objective(tensor([k]))``.

    Parameters
    ----------
    rhs : BatchedField
        The field being trained: the only parameters of this module.
    data : LazyTrajectories
    groups : list of int arrays
        The items: trajectory positions of each minibatch (``data.minibatches(...)``).
    settings : StreamSettings
    penalty : callable, optional
        Returns a term added to every loss (e.g. an L1 penalty), or None.

    Attributes
    ----------
    x0 : array (n_trajectories, n_dims)
        Scaled start state of every trajectory :meth:`forward` has read so far (NaN before).
    """

    def __init__(self, rhs: BatchedField, data: LazyTrajectories, groups: Sequence[np.ndarray],
                 settings: StreamSettings, penalty: Callable[[], torch.Tensor | None] | None = None) -> None:
        super().__init__()
        self.rhs = rhs
        self.data = data
        self.groups = [np.asarray(g, dtype=int) for g in groups]
        self.settings = settings
        self.penalty = penalty
        self.x0 = np.full((len(data), settings.n_dims), np.nan)
        self.lam: np.ndarray | None = None  # smoothing strength per state, chosen once
        self._starts: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}

    def __len__(self) -> int:
        return len(self.groups)

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean shooting loss of the minibatches ``batch`` (item indices), each read and solved in turn."""
        losses, parts = [], {"data_loss": 0.0, "continuity": 0.0}
        items = [int(k) for k in batch.reshape(-1).tolist()]
        for k in items:
            data = self._read(k)
            shooting = self.shooting(data, key=k)
            self.x0[self.groups[k]] = shooting.x0.detach().cpu().numpy()
            loss, own = shooting(torch.arange(len(shooting.segments)))
            losses.append(loss)
            for name in parts:
                parts[name] += own[name] / len(items)
        loss = torch.stack(losses).mean()
        extra = None if self.penalty is None else self.penalty()
        if extra is not None:
            loss = loss + extra
        return loss, parts

    def warm_up(self, k: int) -> tuple[Trajectories, list[int], list[Smoothed]]:
        """Read minibatch ``k`` and smooth its training rows (physical units), remembering its starts.

        For the collocation warm start, which fits the field to these smoothed states.
        """
        data = self._read(k)
        rows, _ = self.settings.split(data)
        smoothed = self._smooth(data, rows, k)
        self.shooting(data, key=k, smoothed=smoothed)
        return data, rows, smoothed

    def shooting(self, data: Trajectories, key: int | None = None,
                 smoothed: Sequence[Smoothed] | None = None) -> MultipleShooting:
        """The shooting problem of loaded ``data``, every segment starting from the smoothed data, fixed.

        ``key`` caches the start values under that minibatch; ``smoothed`` gives the
        smoothing of the training rows when it is already known. The result lives on the
        field's device; its free-run error (``free_run_error``) validates on held-out tails.
        """
        settings = self.settings
        rows, _ = settings.split(data)
        scaled = [settings.scale(tr.y) for tr in data]
        segments = make_segments([tr.t[:n] for tr, n in zip(data, rows)], [s[:n] for s, n in zip(scaled, rows)],
                                 settings.segment_length)
        starts = self._starts.get(key) if key is not None else None
        if starts is None:
            if smoothed is None:
                smoothed = self._smooth(data, rows, key)
            starts = _segment_starts(segments, smoothed, settings.scale)
            if key is not None:
                self._starts[key] = starts
        initial = []
        for tr, (start_rows, values) in zip(data, starts):
            full = np.full((tr.n_times, data.n_states), np.nan)
            full[start_rows] = values
            initial.append(full)
        dtype = self.rhs.center.dtype
        inputs = None
        if data.n_inputs:
            inputs = InputSignal([tr.t for tr in data], [tr.u for tr in data if tr.u is not None],
                                 settings.input_interpolation, dtype)  # data with inputs: every trajectory has u
        shooting = MultipleShooting(self.rhs, segments, [tr.t for tr in data], scaled, settings.n_dims, inputs,
                                    settings.solver, settings.gradient, settings.continuity, learn_x0=False,
                                    initial=initial)
        shooting.starts.requires_grad_(False)  # fixed: nothing here grows with the data
        return shooting.to(self.rhs.center.device)

    def _smooth(self, data: Trajectories, rows: list[int], key: int | None) -> list[Smoothed]:
        """Smoothing splines of the training rows of ``data`` (minibatch ``key``), at the shared strength."""
        self._smoothing_strengths(data if key == 0 else None)
        return [smooth_trajectory(tr.t[:n], tr.y[:n], self.lam) for tr, n in zip(data, rows)]

    def _smoothing_strengths(self, first: Trajectories | None) -> None:
        """Choose the spline strength per state by GCV on minibatch 0 (``first``, or read now), once.

        Always minibatch 0, whichever is read first: a resumed fit smooths like an uninterrupted one.
        """
        if self.lam is None:
            first = self._read(0) if first is None else first
            rows, _ = self.settings.split(first)
            self.lam = smoothing_strengths([tr.t[:n] for tr, n in zip(first, rows)],
                                           [tr.y[:n] for tr, n in zip(first, rows)])

    def _read(self, k: int) -> Trajectories:
        return self.data.load(self.groups[k])

    def extra_repr(self) -> str:
        return f"n_minibatches={len(self.groups)}, n_trajectories={len(self.data)}"


def _segment_starts(segments: Segments, smoothed: Sequence[Smoothed],
                    scale: Callable[[np.ndarray], np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per trajectory, its segments' first rows and the scaled smoothed states there (NaN: none)."""
    out = []
    for i, sm in enumerate(smoothed):
        rows = segments.start_row[segments.traj == i]
        out.append((rows, scale(sm.values[rows])))
    return out


def validation_positions(n_trajectories: int, size: int) -> np.ndarray:
    """``size`` positions spread evenly over ``0 .. n_trajectories - 1`` (all of them if fewer).

    Examples
    --------
    >>> validation_positions(10, 4).tolist()
    [0, 3, 6, 9]
    """
    if n_trajectories <= size:
        return np.arange(n_trajectories)
    return np.unique(np.round(np.linspace(0, n_trajectories - 1, size)).astype(int))

