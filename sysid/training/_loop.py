"""The optimisation loop: Adam with a decaying rate, early stopping, restore-best, recovery."""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from sysid.errors import FitError, FitWarning
from sysid.integration import SolverFailure

if TYPE_CHECKING:
    from sysid.training._checkpoint import Checkpoint

POLISH_CHUNK = 10
#: The L-BFGS polish stops after two chunks in a row that improve the free-run error by less than this
#: fraction (the best parameters are kept whatever the gain): on the cascaded tanks the whole-record
#: chunks after 0.0967 -> 0.0965 cost 35 CPU s each for gains under 0.3% (docs/neural_ode.md).
POLISH_MIN_GAIN = 0.01

#: A fit whose kept parameters' free-run error (RMSE in standard deviations of the data) exceeds this
#: gets a FitWarning from every solver-trained estimator: R^2 below 0.75 over its own training
#: trajectories. Nine default fits of the panel keep 0.006-0.10 (the cascaded tanks 0.097); a lightly
#: damped 5 Hz oscillator kept 1.0 (no better than the mean) and nothing said so (docs/neural_ode.md,
#: "When things go wrong"). A NeuralODE whose zero start is this poor trains from its field's second
#: start (the least-squares linear part) when that one is not, and a fit that ends this poor is refitted
#: once from the start it did not take (since session 17 from REFIT_FREE_RUN on): the oscillator then
#: keeps 0.015.
POOR_FREE_RUN = 0.5
#: A NeuralODE fit whose kept free-run error exceeds this is refitted once from its field's other start
#: (the least-squares linear part, or the zero one), and the better of the two by that error is kept: a
#: model that misses 4% of its own data's variance (R^2 below 0.96) does not reproduce it, and the
#: panel's fits that do keep 0.006-0.14. Measured in session 17 on 81 default fits (docs/neural_ode.md):
#: 10 are refitted; the refit is kept on five Brusselator fits, four better held out (0.408 -> 0.063 at
#: best) and one worse (0.080 -> 0.103); the other five keep their first fit and cost up to 243 CPU s
#: more. Fits at or below it are the same bits.
REFIT_FREE_RUN = 0.2
_DIVERGENCE = 1e4  # an epoch loss this many times the best one so far counts as a failure
ADVICE = (
    "Try a lower lr, a smaller segment_length, looser rtol/atol, or a larger "
    "solver max_num_steps; check the data for outliers and wrong units."
)


#: Validation spacing (see :func:`validation_due`): at least ``EVAL_EVERY`` epochs apart, at most
#: ``MAX_EVAL_EVERY``; see :mod:`sysid.training._config` for how they were measured.
EVAL_EVERY = 5
MAX_EVAL_EVERY = 10


@dataclass(frozen=True)
class TrainSettings:
    """What the loop needs to know, resolved from a :class:`~sysid.Training` part.

    Estimators build it with :meth:`sysid.Training.settings`; the defaults here are
    the loop's own, for direct callers of :func:`train` (no early stopping, no polish).

    Validation spacing: the free-run validation runs after the last epoch and after any
    epoch at least ``eval_every`` epochs past the previous check once the training
    evaluations since then reach ``eval_cost_ratio`` times the evaluations of that
    check, or ``max_eval_every`` epochs past it (see :func:`validation_due`). With
    ``eval_cost_ratio=None`` it runs every ``eval_every`` epochs.
    """

    max_epochs: int
    lr: float = 1e-2
    lr_final: float = 1e-3
    batch_size: int | None = None
    patience: int | None = None
    eval_every: int = EVAL_EVERY
    eval_cost_ratio: float | None = None
    max_eval_every: int = MAX_EVAL_EVERY
    lbfgs_steps: int = 0
    warmup_epochs: int = 10
    max_failures: int = 5
    verbose: bool = True
    description: str = "fit"
    polish_pieces: int | None = None
    """The L-BFGS polish evaluates its full-batch loss over pieces of this many items, one
    objective call each, accumulating the gradient (None: all items in one call). Streaming
    fits use 1: every item is a minibatch read from storage, never all at once."""
    first_epoch: int = 0
    """Epochs ``first_epoch .. max_epochs - 1`` are trained (a stage of a horizon schedule
    continues the epoch count of the previous one); the rate decays over them."""
    horizon: int | None = None
    """Segment length of this stage, recorded in every history row (None: not recorded)."""
    score_column: str = "val_loss"
    """The history column of ``validate``'s scores; another than ``val_loss`` (NaN there) for another score."""


