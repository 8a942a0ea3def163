"""The first stage of a horizon schedule: which of its parameters it keeps.

The first stage fits short segments (5 sample intervals by default); every stage picks
its parameters by the free run of whole trajectories (``val_loss``). Where that free run
says the stage misses its data (above :data:`sysid.training.REFIT_FREE_RUN` at every
check of its Adam epochs), it is not measuring the fit to short segments: on a limit
cycle or a forced oscillator, parameters that follow every segment can still drift out
of phase over a whole trajectory. Judged by it, the first stage kept an early Adam epoch
and threw away the rest of its training: the Brusselator's seed 0 kept epoch 21 (segment
loss 0.097) over its last Adam epoch (0.036) and its L-BFGS polish (0.027). There the
polish starts from the lower-loss of the free run's best and the last Adam epoch, and is
judged by the stage's own full-batch loss (history column ``stage_loss``); the free run
then scores what it kept, which the later stages, on longer windows, must beat. Every
other fit trains as before, to the last bit (session 18, docs/neural_ode.md).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from sysid.integration import SolverFailure
from sysid.training._loop import REFIT_FREE_RUN, TrainResult, TrainSettings, train

if TYPE_CHECKING:
    from sysid.training._checkpoint import Checkpoint


def train_first_stage(
    objective: torch.nn.Module,
    n_items: int,
    validate: Callable[[], float],
    settings: TrainSettings,
    generator: torch.Generator,
    nfe: Callable[[], int],
    checkpoint: Checkpoint | None = None,
) -> TrainResult:
    """The first stage of a schedule: Adam epochs, then the polish judged as the module says.

    Arguments as for :func:`sysid.training.train` (``checkpoint`` covers the Adam epochs,
    as it does in a one-call fit). On return ``objective`` holds the kept parameters and
    ``result.best_score`` is their free-run error (NaN after a Ctrl-C in a polish judged by
    the loss: the estimator then scores them itself).
    """
    adam = train(objective, n_items, validate, dataclasses.replace(settings, lbfgs_steps=0), generator, nfe, checkpoint)
    if not settings.lbfgs_steps or adam.stop_reason == "interrupted":
        return adam
    polish = dataclasses.replace(settings, first_epoch=settings.max_epochs)
    score = stage_loss(objective, n_items)
    start = _lower_loss_start(objective, adam, score) if adam.best_score > REFIT_FREE_RUN else None
    if start is None:  # the free run reproduces the data (or no start has a finite loss): as in one call
        result = train(objective, n_items, validate, polish, generator, nfe, None, adam)
    elif start.stop_reason == "interrupted":  # Ctrl-C while the starts were scored: the free run's best is kept
        return start
    else:
        by_loss = dataclasses.replace(polish, score_column="stage_loss")
        result = train(objective, n_items, score, by_loss, generator, nfe, None, start)
        if result.stop_reason == "interrupted":
            result.best_score = math.nan  # a loss, not a free run: the estimator scores the kept parameters itself
        else:
            _score_kept(result, validate, nfe)
    if result.stop_reason != "interrupted":
        result.stop_reason = adam.stop_reason
    return result


def stage_loss(objective: torch.nn.Module, n_items: int) -> Callable[[], float]:
    """A score of the current parameters: the full-batch training loss (inf where it fails).

    Examples
    --------
    >>> import torch
    >>> class Objective(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.weight = torch.nn.Parameter(torch.tensor([2.0]))
    ...
    ...     def forward(self, batch):
    ...         return (self.weight**2).sum() * len(batch), {}
    >>> stage_loss(Objective(), 3)()
    12.0
    """

    def score() -> float:
        try:
            with torch.no_grad():
                loss, _ = objective(torch.arange(n_items))
        except (SolverFailure, AssertionError):
            return math.inf
        value = float(loss)
        return value if math.isfinite(value) else math.inf

    return score


def _lower_loss_start(objective: torch.nn.Module, adam: TrainResult, score: Callable[[], float]) -> TrainResult | None:
    """Load whichever of the free run's best and the last Adam epoch has the lower loss; the result to polish on.

    Its ``best_score`` is that loss, written as ``stage_loss`` into the chosen epoch's row.
    None, with the free run's best loaded, when neither has a finite loss; a Ctrl-C while
    they are scored loads it too and returns the Adam result marked interrupted.
    """
    best = {k: v.clone() for k, v in objective.state_dict().items()}
    candidates = [(adam.best_epoch, best)]
    adam_rows = [row for row in adam.history if row.get("stage") == "adam"]
    if adam.last_state is not None and adam_rows and adam_rows[-1]["epoch"] != adam.best_epoch:
        candidates.append((adam_rows[-1]["epoch"], adam.last_state))
    scored = []
    try:
        for epoch, state in candidates:
            objective.load_state_dict(state)
            scored.append((score(), epoch, state))
    except KeyboardInterrupt:
        objective.load_state_dict(best)
        adam.stop_reason = "interrupted"
        return adam
    loss, epoch, state = min(scored, key=lambda item: item[0])  # ties: the free run's best, the first
    if not math.isfinite(loss):
        objective.load_state_dict(best)
        return None
    objective.load_state_dict(state)
    next(row for row in adam.history if row["epoch"] == epoch)["stage_loss"] = loss
    return TrainResult(list(adam.history), epoch, loss, adam.stop_reason, adam.failures)


def _score_kept(result: TrainResult, validate: Callable[[], float], nfe: Callable[[], int]) -> None:
    """Score the parameters a stage kept by its loss with the free run ``validate``, in place.

    The free run becomes ``result.best_score`` (what the later stages must beat) and the
    ``val_loss`` of the kept epoch's row, where the estimator's checks read it. A free run
    that fails scores inf; a Ctrl-C during it leaves the stage unscored and interrupted.
    """
    n0 = nfe()
    try:
        score = validate()
    except (SolverFailure, AssertionError):
        score = math.inf
    except KeyboardInterrupt:
        result.stop_reason, result.best_score = "interrupted", math.nan
        return
    result.best_score = score
    row = next(row for row in reversed(result.history) if row["epoch"] == result.best_epoch and "stage_loss" in row)
    row["val_loss"] = score
    row["nfe_validation"] = row.get("nfe_validation", 0) + nfe() - n0
