"""Fitting a solver-trained model to streamed data (:class:`~sysid.trajectories.LazyTrajectories`).

The data never sits in memory whole. The scaling comes from the statistics gathered when
the data was scanned; every training step reads one minibatch of trajectories (a Dask
chunk, or part of one) and solves its segments in one batched solve
(:class:`~sysid.training._streaming.StreamingShooting`); the collocation warm start uses
the first minibatch; early stopping simulates a fixed subset of at most
:data:`VALIDATION_TRAJECTORIES` trajectories, read once, and scores their held-out tails
(``validation_fraction``) or, without tails, their whole records. The loop is the usual
:func:`~sysid.training.train` (rollback, learning-rate halving, early stopping,
restore-best, progress bar, history, checkpoints), its items being minibatches.

Nothing is learned per trajectory or per segment: segments start from the smoothed
observations, so ``x0_`` holds each training trajectory's smoothed first state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from sysid.errors import ConfigError
from sysid.training import StreamingShooting, StreamSettings, collocation_fit, validation_positions
from sysid.trajectories import LazyTrajectories

if TYPE_CHECKING:
    from sysid.estimators._ode_base import SolverTrainedODE, TrainingProblem

#: Trajectories simulated by every early-stopping validation of a streamed fit.
VALIDATION_TRAJECTORIES = 32


def check_streaming(model: SolverTrainedODE) -> None:
    """Raise :class:`~sysid.ConfigError` for settings a streamed fit cannot honour (before any data is read)."""
    name = type(model).__name__
    model._resolve()
    reason = model.field_part_.streaming_unsupported
    if reason:
        raise ConfigError(
            f"{name} cannot fit streamed data (lazy=True): {reason}. "
            "Read the data without lazy=True, or fit a NeuralODE."
        )
    problems = []
    if model.learn_time is not None:
        problems.append(
            f"learn_time={model.learn_time!r}: a learned clock per trajectory would be trained only "
            "in the steps that read its trajectory; use learn_time=None"
        )
    if model.warm_start:
        problems.append(
            "warm_start=True: it continues from the learned start state of every segment, which a "
            "streamed fit does not have (segments start from the smoothed data); use warm_start=False"
        )
    if model.output is not None:
        problems.append(
            "output=Sensor(...): a streamed fit compares the states with the data directly; fit in "
            "memory to fit through a sensor model"
        )
    default_horizons = getattr(model._default_part("training"), "horizons", None)
    if model.training_.horizons is not None and model.training_.horizons != default_horizons:
        problems.append(
            f"horizons={model.training_.horizons!r}: longer windows would hold whole streamed "
            "trajectories in memory; a streamed fit trains on segment_length windows only, use "
            "horizons=None"
        )
    if model.field_part_.needs_points():
        problems.append(
            f"{model.field_part_!r}: its penalty reads every training state at once (e.g. LinearMLP's "
            "network_penalty), which a streamed fit never holds; set it to 0 or fit in memory"
        )
    if model.n_augment:
        problems.append(
            f"n_augment={model.n_augment!r}: unobserved dimensions have no data to start segments "
            "from, so their start states would be parameters that grow with the data; use n_augment=0"
        )
    if problems:
        raise ConfigError(f"{name} cannot fit streamed data (lazy=True) with {problems[0]}.")


def streaming_problem(model: SolverTrainedODE, data: LazyTrajectories, warm_up: bool) -> TrainingProblem:
    """The training problem of a streamed fit: one item per minibatch of trajectories.

    ``model`` is resolved and its field built (``model.rhs_``); with ``warm_up`` the field
    is first fitted by collocation to the first minibatch. ``training.batch_size`` counts
    trajectories per minibatch (None: one minibatch per Dask chunk).
    """
    from sysid.estimators._ode_base import TrainingProblem

    training, solver = model.training_, model.solver_part_
    settings = StreamSettings(
        model.n_dims_,
        training.segment_length,
        model.solver_,
        solver.gradient,
        float(training.continuity_weight),
        solver.input_interpolation,
        model.scaling_.scale,
        model._validation_split,
    )
    objective = StreamingShooting(
        model.rhs_, data, data.minibatches(training.batch_size), settings, model._field_penalty
    )
    if warm_up and training.collocation_steps:
        first, rows, smoothed = objective.warm_up(0)
        scaling = model.scaling_
        collocation_fit(
            model.rhs_.field,
            [tr.t[:n] for tr, n in zip(first, rows)],
            smoothed,
            [None if tr.u is None else tr.u[:n] for tr, n in zip(first, rows)],
            model.n_dims_,
            scaling.spread,
            scaling.time_unit,
            training.collocation_steps,
            float(training.lr),
            model.torch_dtype_,
        )
        del first, smoothed
    subset = data.load(validation_positions(len(data), VALIDATION_TRAJECTORIES))
    _, tails = model._validation_split(subset)
    validator = objective.shooting(subset)
    del subset
    dtype = model.torch_dtype_
    return TrainingProblem(
        objective,
        len(objective),
        lambda: validator.free_run_error(tails),
        lambda: objective.x0,
        lambda: torch.as_tensor(objective.x0, dtype=dtype),
    )
