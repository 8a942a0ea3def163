"""first-stage-judged-by-its-loss (docs/reliability.md): the first stage of a horizon schedule
(sysid.training.train_first_stage) has its polish judged by the free run where that free run reproduces
the data, and by the stage's own loss where it does not."""

from __future__ import annotations

import math

import pytest
import torch

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


def test_a_first_stage_that_reproduces_its_data_trains_as_one_call_to_the_last_bit() -> None:
    alone, staged = Quadratic(), Quadratic()
    reference = train(alone, 4, _free_run(alone, 0.05), SETTINGS, torch.Generator(), lambda: 0)
    result = train_first_stage(staged, 4, _free_run(staged, 0.05), SETTINGS, torch.Generator(), lambda: 0)
    assert torch.equal(alone.w, staged.w)
    assert float(staged.w) == START  # the free run's best: the start
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
