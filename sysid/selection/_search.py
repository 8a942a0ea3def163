"""Candidate supports along pysindy's FROLS and SSR paths, and the search among them by simulation error."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pysindy as ps

from sysid.selection._collinear import (
    COLLINEAR_COSINE,
    collinear_pairs,
    split_dependent,
    warn_collinear,
)
from sysid.selection._criteria import (
    DEFAULT_CRITERION,
    ERROR_FLOOR,
    Errors,
    bootstrap_inclusion,
    check_criterion,
    information_criterion,
)

_RIDGE = 1e-10  # relative ridge of the support least squares (conditioning only)


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


Joint = tuple[tuple[int, ...], ...]
"""One candidate: the support (term indices) of every equation."""

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
                joints = [(*current[:state], tuple(s), *current[state + 1:]) for s in options]
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
                     stacklevel: int | None = None) -> Selection:
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
