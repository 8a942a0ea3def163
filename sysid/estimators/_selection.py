"""Choosing sparse equations: candidate supports, collinear terms, information criteria, bootstrap.

The pieces :class:`~sysid.SparseODE` and :class:`~sysid.SINDy` share when they choose
which library terms each equation keeps (``threshold="auto"``):

1. **Collinear terms** (:func:`collinear_pairs`): two library columns whose
   (uncentred) cosine on the data is at least :data:`COLLINEAR_COSINE` carry the same
   information there (``theta`` and ``sin(theta)`` at small amplitude, ``cos(theta)``
   and the constant), so a fit holding both splits one effect between them with large
   cancelling coefficients. They are named in a :class:`~sysid.FitWarning`, and no
   candidate equation holds both: wherever a path below would keep both, the two
   variants keeping one of them are candidates instead, and the selection picks one.
   The same holds for a term that is nearly a combination of several others of its
   equation (``cos(theta)`` of ``cos(omega)``, ``theta^2`` and ``omega^2`` at small
   amplitude; :func:`split_dependent`).
2. **Candidate supports** (:func:`support_paths`): per equation, the nested supports
   of pysindy's forward orthogonal least squares (:class:`pysindy.FROLS`, terms added
   by error reduction) and of its stepwise sparse regression
   (:class:`pysindy.SSR`, ``criteria="model_residual"``: terms removed one at a time,
   the one whose removal costs least first), both run on the derivative regression
   (library columns scaled to unit norm). Cheap: no solver.
3. **Scoring** (:func:`information_criterion`): a candidate's simulation errors
   (simulated minus measured states) are scored by a Gaussian information criterion
   with one variance per state, ``sum_j n_j log(SSE_j / n_j)`` plus the penalty of
   AICc (default), AIC or BIC for its number of coefficients.
4. **Inclusion probabilities** (:func:`bootstrap_inclusion`): blocks of the data
   (segments of trajectories) are resampled with replacement and the candidate with the
   lowest criterion is chosen again on every resample; a term's inclusion probability
   is the fraction of resamples whose choice holds it (the bagging of E-SINDy, Fasel
   et al. 2022, applied to the selection by simulation error instead of thresholded
   derivative regression).

Only numpy and pysindy here (SINDy imports this module; it must stay torch-free).
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pysindy as ps

from sysid.errors import ConfigError, FitWarning

__all__ = [
    "COLLINEAR_COSINE",
    "CRITERIA",
    "DEFAULT_CRITERION",
    "ERROR_FLOOR",
    "Search",
    "bagged_coefficients",
    "block_errors",
    "bootstrap_inclusion",
    "coefficient_table",
    "collinear_pairs",
    "derivative_start",
    "error_efficiency",
    "fit_support",
    "information_criterion",
    "search_supports",
    "select_equations",
    "split_dependent",
    "support_paths",
    "warn_collinear",
]

#: Two library columns at least this aligned on the data (|cosine|, uncentred) are collinear.
COLLINEAR_COSINE = 0.99
#: Information criteria :func:`information_criterion` knows.
CRITERIA = ("aicc", "aic", "bic", "bicc")
#: The criterion SparseODE and SINDy choose with (chosen on a panel: benchmarks/sparse_recovery.py, docs).
DEFAULT_CRITERION = "bicc"
#: Simulation errors below this RMS (in units of each state's standard deviation) count as this.
ERROR_FLOOR = 0.01
_RIDGE = 1e-10  # relative ridge of the support least squares (conditioning only)
_MAX_VARIANTS = 16  # supports generated from one support holding several collinear pairs


def collinear_pairs(theta: np.ndarray, threshold: float = COLLINEAR_COSINE,
                    allowed: np.ndarray | None = None) -> list[tuple[int, int, float]]:
    """Pairs of library columns that are (nearly) collinear on the data.

    Parameters
    ----------
    theta : array (n_rows, n_terms)
        The library evaluated on the data (physical units; rows with NaN are ignored).
    threshold : float, default :data:`COLLINEAR_COSINE`
        A pair is collinear when ``|a . b| / (|a| |b|)`` (the uncentred cosine, so that
        the constant column takes part) is at least this.
    allowed : bool array (n_terms,), optional
        Only these columns are considered.

    Returns
    -------
    list of (i, j, cosine) with i < j, most aligned first.

    Examples
    --------
    >>> import numpy as np
    >>> th = np.linspace(-0.5, 0.5, 50)
    >>> library = np.column_stack([np.ones(50), th, np.sin(th), th**2])
    >>> [(i, j, round(c, 3)) for i, j, c in collinear_pairs(library)]
    [(1, 2, 1.0)]
    """
    theta = np.asarray(theta, dtype=float)
    rows = np.all(np.isfinite(theta), axis=1)
    a = theta[rows]
    norms = np.linalg.norm(a, axis=0)
    ok = norms > 0
    if allowed is not None:
        ok &= np.asarray(allowed, dtype=bool)
    unit = np.where(ok, a / np.where(ok, norms, 1.0), 0.0)
    cos = unit.T @ unit
    out = [(i, j, float(abs(cos[i, j]))) for i, j in itertools.combinations(range(theta.shape[1]), 2)
           if ok[i] and ok[j] and abs(cos[i, j]) >= threshold]
    return sorted(out, key=lambda p: -p[2])


def warn_collinear(pairs: Sequence[tuple[int, int, float]], names: Sequence[str], owner: str,
                   stacklevel: int = 3) -> None:
    """One :class:`~sysid.FitWarning` naming the collinear pairs and the rule that resolves them."""
    if not pairs:
        return
    listed = ", ".join(f"{names[i]} ~ {names[j]} (cosine {c:.4f})" for i, j, c in pairs)
    warnings.warn(
        f"{owner}: library terms nearly collinear on these data: {listed}. Their columns carry the same "
        "information here, so an equation holding both would split one effect between them with large "
        "cancelling coefficients. No candidate equation holds both terms of a pair; the selection keeps the "
        "one whose equations simulate the data better (or neither). To decide it yourself, drop one of them "
        "from the library, or record larger excursions where the two terms differ.",
        FitWarning, stacklevel=stacklevel,
    )


def split_dependent(support: Iterable[int], unit: np.ndarray, threshold: float = COLLINEAR_COSINE
                    ) -> list[tuple[int, ...]]:
    """The largest sub-supports of ``support`` in which no term is (nearly) a combination of the others.

    A term is dependent on the others of its support when its uncentred R^2 on them is
    at least ``threshold ** 2`` (for two terms: their |cosine| is at least
    ``threshold``). While some are, the support is replaced by the variants that drop one
    of them each (breadth first, at most 16 variants): the selection then chooses
    among ``theta`` and ``sin(theta)``, or among ``cos(theta)`` and ``1 - theta^2``,
    instead of fitting both with cancelling coefficients.

    Parameters
    ----------
    support : iterable of int
        Column indices.
    unit : array (n_rows, n_terms)
        The library with every column scaled to unit norm (rows finite).
    threshold : float

    Examples
    --------
    >>> import numpy as np
    >>> th = np.linspace(-0.5, 0.5, 50)
    >>> library = np.column_stack([np.ones(50), th, np.sin(th), th**2])
    >>> unit = library / np.linalg.norm(library, axis=0)
    >>> split_dependent((0, 1, 2), unit)
    [(0, 2), (0, 1)]
    >>> split_dependent((0, 1, 3), unit)
    [(0, 1, 3)]
    """
    limit = float(threshold) ** 2
    out: list[tuple[int, ...]] = []
    queue = [tuple(sorted(int(k) for k in support))]
    seen: set[tuple[int, ...]] = set()
    while queue and len(out) < _MAX_VARIANTS:
        current = queue.pop(0)
        if current in seen:
            continue
        seen.add(current)
        if len(current) < 2:
            out.append(current)
            continue
        a = unit[:, list(current)]
        gram = a.T @ a
        try:
            inverse_diag = np.diag(np.linalg.inv(gram + 1e-12 * np.eye(len(current))))
            r2 = 1.0 - 1.0 / np.maximum(inverse_diag, 1.0)
        except np.linalg.LinAlgError:
            r2 = np.ones(len(current))
        dependent = [current[i] for i in np.argsort(-r2) if r2[i] >= limit]
        if not dependent:
            out.append(current)
        else:
            queue += [tuple(k for k in current if k != d) for d in dependent]
    return [s for s in dict.fromkeys(out) if not any(set(s) < set(o) for o in out)]


def _path_supports(history: Sequence[np.ndarray], columns: np.ndarray) -> list[tuple[int, ...]]:
    return [tuple(int(columns[k]) for k in np.flatnonzero(np.abs(np.asarray(c)[0]) > 0)) for c in history]


def support_paths(theta: np.ndarray, target: np.ndarray, allowed: np.ndarray | None = None,
                  threshold: float = COLLINEAR_COSINE, max_terms: int | None = None) -> list[tuple[int, ...]]:
    """Candidate supports of one equation along pysindy's FROLS and SSR paths.

    Parameters
    ----------
    theta : array (n_rows, n_terms)
        Library on the data (any column scaling; columns are normalised here).
    target : array (n_rows,)
        The derivative estimates of this equation's state.
    allowed : bool array (n_terms,), optional
        Columns that may enter (default all).
    threshold : float, default :data:`COLLINEAR_COSINE`
        No support holds a term that is (nearly) a combination of its other terms
        (:func:`split_dependent`).
    max_terms : int, optional
        Largest support size returned (default: all).

    Returns
    -------
    list of tuples of column indices, each sorted, without repeats, smallest first; the
    empty support (the equation ``dx/dt = 0``) is always included.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> library = rng.standard_normal((200, 5))
    >>> target = 2.0 * library[:, 1] - 0.5 * library[:, 3] + 0.01 * rng.standard_normal(200)
    >>> paths = support_paths(library, target)
    >>> (1, 3) in paths, paths[0]
    (True, ())
    """
    theta = np.asarray(theta, dtype=float)
    target = np.asarray(target, dtype=float)
    rows = np.all(np.isfinite(theta), axis=1) & np.isfinite(target)
    n_terms = theta.shape[1]
    allowed = np.ones(n_terms, dtype=bool) if allowed is None else np.asarray(allowed, dtype=bool)
    norms = np.linalg.norm(theta[rows], axis=0)
    columns = np.flatnonzero(allowed & (norms > 0))
    limit = len(columns) if max_terms is None else min(int(max_terms), len(columns))
    supports: list[tuple[int, ...]] = [()]
    unit = np.zeros_like(theta[rows])
    unit[:, norms > 0] = theta[rows][:, norms > 0] / norms[norms > 0]
    if rows.sum() >= 2 and len(columns):
        a = unit[:, columns]
        y = target[rows][:, None]
        with warnings.catch_warnings():  # pysindy warns about ill-conditioning and empty models
            warnings.simplefilter("ignore")
            try:
                frols = ps.FROLS(alpha=_RIDGE, max_iter=max(limit, 1)).fit(a, y)
                supports += _path_supports(frols.history_, columns)
            except (ValueError, np.linalg.LinAlgError):  # linearly dependent columns: SSR still runs
                pass
            if len(columns) > 1:
                try:
                    ssr = ps.SSR(alpha=_RIDGE, criteria="model_residual", max_iter=len(columns) - 1).fit(a, y)
                    supports += _path_supports(ssr.history_, columns)
                except (ValueError, np.linalg.LinAlgError):
                    pass
            else:
                supports.append(tuple(int(c) for c in columns))
    out: list[tuple[int, ...]] = []
    for s in dict.fromkeys(supports):
        out += [v for v in split_dependent(s, unit, threshold) if len(v) <= limit]
    return sorted(dict.fromkeys(out), key=lambda s: (len(s), s))


def fit_support(theta: np.ndarray, target: np.ndarray, support: Sequence[int]) -> np.ndarray:
    """Least-squares coefficients (n_terms,) of ``target`` on the columns ``support`` (zero elsewhere).

    A relative ridge of 1e-10 only conditions the solve. Rows with NaN are ignored.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.linspace(0, 1, 20)
    >>> fit_support(np.column_stack([np.ones(20), x, x**2]), 3 * x, [1]).round(6).tolist()
    [0.0, 3.0, 0.0]
    """
    theta = np.asarray(theta, dtype=float)
    target = np.asarray(target, dtype=float)
    coef = np.zeros(theta.shape[1])
    support = list(support)
    if not support:
        return coef
    rows = np.all(np.isfinite(theta[:, support]), axis=1) & np.isfinite(target)
    a, b = theta[rows][:, support], target[rows]
    gram = a.T @ a
    ridge = _RIDGE * np.trace(gram) / max(len(support), 1)
    coef[support] = np.linalg.solve(gram + ridge * np.eye(len(support)), a.T @ b)
    return coef


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


Joint = tuple[tuple[int, ...], ...]
"""One candidate: the support (term indices) of every equation."""
Errors = tuple[np.ndarray, np.ndarray, np.ndarray]
"""A candidate's simulation errors per block and state: (squares, counts, lag-one products), each (n_blocks, n_states)."""


