"""The multiple-shooting objective: all segments of all trajectories in one solve."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from sysid.integration import BatchedField, Clock, Gradient, InputSignal, SolverConfig, simulate, solve
from sysid.training._errors import compare, log_floor
from sysid.training._segments import Segments, interpolate_missing


class MultipleShooting(torch.nn.Module):
    """Loss over observed entries of short segments, tied together by a continuity penalty.

    Each segment starts from a learned state; the first segment's start of each
    trajectory is that trajectory's learned initial condition x0. The loss is the mean
    squared error (scaled units) over observed entries plus ``continuity`` times the
    mean squared gap between a segment's end and the next segment's start, which ties
    the segments into one trajectory (and is the only thing constraining augmented,
    never-observed dimensions between observations).

    Parameters
    ----------
    rhs : BatchedField
    segments : Segments
    times, scaled : lists of the trajectories' times and scaled observations (for the
        initial segment states and for free-run validation).
    n_dims : int
        Observed states plus augmented ones.
    inputs : InputSignal or None
    solver : SolverConfig
    gradient : {"adjoint", "backprop"}
    continuity : float
    learn_x0 : bool
        If False, each trajectory's first segment starts at its (interpolated) first
        observation and is not trained.
    initial : list of arrays, optional
        Scaled states (e.g. smoothed), one array per trajectory with the rows of ``scaled``
        and ``n_states`` or ``n_dims`` columns, to start segments from instead of the raw
        data (NaN entries fall back to it; augmented dimensions otherwise start at zero).
    observe : module, optional
        The measurement model: scaled observed states (..., n_states) to the scaled readings
        the data hold (e.g. a :class:`~sysid.fields.SensorModel` that saturates); its
        parameters are trained with the rest. None: the states are observed as they are.
    realtime : bool
        Solve the segments in their own data time (each from its first sample time, at
        rate 1, all on the union of their sample offsets) instead of the warped time in
        which every sample sits on an integer: no clock discontinuities, so the adaptive
        solver steps across many samples of a long segment instead of stopping on each,
        and gradients by backpropagation through the solver (the adjoint would restart at
        every output time). For long segments (horizon schedules) this was 13x cheaper
        per gradient on Lotka-Volterra's whole trajectories (454 evaluations instead of
        8,295).
    errors : {"additive", "log"}
        How readings and observations are compared (:func:`sysid.training._errors.compare`):
        differences in scaled units, or ``log(simulated) - log(measured)`` (positive data).
    """

    #: Registered buffers (declared for type checkers; ``register_buffer`` sets them).
    start_trainable: torch.Tensor
    init_starts: torch.Tensor
    traj: torch.Tensor
    next_segment: torch.Tensor
    first_segment: torch.Tensor
    time_knots: torch.Tensor
    observations: torch.Tensor
    observed: torch.Tensor
    grid: torch.Tensor
    offsets: torch.Tensor

    def __init__(
        self,
        rhs: BatchedField,
        segments: Segments,
        times: Sequence[np.ndarray],
        scaled: Sequence[np.ndarray],
        n_dims: int,
        inputs: InputSignal | None,
        solver: SolverConfig,
        gradient: Gradient,
        continuity: float,
        learn_x0: bool = True,
        initial: Sequence[np.ndarray] | None = None,
        observe: torch.nn.Module | None = None,
        realtime: bool = False,
        errors: str = "additive",
    ) -> None:
        super().__init__()
        self.observe = observe
        self.rhs, self.segments, self.inputs = rhs, segments, inputs
        self.solver, self.gradient, self.continuity = solver, gradient, continuity
        self.times = list(times)
        self.scaled = list(scaled)
        dtype = rhs.center.dtype
        n_states = scaled[0].shape[1]
        # Augmented dimensions start at zero unless ``initial`` gives them values.
        filled = [np.pad(interpolate_missing(t, y), ((0, 0), (0, n_dims - n_states))) for t, y in zip(times, scaled)]
        for f, s in zip(filled, initial or []):  # e.g. smoothed states; keep the data where they are NaN
            f[:, : s.shape[1]] = np.where(np.isnan(s), f[:, : s.shape[1]], s)
        init = np.array([filled[i][r] for i, r in zip(segments.traj, segments.start_row)])
        init = init.reshape(len(segments), n_dims)
        self.starts = torch.nn.Parameter(torch.as_tensor(init, dtype=dtype))
        first = torch.zeros(len(segments), dtype=torch.bool)
        first[torch.as_tensor(segments.first_segment)] = True
        self.register_buffer("start_trainable", (~first | learn_x0).to(dtype)[:, None])
        self.register_buffer("init_starts", torch.as_tensor(init, dtype=dtype))
        as_t = lambda a, dt=dtype: torch.as_tensor(a, dtype=dt)  # noqa: E731
        self.register_buffer("traj", torch.as_tensor(segments.traj))
        self.register_buffer("next_segment", torch.as_tensor(segments.next_segment))
        self.register_buffer("first_segment", torch.as_tensor(segments.first_segment))
        self.register_buffer("time_knots", as_t(segments.time_knots))
        self.register_buffer("observations", as_t(segments.observations))
        self.register_buffer("observed", torch.as_tensor(segments.observed))
        self.register_buffer("grid", torch.arange(segments.length + 1, dtype=dtype))
        self.register_buffer("offsets", as_t(segments.time_knots - segments.time_knots[:, :1]))
        self.n_states = n_states
        self.realtime = realtime
        self.errors = errors
        self.floor = np.ones(n_states)  # log errors: the smallest simulated value that counts (physical units)
        if errors == "log":
            center, spread = rhs.center[:n_states].cpu().numpy(), rhs.spread[:n_states].cpu().numpy()
            self.floor = log_floor([center + spread * y for y in scaled])

    def errors_of(self, readings: torch.Tensor, observations: torch.Tensor) -> torch.Tensor:
        """Errors of readings against observations (both scaled): differences, or log errors (``errors``)."""
        n = self.n_states
        return compare(readings, observations, self.errors, self.rhs.center[:n], self.rhs.spread[:n], self.floor)

    def start_states(self) -> torch.Tensor:
        """Segment start states; untrained ones (learn_x0=False) held at their data value."""
        w = self.start_trainable
        return w * self.starts + (1 - w) * self.init_starts

    @property
    def x0(self) -> torch.Tensor:
        """Learned scaled initial state of every trajectory (n_traj, n_dims)."""
        return self.start_states()[self.first_segment]

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss on the segments ``batch`` (indices) and its parts."""
        batch = batch.to(self.starts.device)
        starts = self.start_states()
        z = self._solve_segments(starts, batch, self.gradient)
        mask = self.observed[batch]
        err = torch.where(mask, self.errors_of(self.readings(z), self.observations[batch]), 0.0)
        data = err.pow(2).sum() / mask.sum().clamp(min=1)
        nxt = self.next_segment[batch]
        linked = nxt >= 0
        if linked.any():
            gap = z[linked, -1, :] - starts[nxt[linked]]
            cont = gap.pow(2).mean()
        else:
            cont = torch.zeros((), dtype=z.dtype, device=z.device)
        loss = data + self.continuity * cont
        return loss, {"data_loss": float(data.detach()), "continuity": float(cont.detach())}

    def readings(self, z: torch.Tensor) -> torch.Tensor:
        """What the data would read of scaled states (..., n_dims): the observed ones, through ``observe``."""
        observed = z[..., : self.n_states]
        return observed if self.observe is None else self.observe(observed)

    def _solve_segments(self, starts: torch.Tensor, batch: torch.Tensor, gradient: Gradient) -> torch.Tensor:
        """States (batch, K+1, n_dims) of the segments ``batch`` at their sample rows."""
        if not self.realtime:
            self.rhs.bind(Clock(self.grid, self.time_knots[batch]), self.traj[batch], self.inputs)
            z = solve(self.rhs, starts[batch], self.grid, self.solver, gradient, jump_t=self.grid[1:-1])
            return z.transpose(0, 1)
        offsets = self.offsets[batch]
        grid, position = torch.unique(offsets, sorted=True, return_inverse=True)  # (G,), (batch, K+1)
        if grid.numel() == 1:
            return starts[batch][:, None, :].expand(-1, offsets.shape[1], -1)
        first = self.time_knots[batch, 0]
        horizon = grid[-1]
        # rate 1 from each segment's first sample time: sigma is the time elapsed since then
        clock = Clock(torch.stack([grid[0], horizon]), torch.stack([first, first + horizon], dim=1))
        self.rhs.bind(clock, self.traj[batch], self.inputs)
        z = solve(self.rhs, starts[batch], grid, self.solver, "none" if gradient == "none" else "backprop")
        return z[position, torch.arange(len(batch), device=z.device)[:, None]]

    @torch.no_grad()
    def carried_starts(self, segments: Segments) -> list[np.ndarray]:
        """Start states for a new segmentation, read off the current model's segment solutions.

        A new segment starting at row ``r`` of trajectory ``i`` starts from the state the
        current objective's segment covering ``r`` reaches there: the learned start state
        itself when ``r`` is a current start (so the initial states ``x0`` carry over
        exactly), else that segment's solution at ``r``. Hidden (augmented) dimensions
        carry over with the rest. Returns one (n_rows, n_dims) array per trajectory, NaN
        except at the new start rows: the ``initial`` argument of a new objective.
        """
        batch = torch.arange(len(self.segments), device=self.starts.device)
        z = self._solve_segments(self.start_states(), batch, "none").cpu().numpy()  # (n_seg, K+1, n_dims)
        out = [np.full((len(t), z.shape[-1]), np.nan) for t in self.times]
        old, length = self.segments, self.segments.length
        for traj, row in zip(segments.traj, segments.start_row):
            mine = np.flatnonzero((old.traj == traj) & (old.start_row <= row))
            seg = mine[np.argmax(old.start_row[mine])]  # the last segment starting at or before the row
            out[traj][row] = z[seg, min(row - old.start_row[seg], length)]
        return out

    @torch.no_grad()
    def free_run_error(self, tail_from: Sequence[float] | None = None) -> float:
        """RMSE (scaled units) of whole trajectories simulated from the learned x0.

        With ``tail_from`` (one time per trajectory) only later observations count:
        the extrapolation error on held-out tails.
        """
        index = torch.arange(len(self.times), device=self.starts.device)
        preds = simulate(self.rhs, self.x0, self.times, index, self.inputs, self.solver, gradient="none")
        sq, count = 0.0, 0
        for i, (pred, y) in enumerate(zip(preds, self.scaled)):
            sel = np.ones(len(y), dtype=bool) if tail_from is None else self.times[i] > tail_from[i]
            obs = ~np.isnan(y) & sel[:, None]
            target = torch.as_tensor(np.nan_to_num(y), dtype=pred.dtype, device=pred.device)
            diff = self.errors_of(self.readings(pred), target).cpu().numpy()[obs]
            sq += float(np.sum(diff**2))
            count += int(obs.sum())
        return float(np.sqrt(sq / max(count, 1)))
