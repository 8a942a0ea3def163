"""Scores of predicted trajectories and of identified equations against the truth.

Trajectory metrics (:func:`rmse`, :func:`nrmse`, :func:`r2`) compare predictions with
measurements over the **observed** entries only (NaN in the data means "not measured"),
state by state, then average the states with equal weight, as scikit-learn's
``multioutput="uniform_average"``. A prediction that is NaN where a measurement exists
(a failed simulation) makes that state's score NaN: failures are never averaged away
(:func:`r2` can score them as a very bad finite number instead, as ``score`` does).

Equation metrics compare identified coefficients (:func:`coefficient_error`) or
parameters (:func:`parameter_error`) with known values, e.g. from
:func:`sysid.datasets.truth`.

Examples
--------
>>> import numpy as np
>>> from sysid import Trajectories
>>> from sysid.metrics import rmse, nrmse, r2
>>> data = Trajectories.from_arrays(np.arange(4.0), np.array([[0.0], [1.0], [2.0], [np.nan]]))
>>> pred = [np.array([[0.0], [1.0], [3.0], [7.0]])]
>>> round(rmse(data, pred), 4), round(nrmse(data, pred), 4), r2(data, pred)
(0.5774, 0.7071, 0.5)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd

from sysid.adapters import as_trajectories
from sysid.errors import DataError
from sysid.trajectories import Trajectories

__all__ = [
    "FAILED_ERROR",
    "CoefficientError",
    "canonical_term",
    "coefficient_error",
    "nrmse",
    "parameter_error",
    "r2",
    "rmse",
]

Multioutput = Literal["uniform_average", "raw_values"]


def canonical_term(term: str) -> str:
    """A library term with its factors in sorted order, so that equal terms compare equal.

    pysindy writes ``"prey predator"``; a hand-written truth may say ``"predator prey"``.

    Examples
    --------
    >>> canonical_term("v x^2"), canonical_term("x^2 v"), canonical_term(" 1 ")
    ('v x^2', 'v x^2', '1')
    """
    factors = str(term).split()
    return " ".join(sorted(factors)) if factors else str(term).strip()


def _aligned(data: Any, predictions: Any, data_options: dict[str, Any]) -> tuple[Trajectories, np.ndarray, np.ndarray]:
    """(data, observations, predictions) stacked over trajectories, checked to line up."""
    data = as_trajectories(data, **data_options) if not isinstance(data, Trajectories) else data
    if isinstance(predictions, Trajectories):
        arrays = [tr.y for tr in predictions]
    elif isinstance(predictions, np.ndarray):
        arrays = list(predictions) if predictions.ndim == 3 else [predictions]
    elif isinstance(predictions, list | tuple):
        arrays = [np.asarray(p, dtype=float) for p in predictions]
    else:
        arrays = [tr.y for tr in as_trajectories(predictions, **data_options)]
    if len(arrays) != len(data):
        raise DataError(
            f"got predictions for {len(arrays)} trajectories but the data has {len(data)}; pass one "
            "array (n_times, n_states) per trajectory, in the data's order."
        )
    for tr, pred in zip(data, arrays):
        pred = np.asarray(pred, dtype=float)
        if pred.ndim == 1 and data.n_states == 1:
            pred = pred[:, None]
        if pred.shape != tr.y.shape:
            raise DataError(
                f"trajectory {tr.name!r}: predictions have shape {pred.shape} but the data has "
                f"{tr.y.shape} (n_times, n_states) for states {list(data.state_names)}."
            )
    y = np.concatenate([tr.y for tr in data])
    p = np.concatenate([np.asarray(a, dtype=float).reshape(tr.y.shape) for tr, a in zip(data, arrays)])
    return data, y, p


#: ``r2(..., failed="penalize")``: an entry a failed simulation did not reach counts as an error of this
#: many times the state's scale. SINDy and ClassicalODE stop a simulation at 1000 times that scale
#: (``DIVERGENCE_FACTOR``), so a failure always scores below any prediction they return.
FAILED_ERROR = 1e4


def _per_state(y: np.ndarray, p: np.ndarray, kind: str, failed: str = "nan") -> np.ndarray:
    out = np.full(y.shape[1], np.nan)
    for j in range(y.shape[1]):
        seen = ~np.isnan(y[:, j])
        if not seen.any():
            continue
        obs, pred = y[seen, j], p[seen, j]
        if kind == "r2":
            out[j] = _r2_one_state(obs, pred, failed)
            continue
        if not np.all(np.isfinite(pred)):
            continue  # a failed simulation: the score is NaN
        sq = float(np.mean((pred - obs) ** 2))
        if kind == "rmse":
            out[j] = np.sqrt(sq)
        else:
            std = float(np.std(obs))
            out[j] = np.sqrt(sq) / std if std > 0 else np.nan
    return out


def _r2_one_state(obs: np.ndarray, pred: np.ndarray, failed: str) -> float:
    """R^2 of one state's observed entries; NaN with fewer than two (undefined)."""
    if obs.size < 2:
        return np.nan
    with np.errstate(over="ignore", invalid="ignore"):
        error = pred - obs
        scale = max(float(np.max(np.abs(obs))), float(np.ptp(obs)))
        scale = scale if np.isfinite(scale) and scale > 0 else 1.0
        capped = np.all(np.isfinite(error)) and np.all(np.abs(error) <= FAILED_ERROR * scale)
        if failed == "penalize" and not capped:
            # In units of the state's scale (no overflow whatever the data's magnitude); an error is
            # capped at FAILED_ERROR scales and an entry not reached (NaN/inf) counts that much.
            error = np.clip(error / scale, -FAILED_ERROR, FAILED_ERROR)
            error = np.where(np.isnan(error), FAILED_ERROR, error)
            resid = float(np.sum(error**2))
            total = float(np.sum(((obs - obs.mean()) / scale) ** 2))
        elif not np.all(np.isfinite(pred)):
            return np.nan  # a failed simulation: the score is NaN
        else:  # in units of the state's scale too: squares of data of magnitude 1e-300 underflow to 0
            resid = float(np.sum((error / scale) ** 2))
            total = float(np.sum(((obs - obs.mean()) / scale) ** 2))
    return 1.0 - resid / total if total > 0 else (1.0 if resid == 0 else 0.0)