@dataclass
class Search:
    """The candidates a :func:`search_supports` evaluated, their scores and errors."""

    scores: dict[Joint, float]
    errors: dict[Joint, Errors]
    efficiency: np.ndarray
    criterion: str
    floor: float = ERROR_FLOOR

    def ranked(self) -> list[Joint]:
        """Candidates by increasing criterion (failed ones last)."""
        return sorted(self.scores, key=lambda joint: (self.scores[joint], sum(len(s) for s in joint)))

    def front(self, n: int) -> list[Joint]:
        """The best candidate, then the best with fewer terms, and so on: ``n`` points of the sparsity path.

        The Pareto front of criterion against number of terms, from the best candidate
        towards sparser ones (each the best of its size); failed candidates never enter.
        """
        out: list[Joint] = []
        for joint in self.ranked():
            if not np.isfinite(self.scores[joint]) or len(out) >= n:
                break
            size = sum(len(s) for s in joint)
            if not out or size < min(sum(len(s) for s in j) for j in out):
                out.append(joint)
        return out

    def inclusion(self, n_terms: int, n_boot: int = 200, rng: np.random.Generator | None = None) -> np.ndarray:
        """Inclusion probability (n_terms, n_states) of every term: the choice repeated on resampled blocks."""
        n_states = len(next(iter(self.scores))) if self.scores else 0
        out = np.zeros((n_terms, n_states))
        joints = [j for j in self.errors if np.isfinite(self.scores[j])]
        if not joints:
            return out
        block_sse = np.stack([self.errors[j][0] for j in joints])
        block_n = self.errors[joints[0]][1]
        k = np.array([sum(len(s) for s in j) for j in joints])
        chosen = bootstrap_inclusion(block_sse, block_n, k, self.criterion, n_boot, rng, self.efficiency,
                                     self.floor)
        for joint, p in zip(joints, chosen):
            for state, support in enumerate(joint):
                out[list(support), state] += p
        return out


