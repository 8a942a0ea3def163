"""Helpers shared by the adapters: name look-up with suggestions, time conversion, and
turning one experiment's raw columns into a :class:`~sysid.trajectories.Trajectory`.

Nothing here knows about the caller's container (DataFrame, Dataset, arrays): each
adapter pulls plain numpy arrays out of it, describes them with a :class:`RawTrajectory`
and a :class:`RowRules`, and calls :func:`build_trajectory`. Errors are raised here, before
any numerical work, with the trajectory, column, row and time at fault.
"""

from __future__ import annotations

import difflib
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from sysid.errors import DataError
from sysid.trajectories import TimeKind, Trajectory

NS_PER_S = 1_000_000_000
_INT64_MIN = np.iinfo(np.int64).min
_SNAP_TOLERANCE_NS = 500  # rebuilt times within this of the caller's unit are snapped to it


# ---------------------------------------------------------------- names
def closest_name(name: Hashable, candidates: Iterable[Hashable]) -> Hashable | None:
    """The candidate whose text is closest to ``name`` (difflib), or None if none is close.

    Examples
    --------
    >>> closest_name("prye", ["prey", "predator", "t"])
    'prey'
    >>> closest_name("zzz", ["prey"]) is None
    True
    """
    by_text = {str(c): c for c in candidates}
    matches = difflib.get_close_matches(str(name), list(by_text), n=1, cutoff=0.6)
    return by_text[matches[0]] if matches else None


def missing_name_error(
    what: str, name: Hashable, candidates: Sequence[Hashable], hint: str = ""
) -> DataError:
    """A DataError for a name that is not there, suggesting the closest one.

    Examples
    --------
    >>> print(missing_name_error("column", "prye", ["t", "prey"]))
    no column 'prye'; did you mean 'prey'? The columns are ['t', 'prey'].
    """
    guess = closest_name(name, candidates)
    suggestion = f"; did you mean {guess!r}?" if guess is not None else "."
    plural = "es" if what.endswith("s") else "s"
    message = f"no {what} {name!r}{suggestion} The {what}{plural} are {list(candidates)}."
    return DataError(f"{message} {hint}".rstrip())


def as_name_list(names: Hashable | Sequence[Hashable] | None, what: str) -> list[Hashable] | None:
    """``None`` stays None, one name becomes a one-element list, a sequence becomes a list.

    Examples
    --------
    >>> as_name_list("prey", "states"), as_name_list(("a", "b"), "states"), as_name_list(None, "inputs")
    (['prey'], ['a', 'b'], None)
    """
    if names is None:
        return None
    if isinstance(names, str) or not isinstance(names, Iterable):
        return [names]
    listed = list(names)
    unhashable = [n for n in listed if not isinstance(n, Hashable)]
    if unhashable:
        raise DataError(
            f"{what}: {unhashable[0]!r} is not a column or variable name; give a flat list of names "
            f"such as {what}=['a', 'b']."
        )
    if what == "states" and not listed:
        raise DataError(
            "states= is an empty list; name at least one state, or leave states=None to use every "
            "numeric column (variable) that is not the time, the trajectory or an input."
        )
    duplicated = [n for i, n in enumerate(listed) if n in listed[:i]]
    if duplicated:
        raise DataError(f"{what}: {duplicated[0]!r} is listed twice; give each name once.")
    return listed


def check_states_and_inputs_apart(states: Sequence[Hashable], inputs: Sequence[Hashable]) -> None:
    """Raise if a name is both a state and an input."""
    both = [name for name in states if name in inputs]
    if both:
        raise DataError(
            f"{both[0]!r} is named both as a state and as an input; a column is either a "
            "measured output (states=) or a known forcing (inputs=), not both."
        )


# ---------------------------------------------------------------- times
@dataclass(frozen=True)
class TimeValues:
    """Times pulled out of the caller's data, in a form numpy can sort and compare.

    Attributes
    ----------
    kind : {"float", "datetime", "timedelta"}
    values : float64 array (float kind) or int64 nanoseconds (datetime / timedelta, UTC for
        time-zone aware data); ``missing`` marks NaN / NaT entries.
    missing : bool array
    dtype : the caller's dtype without time zone (restored on the way out)
    tz : the caller's time zone, or None
    """

    kind: TimeKind
    values: np.ndarray
    missing: np.ndarray
    dtype: Any
    tz: Any = None

    def take(self, rows: np.ndarray) -> TimeValues:
        """The same times restricted (or reordered) to ``rows``."""
        return replace(self, values=self.values[rows], missing=self.missing[rows])


