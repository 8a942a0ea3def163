"""Library terms that are (nearly) collinear on the data: found, named, kept apart."""

from __future__ import annotations

import itertools
import os
import sys
import warnings
from collections.abc import Iterable, Sequence
from types import FrameType

import numpy as np
import numpy.typing as npt

from sysid.errors import FitWarning

#: Two library columns at least this aligned on the data (|cosine|, uncentred) are collinear.
COLLINEAR_COSINE = 0.99
_MAX_VARIANTS = 16  # supports generated from one support holding several collinear pairs
_MAX_EXPLORED = 4096  # sub-supports examined at most (a degree-3 library of 4 states holds 35 terms)


def collinear_pairs(
    theta: np.ndarray, threshold: float = COLLINEAR_COSINE, allowed: npt.ArrayLike | None = None
) -> list[tuple[int, int, float]]:
    """Pairs of library columns that are (nearly) collinear on the data.

    Parameters
    ----------
    theta : array (n_rows, n_terms)
        The library evaluated on the data (physical units; rows with NaN are ignored).
    threshold : float, default :data:`COLLINEAR_COSINE`
        A pair is collinear when ``|a . b| / (|a| |b|)`` (the uncentred cosine, so that
        the constant column takes part) is at least this.
    allowed : array-like of bool (n_terms,), optional
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
    out = [
        (i, j, float(abs(cos[i, j])))
        for i, j in itertools.combinations(range(theta.shape[1]), 2)
        if ok[i] and ok[j] and abs(cos[i, j]) >= threshold
    ]
    return sorted(out, key=lambda p: -p[2])


def _outside_sysid() -> int:
    """The ``stacklevel`` (for a warning issued by the caller) of the first frame outside the sysid package."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    frame: FrameType | None = sys._getframe(2)
    level = 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(root):
        frame, level = frame.f_back, level + 1
    return level


def warn_collinear(
    pairs: Sequence[tuple[int, int, float]], names: Sequence[str], owner: str, stacklevel: int | None = None
) -> None:
    """One :class:`~sysid.FitWarning` naming the collinear pairs and the rule that resolves them.

    ``stacklevel`` None points the warning at the first caller outside sysid (the user's ``fit``).
    """
    if not pairs:
        return
    if stacklevel is None:
        stacklevel = _outside_sysid()
    listed = ", ".join(f"{names[i]} ~ {names[j]} (cosine {c:.4f})" for i, j, c in pairs)
    warnings.warn(
        f"{owner}: library terms nearly collinear on these data: {listed}. Their columns carry the same "
        "information here, so an equation holding both would split one effect between them with large "
        "cancelling coefficients. No candidate equation holds both terms of a pair; the selection keeps the "
        "one whose equations simulate the data better (or neither). To decide it yourself, drop one of them "
        "from the library, or record larger excursions where the two terms differ.",
        FitWarning,
        stacklevel=stacklevel,
    )


def split_dependent(
    support: Iterable[int], unit: np.ndarray, threshold: float = COLLINEAR_COSINE
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
    # Each sub-support is queued once: the same one is reached by dropping its terms in any order, and
    # queueing every order grew the queue factorially (a degree-3 library of two states, 10 terms
    # mutually near-collinear on a limit cycle: about 25 CPU minutes, most of them in this loop; 7 with it fixed).
    seen = set(queue)
    while queue and len(out) < _MAX_VARIANTS and len(seen) <= _MAX_EXPLORED:
        current = queue.pop(0)
        if len(current) < 2:
            out.append(current)
            continue
        r2 = _uncentred_r2(current, unit)
        dependent = [current[i] for i in np.argsort(-r2) if r2[i] >= limit]
        if not dependent:
            out.append(current)
        else:
            for smaller in (tuple(k for k in current if k != d) for d in dependent):
                if smaller not in seen:
                    seen.add(smaller)
                    queue.append(smaller)
    if not out:  # every sub-support explored still held dependent terms: drop the most dependent one at a time
        out.append(_drop_most_dependent(queue[0] if queue else tuple(sorted(int(k) for k in support)), unit, limit))
    return [s for s in dict.fromkeys(out) if not any(set(s) < set(o) for o in out)]


def _uncentred_r2(current: tuple[int, ...], unit: np.ndarray) -> np.ndarray:
    """Each term's uncentred R^2 on the other terms of ``current`` (1 where the Gram matrix is singular)."""
    a = unit[:, list(current)]
    try:
        inverse_diag = np.diag(np.linalg.inv(a.T @ a + 1e-12 * np.eye(len(current))))
        return 1.0 - 1.0 / np.maximum(inverse_diag, 1.0)
    except np.linalg.LinAlgError:
        return np.ones(len(current))


def _drop_most_dependent(current: tuple[int, ...], unit: np.ndarray, limit: float) -> tuple[int, ...]:
    """``current`` without its most dependent term, again and again, until none is dependent."""
    while len(current) > 1:
        r2 = _uncentred_r2(current, unit)
        if not r2.max() >= limit:
            break
        current = tuple(k for i, k in enumerate(current) if i != int(np.argmax(r2)))
    return current
