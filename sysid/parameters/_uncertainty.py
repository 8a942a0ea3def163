"""Linearised uncertainty of a weighted least-squares fit, identifiability, and the interval table.

One computation for every parametric estimator. The residuals are weighted,
``r = (simulated - observed) / sigma[state]`` over every observed entry, with
``sigma`` each state's noise level (:func:`noise_levels`), so that states measured in
different units or with different noise count by their information. At the optimum,
with ``J`` the Jacobian of ``r`` with respect to every fitted quantity (the free
parameters and any nuisance quantities such as initial states),

    cov = s^2 (J^T J)^-1,   s^2 = |r|^2 / (n - q),

``n`` residuals and ``q`` fitted quantities; the parameter block of ``cov``
marginalises over the nuisance quantities. Intervals use Student's t with ``n - q``
degrees of freedom. The columns of ``J`` are normalised and decomposed by SVD:
directions with a relative singular value below a tolerance cannot be resolved from
the data, and the quantities with large loadings on them are flagged as not
identifiable (infinite standard error); the covariance is the pseudo-inverse on the
resolved directions.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse, stats
from scipy.sparse import linalg as sparse_linalg

from sysid.errors import ConfigError
from sysid.parameters._spec import ParameterSpec

NULL_TOLERANCE = 1e-6
"""Relative singular value of the column-normalised Jacobian below which a direction is null."""
NULL_LOADING = 0.1
"""A quantity takes part in a null direction when its loading on it exceeds this."""
MIN_NOISE_COUNT = 5
"""A state with fewer observed entries gets a noise level by analogy (see :func:`noise_levels`)."""
TABLE_COLUMNS = ("estimate", "stderr", "lower", "upper", "status")
"""Columns of every parametric estimator's ``confidence_intervals()`` (index: ``parameter``)."""
STATUSES = ("estimated", "fixed", "not identifiable", "on bound")
"""Values of the table's ``status`` column."""
REWEIGHT = 0.2
"""A fit is repeated with new state weights when their ratios move by more than this (relative)."""


@dataclass(frozen=True)
class Uncertainty:
    """Gauss-Newton uncertainty at a least-squares optimum.

    Attributes
    ----------
    labels : tuple of str
        One per column of the Jacobian: the free parameters first, then nuisance quantities.
    covariance : array (q, q)
        ``s^2 (J^T J)^+`` on the resolved directions; rows and columns of flagged
        quantities are NaN, their diagonal inf.
    stderr : array (q,)
        Standard errors (inf where flagged).
    s2 : float
        Residual variance ``|r|^2 / dof`` (close to 1 when the weights are the noise levels).
    dof : int
        ``n - q`` (at least 1).
    n_residuals : int
    condition : float
        Condition number of the column-normalised Jacobian (inf when singular).
    unidentifiable : tuple of str
        Labels flagged as not identifiable.
    """

    labels: tuple[str, ...]
    covariance: np.ndarray
    stderr: np.ndarray
    s2: float
    dof: int
    n_residuals: int
    condition: float
    unidentifiable: tuple[str, ...]

    def of(self, names: Sequence[str]) -> dict[str, float]:
        """``{label: stderr}`` for ``names``."""
        where = {label: i for i, label in enumerate(self.labels)}
        return {n: float(self.stderr[where[n]]) for n in names}

    def covariance_frame(self, names: Sequence[str]) -> pd.DataFrame:
        """The covariance block of ``names`` as a labelled DataFrame."""
        where = [self.labels.index(n) for n in names]
        return pd.DataFrame(self.covariance[np.ix_(where, where)], index=list(names), columns=list(names))


