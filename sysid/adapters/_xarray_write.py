"""Writing :class:`~sysid.Trajectories` as xarray: predictions back in the caller's Dataset or DataArray form."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from sysid.adapters._common import caller_times
from sysid.errors import DataError
from sysid.trajectories import Trajectories


@dataclass(frozen=True)
class _OutputDims:
    time: Hashable
    trajectory: Hashable | None
    order: tuple[Hashable, ...]


def to_xarray(data: Trajectories) -> xr.Dataset:
    """An xarray Dataset of ``data``: one variable per state and input, NaN-padded.

    The dims are ``(trajectory, time)`` over the union of all trajectories' times when
    there is more than one trajectory or the source had a trajectory dimension (or
    column), else ``(time,)``. Dimension names, dims order, coordinate dtypes, variable
    order, variable and dataset attributes come from the source when it was read by
    :func:`from_xarray` (or :func:`~sysid.adapters.from_pandas`: its column names become
    the dims). Datetimes with different per-trajectory origins share one axis of absolute
    times; time-zone aware times are written in UTC (xarray holds no time zone).

    Parameters
    ----------
    data : Trajectories

    Returns
    -------
    xarray.Dataset
        A Dataset even when the source was a DataArray (see :func:`to_dataarray`).

    Examples
    --------
    >>> import numpy as np
    >>> from sysid import Trajectories
    >>> from sysid.adapters import to_xarray
    >>> data = Trajectories.from_arrays([np.array([0.0, 1.0]), np.array([0.0, 2.0])],
    ...                                 [np.ones((2, 1)), np.zeros((2, 1))], names=["a", "b"])
    >>> ds = to_xarray(data)
    >>> dict(ds.sizes), ds["time"].values.tolist()
    ({'trajectory': 2, 'time': 3}, [0.0, 1.0, 2.0])
    >>> ds["x0"].values.tolist()
    [[1.0, 1.0, nan], [0.0, nan, 0.0]]
    """
    dims = _output_dims(data)
    union, positions = _union_times(data)
    variables = {
        name: _padded_variable(data, name, union.size, positions, dims)
        for name in _variable_order(data)
    }
    coords = {dims.time: xr.Variable(dims.time, union, copy.deepcopy(data.source.get("time_attrs", {})))}
    if dims.trajectory is not None and data.source.get("trajectory_coord", True):
        coords[dims.trajectory] = xr.Variable(
            dims.trajectory,
            _label_values(data.names, data.source.get("trajectory_dtype")),
            copy.deepcopy(data.source.get("trajectory_attrs", {})),
        )
    return xr.Dataset(variables, coords=coords, attrs=copy.deepcopy(dict(data.attrs)))


def _output_dims(data: Trajectories) -> _OutputDims:
    source = data.source
    time = source.get("time")
    if time is None:
        time = "time"
    trajectory = source.get("trajectory")
    if trajectory is None and len(data) > 1:
        trajectory = "trajectory"
    clash = [d for d in (time, trajectory) if d in (*data.state_names, *data.input_names)]
    if clash or time == trajectory:
        raise DataError(
            f"cannot write a Dataset: {(clash or [time])[0]!r} would be both a dimension and a "
            "variable (or two dimensions); rename the states, inputs or source dims."
        )
    if trajectory is None:
        return _OutputDims(time, None, (time,))
    order = tuple(source.get("dims", ()))
    if set(order) != {time, trajectory}:
        order = (trajectory, time)
    return _OutputDims(time, trajectory, order)


def _union_times(data: Trajectories) -> tuple[np.ndarray, list[np.ndarray]]:
    dtype = data.source.get("time_dtype")
    dtype = dtype if isinstance(dtype, np.dtype) else None
    per_trajectory = [caller_times(tr, data.time_kind, dtype) for tr in data]
    union = np.unique(np.concatenate(per_trajectory))
    return union, [np.searchsorted(union, times) for times in per_trajectory]


def _variable_order(data: Trajectories) -> list[Hashable]:
    names = [*data.state_names, *data.input_names]
    original = [n for n in data.source.get("variables", []) if n in names]
    return original + [n for n in names if n not in original]


def _padded_variable(
    data: Trajectories, name: Hashable, n_union: int, positions: list[np.ndarray], dims: _OutputDims
) -> xr.Variable:
    is_state = name in data.state_names
    column = list(data.state_names if is_state else data.input_names).index(name)
    block = np.full((len(data), n_union), np.nan)
    for row, (traj, where) in enumerate(zip(data, positions)):
        values = traj.y if is_state else traj.u
        if values is None:  # Trajectories refuses a trajectory without its declared inputs
            raise DataError(f"trajectory {traj.name!r} has no inputs, but the data declare {list(data.input_names)}.")
        block[row, where] = values[:, column]
    attrs = copy.deepcopy(dict(data.variable_attrs.get(name, {})))
    if dims.trajectory is None:
        return xr.Variable((dims.time,), block[0], attrs)
    shared = _shared_over_trajectories(block, data.source.get("variable_dims", {}).get(name), dims)
    if shared is not None:  # it came over time only (e.g. an input every run shares): it goes back that way
        return xr.Variable((dims.time,), shared, attrs)
    if dims.order[0] == dims.time:
        block = block.T
    return xr.Variable(dims.order, block, attrs)


def _shared_over_trajectories(block: np.ndarray, source_dims: Any, dims: _OutputDims) -> np.ndarray | None:
    """One row for every trajectory, if the variable came without the trajectory dim and still agrees.

    ``block`` is (n_trajectories, n_union), NaN where a trajectory lacks a time; the rows
    must agree wherever two of them have a value (predictions of such a variable usually do not).
    """
    if source_dims is None or dims.trajectory in tuple(source_dims) or dims.time not in tuple(source_dims):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        low, high = np.nanmin(block, axis=0), np.nanmax(block, axis=0)
    agree = (low == high) | np.isnan(low)
    return low if bool(np.all(agree)) else None


def _label_values(names: list[Hashable], dtype: Any) -> np.ndarray:
    """Trajectory names as a numpy array, in the source's dtype when that keeps them."""
    if isinstance(dtype, np.dtype):
        try:
            values = np.array(names, dtype=dtype)
        except (TypeError, ValueError):
            values = None
        if values is not None and values.tolist() == list(names):
            return values
    return pd.Index(names).to_numpy()


