"""SparseODE: a sparse library of terms, trained through the ODE solver, thresholded."""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import torch

from sysid.equations import EquationsMixin
from sysid.errors import ModelFileError
from sysid.estimators._ode_base import SolverTrainedODE
from sysid.fields import Polynomial, PolynomialField
from sysid.integration import torch_threads
from sysid.training import Training, smooth_trajectory
from sysid.trajectories import Trajectories

_RIDGE = 1e-8  # relative ridge of the least-squares initialisation (conditioning only)


class SparseODE(EquationsMixin, SolverTrainedODE):
    """Learn sparse, readable equations dx/dt = Theta(x, u) Xi through the ODE solver.

    The vector field is a linear combination of library terms (polynomials up to
    ``degree`` in the states and inputs, optionally ``sin``/``cos`` of the states and
    the user's own ``functions``). Unlike SINDy, the coefficients are not regressed on
    numerical derivatives: they are trained the way :class:`~sysid.NeuralODE` is, by
    multiple shooting through an adaptive solver against the measured states, which
    copes with irregular sampling and noise. Sparsity comes from sequential
    thresholding: train, zero every coefficient whose magnitude (physical units) is
    below ``threshold``, retrain the rest from where they were, ``n_threshold_rounds``
    times (stopping early when nothing more is pruned); and/or from an L1 penalty.

    The coefficients start from a ridge least-squares fit of the library to the
    derivatives of smoothing splines through the data (no solver involved).

    It is the solver-trained estimator (:class:`~sysid.estimators._ode_base.SolverTrainedODE`,
    whose parameters it takes) with a :class:`sysid.fields.Polynomial` field and a
    ``sysid.Training(max_epochs=100, lbfgs_steps=0)`` (``max_epochs`` applies to every
    thresholding round; ``collocation_steps=0`` switches the least-squares
    initialisation off, the coefficients then start at zero). The parts' parameters can
    be given flat: ``SparseODE(degree=3, include_trig=True, threshold=0.1)``.

    Attributes
    ----------
    coefficients_ : pandas.DataFrame
        Terms x states, physical units, zeros where pruned.
    term_names_ : list of str
    n_rounds_ : int
        Trainings done (1 + thresholding rounds that pruned something).
    history_ : pandas.DataFrame
        Training history of every round (column ``round``).
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
    ['d x0/dt = -1.50 x0']
    """

    default_parts = {**SolverTrainedODE.default_parts, "field": Polynomial,
                     "training": partial(Training, max_epochs=100, lbfgs_steps=0)}

    # -- fitting -------------------------------------------------------------------------
    def _fit(self, data: Trajectories) -> None:
        self._resolve()
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

    def _collocation_warm_start(self, data: Trajectories, train_rows: list[int]) -> list[np.ndarray]:
        """Ridge least squares of the library onto smoothing-spline derivatives (closed form)."""
        lam = self._smoothing_strengths(data, train_rows)
        smoothed = [smooth_trajectory(tr.t[:n], tr.y[:n], lam) for tr, n in zip(data, train_rows)]
        field: PolynomialField = self.rhs_.field
        dtype = self.torch_dtype_
        n_obs = data.n_states
        x = np.concatenate([s.values for s in smoothed])
        dx = np.concatenate([s.derivatives for s in smoothed])
        t = np.concatenate([tr.t[:n] for tr, n in zip(data, train_rows)])
        rows = np.isfinite(x).all(axis=1)
        if rows.sum() >= 2:
            x_full = np.zeros((int(rows.sum()), self.n_dims_))
            x_full[:, :n_obs] = x[rows]
            u = None
            if data.n_inputs:
                u = torch.as_tensor(np.concatenate([tr.u[:n] for tr, n in zip(data, train_rows)])[rows], dtype=dtype)
            with torch.no_grad():
                theta = (field.library(torch.as_tensor(t[rows], dtype=dtype), torch.as_tensor(x_full, dtype=dtype), u)
                         / field.feature_scale).numpy()
            out_scale = field.out_scale.numpy()
            mask = field.mask.numpy()
            scaled = np.zeros(mask.shape)
            for j in range(n_obs):
                seen = np.isfinite(dx[rows, j])
                active = mask[:, j] > 0
                if seen.sum() < 2 or not active.any():
                    continue
                a = theta[seen][:, active]
                b = dx[rows, j][seen] / out_scale[j]
                gram = a.T @ a
                ridge = _RIDGE * np.trace(gram) / max(gram.shape[0], 1)
                scaled[active, j] = np.linalg.solve(gram + ridge * np.eye(gram.shape[0]), a.T @ b)
            if np.all(np.isfinite(theta)) and np.all(np.isfinite(scaled)):
                field.set_gram(torch.as_tensor(theta.T @ theta / theta.shape[0], dtype=dtype))
                field.set_scaled_coefficients(torch.as_tensor(scaled * mask, dtype=dtype))
        initial = []
        for tr, sm in zip(data, smoothed):
            values = np.full(tr.y.shape, np.nan)
            values[: sm.values.shape[0]] = self.scaling_.scale(sm.values)
            initial.append(values)
        return initial

    def _after_fit(self, data: Trajectories | None) -> None:
        field: PolynomialField = self.rhs_.field
        self.term_names_ = list(field.term_names)
        xi = field.coefficients().detach().cpu().numpy()[:, : self.n_states_in_]
        self.coefficients_ = pd.DataFrame(xi, index=pd.Index(self.term_names_, name="term"),
                                          columns=pd.Index(list(self.state_names_), name="state"))

    # -- model files ---------------------------------------------------------------------
    def _fitted_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        state, tensors = super()._fitted_state()
        state["n_rounds_"] = self.n_rounds_
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
        if _more_terms_than(n_variables, int(field.degree), rows):
            raise ModelFileError(f"degree={field.degree} with {n_variables} state and input variables makes more "
                                 f"polynomial terms than the {rows} rows of the stored coefficients.")
        super()._set_fitted_state(state, tensors)
        self.n_rounds_ = int(state.get("n_rounds_", 1))
        self._after_fit(None)


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