def search_supports(paths: Sequence[Sequence[tuple[int, ...]]], start: Joint,
                    simulate: Callable[[Joint], Errors | None], criterion: str = DEFAULT_CRITERION,
                    sweeps: int = 3, floor: float = ERROR_FLOOR,
                    neighbours: Callable[[int, tuple[int, ...]], Sequence[tuple[int, ...]]] | None = None) -> Search:
    """Choose one support per equation by the information criterion of the joint simulation errors.

    Coordinate descent: from ``start``, each equation in turn takes the support from its
    ``paths`` that minimises the criterion with the other equations held, sweeping until
    nothing changes (at most ``sweeps`` times). ``simulate(joint)`` returns the
    candidate's simulation errors per block (None if the simulation fails: the candidate
    is rejected); errors are in units of each state's standard deviation (``floor``:
    see :func:`information_criterion`). Every error counts as independent here: the
    candidates carry least-squares coefficients of the derivative regression, whose
    errors are smooth misfit even for the right support, so their autocorrelation says
    nothing about the data (the correction belongs to trained candidates).

    ``neighbours(state, support)``, if given, lists supports near ``support`` (one term
    dropped or swapped for another): after the paths, the descent goes on over them, so
    that a support no path passed through (``v`` where the derivative regression
    preferred ``x^2 v``) can still be found.

    Examples
    --------
    >>> import numpy as np
    >>> truth = ((1,), (0,))
    >>> def simulate(joint):          # the right support per equation halves that equation's error
    ...     sse = np.array([[1.0 if s == t else 2.0 for s, t in zip(joint, truth)]] * 10)
    ...     return sse, np.full((10, 2), 10.0), np.zeros((10, 2))
    >>> paths = [[(), (0,), (1,), (0, 1)], [(), (0,), (0, 1)]]
    >>> search_supports(paths, ((0, 1), (0, 1)), simulate).ranked()[0]
    ((1,), (0,))
    """
    check_criterion(criterion)
    errors: dict[Joint, Errors] = {}
    failed: set[Joint] = set()

    def run(joint: Joint) -> Errors | None:
        if joint not in errors and joint not in failed:
            found = simulate(joint)
            if found is None:
                failed.add(joint)
            else:
                errors[joint] = tuple(np.asarray(a, dtype=float) for a in found)  # type: ignore[assignment]
        return errors.get(joint)

    eff = np.ones(len(start))
    scores: dict[Joint, float] = {}

    def score(joint: Joint) -> float:
        if joint not in scores:
            found = run(joint)
            scores[joint] = math.inf if found is None else float(information_criterion(
                found[0].sum(axis=0), found[1].sum(axis=0), sum(len(s) for s in joint), criterion, eff, floor))
        return scores[joint]

    def descend(current: Joint, near: bool = False) -> Joint:
        score(current)
        for _ in range(int(sweeps)):
            changed = False
            for state, options in enumerate(paths):
                if near and neighbours is not None:
                    options = [current[state], *neighbours(state, current[state])]
                joints = [current[:state] + (tuple(s),) + current[state + 1:] for s in options]
                values = [score(j) for j in joints]
                best = joints[int(np.argmin(values))]
                if best != current and min(values) < scores[current]:
                    current, changed = best, True
            if not changed:
                break
        return current

    best = descend(tuple(start))
    if neighbours is not None:
        descend(best, near=True)
    return Search(scores, {j: e for j, e in errors.items() if j in scores}, eff, criterion, floor)


