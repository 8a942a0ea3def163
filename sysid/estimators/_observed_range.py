"""Where a prediction leaves the states a model was fitted on (extrapolation), and saying so.

A model learned from data is only checked where the data were. A black-box field
(``NeuralODE``) in particular is an interpolant: beyond the observed states its shape is
whatever the network's inductive bias makes of it. Measured on Lotka–Volterra (3
training orbits, 5% noise): an unseen orbit inside the training orbits is predicted to
3-6% relative RMSE, one reaching 20% beyond them to 20-40%, whatever the activation,
width or regularisation (docs/neural_ode.md). So every estimator records the range of
each observed state at fit, and ``predict``/``score`` warn with an
:class:`~sysid.errors.ExtrapolationWarning` when the data or the prediction go beyond it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from sysid.errors import ExtrapolationWarning

#: Excursions up to this fraction of a state's observed span are not reported (noise, overshoot).
TOLERANCE = 0.05


def excursion(bounds: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per state, how far ``values`` (n, n_states) go beyond ``bounds``, in units of the range's span.

    Examples
    --------
    >>> excursion(np.array([[0.0, 1.0], [2.0, 3.0]]), np.array([[1.0, 2.0], [2.5, 2.0]])).tolist()
    [0.25, 0.0]
    """
    low, high = np.asarray(bounds, dtype=float)
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return np.zeros(low.shape)
    span = np.where(high > low, high - low, np.maximum(np.abs(high), 1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns, NaN bounds
        reach = np.fmax((low - np.nanmin(v, axis=0)) / span, (np.nanmax(v, axis=0) - high) / span)
    return np.where(np.isfinite(reach), np.maximum(reach, 0.0), 0.0)


def flag_extrapolation(
    bounds: np.ndarray | None,
    names: Sequence[object],
    state_names: Sequence[str],
    pieces: Sequence[Sequence[np.ndarray]],
    owner: str,
    what: str = "states",
) -> list[object]:
    """Warn about the trajectories whose values leave ``bounds``; return their names.

    ``bounds`` is ``observed_range_`` (or ``input_range_``, with ``what="inputs"``): per
    column ``[minimum, maximum]``, NaN for a column never observed.

    ``pieces[i]`` are the arrays (n, n_states) of trajectory ``names[i]`` to check: its
    observations and its prediction. An excursion beyond :data:`TOLERANCE` of a state's
    span is reported once per call, naming the trajectories, the states and how far.
    """
    if bounds is None:
        return []
    low, high = np.asarray(bounds, dtype=float)
    flagged, worst = [], np.zeros(low.shape)
    for name, arrays in zip(names, pieces):
        reach = np.zeros(low.shape)
        for values in arrays:
            reach = np.fmax(reach, excursion(bounds, values))
        if np.any(reach > TOLERANCE):
            flagged.append(name)
            worst = np.fmax(worst, reach)
    if flagged:
        states = ", ".join(
            f"{s} by {f'{100 * w:.0f}% of' if w < 10 else f'{w:.3g} times'} its range {low[j]:.4g}..{high[j]:.4g}"
            for j, (s, w) in enumerate(zip(state_names, worst))
            if w > TOLERANCE
        )
        shown = ", ".join(repr(n) for n in flagged[:5]) + (f" and {len(flagged) - 5} more" if len(flagged) > 5 else "")
        which = f"trajectory {shown} leaves" if len(flagged) == 1 else f"trajectories {shown} leave"
        warnings.warn(
            f"{owner}: {which} the {what} the model was fitted on ({states}). There the model "
            "extrapolates: expect larger errors than on the training data.",
            ExtrapolationWarning,
            stacklevel=4,
        )
    return flagged
