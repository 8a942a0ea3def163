"""Where the training of a solver-trained estimator begins, and how good that start is.

A start is the field built for the data and warm-started by collocation
(:mod:`sysid.estimators._ode_warm_start`), with the random stream that made it
(:class:`FieldStart`). Its free-run error over the training data, scored before any
training as the training's validation scores it, lets a field with two starts
(``LinearMLP(linear_start="zero")``) train from the one that reproduces the data
(:meth:`~sysid.estimators._free_run.FreeRunCheckMixin._choose_start`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from sysid.integration import BatchedField, InputSignal, SolverFailure
from sysid.training import HorizonStage, MultipleShooting, Segments, make_segments, plan_horizons, resumable_stage
from sysid.trajectories import Trajectories

if TYPE_CHECKING:
    from sysid.fields import Scaling
    from sysid.integration import SolverConfig
    from sysid.training import Training


@dataclass
class FieldStart:
    """Where a training begins (:meth:`SolverTrainedODE._start`).

    ``generator``: the random stream that initialised the field and then orders the
    training's batches; ``reuse``: a warm start continues the fitted field;
    ``initial``: the collocation's smoothed scaled states (one array per trajectory,
    None without a collocation warm start); ``rhs`` and ``sensor``: the started field
    and output model.
    """

    generator: torch.Generator
    reuse: bool
    initial: list[np.ndarray] | None
    rhs: BatchedField
    sensor: Any


class StartMixin:
    """The start of a training of :class:`~sysid.estimators._ode_base.SolverTrainedODE`, and its score.

    Mixed into the estimator, which provides the parts, the scaling and the collocation.
    """

    if TYPE_CHECKING:  # what SolverTrainedODE provides (declared for mypy only)
        training_: Training
        scaling_: Scaling
        rhs_: BatchedField
        sensor_: Any
        solver_: SolverConfig
        solver_part_: Any
        n_dims_: int

        def _check_log_errors(self, data: Trajectories) -> None: ...
        def _generator(self) -> torch.Generator: ...
        def _prepare(self, data: Trajectories, generator: torch.Generator) -> bool: ...
        def _validation_split(self, data: Trajectories) -> tuple[list[int], list[float] | None]: ...
        def _checkpoint(self, data: Any, horizon_stage: int = 0) -> Any: ...
        def _collocation_warm_start(self, data: Trajectories, train_rows: list[int]) -> list[np.ndarray]: ...
        def _input_signal(self, data: Trajectories) -> InputSignal | None: ...

    def _start(self, data: Trajectories) -> FieldStart:
        """Scale the data, build the field and warm-start it by collocation: where training begins.

        A warm start (``warm_start=True``) reuses the fitted field, and a fit that will
        resume from its checkpoint skips the collocation (the checkpoint replaces it).
        """
        if self.training_.errors == "log":
            self._check_log_errors(data)
        generator = self._generator()
        reuse = self._prepare(data, generator)
        train_rows, _ = self._validation_split(data)
        stages = self._stages(train_rows)
        resuming = resumable_stage(len(stages), lambda k: self._checkpoint(data, k)) is not None
        initial = None
        if not reuse and self.training_.collocation_steps and not resuming:
            initial = self._collocation_warm_start(data, train_rows)
        return FieldStart(generator, reuse, initial, self.rhs_, self.sensor_)

    def _stages(self, train_rows: list[int]) -> list[HorizonStage]:
        """The training's horizon stages for trajectories of ``train_rows`` training rows."""
        training = self.training_
        return plan_horizons(
            training.horizons,
            training.segment_length,
            [n - 1 for n in train_rows],
            training.max_epochs,
            float(training.lr),
            training.lbfgs_steps,
        )

    def _segments(self, data: Trajectories, length: int) -> Segments:
        """The training rows of ``data`` (scaled) cut into shooting segments of ``length`` sample intervals."""
        train_rows, _ = self._validation_split(data)
        return make_segments(
            [tr.t[:n] for tr, n in zip(data, train_rows)],
            [self.scaling_.scale(tr.y)[:n] for tr, n in zip(data, train_rows)],
            length,
        )

    def _shooting(
        self, data: Trajectories, segments: Segments, start: Any, inputs: InputSignal | None, realtime: bool = False
    ) -> MultipleShooting:
        """The multiple-shooting objective of ``segments`` of ``data``.

        ``start``: the segments' start values (scaled; the collocation's smoothed states or
        the previous stage's carried starts), None for the data themselves.
        """
        return MultipleShooting(
            self.rhs_,
            segments,
            [tr.t for tr in data],
            [self.scaling_.scale(tr.y) for tr in data],
            self.n_dims_,
            inputs,
            self.solver_,
            self.solver_part_.gradient,
            self.training_.continuity_weight,
            self.training_.learn_x0,
            start,
            self.sensor_,
            realtime=realtime,
            errors=self.training_.errors,
        )

    def _start_error(self, data: Trajectories, start: FieldStart) -> float:
        """Free-run error (scaled RMSE, as the training's validation) of the field as started; NaN if it fails.

        The number the training's first history row (``stage == "start"``) reports: the
        started field simulated from the collocation's initial states.
        """
        self._use(start)
        train_rows, tail_from = self._validation_split(data)
        segments = self._segments(data, cast(int, self._stages(train_rows)[0].length))
        shooting = self._shooting(data, segments, start.initial, self._input_signal(data))
        try:
            return shooting.free_run_error(tail_from)
        except SolverFailure:
            return math.nan

    def _use(self, start: FieldStart) -> None:
        """Make ``start``'s field (and sensor) the estimator's, for the training from it."""
        self.rhs_, self.sensor_ = start.rhs, start.sensor
