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

import inspect
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from sysid.parameters._uncertainty import gauss_newton_distance

Residuals = Callable[[np.ndarray], np.ndarray]
Jacobian = Callable[[np.ndarray], np.ndarray]

_MAX_REFITS = 25  # refits per side at most
_UNBOUNDED = 256  # a side whose profile stays below the threshold this many steps out is unbounded
_ROOT_TOL = 2e-3  # relative precision of the root sqrt(SSR_k - SSR_min) at an end (0.4% of the threshold)
_INNER_NFEV = 30  # residual evaluations of each re-optimisation
# Relative precision of each refit: the sum of squares need only be known to a small fraction of the threshold
# (s^2 t^2, about 4 s^2 out of n s^2), i.e. to ~1e-3 relative on 40 residuals, ~1e-5 on 4,000.
_INNER_TOL = 1e-7
_STOP_WITHIN = 0.05  # with a Jacobian, a refit also stops within this many standard errors of its optimum


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
        First step away from the estimate (e.g. the Wald half-width).
    jacobian : callable ``x -> J``, optional
        Jacobian of ``residuals`` (else finite differences with ``diff_step``).
    xtol : float
        Relative precision of each end, as a fraction of ``step``.

    Returns
    -------
    (low, high, n_evaluations)
        An end is the bound where the profile stays below the threshold up to it, and
        infinite where it stays below 256 steps out (unbounded).

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
        kwargs: dict[str, Any] = {} if jacobian is not None or diff_step is None else {"diff_step": diff_step}
        if jacobian is not None and "callback" in inspect.signature(least_squares).parameters:
            def close_enough(intermediate_result: Any) -> None:  # as sysid.training._least_squares does
                z = intermediate_result.x
                if gauss_newton_distance(jac(z), residuals(full(value, z))) < _STOP_WITHIN:
                    raise StopIteration

            kwargs["callback"] = close_enough

        def at_value(z: np.ndarray) -> np.ndarray:
            return residuals(full(value, z))

        try:
            result = least_squares(at_value, start, jac=jac, bounds=(lo, hi),
                                   x_scale="jac", max_nfev=_INNER_NFEV, ftol=_INNER_TOL, xtol=_INNER_TOL, **kwargs)
        except (ValueError, np.linalg.LinAlgError, ArithmeticError):
            return math.inf, start
        count[0] += int(result.nfev)
        return 2.0 * float(result.cost), result.x

    def side(direction: int) -> float:
        """Where the signed root ``sqrt(SSR_k(v) - SSR_min)`` reaches ``sqrt(threshold)`` on this side.

        The root is nearly linear in ``v`` (exactly so for a linear model), so secant
        steps through the last two points find the end in a few refits. Once the end is
        bracketed they stay inside the bracket (else bisect); before, they at most
        quadruple the last step.
        """
        bound = float(upper[index] if direction > 0 else lower[index])
        target = math.sqrt(threshold)
        centre = float(x_hat[index])
        inside = (centre, 0.0, x_hat[others].copy())  # (value, root, rest) below the target
        outside: tuple[float, float] | None = None  # (value, root) above it
        previous = (centre, 0.0)
        value, last_offset = centre + direction * step, step
        for _ in range(_MAX_REFITS):
            if (value - bound) * direction >= 0:
                value = bound
            ssr, rest = refit(value, inside[2])
            root = math.sqrt(max(ssr - ssr_min, 0.0)) if math.isfinite(ssr) else math.inf
            if root < target:
                if value == bound:
                    return bound
                inside = (value, root, rest)
            else:
                outside = (value, root)
            if abs(root - target) <= _ROOT_TOL * target:
                return value
            if outside is not None and abs(outside[0] - inside[0]) <= xtol * step:
                return 0.5 * (inside[0] + outside[0])
            slope = (root - previous[1]) / (value - previous[0]) if math.isfinite(root) else 0.0
            guess = value + (target - root) / slope if slope * direction > 0 else math.nan
            previous = (value, root)
            if outside is not None:
                low_v, high_v = sorted((inside[0], outside[0]))
                value = guess if low_v < guess < high_v else 0.5 * (low_v + high_v)
            else:
                offset = abs(guess - centre) if math.isfinite(guess) else 2 * last_offset
                offset = min(max(offset, 1.2 * last_offset), 4 * last_offset)
                if offset > _UNBOUNDED * step:
                    return direction * math.inf
                value, last_offset = centre + direction * offset, offset
        return inside[0] if outside is None else 0.5 * (inside[0] + outside[0])

    low, high = side(-1), side(+1)
    return low, high, count[0]

