"""SparseODE: a sparse library of terms, trained through the ODE solver, its equations chosen or thresholded."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from sklearn.utils.validation import check_is_fitted

from sysid.equations import EquationsMixin
from sysid.errors import ModelFileError
from sysid.estimators._ode_base import SolverTrainedODE
from sysid.estimators._sparse_selection import SelectionMixin, rescue_oversmoothing
from sysid.fields import Polynomial
from sysid.integration import torch_threads
from sysid.selection import coefficient_table
from sysid.training import Smoothed, Training, embed_derivatives, smooth_trajectory, smoothing_strengths
from sysid.trajectories import Trajectories


class SparseODE(EquationsMixin, SelectionMixin, SolverTrainedODE):
    """Learn sparse, readable equations dx/dt = Theta(x, u) Xi through the ODE solver.

    The vector field is a linear combination of library terms (polynomials up to
    ``degree`` in the states and inputs, by default 3 for up to three state and input
    variables and 2 above, ``degree="auto"``; optionally ``sin``/``cos`` of the states and
    the user's own ``functions``). Unlike SINDy, the coefficients are not regressed on
    numerical derivatives: they are trained the way :class:`~sysid.NeuralODE` is, by
    multiple shooting through an adaptive solver against the measured states, which
    copes with irregular sampling and noise. They start from a ridge least-squares fit
    of the library to the derivatives of smoothing splines through the data.

    Which terms each equation keeps is chosen (``threshold="auto"``, the default) along
    a path over sparsity levels: candidate supports come from pysindy's FROLS and SSR
    paths on the regression of the library onto smoothing-spline derivatives, never
    holding two terms that are (nearly) collinear on the data (a :class:`~sysid.FitWarning`
    names them); the candidates are screened by their simulation error over short
    segments (no training); the best one and the best sparser ones (three points of
    the path, and further down it while the sparsest is the best, at most six) are
    trained through the solver without any penalty and polished by Gauss-Newton on the
    whole trajectories, and the one with the lowest information criterion of its
    simulation errors (the larger of the BIC and AICc penalties) is kept (with
    ``validation_fraction`` > 0: the lowest free-run error on the held-out tails). A
    candidate whose training fails is rejected; the fit fails only if every candidate
    does. A term nearly constant on the data (``cos(theta)`` on small swings) held by the
    chosen equations is also tried as the constant, and dropped; ties in the criterion
    go to the simpler term. The kept coefficients get Gauss-Newton standard errors (``equations()`` prints
    them) and bootstrap inclusion probabilities (:meth:`coefficient_table`). A number as
    ``threshold`` instead prunes every coefficient below it (physical units) and
    retrains, ``n_threshold_rounds`` times. See :mod:`sysid.selection`.

    It is the solver-trained estimator (:class:`~sysid.estimators._ode_base.SolverTrainedODE`,
    whose parameters it takes) with a :class:`sysid.fields.Polynomial` field and a
    ``sysid.Training(max_epochs=100, lbfgs_steps=0)``: ``max_epochs`` applies to every
    thresholding round and to the best screened candidate (the sparser candidates train
    half as long before their Gauss-Newton polish); ``collocation_steps=0`` switches the
    least-squares initialisation off (the coefficients then start at zero; with
    ``threshold="auto"`` there are then no candidates: the whole library is trained, with
    a FitWarning). The parts' parameters can be given flat:
    ``SparseODE(degree=3, include_trig=True, threshold=0.1)``.

    Attributes
    ----------
    coefficients_ : pandas.DataFrame
        Terms x states, physical units, zeros where not kept.
    term_names_ : list of str
    n_rounds_ : int
        Trainings done (candidates trained, or 1 + thresholding rounds that pruned something).
    history_ : pandas.DataFrame
        Training history of every training (column ``round``: the candidate or round).
    coefficients_stderr_ : pandas.DataFrame
        ``threshold="auto"``: standard error of every kept coefficient (terms x states,
        NaN where a term is not kept), from the Jacobian of the whole-trajectory
        residuals (as :class:`~sysid.GreyBoxODE`'s), inflated for autocorrelated residuals.
    inclusion_probabilities_ : pandas.DataFrame
        ``threshold="auto"``: how often each term is chosen when the screening's segments
        are resampled with replacement (200 resamples; terms x states).
    selection_ : pandas.DataFrame
        ``threshold="auto"``: the candidates trained (their terms per state, number of
        terms, screening and final criterion, whether chosen, why a training failed);
        ``origin`` is ``"path"`` for them and names the swap for the offset variants
        (a term nearly constant on the data replaced by the constant, or dropped:
        polished by Gauss-Newton from the best candidate, see :mod:`sysid.selection`).
    collinear_terms_ : list of (str, str, float)
        ``threshold="auto"``: library terms collinear on the data, with their cosine.
    x0_, time_scale_, time_offset_, n_function_evals_
        As for :class:`~sysid.NeuralODE`.

    See Also
    --------
    distill : equations from any fitted model's vector field.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.linspace(0, 2, 25)
    >>> y = 2.0 * np.exp(-1.5 * t)[:, None]
    >>> model = SparseODE(degree=2, max_epochs=40, gradient="backprop", verbose=False).fit(y, t=t)
    >>> model.equations()
    ['d x0/dt = -(1.500 ± 0.002) x0']
    """

    default_parts: ClassVar[dict[str, Callable[[], Any]]] = {
        **SolverTrainedODE.default_parts,
        "field": Polynomial,
        "training": partial(Training, max_epochs=100, lbfgs_steps=0),
    }

    def _auto(self) -> bool:
        """Whether the terms are chosen by the selection (``threshold="auto"``)."""
        return bool(getattr(self._part("field"), "auto", False))

    # -- fitting -------------------------------------------------------------------------
    _changed_after_training = True  # pruned after the last round; polished and chosen among candidates
    _poor_free_run_advice = (
        "The library may lack terms the system needs: try a higher degree, include_trig=True or terms of your own "
        "(functions=), or a NeuralODE; see docs/interpretable.md, 'Equations you can use'."
    )

    def _fit(self, data: Trajectories) -> None:
        self._resolve()
        if self._auto():
            self._fit_selected(data)
            self._warn_if_free_run_is_poor(data)
            return
        part = self.field_part_
        user_warm_start = self.warm_start
        histories, nfe = [], 0
        try:
            with torch_threads(1):
                self._fit_resolved(data)
                histories.append(self.history_.assign(round=0))
                nfe += self.n_function_evals_
                self.warm_start = True  # later rounds continue from the previous one
                for round_ in range(1, part.rounds() + 1):
                    if not part.next_round(self.rhs_.field):
                        break
                    self._checkpoint_stage = round_  # a checkpoint resumes its own round only
                    self._fit_resolved(data)
                    histories.append(self.history_.assign(round=round_))
                    nfe += self.n_function_evals_
        finally:
            self.warm_start = user_warm_start
            self.__dict__.pop("_checkpoint_stage", None)
        if part.rounds():  # rounds exhausted: prune what the last one left small
            part.next_round(self.rhs_.field)
        self.history_ = pd.concat(histories, ignore_index=True)
        self.n_function_evals_ = int(nfe)
        self.n_rounds_ = len(histories)
        self._after_fit(data)
        self._clear_selection_results()
        self._warn_if_free_run_is_poor(data)  # the kept (last, pruned) coefficients

    def _smoothing_strengths(self, data: Trajectories, train_rows: list[int]) -> np.ndarray:  # type: ignore[override]
        """Spline strengths per state; with ``errors="log"`` chosen on the log of the data."""
        if self.training_.errors != "log":
            return super()._smoothing_strengths(data, train_rows)
        logs = [np.log(tr.y[:n]) for tr, n in zip(data, train_rows)]
        return smoothing_strengths([tr.t[:n] for tr, n in zip(data, train_rows)], logs)

    def _smoothed_states(self, t: np.ndarray, y: np.ndarray, lam: np.ndarray | None = None) -> Smoothed:
        """Smoothing-spline states; with ``threshold="auto"``, over-smoothed states are smoothed again.

        With ``errors="log"`` the spline smooths ``log(y)`` (multiplicative noise is even
        there): the states are ``exp`` of it, their derivatives by the chain rule.
        """
        log = self.training_.errors == "log"
        z = np.log(y) if log else y
        smoothed = smooth_trajectory(t, z, lam)
        if self._auto():
            smoothed = rescue_oversmoothing(t, z, smoothed)
        if log:
            values = np.exp(smoothed.values)
            d1, d2 = smoothed.derivatives, smoothed.second_derivatives
            smoothed = Smoothed(values, values * d1, values * (d2 + d1**2))
        if not self.n_augment:
            return smoothed
        return embed_derivatives(smoothed, self.n_augment, self.scaling_.spread, self.scaling_.time_unit)

    def _collocation_warm_start(self, data: Trajectories, train_rows: list[int]) -> list[np.ndarray]:
        """The field's least-squares warm start; with ``threshold="auto"`` the candidates are screened on it.

        The field leaves with the best screened candidate loaded, which the training then starts from.
        """
        initial = super()._collocation_warm_start(data, train_rows)
        if self._auto():
            self._screen(data, train_rows, initial)
        return initial

    # -- results -------------------------------------------------------------------------
    def coefficient_table(self, level: float = 0.95) -> pd.DataFrame:
        """Every kept coefficient with its standard error, interval and inclusion probability.

        Parameters
        ----------
        level : float in (0, 1), default 0.95
            Confidence level of the intervals (Student t with the residual degrees of freedom).

        Returns
        -------
        pandas.DataFrame
            Indexed by (state, term); columns ``estimate``, ``stderr``, ``lower``,
            ``upper`` and ``inclusion_probability`` (NaN where not measured: after a fit
            with a numeric ``threshold``, and for terms not selected).
        """
        check_is_fitted(self)
        return coefficient_table(
            self.coefficients_,
            getattr(self, "coefficients_stderr_", None),
            getattr(self, "inclusion_probabilities_", None),
            max(int(getattr(self, "dof_", 0)), 1),
            level,
        )

    # -- model files ---------------------------------------------------------------------
    _TABLES = ("inclusion_probabilities_", "coefficients_stderr_")

    def _fitted_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        state, tensors = super()._fitted_state()
        state["n_rounds_"] = self.n_rounds_
        if hasattr(self, "selection_"):
            for name in self._TABLES:
                state[name] = getattr(self, name).to_numpy(dtype=float).tolist()
            selection_ = self.selection_.reset_index()
            state["selection_"] = {
                k: [v if not isinstance(v, float) or math.isfinite(v) else repr(v) for v in col]
                for k, col in selection_.to_dict(orient="list").items()
            }
            state["collinear_terms_"] = [list(p) for p in self.collinear_terms_]
            state["selection_criterion_"] = self.selection_criterion_
            state["n_candidates_screened_"] = self.n_candidates_screened_
            state["dof_"] = self.dof_
        return state, tensors

    def _set_fitted_state(self, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        placeholders = [k for k, g in (self._part("field").functions or {}).items() if not callable(g)]
        if placeholders:
            raise ModelFileError(
                f"this SparseODE was saved with user term functions {placeholders}; files hold no code. "
                "Rebuild it with SparseODE(functions=...) and refit (sysid.load cannot restore nested functions yet)."
            )
        field = self._part("field")
        field.check()  # before the library is enumerated: its size must fit the stored coefficients
        n_variables, rows = int(state["n_dims_"]) + int(state["n_controls_in_"]), len(tensors["rhs.field.weight"])
        if _more_terms_than(n_variables, field.degree_for(n_variables), rows):
            raise ModelFileError(
                f"degree={field.degree!r} with {n_variables} state and input variables makes more "
                f"polynomial terms than the {rows} rows of the stored coefficients."
            )
        super()._set_fitted_state(state, tensors)
        self.n_rounds_ = int(state.get("n_rounds_", 1))
        self._field_results()  # SparseODE's _after_fit is the base one, which reads no data (none when loading)
        self._clear_selection_results()
        if "selection_" in state:
            for name in self._TABLES:
                self.__dict__[name] = pd.DataFrame(
                    np.asarray(state[name], dtype=float),
                    index=self.coefficients_.index,
                    columns=self.coefficients_.columns,
                )
            table = {
                k: [float(v) if isinstance(v, str) and v in ("inf", "-inf", "nan") else v for v in col]
                for k, col in state["selection_"].items()
            }
            self.selection_ = pd.DataFrame(table).set_index("candidate")
            self.collinear_terms_ = [(str(a), str(b), float(c)) for a, b, c in state["collinear_terms_"]]
            self.selection_criterion_ = str(state["selection_criterion_"])
            self.n_candidates_screened_ = int(state["n_candidates_screened_"])
            self.dof_ = int(state["dof_"])


def _more_terms_than(n_variables: int, degree: int, rows: int) -> bool:
    """Whether a polynomial library of ``degree`` in ``n_variables`` has more than ``rows`` terms.

    Its size is C(n + d, d), computed as a running product that stops once it passes
    ``rows``: a model file claiming ``degree=10**6`` is refused at once.
    """
    if n_variables < 0 or degree < 0:
        return True
    low, high = sorted((n_variables, degree))
    terms = 1
    for i in range(1, low + 1):
        terms = terms * (high + i) // i
        if terms > rows:
            return True
    return terms > rows
