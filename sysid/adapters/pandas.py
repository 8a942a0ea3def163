"""pandas adapter: long-format DataFrames to :class:`~sysid.Trajectories` and back.

Long format means one row per (trajectory, time): a time column (or the index), an
optional trajectory column telling experiments apart, one column per state and per input.
Everything needed to rebuild the caller's layout (column names and order, which of them
were in the index, the time dtype and time zone, the label dtype) is kept in
``Trajectories.source`` so that predictions come back looking like the data.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sysid.adapters._common import (
    RawTrajectory,
    RowRules,
    TimeValues,
    as_name_list,
    build_trajectory,
    caller_times,
    check_states_and_inputs_apart,
    missing_name_error,
    read_times,
)
from sysid.errors import DataError
from sysid.trajectories import Trajectories, Trajectory

__all__ = ["from_pandas", "to_pandas"]

_TIME_GUESSES = ("t", "time")
VARIABLE_ATTRS_KEY = "variable_attrs"


@dataclass(frozen=True)
class _FrameLayout:
    """Which column (or index level) of a frame plays which part."""

    time: Hashable
    time_in_index: bool
    trajectory: Hashable | None
    trajectory_in_index: bool
    states: list[Hashable]
    inputs: list[Hashable]


# ======================================================================= reading
def from_pandas(
    df: pd.DataFrame,
    time: Hashable | None = None,
    states: Sequence[Hashable] | Hashable | None = None,
    inputs: Sequence[Hashable] | Hashable | None = None,
    trajectory: Hashable | None = None,
    *,
    interpolate_inputs: bool = False,
    sort: bool = False,
) -> Trajectories:
    """Read a long-format DataFrame (one row per trajectory and time) into Trajectories.

    Parameters
    ----------
    df : pandas.DataFrame
        Experiments may be interleaved and have different lengths and irregular times;
        each experiment's rows in time order (or pass ``sort=True``).
    time : column or index name, optional
        The times: floats, datetime64 (any unit; time-zone aware data is handled in UTC and
        given back in its zone) or timedelta64. ``None`` uses the index when it is not a
        plain row numbering, else a column called ``"t"`` or ``"time"``.
    states : list of column names, optional
        Measured variables; NaN means "not observed". Default: every numeric column that is
        not the time, the trajectory or an input.
    inputs : list of column names, optional
        Known forcing (controls), which must be known wherever a row is kept.
    trajectory : column or index name, optional
        Tells experiments apart; its values become the trajectory names (dtype kept).
        Without it the frame is one experiment named ``0``.
    interpolate_inputs : bool, default False
        Fill NaN inputs linearly in time within each trajectory (nearest value at the ends)
        instead of raising.
    sort : bool, default False
        Sort each trajectory's rows by time. Without it, times that go backwards within a
        trajectory (a clock reset, rows out of order) are an error naming the rows: the
        experiments may be interleaved, but each one's rows must be in time order.

    Returns
    -------
    Trajectories
        Each trajectory in time order. A row where every state is NaN is kept only if an
        input is known there. ``df.attrs`` become ``attrs``; ``df.attrs["variable_attrs"]``
        (as written by :func:`to_pandas`) and column ``attrs`` become ``variable_attrs``.

    Raises
    ------
    DataError
        Missing or misspelt columns (with the closest name suggested), non-numeric states
        (named or inferred: with ``states=None`` a column holding a text cell is an error
        naming the column, row and value), NaN/NaT/inf times, times going backwards (unless
        ``sort=True``), duplicate times, unknown inputs, too few observations; the message
        names the trajectory, column and row at fault.

    See Also
    --------
    to_pandas : the way back.
    sysid.adapters.from_xarray : the same for xarray.

    Examples
    --------
    >>> import pandas as pd
    >>> from sysid.adapters import from_pandas
    >>> df = pd.DataFrame({"run": ["a", "a", "a", "b", "b"],
    ...                    "t": [0.0, 1.0, 2.5, 0.0, 0.5],
    ...                    "prey": [10.0, 12.0, None, 5.0, 6.0],
    ...                    "predator": [1.0, None, 2.0, 3.0, 3.5]})
    >>> data = from_pandas(df, time="t", trajectory="run")
    >>> data.names, data.state_names, [tr.n_times for tr in data]
    (['a', 'b'], ('prey', 'predator'), [3, 2])
    >>> from_pandas(df, time="t", states=["prye"], trajectory="run")
    Traceback (most recent call last):
    ...
    sysid.errors.DataError: no column 'prye'; did you mean 'prey'? The columns are ['run', 't', 'prey', 'predator'].
    """
    frame = _checked_frame(df)
    layout = _frame_layout(frame, time, states, inputs, trajectory)
    times = _read_frame_times(frame, layout)
    codes, names, label_dtype = _trajectory_codes(frame, layout)
    attrs, variable_attrs = _frame_attrs(frame, layout)
    return Trajectories(
        _read_trajectories(frame, layout, times, codes, names, interpolate_inputs, sort),
        state_names=layout.states,
        input_names=layout.inputs,
        time_kind=times.kind,
        attrs=attrs,
        variable_attrs=variable_attrs,
        source=_frame_source(frame, layout, times, label_dtype),
    )


def _read_trajectories(
    frame: pd.DataFrame,
    layout: _FrameLayout,
    times: TimeValues,
    codes: np.ndarray,
    names: list[Hashable],
    interpolate_inputs: bool,
    sort: bool,
) -> list[Trajectory]:
    """One checked Trajectory per label: rows ``codes == k`` belong to ``names[k]``."""
    rules = RowRules(
        layout.states,
        layout.inputs,
        time_label=_describe(layout.time, layout.time_in_index, "time"),
        sort_rows=bool(sort),
        interpolate_inputs=interpolate_inputs,
    )
    states_block = _float_block(frame, layout.states)
    inputs_block = _float_block(frame, layout.inputs) if layout.inputs else None
    trajectories = []
    for code, name in enumerate(names):
        rows = np.flatnonzero(codes == code)
        raw = RawTrajectory(
            name,
            times.take(rows),
            states_block[rows],
            None if inputs_block is None else inputs_block[rows],
            rows,
        )
        trajectories.append(build_trajectory(raw, rules))
    return trajectories


def _checked_frame(df: Any) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"from_pandas expects a pandas DataFrame, got {type(df).__name__}.")
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise DataError(
            f"the DataFrame is empty ({df.shape[0]} rows, {df.shape[1]} columns); "
            "pass a frame with one row per trajectory and time."
        )
    if isinstance(df.columns, pd.MultiIndex):
        raise DataError(
            "the DataFrame has MultiIndex columns; flatten them first "
            "(e.g. df.columns = ['_'.join(map(str, c)) for c in df.columns])."
        )
    repeated = df.columns[df.columns.duplicated()]
    if len(repeated):
        raise DataError(f"column {repeated[0]!r} appears twice; column names must be unique.")
    return df


def _index_level_names(frame: pd.DataFrame) -> list[Hashable]:
    return [] if isinstance(frame.index, pd.RangeIndex) else list(frame.index.names)


def _locate(frame: pd.DataFrame, name: Hashable, what: str) -> bool:
    """True if ``name`` is an index level, False if a column; raise if neither."""
    if not isinstance(name, Hashable):
        raise DataError(
            f"{what}= must be one column name, got {type(name).__name__} {name!r}; e.g. {what}='t'."
        )
    if name in frame.columns:
        return False
    if name is not None and name in frame.index.names:
        return True
    candidates = list(frame.columns) + [n for n in frame.index.names if n is not None]
    raise missing_name_error("column", name, candidates, f"Check the {what}= argument.")


def _guess_time(frame: pd.DataFrame) -> tuple[Hashable, bool]:
    index = frame.index
    if not isinstance(index, pd.RangeIndex | pd.MultiIndex):
        is_time_like = pd.api.types.is_float_dtype(index.dtype) or isinstance(
            index, pd.DatetimeIndex | pd.TimedeltaIndex
        )
        if index.name is not None or is_time_like:
            return index.name, True
    found = [n for n in _TIME_GUESSES if n in frame.columns or n in _index_level_names(frame)]
    if len(found) == 2:
        raise DataError("the frame has both a 't' and a 'time' column; pass time= to say which.")
    if found:
        return found[0], _locate(frame, found[0], "time")
    if not isinstance(index, pd.RangeIndex | pd.MultiIndex):
        return index.name, True
    raise DataError(
        f"cannot tell which column holds the times: the index is a plain row numbering and "
        f"there is no 't' or 'time' column. Pass time= naming one of {list(frame.columns)}."
    )


def _frame_layout(
    frame: pd.DataFrame,
    time: Hashable | None,
    states: Sequence[Hashable] | Hashable | None,
    inputs: Sequence[Hashable] | Hashable | None,
    trajectory: Hashable | None,
) -> _FrameLayout:
    if time is None:
        time_name, time_in_index = _guess_time(frame)
    else:
        time_name, time_in_index = time, _locate(frame, time, "time")
    trajectory_in_index = False
    if trajectory is not None:
        trajectory_in_index = _locate(frame, trajectory, "trajectory")
        if trajectory == time_name:
            raise DataError(f"{trajectory!r} is given both as time= and as trajectory=.")
    input_names = as_name_list(inputs, "inputs") or []
    keys = {time_name, trajectory}
    for name in input_names:
        _check_variable(frame, name, keys, "input")
    state_names = as_name_list(states, "states")
    if state_names is None:
        state_names = _default_states(frame, keys, input_names)
    for name in state_names:
        _check_variable(frame, name, keys, "state")
    check_states_and_inputs_apart(state_names, input_names)
    return _FrameLayout(time_name, time_in_index, trajectory, trajectory_in_index,
                        state_names, input_names)


def _check_variable(frame: pd.DataFrame, name: Hashable, keys: set, role: str) -> None:
    if name in keys:
        article = "an" if role == "input" else "a"
        raise DataError(
            f"{name!r} is the time or trajectory column; it cannot also be {article} {role}."
        )
    if name not in frame.columns:
        raise missing_name_error("column", name, list(frame.columns))
    dtype = frame[name].dtype
    if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_complex_dtype(dtype):
        raise DataError(
            f"{role} column {name!r} has dtype {dtype}, not numbers; convert it, e.g. with "
            f"pandas.to_numeric(df[{name!r}], errors='coerce'), or leave it out of the {role}s."
        )


def _default_states(frame: pd.DataFrame, keys: set, inputs: list[Hashable]) -> list[Hashable]:
    """With ``states=None``, every column that is not the time, the trajectory or an input.

    States are decided by name, not by whether their values parse: a column of numbers with
    one typo ("n/a", "0,31") must not vanish from the fit, so any column that does not hold
    plain numbers is an error naming it (and the first cell that is not a number).
    """
    names: list[Hashable] = [name for name in frame.columns if name not in keys and name not in inputs]
    if not names:
        raise DataError(
            f"no column is left to use as a state (columns: {list(frame.columns)}); pass states=[...]."
        )
    for name in names:
        problem, typo = _not_numbers(frame[name], name)
        if problem and typo:
            raise DataError(f"{problem}.")
        if problem:
            raise DataError(
                f"{problem}. With states= not given, every column besides the time, the trajectory and the "
                f"inputs is a state; pass states=[...] (or trajectory=, inputs=) to say what {name!r} is, or "
                "drop the column."
            )
    return names


def _not_numbers(column: pd.Series, name: Hashable) -> tuple[str | None, bool]:
    """Why ``column`` cannot be a state (naming the first offending cell), or None; and whether it is a typo.

    A typo: a column of numbers with a few cells that are not.
    """
    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return f"column {name!r} holds booleans (True/False), not measurements", False
    if pd.api.types.is_complex_dtype(dtype):
        return f"column {name!r} holds complex numbers; states must be real", False
    if pd.api.types.is_numeric_dtype(dtype):
        return None, False
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        return (f"column {name!r} holds {dtype} values, not measurements (if it is the time, pass "
                f"time={name!r})"), False
    blank = column.map(lambda v: isinstance(v, str) and not v.strip())  # an empty cell, not a typo
    known = (column.notna() & ~blank.astype(bool)).to_numpy()
    try:
        as_numbers = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):  # cells pandas cannot even try (lists, dicts...)
        as_numbers = np.full(len(column), np.nan)
    bad = np.flatnonzero(known & np.isnan(as_numbers))
    if not bad.size:
        return (f"column {name!r} holds numbers stored as {dtype} (text or objects); convert it first, "
                f"e.g. df[{name!r}] = pandas.to_numeric(df[{name!r}])"), True
    value = column.iloc[bad[0]]
    if bad.size < known.sum():  # mostly numbers with a few bad cells: a typo, say where
        return (f"column {name!r} holds {value!r} at row {bad[0]}, which is not a number ({bad.size} such cell(s) "
                f"among {int(known.sum())} values); fix the cell(s), or leave them empty (NaN: not observed), "
                f"e.g. df[{name!r}] = pandas.to_numeric(df[{name!r}], errors='coerce')"), True
    what = "text" if isinstance(value, str) else "values that are not numbers"
    return f"column {name!r} holds {what} (e.g. {value!r} at row {bad[0]})", False


def _values(frame: pd.DataFrame, name: Hashable, in_index: bool) -> pd.Series | pd.Index:
    if not in_index:
        return frame[name]
    if isinstance(frame.index, pd.MultiIndex):
        return frame.index.get_level_values(name)  # type: ignore[arg-type]  # pandas-stubs: str | int; any label works
    return frame.index


def _describe(name: Hashable, in_index: bool, what: str) -> str:
    if in_index:
        return f"{what} index" if name is None else f"{what} index level {name!r}"
    return f"{what} column {name!r}"


def _read_frame_times(frame: pd.DataFrame, layout: _FrameLayout) -> TimeValues:
    values = _values(frame, layout.time, layout.time_in_index)
    return read_times(values, _describe(layout.time, layout.time_in_index, "time"))


def _trajectory_codes(frame: pd.DataFrame, layout: _FrameLayout) -> tuple[np.ndarray, list, Any]:
    """Each row's trajectory number, the trajectory names (sorted) and the label dtype."""
    if layout.trajectory is None:
        return np.zeros(len(frame), dtype=np.intp), [0], None
    labels = _values(frame, layout.trajectory, layout.trajectory_in_index)
    try:
        codes, uniques = pd.factorize(labels, sort=True)
    except TypeError:
        codes, uniques = pd.factorize(labels, sort=False)
    missing = np.flatnonzero(codes < 0)
    if missing.size:
        what = _describe(layout.trajectory, layout.trajectory_in_index, "trajectory")
        raise DataError(
            f"{what} is missing at row {missing[0]}; every row needs a trajectory label. "
            "Drop those rows or fill their labels."
        )
    return codes, list(uniques.tolist()), labels.dtype