def read_times(values: Any, label: str) -> TimeValues:
    """Convert a time column / coordinate / array into :class:`TimeValues`.

    Parameters
    ----------
    values : pandas Series or Index, or array-like
        Floats (any numeric dtype), datetime64 of any unit (time-zone aware pandas data is
        converted to UTC and its zone remembered) or timedelta64.
    label : str
        How to name the times in error messages, e.g. ``"time column 't'"``.

    Examples
    --------
    >>> import numpy as np
    >>> tv = read_times(np.array(["2020-01-01T00:00:01"], dtype="datetime64[s]"), "time")
    >>> tv.kind, tv.values.tolist(), str(tv.dtype)
    ('datetime', [1577836801000000000], 'datetime64[s]')
    """
    tz = None
    dtype = getattr(values, "dtype", None)
    if isinstance(dtype, pd.DatetimeTZDtype):
        index = pd.DatetimeIndex(values)
        tz = index.tz
        values = index.tz_convert("UTC").tz_localize(None).to_numpy()
        dtype = values.dtype
    elif isinstance(values, pd.Series | pd.Index):
        dtype = values.dtype
        if (pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
                and not pd.api.types.is_complex_dtype(dtype)):
            if pd.api.types.is_integer_dtype(dtype):
                known = values[values.notna()]
                _check_exact_in_float64(known.to_numpy(dtype=np.dtype(values.dtype.kind + "8")), label)
            return _float_times(values.to_numpy(dtype=np.float64, na_value=np.nan), dtype)
        values = values.to_numpy()
    else:
        values = np.asarray(values)
    dtype = values.dtype
    if np.issubdtype(dtype, np.datetime64) or np.issubdtype(dtype, np.timedelta64):
        kind: TimeKind = "datetime" if np.issubdtype(dtype, np.datetime64) else "timedelta"
        return TimeValues(kind, *_as_nanoseconds(values, label), dtype=dtype, tz=tz)
    if np.issubdtype(dtype, np.number) and not np.issubdtype(dtype, np.complexfloating):
        if np.issubdtype(dtype, np.integer):
            _check_exact_in_float64(values, label)
        return _float_times(values.astype(np.float64), dtype)
    raise DataError(
        f"{label} holds values of dtype {dtype}; times must be numbers, datetimes or "
        "timedeltas. Convert it first, e.g. with pandas.to_datetime or pandas.to_numeric."
    )


def _check_exact_in_float64(values: np.ndarray, label: str) -> None:
    """Refuse integer times that float64 (sysid's time type) would round: they would silently move.

    Integers beyond 2**53 are not all representable; stamps such as nanoseconds since 1970
    would be rounded, and neighbouring ones could become equal.

    Examples
    --------
    >>> _check_exact_in_float64(np.array([0, 2**53]), "t")
    >>> big = np.array([2**63 - 2, 2**63 - 1])
    >>> _check_exact_in_float64(big, "time column 't'")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    sysid.errors.DataError: time column 't' holds integers that float64 cannot hold exactly:
    9223372036854775806 becomes 9.223372036854776e+18 (2 of 2 times change); sysid computes times in
    float64, so they would lose precision (neighbouring stamps could even become equal). Subtract a
    reference time first (e.g. t - t.min()), or convert nanosecond stamps to datetimes with
    pandas.to_datetime(t, unit='ns').
    """
    big = values[(values > 2**53) | (values < -(2**53))] if values.dtype.kind == "i" else values[values > 2**53]
    if not big.size:
        return
    floats = big.astype(np.float64)
    limit = 2.0**63 if values.dtype.kind == "i" else 2.0**64
    with np.errstate(invalid="ignore"):
        lossy = (floats >= limit) | (floats < -limit)
        lossy[~lossy] = floats[~lossy].astype(values.dtype) != big[~lossy]
    if lossy.any():
        first = big[lossy][0]
        raise DataError(
            f"{label} holds integers that float64 cannot hold exactly: {int(first)} becomes {float(first)!r} "
            f"({int(lossy.sum())} of {values.size} times change); sysid computes times in float64, so they would "
            "lose precision (neighbouring stamps could even become equal). Subtract a reference time first "
            "(e.g. t - t.min()), or convert nanosecond stamps to datetimes with pandas.to_datetime(t, unit='ns')."
        )


