"""Adapters: the only code that knows pandas, xarray and raw numpy layouts.

They turn the caller's data into :class:`~sysid.Trajectories` and predictions back into
the caller's format (see DESIGN.md, "Data flows one way"). Estimators call
:func:`as_trajectories` on whatever they are given and :func:`to_caller_format` on what
they return. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, Literal, overload

import numpy as np
import pandas as pd
import xarray as xr

from sysid.adapters.arrays import from_arrays as from_arrays
from sysid.adapters.arrays import to_arrays as to_arrays
from sysid.adapters.pandas import from_pandas as from_pandas
from sysid.adapters.pandas import to_pandas as to_pandas
from sysid.adapters.xarray import from_xarray as from_xarray
from sysid.adapters.xarray import to_dataarray as to_dataarray
from sysid.adapters.xarray import to_xarray as to_xarray
from sysid.errors import DataError
from sysid.trajectories import LazyTrajectories, Trajectories, register_writer

register_writer("pandas", to_pandas)  # behind Trajectories.to_pandas(): the container never imports us
register_writer("xarray", to_xarray)

__all__ = [
    "as_trajectories",
    "from_arrays",
    "from_pandas",
    "from_xarray",
    "to_arrays",
    "to_caller_format",
    "to_dataarray",
    "to_pandas",
    "to_xarray",
]

_ACCEPTED = (
    "a sysid.Trajectories, a pandas DataFrame, an xarray Dataset or DataArray, a numpy "
    "array (n_times, n_states) with t=, or a list of such arrays with a list of t"
)


# The overloads say what a caller gets: LazyTrajectories only for LazyTrajectories in, or
# lazy=True; in-memory data (a DataFrame read from a file, arrays) always gives Trajectories.
@overload
def as_trajectories(
    X: LazyTrajectories,
    t: None = None,
    u: None = None,
    *,
    time: None = None,
    states: None = None,
    inputs: None = None,
    trajectory: None = None,
    state_names: None = None,
    input_names: None = None,
    interpolate_inputs: bool = False,
    state_dim: None = None,
    lazy: bool = False,
    sort: bool = False,
) -> LazyTrajectories: ...


@overload
def as_trajectories(
    X: Trajectories | pd.DataFrame | xr.Dataset | xr.DataArray | np.ndarray | list[Any] | tuple[Any, ...],
    t: Any = None,
    u: Any = None,
    *,
    time: Hashable | None = None,
    states: Sequence[Hashable] | Hashable | None = None,
    inputs: Sequence[Hashable] | Hashable | None = None,
    trajectory: Hashable | None = None,
    state_names: Sequence[Hashable] | None = None,
    input_names: Sequence[Hashable] | None = None,
    interpolate_inputs: bool = False,
    state_dim: Hashable | None = None,
    lazy: Literal[False] = False,
    sort: bool = False,
) -> Trajectories: ...


@overload
def as_trajectories(
    X: Any,
    t: Any = None,
    u: Any = None,
    *,
    time: Hashable | None = None,
    states: Sequence[Hashable] | Hashable | None = None,
    inputs: Sequence[Hashable] | Hashable | None = None,
    trajectory: Hashable | None = None,
    state_names: Sequence[Hashable] | None = None,
    input_names: Sequence[Hashable] | None = None,
    interpolate_inputs: bool = False,
    state_dim: Hashable | None = None,
    lazy: bool = False,
    sort: bool = False,
) -> Trajectories | LazyTrajectories: ...


def as_trajectories(
    X: Any,
    t: Any = None,
    u: Any = None,
    *,
    time: Hashable | None = None,
    states: Sequence[Hashable] | Hashable | None = None,
    inputs: Sequence[Hashable] | Hashable | None = None,
    trajectory: Hashable | None = None,
    state_names: Sequence[Hashable] | None = None,
    input_names: Sequence[Hashable] | None = None,
    interpolate_inputs: bool = False,
    state_dim: Hashable | None = None,
    lazy: bool = False,
    sort: bool = False,
) -> Trajectories | LazyTrajectories:
    """Whatever the caller passed, as validated Trajectories: the estimators' one entry point.

    Parameters
    ----------
    X : Trajectories, LazyTrajectories, DataFrame, Dataset, DataArray, array or list of arrays
        Trajectories and LazyTrajectories are returned unchanged. A DataFrame goes through
        :func:`from_pandas`, a Dataset or DataArray through :func:`from_xarray` (both with
        ``time``, ``states``, ``inputs``, ``trajectory``, ``interpolate_inputs``, and
        ``state_dim`` for a DataArray). Arrays go through :func:`from_arrays`.
    t, u : arrays, or lists of arrays, optional
        Times and inputs, for numpy ``X`` only.
    time, states, inputs, trajectory : names, optional
        Columns / dimensions / variables, for labelled ``X`` only.
    state_names, input_names : names, optional
        Names of the array columns, for numpy ``X`` only.
    interpolate_inputs : bool, default False
        Fill NaN inputs linearly in time instead of raising.
    state_dim : name, optional
        The state dimension of a DataArray.
    lazy : bool, default False
        For a Dataset or DataArray only: return :class:`~sysid.trajectories.LazyTrajectories`
        read chunk by chunk when needed (see :func:`from_xarray`).
    sort : bool, default False
        Sort each trajectory's rows by time. Without it, times that go backwards within a
        trajectory are an error naming the trajectory and the rows, for every type.

    Returns
    -------
    Trajectories, or LazyTrajectories (``lazy=True``, or ``X`` already lazy)

    Raises
    ------
    DataError
        An unsupported type, arguments that do not apply to it, or bad data.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from sysid.adapters import as_trajectories
    >>> as_trajectories(np.zeros((3, 2)), t=np.arange(3.0))
    Trajectories(n_trajectories=1, states=['x0', 'x1'], inputs=[], n_times=[3], time_kind='float')
    >>> df = pd.DataFrame({"t": [0.0, 1.0], "x": [1.0, 2.0]})
    >>> as_trajectories(df).state_names
    ('x',)
    >>> as_trajectories({"x": [1.0]})  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    sysid.errors.DataError: cannot use data of type dict; expected a sysid.Trajectories, a pandas DataFrame,
    an xarray Dataset or DataArray, a numpy array (n_times, n_states) with t=, or a list of such arrays
    with a list of t.
    """
    labelled = {"time": time, "states": states, "inputs": inputs, "trajectory": trajectory,
                "state_dim": state_dim}
    numeric = {"t": t, "u": u, "state_names": state_names, "input_names": input_names}
    if isinstance(X, Trajectories | LazyTrajectories):
        _refuse(X, {**labelled, **numeric}, "they are already built into the Trajectories")
        return X
    if lazy and not isinstance(X, xr.Dataset | xr.DataArray):
        raise DataError(
            f"lazy=True reads an xarray Dataset or DataArray (e.g. Dask-backed) chunk by chunk; a "
            f"{type(X).__name__} is already in memory, so leave lazy= out."
        )
    if isinstance(X, pd.DataFrame):
        _refuse(X, {**numeric, "state_dim": state_dim}, "name the columns with time=, states=, inputs=")
        return from_pandas(X, time, states, inputs, trajectory, interpolate_inputs=interpolate_inputs, sort=sort)
    if isinstance(X, xr.Dataset | xr.DataArray):
        _refuse(X, numeric, "name the dimensions and variables with time=, states=, inputs=")
        return from_xarray(X, time, states, inputs, trajectory, state_dim=state_dim,
                           interpolate_inputs=interpolate_inputs, lazy=lazy, sort=sort)
    if isinstance(X, np.ndarray | list | tuple):
        _refuse(X, labelled, "pass t=, u=, state_names=, input_names= for arrays")
        return from_arrays(X, t, u, state_names=state_names, input_names=input_names,
                           interpolate_inputs=interpolate_inputs, sort=sort)
    raise DataError(f"cannot use data of type {type(X).__name__}; expected {_ACCEPTED}.")


def _refuse(X: Any, arguments: dict[str, Any], advice: str) -> None:
    given = [name for name, value in arguments.items() if value is not None]
    if given:
        raise DataError(
            f"{', '.join(n + '=' for n in given)} do(es) not apply to a {type(X).__name__}; {advice}."
        )


def to_caller_format(pred: Trajectories, like: Any) -> Any:
    """Put predicted trajectories back into the type and layout of ``like``.

    Parameters
    ----------
    pred : Trajectories
        Predictions, normally ``data.with_states(...)`` of data read from ``like`` (so its
        ``source`` remembers the caller's labels).
    like : object
        What the caller passed to ``predict``.

    Returns
    -------
    Trajectories
        if ``like`` is Trajectories;
    pandas.DataFrame
        the layout of :func:`to_pandas`: same columns, labels and index dtype; inputs only
        if ``like`` had those columns;
    xarray.Dataset / xarray.DataArray
        via :func:`to_xarray` / :func:`to_dataarray`, inputs only if ``like`` had them;
    numpy.ndarray
        (n_times, n_states) for one trajectory, (n_trajectories, n_times, n_states) if
        ``like`` was 3-D and the lengths agree, else a list;
    list of numpy.ndarray
        if ``like`` was a list or tuple.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from sysid.adapters import as_trajectories, to_caller_format
    >>> df = pd.DataFrame({"run": [7, 7, 8, 8], "t": [0.0, 1.0, 0.0, 1.0], "x": [1.0, 2.0, 3.0, 4.0]})
    >>> data = as_trajectories(df, trajectory="run")
    >>> pred = data.with_states([tr.y * 10 for tr in data])
    >>> to_caller_format(pred, df)
       run    t     x
    0    7  0.0  10.0
    1    7  1.0  20.0
    2    8  0.0  30.0
    3    8  1.0  40.0
    >>> to_caller_format(pred, [np.zeros((2, 1))] * 2)[1].ravel().tolist()
    [30.0, 40.0]
    """
    if not isinstance(pred, Trajectories):
        raise DataError(f"to_caller_format expects Trajectories as pred, got {type(pred).__name__}.")
    if isinstance(like, Trajectories):
        return pred
    if isinstance(like, pd.DataFrame):
        frame = to_pandas(pred)
        dropped = [n for n in pred.input_names if n not in like.columns]
        return frame.drop(columns=dropped)
    if isinstance(like, xr.Dataset):
        dataset = to_xarray(pred)
        return dataset.drop_vars([n for n in pred.input_names if n not in like.data_vars])
    if isinstance(like, xr.DataArray):
        return to_dataarray(pred, like)
    if isinstance(like, list | tuple):
        return to_arrays(pred)
    if isinstance(like, np.ndarray):
        return _like_array(to_arrays(pred), like)
    raise DataError(
        f"cannot return predictions as {type(like).__name__}; expected the type of {_ACCEPTED}."
    )


def _like_array(states: list[np.ndarray], like: np.ndarray) -> np.ndarray | list[np.ndarray]:
    if like.ndim == 3 and len({s.shape for s in states}) == 1:
        return np.stack(states)
    if len(states) > 1:
        return states
    if like.ndim == 1 and states[0].shape[1] == 1:
        return states[0][:, 0]
    return states[0]