@dataclass
class TrainResult:
    """What happened: one history row per epoch, the best epoch, and why it stopped."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = math.inf
    stop_reason: str = "max_epochs"
    failures: int = 0
    last_state: dict[str, torch.Tensor] | None = None  #: the parameters where the Adam epochs stopped


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return copy.deepcopy(module.state_dict())


def _divergence(loss: float, history: list[dict[str, Any]], horizon: int | None = None) -> str | None:
    """Why this epoch's mean loss counts as diverging (far above the best so far at this horizon), or None."""
    previous = [
        row["loss"]
        for row in history
        if row.get("stage") == "adam" and math.isfinite(row["loss"]) and row.get("horizon") == horizon
    ]
    reference = max(min(previous), 1e-4) if previous else math.inf
    if loss > _DIVERGENCE * reference:
        return f"the training loss jumped from {min(previous):.3g} to {loss:.3g} (diverging)"
    return None


def _scored(settings: TrainSettings, score: float) -> dict[str, float]:
    """A validation score as history entries: in ``settings.score_column``, with ``val_loss`` always a column."""
    return {"val_loss": math.nan, settings.score_column: score}


def _fit_error(result: TrainResult, message: str) -> FitError:
    """A FitError carrying the TrainResult (the estimator keeps the best parameters and history)."""
    result.stop_reason = "failed"
    error = FitError(message)
    error.result = result  # type: ignore[attr-defined]
    return error


def validation_due(history: list[dict[str, Any]], epoch: int, settings: TrainSettings) -> bool:
    """Whether ``epoch``, just trained and the last row of ``history``, is validated.

    A pure function of the history (the training and validation evaluation counts it
    records in ``nfe_forward``, ``nfe_backward`` and ``nfe_validation``), never of wall
    time: the same fit, and a fit resumed from a checkpoint, validates at the same epochs.

    Examples
    --------
    >>> s = TrainSettings(max_epochs=50, eval_every=2, eval_cost_ratio=2.0, max_eval_every=10)
    >>> h = [{"epoch": -1, "stage": "start", "nfe_validation": 100}]
    >>> h += [{"epoch": e, "stage": "adam", "nfe_forward": 30, "nfe_backward": 40} for e in range(2)]
    >>> validation_due(h, 1, s)  # 2 epochs, 140 evaluations < 2 x 100 since the check
    False
    >>> validation_due(h + [{"epoch": 2, "stage": "adam", "nfe_forward": 30, "nfe_backward": 40}], 2, s)
    True
    """
    if epoch == settings.max_epochs - 1:
        return True
    if settings.eval_cost_ratio is None:
        return epoch % settings.eval_every == 0
    trained, gap, checked = 0, 0, None  # evaluations and epochs since the last check
    for row in reversed(history):
        if "nfe_validation" in row:
            checked = row["nfe_validation"]
            break
        if row.get("stage") == "adam":
            trained += row["nfe_forward"] + row["nfe_backward"]
            gap += 1
    if checked is None:  # no check recorded (e.g. a checkpoint of an older fit): the fixed rule
        return epoch % settings.eval_every == 0
    if gap < settings.eval_every:
        return False
    return gap >= settings.max_eval_every or trained >= settings.eval_cost_ratio * checked


