"""The poor-free-run check of solver-trained estimators: is the kept model any better than the data's mean?
Where the field has a second start (NeuralODE's default field), the same check chooses where the
training starts and, if the fit still misses its data (above :data:`sysid.training.REFIT_FREE_RUN`),
one refit from the start not taken.

After a fit, the kept parameters are simulated from their fitted initial states over the
training trajectories (the free run that picks the parameters during training,
:meth:`sysid.training.MultipleShooting.free_run_error`); an RMSE above
:data:`sysid.training.POOR_FREE_RUN` standard deviations of the data gives a
:class:`~sysid.FitWarning`, with advice for the estimator at hand.

Where the training is the last word on the parameters (NeuralODE with additive errors)
the score is the training's own free run of the parameters it kept (the ``val_loss`` of
their row: the history's lowest, unless a first stage judged by its loss kept others),
with no extra work. Where something
changes them after the last free-run check (GreyBoxODE's and HybridODE's least-squares
refinement, SparseODE's thresholding, Gauss-Newton polish and choice among candidates),
or where ``val_loss`` is on another scale (``Training(errors="log")``: an RMSE of log
ratios), the kept parameters are scored once more: one solve without gradients, which
draws no random numbers.
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from sysid.errors import FitError, FitWarning
from sysid.integration import SolverFailure, torch_threads
from sysid.training import POOR_FREE_RUN, REFIT_FREE_RUN, MultipleShooting, make_segments
from sysid.trajectories import Trajectories

if TYPE_CHECKING:
    from sysid.estimators._ode_start import FieldStart
    from sysid.estimators._refit_alongside import RefitAlongside, RefitOutcome
    from sysid.fields import Scaling
    from sysid.integration import BatchedField, InputSignal, SolverConfig
    from sysid.training import Training


class FreeRunCheckMixin:
    """The :class:`~sysid.FitWarning` of a fit whose kept parameters do not reproduce their own data.

    Mixed into :class:`~sysid.estimators._ode_base.SolverTrainedODE`; its ``_fit`` calls
    :meth:`_choose_start` (the field's second start when its first does not reproduce the data),
    :meth:`_refit_if_poor` (one refit from the start not taken, if there is one) and then
    :meth:`_warn_if_free_run_is_poor` last, after anything that changes the parameters.
    """

    #: Whether the parameters may change after the training's last free-run check (a refinement,
    #: a pruning, a choice among candidates): then the kept ones are scored again after the fit.
    _changed_after_training: ClassVar[bool] = False
    #: What to try when the warning fires, for this estimator (the end of the message).
    _poor_free_run_advice: ClassVar[str] = (
        "For a linear or near-linear system try SparseODE(degree=1); see docs/neural_ode.md, 'When things go wrong'."
    )

    if TYPE_CHECKING:  # what SolverTrainedODE provides (declared for mypy only)
        history_: pd.DataFrame
        training_: Training
        rhs_: BatchedField
        scaling_: Scaling
        sensor_: Any
        solver_: SolverConfig
        solver_part_: Any
        x0_: np.ndarray
        n_dims_: int
        n_states_in_: int
        torch_dtype_: torch.dtype

        field_part_: Any
        verbose: bool
        warm_start: bool
        checkpoint_path: Any
        n_function_evals_: int

        def _fit_resolved(self, data: Trajectories, start: FieldStart | None = None) -> None: ...
        def _start(self, data: Trajectories) -> FieldStart: ...
        def _start_error(self, data: Trajectories, start: FieldStart) -> float: ...
        def _validation_split(self, data: Trajectories) -> tuple[list[int], list[float] | None]: ...
        def _input_signal(self, data: Trajectories) -> InputSignal | None: ...

    def _choose_start(self, data: Trajectories) -> tuple[FieldStart | None, Any]:
        """Where to train from, and the field part to refit from if that fit is poor (None: no refit).

        A field part with a second start (:meth:`sysid.fields.FieldSpec.second_start`:
        ``LinearMLP(linear_start="zero")``, NeuralODE's default, has the least-squares
        linear part) is started as usual and its free run over the training data scored
        (the training's first ``val_loss``). Only when that start does not reproduce its
        data (above :data:`sysid.training.POOR_FREE_RUN`) is the second start scored
        too, and the training begins from it if it does (at or below that error): a
        lightly damped oscillation that the zero start cannot follow is then not trained
        in vain first. Every other fit is untouched, to the last bit. The start not
        taken is the one :meth:`_refit_if_poor` refits from. Returns ``(None, None)``
        for a field without a second start, or where a fit may not choose
        (:meth:`_may_restart`).
        """
        second = self.field_part_.second_start()
        if second is None or not self._may_restart():
            return None, None
        first = self.field_part_
        start = self._start(data)
        if not self._start_error(data, start) > POOR_FREE_RUN:
            return start, second
        self.field_part_ = second
        try:
            other = self._start(data)
            if self._start_error(data, other) <= POOR_FREE_RUN:
                return other, first
        except (FitError, SolverFailure):
            pass  # a second start that cannot be made is not taken; the refit may still try it
        self.field_part_ = first
        return start, second

    def _may_restart(self) -> bool:
        """Whether a fit may choose its start and refit: not with ``warm_start`` (the caller continues a
        fit of their own), ``checkpoint_path`` (a resumed fit must end where an uninterrupted one does)
        or without the collocation warm start that sets the start."""
        return not self.warm_start and self.checkpoint_path is None and bool(self.training_.collocation_steps)

    def _refit_if_poor(self, data: Trajectories, other: Any, alongside: RefitAlongside | None = None) -> None:
        """Fit once more from the field part ``other`` when the kept model does not reproduce its data.

        Only when the kept parameters' free-run error exceeds :data:`sysid.training.REFIT_FREE_RUN`
        (a threshold below :data:`~sysid.training.POOR_FREE_RUN`, where the warning starts: a fit
        may be refitted without being poor enough to warn about), and not after a Ctrl-C (the
        fit stops with what it has). The better of the two fits by that error is kept;
        ``history_`` then holds both (column ``attempt``: 0 the first, 1 the refit) and
        ``n_function_evals_`` counts both. A refit that is discarded may still have issued the
        training's own FitWarnings (a rolled-back epoch, a stopped polish). ``alongside``: the
        same refit already running in a worker (:mod:`sysid.estimators._refit_alongside`),
        waited for here instead of refitting in this process.
        """
        first_score = self._kept_free_run_error(data)
        if getattr(self, "stop_reason_", None) == "interrupted" or not first_score > REFIT_FREE_RUN:
            return
        first = copy.deepcopy(self.__dict__)
        if alongside is not None and self.verbose:
            tqdm.write(f"{type(self).__name__}: the fit misses its data; waiting for its refit (in a second process).")
        try:
            outcome = alongside.result() if alongside is not None else None
            # no worker, or it died: the refit runs here
            second_score = self._refit_from(data, other) if outcome is None else self._use_refit(outcome, data)
        except FitError:
            second_score = math.nan  # the refit failed: the first fit stays, as if it had not been tried
        except KeyboardInterrupt:
            self.__dict__.clear()
            self.__dict__.update(first)
            warnings.warn("fit interrupted during its refit; keeping the first fit.", FitWarning, stacklevel=4)
            return
        refit_history = getattr(self, "history_", None)
        evals = int(first.get("n_function_evals_", 0)) + int(getattr(self, "n_function_evals_", 0))
        if not second_score < first_score:
            self.__dict__.clear()
            self.__dict__.update(first)
        if refit_history is not None:
            self.history_ = pd.concat(
                [first["history_"].assign(attempt=0), refit_history.assign(attempt=1)], ignore_index=True
            )
        self.n_function_evals_ = evals

    def _refit_from(self, data: Trajectories, other: Any) -> float:
        """The refit itself: train from field part ``other``; the kept free-run error (FitError if it fails).

        The same code in this process and in a worker (:func:`~sysid.estimators._refit_alongside.refit_in_worker`).
        """
        self.field_part_ = other
        self._drop_training_record()
        self._fit_resolved(data)
        return self._kept_free_run_error(data)

    def _drop_training_record(self) -> None:
        """Forget the first fit's history and evaluation count: a refit has its own, or none if it fails early."""
        for name in ("history_", "n_function_evals_"):
            self.__dict__.pop(name, None)

    def _use_refit(self, outcome: RefitOutcome, data: Trajectories) -> float:
        """Take the fitted attributes of a refit run in a worker, as if it had run here; its score.

        The refit's warnings are issued again here first; then the estimator's fitted
        attributes become the worker's (its parameters stay this process's objects; the
        refit rebuilds every attribute a fit sets) and the kept free run is read as after a
        refit run here; FitError (after the attributes, as here) if the refit failed.
        """
        for category, message in outcome.caught:
            warnings.warn(message, category, stacklevel=5)
        self._drop_training_record()
        self.__dict__.update(outcome.attributes)  # a failed refit's too: its history, as a refit here leaves it
        if outcome.failed:
            raise FitError("the refit failed in its worker")
        return self._kept_free_run_error(data)

    def _warn_if_free_run_is_poor(self, data: Trajectories) -> None:
        """A FitWarning when the kept parameters' free-run error exceeds :data:`sysid.training.POOR_FREE_RUN`.

        The free-run check picks the parameters; if even the kept ones are that far off,
        the model reproduces its data over short windows only, and nothing else says so.
        ``data``: the training data as fitted (the whole trajectories, tails included).
        """
        best = self._kept_free_run_error(data)
        if not best > POOR_FREE_RUN:
            return
        where = (
            "on the held-out tails of its trajectories (validation_fraction)"
            if self.training_.validation_fraction
            else "over its training trajectories"
        )
        warnings.warn(
            f"{type(self).__name__}: simulated from its learned initial states, the fitted model's RMSE {where} "
            f"is {best:.2g} standard deviations of the data (1 is no better than their mean; this warning starts "
            f"at {POOR_FREE_RUN}). It may predict a few samples ahead, but forecasts and new experiments will be "
            f"at least that far off, unless the data are that noisy. {self._poor_free_run_advice}",
            FitWarning,
            stacklevel=4,
        )

    def _kept_free_run_error(self, data: Trajectories) -> float:
        """The kept parameters' free-run RMSE (standard deviations of the data); NaN if it cannot be simulated.

        The training's own score of the kept parameters when it picked them by the free run
        on this scale (additive errors): the ``val_loss`` the training kept, which is the
        history's lowest unless a first stage judged by its loss kept another
        (:mod:`sysid.training._first_stage`); else one more free run of the kept parameters.
        """
        history = getattr(self, "history_", None)
        if (
            not self._changed_after_training
            and self.training_.errors == "additive"
            and history is not None
            and "val_loss" in history
        ):
            kept = getattr(self, "_kept_val_loss", None)
            if kept is None:  # no score recorded (a model file does not store it): the lowest, as kept
                scores = history["val_loss"].to_numpy(dtype=float)
                return float(np.min(scores[np.isfinite(scores)])) if np.isfinite(scores).any() else math.nan
            if not math.isnan(kept):  # NaN: interrupted in a polish judged by the loss, scored below
                return kept if math.isfinite(kept) else math.nan
        try:
            with torch_threads(1):
                return self._free_run_error(data)
        except SolverFailure:
            return math.nan  # the fit's own warnings and errors speak for a model that cannot be simulated

    def _free_run_error(self, data: Trajectories) -> float:
        """RMSE (scaled units: additive errors, whatever ``errors`` the fit used) of the kept parameters.

        The shooting objective over whole trajectories (one segment each), started at the
        fitted initial states ``x0_``, scored by
        :meth:`~sysid.training.MultipleShooting.free_run_error` as the training's
        validation is (on the held-out tails with ``validation_fraction``).
        """
        times = [tr.t for tr in data]
        scaled = [self.scaling_.scale(tr.y) for tr in data]
        _, tail_from = self._validation_split(data)
        segments = make_segments(times, scaled, max(max(len(t) for t in times) - 1, 1))
        shooting = MultipleShooting(
            self.rhs_,
            segments,
            times,
            scaled,
            self.n_dims_,
            self._input_signal(data),
            self.solver_,
            self.solver_part_.gradient,
            0.0,
            observe=self.sensor_,
        )
        n = self.n_states_in_
        x0 = np.asarray(self.x0_, dtype=float)
        z0 = np.concatenate([self.scaling_.scale(x0[:, :n]), x0[:, n:]], axis=1)
        nfe = self.rhs_.nfe  # the fit's count of evaluations stays the fit's
        try:
            with torch.no_grad():
                shooting.starts[shooting.first_segment] = torch.as_tensor(z0, dtype=shooting.starts.dtype)
            return shooting.free_run_error(tail_from)
        finally:
            self.rhs_.nfe = nfe