def _reduce(values: np.ndarray, multioutput: str, defined: np.ndarray | None = None) -> float | np.ndarray:
    if multioutput == "raw_values":
        return values
    if multioutput != "uniform_average":
        raise DataError(f"multioutput must be 'uniform_average' or 'raw_values', got {multioutput!r}.")
    if defined is not None:
        values = values[defined]
    return float(np.mean(values)) if values.size else float("nan")


def rmse(
    data: Any, predictions: Any, multioutput: Multioutput = "uniform_average", **data_options: Any
) -> float | np.ndarray:
    """Root mean squared error per state over observed entries, averaged over states.

    Parameters
    ----------
    data : Trajectories (or data ``sysid.as_trajectories`` reads with ``data_options``)
        The measurements; NaN entries are skipped.
    predictions : Trajectories, list of arrays (n_times_i, n_states), or an array
        Predicted states at the data's times, one array per trajectory.
    multioutput : {"uniform_average", "raw_values"}
        Average the states, or return one value per state.
    **data_options
        ``time=``, ``trajectory=``... when ``data`` is a DataFrame or Dataset.

    Returns
    -------
    float, or array (n_states,) for ``"raw_values"``.

    Examples
    --------
    >>> import numpy as np
    >>> from sysid import Trajectories
    >>> data = Trajectories.from_arrays(np.arange(3.0), np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]]))
    >>> rmse(data, [np.array([[1.0, 1.0], [2.0, 1.0], [3.0, 1.0]])], multioutput="raw_values").tolist()
    [0.0, 1.0]
    """
    _, y, p = _aligned(data, predictions, data_options)
    return _reduce(_per_state(y, p, "rmse"), multioutput)


