"""The optimisation loop: Adam with a decaying rate, early stopping, restore-best, recovery."""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from sysid.errors import FitError, FitWarning
from sysid.integration import SolverFailure

_POLISH_CHUNK = 10
ADVICE = (
    "Try a lower lr, a smaller segment_length, looser rtol/atol, or a larger "
    "solver max_num_steps; check the data for outliers and wrong units."
)


@dataclass(frozen=True)
class TrainSettings:
    """What the loop needs to know; every field is resolved by the estimator's ``fit``."""

    max_epochs: int = 300
    lr: float = 1e-2
    lr_final: float = 1e-3
    batch_size: int | None = None
    patience: int | None = 50
    eval_every: int = 5
    lbfgs_steps: int = 0
    warmup_epochs: int = 10
    max_failures: int = 5
    verbose: bool = True
    description: str = "fit"


@dataclass
class TrainResult:
    """What happened: one history row per epoch, the best epoch, and why it stopped."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = math.inf
    stop_reason: str = "max_epochs"
    failures: int = 0


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return copy.deepcopy(module.state_dict())


def _batches(n: int, size: int | None, generator: torch.Generator) -> list[torch.Tensor]:
    if size is None or size >= n:
        return [torch.arange(n)]
    order = torch.randperm(n, generator=generator)
    return list(order.split(size))


def train(
    objective: torch.nn.Module,
    n_items: int,
    validate: Callable[[], float],
    settings: TrainSettings,
    generator: torch.Generator,
    nfe: Callable[[], int],
) -> TrainResult:
    """Minimise ``objective(batch)`` over minibatches of ``n_items``; keep the best parameters.

    Parameters
    ----------
    objective : module
        ``objective(batch_indices)`` returns ``(loss, parts)``; its parameters are trained.
    n_items : int
        Number of items (segments) the batches index.
    validate : callable
        Returns the score to minimise for early stopping and restore-best (e.g. the
        free-run error of whole trajectories).
    settings : TrainSettings
    generator : torch.Generator
        Batch order.
    nfe : callable
        Returns the cumulative number of vector-field evaluations.

    Returns
    -------
    TrainResult
        On return, ``objective`` holds the parameters with the best validation score.
        A KeyboardInterrupt stops training cleanly (``stop_reason="interrupted"``).

    Raises
    ------
    FitError
        When the solver or the loss fails ``max_failures`` times in a row; the best
        parameters seen are restored first.
    """
    params = [p for p in objective.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=settings.lr)
    gamma = (settings.lr_final / settings.lr) ** (1.0 / max(settings.max_epochs, 1))
    warmup = max(settings.warmup_epochs, 1)
    # Linear warm-up, then exponential decay. Adam's first steps move every weight by about
    # lr whatever its gradient; from a collocation warm start that undid the warm start
    # (free-run error 0.45 -> 4.3 after one epoch on Lotka-Volterra; benchmarks/).
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda epoch: min(1.0, (epoch + 1) / warmup) * gamma**epoch)
    result = TrainResult()
    best_state = _snapshot(objective)
    try:  # the starting point is a candidate too: a warm start never comes back worse
        result.best_score = validate()
    except (SolverFailure, AssertionError):
        result.best_score = math.inf
    result.history.append({"epoch": -1, "stage": "start", "loss": math.nan, "val_loss": result.best_score,
                           "nfe_forward": 0, "nfe_backward": 0, "lr": math.nan, "seconds": 0.0})
    since_best = 0
    failures_in_row = 0
    start = time.perf_counter()
    bar = tqdm(range(settings.max_epochs), desc=settings.description, disable=not settings.verbose,
               leave=False, dynamic_ncols=True)
    try:
        for epoch in bar:
            losses = []
            failed: str | None = None
            nfe_fwd = nfe_bwd = 0
            for batch in _batches(n_items, settings.batch_size, generator):
                optimizer.zero_grad(set_to_none=True)
                try:
                    n0 = nfe()
                    loss, _ = objective(batch)
                    n1 = nfe()
                    if not torch.isfinite(loss):
                        raise SolverFailure("the loss is NaN or infinite")
                    loss.backward()
                    nfe_fwd += n1 - n0
                    nfe_bwd += nfe() - n1
                except (SolverFailure, AssertionError) as exc:
                    failed = str(exc)
                    break
                grads_ok = all(p.grad is None or torch.isfinite(p.grad).all() for p in params)
                if not grads_ok:
                    failed = "non-finite gradients"
                    break
                optimizer.step()
                losses.append(float(loss.detach()))
            if failed is not None:
                result.failures += 1
                failures_in_row += 1
                objective.load_state_dict(best_state)
                for group in optimizer.param_groups:
                    group["lr"] *= 0.5
                optimizer.state.clear()
                if failures_in_row >= settings.max_failures:
                    result.stop_reason = "failed"
                    raise FitError(
                        f"training failed {failures_in_row} times in a row (last: {failed}) at epoch {epoch}; "
                        f"the best parameters (epoch {result.best_epoch}) were kept. {ADVICE}"
                    )
                warnings.warn(
                    f"epoch {epoch}: {failed}; rolled back to the best parameters and halved the "
                    f"learning rate to {optimizer.param_groups[0]['lr']:.2e}. {ADVICE}",
                    FitWarning, stacklevel=3,
                )
                continue
            failures_in_row = 0
            scheduler.step()
            row: dict[str, Any] = {
                "epoch": epoch,
                "stage": "adam",
                "loss": float(np.mean(losses)),
                "val_loss": math.nan,
                "nfe_forward": nfe_fwd,
                "nfe_backward": nfe_bwd,
                "lr": optimizer.param_groups[0]["lr"],
            }
            last = epoch == settings.max_epochs - 1
            if epoch % settings.eval_every == 0 or last:
                try:
                    score = validate()
                except (SolverFailure, AssertionError):
                    score = math.inf
                row["val_loss"] = score
                if score < result.best_score:
                    result.best_score, result.best_epoch = score, epoch
                    best_state = _snapshot(objective)
                    since_best = 0
                else:
                    since_best += settings.eval_every
            row["seconds"] = time.perf_counter() - start
            result.history.append(row)
            bar.set_postfix(loss=f"{row['loss']:.3g}", val=f"{result.best_score:.3g}", nfe=nfe())
            if settings.patience is not None and since_best >= settings.patience:
                result.stop_reason = "early_stopping"
                break
    except KeyboardInterrupt:
        result.stop_reason = "interrupted"
        warnings.warn(
            f"fit interrupted at epoch {len(result.history)}; keeping the best parameters "
            f"(epoch {result.best_epoch}). Call fit again with warm_start=True to continue.",
            FitWarning, stacklevel=3,
        )
    finally:
        bar.close()
        objective.load_state_dict(best_state)
    if settings.lbfgs_steps and result.stop_reason not in ("interrupted",):
        _polish(objective, params, n_items, validate, settings, result, start, nfe)
    return result


def _polish(objective: torch.nn.Module, params: list[torch.nn.Parameter], n_items: int,
            validate: Callable[[], float], settings: TrainSettings, result: TrainResult,
            start: float, nfe: Callable[[], int]) -> None:
    """Full-batch L-BFGS from the best Adam point, validated every few iterations.

    Adam finds the basin; quasi-Newton steps then converge in far fewer solves on these
    small, deterministic full-batch problems (measured in benchmarks/). The best
    validated parameters are kept; a failure or Ctrl-C keeps the best seen so far.
    """
    best_state = _snapshot(objective)
    optimizer = torch.optim.LBFGS(params, lr=1.0, max_iter=_POLISH_CHUNK, history_size=20,
                                  line_search_fn="strong_wolfe")
    batch = torch.arange(n_items)
    counts = {"forward": 0, "backward": 0}

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        n0 = nfe()
        loss, _ = objective(batch)
        n1 = nfe()
        if not torch.isfinite(loss):
            raise SolverFailure("the loss is NaN or infinite")
        loss.backward()
        counts["forward"] += n1 - n0
        counts["backward"] += nfe() - n1
        return loss

    since_best = 0
    epoch = len(result.history)
    bar = tqdm(range(0, settings.lbfgs_steps, _POLISH_CHUNK), desc=f"{settings.description} L-BFGS",
               disable=not settings.verbose, leave=False, dynamic_ncols=True)
    try:
        for _ in bar:
            counts.update(forward=0, backward=0)
            loss = optimizer.step(closure)
            score = validate()
            result.history.append({"epoch": epoch, "loss": float(loss.detach()), "val_loss": score,
                                   "nfe_forward": counts["forward"], "nfe_backward": counts["backward"],
                                   "lr": math.nan,
                                   "seconds": time.perf_counter() - start, "stage": "lbfgs"})
            epoch += 1
            bar.set_postfix(loss=f"{float(loss.detach()):.3g}", val=f"{min(score, result.best_score):.3g}", nfe=nfe())
            if score < result.best_score:
                result.best_score, result.best_epoch = score, epoch - 1
                best_state = _snapshot(objective)
                since_best = 0
            else:
                since_best += 1
                if since_best >= 2:
                    break
    except (SolverFailure, AssertionError) as exc:
        warnings.warn(f"L-BFGS polish stopped: {exc}; keeping the best parameters.", FitWarning, stacklevel=3)
    except KeyboardInterrupt:
        result.stop_reason = "interrupted"
        warnings.warn("fit interrupted during the L-BFGS polish; keeping the best parameters.", FitWarning,
                      stacklevel=3)
    finally:
        bar.close()
        objective.load_state_dict(best_state)
