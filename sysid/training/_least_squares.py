"""Least squares for solver-trained models whose free quantities are few (no network).

A Gauss-Newton/trust-region fit (:func:`scipy.optimize.least_squares`, bounds kept
exactly) needs residuals and their Jacobian, both from one batched solve
(:mod:`sysid.training._differences`). Three residual sets (:mod:`sysid.training._residuals`)
provide them:

- :class:`~sysid.training.CollocationResiduals`: the field at smoothed states minus smoothed
  derivatives (no solver): a cheap first estimate of the parameters;
- :class:`~sysid.training.SegmentResiduals`: multiple shooting, the parameters and every segment's
  start state free, gaps between segments as extra residuals: a landscape without the
  local minima of single shooting (Lotka-Volterra from 50% off);
- :class:`~sysid.training.TrajectoryResiduals`: single shooting, the parameters and each trajectory's
  initial state free: the least-squares problem whose optimum the confidence
  intervals describe.

Each is a callable ``x -> (r, J)``, and :func:`solve_least_squares` runs scipy on it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse
from scipy.optimize import least_squares

from sysid.integration import SolverFailure
from sysid.parameters import gauss_newton_distance

Evaluation = Callable[[np.ndarray], tuple[np.ndarray, Any]]


@dataclass(frozen=True)
class LeastSquaresResult:
    """Outcome of :func:`solve_least_squares`.

    Attributes
    ----------
    x : array (q,)
    residuals : array (n,)
        At ``x``.
    jacobian : array or sparse matrix (n, q)
        At ``x``.
    cost : float
        Half the sum of squared residuals.
    nfev : int
        Residual evaluations (each one batched solve with its Jacobian).
    status : int
        scipy's status (> 0: converged by a tolerance, 0: evaluation budget spent).
    message : str
    """

    x: np.ndarray
    residuals: np.ndarray
    jacobian: Any
    cost: float
    nfev: int
    status: int
    message: str

    @property
    def converged(self) -> bool:
        """Whether a tolerance was met (not the evaluation budget)."""
        return self.status > 0


def solve_least_squares(
    evaluate: Evaluation,
    x0: Any,
    lower: Any,
    upper: Any,
    max_nfev: int | None = None,
    stop_within: float | None = None,
    ftol: float = 1e-8,
    xtol: float = 1e-8,
    gtol: float = 1e-8,
) -> LeastSquaresResult:
    """Minimise ``|r(x)|^2 / 2`` within closed bounds with scipy's trust-region reflective method.

    Parameters
    ----------
    evaluate : callable ``x -> (r, J)``
        Residuals and their Jacobian (dense or scipy sparse) in one evaluation; ``J``
        is None where the model cannot be evaluated (the step is then rejected).
    x0 : array (q,)
        Start, inside the bounds or on them.
    lower, upper : arrays (q,)
        Closed bounds (``-inf``/``inf`` where open).
    max_nfev : int, optional
        Residual evaluations at most.
    stop_within : float, optional
        Also stop once the Gauss-Newton step from the current point is shorter than
        this many standard errors (``|J dx|^2 < stop_within^2 s^2``, ``s^2 = |r|^2 /
        (n - q)``): the estimate is then as close to the optimum as the data can tell,
        and the solver's own error (which makes the residuals slightly rough in ``x``)
        cannot keep the trust region busy. Needs scipy >= 1.16 (ignored before).
    ftol, xtol, gtol : float
        scipy's tolerances.

    Raises
    ------
    SolverFailure
        When the model cannot be evaluated at ``x0``.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.linspace(0, 1, 10)
    >>> def evaluate(x):
    ...     return x[0] * np.exp(-x[1] * t) - 2 * np.exp(-3 * t), np.column_stack(
    ...         [np.exp(-x[1] * t), -x[0] * t * np.exp(-x[1] * t)]
    ...     )
    >>> fit = solve_least_squares(evaluate, [1.0, 1.0], [0, 0], [np.inf, np.inf])
    >>> np.round(fit.x, 6).tolist(), fit.converged
    ([2.0, 3.0], True)
    """
    lower = np.asarray(lower, dtype=float)
    upper = np.asarray(upper, dtype=float)
    start = np.clip(np.asarray(x0, dtype=float), lower, upper)
    r0, j0 = evaluate(start)
    if j0 is None:
        raise SolverFailure(getattr(evaluate, "failure", None) or "the model cannot be evaluated at the start values")
    seen: list[tuple[np.ndarray, np.ndarray, Any]] = [(start, r0, j0)]  # the latest evaluations, newest last

    def lookup(x: np.ndarray) -> tuple[np.ndarray, Any]:
        for x_seen, r, jac in reversed(seen):
            if np.array_equal(x_seen, x):
                return r, jac
        r, jac = evaluate(x)
        seen.append((x.copy(), r, jac))
        del seen[:-4]
        return r, jac

    def fun(x: np.ndarray) -> np.ndarray:
        return lookup(x)[0]

    def jac(x: np.ndarray) -> Any:
        jac_x = lookup(x)[1]
        if jac_x is None:
            raise SolverFailure("the model cannot be simulated at an accepted step")
        return jac_x

    def close_enough(intermediate_result: Any) -> None:
        r, jac_x = lookup(intermediate_result.x)
        if stop_within is not None and jac_x is not None and gauss_newton_distance(jac_x, r) < stop_within:
            raise StopIteration

    options: dict[str, Any] = {}
    if stop_within is not None and "callback" in inspect.signature(least_squares).parameters:
        options["callback"] = close_enough
    sparse = scipy.sparse.issparse(j0)
    result = least_squares(
        fun,
        start,
        jac=jac,
        bounds=(lower, upper),
        method="trf",
        x_scale="jac",
        max_nfev=max_nfev,
        ftol=ftol,
        xtol=xtol,
        gtol=gtol,
        tr_solver="lsmr" if sparse else "exact",
        **options,
    )
    x = result.x
    r, jac_x = fun(x), jac(x)
    status = 5 if result.status == -2 else int(result.status)  # -2: stopped by close_enough
    message = "within the stop_within standard errors of the optimum" if result.status == -2 else str(result.message)
    return LeastSquaresResult(x, r, jac_x, 0.5 * float(r @ r), int(result.nfev), status, message)
