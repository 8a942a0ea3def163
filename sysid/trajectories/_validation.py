"""Validation of one trajectory's arrays: the single place where raw arrays become trusted.

Everything downstream of :class:`sysid.Trajectory` assumes what is checked here: float64
arrays of consistent shapes, finite strictly increasing times, NaN only in states, at
least two observed times.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from sysid.errors import DataError


def _where(name: Hashable) -> str:
    return f"trajectory {name!r}"


def is_complex(values: Any) -> bool:
    """True if ``values`` (an array, or nested sequences, possibly ragged) holds complex numbers."""
    if isinstance(values, list | tuple):
        return any(is_complex(v) for v in values)
    try:
        return bool(np.iscomplexobj(values))
    except (TypeError, ValueError):
        return False


def as_float_array(values: object, what: str, name: Hashable) -> np.ndarray:
    """Convert ``values`` to a float64 array, or raise a :class:`DataError` naming ``what``."""
    if is_complex(values):
        raise DataError(
            f"{_where(name)}: {what} must be real numbers, got complex values; converting them "
            "would silently drop the imaginary part. Pass the real part (or the modulus) explicitly."
        )
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        kind = getattr(np.asarray(values, dtype=object), "dtype", type(values))
        raise DataError(
            f"{_where(name)}: {what} must be numeric, got values of type {kind} that cannot "
            f"be converted to float ({exc}). Convert the column to numbers first "
            "(e.g. pandas.to_numeric)."
        ) from None
    return arr


def validate_times(t: object, name: Hashable) -> np.ndarray:
    """Return ``t`` as a read-only 1-D float64 array after checking it is finite and increasing."""
    arr = as_float_array(t, "time", name)
    if arr.ndim != 1:
        raise DataError(f"{_where(name)}: time must be 1-D, got an array of shape {arr.shape}.")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise DataError(
            f"{_where(name)}: time has {bad.size} NaN/inf/NaT value(s), first at row {bad[0]}; "
            "every row needs a finite time stamp. Drop those rows or fill their times."
        )
    steps = np.diff(arr)
    dup = np.flatnonzero(steps == 0)
    if dup.size:
        raise DataError(
            f"{_where(name)}: duplicate time {float(arr[dup[0]])} at rows {dup[0]} and {dup[0] + 1}; "
            "times must be unique within a trajectory. Average or drop the repeated rows, or "
            "give the experiments a trajectory column."
        )
    back = np.flatnonzero(steps < 0)
    if back.size:
        raise DataError(
            f"{_where(name)}: times are not increasing at row {back[0] + 1} "
            f"({float(arr[back[0]])} then {float(arr[back[0] + 1])}); sort the rows by time."
        )
    return arr


def validate_matrix(
    values: object, n_times: int, names: Sequence[Hashable], what: str, name: Hashable
) -> np.ndarray:
    """Return a (n_times, len(names)) float64 array; 1-D input is taken as one column."""
    arr = as_float_array(values, what, name)
    if arr.ndim == 1 and len(names) == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape != (n_times, len(names)):
        raise DataError(
            f"{_where(name)}: {what} must have shape (n_times, n_{what}) = ({n_times}, {len(names)}) "
            f"for {what} {list(names)}, got shape {arr.shape}. Time is axis 0 and {what} axis 1."
        )
    return arr


def validate_states(y: np.ndarray, t: np.ndarray, names: Sequence[Hashable], name: Hashable) -> None:
    """Check states: no inf, at least two times with an observation."""
    inf = np.argwhere(np.isinf(y))
    if inf.size:
        row, col = inf[0]
        raise DataError(
            f"{_where(name)}: state {names[col]!r} is infinite at row {row} (t={float(t[row])}); "
            "replace it with NaN to mark it as not observed, or fix the measurement."
        )
    observed_rows = np.flatnonzero(~np.all(np.isnan(y), axis=1))
    if observed_rows.size < 2:
        raise DataError(
            f"{_where(name)}: needs at least two times with an observed state, got "
            f"{observed_rows.size}. Drop this trajectory or add observations."
        )


def validate_inputs(u: np.ndarray, t: np.ndarray, names: Sequence[Hashable], name: Hashable) -> None:
    """Inputs must be known everywhere: we cannot integrate through an unknown forcing."""
    bad = np.argwhere(~np.isfinite(u))
    if bad.size:
        row, col = bad[0]
        raise DataError(
            f"{_where(name)}: input {names[col]!r} is {float(u[row, col])} at row {row} (t={float(t[row])}); "
            "inputs must be known at every time because the model is integrated through them. "
            "Pass interpolate_inputs=True to the adapter to fill gaps linearly, or drop the rows."
        )


def validate_names(
    states: Sequence[Hashable], inputs: Sequence[Hashable]
) -> tuple[tuple[Hashable, ...], tuple[Hashable, ...]]:
    """Check state and input names are unique and disjoint (labels as the caller gave them: usually str)."""
    states = tuple(states)
    inputs = tuple(inputs)
    if not states:
        raise DataError("at least one state is needed, got none.")
    for label, seq in (("state", states), ("input", inputs)):
        seen: set[Hashable] = set()
        for n in seq:
            if n in seen:
                raise DataError(f"{label} name {n!r} is given twice; names must be unique.")
            seen.add(n)
    both = sorted(set(states) & set(inputs), key=str)
    if both:
        raise DataError(
            f"{both[0]!r} is named both as a state and as an input; a column is either "
            "measured output (state) or known forcing (input), not both."
        )
    return states, inputs
