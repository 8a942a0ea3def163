"""How simulated and measured states are compared: additive differences, or log (relative) errors.

``Training(errors="log")`` fits ``log(simulated) - log(measured)``: multiplicative
(lognormal) measurement errors, the usual model of populations, concentrations and
counts, whose scatter grows with their size. A 10% error then weighs the same at 5
as at 500, where additive errors let the largest values dominate the fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
import torch

from sysid.errors import DataError

#: The comparisons :class:`~sysid.Training` knows (its ``errors`` parameter).
ERRORS = ("additive", "log")
#: With log errors a simulated value below this fraction of the state's smallest measured value
#: counts as that value (the log of a non-positive simulation is undefined).
LOG_FLOOR = 1e-3

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def check_positive(values: Sequence[np.ndarray], names: Sequence[Any], owner: str = "Training") -> None:
    """A DataError unless every measured value (NaN = unmeasured) of every state is positive.

    ``values``: one (n_rows, n_states) array per trajectory, physical units.

    Examples
    --------
    >>> import numpy as np
    >>> check_positive([np.array([[1.0, 2.0], [np.nan, 3.0]])], ["hare", "lynx"])
    >>> check_positive([np.array([[1.0, 0.0]])], ["hare", "lynx"])
    Traceback (most recent call last):
    ...
    sysid.errors.DataError: Training: errors='log' compares log(simulated) with log(measured), so every measured \
value must be positive; 'lynx' has 1 value(s) <= 0 (smallest 0). Use errors='additive', or measure the state on a \
scale where it is positive.
    """
    for j, name in enumerate(names):
        column = np.concatenate([np.asarray(v, dtype=float)[:, j] for v in values]) if len(values) else np.zeros(0)
        column = column[~np.isnan(column)]
        bad = column[column <= 0]
        if bad.size:
            raise DataError(
                f"{owner}: errors='log' compares log(simulated) with log(measured), so every measured value must be "
                f"positive; {str(name)!r} has {bad.size} value(s) <= 0 (smallest {bad.min():g}). Use "
                "errors='additive', or measure the state on a scale where it is positive."
            )


def log_floor(values: Sequence[np.ndarray]) -> np.ndarray:
    """Per state, :data:`LOG_FLOOR` times its smallest measured value (physical units, all positive)."""
    stacked = np.concatenate([np.asarray(v, dtype=float) for v in values])
    with np.errstate(all="ignore"):
        low = np.nanmin(np.where(stacked > 0, stacked, np.nan), axis=0)
    return LOG_FLOOR * np.where(np.isfinite(low), low, 1.0)


def compare(
    pred: Array, obs: Array, errors: str, center: Array, spread: Array, floor: np.ndarray | torch.Tensor
) -> Array:
    """Errors of scaled predictions against scaled observations (x = center + spread z).

    ``"additive"``: ``pred - obs`` (scaled units); ``"log"``: ``log(x_pred) - log(x_obs)`` of
    the physical values, predictions below ``floor`` counted as ``floor``. Works on numpy
    arrays and torch tensors alike (the last axis is the state).

    Examples
    --------
    >>> import numpy as np
    >>> one, ten = np.ones(1), np.full(1, 10.0)
    >>> compare(np.array([1.1]), np.array([1.0]), "log", 0 * one, ten, one).round(4).tolist()  # 11 vs 10
    [0.0953]
    """
    if errors == "additive":
        return pred - obs
    if isinstance(pred, torch.Tensor):
        low = torch.as_tensor(floor, dtype=pred.dtype, device=pred.device)
        x_pred = torch.maximum(center + spread * pred, low)
        x_obs = torch.maximum(center + spread * obs, low)
        return torch.log(x_pred) - torch.log(x_obs)
    return np.log(np.maximum(center + spread * pred, floor)) - np.log(np.maximum(center + spread * obs, floor))