def nrmse(
    data: Any, predictions: Any, multioutput: Multioutput = "uniform_average", **data_options: Any
) -> float | np.ndarray:
    """RMSE divided by each state's standard deviation over its observed entries, averaged over states.

    1 means "as far off as predicting the state's mean"; 0 is perfect. A state with no
    variation gets NaN. Parameters as :func:`rmse`.

    Examples
    --------
    >>> import numpy as np
    >>> from sysid import Trajectories
    >>> data = Trajectories.from_arrays(np.arange(3.0), np.array([[1.0], [2.0], [3.0]]))
    >>> round(nrmse(data, [np.full((3, 1), 2.0)]), 6)  # the mean: NRMSE 1
    1.0
    """
    _, y, p = _aligned(data, predictions, data_options)
    return _reduce(_per_state(y, p, "nrmse"), multioutput)


def r2(
    data: Any,
    predictions: Any,
    multioutput: Multioutput = "uniform_average",
    *,
    failed: str = "nan",
    **data_options: Any,
) -> float | np.ndarray:
    """Coefficient of determination per state over observed entries, averaged over states.

    For each state, ``1 - SS_res / SS_tot`` over every observed entry of every trajectory
    (``SS_tot`` about that state's mean), then the mean over states, as scikit-learn's
    ``r2_score(..., multioutput="uniform_average")``. A state observed fewer than twice has
    no R^2 (NaN in ``"raw_values"``) and is left out of the average. This is the number the
    estimators' ``score`` returns (with ``failed="penalize"``). Other parameters as :func:`rmse`.

    Parameters
    ----------
    failed : {"nan", "penalize"}, default "nan"
        What a prediction that is NaN or infinite at an observed entry (a failed
        simulation) scores. ``"nan"``: that state's R^2 is NaN, and so is the average, so a
        failure is never averaged away (reports, :func:`sysid.compare`). ``"penalize"``:
        each such entry counts as an error of :data:`FAILED_ERROR` (10^4) times the state's
        scale (the larger of its largest magnitude and its range), and no error counts more:
        a very bad but finite score, worse for an earlier failure, so that model selection
        (``GridSearchCV``, which averages scores over folds) still ranks the candidates.

    Examples
    --------
    >>> import numpy as np
    >>> from sysid import Trajectories
    >>> data = Trajectories.from_arrays(np.arange(3.0), np.array([[1.0], [2.0], [3.0]]))
    >>> r2(data, [np.array([[1.0], [2.0], [3.0]])])
    1.0
    >>> failed = [np.array([[1.0], [2.0], [np.nan]])]
    >>> r2(data, failed), r2(data, failed, failed="penalize") < -1e6
    (nan, True)
    """
    if failed not in ("nan", "penalize"):
        raise DataError(f"failed must be 'nan' or 'penalize', got {failed!r}.")
    _, y, p = _aligned(data, predictions, data_options)
    counts = np.sum(~np.isnan(y), axis=0)
    return _reduce(_per_state(y, p, "r2", failed), multioutput, defined=counts >= 2)


class CoefficientError(NamedTuple):
    """How far identified coefficients are from the true ones.

    Attributes
    ----------
    relative_error : float
        ``||C_est - C_true||_F / ||C_true||_F`` over every (term, state) present in
        either table; a term missing from one side counts as 0 there.
    n_spurious : int
        Terms absent from the truth whose estimated coefficient exceeds the threshold.
    n_missed : int
        True terms whose estimated coefficient is at most the threshold (or absent).
    n_true_terms : int
        Nonzero true coefficients.
    """

    relative_error: float
    n_spurious: int
    n_missed: int
    n_true_terms: int