def _epochs_since_check(history: list[dict[str, Any]]) -> int:
    """Adam epochs in ``history`` after its last validated row (the current epoch not yet appended)."""
    gap = 0
    for row in reversed(history):
        if "nfe_validation" in row:
            break
        gap += row.get("stage") == "adam"
    return gap


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
    checkpoint: Checkpoint | None = None,
    previous: TrainResult | None = None,
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
    checkpoint : Checkpoint, optional
        Resume from it if it holds this fit's state, and write the state to it after
        every completed epoch (see :mod:`sysid.training._checkpoint`).
    previous : TrainResult, optional
        The result of the previous stage of a horizon schedule: its history is continued
        and its best validation score is the score of ``objective``'s starting
        parameters (the previous stage's best, carried over), so they are not validated
        again and a stage never ends worse than the one before.

    Returns
    -------
    TrainResult
        On return, ``objective`` holds the parameters with the best validation score.
        A KeyboardInterrupt stops training cleanly (``stop_reason="interrupted"``).

    Raises
    ------
    FitError
        When the solver or the loss fails (or diverges) ``max_failures`` times in a row,
        or no parameters could ever be validated; the best parameters seen are restored
        first, and the exception's ``result`` attribute holds the TrainResult.
    """
    params = [p for p in objective.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=settings.lr)
    gamma = (settings.lr_final / settings.lr) ** (1.0 / max(settings.max_epochs - settings.first_epoch, 1))
    warmup = max(settings.warmup_epochs, 1)
    # Linear warm-up, then exponential decay. Adam's first steps move every weight by about
    # lr whatever its gradient; from a collocation warm start that undid the warm start
    # (free-run error 0.45 -> 4.3 after one epoch on Lotka-Volterra; benchmarks/).
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda epoch: min(1.0, (epoch + 1) / warmup) * gamma**epoch
    )
    result = TrainResult()
    if previous is not None:
        result = TrainResult(
            list(previous.history), previous.best_epoch, previous.best_score, "max_epochs", previous.failures
        )
    best_state = _snapshot(objective)
    since_best = 0
    failures_in_row = 0
    first_epoch = settings.first_epoch
    # -- checkpoint_path: resume a killed fit where it stopped (sysid/training/_checkpoint.py) --
    resumed = checkpoint.restore(objective, optimizer, scheduler, generator) if checkpoint is not None else None
    if resumed is not None:
        first_epoch, best_state = resumed.next_epoch, resumed.best_state
        since_best, failures_in_row = resumed.since_best, resumed.failures_in_row
        result = TrainResult(
            resumed.history, resumed.best_epoch, resumed.best_score, resumed.stop_reason, resumed.failures
        )
    # ------------------------------------------------------------------------------------------
    if resumed is None and previous is None:
        n0 = nfe()
        try:  # the starting point is a candidate too: a warm start never comes back worse
            result.best_score = validate()
        except (SolverFailure, AssertionError):
            result.best_score = math.inf
        result.history.append(
            {
                "epoch": -1,
                "stage": "start",
                "loss": math.nan,
                **_scored(settings, result.best_score),
                "nfe_forward": 0,
                "nfe_backward": 0,
                "lr": math.nan,
                "seconds": 0.0,
                "nfe_validation": nfe() - n0,
            }
        )
    validation_failure: str | None = None
    validation_failures = 0
    # The epoch whose steps made the current parameters, while they are not validated (None once they
    # are, or are rolled back to validated ones): a Ctrl-C validates them once, so training is kept.
    unvalidated: int | None = None
    if resumed is not None and "nfe_validation" not in result.history[-1]:
        unvalidated = first_epoch - 1
    epoch = first_epoch
    # seconds since the fit started: a later stage of a horizon schedule continues the earlier stages' clock
    start = time.perf_counter() - (float(result.history[-1].get("seconds", 0.0)) if result.history else 0.0)
    bar = tqdm(
        range(first_epoch, settings.max_epochs),
        desc=settings.description,
        disable=not settings.verbose,
        leave=False,
        dynamic_ncols=True,
    )
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
                unvalidated = epoch
                losses.append(float(loss.detach()))
            if failed is None:
                failed = _divergence(float(np.mean(losses)), result.history, settings.horizon)
            if failed is not None:
                result.failures += 1
                failures_in_row += 1
                objective.load_state_dict(best_state)
                unvalidated = None
                for group in optimizer.param_groups:
                    group["lr"] *= 0.5
                # the schedule multiplies base_lrs: halve them too, or the next epoch undoes the halving
                scheduler.base_lrs = [lr * 0.5 for lr in scheduler.base_lrs]
                optimizer.state.clear()
                if failures_in_row >= settings.max_failures:
                    raise _fit_error(
                        result,
                        (
                            f"training failed {failures_in_row} times in a row (last: {failed}) at epoch {epoch}; "
                            f"the best parameters (epoch {result.best_epoch}) were kept. {ADVICE}"
                        ),
                    )
                warnings.warn(
                    f"epoch {epoch}: {failed}; rolled back to the best parameters and halved the "
                    f"learning rate to {optimizer.param_groups[0]['lr']:.2e}. {ADVICE}",
                    FitWarning,
                    stacklevel=3,
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
            if settings.horizon is not None:
                row["horizon"] = settings.horizon
            if validation_due([*result.history, row], epoch, settings):
                n0 = nfe()
                try:
                    score = validate()
                except (SolverFailure, AssertionError) as exc:
                    score, validation_failure = math.inf, str(exc)
                    validation_failures += 1
                row.update(_scored(settings, score))
                row["nfe_validation"] = nfe() - n0
                unvalidated = None
                if score < result.best_score:
                    result.best_score, result.best_epoch = score, epoch
                    best_state = _snapshot(objective)
                    since_best = 0
                else:
                    since_best += _epochs_since_check(result.history) + 1  # + this epoch
            row["seconds"] = time.perf_counter() - start
            result.history.append(row)
            bar.set_postfix(loss=f"{row['loss']:.3g}", val=f"{result.best_score:.3g}", nfe=nfe())
            stop = settings.patience is not None and since_best >= settings.patience
            if stop:
                result.stop_reason = "early_stopping"
            if checkpoint is not None:  # after every epoch: a kill loses at most the one running
                checkpoint.save(
                    settings.max_epochs if stop else epoch + 1,
                    objective,
                    best_state,
                    optimizer,
                    scheduler,
                    generator,
                    result,
                    since_best,
                    failures_in_row,
                )
            if stop:
                break
    except KeyboardInterrupt:
        result.stop_reason = "interrupted"
        if unvalidated is not None:  # e.g. Ctrl-C after a few epochs, before the first validation
            lr = optimizer.param_groups[0]["lr"]
            best_state = _validate_on_interrupt(
                objective, validate, result, best_state, unvalidated, start, nfe, lr, settings
            )
        warnings.warn(
            f"fit interrupted at epoch {epoch}; keeping the best parameters "
            f"(epoch {result.best_epoch}). Call fit again with warm_start=True to continue.",
            FitWarning,
            stacklevel=3,
        )
    finally:
        bar.close()
        result.last_state = _snapshot(objective)
        objective.load_state_dict(best_state)
    if not math.isfinite(result.best_score) and result.stop_reason != "interrupted":
        raise _fit_error(
            result,
            (
                "no parameters could be validated: the free-run solve of the whole trajectories failed at every "
                f"evaluation{f' (last: {validation_failure})' if validation_failure else ''}. {ADVICE}"
            ),
        )
    if validation_failures and result.stop_reason != "interrupted":
        warnings.warn(
            f"the free-run validation solve failed at {validation_failures} evaluation(s) "
            f"(last: {validation_failure}); "
            f"those parameters were not kept, the best validated ones (epoch {result.best_epoch}) were. {ADVICE}",
            FitWarning,
            stacklevel=3,
        )
    if settings.lbfgs_steps and result.stop_reason not in ("interrupted",):
        _polish(objective, params, n_items, validate, settings, result, start, nfe)
    return result


def _validate_on_interrupt(
    objective: torch.nn.Module,
    validate: Callable[[], float],
    result: TrainResult,
    best_state: dict[str, torch.Tensor],
    epoch: int,
    start: float,
    nfe: Callable[[], int],
    lr: float,
    settings: TrainSettings,
) -> dict[str, torch.Tensor]:
    """Validate the parameters a Ctrl-C stopped at; return the best state (theirs if they beat the best).

    ``epoch`` is the last epoch that trained them. The score goes into that epoch's history
    row when it is complete, else (Ctrl-C in the middle of an epoch of minibatches) into a
    row of stage ``"interrupted"``. A second Ctrl-C during this validation keeps the best
    parameters validated before.
    """
    n0 = nfe()
    try:
        score = validate()
    except (SolverFailure, AssertionError):
        score = math.inf
    except KeyboardInterrupt:
        return best_state
    last = result.history[-1]
    if last.get("epoch") == epoch and last.get("stage") == "adam" and "nfe_validation" not in last:
        last.update(_scored(settings, score), nfe_validation=nfe() - n0)
    else:
        result.history.append(
            {
                "epoch": epoch,
                "stage": "interrupted",
                "loss": math.nan,
                **_scored(settings, score),
                "nfe_forward": 0,
                "nfe_backward": 0,
                "lr": lr,
                "seconds": time.perf_counter() - start,
                "nfe_validation": nfe() - n0,
            }
        )
    if score < result.best_score:
        result.best_score, result.best_epoch = score, epoch
        return _snapshot(objective)
    return best_state


def _flat(params: list[torch.nn.Parameter]) -> torch.Tensor:
    """A copy of the parameters' values as one vector (``torch.cat`` always copies)."""
    return torch.cat([p.detach().reshape(-1) for p in params])


def _polish(
    objective: torch.nn.Module,
    params: list[torch.nn.Parameter],
    n_items: int,
    validate: Callable[[], float],
    settings: TrainSettings,
    result: TrainResult,
    start: float,
    nfe: Callable[[], int],
) -> None:
    """Full-batch L-BFGS from the best Adam point, validated every few iterations.

    Adam finds the basin; quasi-Newton steps then converge in far fewer solves on these
    small, deterministic full-batch problems (measured in benchmarks/). The best
    validated parameters are kept; a failure or Ctrl-C keeps the best seen so far. It
    stops after two chunks in a row that gain less than :data:`POLISH_MIN_GAIN`, or after
    a chunk (not the first) that cannot move the parameters.
    """
    best_state = _snapshot(objective)
    optimizer = torch.optim.LBFGS(params, lr=1.0, max_iter=POLISH_CHUNK, history_size=20, line_search_fn="strong_wolfe")
    pieces = [torch.arange(n_items)]
    if settings.polish_pieces is not None:
        pieces = list(pieces[0].split(settings.polish_pieces))
    counts = {"forward": 0, "backward": 0}

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        total = None
        for batch in pieces:  # the mean over pieces, one piece in memory at a time
            n0 = nfe()
            loss, _ = objective(batch)
            n1 = nfe()
            if not torch.isfinite(loss):
                raise SolverFailure("the loss is NaN or infinite")
            if len(pieces) > 1:
                loss = loss / len(pieces)
            loss.backward()
            counts["forward"] += n1 - n0
            counts["backward"] += nfe() - n1
            total = loss.detach() if total is None else total + loss.detach()
        if total is None:
            raise SolverFailure("the batch has no segments to train on")
        return total

    since_best = 0
    # a stage of a horizon schedule numbers its polish after its own Adam epochs (the next stage's follow)
    epoch = len(result.history) if settings.horizon is None else settings.max_epochs
    bar = tqdm(
        range(0, settings.lbfgs_steps, POLISH_CHUNK),
        desc=f"{settings.description} L-BFGS",
        disable=not settings.verbose,
        leave=False,
        dynamic_ncols=True,
    )
    try:
        for chunk, _ in enumerate(bar):
            counts.update(forward=0, backward=0)
            before = _flat(params)
            loss = optimizer.step(closure)
            # A chunk after the first that leaves every parameter where it was (the line search found no
            # lower point) would be repeated exactly by the next: the same gradient, the same curvature
            # memory, the same search. On the Brusselator's seed 1 such a repeat cost 4,598 evaluations.
            stalled = chunk > 0 and torch.equal(before, _flat(params))
            score = validate()
            result.history.append(
                {
                    "epoch": epoch,
                    "loss": float(loss.detach()),
                    **_scored(settings, score),
                    "nfe_forward": counts["forward"],
                    "nfe_backward": counts["backward"],
                    "lr": math.nan,
                    "seconds": time.perf_counter() - start,
                    "stage": "lbfgs",
                    **({} if settings.horizon is None else {"horizon": settings.horizon}),
                }
            )
            epoch += 1
            bar.set_postfix(loss=f"{float(loss.detach()):.3g}", val=f"{min(score, result.best_score):.3g}", nfe=nfe())
            best = result.best_score
            worthwhile = score < best - (POLISH_MIN_GAIN * abs(best) if math.isfinite(best) else 0.0)
            if score < best:
                result.best_score, result.best_epoch = score, epoch - 1
                best_state = _snapshot(objective)
            since_best = 0 if worthwhile else since_best + 1
            if since_best >= 2 or stalled:
                break
    except (SolverFailure, AssertionError) as exc:
        warnings.warn(f"L-BFGS polish stopped: {exc}; keeping the best parameters.", FitWarning, stacklevel=3)
    except KeyboardInterrupt:
        result.stop_reason = "interrupted"
        warnings.warn(
            "fit interrupted during the L-BFGS polish; keeping the best parameters.", FitWarning, stacklevel=3
        )
    finally:
        bar.close()
        objective.load_state_dict(best_state)
