"""Run several estimators on the same data and tabulate how well each does.

:func:`compare` fits a fresh clone of every estimator (in parallel with joblib if
asked), scores its simulated trajectories on the training data, on held-out
trajectories and on the future of each training trajectory, checks identified
equations against a known truth, and returns one tidy DataFrame. An estimator that
fails gets rows carrying its error message; it never stops the others.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed, parallel_config
from sklearn.base import clone

from sysid import metrics
from sysid.adapters import as_trajectories
from sysid.errors import ConfigError, DataError
from sysid.trajectories import Trajectories

__all__ = ["COLUMNS", "SPLITS", "compare", "initial_states"]

COLUMNS = ["estimator", "split", "fit_seconds", "n_function_evals", "rmse", "nrmse", "r2",
           "coefficient_error", "error"]
"""Columns of the table :func:`compare` returns, in order."""

SPLITS = ("test", "extrapolation", "train")
"""Splits in the order :func:`compare` lists them: held-out data first, in-sample last."""


class _Models(dict):
    """The fitted models in ``table.attrs``: shared, never deep-copied by pandas operations."""

    def __deepcopy__(self, memo: dict[int, Any]) -> _Models:
        return self


def _names(estimators: Sequence[Any]) -> list[str]:
    """Readable, unique names: the class name; on a clash the short repr, else a number."""
    base = [type(e).__name__ for e in estimators]
    out = []
    for i, (name, est) in enumerate(zip(base, estimators)):
        if base.count(name) == 1:
            out.append(name)
            continue
        text = " ".join(repr(est).split())
        unique = sum(" ".join(repr(o).split()) == text for o in estimators) == 1
        out.append(text if unique and len(text) <= 60 else f"{name} #{base[:i + 1].count(name)}")
    return out


def _truth_parts(truth: Any) -> tuple[dict[str, dict[str, float]] | None, dict[str, float] | None]:
    """(coefficients, params) from a SystemTruth, a coefficient dict or a parameter dict."""
    if truth is None:
        return None, None
    coefficients = getattr(truth, "coefficients", None)
    params = getattr(truth, "params", None)
    if coefficients is not None or params is not None:
        return coefficients, params
    if isinstance(truth, Mapping) and truth:
        if all(isinstance(v, Mapping) for v in truth.values()):
            return {str(k): dict(v) for k, v in truth.items()}, None
        if all(isinstance(v, int | float | np.number) and not isinstance(v, bool) for v in truth.values()):
            return None, {str(k): float(v) for k, v in truth.items()}
    raise ConfigError(
        "truth must be a sysid.datasets.SystemTruth, a coefficient dict {state: {term: value}} or a parameter "
        f"dict {{name: value}}; got {type(truth).__name__}."
    )


def _equation_error(model: Any, coefficients: Any, params: Any) -> float:
    if coefficients is not None and hasattr(model, "coefficients_"):
        return metrics.coefficient_error(model.coefficients_, coefficients).relative_error
    if params is not None and hasattr(model, "params_"):
        return metrics.parameter_error(model.params_, params)
    return float("nan")


def _describe(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


def _scores(data: Trajectories, predictions: list[np.ndarray]) -> dict[str, float]:
    # uniform_average (the default) gives one float per metric; float() says so to mypy.
    return {"rmse": float(metrics.rmse(data, predictions)), "nrmse": float(metrics.nrmse(data, predictions)),
            "r2": float(metrics.r2(data, predictions))}


def _failure_note(model: Any) -> str | None:
    failed = list(getattr(model, "simulation_failed_", []) or [])
    return f"simulation failed for trajectories {failed}" if failed else None


def _row(name: str, split: str, seconds: float, model: Any, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(COLUMNS, np.nan)
    row.update(estimator=name, split=split, fit_seconds=seconds, error=None)
    evals = getattr(model, "n_function_evals_", None) if model is not None else None
    row["n_function_evals"] = float(evals) if isinstance(evals, int | float | np.number) else np.nan
    row.update(values)
    return row


def _predict(model: Any, data: Trajectories, x0: np.ndarray | None = None) -> list[np.ndarray]:
    predicted = model.predict(data, x0=x0)
    return [np.asarray(tr.y, dtype=float) for tr in predicted]


def initial_states(model: Any, data: Any) -> np.ndarray:
    """Initial states (n_trajectories, n_states) to simulate ``data`` from with a fitted ``model``.

    A trajectory the model was fitted on (matched by name in ``trajectory_names_``)
    starts from its fitted ``x0_``, which only the fitted part of the data placed; any
    other starts where ``model.predict`` starts it (estimated from its first
    observations, or its first observation for models without learned starts). This is
    how held-out tails are simulated: from the start, never re-estimated from the tail.
    """
    data = data if isinstance(data, Trajectories) else as_trajectories(data)
    names = list(getattr(model, "trajectory_names_", None) or [])
    fitted = getattr(model, "x0_", None)
    rows: list[np.ndarray | None] = [None] * len(data)
    if fitted is not None:
        for i, tr in enumerate(data):
            if tr.name in names:
                rows[i] = np.asarray(fitted, dtype=float)[names.index(tr.name), : data.n_states]
    missing = [i for i, row in enumerate(rows) if row is None]
    if missing:
        for i, tr in zip(missing, model.predict(data.subset([data[i] for i in missing]))):
            rows[i] = np.asarray(tr.y[0], dtype=float)
    return np.array(rows, dtype=float)


def _run_full(name: str, estimator: Any, train: Trajectories, test: Trajectories | None,
              truth: tuple[Any, Any]) -> tuple[list[dict[str, Any]], Any]:
    """Fit on all of ``train``; rows for the train and test splits."""
    splits = [("train", train)] + ([("test", test)] if test is not None else [])
    start = time.perf_counter()
    try:
        model = clone(estimator).fit(train)
    except Exception as exc:  # noqa: BLE001 - one failing estimator must not stop the comparison
        seconds = time.perf_counter() - start
        return [_row(name, split, seconds, None, error=_describe(exc)) for split, _ in splits], None
    seconds = time.perf_counter() - start
    try:
        equation = _equation_error(model, *truth)
    except Exception:  # noqa: BLE001 - e.g. states named differently from the truth
        equation = np.nan
    rows = []
    for split, data in splits:
        try:
            values = _scores(data, _predict(model, data))
            rows.append(_row(name, split, seconds, model, coefficient_error=equation, error=_failure_note(model),
                             **values))
        except Exception as exc:  # noqa: BLE001
            rows.append(_row(name, split, seconds, model, coefficient_error=equation, error=_describe(exc)))
    return rows, model


def _run_extrapolation(name: str, estimator: Any, train: Trajectories, fraction: float,
                       truth: tuple[Any, Any]) -> tuple[list[dict[str, Any]], Any]:
    """Fit on the first ``fraction`` of each training trajectory; score the tails."""
    past, future = train.split(time_fraction=fraction)
    start = time.perf_counter()
    try:
        model = clone(estimator).fit(past)
    except Exception as exc:  # noqa: BLE001
        return [_row(name, "extrapolation", time.perf_counter() - start, None, error=_describe(exc))], None
    seconds = time.perf_counter() - start
    try:
        equation = _equation_error(model, *truth)
    except Exception:  # noqa: BLE001
        equation = np.nan
    try:
        whole = _predict(model, train, initial_states(model, train))
        tails = [p[tr.y.shape[0] - fut.n_times:] for p, tr, fut in zip(whole, train, future)]
        values = _scores(future, tails)
        return [_row(name, "extrapolation", seconds, model, coefficient_error=equation,
                     error=_failure_note(model), **values)], model
    except Exception as exc:  # noqa: BLE001
        return [_row(name, "extrapolation", seconds, model, coefficient_error=equation, error=_describe(exc))], model


def compare(
    estimators: Sequence[Any] | Mapping[str, Any],
    train: Any,
    test: Any = None,
    truth: Any = None,
    time_fraction: float | None = None,
    n_jobs: int | None = None,
    client: Any = None,
) -> pd.DataFrame:
    """Fit every estimator on the same data and tabulate trajectory and equation errors.

    Parameters
    ----------
    estimators : list of estimators, or dict name -> estimator
        Each is cloned (:func:`sklearn.base.clone`) before fitting; yours stay unfitted.
        A list gets readable names: the class name, disambiguated when repeated.
    train : Trajectories (or data :func:`sysid.as_trajectories` reads without options)
    test : Trajectories, optional
        Held-out trajectories, scored by simulating each from its estimated start.
    truth : SystemTruth, dict {state: {term: value}} or dict {param: value}, optional
        Scores identified equations: :func:`sysid.metrics.coefficient_error` for
        models with ``coefficients_``, :func:`sysid.metrics.parameter_error` for
        models with ``params_``.
    time_fraction : float in (0, 1), optional
        Also fit a clone on the first ``time_fraction`` of every training trajectory
        and score the rest ("extrapolation"), simulating each trajectory from its
        start (:func:`initial_states`: the fitted ``x0_`` when the model has them).
    n_jobs : int, optional
        Parallel jobs (joblib); None runs serially, unless a ``joblib.parallel_config``
        (e.g. ``backend="dask"``) around the call says otherwise. Results do not depend on it.
    client : dask.distributed.Client, optional
        Run the fits on this Dask cluster (joblib's ``"dask"`` backend), all of its
        workers when ``n_jobs`` is None. The same as calling inside
        ``joblib.parallel_config(backend="dask")``; see the scaling guide.

    Returns
    -------
    pandas.DataFrame
        One row per estimator (in the order given) and split, held-out splits first:
        "test", "extrapolation", then the in-sample "train" (:data:`SPLITS`), with
        columns :data:`COLUMNS`: ``fit_seconds``, ``n_function_evals`` (NaN when the
        model does not count them), ``rmse``, ``nrmse``, ``r2`` (see
        :mod:`sysid.metrics`), ``coefficient_error`` (NaN without truth) and ``error``
        (None, or the exception message when fitting/predicting failed, or which
        trajectories' simulations failed). ``table.attrs["models"]`` maps each name to
        its fitted model (None if fitting failed); ``table.attrs["extrapolation_models"]``
        likewise for the ``time_fraction`` fits, with ``attrs["time_fraction"]`` and
        ``attrs["extrapolation_trajectories"]`` (the names of the trajectories they split).

    Raises
    ------
    ConfigError
        For an empty estimator list or an unusable truth.

    Examples
    --------
    >>> from sysid.datasets import simulate, truth
    >>> from sysid import SINDy
    >>> data = simulate("lotka_volterra", n_trajectories=3, noise=0.0, irregular=False, n_samples=200)
    >>> train, test = data.split(test_trajectories=["run2"])
    >>> import warnings
    >>> with warnings.catch_warnings():  # pysindy warns that threshold 5 removes every term
    ...     warnings.simplefilter("ignore")
    ...     table = compare([SINDy(), SINDy(threshold=5.0)], train, test, truth=truth("lotka_volterra"))
    >>> table[["estimator", "split"]].values.tolist()
    [['SINDy()', 'test'], ['SINDy()', 'train'], ['SINDy(threshold=5.0)', 'test'], ['SINDy(threshold=5.0)', 'train']]
    >>> bool(table.loc[0, "r2"] > 0.99), bool(table.loc[0, "coefficient_error"] < 0.01)
    (True, True)
    """
    if isinstance(estimators, Mapping):
        names = [str(k) for k in estimators]
        models = list(estimators.values())
    else:
        models = list(estimators)
        names = _names(models)
    if not models:
        raise ConfigError("compare needs at least one estimator.")
    for name, model in zip(names, models):
        if isinstance(model, type) or not all(hasattr(model, a) for a in ("fit", "predict", "get_params")):
            raise ConfigError(
                f"estimator {name!r} is {model!r}, not an estimator instance with fit, predict and get_params; "
                "pass estimators such as sysid.SINDy() (an instance, not the class)."
            )
    train = train if isinstance(train, Trajectories) else as_trajectories(train)
    if test is not None and not isinstance(test, Trajectories):
        test = as_trajectories(test)
    if test is not None and (list(test.state_names) != list(train.state_names)
                             or list(test.input_names) != list(train.input_names)):
        raise DataError(
            f"test has states {list(test.state_names)} and inputs {list(test.input_names)}, train has "
            f"{list(train.state_names)} and {list(train.input_names)}; they must match."
        )
    if time_fraction is not None:
        train.split(time_fraction=time_fraction)  # validate before any work
    parts = _truth_parts(truth)
    tasks: list[Any] = [delayed(_run_full)(name, est, train, test, parts) for name, est in zip(names, models)]
    if time_fraction is not None:
        tasks += [delayed(_run_extrapolation)(name, est, train, float(time_fraction), parts)
                  for name, est in zip(names, models)]
    backend = nullcontext() if client is None else parallel_config(
        backend="dask", client=client, n_jobs=-1 if n_jobs is None else n_jobs)
    with backend:
        results = Parallel(n_jobs=n_jobs)(tasks)
    full, extra = results[: len(models)], results[len(models):]
    rows: list[dict[str, Any]] = []
    for i in range(len(models)):
        mine = list(full[i][0]) + (list(extra[i][0]) if extra else [])
        rows.extend(sorted(mine, key=lambda row: SPLITS.index(row["split"])))
    table = pd.DataFrame(rows, columns=COLUMNS)
    table.attrs["models"] = _Models({name: result[1] for name, result in zip(names, full)})
    if extra:
        table.attrs["extrapolation_models"] = _Models({name: result[1] for name, result in zip(names, extra)})
        table.attrs["time_fraction"] = float(time_fraction)  # type: ignore[arg-type]
        table.attrs["extrapolation_trajectories"] = list(train.names)
    return table
