"""Coefficient uncertainty: E-SINDy bagging and the table of estimates, errors, intervals, inclusion."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pysindy as ps

from sysid.errors import ConfigError
from sysid.selection._search import Joint


def bagged_coefficients(theta: np.ndarray, targets: np.ndarray, joint: Joint, n_models: int = 100,
                        seed: int = 0) -> np.ndarray:
    """Coefficients of the chosen supports refitted on bootstrap resamples of the rows (E-SINDy bagging).

    pysindy's :class:`~pysindy.EnsembleOptimizer` (``bagging=True``) around an unpenalised
    :class:`~pysindy.STLSQ` fits each equation's support on ``n_models`` resamples of
    the rows drawn with replacement. pysindy draws from numpy's global generator: it is
    seeded with ``seed`` for the call and restored afterwards.

    Returns
    -------
    array (n_models, n_terms, n_states), zero off the supports.
    """
    theta = np.asarray(theta, dtype=float)
    targets = np.asarray(targets, dtype=float)
    out = np.zeros((int(n_models), theta.shape[1], targets.shape[1]))
    state = np.random.get_state()  # noqa: NPY002 - pysindy's bagging draws from the global generator
    np.random.seed(int(seed) % 2**32)  # noqa: NPY002
    try:
        for j, support in enumerate(joint):
            if not support:
                continue
            rows = np.all(np.isfinite(theta[:, list(support)]), axis=1) & np.isfinite(targets[:, j])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ensemble = ps.EnsembleOptimizer(ps.STLSQ(threshold=0.0, alpha=0.0), bagging=True,
                                                n_models=int(n_models))
                ensemble.fit(theta[rows][:, list(support)], targets[rows, j][:, None])
            out[:, list(support), j] = np.asarray(ensemble.coef_list)[:, 0, :]
    finally:
        np.random.set_state(state)  # noqa: NPY002
    return out


def coefficient_table(coefficients: Any, stderr: Any = None, inclusion: Any = None, dof: float = math.inf,
                      level: float = 0.95) -> Any:
    """Every nonzero coefficient with its standard error, interval and inclusion probability.

    Parameters
    ----------
    coefficients : pandas.DataFrame
        Terms x states.
    stderr, inclusion : pandas.DataFrame, optional
        Same shape; missing ones give NaN columns.
    dof : float, default inf
        Degrees of freedom of the Student t quantile (inf: normal).
    level : float in (0, 1)

    Returns
    -------
    pandas.DataFrame indexed by (state, term), columns ``estimate``, ``stderr``,
    ``lower``, ``upper``, ``inclusion_probability``.

    Examples
    --------
    >>> import pandas as pd
    >>> c = pd.DataFrame({"x": [0.0, -1.5]}, index=["1", "x"])
    >>> coefficient_table(c, c.abs() / 10).round(3).to_dict("records")
    [{'estimate': -1.5, 'stderr': 0.15, 'lower': -1.794, 'upper': -1.206, 'inclusion_probability': nan}]
    """
    import pandas as pd
    from scipy import stats

    if isinstance(level, bool) or not isinstance(level, int | float | np.number) or not 0 < float(level) < 1:
        raise ConfigError(f"level must be a number in (0, 1), got {level!r}.")
    q = float(stats.t.ppf(0.5 + float(level) / 2, dof)) if np.isfinite(dof) else float(
        stats.norm.ppf(0.5 + float(level) / 2))
    rows = []
    for state in coefficients.columns:
        for term in coefficients.index:
            value = float(coefficients.loc[term, state])
            if value == 0.0:
                continue
            se = float(stderr.loc[term, state]) if stderr is not None else math.nan
            prob = float(inclusion.loc[term, state]) if inclusion is not None else math.nan
            rows.append({"state": state, "term": term, "estimate": value, "stderr": se,
                         "lower": value - q * se, "upper": value + q * se, "inclusion_probability": prob})
    columns = ["state", "term", "estimate", "stderr", "lower", "upper", "inclusion_probability"]
    return pd.DataFrame(rows, columns=columns).set_index(["state", "term"])
