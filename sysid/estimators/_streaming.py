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

import numbers
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from sysid.errors import ConfigError, FitError, FitWarning
from sysid.integration import BatchedField, TimeParameters
from sysid.training import train
from sysid.training._collocation import collocation_fit
from sysid.training._loop import ADVICE
from sysid.training._streaming import StreamingShooting, StreamSettings, validation_positions
from sysid.trajectories import LazyTrajectories

if TYPE_CHECKING:
    from sysid.estimators._ode_base import SolverTrainedODE

#: Trajectories simulated by every early-stopping validation of a streamed fit.
VALIDATION_TRAJECTORIES = 32


def check_streaming(model: SolverTrainedODE) -> None:
    """Raise :class:`~sysid.ConfigError` for settings a streamed fit cannot honour (before any data is read)."""
    name = type(model).__name__
    if model._streaming_unsupported:
        raise ConfigError(f"{name} cannot fit streamed data (lazy=True): {model._streaming_unsupported}. "
                          "Read the data without lazy=True, or fit a NeuralODE.")
    problems = []
    if model.learn_time is not None:
        problems.append(f"learn_time={model.learn_time!r}: a learned clock per trajectory would be trained only "
                        "in the steps that read its trajectory; use learn_time=None")
    if model.warm_start:
        problems.append("warm_start=True: it continues from the learned start state of every segment, which a "
                        "streamed fit does not have (segments start from the smoothed data); use warm_start=False")
    if model.n_augment:
        problems.append(f"n_augment={model.n_augment!r}: unobserved dimensions have no data to start segments "
                        "from, so their start states would be parameters that grow with the data; use n_augment=0")
    size = model.batch_size
    if size is not None and (isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1):
        problems.append(f"batch_size={size!r}: with streamed data it counts trajectories per minibatch and must "
                        "be a positive integer, or None for one minibatch per Dask chunk")
    if problems:
        raise ConfigError(f"{name} cannot fit streamed data (lazy=True) with {problems[0]}.")


def fit_streaming(model: SolverTrainedODE, data: LazyTrajectories) -> None:
    """Train ``model`` (resolved: ``model._resolve()`` ran) on ``data``, minibatch by minibatch."""
    from sysid.estimators._ode_base import Scaling

    dtype = model.torch_dtype_
    generator = model._generator()
    model.scaling_ = scaling = Scaling.of_summary(data.summary, 0)
    model.n_dims_ = n_dims = data.n_states
    field = model._build_field(n_dims, data.n_inputs, scaling, generator, dtype)
    model.rhs_ = BatchedField(field, torch.as_tensor(scaling.center, dtype=dtype),
                              torch.as_tensor(scaling.spread, dtype=dtype), TimeParameters(len(data), dtype=dtype))
    settings = StreamSettings(n_dims, model.segment_length, model.solver_, model.gradient,
                              float(model.continuity_weight), model.input_interpolation, scaling.scale,
                              model._validation_split)
    objective = StreamingShooting(model.rhs_, data, data.minibatches(model.batch_size), settings,
                                  model._field_penalty)
    checkpoint = model._checkpoint(data)
    if model.collocation_steps and not (checkpoint is not None and checkpoint.resumable()):
        first, rows, smoothed = objective.warm_up(0)
        collocation_fit(field, [tr.t[:n] for tr, n in zip(first, rows)], smoothed,
                        [None if tr.u is None else tr.u[:n] for tr, n in zip(first, rows)], n_dims,
                        scaling.spread, scaling.time_unit, model.collocation_steps, float(model.lr), dtype)
        del first, smoothed
    objective.to(model._torch_device())
    subset = data.load(validation_positions(len(data), VALIDATION_TRAJECTORIES))
    _, tails = model._validation_split(subset)
    validator = objective.shooting(subset)
    del subset
    loop = model._train_settings(batch_size=1, description=f"{type(model).__name__} (streamed)", polish_pieces=1)
    model.rhs_.nfe = 0
    try:
        try:
            result = train(objective, len(objective), lambda: validator.free_run_error(tails), loop, generator,
                           lambda: model.rhs_.nfe, checkpoint)
        finally:
            objective.to("cpu")
    except FitError as exc:  # keep the best parameters seen, then report
        if hasattr(exc, "result"):
            _record(model, objective, data, exc.result)
        raise
    _record(model, objective, data, result)
    if checkpoint is not None and result.stop_reason != "interrupted":
        checkpoint.remove()
    if result.failures and result.best_epoch < 0 and result.stop_reason != "interrupted":
        warnings.warn(
            f"{type(model).__name__}: training failed {result.failures} time(s) and never improved on its starting "
            f"point (free-run error {result.best_score:.3g}): the model holds its initial parameters. {ADVICE}",
            FitWarning, stacklevel=5,
        )


def _record(model: SolverTrainedODE, objective: StreamingShooting, data: LazyTrajectories, result: Any) -> None:
    """The fitted attributes of a streamed fit; ``x0_`` is NaN for a trajectory never read (interrupted fit)."""
    scaled_x0 = objective.x0
    model.shooting_state_ = torch.as_tensor(scaled_x0, dtype=model.torch_dtype_)
    model.history_ = pd.DataFrame(result.history)
    model.n_function_evals_ = int(model.rhs_.nfe)
    model.stop_reason_ = result.stop_reason
    model.best_epoch_ = result.best_epoch
    model.x0_ = model.scaling_.unscale(scaled_x0)
    model.trajectory_names_ = list(data.names)
    model.time_scale_ = np.ones(len(data))
    model.time_offset_ = np.zeros(len(data))
