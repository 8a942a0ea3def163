"""The residual sets of the least-squares fits: single shooting, multiple shooting, collocation.

Each is a callable ``x -> (r, J)`` for :func:`~sysid.training.solve_least_squares`; the
Jacobian comes from one batched evaluation of central-difference copies
(:class:`~sysid.training._differences.Differences`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from sysid.integration import (
    BatchedField,
    Clock,
    InputSignal,
    SolverConfig,
    SolverFailure,
    simulate,
    solve,
)
from sysid.training._differences import FD_STEP, Differences, assemble_jacobian
from sysid.training._segments import interpolate_missing, make_segments

Readings = Callable[[np.ndarray], np.ndarray]

FAILED_RESIDUAL = 1e6
"""Every weighted residual of a parameter set whose simulation fails (the step is rejected)."""


def _grouped(field: torch.nn.Module, sets: np.ndarray | None, dtype: torch.dtype) -> None:
    """Set (or with None clear) the field's parameter groups."""
    setattr(field, "groups", None if sets is None else torch.as_tensor(sets, dtype=dtype))  # noqa: B010


def _scaling(rhs: BatchedField) -> tuple[np.ndarray, np.ndarray, torch.dtype]:
    """The state scaling (center, spread) of ``rhs`` as numpy, and its dtype."""
    center, spread = torch.as_tensor(rhs.center), torch.as_tensor(rhs.spread)
    return center.detach().cpu().numpy(), spread.detach().cpu().numpy(), center.dtype


