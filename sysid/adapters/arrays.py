"""numpy adapter: arrays (one experiment) or lists of arrays (several) to Trajectories and back.

Axes follow pysindy's convention: time is axis -2 and state axis -1, so one experiment is
``X`` of shape (n_times, n_states) with ``t`` of shape (n_times,); several are a list of
such arrays (lengths may differ) with a list of ``t``, or a 3-D array
(n_trajectories, n_times, n_states). Rows are kept as given (none dropped, and sorted only
with ``sort=True``), so predictions line up with the caller's rows.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from sysid.adapters._common import RawTrajectory, RowRules, build_trajectory, read_times
from sysid.errors import DataError
from sysid.trajectories import Trajectories, is_complex

__all__ = ["from_arrays", "to_arrays"]

ArrayLike = Any


def from_arrays(
    X: ArrayLike | Sequence[ArrayLike],
    t: ArrayLike | Sequence[ArrayLike] | None = None,
    u: ArrayLike | Sequence[ArrayLike] | None = None,
    *,
    state_names: Sequence[Hashable] | None = None,
    input_names: Sequence[Hashable] | None = None,
    names: Sequence[Hashable] | None = None,
    interpolate_inputs: bool = False,
    sort: bool = False,
) -> Trajectories:
    """Read numpy arrays into Trajectories.

    Parameters
    ----------
    X : array (n_times, n_states) or (n_times,), list of such arrays, or array
        (n_trajectories, n_times, n_states)
        Observed states; NaN marks "not observed".
    t : array (n_times,) or list of such arrays
        Times of each row: floats, datetime64 or timedelta64. One array is shared by every
        trajectory when they all have its length.
    u : array (n_times, n_inputs) or (n_times,), or a list of such arrays, optional
        Known inputs at the same rows.
    state_names, input_names : names, optional
        Default ``x0, x1, ...`` and ``u0, u1, ...``.
    names : trajectory names, optional
        Default ``0, 1, ...``.
    interpolate_inputs : bool, default False
        Fill NaN inputs linearly in time instead of raising.
    sort : bool, default False
        Sort each trajectory's rows by time (predictions then come back in that order).
        Without it, times that go backwards are an error naming the rows.

    Returns
    -------
    Trajectories

    Raises
    ------
    DataError
        No ``t``, arrays that do not line up, non-numeric values, bad times (NaN, going
        backwards, repeated).

    Examples
    --------
    >>> import numpy as np
    >>> data = from_arrays([np.zeros((3, 2)), np.ones((5, 2))],
    ...                    t=[np.arange(3.0), np.linspace(0, 1, 5)])
    >>> [tr.n_times for tr in data], data.state_names
    ([3, 5], ('x0', 'x1'))
    """
    layout, states = _split_trajectories(X, "X")
    if t is None:
        raise DataError(
            "numpy states need their times: pass t= (an array of n_times times, or one array "
            "per trajectory)."
        )
    times = _times_per_trajectory(t, [len(x) for x in states])
    inputs = None if u is None else _inputs_per_trajectory(u, [len(x) for x in states])
    state_names = _names(state_names, states[0].shape[1], "x", "state_names")
    input_names = [] if inputs is None else _names(input_names, inputs[0].shape[1], "u", "input_names")
    names = list(range(len(states))) if names is None else list(names)
    if len(names) != len(states):
        raise DataError(f"got {len(names)} names for {len(states)} trajectories.")
    rules = RowRules(state_names, input_names, time_label="t", sort_rows=bool(sort),
                     drop_empty_rows=False, interpolate_inputs=interpolate_inputs)
    kinds = {tv.kind for tv in times}
    if len(kinds) > 1:
        raise DataError(
            f"the time arrays mix kinds {sorted(kinds)}; give every trajectory the same kind."
        )
    trajectories = [
        build_trajectory(
            RawTrajectory(name, tv, y, None if inputs is None else inputs[i], np.arange(len(y))), rules
        )
        for i, (name, tv, y) in enumerate(zip(names, times, states))
    ]
    return Trajectories(
        trajectories, state_names, input_names, times[0].kind,
        source={"format": "arrays", "layout": layout, "time": None, "time_dtype": times[0].dtype},
    )


def to_arrays(data: Trajectories) -> list[np.ndarray]:
    """Each trajectory's states as a writeable array (n_times, n_states).

    Examples
    --------
    >>> import numpy as np
    >>> data = from_arrays(np.arange(4.0).reshape(2, 2), t=np.array([0.0, 1.0]))
    >>> to_arrays(data)[0].tolist()
    [[0.0, 1.0], [2.0, 3.0]]
    """
    return [np.array(tr.y, copy=True) for tr in data]


def _as_float(values: ArrayLike, what: str) -> np.ndarray:
    if is_complex(values):
        raise DataError(
            f"{what} holds complex numbers; states and inputs must be real (converting would silently "
            "drop the imaginary part). Pass the real part or the modulus explicitly."
        )
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} could not be read as an array of numbers: {exc}.") from None


def _as_matrix(values: ArrayLike, what: str) -> np.ndarray:
    array = _as_float(values, what)
    if array.ndim == 1:
        return array[:, None]
    if array.ndim != 2:
        raise DataError(
            f"{what} must be 2-D (n_times, n_columns) or 1-D, got shape {array.shape}; "
            "time is axis -2 and the variables are axis -1."
        )
    return array


def _split_trajectories(values: ArrayLike, what: str) -> tuple[str, list[np.ndarray]]:
    """('single' | 'list' | 'stacked', one (n_times, n_columns) array per trajectory)."""
    if isinstance(values, list | tuple):
        if not values:
            raise DataError(f"{what} is an empty list; give at least one trajectory.")
        return "list", [_as_matrix(item, f"{what}[{i}]") for i, item in enumerate(values)]
    array = _as_float(values, what)
    if array.ndim == 3:
        if not array.shape[0]:
            raise DataError(f"{what} has shape {array.shape}: no trajectories; give at least one.")
        return "stacked", list(array)
    return "single", [_as_matrix(array, what)]


def _times_per_trajectory(t: ArrayLike, lengths: list[int]) -> list:
    if isinstance(t, list | tuple) and t and not np.isscalar(t[0]):
        pieces = list(t)
    else:
        array = np.asarray(t)
        pieces = list(array) if array.ndim == 2 else [array] * len(lengths)
    if len(pieces) != len(lengths):
        raise DataError(f"got {len(pieces)} time arrays for {len(lengths)} trajectories; give one each.")
    times = []
    for i, (piece, length) in enumerate(zip(pieces, lengths)):
        piece = np.asarray(piece)
        if piece.ndim != 1 or piece.shape[0] != length:
            raise DataError(
                f"trajectory {i}: t has shape {piece.shape} but X has {length} rows; give one "
                "time per row (time is axis -2 of X)."
            )
        times.append(read_times(piece, f"t of trajectory {i}"))
    return times


def _inputs_per_trajectory(u: ArrayLike, lengths: list[int]) -> list[np.ndarray]:
    _, inputs = _split_trajectories(u, "u")
    if len(inputs) != len(lengths):
        raise DataError(
            f"got {len(inputs)} input arrays for {len(lengths)} trajectories; give one each."
        )
    for i, (block, length) in enumerate(zip(inputs, lengths)):
        if block.shape[0] != length:
            raise DataError(f"trajectory {i}: u has {block.shape[0]} rows but X has {length}.")
    if len({block.shape[1] for block in inputs}) > 1:
        raise DataError(
            "the input arrays have different numbers of columns; give every trajectory the "
            "same inputs."
        )
    return inputs


def _names(given: Sequence[Hashable] | None, count: int, prefix: str, what: str) -> list[Hashable]:
    if given is None:
        return [f"{prefix}{i}" for i in range(count)]
    names: list[Hashable] = [given] if isinstance(given, str) else list(given)
    if len(names) != count:
        raise DataError(f"{what} has {len(names)} names for {count} columns.")
    return names
