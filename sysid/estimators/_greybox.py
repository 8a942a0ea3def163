"""GreyBoxODE: the user's own equations with named, bounded parameters, fitted through the solver."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, ClassVar

from sysid.estimators._ode_base import SolverTrainedODE
from sysid.estimators._parametric import ParametricODE
from sysid.fields import GreyBox, GreyBoxFunction
from sysid.parameters import ParametricResults
from sysid.training import Training


class GreyBoxODE(ParametricResults, ParametricODE):
    """Fit the parameters of your own ODE, dx/dt = f(t, x, p, u), with uncertainties.

    The equations are yours; sysid integrates them with an adaptive torchdiffeq solver.
    The free parameters and each trajectory's initial state are fitted by trust-region
    Gauss-Newton (:func:`scipy.optimize.least_squares`, bounds kept exactly), with the
    residuals and their Jacobian from one batched solve per evaluation, in three
    stages: collocation on smoothing-spline derivatives (no solver), multiple shooting
    (segments with free start states, which avoids the local minima that single
    shooting falls into, e.g. on Lotka-Volterra from 50% off), then single shooting of
    whole trajectories, from that estimate and from ``params`` (the lower cost is
    kept), with each state's residuals weighted by its estimated noise level
    (:mod:`sysid.training._least_squares`). ``optimizer="adam"`` trains by
    gradient descent instead (as :class:`~sysid.NeuralODE` does, bounds kept by smooth
    transforms), then refines by single shooting (at most ``refine_steps`` evaluations).

    After the fit, standard errors and confidence intervals come from the Gauss-Newton
    approximation at the optimum: with r the weighted residuals (simulated minus
    observed over every observed entry, divided by the state's noise level) and J their
    Jacobian with respect to the free parameters (natural units) and the initial
    states, cov = s^2 (J^T J)^-1 with s^2 = |r|^2 / (n - q). Parameters that the data
    cannot separate (J near rank-deficient) are named in a :class:`~sysid.FitWarning`
    and get infinite standard errors. ``confidence_intervals(method="profile",
    data=...)`` gives profile-likelihood intervals where the model is too nonlinear
    for the linearisation. The table is the one every parametric estimator returns
    (:mod:`sysid.parameters`).

    It is the solver-trained estimator (:class:`~sysid.estimators._ode_base.SolverTrainedODE`,
    whose parameters it takes) with a :class:`sysid.fields.GreyBox` field built from
    ``f``, ``params``, ``bounds`` and ``fixed``, and ``sysid.Training(max_epochs=300,
    lbfgs_steps=0, optimizer="least_squares")``: ``max_epochs`` caps the residual
    evaluations of each shooting stage, ``collocation_steps`` those of the collocation.

    Parameters
    ----------
    f : callable ``f(t, x, p, u) -> tensor``, positional
        Your right-hand side (see :class:`sysid.fields.GreyBox`). Model files store only
        its name: pass it again to ``sysid.load(path, f=f)``.
    params : dict of str to float, positional
        Every parameter with its start value (the value of a fixed one).
    **options
        ``bounds=`` (closed: a start on a bound is allowed), ``fixed=`` (the field's),
        any estimator parameter and any parameter of its parts, given flat
        (``max_epochs=300``, ``rtol=1e-6``, ``optimizer="adam"``...).

    Attributes
    ----------
    params_ : dict of str to float
        Fitted values of every parameter (fixed ones included).
    params_stderr_ : dict of str to float
        Standard errors (0 for fixed parameters, inf if not identifiable).
    covariance_ : pandas.DataFrame
        Covariance of the free parameters.
    jacobian_condition_ : float
        Condition number of the column-normalised residual Jacobian.
    unidentifiable_ : list of str
        Parameters (or initial states, ``x0[trajectory].state``) flagged as not identifiable.
    noise_levels_ : dict of str to float
        Each state's estimated noise level (its residuals' weight is the inverse).
    n_residuals_, dof_ : int
        Observed entries used, and n - q.
    residual_variance_ : float
        s^2 (close to 1 when the model fits to the noise level).
    refined_ : bool
        Whether the single-shooting least squares ran.
    refine_evaluations_ : int
        Its residual evaluations.
    x0_, time_scale_, time_offset_, history_, n_function_evals_
        As for :class:`~sysid.NeuralODE`; with least squares ``history_`` has one row per
        stage (loss, evaluations, solves) and ``n_function_evals_`` counts batched evaluations.

    Examples
    --------
    >>> import numpy as np
    >>> def decay(t, x, p, u):
    ...     return -p["k"] * x
    >>> t = np.linspace(0, 2, 20)
    >>> y = (3.0 * np.exp(-0.8 * t))[:, None]
    >>> model = GreyBoxODE(decay, {"k": 0.3}, bounds={"k": (0, None)}, verbose=False).fit(y, t=t)
    >>> round(model.params_["k"], 3)
    0.8
    >>> model.confidence_intervals().columns.tolist()
    ['estimate', 'stderr', 'lower', 'upper', 'status']
    """

    default_parts: ClassVar[dict[str, Callable[[], Any]]] = {
        **SolverTrainedODE.default_parts,
        "field": GreyBox,
        "training": partial(Training, max_epochs=300, lbfgs_steps=0, optimizer="least_squares"),
    }
    _aliases = ("f", "params")
    _poor_free_run_advice = (
        "Check the equations (signs, units, a missing term), the parameters' start values and their bounds (a "
        "parameter on its bound is one the data push further); HybridODE can learn what the equations miss. See "
        "docs/interpretable.md, 'GreyBoxODE'."
    )

    def __init__(
        self, f: GreyBoxFunction | None = None, params: Mapping[str, float] | None = None, /, **options: Any
    ) -> None:
        aliases: dict[str, Any] = {k: v for k, v in zip(self._aliases, (f, params)) if v is not None}
        super().__init__(**options, **aliases)


# Introspection (help(), scikit-learn's checks) sees the estimator's parameters; the positional
# aliases are documented in the docstring, not parameters (get_params never lists them).
GreyBoxODE.__init__.__signature__ = inspect.signature(SolverTrainedODE.__init__)  # type: ignore[attr-defined]
