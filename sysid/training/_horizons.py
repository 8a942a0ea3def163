"""Training for the horizon the user predicts over: a schedule of growing shooting windows.

Short segments (a few sample intervals) make the multiple-shooting loss smooth, so the
optimiser finds the basin; but they only reward local slopes, never the phase and
amplitude errors that build up over a long prediction. Long segments see those errors
but are hard to train from scratch (issue #17: ``segment_length=60`` from the start gave
a Lotka-Volterra held-out error of 0.38, against 0.094 for 20). A horizon schedule
trains in stages on growing segments: the first stage on ``segment_length``, then one
stage per entry of :class:`~sysid.Training`'s ``horizons``. Each later stage cuts the
trajectories anew, starts every new segment from the state the previous stage's model
reaches there (:meth:`MultipleShooting.carried_starts`, so the learned initial states
and hidden dimensions carry over exactly), resets the optimiser, and continues the epoch
count, the history and the restore-best of the stages before it.

Which parameters a stage keeps: the best by the free run of whole trajectories
(``val_loss``), the previous stages' best included, so a schedule never ends worse, by
the free run, than where its first stage ended. The first stage's polish is the
exception where that free run misses the data at every check of its Adam epochs: it is
then judged by the stage's own loss (:mod:`sysid.training._first_stage`).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from sysid.errors import ConfigError, FitError, FitWarning
from sysid.training._first_stage import train_first_stage
from sysid.training._loop import POLISH_CHUNK, TrainResult, TrainSettings, train

if TYPE_CHECKING:
    from sysid.training._checkpoint import Checkpoint

HORIZON_FORMS = (
    "None (one stage of segment_length), or a list of later stages, each a segment length "
    "(int > segment_length), None (whole trajectories, last), or a tuple (length, adam_epochs, lr, "
    "lbfgs_steps), lengths increasing"
)


@dataclass(frozen=True)
class HorizonStage:
    """One stage of a horizon schedule.

    Attributes
    ----------
    length : int or None
        Sample intervals per shooting segment; None: whole trajectories.
    epochs : int
        Adam epochs of this stage.
    lr : float
        Adam's rate at the start of the stage (after its warm-up); it decays to a tenth.
    lbfgs_steps : int
        L-BFGS polish iterations after this stage's Adam epochs.
    """

    length: int | None
    epochs: int
    lr: float
    lbfgs_steps: int = 0


def _stage_fault(horizons: Any, item: Any, why: str) -> ConfigError:
    return ConfigError(f"Training: horizons must be {HORIZON_FORMS}; got {horizons!r}: the stage {item!r} {why}.")


def _int(value: Any, low: int) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value >= low


def check_horizons(horizons: Any, segment_length: int) -> list[HorizonStage] | None:
    """The later stages a ``horizons`` setting declares (None: none); ConfigError naming what is wrong.

    A plain length (or None) is an L-BFGS polish on the longer windows, with the
    training's ``lbfgs_steps`` (filled in by :func:`plan_horizons`; marked -1 here).

    Examples
    --------
    >>> [s.length for s in check_horizons([20, None], 5)]
    [20, None]
    >>> check_horizons([(None, 10, 1e-3, 50)], 5)
    [HorizonStage(length=None, epochs=10, lr=0.001, lbfgs_steps=50)]
    >>> check_horizons([3], 5)
    Traceback (most recent call last):
    ...
    sysid.errors.ConfigError: Training: horizons must be None (one stage of segment_length), or a list of later \