class TrajectoryResiduals:
    """Single shooting: whole trajectories simulated from their initial states.

    ``x`` is the free parameters (natural units) then, with ``learn_x0``, every
    trajectory's initial state (physical units, trajectory by trajectory). The
    residuals are ``weights[state] * (simulated - observed)`` over the observed
    entries, trajectory by trajectory, row-major.

    Parameters
    ----------
    rhs : BatchedField
        The model; its ``field`` has a ``groups`` attribute (parameter sets per batch group).
    times, observations : lists of arrays
        Each trajectory's times and physical observations (NaN where missing).
    inputs : InputSignal or None
    solver : SolverConfig
    n_dims : int
        States integrated (observed plus augmented).
    weights : array (n_states,)
        Multiplies each state's residuals (1 / its noise level).
    lower, upper : arrays (n_free,)
        The parameters' bounds (for one-sided differences next to them).
    learn_x0 : bool
    x0 : array (n_traj, n_dims)
        Initial states used when ``learn_x0`` is False.
    readings : callable, optional
        Scaled readings (n, n_states) of a scaled path (n, n_dims), e.g. through a
        saturating sensor; by default the observed states themselves.
    """

    def __init__(
        self,
        rhs: BatchedField,
        times: Sequence[np.ndarray],
        observations: Sequence[np.ndarray],
        inputs: InputSignal | None,
        solver: SolverConfig,
        n_dims: int,
        weights: np.ndarray,
        lower: np.ndarray,
        upper: np.ndarray,
        learn_x0: bool = True,
        x0: np.ndarray | None = None,
        readings: Readings | None = None,
    ) -> None:
        self.rhs, self.inputs, self.solver, self.n_dims = rhs, inputs, solver, n_dims
        self.times = list(times)
        self.observed = [~np.isnan(y) for y in observations]
        self.values = np.concatenate([y[m] for y, m in zip(observations, self.observed)])
        self.state_of = np.concatenate([np.nonzero(m)[1] for m in self.observed])
        self.traj_of = np.concatenate([np.full(int(m.sum()), i) for i, m in enumerate(self.observed)])
        self.lower, self.upper = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
        self.learn_x0, self.fixed_x0 = learn_x0, x0
        self.center, self.spread, self.dtype = _scaling(rhs)
        n_obs = self.observed[0].shape[1]
        self.readings = readings or (lambda z: np.asarray(z)[..., :n_obs])
        self.n_params = self.lower.size
        self.n_traj = len(self.times)
        self.set_weights(weights)
        self.solves = 0
        self.failure: str | None = None  # why the last failed evaluation failed

    def set_weights(self, weights: np.ndarray) -> None:
        """Per-state multipliers of the residuals."""
        self.weights = np.asarray(weights, dtype=float)
        self.row_weights = self.weights[self.state_of]

    def split(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(parameters (n_free,), initial states (n_traj, n_dims)) from ``x``."""
        x = np.asarray(x, dtype=float)
        if self.learn_x0:
            return x[: self.n_params], x[self.n_params :].reshape(self.n_traj, self.n_dims)
        return x[: self.n_params], np.asarray(self.fixed_x0, dtype=float)

    def simulate(self, sets: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """Unweighted residuals (n_sets, n) of parameter sets (n_sets, n_free) from starts (n_sets, n_traj, n_dims)."""
        field = self.rhs.field
        n_sets = sets.shape[0]
        z0 = torch.as_tensor(
            ((starts - self.center) / self.spread).reshape(n_sets * self.n_traj, self.n_dims), dtype=self.dtype
        )
        _grouped(field, sets, self.dtype)
        self.solves += 1
        try:
            preds = simulate(
                self.rhs,
                z0,
                self.times * n_sets,
                torch.arange(self.n_traj).repeat(n_sets),
                self.inputs,
                self.solver,
                "none",
            )
        finally:
            _grouped(field, None, self.dtype)
        out = np.empty((n_sets, self.values.size))
        n_obs = self.observed[0].shape[1]
        for g in range(n_sets):
            parts = [
                (self.center[:n_obs] + self.spread[:n_obs] * self.readings(preds[g * self.n_traj + i].numpy()))[m]
                for i, m in enumerate(self.observed)
            ]
            out[g] = np.concatenate(parts) - self.values
        return out

    def residuals(self, x: np.ndarray) -> np.ndarray:
        """Unweighted residuals at ``x`` (simulated minus observed)."""
        params, x0 = self.split(x)
        return self.simulate(params[None], x0[None])[0]

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        params, x0 = self.split(x)
        steps = FD_STEP * self.spread[: self.n_dims] if self.learn_x0 else np.zeros(0)
        diff = Differences(params, self.lower, self.upper, steps)
        starts = x0[None] + (diff.state_offsets()[:, None, :] if self.learn_x0 else 0.0)
        try:
            raw = self.simulate(
                diff.parameter_sets(), np.broadcast_to(starts, (diff.n_copies, self.n_traj, self.n_dims))
            )
        except SolverFailure as exc:
            self.failure = str(exc)
            return np.full(self.values.size, FAILED_RESIDUAL), None
        weighted = raw * self.row_weights
        deriv = diff.combine(weighted)
        n_cols = x.size
        if not self.learn_x0:
            return weighted[0], deriv.T
        d = np.arange(self.n_dims)
        rows = np.repeat(np.arange(self.values.size), self.n_dims)
        cols = self.n_params + (self.traj_of[:, None] * self.n_dims + d[None]).reshape(-1)
        values = deriv[self.n_params :].T.reshape(-1)
        return weighted[0], assemble_jacobian(self.values.size, n_cols, deriv[: self.n_params].T, rows, cols, values)


class SegmentResiduals:
    """Multiple shooting: short segments, each from its own free start state, tied by gap residuals.

    ``x`` is the free parameters then every segment's start state (physical units,
    segment by segment; with ``learn_x0`` False the first segment of each trajectory
    starts at its first observation and is not in ``x``). The residuals are the
    observed entries of each segment, each observation counted once
    (``weights[state] * (simulated - observed)``), then for every segment followed by
    another, ``sqrt(continuity) * gap_weights * (end state - next start)``.

    Parameters
    ----------
    rhs, inputs, solver, n_dims, weights, lower, upper
        As for :class:`TrajectoryResiduals`.
    times, observations : lists of arrays
    segment_length : int
        Intervals per segment.
    continuity : float
        Weight of the gaps relative to the data, as in the mean-squared loss of
        :class:`~sysid.training.MultipleShooting` (mean data error + continuity * mean
        gap): in this sum of squares each gap row counts ``continuity * n_data / n_gaps``
        times a data row.
    learn_x0 : bool
    initial : list of arrays, optional
        Start values per trajectory (rows of ``observations``, ``n_dims`` or fewer
        columns, NaN where unknown), e.g. smoothed states; else the observations,
        interpolated where missing (augmented dimensions at zero).
    readings : callable, optional
        As for :class:`TrajectoryResiduals`.
    """

    def __init__(
        self,
        rhs: BatchedField,
        times: Sequence[np.ndarray],
        observations: Sequence[np.ndarray],
        inputs: InputSignal | None,
        solver: SolverConfig,
        n_dims: int,
        weights: np.ndarray,
        lower: np.ndarray,
        upper: np.ndarray,
        segment_length: int,
        continuity: float = 1.0,
        learn_x0: bool = True,
        initial: Sequence[np.ndarray] | None = None,
        readings: Readings | None = None,
    ) -> None:
        self.rhs, self.inputs, self.solver, self.n_dims = rhs, inputs, solver, n_dims
        self.lower, self.upper = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
        self.n_params = self.lower.size
        self.center, self.spread, self.dtype = _scaling(rhs)
        seg = make_segments(list(times), list(observations), segment_length)
        self.segments = seg
        n_seg, length = len(seg), seg.length
        n_obs = observations[0].shape[1]
        self.readings = readings or (lambda z: np.asarray(z)[..., :n_obs])
        seen = seg.observed.copy()
        linked = seg.next_segment >= 0
        seen[linked, length, :] = False  # the next segment's first row: count each observation once
        self.data_index = np.nonzero(seen)  # (segment, row, state)
        self.values = seg.observations[self.data_index]
        self.state_of = self.data_index[2]
        self.linked = np.flatnonzero(linked)
        self.next = seg.next_segment[self.linked]
        filled = [np.pad(interpolate_missing(t, y), ((0, 0), (0, n_dims - n_obs))) for t, y in zip(times, observations)]
        for f, s in zip(filled, initial or []):
            f[:, : s.shape[1]] = np.where(np.isnan(s), f[:, : s.shape[1]], s)
        self.starts = np.array([filled[i][r] for i, r in zip(seg.traj, seg.start_row)]).reshape(n_seg, n_dims)
        free = np.ones(n_seg, dtype=bool)
        if not learn_x0:
            free[seg.first_segment] = False
        self.free_segments = np.flatnonzero(free)
        self.column_of = np.full(n_seg, -1)
        self.column_of[self.free_segments] = np.arange(self.free_segments.size)
        self.continuity = float(continuity) * self.values.size / max(self.linked.size * n_dims, 1)
        self.grid = torch.arange(length + 1, dtype=self.dtype)
        self.set_weights(weights)
        self.solves = 0
        self.failure: str | None = None

    def set_weights(self, weights: np.ndarray) -> None:
        """Per-state multipliers of the data residuals; the gaps get the same, times sqrt(continuity)."""
        self.weights = np.asarray(weights, dtype=float)
        gap = np.empty(self.n_dims)
        n_obs = self.weights.size
        gap[:n_obs] = self.weights
        # augmented dimensions: the typical weight per unit of scaled state
        gap[n_obs:] = float(np.median(self.weights * self.spread[:n_obs])) / self.spread[n_obs:]
        self.gap_weights = np.sqrt(self.continuity) * gap
        self.row_weights = self.weights[self.state_of]

    def start_vector(self, params: np.ndarray) -> np.ndarray:
        """``x`` from parameters and the current segment starts."""
        return np.concatenate([params, self.starts[self.free_segments].reshape(-1)])

    def split(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(parameters, every segment's start (n_seg, n_dims))."""
        starts = self.starts.copy()
        starts[self.free_segments] = x[self.n_params :].reshape(-1, self.n_dims)
        return x[: self.n_params], starts

    def first_states(self, x: np.ndarray) -> np.ndarray:
        """Each trajectory's initial state (n_traj, n_dims)."""
        return self.split(x)[1][self.segments.first_segment]

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        params, starts = self.split(np.asarray(x, dtype=float))
        diff = Differences(params, self.lower, self.upper, FD_STEP * self.spread[: self.n_dims])
        n_seg, n_copies = len(self.segments), diff.n_copies
        dtype = self.dtype
        z = (starts[None] + diff.state_offsets()[:, None, :] - self.center) / self.spread
        knots = torch.as_tensor(np.tile(self.segments.time_knots, (n_copies, 1)), dtype=dtype)
        field = self.rhs.field
        _grouped(field, diff.parameter_sets(), dtype)
        self.solves += 1
        try:
            self.rhs.bind(Clock(self.grid, knots), torch.as_tensor(np.tile(self.segments.traj, n_copies)), self.inputs)
            out = solve(
                self.rhs,
                torch.as_tensor(z.reshape(n_copies * n_seg, self.n_dims), dtype=dtype),
                self.grid,
                self.solver,
                "none",
                jump_t=self.grid[1:-1],
            )
        except SolverFailure as exc:
            self.failure = str(exc)
            n_rows = self.values.size + self.linked.size * self.n_dims
            return np.full(n_rows, FAILED_RESIDUAL), None
        finally:
            _grouped(field, None, dtype)
        scaled = out.numpy().transpose(1, 0, 2)  # (copies * n_seg, L + 1, n_dims)
        path = (self.center + self.spread * scaled).reshape(n_copies, n_seg, -1, self.n_dims)
        n_obs = self.weights.size
        read = self.readings(scaled.reshape(-1, self.n_dims)).reshape(n_copies, n_seg, -1, n_obs)
        read = self.center[:n_obs] + self.spread[:n_obs] * read
        seg_i, row_i, state_i = self.data_index
        data = (read[:, seg_i, row_i, state_i] - self.values) * self.row_weights  # (copies, n_data)
        ends = path[:, self.linked, -1, :]  # (copies, n_linked, n_dims)
        gaps = (ends - starts[self.next][None]) * self.gap_weights  # next starts unperturbed: see below
        weighted = np.concatenate([data, gaps.reshape(n_copies, -1)], axis=1)
        deriv = diff.combine(weighted)  # (n_params + n_dims, n_rows)
        n_data, n_rows = data.shape[1], weighted.shape[1]
        d = np.arange(self.n_dims)
        # data rows: d r / d start[segment, :]
        seg_cols = self.column_of[seg_i]
        keep = seg_cols >= 0
        rows = [np.repeat(np.flatnonzero(keep), self.n_dims)]
        cols = [self.n_params + (seg_cols[keep][:, None] * self.n_dims + d[None]).reshape(-1)]
        vals = [deriv[self.n_params :, :n_data][:, keep].T.reshape(-1)]
        # gap rows: d (end of s) / d start[s, :] from the copies ...
        gap_rows = n_data + np.arange(self.linked.size * self.n_dims).reshape(-1, self.n_dims)  # (n_linked, n_dims)
        own = self.column_of[self.linked]
        keep = own >= 0
        rows.append(np.repeat(gap_rows[keep].reshape(-1), self.n_dims))
        cols.append(self.n_params + (np.repeat(own[keep], self.n_dims)[:, None] * self.n_dims + d[None]).reshape(-1))
        vals.append(deriv[self.n_params :, n_data:].T.reshape(-1, self.n_dims, self.n_dims)[keep].reshape(-1))
        # ... and - d (next start) / d start[next, :] exactly (the copies held the next starts)
        nxt = self.column_of[self.next]
        rows.append(gap_rows.reshape(-1))
        cols.append(self.n_params + (nxt[:, None] * self.n_dims + d[None]).reshape(-1))
        vals.append(-np.tile(self.gap_weights, self.linked.size))
        rows_a, cols_a, vals_a = (np.concatenate(a) for a in (rows, cols, vals))
        jac = assemble_jacobian(n_rows, x.size, deriv[: self.n_params].T, rows_a, cols_a, vals_a)
        return weighted[0], jac