def _float_block(frame: pd.DataFrame, names: list[Hashable]) -> np.ndarray:
    columns = [frame[name].to_numpy(dtype=np.float64, na_value=np.nan) for name in names]
    return np.column_stack(columns)


def _same_attrs(a: dict, b: dict) -> bool:
    """Equality of attribute dicts whose values may be numpy arrays (``==`` is ambiguous there)."""
    if a.keys() != b.keys():
        return False
    for key, value in a.items():
        other = b[key]
        if isinstance(value, np.ndarray) or isinstance(other, np.ndarray):
            if not np.array_equal(np.asarray(value), np.asarray(other)):
                return False
        elif value is not other and value != other:
            return False
    return True


def _frame_attrs(frame: pd.DataFrame, layout: _FrameLayout) -> tuple[dict, dict]:
    attrs = copy.deepcopy(dict(frame.attrs))
    stored = attrs.pop(VARIABLE_ATTRS_KEY, None)
    variable_attrs = dict(stored) if isinstance(stored, dict) else {}
    for name in [*layout.states, *layout.inputs]:
        column_attrs = dict(frame[name].attrs)
        if column_attrs and not _same_attrs(column_attrs, dict(frame.attrs)):  # pandas copies frame attrs
            variable_attrs[name] = copy.deepcopy(column_attrs)
    return attrs, {k: v for k, v in variable_attrs.items() if k in layout.states or k in layout.inputs}