def _float_times(values: np.ndarray, dtype: Any) -> TimeValues:
    return TimeValues("float", values, np.isnan(values), dtype)


def _as_nanoseconds(values: np.ndarray, label: str) -> tuple[np.ndarray, np.ndarray]:
    missing = np.isnat(values)
    if np.datetime_data(values.dtype)[0] in ("Y", "M"):
        return values.astype(f"{values.dtype.kind}8[ns]").view(np.int64), missing
    ns_per_unit = _ns_per_unit(values.dtype)
    raw = values.view(np.int64)
    limit = np.iinfo(np.int64).max // ns_per_unit
    if np.any(np.abs(raw[~missing]) > limit):
        raise DataError(
            f"{label} has values outside what nanosecond times can hold (about the years "
            "1678 to 2261 for dates, or +-292 years for durations); shift or rescale the times."
        )
    ns = np.where(missing, _INT64_MIN, np.where(missing, 0, raw) * ns_per_unit)
    return ns, missing


def _ns_per_unit(dtype: np.dtype) -> int:
    unit, count = np.datetime_data(dtype)
    # numpy's stubs take only literal unit names; this one comes from np.datetime_data.
    return int(np.timedelta64(count, unit).astype("timedelta64[ns]").astype(np.int64))  # type: ignore[call-overload]


def format_time(value: float | int, kind: TimeKind, tz: Any = None) -> str:
    """A time value (float or int nanoseconds) written the way the caller would read it.

    Examples
    --------
    >>> format_time(2.5, "float"), format_time(1_500_000_000, "timedelta")
    ('2.5', '0 days 00:00:01.500000')
    """
    if kind == "float":
        return repr(float(value))
    if kind == "timedelta":
        return str(pd.Timedelta(int(value), unit="ns"))
    stamp = pd.Timestamp(int(value), unit="ns")
    return str(stamp.tz_localize("UTC").tz_convert(tz) if tz is not None else stamp)


def seconds_since_origin(values: np.ndarray, kind: TimeKind) -> tuple[np.ndarray, Any]:
    """Split sorted times into ``(t, origin)`` as :class:`Trajectory` stores them.

    Examples
    --------
    >>> t, origin = seconds_since_origin(np.array([10**9, 3 * 10**9]), "datetime")
    >>> t.tolist(), origin
    ([0.0, 2.0], np.datetime64('1970-01-01T00:00:01.000000000'))
    """
    if kind == "float":
        return np.asarray(values, dtype=np.float64), 0.0
    if kind == "timedelta":
        return values / NS_PER_S, np.timedelta64(0, "ns")
    first = int(values[0])
    return (values - first) / NS_PER_S, np.datetime64(first, "ns")


def caller_times(traj: Trajectory, kind: TimeKind, dtype: Any = None) -> np.ndarray:
    """A trajectory's absolute times as a numpy array in the caller's dtype.

    Datetimes and timedeltas are rebuilt in nanoseconds and put back in the caller's unit
    (seconds, milliseconds...) when they sit on that unit's grid; float times are cast back
    to the caller's numeric dtype when that loses nothing.

    Examples
    --------
    >>> import numpy as np
    >>> from sysid.trajectories import Trajectory
    >>> traj = Trajectory(np.array([0.0, 0.25]), np.zeros((2, 1)), None, 0,
    ...                   np.datetime64("2020-01-01T00:00:00", "ns"))
    >>> caller_times(traj, "datetime", np.dtype("datetime64[ms]"))
    array(['2020-01-01T00:00:00.000', '2020-01-01T00:00:00.250'],
          dtype='datetime64[ms]')
    """
    absolute = traj.absolute_times(kind)
    if kind == "float":
        return float_times_as(absolute, dtype)
    return snap_to_unit(absolute, dtype)