def derivative_start(theta: np.ndarray, targets: np.ndarray, paths: Sequence[Sequence[tuple[int, ...]]],
                     criterion: str = DEFAULT_CRITERION) -> Joint:
    """Per equation, the path support with the lowest criterion of its derivative-regression residuals."""
    start = []
    for state, options in enumerate(paths):
        seen = np.isfinite(targets[:, state])
        y = targets[seen, state]
        rss = [float(np.sum((y - theta[seen] @ fit_support(theta[seen], y, s)) ** 2)) for s in options]
        ic = [information_criterion(np.array([r]), np.array([y.size]), len(s), criterion) for r, s in zip(rss, options)]
        start.append(tuple(options[int(np.argmin(ic))]))
    return tuple(start)



@dataclass
class Selection:
    """What :func:`select_equations` found: the search, the collinear pairs, every candidate's coefficients."""

    search: Search
    pairs: list[tuple[int, int, float]]
    paths: list[list[tuple[int, ...]]]
    _fits: list[dict[tuple[int, ...], np.ndarray]]

    def ranked(self) -> list[Joint]:
        """Candidates by increasing criterion."""
        return self.search.ranked()

    def front(self, n: int) -> list[Joint]:
        """``n`` points of the sparsity path, from the best candidate down (:meth:`Search.front`)."""
        return self.search.front(n)

    def coefficients(self, joint: Joint) -> np.ndarray:
        """Least-squares coefficients (n_terms, n_states) of a candidate, zero off its supports."""
        return np.column_stack([self._fits[j][s] for j, s in enumerate(joint)])