def _frame_source(
    frame: pd.DataFrame, layout: _FrameLayout, times: TimeValues, label_dtype: Any
) -> dict:
    index_keys = [n for n in frame.index.names
                  if (layout.time_in_index and n == layout.time)
                  or (layout.trajectory_in_index and n == layout.trajectory)]
    used = {layout.time, layout.trajectory, *layout.states, *layout.inputs}
    return {
        "format": "pandas",
        "time": layout.time,
        "trajectory": layout.trajectory,
        "index": index_keys,
        "columns": [c for c in frame.columns if c in used],
        "time_dtype": times.dtype,
        "tz": times.tz,
        "trajectory_dtype": label_dtype,
    }


# ======================================================================= writing
@dataclass(frozen=True)
class _OutputLayout:
    time: Hashable
    trajectory: Hashable | None
    index: list[Hashable]
    column_order: list[Hashable]


def to_pandas(data: Trajectories) -> pd.DataFrame:
    """A long-format DataFrame of ``data`` with the caller's own labels and dtypes.

    Data read by :func:`from_pandas` comes back with the same column names and order, the
    time as a column or as the index (with its dtype, unit and time zone), the trajectory
    column with its label dtype, states then inputs. Rows are sorted by trajectory, then
    time. Other data get a time column named after the source's time (``"t"`` by default)
    and a trajectory column (``"trajectory"`` by default) when there is more than one
    trajectory or the source had one. Per-variable attributes (pandas columns cannot hold
    any) are kept in ``df.attrs["variable_attrs"]``.

    Parameters
    ----------
    data : Trajectories

    Returns
    -------
    pandas.DataFrame

    Examples
    --------
    >>> import numpy as np
    >>> from sysid import Trajectories
    >>> from sysid.adapters import to_pandas
    >>> data = Trajectories.from_arrays([np.array([0.0, 1.0]), np.array([0.0, 2.0, 3.0])],
    ...                                 [np.ones((2, 1)), np.zeros((3, 1))], names=["a", "b"])
    >>> to_pandas(data)
      trajectory    t   x0
    0          a  0.0  1.0
    1          a  1.0  1.0
    2          b  0.0  0.0
    3          b  2.0  0.0
    4          b  3.0  0.0
    """
    layout = _output_layout(data)
    pieces = _output_pieces(data, layout)
    index = _output_index(pieces, layout, len(pieces[layout.time]))
    columns = {name: _as_column(pieces[name]) for name in layout.column_order}
    frame = pd.DataFrame(columns, index=index)
    frame.attrs.update(copy.deepcopy(data.attrs))  # a new frame: its attrs are empty
    if data.variable_attrs:
        frame.attrs[VARIABLE_ATTRS_KEY] = copy.deepcopy(dict(data.variable_attrs))
    return frame


