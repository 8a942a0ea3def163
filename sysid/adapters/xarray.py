"""xarray adapter: Datasets and DataArrays to :class:`~sysid.Trajectories` and back.

A Dataset holds one data variable per state (and input) over dims ``(trajectory, time)``,
NaN-padded where experiments have different time stamps, or over a single time dim. A
DataArray holds the states along a state dimension whose coordinate gives their names.
Variable and dataset attributes (units, descriptions) and the coordinates' dtypes are
kept in ``Trajectories.source`` / ``attrs`` so that predictions come back the same way.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from sysid.adapters._common import (
    RawTrajectory,
    RowRules,
    TimeValues,
    as_name_list,
    build_trajectory,
    check_states_and_inputs_apart,
    missing_name_error,
    read_times,
)
from sysid.adapters._xarray_write import to_dataarray as to_dataarray
from sysid.adapters._xarray_write import to_xarray as to_xarray
from sysid.errors import DataError
from sysid.trajectories import LazyTrajectories, Trajectories, Trajectory

__all__ = ["from_xarray", "to_dataarray", "to_xarray"]

_TIME_GUESSES = ("time", "t")


@dataclass(frozen=True)
class _DatasetLayout:
    """Which dimension is time, which tells experiments apart, which variables play which part."""

    time: Hashable
    trajectory: Hashable | None
    states: list[Hashable]
    inputs: list[Hashable]


# ======================================================================= reading
def from_xarray(
    obj: xr.Dataset | xr.DataArray,
    time: Hashable | None = None,
    states: Sequence[Hashable] | Hashable | None = None,
    inputs: Sequence[Hashable] | Hashable | None = None,
    trajectory: Hashable | None = None,
    *,
    state_dim: Hashable | None = None,
    interpolate_inputs: bool = False,
    lazy: bool = False,
    sort: bool = False,
) -> Trajectories | LazyTrajectories:
    """Read an xarray Dataset or DataArray into Trajectories (or, with ``lazy=True``, LazyTrajectories).

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        A Dataset whose data variables are the states (and inputs), over dims
        ``(trajectory, time)`` (NaN padding for ragged experiments) or ``(time,)``; or a
        DataArray with a state dimension whose coordinate values are the state names.
        Dask-backed data is computed here, one chunk of trajectories at a time.
    time : str, optional
        The time dimension; it needs a coordinate of floats, datetime64 or timedelta64.
        Default: the dimension called ``"time"`` or ``"t"``.
    states, inputs : list of names, optional
        Variables (or, for a DataArray, state-coordinate values). Default states: every
        numeric variable over the time dimension that is not an input.
    trajectory : str, optional
        The dimension telling experiments apart; its coordinate values become the
        trajectory names. Default: the one dimension the variables have besides time, if
        any; without one the data is a single experiment named ``0``.
    state_dim : str, optional
        For a DataArray, the dimension along which the states lie. Default: the one
        dimension that is neither time nor trajectory.
    interpolate_inputs : bool, default False
        Fill NaN inputs linearly in time (nearest value at the ends) instead of raising.
    lazy : bool, default False
        Return a :class:`~sysid.trajectories.LazyTrajectories` that keeps the data where
        it is (Dask chunks, a file) and reads it minibatch by minibatch when an estimator
        fits it (see docs/scaling.md). Every chunk is read once here to validate it (the
        same errors as without ``lazy``) and to gather the scaling statistics, then dropped.
        Its blocks, the unit read at once, are the Dask chunks along the trajectory dimension
        (one block for data in memory).
    sort : bool, default False
        Sort the times. Without it, a time coordinate that goes backwards is an error naming
        the positions (as for pandas and arrays).

    Returns
    -------
    Trajectories, or LazyTrajectories with ``lazy=True``
        Each trajectory keeps the times where a state or an input is known.

    Raises
    ------
    DataError
        Missing dimensions or variables (closest name suggested), a time dimension without
        coordinate, non-numeric variables (named, or inferred as states), NaT times, times
        going backwards (unless ``sort=True``), duplicate times, missing (NaN) trajectory
        labels, unknown inputs.

    See Also
    --------
    to_xarray : the way back.
    sysid.adapters.from_pandas : the same for long DataFrames.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from sysid.adapters import from_xarray
    >>> ds = xr.Dataset(
    ...     {"prey": (("run", "time"), [[10.0, 12.0, np.nan], [5.0, 6.0, 7.0]], {"units": "1/km2"})},
    ...     coords={"run": ["a", "b"], "time": [0.0, 1.0, 2.0]},
    ... )
    >>> data = from_xarray(ds, trajectory="run")
    >>> data.names, [tr.n_times for tr in data], data.variable_attrs["prey"]
    (['a', 'b'], [2, 3], {'units': '1/km2'})

    With ``lazy=True`` nothing is kept but names and statistics until a load:

    >>> lazy = from_xarray(ds, trajectory="run", lazy=True)
    >>> lazy.summary.states.mean.tolist(), lazy.load([1]).names
    ([8.0], ['b'])
    """
    if not isinstance(obj, xr.Dataset | xr.DataArray):
        raise DataError(f"from_xarray expects an xarray Dataset or DataArray, got {type(obj).__name__}.")
    time_dim = _time_dim(obj, time)
    if trajectory is not None and trajectory == time_dim:
        raise DataError(
            f"{trajectory!r} is both the time dimension and trajectory=; name the dimension that "
            "tells the experiments apart, or leave trajectory= out for a single experiment."
        )
    if trajectory is not None and trajectory not in obj.sizes:
        raise missing_name_error("dimension", trajectory, list(obj.sizes), "Check the trajectory= argument.")
    array_info = None
    if isinstance(obj, xr.DataArray):
        obj, array_info = _dataarray_as_dataset(obj, time_dim, trajectory, state_dim)
    dataset = obj
    layout = _dataset_layout(dataset, time_dim, states, inputs, trajectory)
    times = read_times(_time_coordinate(dataset, time_dim), f"time coordinate {time_dim!r}")
    names, label_dtype = _trajectory_names(dataset, layout)
    reader = _BlockReader(dataset, layout, names, times, interpolate_inputs, sort)
    metadata: dict[str, Any] = {  # the keywords of Trajectories and LazyTrajectories.scan alike
        "state_names": layout.states,
        "input_names": layout.inputs,
        "time_kind": times.kind,
        "attrs": copy.deepcopy(dict(dataset.attrs)),
        "variable_attrs": _variable_attrs(dataset, layout),
        "source": _dataset_source(dataset, layout, times.dtype, label_dtype, array_info),
    }
    if lazy:
        return LazyTrajectories.scan(names, reader.blocks(), reader, **metadata)
    return Trajectories(reader.read_all(), **metadata)


class _BlockReader:
    """Reads checked Trajectory objects from a Dataset, one chunk of trajectories per compute.

    Dask-backed data is computed one chunk of the trajectory dimension at a time: besides
    what the caller keeps, memory holds one chunk, never the whole array.
    """

    def __init__(
        self,
        dataset: xr.Dataset,
        layout: _DatasetLayout,
        names: list[Hashable],
        times: TimeValues,
        interpolate_inputs: bool,
        sort: bool = False,
    ) -> None:
        self.selected = dataset[[*layout.states, *layout.inputs]]
        self.layout, self.names, self.times = layout, names, times
        self.rules = RowRules(
            layout.states,
            layout.inputs,
            time_label=f"time coordinate {layout.time!r}",
            row_word=f"{layout.time!r} position",
            sort_rows=bool(sort),
            interpolate_inputs=interpolate_inputs,
        )
        self.positions = np.arange(dataset.sizes[layout.time])
        self.slices = _trajectory_blocks(self.selected, layout)

    def blocks(self) -> list[np.ndarray]:
        """Trajectory positions per chunk (one block when the dimension is not chunked)."""
        return [
            np.arange(len(self.names)) if rows is None else np.arange(rows.start, rows.stop) for rows in self.slices
        ]

    def read_all(self) -> list[Trajectory]:
        """Every trajectory, chunk by chunk, each chunk computed once."""
        out: list[Trajectory] = []
        for block in self.blocks():
            out += self(block)
        return out

    def __call__(self, positions: np.ndarray) -> list[Trajectory]:
        """The trajectories at sorted ``positions``: one compute per chunk that holds some of them."""
        out: list[Trajectory] = []
        for block in self.blocks():
            inside = positions[(positions >= block[0]) & (positions <= block[-1])]
            if inside.size:
                out += self._read(block, inside)
        return out

    def _read(self, block: np.ndarray, wanted: np.ndarray) -> list[Trajectory]:
        """Compute the ``wanted`` positions of one ``block`` (all of it: a slice, as dask stores it)."""
        layout = self.layout
        part = self.selected
        if layout.trajectory is not None:
            if wanted.size == block.size:
                if block.size < len(self.names):
                    part = part.isel({layout.trajectory: slice(int(block[0]), int(block[-1]) + 1)})
            else:
                part = part.isel({layout.trajectory: wanted})
        part = part.compute()
        state_block = _stacked(part, layout.states, layout)
        input_block = _stacked(part, layout.inputs, layout) if layout.inputs else None
        return [
            build_trajectory(
                RawTrajectory(
                    self.names[int(position)],
                    self.times,
                    state_block[i],
                    None if input_block is None else input_block[i],
                    self.positions,
                ),
                self.rules,
            )
            for i, position in enumerate(wanted)
        ]


def _trajectory_blocks(selected: xr.Dataset, layout: _DatasetLayout) -> list[slice | None]:
    """Slices of the trajectory dim along the Dask chunks of the first chunked variable; [None]: all at once."""
    if layout.trajectory is None:
        return [None]
    for name in [*layout.states, *layout.inputs]:
        variable = selected[name].variable
        if variable.chunks is None or layout.trajectory not in variable.dims:
            continue
        sizes = variable.chunks[variable.dims.index(layout.trajectory)]
        if len(sizes) < 2:
            return [None]
        stops = np.cumsum(sizes)
        return [slice(int(stop - size), int(stop)) for size, stop in zip(sizes, stops)]
    return [None]


def _time_dim(obj: xr.Dataset | xr.DataArray, time: Hashable | None) -> Hashable:
    dims = list(obj.sizes)
    if time is not None:
        if time not in dims:
            raise missing_name_error("dimension", time, dims, "Check the time= argument.")
        return time
    found = [name for name in _TIME_GUESSES if name in dims]
    if len(found) != 1:
        raise DataError(f"cannot tell which dimension is time (dimensions: {dims}); pass time= naming it.")
    return found[0]


def _dataarray_as_dataset(
    array: xr.DataArray, time_dim: Hashable, trajectory: Hashable | None, state_dim: Hashable | None
) -> tuple[xr.Dataset, dict]:
    """One variable per state, plus what is needed to put the DataArray back together."""
    state_dim = _state_dim(array, time_dim, trajectory, state_dim)
    has_coord = state_dim is not None and state_dim in array.coords
    if state_dim is None:
        names = [array.name if array.name is not None else "x0"]
        pieces = [array]
    else:
        count = array.sizes[state_dim]
        names = array[state_dim].values.tolist() if has_coord else [f"x{i}" for i in range(count)]
        pieces = [array.isel({state_dim: i}, drop=True) for i in range(count)]
    variables = {}
    for name, piece in zip(names, pieces):
        piece = piece.copy(deep=False)
        piece.attrs = {}
        variables[name] = piece
    dataset = xr.Dataset(variables, attrs=copy.deepcopy(dict(array.attrs)))
    info = {
        "name": array.name,
        "dims": tuple(array.dims),
        "state_dim": state_dim,
        "state_names": names,
        "state_coord_dtype": array[state_dim].dtype if has_coord else None,
    }
    return dataset, info


def _state_dim(
    array: xr.DataArray, time_dim: Hashable, trajectory: Hashable | None, state_dim: Hashable | None
) -> Hashable | None:
    dims = list(array.dims)
    if state_dim is not None:
        if state_dim not in dims:
            raise missing_name_error("dimension", state_dim, dims, "Check the state_dim= argument.")
        return state_dim
    others = [d for d in dims if d not in (time_dim, trajectory)]
    if len(others) > 1:
        raise DataError(
            f"the DataArray has dimensions {others} besides time {time_dim!r}; pass "
            "state_dim= (the one holding the states) and trajectory= (the experiments)."
        )
    return others[0] if others else None


def _dataset_layout(
    dataset: xr.Dataset,
    time_dim: Hashable,
    states: Sequence[Hashable] | Hashable | None,
    inputs: Sequence[Hashable] | Hashable | None,
    trajectory: Hashable | None,
) -> _DatasetLayout:
    input_names = as_name_list(inputs, "inputs") or []
    state_names = as_name_list(states, "states")
    for name in input_names:
        _check_variable(dataset, name, time_dim, "input")
    if state_names is None:
        state_names = _default_states(dataset, time_dim, input_names)
    for name in state_names:
        _check_variable(dataset, name, time_dim, "state")
    check_states_and_inputs_apart(state_names, input_names)
    selected = [*state_names, *input_names]
    if trajectory is None:
        trajectory = _other_dim(dataset, selected, time_dim)
    for name in selected:
        extra = [d for d in dataset[name].dims if d not in (time_dim, trajectory)]
        if extra:
            raise DataError(
                f"variable {name!r} has dimensions {list(dataset[name].dims)}; only the time "
                f"dimension {time_dim!r} and the trajectory dimension {trajectory!r} are "
                f"allowed. Select or reduce {extra[0]!r} first (e.g. ds.isel({extra[0]}=0))."
            )
    return _DatasetLayout(time_dim, trajectory, state_names, input_names)


def _check_variable(dataset: xr.Dataset, name: Hashable, time_dim: Hashable, role: str) -> None:
    if name not in dataset.data_vars:
        raise missing_name_error("variable", name, list(dataset.data_vars))
    variable = dataset[name]
    if not _is_number(variable.dtype):
        raise DataError(
            f"{role} variable {name!r} has dtype {variable.dtype}, not numbers; convert it "
            f"or leave it out of the {role}s."
        )
    if time_dim not in variable.dims:
        raise DataError(
            f"{role} variable {name!r} has dimensions {list(variable.dims)}, without the time "
            f"dimension {time_dim!r}; a state or input must vary in time."
        )


def _is_number(dtype: np.dtype) -> bool:
    return bool(np.issubdtype(dtype, np.number) and not np.issubdtype(dtype, np.complexfloating))


def _label(value: object) -> object:
    """A coordinate value for an error message: numpy scalars as Python ones, anything else (a tuple
    of a pandas MultiIndex level, an object) as it is."""
    return value.item() if isinstance(value, np.generic) else value


def _default_states(dataset: xr.Dataset, time_dim: Hashable, inputs: list[Hashable]) -> list[Hashable]:
    """With ``states=None``, every data variable over the time dimension that is not an input.

    Decided by name, as for pandas: a variable over time that does not hold numbers is an
    error naming it (and its first value that is not a number), never silently left out.
    """
    names = [name for name, variable in dataset.data_vars.items() if name not in inputs and time_dim in variable.dims]
    if not names:
        raise DataError(
            f"no variable over {time_dim!r} is left to use as a state (variables: "
            f"{list(dataset.data_vars)}); pass states=[...]."
        )
    for name in names:
        variable = dataset[name]
        if _is_number(variable.dtype) and variable.dtype != bool:
            continue
        flat = np.asarray(variable.values).ravel()
        bad = np.zeros(0, dtype=int)
        if flat.dtype.kind in "OUS":  # text or objects: name the first value that is not a number
            try:
                parsed = pd.to_numeric(pd.Series(flat), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            except (TypeError, ValueError):
                parsed = np.full(flat.size, np.nan)
            bad = np.flatnonzero(pd.notna(flat) & np.isnan(parsed))
        where = ""
        if bad.size:
            index = np.unravel_index(bad[0], variable.shape)
            position = {
                str(d): (_label(variable[d].values[i]) if d in variable.coords else int(i))
                for d, i in zip(variable.dims, index)
            }
            where = f": {flat[bad[0]]!r} at {position} is not a number ({bad.size} such value(s) among {flat.size})"
        raise DataError(
            f"variable {name!r} has dtype {variable.dtype}, not numbers{where}. With states= not given, every "
            f"variable over {time_dim!r} that is not an input is a state; fix the values, or pass states=[...] "
            "naming the states."
        )
    return names


def _other_dim(dataset: xr.Dataset, names: list[Hashable], time_dim: Hashable) -> Hashable | None:
    others: list[Hashable] = []
    for name in names:
        others += [d for d in dataset[name].dims if d != time_dim and d not in others]
    if len(others) > 1:
        raise DataError(
            f"the variables have dimensions {others} besides time {time_dim!r}; pass "
            "trajectory= naming the one that tells experiments apart, and select or reduce "
            "the others first."
        )
    return others[0] if others else None


def _time_coordinate(dataset: xr.Dataset, time_dim: Hashable) -> np.ndarray:
    if time_dim not in dataset.coords:
        raise DataError(
            f"the time dimension {time_dim!r} has no coordinate, so the times are unknown; "
            f"add them with ds.assign_coords({time_dim}=times)."
        )
    return dataset[time_dim].values


def _trajectory_names(dataset: xr.Dataset, layout: _DatasetLayout) -> tuple[list[Hashable], Any]:
    if layout.trajectory is None:
        return [0], None
    if layout.trajectory in dataset.coords:
        labels = dataset[layout.trajectory]
        missing = np.flatnonzero(pd.isna(labels.values))
        if missing.size:
            raise DataError(
                f"trajectory coordinate {layout.trajectory!r} is missing (NaN/NaT/None) at position {missing[0]} "
                f"({missing.size} such label(s)); every trajectory needs its own label. Fill them, e.g. "
                f"ds.assign_coords({layout.trajectory}=[...])."
            )
        return labels.values.tolist(), labels.dtype
    return list(range(dataset.sizes[layout.trajectory])), None


def _stacked(dataset: xr.Dataset, names: list[Hashable], layout: _DatasetLayout) -> np.ndarray:
    """An array (n_trajectories, n_times, len(names)) of float64."""
    columns = []
    for name in names:
        variable = dataset[name]
        dims: tuple[Hashable, Hashable]
        if layout.trajectory is None:
            variable = variable.expand_dims("__trajectory__")
            dims = ("__trajectory__", layout.time)
        elif layout.trajectory not in variable.dims:
            variable = variable.expand_dims({layout.trajectory: dataset.sizes[layout.trajectory]})
            dims = (layout.trajectory, layout.time)
        else:
            dims = (layout.trajectory, layout.time)
        columns.append(np.asarray(variable.transpose(*dims).values, dtype=np.float64))
    return np.stack(columns, axis=-1)


def _variable_attrs(dataset: xr.Dataset, layout: _DatasetLayout) -> dict[Hashable, dict]:
    return {
        name: copy.deepcopy(dict(dataset[name].attrs))
        for name in [*layout.states, *layout.inputs]
        if dataset[name].attrs
    }


def _coordinate_attrs(dataset: xr.Dataset, name: Hashable | None) -> dict:
    if name is None or name not in dataset.coords:
        return {}
    return copy.deepcopy(dict(dataset[name].attrs))


def _dataset_source(
    dataset: xr.Dataset,
    layout: _DatasetLayout,
    time_dtype: Any,
    label_dtype: Any,
    array_info: dict | None,
) -> dict:
    first = dataset[layout.states[0]]
    dims = tuple(d for d in first.dims if d in (layout.time, layout.trajectory))
    selected = {*layout.states, *layout.inputs}
    return {
        "format": "xarray",
        "time": layout.time,
        "trajectory": layout.trajectory,
        "time_dtype": time_dtype,
        "tz": None,
        "trajectory_dtype": label_dtype,
        "trajectory_coord": layout.trajectory is not None and layout.trajectory in dataset.coords,
        "dims": dims,
        "variables": [name for name in dataset.data_vars if name in selected],
        "variable_dims": {name: tuple(dataset[name].dims) for name in dataset.data_vars if name in selected},
        "time_attrs": _coordinate_attrs(dataset, layout.time),
        "trajectory_attrs": _coordinate_attrs(dataset, layout.trajectory),
        "dataarray": array_info,
    }
