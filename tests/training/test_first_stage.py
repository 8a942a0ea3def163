"""first-stage-judged-by-its-loss (docs/reliability.md): the first stage of a horizon schedule
(sysid.training.train_first_stage) has its polish judged by the free run where that free run reproduces
the data, and by the stage's own loss where it does not."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from sysid.errors import FitWarning
from sysid.integration import SolverFailure
from sysid.training import REFIT_FREE_RUN, TrainSettings, stage_loss, train, train_first_stage

TARGET, START = 1.0, -2.0


class Quadratic(torch.nn.Module):
    """A segment loss (w - 1)^2 over four identical items: its minimum is w = 1."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([START], dtype=torch.float64))

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, dict]:
        return ((self.w - TARGET) ** 2).sum() * torch.ones(len(batch), dtype=torch.float64).mean(), {}


SETTINGS = TrainSettings(max_epochs=12, lr=0.2, lr_final=0.02, lbfgs_steps=30, verbose=False, horizon=5)


def _free_run(objective: Quadratic, floor: float):
    """A free-run score that is lowest at the start and grows as w moves: above ``floor`` everywhere."""
    return lambda: floor + abs(float(objective.w.detach()) - START)


def _same_history(a: list[dict], b: list[dict]) -> bool:
    def strip(rows: list[dict]) -> list[dict]:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]

    return strip(a) == strip(b)


@pytest.mark.parametrize(
    "settings",
    [SETTINGS, dataclasses.replace(SETTINGS, patience=3), dataclasses.replace(SETTINGS, batch_size=2)],
    ids=["defaults", "early-stopping", "minibatches"],
)
def test_a_first_stage_that_reproduces_its_data_trains_as_one_call_to_the_last_bit(settings) -> None:
    alone, staged = Quadratic(), Quadratic()
    reference = train(alone, 4, _free_run(alone, 0.05), settings, torch.Generator().manual_seed(1), lambda: 0)
    result = train_first_stage(
        staged, 4, _free_run(staged, 0.05), settings, torch.Generator().manual_seed(1), lambda: 0
    )
    assert torch.equal(alone.w, staged.w)
    assert float(staged.w.detach()) == START  # the free run's best: the start
    assert (result.best_epoch, result.best_score, result.stop_reason) == (
        reference.best_epoch,
        reference.best_score,
        reference.stop_reason,
    )
    assert _same_history(result.history, reference.history)
    assert not any("stage_loss" in row for row in result.history)


def test_a_first_stage_whose_free_run_misses_the_data_keeps_what_its_loss_says_it_fitted() -> None:
    objective = Quadratic()
    validate = _free_run(objective, REFIT_FREE_RUN + 0.3)
    result = train_first_stage(objective, 4, validate, SETTINGS, torch.Generator(), lambda: 0)
    # judged by the free run, the stage would have kept its start (w = -2, loss 9); judged by its loss it fits w = 1
    assert float(objective.w) == pytest.approx(TARGET, abs=1e-6)
    assert stage_loss(objective, 4)() < 1e-10
    polish = [row for row in result.history if row["stage"] == "lbfgs"]
    kept = [row for row in result.history if row["epoch"] == result.best_epoch and "stage_loss" in row]
    assert kept[-1]["stage"] == "lbfgs"
    assert polish and all(row["stage_loss"] >= 0 for row in polish)
    assert all(math.isnan(row["val_loss"]) for row in polish if row is not kept[-1])
    # the kept parameters' free run is what the later stages must beat, and the row of the kept epoch says it
    assert result.best_score == pytest.approx(REFIT_FREE_RUN + 0.3 + (TARGET - START), abs=1e-6)
    assert kept[-1]["val_loss"] == result.best_score
    # the polish started from the lower-loss of the free run's best (the start) and the last Adam epoch
    adam = [row for row in result.history if row["stage"] == "adam"]
    assert adam[-1].get("stage_loss", math.inf) < 9.0


def test_a_first_stage_without_a_polish_is_its_adam_epochs() -> None:
    objective = Quadratic()
    settings = TrainSettings(max_epochs=5, lr=0.2, verbose=False, horizon=5)
    result = train_first_stage(objective, 4, _free_run(objective, 1.0), settings, torch.Generator(), lambda: 0)
    assert float(objective.w) == START and result.best_epoch == -1
    assert [row["stage"] for row in result.history] == ["start"] + ["adam"] * 5


class Fragile(Quadratic):
    """The quadratic, whose full-batch scoring without gradients fails, or whose polish is interrupted."""

    def __init__(self, fail_scoring: bool = False, interrupt_polish: bool = False) -> None:
        super().__init__()
        self.fail_scoring, self.interrupt_polish, self.scored = fail_scoring, interrupt_polish, 0

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, dict]:
        if not torch.is_grad_enabled():
            self.scored += 1
            if self.fail_scoring:
                raise SolverFailure("step size too small")
        elif self.interrupt_polish and self.scored:
            raise KeyboardInterrupt
        return super().forward(batch)


def test_a_first_stage_whose_starts_cannot_be_scored_polishes_by_the_free_run_as_one_call() -> None:
    alone, fragile = Quadratic(), Fragile(fail_scoring=True)
    floor = REFIT_FREE_RUN + 0.3
    reference = train(alone, 4, _free_run(alone, floor), SETTINGS, torch.Generator(), lambda: 0)
    result = train_first_stage(fragile, 4, _free_run(fragile, floor), SETTINGS, torch.Generator(), lambda: 0)
    assert fragile.scored >= 1  # the starts were scored, and failed
    assert torch.equal(alone.w, fragile.w)
    assert _same_history(result.history, reference.history)


def test_a_ctrl_c_in_a_polish_judged_by_its_loss_keeps_the_parameters_and_leaves_no_loss_as_free_run() -> None:
    objective = Fragile(interrupt_polish=True)
    validate = _free_run(objective, REFIT_FREE_RUN + 0.3)
    with pytest.warns(FitWarning, match="interrupted during the L-BFGS polish"):
        result = train_first_stage(objective, 4, validate, SETTINGS, torch.Generator(), lambda: 0)
    assert result.stop_reason == "interrupted"
    assert math.isnan(result.best_score)  # not the stage loss: the estimator scores the kept parameters itself
    assert stage_loss(objective, 4)() < 9.0  # the lower-loss start (the last Adam epoch), not the free run's best