stages, each a segment length (int > segment_length), None (whole trajectories, last), or a tuple (length, \
adam_epochs, lr, lbfgs_steps), lengths increasing; got [3]: the stage 3 is not longer than the stage before it (5 \
intervals).
    """
    if horizons is None:
        return None
    if isinstance(horizons, str | bytes) or not isinstance(horizons, Sequence) or not len(horizons):
        raise ConfigError(f"Training: horizons must be {HORIZON_FORMS}; got {horizons!r}.")
    stages: list[HorizonStage] = []
    previous: int | None = segment_length
    for item in horizons:
        if previous is None:
            raise _stage_fault(horizons, item, "follows the whole-trajectory stage (None must be last)")
        if isinstance(item, tuple | list):
            if len(item) != 4:
                raise _stage_fault(horizons, item, "is a tuple but not (length, adam_epochs, lr, lbfgs_steps)")
            length, epochs, lr, polish = item
            if not _int(epochs, 0):
                raise _stage_fault(horizons, item, "has adam_epochs that are not a non-negative integer")
            if isinstance(lr, bool) or not isinstance(lr, int | float) or not lr > 0:
                raise _stage_fault(horizons, item, "has an lr that is not a positive number")
            if not _int(polish, 0):
                raise _stage_fault(horizons, item, "has lbfgs_steps that are not a non-negative integer")
            if not epochs and not polish:
                raise _stage_fault(horizons, item, "trains nothing (0 Adam epochs and 0 L-BFGS steps)")
            stage = HorizonStage(length, int(epochs), float(lr), int(polish))
        else:
            length = item
            stage = HorizonStage(length, 0, 0.0, -1)
        if length is not None and not _int(length, 1):
            raise _stage_fault(horizons, item, "has a length that is neither a positive integer nor None")
        if length is not None and length <= previous:
            raise _stage_fault(horizons, item, f"is not longer than the stage before it ({previous} intervals)")
        previous = length
        stages.append(stage)
    return stages


def plan_horizons(
    horizons: Any, segment_length: int, n_intervals: Sequence[int], max_epochs: int, lr: float, lbfgs_steps: int
) -> list[HorizonStage]:
    """The stages of one fit, for training trajectories of ``n_intervals`` sample intervals.

    The first stage is ``segment_length`` with the training's ``max_epochs``, ``lr`` and
    ``lbfgs_steps``; each entry of ``horizons`` adds a stage (see :class:`~sysid.Training`).
    Lengths are capped at the longest trajectory; a stage no longer than the one before
    (short data) is dropped, so short records train as far as their data reach.

    Examples
    --------
    >>> [s.length for s in plan_horizons([20, None], 5, [59, 40], 40, 0.01, 100)]
    [5, 20, 59]
    >>> [(s.length, s.epochs, s.lbfgs_steps) for s in plan_horizons([20, 80, None], 5, [30], 40, 0.01, 100)]
    [(5, 40, 100), (20, 0, 100), (30, 0, 100)]
    >>> len(plan_horizons([20, None], 5, [59], 40, 0.01, 0))  # plain stages are polishes: none without L-BFGS
    1
    >>> plan_horizons(None, 5, [3], 40, 0.01, 100)
    [HorizonStage(length=3, epochs=40, lr=0.01, lbfgs_steps=100)]
    """
    longest = max(max(n_intervals), 1)
    stages = [HorizonStage(min(segment_length, longest), max_epochs, lr, lbfgs_steps)]
    for later in check_horizons(horizons, segment_length) or []:
        length = longest if later.length is None else min(later.length, longest)
        if length <= (stages[-1].length or 0):
            continue  # the data end before this window: nothing longer to train on
        if later.lbfgs_steps < 0:  # a plain length: an L-BFGS polish on the longer windows
            if not lbfgs_steps:
                continue  # lbfgs_steps=0 switches the plain stages off
            later = HorizonStage(length, 0, lr, lbfgs_steps)
        stages.append(dataclasses.replace(later, length=length))
    return stages


def train_horizons(
    stages: Sequence[HorizonStage],
    build: Callable[[int, Any], tuple[torch.nn.Module, int, Callable[[], float]]],
    settings: TrainSettings,
    generator: torch.Generator,
    nfe: Callable[[], int],
    checkpoint_for: Callable[[int], Checkpoint | None] = lambda k: None,
) -> tuple[int, TrainResult]:
    """Train stage after stage; return the index of the last stage trained and the result.

    Parameters
    ----------
    stages : the plan (:func:`plan_horizons`).
    build : callable
        ``build(k, previous)`` returns ``(objective, n_items, validate)`` for stage ``k``;
        ``previous`` is the index of the stage trained before (its objective's segment
        solutions give the new segments their start states), or None for the first stage
        trained in this call (the first stage, or the stage a checkpoint resumes).
    settings : the loop's settings; each stage overrides its epochs, rate and polish.
    generator, nfe : as for :func:`sysid.training.train`.
    checkpoint_for : callable
        The checkpoint of stage ``k`` (or None): a killed fit resumes in the stage it
        was killed in.

    Returns
    -------
    (int, TrainResult)
        The last stage's objective holds the best parameters of the whole schedule.

    Raises
    ------
    FitError
        When the first stage trained fails (see :func:`sysid.training.train`). A later
        stage that fails ends the schedule with a FitWarning; the best parameters so far
        are kept.
    """
    first = resumable_stage(len(stages), checkpoint_for) or 0
    # Stage k owns epochs starts[k] .. starts[k+1] - 1: its Adam epochs, then one row per polish chunk. The
    # numbering is fixed in advance, so a fit resumed in any stage numbers its epochs as an uninterrupted one.
    starts = [0]
    for s in stages:
        starts.append(starts[-1] + s.epochs + math.ceil(s.lbfgs_steps / POLISH_CHUNK))
    staged = len(stages) > 1
    done: int | None = None
    result: TrainResult | None = None
    for k in range(first, len(stages)):
        stage = stages[k]
        objective, n_items, validate = build(k, done)
        stage_settings = dataclasses.replace(
            settings,
            first_epoch=starts[k],
            max_epochs=starts[k] + stage.epochs,
            lr=stage.lr,
            lr_final=stage.lr / 10,
            lbfgs_steps=stage.lbfgs_steps,
            horizon=stage.length if staged else None,
            description=f"{settings.description} ({stage.length} intervals)" if staged else settings.description,
        )
        try:
            if staged and k == 0:
                result = train_first_stage(
                    objective, n_items, validate, stage_settings, generator, nfe, checkpoint_for(k)
                )
            else:
                result = train(objective, n_items, validate, stage_settings, generator, nfe, checkpoint_for(k), result)
        except FitError as exc:
            if done is None or not hasattr(exc, "result"):
                raise
            result = exc.result
            result.stop_reason = "max_epochs"
            warnings.warn(
                f"the stage on segments of {stage.length} intervals failed ({exc}); the schedule stops "
                f"there with the best parameters so far (epoch {result.best_epoch}).",
                FitWarning,
                stacklevel=4,
            )
            return k, result
        done = k
        if result.stop_reason == "interrupted":
            break
    if done is None or result is None:
        raise ValueError("a horizon schedule needs at least one stage")
    return done, result


def resumable_stage(n_stages: int, checkpoint_for: Callable[[int], Checkpoint | None]) -> int | None:
    """The latest stage whose checkpoint this fit can resume (None when there is none)."""
    for k in reversed(range(n_stages)):
        checkpoint = checkpoint_for(k)
        if checkpoint is not None and checkpoint.resumable():
            return k
    return None