def coefficient_error(
    estimated: pd.DataFrame,
    truth: Mapping[str, Mapping[str, float]],
    threshold: float = 0.05,
) -> CoefficientError:
    """Compare an identified coefficient table with the true equations.

    Parameters
    ----------
    estimated : pandas.DataFrame
        Terms (index) by states (columns), e.g. ``SINDy().fit(...).coefficients_``.
    truth : dict {state: {term: coefficient}}
        E.g. ``sysid.datasets.truth("lotka_volterra").coefficients``. Terms match
        whatever the order of their factors (``"prey predator"`` = ``"predator prey"``).
    threshold : float, default 0.05
        Magnitude above which an estimated coefficient counts as an active term.

    Returns
    -------
    CoefficientError

    Raises
    ------
    DataError
        If the states of the table and of the truth differ.

    Examples
    --------
    >>> import pandas as pd
    >>> est = pd.DataFrame({"x": [0.0, -1.1, 0.2]}, index=["1", "x", "x^2"])
    >>> result = coefficient_error(est, {"x": {"x": -1.0}})
    >>> round(result.relative_error, 4), result.n_spurious, result.n_missed
    (0.2236, 1, 0)
    """
    if not isinstance(estimated, pd.DataFrame):
        raise DataError(
            f"estimated must be a DataFrame of coefficients (terms x states), got {type(estimated).__name__}."
        )
    if not isinstance(truth, Mapping) or not all(isinstance(v, Mapping) for v in truth.values()):
        raise DataError(
            "truth must be a dict {state: {term: coefficient}}, e.g. sysid.datasets.truth(name).coefficients."
        )
    states = [str(c) for c in estimated.columns]
    if sorted(states) != sorted(str(s) for s in truth):
        raise DataError(
            f"the coefficient table has states {states} but the truth has {list(truth)}; they must be the same."
        )
    est: dict[tuple[str, str], float] = {}
    for term, row in estimated.iterrows():
        for state, value in row.items():
            key = (canonical_term(str(term)), str(state))
            est[key] = est.get(key, 0.0) + float(value)
    true: dict[tuple[str, str], float] = {}
    for state, terms in truth.items():
        for term, value in terms.items():
            true[(canonical_term(term), str(state))] = float(value)
    keys = sorted(set(est) | set(true))
    e = np.array([est.get(k, 0.0) for k in keys])
    c = np.array([true.get(k, 0.0) for k in keys])
    norm = float(np.linalg.norm(c))
    relative = float(np.linalg.norm(e - c) / norm) if norm > 0 else float(np.linalg.norm(e))
    active = np.abs(e) > threshold
    nonzero = c != 0
    return CoefficientError(
        relative_error=relative,
        n_spurious=int(np.count_nonzero(active & ~nonzero)),
        n_missed=int(np.count_nonzero(~active & nonzero)),
        n_true_terms=int(np.count_nonzero(nonzero)),
    )


def parameter_error(estimated: Mapping[str, float], truth: Mapping[str, float]) -> float:
    """Relative L2 error of named parameters: ``||p_est - p_true|| / ||p_true||`` over the truth's names.

    Parameters
    ----------
    estimated : dict name -> value, e.g. ``ClassicalODE(...).fit(...).params_``
    truth : dict name -> value, e.g. ``sysid.datasets.truth("lotka_volterra").params``

    Raises
    ------
    DataError
        If a true parameter is missing from ``estimated``.

    Examples
    --------
    >>> round(parameter_error({"a": 1.1, "b": 2.0}, {"a": 1.0, "b": 2.0}), 4)
    0.0447
    """
    missing = [name for name in truth if name not in estimated]
    if missing:
        raise DataError(
            f"the estimated parameters {sorted(estimated)} lack the true parameter(s) {missing}; "
            "name the model's parameters as in the truth."
        )
    names: Sequence[str] = list(truth)
    e = np.array([float(estimated[n]) for n in names])
    c = np.array([float(truth[n]) for n in names])
    norm = float(np.linalg.norm(c))
    return float(np.linalg.norm(e - c) / norm) if norm > 0 else float(np.linalg.norm(e))