def linearised_uncertainty(jacobian: Any, residuals: Any, labels: Sequence[str],
                           jacobian_noise: float = 0.0) -> Uncertainty:
    """Standard errors, covariance and identifiability from the Jacobian at the optimum.

    Parameters
    ----------
    jacobian : array (n, q)
        Jacobian of the weighted residuals with respect to every fitted quantity.
    residuals : array (n,)
        Weighted residuals at the optimum.
    labels : sequence of str (q,)
    jacobian_noise : float
        Relative error of the Jacobian (e.g. a finite-difference step): null directions
        are those with a relative singular value below ``max(NULL_TOLERANCE, 3 * jacobian_noise)``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.linspace(0, 1, 20)
    >>> J = np.column_stack([x, 2 * x, np.ones_like(x)])   # a and b enter only as a + 2 b
    >>> u = linearised_uncertainty(J, 0.1 * np.sin(7 * x), ["a", "b", "c"])
    >>> u.unidentifiable, bool(np.isinf(u.stderr[:2]).all()), bool(np.isfinite(u.stderr[2]))
    (('a', 'b'), True, True)
    """
    J = np.asarray(jacobian.toarray() if hasattr(jacobian, "toarray") else jacobian, dtype=float)
    r = np.asarray(residuals, dtype=float).reshape(-1)
    labels = tuple(labels)
    n, q = J.shape
    if q != len(labels):
        raise ValueError(f"{q} Jacobian columns but {len(labels)} labels")
    dof = max(n - q, 1)
    s2 = float(r @ r) / dof
    norms = np.linalg.norm(J, axis=0)
    safe = np.where(norms > 0, norms, 1.0)
    if q == 0:
        return Uncertainty(labels, np.zeros((0, 0)), np.zeros(0), s2, dof, n, 1.0, ())
    _, sing, vt = np.linalg.svd(J / safe, full_matrices=False)
    smax = float(sing[0]) if sing.size else 0.0
    relative = sing / smax if smax > 0 else np.zeros_like(sing)
    tol = max(NULL_TOLERANCE, 3.0 * float(jacobian_noise))
    null = relative < tol
    if sing.size < q:  # fewer residuals than quantities: the missing directions are null too
        vt_full = np.linalg.svd(J / safe, full_matrices=True)[2]
        extra = vt_full[sing.size:]
    else:
        extra = np.zeros((0, q))
    flagged = set(np.flatnonzero(norms == 0).tolist())
    for direction in list(vt[null]) + list(extra):
        flagged.update(np.flatnonzero(np.abs(direction) > NULL_LOADING).tolist())
    keep = ~null
    inv = (vt[keep].T / sing[keep] ** 2) @ vt[keep]
    cov = s2 * inv / np.outer(safe, safe)
    stderr = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    for i in flagged:
        cov[i, :] = np.nan
        cov[:, i] = np.nan
        cov[i, i] = np.inf
        stderr[i] = np.inf
    condition = float(smax / sing[-1]) if sing.size == q and sing[-1] > 0 else math.inf
    return Uncertainty(labels, cov, stderr, s2, dof, n, condition,
                       tuple(labels[i] for i in sorted(flagged)))


def gauss_newton_distance(jacobian: Any, residuals: np.ndarray) -> float:
    """Length of the Gauss-Newton step from here to the linearised optimum, in standard errors.

    ``sqrt(|J dx|^2 / s^2)`` with ``dx`` the least-squares solution of ``J dx = -r``
    and ``s^2 = |r|^2 / (n - q)``: the Mahalanobis distance under the covariance
    ``s^2 (J^T J)^-1`` that the confidence intervals use.

    Examples
    --------
    >>> import numpy as np
    >>> J = np.eye(3)[:, :2]
    >>> round(gauss_newton_distance(J, np.array([0.1, 0.0, 1.0])), 6)  # step 0.1, s^2 = 1.01
    0.099504
    """
    r = np.asarray(residuals, dtype=float)
    n, q = jacobian.shape
    s2 = float(r @ r) / max(n - q, 1)
    if s2 <= 0:
        return 0.0
    if sparse.issparse(jacobian):
        # scipy-stubs: issparse narrows to SparseABC, which lsmr and @ do not accept.
        step = sparse_linalg.lsmr(jacobian, -r, atol=1e-10, btol=1e-10)[0]  # type: ignore[arg-type]
        moved = jacobian @ step  # type: ignore[operator]
    else:
        step = np.linalg.lstsq(jacobian, -r, rcond=None)[0]
        moved = jacobian @ step
    return float(np.sqrt(float(moved @ moved) / s2))


def noise_levels(residuals: Any, state_of: Any, scale: Any, n_fitted: int = 0) -> np.ndarray:
    """Each state's noise level (standard deviation) from the residuals of a fit.

    ``sigma_j^2 = SSR_j / (n_j (1 - q / n))``: the residual variance of state ``j``
    with the degrees of freedom shared out in proportion to its entries. A state with
    fewer than :data:`MIN_NOISE_COUNT` entries (or a perfect fit) gets the median
    relative noise of the others times its own ``scale``; with none to go by,
    ``sigma = scale``.

    Parameters
    ----------
    residuals : array (n,)
        Unweighted residuals (simulated minus observed).
    state_of : int array (n,)
        The state of each residual.
    scale : array (n_states,)
        Each state's typical size (e.g. its spread), positive.
    n_fitted : int
        Quantities fitted (q).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> r = np.concatenate([0.1 * rng.standard_normal(400), 2.0 * rng.standard_normal(400), [0.0]])
    >>> state = np.repeat([0, 1, 2], [400, 400, 1])
    >>> np.round(noise_levels(r, state, np.array([1.0, 20.0, 5.0])), 2).tolist()
    [0.1, 2.01, 0.5]
    """
    r = np.asarray(residuals, dtype=float).reshape(-1)
    state_of = np.asarray(state_of, dtype=int).reshape(-1)
    scale = np.asarray(scale, dtype=float).reshape(-1)
    n = max(r.size, 1)
    share = max(1.0 - float(n_fitted) / n, 1.0 / n)
    sigma = np.full(scale.size, np.nan)
    for j in range(scale.size):
        rj = r[state_of == j]
        if rj.size >= MIN_NOISE_COUNT:
            value = math.sqrt(float(rj @ rj) / (rj.size * share))
            if value > 0:
                sigma[j] = value
    known = np.isfinite(sigma)
    relative = float(np.median(sigma[known] / scale[known])) if known.any() else 1.0
    return np.where(known, sigma, relative * scale)