def _output_layout(data: Trajectories) -> _OutputLayout:
    source = data.source
    from_frame = source.get("format") == "pandas"
    index = list(source.get("index", [])) if from_frame else []
    time = source.get("time")
    if time is None and None not in index:
        time = "t"
    trajectory = source.get("trajectory")
    if trajectory is None and len(data) > 1:
        trajectory = "trajectory"
    index = [name for name in index if name == time or (name == trajectory and name is not None)]
    wanted = [n for n in (trajectory, time) if n is not None and n not in index]
    wanted += [*data.state_names, *data.input_names]
    clash = [n for i, n in enumerate(wanted) if n in wanted[:i] or n in index]
    if clash:
        raise DataError(
            f"cannot write {clash[0]!r} as a column: the name is used twice (time, trajectory, "
            "state and input names must all differ)."
        )
    original = list(source.get("columns", [])) if from_frame else []
    order = [c for c in original if c in wanted] + [c for c in wanted if c not in original]
    return _OutputLayout(time, trajectory, index, order)


def _output_pieces(data: Trajectories, layout: _OutputLayout) -> dict[Hashable, Any]:
    pieces: dict[Hashable, Any] = {layout.time: _output_times(data)}
    if layout.trajectory is not None:
        pieces[layout.trajectory] = _output_labels(data)
    for block, names in (("y", data.state_names), ("u", data.input_names)):
        if not names:
            continue
        stacked = np.concatenate([getattr(tr, block) for tr in data])
        for j, name in enumerate(names):
            pieces[name] = stacked[:, j]
    return pieces


