"""Terms that act as offsets on the data, and the rule that prefers the constant to them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

#: A library column whose uncentred cosine with the constant column is at least this on the
#: data (its mean at least about twice its standard deviation) acts mostly as an offset there.
OFFSET_COSINE = 0.9
#: Criterion values closer than this are a tie: no evidence for either model (Burnham & Anderson 2002).
TIE = 2.0


def offset_terms(
    theta: np.ndarray, threshold: float = OFFSET_COSINE, allowed: npt.ArrayLike | None = None
) -> tuple[int | None, list[tuple[int, float]]]:
    """The constant column of a library and the columns that are nearly constant on the data.

    ``cos(theta)`` while the angle stays within about a radian of zero, ``exp(-x)`` of a
    slowly varying ``x`` or a temperature in kelvin that moves by a few degrees are mostly
    their mean: in an equation they act as a constant offset (``sin(theta - theta0) =
    cos(theta0) sin(theta) - sin(theta0) cos(theta)``: a small ``cos(theta)`` term is an
    angle offset, and on such data a constant does the same). A column is one of them
    when its uncentred cosine with the constant column, ``mean / RMS``, is at least
    ``threshold`` (0.9: the mean at least 2.06 standard deviations).

    Parameters
    ----------
    theta : array (n_rows, n_terms)
        The library on the data (any column scaling; rows with NaN are ignored).
    threshold : float, default :data:`OFFSET_COSINE`
    allowed : array-like of bool (n_terms,), optional
        Only these columns are considered.

    Returns
    -------
    (constant, terms)
        The index of the library's constant column (None if it has none: then there are
        no offset terms either) and ``(index, cosine)`` of every nearly constant column,
        most constant first.

    Examples
    --------
    >>> import numpy as np
    >>> th = 0.8 * np.sin(np.linspace(0, 20, 400))
    >>> library = np.column_stack([np.ones(400), th, np.sin(th), np.cos(th)])
    >>> constant, terms = offset_terms(library)
    >>> constant, [(i, round(c, 3)) for i, c in terms]
    (0, [(3, 0.992)])
    """
    theta = np.asarray(theta, dtype=float)
    a = theta[np.all(np.isfinite(theta), axis=1)]
    ok = np.ones(theta.shape[1], dtype=bool) if allowed is None else np.asarray(allowed, dtype=bool).copy()
    if not len(a):
        return None, []
    spread = a.max(axis=0) - a.min(axis=0)
    constant = [int(i) for i in np.flatnonzero(ok & (spread <= 1e-12 * np.abs(a).max(axis=0)) & (a[0] != 0))]
    if not constant:
        return None, []
    rms = np.sqrt(np.mean(a**2, axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        cosine = np.abs(a.mean(axis=0)) / rms
    ok[constant] = False
    ok &= rms > 0
    found = [(int(i), float(cosine[i])) for i in np.flatnonzero(ok & (cosine >= threshold))]
    return constant[0], sorted(found, key=lambda p: -p[1])


def simplest_within(
    scores: Sequence[float], sizes: Sequence[int], complexity: Sequence[float], tie: float = TIE
) -> int:
    """Index of the chosen candidate: the lowest score, a tie going to the simpler terms.

    Among the candidates with as many terms as the lowest-scoring one and a score less
    than ``tie`` above it, the one whose terms are simplest (lowest total
    ``complexity``, e.g. 0 for the constant, a monomial's degree, more for ``sin``,
    ``cos`` or a user's function) wins; equal complexity keeps the lower score. The
    criterion already trades terms for fit; this only decides between equally large
    equations the data cannot tell apart (``1`` against ``cos(theta)`` on small swings).

    Examples
    --------
    >>> simplest_within([-100.0, -99.2, -90.0], [3, 3, 3], [3.0, 1.0, 0.0])  # -99.2 ties, -90 does not
    1
    >>> simplest_within([-100.0, -99.2], [3, 2], [3.0, 1.0])  # fewer terms: the criterion decides
    0
    """
    values = np.asarray(scores, dtype=float)
    if not len(values) or not np.isfinite(values).any():
        return 0
    best = int(np.nanargmin(np.where(np.isfinite(values), values, np.inf)))
    tied = [
        i
        for i in range(len(values))
        if np.isfinite(values[i]) and sizes[i] == sizes[best] and values[i] < values[best] + float(tie)
    ]
    return min(tied, key=lambda i: (float(complexity[i]), values[i]))