def to_dataarray(data: Trajectories, like: xr.DataArray | None = None) -> xr.DataArray:
    """The states of ``data`` as one DataArray, laid out like the DataArray they came from.

    Parameters
    ----------
    data : Trajectories
    like : xarray.DataArray, optional
        Its dims order, name and state coordinate are copied; without it they come from
        ``data.source`` (read by :func:`from_xarray` from a DataArray), or default to a
        ``"state"`` dimension first.

    Returns
    -------
    xarray.DataArray

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from sysid.adapters import from_xarray
    >>> da = xr.DataArray(np.arange(6.0).reshape(3, 2), dims=("time", "species"),
    ...                   coords={"time": [0.0, 1.0, 2.0], "species": ["prey", "predator"]})
    >>> back = to_dataarray(from_xarray(da))
    >>> back.dims, back["species"].values.tolist()
    (('time', 'species'), ['prey', 'predator'])
    """
    info = dict(data.source.get("dataarray") or {})
    if like is not None:
        info.update(_dataarray_info(like, info, data.source))
    dataset = to_xarray(data)
    state_dim = info.get("state_dim", "state")
    if state_dim is None:
        result = dataset[data.state_names[0]].copy()
        result.attrs = copy.deepcopy(dict(data.attrs))
        return result.rename(info.get("name"))
    order = [n for n in info.get("state_names", []) if n in data.state_names]
    order += [n for n in data.state_names if n not in order]
    result = dataset[order].to_dataarray(dim=state_dim)
    dims = tuple(info.get("dims", ()))
    if set(dims) == set(result.dims):
        result = result.transpose(*dims)
    coord_dtype = info.get("state_coord_dtype", np.dtype(object))
    if coord_dtype is None and order == info.get("state_names"):
        result = result.drop_vars(state_dim)
    else:
        result = result.assign_coords({state_dim: _label_values(order, coord_dtype)})
    result.attrs = copy.deepcopy(dict(data.attrs))
    return result.rename(info.get("name"))


def _dataarray_info(like: xr.DataArray, info: dict, source: dict) -> dict:
    state_dim = info.get("state_dim", "state")
    if state_dim is not None and state_dim not in like.dims:
        others = [d for d in like.dims if d not in (source.get("time"), source.get("trajectory"))]
        state_dim = others[0] if len(others) == 1 else state_dim
    has_coord = state_dim is not None and state_dim in like.coords
    update = {"name": like.name, "dims": tuple(like.dims), "state_dim": state_dim}
    if has_coord:
        update["state_names"] = like[state_dim].values.tolist()
        update["state_coord_dtype"] = like[state_dim].dtype
    return update
