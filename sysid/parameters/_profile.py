"""Profile-likelihood confidence intervals for the nonlinear cases where the linearised one is poor.

For parameter ``k`` the profile is ``SSR_k(v) = min |r(x)|^2`` over every other fitted
quantity with ``x_k = v`` held (each point one :func:`scipy.optimize.least_squares`
run, warm-started from the previous point). The interval is the set of ``v`` with

    SSR_k(v) - SSR_min <= s^2 t^2,

``t`` the Student quantile with the fit's degrees of freedom and ``s^2`` its residual
variance: in a linear model this is exactly the Wald interval; in a nonlinear one it
follows the curvature (an asymmetric interval, a bound, or no upper end at all).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.optimize import brentq, least_squares

Residuals = Callable[[np.ndarray], np.ndarray]
Jacobian = Callable[[np.ndarray], np.ndarray]

_EXPANSIONS = 8  # doublings of the step before declaring a side unbounded
_INNER_NFEV = 30  # residual evaluations of each re-optimisation


def profile_interval(residuals: Residuals, x_hat: Any, index: int, lower: Any, upper: Any, threshold: float,
                     step: float, jacobian: Jacobian | None = None, diff_step: float | None = None,
                     xtol: float = 1e-3) -> tuple[float, float, int]:
    """The profile-likelihood interval of quantity ``index``.

    Parameters
    ----------
    residuals : callable ``x -> r``
        Weighted residuals over the whole vector of fitted quantities.
    x_hat : array (q,)
        The least-squares optimum.
    index : int
        The quantity to profile.
    lower, upper : arrays (q,)
        Bounds of every quantity (infinite where open).
    threshold : float
        Allowed increase of the sum of squared residuals (``s^2 t^2``).
    step : float
        First step away from the estimate (e.g. the Wald half-width); doubled until
        the profile crosses the threshold or a bound is reached.
    jacobian : callable ``x -> J``, optional
        Jacobian of ``residuals`` (else finite differences with ``diff_step``).
    xtol : float
        Relative precision of each end, as a fraction of ``step``.

    Returns
    -------
    (low, high, n_evaluations)
        An end is the bound where the profile stays below the threshold up to it, and
        infinite where it stays below after all the doublings (unbounded).

    Examples
    --------
    >>> import numpy as np
    >>> t = np.linspace(0, 1, 30)
    >>> y = 2 * t + 1 + 0.1 * np.sin(40 * t)
    >>> fun = lambda x: x[0] * t + x[1] - y          # linear: the profile is the Wald interval
    >>> lo, hi, _ = profile_interval(fun, np.array([2.0, 1.0]), 0, [-np.inf] * 2, [np.inf] * 2, 0.04, 0.1)
    >>> round(hi - lo, 3) > 0
    True
    """
    x_hat = np.asarray(x_hat, dtype=float)
    lower = np.asarray(lower, dtype=float)
    upper = np.asarray(upper, dtype=float)
    others = np.array([i for i in range(x_hat.size) if i != index], dtype=int)
    ssr_min = float(np.sum(np.asarray(residuals(x_hat)) ** 2))
    count = [1]
    step = float(step) if math.isfinite(step) and step > 0 else max(0.1 * abs(float(x_hat[index])), 1e-3)

    def full(value: float, rest: np.ndarray) -> np.ndarray:
        x = x_hat.copy()
        x[index] = value
        x[others] = rest
        return x

    def refit(value: float, start: np.ndarray) -> tuple[float, np.ndarray]:
        if others.size == 0:
            count[0] += 1
            return float(np.sum(residuals(full(value, start)) ** 2)), start
        lo, hi = lower[others], upper[others]
        start = np.clip(start, lo, hi)
        jac: Any = "2-point" if jacobian is None else (lambda z: np.asarray(jacobian(full(value, z)))[:, others])
        kwargs = {} if jacobian is not None or diff_step is None else {"diff_step": diff_step}
        try:
            result = least_squares(lambda z: residuals(full(value, z)), start, jac=jac, bounds=(lo, hi),
                                   x_scale="jac", max_nfev=_INNER_NFEV, **kwargs)
        except (ValueError, np.linalg.LinAlgError, ArithmeticError):
            return math.inf, start
        count[0] += int(result.nfev)
        return 2.0 * float(result.cost), result.x

    def side(direction: int) -> float:
        bound = upper[index] if direction > 0 else lower[index]
        inner_value, inner_rest = float(x_hat[index]), x_hat[others].copy()
        offset = step
        for _ in range(_EXPANSIONS + 1):
            value = float(x_hat[index]) + direction * offset
            if (value - bound) * direction >= 0:
                value = float(bound)
            ssr, rest = refit(value, inner_rest)
            if ssr - ssr_min >= threshold:
                a, b = sorted((inner_value, value))
                return float(brentq(_Excess(refit, inner_rest, ssr_min + threshold), a, b, xtol=xtol * step,
                                    rtol=1e-6))
            if value == bound:
                return float(bound)
            inner_value, inner_rest = value, rest
            offset *= 2.0
        return direction * math.inf

    low, high = side(-1), side(+1)
    return low, high, count[0]


class _Excess:
    """``SSR_k(v) - (SSR_min + threshold)``, each refit warm-started from the last point inside."""

    def __init__(self, refit: Callable[[float, np.ndarray], tuple[float, np.ndarray]], rest: np.ndarray,
                 level: float) -> None:
        self.refit, self.rest, self.level = refit, rest, level

    def __call__(self, value: float) -> float:
        ssr, rest = self.refit(value, self.rest)
        if ssr < self.level:
            self.rest = rest
        return ssr - self.level