def state_spread(data: Any) -> np.ndarray:
    """Each state's standard deviation over its observed entries (1 where it is zero or undefined).

    The starting weights of the residuals are its inverse, so that states in different
    units start on an equal footing (the same as :class:`~sysid.estimators._ode_base.Scaling`).

    Examples
    --------
    >>> import numpy as np
    >>> from sysid import Trajectories
    >>> data = Trajectories.from_arrays([np.arange(4.0)], [np.array([[1.0, 5], [3, 5], [1, 5], [3, np.nan]])])
    >>> state_spread(data).tolist()
    [1.0, 1.0]
    """
    y = np.concatenate([tr.y for tr in data])
    with np.errstate(all="ignore"):
        center = np.nanmean(np.where(np.isnan(y), np.nan, y), axis=0) if y.size else np.zeros(y.shape[1])
        spread = np.nanstd(y, axis=0) if y.size else np.ones(y.shape[1])
    ok = np.isfinite(spread) & (spread > 1e-12 * np.maximum(1.0, np.abs(np.nan_to_num(center))))
    return np.where(ok, spread, 1.0)


def relative_change(new: Any, old: Any) -> float:
    """Largest change of the states' weight ratios (a common factor changes no fit), relative.

    Examples
    --------
    >>> round(relative_change([2.0, 4.0], [1.0, 2.0]), 6), round(relative_change([1.0, 3.0], [1.0, 2.0]), 3)
    (0.0, 0.225)
    """
    ratio = np.log(np.asarray(new, dtype=float) / np.asarray(old, dtype=float))
    return float(np.expm1(np.max(np.abs(ratio - ratio.mean())))) if ratio.size > 1 else 0.0


def check_level(level: Any) -> float:
    """``level`` as a float in (0, 1), else :class:`~sysid.errors.ConfigError`."""
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0.0 < float(level) < 1.0:
        raise ConfigError(f"level must be a number in (0, 1), e.g. 0.95, got {level!r}.")
    return float(level)


def t_quantile(level: float, dof: int) -> float:
    """Two-sided Student t quantile of ``level`` with ``dof`` degrees of freedom."""
    return float(stats.t.ppf(0.5 + level / 2.0, max(int(dof), 1)))


def interval_table(spec: ParameterSpec, estimates: Mapping[str, float], stderr: Mapping[str, float],
                   dof: int, level: float, unidentifiable: Sequence[str] = (),
                   intervals: Mapping[str, tuple[float, float]] | None = None) -> pd.DataFrame:
    """The confidence-interval table every parametric estimator returns.

    One row per parameter (fixed ones too), index ``parameter``, columns
    :data:`TABLE_COLUMNS`: ``estimate``; ``stderr`` (0 for fixed parameters, inf for
    parameters that are not identifiable); ``lower``/``upper`` (the Wald interval
    ``estimate -/+ t stderr`` clipped to the bounds, unless ``intervals`` gives them,
    e.g. from profile likelihood; a fixed parameter's interval is its value); and
    ``status``, one of :data:`STATUSES` (``"on bound"``: within a millionth of a
    standard error of a bound, where the interval is one-sided).

    Examples
    --------
    >>> from sysid.parameters import check_parameters
    >>> spec = check_parameters({"k": 1.0, "c": 2.0}, {"k": (0, None)}, ["c"])
    >>> table = interval_table(spec, {"k": 0.5, "c": 2.0}, {"k": 0.1}, dof=20, level=0.95)
    >>> print(table.round(3).to_string())  # doctest: +NORMALIZE_WHITESPACE
               estimate  stderr  lower  upper     status
    parameter
    k               0.5     0.1  0.291  0.709  estimated
    c               2.0     0.0  2.000  2.000      fixed
    """
    q = t_quantile(level, dof)
    flagged = set(unidentifiable)
    rows = []
    for name, lo_b, hi_b, free in zip(spec.names, spec.lower, spec.upper, spec.free):
        est = float(estimates[name])
        if not free:
            rows.append((est, 0.0, est, est, "fixed"))
            continue
        se = float(stderr[name])
        if name in flagged or not math.isfinite(se):
            rows.append((est, math.inf, float(lo_b), float(hi_b), "not identifiable"))
            continue
        if intervals is not None and name in intervals:
            lo, hi = intervals[name]
        else:
            lo, hi = est - q * se, est + q * se
        lo, hi = max(float(lo), float(lo_b)), min(float(hi), float(hi_b))
        near = max(1e-9 * abs(est), 1e-6 * se)  # on a bound: closer than a millionth of a standard error
        on_bound = est - lo_b <= near or hi_b - est <= near
        rows.append((est, se, lo, hi, "on bound" if on_bound else "estimated"))
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS), index=pd.Index(list(spec.names), name="parameter"))
    return table