class CollocationResiduals:
    """The field at smoothed states minus the smoothed derivatives (no solver).

    ``x`` is the free parameters; the residuals are ``weights[state] * (f(t, x_s, p, u)
    - dx_s/dt)`` over every row and observed state with a smoothed derivative.

    Parameters
    ----------
    field : torch.nn.Module
        ``field(t, x, u)`` with a ``groups`` attribute.
    t : array (n,)
    states : array (n, n_dims)
        Smoothed states (physical).
    derivatives : array (n, n_obs)
        Smoothed derivatives (NaN where unknown).
    inputs : array (n, n_inputs) or None
    weights : array (n_obs,)
    lower, upper : arrays (n_free,)
    dtype : torch dtype
    """

    def __init__(
        self,
        field: torch.nn.Module,
        t: np.ndarray,
        states: np.ndarray,
        derivatives: np.ndarray,
        inputs: np.ndarray | None,
        weights: np.ndarray,
        lower: np.ndarray,
        upper: np.ndarray,
        dtype: torch.dtype,
    ) -> None:
        self.field, self.dtype = field, dtype
        self.lower, self.upper = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
        self.t = torch.as_tensor(t, dtype=dtype)
        self.x = torch.as_tensor(states, dtype=dtype)
        self.u = None if inputs is None else torch.as_tensor(inputs, dtype=dtype)
        self.seen = ~np.isnan(derivatives)
        self.values = derivatives[self.seen]
        self.row_weights = np.broadcast_to(np.asarray(weights, dtype=float), derivatives.shape)[self.seen]
        self.n_obs = derivatives.shape[1]
        self.failure: str | None = None

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        diff = Differences(np.asarray(x, dtype=float), self.lower, self.upper, np.zeros(0))
        n = self.x.shape[0]
        g = diff.n_copies
        _grouped(self.field, diff.parameter_sets(), self.dtype)
        try:
            with torch.no_grad():
                out = self.field(self.t.repeat(g), self.x.repeat(g, 1), None if self.u is None else self.u.repeat(g, 1))
        finally:
            _grouped(self.field, None, self.dtype)
        values = out.numpy()[:, : self.n_obs].reshape(g, n, self.n_obs)
        weighted = (values[:, self.seen] - self.values) * self.row_weights
        if not np.all(np.isfinite(weighted)):
            self.failure = "the field returned non-finite values at the smoothed states"
            return np.full(self.values.size, FAILED_RESIDUAL), None
        return weighted[0], diff.combine(weighted).T
