"""Information criteria of simulation errors, their effective number, and bootstrap choices."""

from __future__ import annotations

import numpy as np

from sysid.errors import ConfigError

#: Information criteria :func:`information_criterion` knows.
CRITERIA = ("aicc", "aic", "bic", "bicc")
#: The criterion SparseODE and SINDy choose with (chosen on a panel: benchmarks/sparse_recovery.py, docs).
DEFAULT_CRITERION = "bicc"
#: Simulation errors below this RMS (in units of each state's standard deviation) count as this.
ERROR_FLOOR = 0.01


def check_criterion(criterion: str) -> str:
    """``criterion`` if it is one of :data:`CRITERIA`, else a ConfigError."""
    if criterion not in CRITERIA:
        raise ConfigError(f"the selection criterion must be one of {list(CRITERIA)}, got {criterion!r}.")
    return criterion


def information_criterion(sse: np.ndarray, n: np.ndarray, k: int | np.ndarray, criterion: str = "aicc",
                          efficiency: np.ndarray | None = None, floor: float = 0.0) -> np.ndarray:
    """Gaussian information criterion of simulation errors, one variance per state.

    ``sum_j m_j log(SSE_j / n_j)`` plus ``2k`` (AIC), ``2k + 2k(k+1)/(M-k-1)`` (AICc),
    ``k log M`` (BIC) or the larger of the BIC and AICc penalties (``"bicc"``), with
    ``m_j = efficiency_j n_j`` the effective number of independent errors of state
    ``j`` and ``M = sum_j m_j``. Lower is better. BIC chooses the true support as the
    data grow (AIC keeps extra terms that help prediction), but its ``log M`` is weaker
    than AIC's 2 per term below ``M = e^2``; AICc's small-sample term is the stronger
    one on short records (21 yearly lynx-hare counts), BIC's on long ones.

    Simulation errors of a model that misses part of the dynamics are smooth in time,
    not independent: ``n_j`` correlated errors carry the information of fewer
    independent ones, and counting them all would let every extra term that bends the
    simulation towards the misfit pass. ``efficiency`` (from :func:`error_efficiency`) scales
    the counts down accordingly; 1 (the default) is the textbook criterion.

    ``floor``: a mean squared error below ``floor**2`` counts as ``floor**2``. On
    noise-free data every candidate's error is tiny and what remains (derivative bias,
    solver tolerance) would reward any extra term; below the floor, fewer terms win.

    Parameters
    ----------
    sse : array (..., n_states)
        Sum of squared simulation errors per state (any consistent units per state).
    n : array (..., n_states)
        Number of errors summed per state.
    k : int or array (...)
        Number of estimated coefficients.
    criterion : {"aicc", "aic", "bic", "bicc"}

    Examples
    --------
    >>> import numpy as np
    >>> sse, n = np.array([[1.0, 1.0], [0.9, 1.0]]), np.array([50, 50])
    >>> information_criterion(sse, n, np.array([2, 6])).round(2).tolist()   # 10% less error, 4 more terms
    [-387.08, -383.57]
    >>> information_criterion(sse, n, np.array([2, 6]), efficiency=[0.2, 0.2]).round(2).tolist()  # smooth errors
    [-73.53, -60.83]
    """
    check_criterion(criterion)
    sse = np.asarray(sse, dtype=float)
    n = np.broadcast_to(np.asarray(n, dtype=float), sse.shape)
    m = n if efficiency is None else n * np.broadcast_to(np.asarray(efficiency, dtype=float), sse.shape)
    k = np.asarray(k, dtype=float)
    sse = np.maximum(sse, n * float(floor) ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        fit = np.where(n > 0, m * np.log(np.maximum(sse, 1e-300) / np.maximum(n, 1)), 0.0).sum(axis=-1)
    total = m.sum(axis=-1)
    bic = k * np.log(np.maximum(total, 2.0))
    room = total - k - 1.0
    aicc = 2.0 * k + np.where(room > 0, 2.0 * k * (k + 1.0) / np.where(room > 0, room, 1.0), np.inf)
    penalty = {"bic": bic, "aic": 2.0 * k, "aicc": aicc, "bicc": np.maximum(bic, aicc)}[criterion]
    out = fit + penalty
    return np.where(np.isfinite(sse).all(axis=-1), out, np.inf)


def error_efficiency(sse: np.ndarray, lag1: np.ndarray, n: np.ndarray | None = None,
                     floor: float = 0.0) -> np.ndarray:
    """Effective fraction of independent errors per state, ``(1 - rho) / (1 + rho)``.

    ``rho = lag1 / max(sse, n floor^2)`` is the lag-one autocorrelation of a state's
    errors along its trajectories (``lag1`` the sum of products of consecutive errors,
    ``sse`` the sum of squares, ``n`` their number), clipped to [0, 0.99]: the
    variance-inflation factor of the mean of an AR(1) sequence. White errors give 1;
    smooth misfit gives much less. Errors below the floor (see
    :func:`information_criterion`) count as white: a near-perfect fit's tiny, smooth
    residual says nothing about the data's noise.

    Examples
    --------
    >>> import numpy as np
    >>> error_efficiency(np.array([1.0, 1.0]), np.array([0.0, 0.8])).round(3).tolist()
    [1.0, 0.111]
    """
    sse = np.asarray(sse, dtype=float)
    if n is not None:
        sse = np.maximum(sse, np.asarray(n, dtype=float) * float(floor) ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.where(sse > 0, np.asarray(lag1, dtype=float) / np.where(sse > 0, sse, 1.0), 0.0)
    rho = np.clip(np.nan_to_num(rho), 0.0, 0.99)
    return (1.0 - rho) / (1.0 + rho)


def bootstrap_inclusion(block_sse: np.ndarray, block_n: np.ndarray, k: np.ndarray, criterion: str = "aicc",
                        n_boot: int = 200, rng: np.random.Generator | None = None,
                        efficiency: np.ndarray | None = None, floor: float = 0.0) -> np.ndarray:
    """How often each candidate is chosen when the data's blocks are resampled.

    Parameters
    ----------
    block_sse : array (n_candidates, n_blocks, n_states)
        Squared simulation errors of every candidate summed over each block (segment).
    block_n : array (n_blocks, n_states)
        Errors per block and state.
    k : array (n_candidates,)
        Coefficients of each candidate.
    criterion : {"aicc", "aic", "bic"}
    n_boot : int, default 200
    rng : numpy Generator, optional

    Returns
    -------
    array (n_candidates,): the fraction of resamples choosing each candidate (sums to 1,
    or 0 everywhere when no candidate has a finite criterion).

    Examples
    --------
    >>> import numpy as np
    >>> sse = np.array([[[1.0], [1.0], [1.0]], [[0.2], [0.2], [3.0]]])   # 2 candidates, 3 blocks
    >>> p = bootstrap_inclusion(sse, np.full((3, 1), 10), np.array([1, 1]), rng=np.random.default_rng(0))
    >>> bool(0 < p[1] < 1), float(p.sum())
    (True, 1.0)
    """
    rng = np.random.default_rng(0) if rng is None else rng
    block_sse = np.asarray(block_sse, dtype=float)
    block_n = np.asarray(block_n, dtype=float)
    n_cand, n_blocks, _ = block_sse.shape
    counts = np.zeros(n_cand)
    if n_cand == 0 or n_blocks == 0:
        return counts
    finite = np.isfinite(block_sse).all(axis=(1, 2))
    if not finite.any():
        return counts
    draws = rng.integers(0, n_blocks, size=(int(n_boot), n_blocks))
    weights = np.stack([np.bincount(d, minlength=n_blocks) for d in draws]).astype(float)  # (B, blocks)
    sse = np.einsum("bk,ckj->bcj", weights, np.where(finite[:, None, None], block_sse, 0.0))
    n = weights @ block_n  # (B, states)
    scores = information_criterion(sse, n[:, None, :], np.asarray(k)[None, :], criterion, efficiency, floor)
    scores[:, ~finite] = np.inf
    chosen = np.argmin(scores, axis=1)
    counts += np.bincount(chosen, minlength=n_cand)
    return counts / len(draws)


Errors = tuple[np.ndarray, np.ndarray, np.ndarray]
"""A candidate's simulation errors per block and state: (squares, counts, lag-one products), each
(n_blocks, n_states)."""


def block_errors(residuals: np.ndarray, size: int = 10) -> Errors:
    """Errors of one trajectory's residuals (n_rows, n_states; NaN = unobserved) per block of ``size`` rows.

    Examples
    --------
    >>> import numpy as np
    >>> sse, n, lag1 = block_errors(np.ones((25, 2)), size=10)
    >>> sse[:, 0].tolist(), n[:, 0].tolist(), lag1[:, 0].tolist()
    ([10.0, 10.0, 5.0], [10.0, 10.0, 5.0], [9.0, 9.0, 4.0])
    """
    residuals = np.asarray(residuals, dtype=float)
    sse, n, lag1 = [], [], []
    for start in range(0, residuals.shape[0], int(size)):
        r = residuals[start:start + int(size)]
        sse.append(np.nansum(r**2, axis=0))
        n.append(np.count_nonzero(~np.isnan(r), axis=0).astype(float))
        lag1.append(np.nansum(r[1:] * r[:-1], axis=0))
    return np.array(sse), np.array(n), np.array(lag1)