def select_equations(theta: np.ndarray, targets: np.ndarray, names: Sequence[str],
                     simulate: Callable[[Joint, np.ndarray], Errors | None], allowed: np.ndarray | None = None,
                     criterion: str = DEFAULT_CRITERION, sweeps: int = 3, owner: str = "sysid",
                     stacklevel: int = 4) -> Selection:
    """Candidate supports from the derivative regression, chosen by their simulation errors.

    Collinear pairs are found on ``theta`` and named in a warning
    (:func:`collinear_pairs`, :func:`warn_collinear`); every equation's candidates come
    from :func:`support_paths`, each with its least-squares coefficients
    (:func:`fit_support`); :func:`search_supports` chooses, starting from the per-equation
    best of the derivative regression (:func:`derivative_start`).

    Parameters
    ----------
    theta : array (n_rows, n_terms)
        The library on the data (physical units; collinearity is judged on it).
    targets : array (n_rows, n_states)
        Derivative estimates of every state (NaN where unavailable), in the units of
        ``theta @ coefficients``.
    names : list of str
        Library term names (for the warning).
    simulate : callable ``simulate(joint, coefficients) -> Errors or None``
        Simulates the candidate with the coefficient matrix (n_terms, n_states), zero off
        its supports, and returns its errors per block (:data:`Errors`), or None when the
        simulation fails (the candidate is rejected).
    allowed : bool array (n_terms, n_states), optional
        Terms each equation may use (default all).
    criterion : {"aicc", "aic", "bic"}
    sweeps : int
        Coordinate sweeps of :func:`search_supports`.
    owner : str
        Named in the collinearity warning.

    Returns
    -------
    Selection
    """
    theta = np.asarray(theta, dtype=float)
    targets = np.asarray(targets, dtype=float)
    n_terms, n_states = theta.shape[1], targets.shape[1]
    allowed = np.ones((n_terms, n_states), dtype=bool) if allowed is None else np.asarray(allowed, dtype=bool)
    pairs = collinear_pairs(theta, allowed=allowed.any(axis=1))
    warn_collinear(pairs, names, owner, stacklevel)
    paths, fits = [], []
    for j in range(n_states):
        seen = np.isfinite(targets[:, j])
        whole = tuple(int(i) for i in np.flatnonzero(allowed[:, j]))
        options = support_paths(theta[seen], targets[seen, j], allowed[:, j])
        paths.append(options)
        fits.append({s: fit_support(theta[seen], targets[seen, j], s) for s in [*options, whole]})
    start = derivative_start(theta, targets, paths, criterion)
    rows = np.all(np.isfinite(theta), axis=1)
    norms = np.linalg.norm(theta[rows], axis=0)
    unit = theta[rows] / np.where(norms > 0, norms, 1.0)

    def near(state: int, support: tuple[int, ...]) -> list[tuple[int, ...]]:
        others = [int(i) for i in np.flatnonzero(allowed[:, state] & (norms > 0)) if i not in support]
        moves = [tuple(k for k in support if k != d) for d in support]
        moves += [tuple(sorted((*(k for k in support if k != d), a))) for d in support for a in others]
        found = [m for m in dict.fromkeys(moves) if split_dependent(m, unit) == [m]]
        seen = np.isfinite(targets[:, state])
        for m in found:
            if m not in fits[state]:
                fits[state][m] = fit_support(theta[seen], targets[seen, state], m)
        return found

    def run(joint: Joint) -> Errors | None:
        return simulate(joint, np.column_stack([fits[j][s] for j, s in enumerate(joint)]))

    search = search_supports(paths, start, run, criterion, sweeps, neighbours=near)
    return Selection(search, pairs, paths, fits)


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
    state = np.random.get_state()
    np.random.seed(int(seed) % 2**32)
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
        np.random.set_state(state)
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