def _output_times(data: Trajectories) -> np.ndarray | pd.DatetimeIndex:
    dtype = data.source.get("time_dtype")
    dtype = dtype if isinstance(dtype, np.dtype) else None
    values = np.concatenate([caller_times(tr, data.time_kind, dtype) for tr in data])
    tz = data.source.get("tz")
    if tz is not None and data.time_kind == "datetime":
        return pd.DatetimeIndex(values).tz_localize("UTC").tz_convert(tz)
    return values


def _output_labels(data: Trajectories) -> pd.Series:
    labels = pd.Series([tr.name for tr in data for _ in range(tr.n_times)])
    dtype = data.source.get("trajectory_dtype")
    if dtype is None or (isinstance(dtype, np.dtype) and dtype.kind in "OUS"):
        # numpy text/object labels (from xarray): pandas' own inference gives its str dtype.
        return labels
    try:
        restored = labels.astype(dtype)
    except (TypeError, ValueError):
        return labels
    return restored if restored.tolist() == labels.tolist() else labels


def _as_column(values: Any) -> Any:
    """Values a DataFrame takes as they are, without aligning them on an index."""
    return values.array if isinstance(values, pd.Series | pd.Index) else values


def _output_index(pieces: dict, layout: _OutputLayout, n_rows: int) -> pd.Index:
    if not layout.index:
        return pd.RangeIndex(n_rows)
    arrays = [_as_column(pieces[name]) for name in layout.index]
    if len(arrays) == 1:
        return pd.Index(arrays[0], name=layout.index[0])
    return pd.MultiIndex.from_arrays(arrays, names=layout.index)