def float_times_as(values: np.ndarray, dtype: Any) -> np.ndarray:
    """Float times cast to the caller's numpy numeric dtype when exact, else float64."""
    if dtype is None or not isinstance(dtype, np.dtype) or dtype == np.float64:
        return values
    cast = values.astype(dtype)
    return cast if np.array_equal(cast.astype(np.float64), values) else values


def snap_to_unit(values_ns: np.ndarray, dtype: Any) -> np.ndarray:
    """Nanosecond datetime64/timedelta64 values put back in the unit of ``dtype``.

    Float seconds cannot hold every nanosecond of long spans, so values within a few
    hundred nanoseconds of the unit's grid are rounded onto it; values off the grid (new
    prediction times, say) stay in nanoseconds.
    """
    if dtype is None or np.datetime_data(dtype)[0] == "ns":
        return values_ns
    unit = np.datetime_data(dtype)[0]
    if unit in ("Y", "M"):
        cast = values_ns.astype(dtype)
        return cast if np.array_equal(cast.astype(values_ns.dtype), values_ns) else values_ns
    step = _ns_per_unit(dtype)
    raw = values_ns.view(np.int64)
    steps = np.floor_divide(raw + step // 2, step)
    distance = np.abs(raw - steps * step)
    if np.any(distance > min(_SNAP_TOLERANCE_NS, step // 100)):
        return values_ns
    return steps.view(dtype)


# ---------------------------------------------------------------- one trajectory
@dataclass(frozen=True)
class RowRules:
    """How an adapter wants raw rows checked and cleaned before they become a Trajectory.

    Attributes
    ----------
    state_names, input_names : the columns of ``states`` / ``inputs``.
    time_label : how to call the times in messages ("time column 't'").
    row_word : how to call a row in messages ("row", "position along 'time'").
    sort_rows : sort each trajectory by time (stable) first; without it (the default, the
        adapters' ``sort=False``) times that go backwards within a trajectory are an error.
    drop_empty_rows : drop rows where no state and no input is known.
    interpolate_inputs : fill NaN inputs linearly in time instead of raising.
    """

    state_names: Sequence[Hashable]
    input_names: Sequence[Hashable]
    time_label: str
    row_word: str = "row"
    sort_rows: bool = False
    drop_empty_rows: bool = True
    interpolate_inputs: bool = False


@dataclass(frozen=True)
class RawTrajectory:
    """One experiment's columns as pulled out of the caller's data, not yet checked.

    ``rows`` holds each row's position in the caller's data, for error messages.
    """

    name: Hashable
    times: TimeValues
    states: np.ndarray
    inputs: np.ndarray | None
    rows: np.ndarray

    def take(self, selection: np.ndarray) -> RawTrajectory:
        """The rows ``selection`` (mask or positions), in that order."""
        return RawTrajectory(
            self.name,
            self.times.take(selection),
            self.states[selection],
            None if self.inputs is None else self.inputs[selection],
            self.rows[selection],
        )


def build_trajectory(raw: RawTrajectory, rules: RowRules) -> Trajectory:
    """Check, sort and clean one experiment, and return it as a :class:`Trajectory`.

    Raises
    ------
    DataError
        NaN/NaT or infinite times, times going backwards (unless ``rules.sort_rows``),
        duplicate times, infinite states, unknown inputs (unless ``rules.interpolate_inputs``);
        each message names the trajectory, column and row.
    """
    _check_time_stamps(raw, rules)
    if rules.sort_rows:
        raw = raw.take(np.argsort(raw.times.values, kind="stable"))
    if rules.drop_empty_rows:
        raw = raw.take(_rows_with_data(raw))
    _check_time_order(raw, rules)
    _check_unique_times(raw, rules)
    _check_finite_states(raw, rules)
    t, origin = seconds_since_origin(raw.times.values, raw.times.kind)
    inputs = None if raw.inputs is None else _known_inputs(raw, t, rules)
    return Trajectory(t, raw.states, inputs, raw.name, origin)


def _where(raw: RawTrajectory, rules: RowRules, position: int) -> str:
    time = raw.times
    when = format_time(time.values[position], time.kind, time.tz)
    return f"{rules.row_word} {raw.rows[position]} (time {when})"


def _check_time_stamps(raw: RawTrajectory, rules: RowRules) -> None:
    missing = np.flatnonzero(raw.times.missing)
    if missing.size:
        raise DataError(
            f"trajectory {raw.name!r}: {rules.time_label} is NaN/NaT at {rules.row_word} "
            f"{raw.rows[missing[0]]} ({missing.size} such row(s)); every row needs a time "
            "stamp. Drop those rows or fill their times."
        )
    if raw.times.kind == "float":
        infinite = np.flatnonzero(np.isinf(raw.times.values))
        if infinite.size:
            raise DataError(
                f"trajectory {raw.name!r}: {rules.time_label} is "
                f"{_value_word(raw.times.values[infinite[0]])} "
                f"at {rules.row_word} {raw.rows[infinite[0]]}; times must be finite."
            )


def _value_word(value: float) -> str:
    return "NaN" if np.isnan(value) else str(float(value))


def _rows_with_data(raw: RawTrajectory) -> np.ndarray:
    known = ~np.all(np.isnan(raw.states), axis=1)
    if raw.inputs is not None and raw.inputs.shape[1]:
        known |= ~np.all(np.isnan(raw.inputs), axis=1)
    return known


def _check_time_order(raw: RawTrajectory, rules: RowRules) -> None:
    """Times must not go backwards within a trajectory: one rule for every adapter (sort=True sorts)."""
    back = np.flatnonzero(np.diff(raw.times.values) < 0)
    if back.size:
        first = back[0]
        before, after = (format_time(raw.times.values[i], raw.times.kind, raw.times.tz) for i in (first, first + 1))
        more = f" (and {back.size - 1} more place(s))" if back.size > 1 else ""
        raise DataError(
            f"trajectory {raw.name!r}: times go backwards at {rules.row_word}s {raw.rows[first]} and "
            f"{raw.rows[first + 1]} ({before} then {after}){more}; within a trajectory the rows must be in time "
            "order. If the clock was reset (a new run), give each run its own label with trajectory=; if the "
            "rows are only out of order, pass sort=True (--sort on the command line) to sort each trajectory by time."
        )


def _check_unique_times(raw: RawTrajectory, rules: RowRules) -> None:
    repeated = np.flatnonzero(np.diff(raw.times.values) == 0)
    if repeated.size:
        first = repeated[0]
        when = format_time(raw.times.values[first], raw.times.kind, raw.times.tz)
        raise DataError(
            f"trajectory {raw.name!r}: duplicate time {when} at {rules.row_word}s "
            f"{raw.rows[first]} and {raw.rows[first + 1]}; times must be unique within a "
            "trajectory. Average or drop the repeated rows, or pass trajectory= naming the "
            "column that tells the experiments apart."
        )


def _check_finite_states(raw: RawTrajectory, rules: RowRules) -> None:
    infinite = np.argwhere(np.isinf(raw.states))
    if infinite.size:
        row, col = infinite[0]
        raise DataError(
            f"trajectory {raw.name!r}: state {rules.state_names[col]!r} is "
            f"{_value_word(raw.states[row, col])} at {_where(raw, rules, row)}; replace it with NaN to "
            "mark it as not observed, or fix the measurement."
        )


def _known_inputs(raw: RawTrajectory, t: np.ndarray, rules: RowRules) -> np.ndarray:
    inputs = np.array(raw.inputs, dtype=np.float64, copy=True)
    for col, name in enumerate(rules.input_names):
        column = inputs[:, col]
        unknown = ~np.isfinite(column)
        if not unknown.any():
            continue
        first = int(np.flatnonzero(unknown)[0])
        if not rules.interpolate_inputs or np.isinf(column[first]):
            raise DataError(
                f"trajectory {raw.name!r}: input {name!r} is {_value_word(column[first])} at "
                f"{_where(raw, rules, first)}; inputs must be known at every time because the "
                "model is integrated through them. Pass interpolate_inputs=True to fill gaps "
                "linearly in time, or drop those rows."
            )
        if unknown.all():
            raise DataError(
                f"trajectory {raw.name!r}: input {name!r} is never known, so it cannot be "
                "interpolated; give at least one value or drop the input."
            )
        inputs[:, col] = np.interp(t, t[~unknown], column[~unknown])
    return inputs
