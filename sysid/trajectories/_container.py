"""The canonical data container: :class:`Trajectory` and :class:`Trajectories`.

Plain numpy inside, labels kept on the side so that the adapters can put predictions
back into the caller's own format. This module never imports pandas, xarray, torch or the
adapters (they register the writers behind ``to_pandas``/``to_xarray``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, overload

import numpy as np

from sysid.errors import DataError
from sysid.trajectories._validation import (
    validate_inputs,
    validate_matrix,
    validate_names,
    validate_states,
    validate_times,
)

TimeKind = Literal["float", "datetime", "timedelta"]
_NS_PER_S = 1_000_000_000

#: The functions behind :meth:`Trajectories.to_pandas` / :meth:`Trajectories.to_xarray`, by format.
#: :mod:`sysid.adapters` registers them when it is imported (``import sysid`` does), so that the
#: dependency runs one way, adapters -> trajectories: this module never imports the adapters.
_WRITERS: dict[str, Callable[[Trajectories], Any]] = {}


def register_writer(kind: str, writer: Callable[[Trajectories], Any]) -> None:
    """Make ``writer(data)`` the function behind ``Trajectories.to_<kind>()`` (``kind``: "pandas", "xarray").

    Called by :mod:`sysid.adapters` on import; not needed in user code.
    """
    _WRITERS[kind] = writer


def _writer(kind: str) -> Callable[[Trajectories], Any]:
    try:
        return _WRITERS[kind]
    except KeyError:
        raise DataError(
            f"no {kind} writer is registered: import sysid.adapters (or sysid) before calling to_{kind}()."
        ) from None


def _is_missing_label(name: Hashable) -> bool:
    """True for NaN and NaT labels (floats, numpy scalars), which equal nothing, not even themselves."""
    try:
        return bool(name != name)  # the NaN test that works for float, numpy float and NaT
    except (TypeError, ValueError):
        return False


def _readonly(arr: np.ndarray) -> np.ndarray:
    arr = np.array(arr, dtype=np.float64, copy=True)
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True, eq=False)
class Trajectory:
    """One experiment: times, observed states, optional inputs, a name and a time origin.

    Parameters
    ----------
    t : array of shape (n_times,)
        Strictly increasing float times, in seconds from ``origin`` for datetime data,
        in the caller's own unit for float times (then ``origin`` is 0).
    y : array of shape (n_times, n_states)
        Observations; NaN marks "not observed at that time".
    u : array of shape (n_times, n_inputs) or None
        Known inputs (controls) at the same times; never NaN.
    name : hashable
        The trajectory's label (the value of the caller's trajectory column).
    origin : float, numpy.datetime64 or numpy.timedelta64
        The absolute time of ``t == 0``.

    Notes
    -----
    Construct through :class:`Trajectories` or the adapters; they validate. The arrays
    are read-only.
    """

    t: np.ndarray
    y: np.ndarray
    u: np.ndarray | None
    name: Hashable
    origin: Any = 0.0

    @property
    def n_times(self) -> int:
        """Number of time stamps."""
        return int(self.t.shape[0])

    @property
    def observed(self) -> np.ndarray:
        """Boolean mask (n_times, n_states): True where a state was measured."""
        return ~np.isnan(self.y)

    @property
    def duration(self) -> float:
        """Time between the first and the last stamp."""
        return float(self.t[-1] - self.t[0])

    def absolute_times(self, kind: TimeKind) -> np.ndarray:
        """Times in the caller's representation: float, datetime64[ns] or timedelta64[ns]."""
        if kind == "float":
            return self.t + self.origin if self.origin else self.t.copy()
        offsets = np.round(self.t * _NS_PER_S).astype("int64").astype("timedelta64[ns]")
        return np.asarray(self.origin) + offsets

    def replace(self, **changes: Any) -> Trajectory:
        """A new trajectory with some fields changed (not validated: internal use)."""
        values = {
            "t": self.t,
            "y": self.y,
            "u": self.u,
            "name": self.name,
            "origin": self.origin,
        }
        values.update(changes)
        return Trajectory(**values)


@dataclass(frozen=True)
class UnionGrid:
    """All trajectories' time stamps merged: what one batched solve integrates over.

    Attributes
    ----------
    times : array (n_union,)
        Sorted unique times over all trajectories (each on its own origin).
    positions : list of int arrays
        ``times[positions[i]]`` equals trajectory ``i``'s times.
    mask : bool array (n_trajectories, n_union)
        True where the time belongs to trajectory ``i``.
    """

    times: np.ndarray
    positions: list[np.ndarray]
    mask: np.ndarray


class VariableCounts:
    """``n_states`` and ``n_inputs`` of a collection with ``state_names`` and ``input_names``."""

    state_names: Sequence[Hashable]
    input_names: Sequence[Hashable]

    @property
    def n_states(self) -> int:
        """Number of state columns."""
        return len(self.state_names)

    @property
    def n_inputs(self) -> int:
        """Number of input columns."""
        return len(self.input_names)


@dataclass(eq=False)
class Trajectories(VariableCounts, Sequence[Trajectory]):
    """A validated collection of experiments sharing state and input names.

    Parameters
    ----------
    trajectories : sequence of Trajectory
        The experiments. Each is validated here: finite strictly increasing times,
        states of shape (n_times, n_states) with NaN for missing values and at least
        two observed times, inputs finite where given.
    state_names, input_names : sequence of hashable
        Column names of ``y`` and ``u``: usually str, or the caller's labels as they were
        (a DataFrame's integer columns stay integers).
    time_kind : {"float", "datetime", "timedelta"}
        How the caller wrote times; predictions go back in that representation.
    attrs : dict
        Free metadata (dataset attributes).
    variable_attrs : dict
        Per state/input attributes such as ``{"prey": {"units": "1/km2"}}``.
    source : dict
        What the adapters need to rebuild the caller's layout (column names, index).

    Examples
    --------
    >>> import numpy as np
    >>> from sysid import Trajectories
    >>> data = Trajectories.from_arrays([np.arange(4.0)], [np.ones((4, 2))], state_names=["a", "b"])
    >>> len(data), data.state_names, data[0].n_times
    (1, ('a', 'b'), 4)
    """

    trajectories: Sequence[Trajectory]
    state_names: Sequence[Hashable]
    input_names: Sequence[Hashable] = ()
    time_kind: TimeKind = "float"
    attrs: dict[str, Any] = field(default_factory=dict)
    variable_attrs: dict[Hashable, dict[str, Any]] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.state_names, self.input_names = validate_names(self.state_names, self.input_names)
        if self.time_kind not in ("float", "datetime", "timedelta"):
            raise DataError(f"time_kind must be 'float', 'datetime' or 'timedelta', got {self.time_kind!r}.")
        trajs = list(self.trajectories)
        if not trajs:
            raise DataError("no trajectories: the data is empty. Pass at least one experiment.")
        names: set[Hashable] = set()
        checked = []
        for traj in trajs:
            if not isinstance(traj, Trajectory):
                raise DataError(f"expected Trajectory objects, got {type(traj).__name__}.")
            if _is_missing_label(traj.name):  # NaN != NaN: two of them would both pass the uniqueness check
                raise DataError(
                    f"trajectory name {traj.name!r} is a missing value (NaN/NaT); give every trajectory its own label."
                )
            if traj.name in names:
                raise DataError(f"trajectory name {traj.name!r} appears twice; names must be unique.")
            names.add(traj.name)
            checked.append(self._validated(traj))
        self.trajectories = tuple(checked)
        never = [
            s
            for j, s in enumerate(self.state_names)
            if not any(np.any(~np.isnan(tr.y[:, j])) for tr in self.trajectories)
        ]
        if never:
            raise DataError(
                f"state {never[0]!r} is never observed in any trajectory (all NaN); "
                "drop it from the states, or use n_augment for an unmeasured state."
            )

    def _validated(self, traj: Trajectory) -> Trajectory:
        t = validate_times(traj.t, traj.name)
        y = validate_matrix(traj.y, t.size, self.state_names, "states", traj.name)
        validate_states(y, t, self.state_names, traj.name)
        u = None
        if self.input_names:
            if traj.u is None:
                raise DataError(
                    f"trajectory {traj.name!r}: inputs {list(self.input_names)} were declared "
                    "but this trajectory has none."
                )
            u = validate_matrix(traj.u, t.size, self.input_names, "inputs", traj.name)
            validate_inputs(u, t, self.input_names, traj.name)
        elif traj.u is not None and np.size(traj.u):
            raise DataError(f"trajectory {traj.name!r} carries inputs but no input_names were given.")
        return Trajectory(_readonly(t), _readonly(y), None if u is None else _readonly(u), traj.name, traj.origin)

    # ----------------------------------------------------------------- constructors
    @classmethod
    def from_arrays(
        cls,
        t: np.ndarray | Sequence[np.ndarray],
        y: np.ndarray | Sequence[np.ndarray],
        u: np.ndarray | Sequence[np.ndarray] | None = None,
        *,
        state_names: Sequence[Hashable] | None = None,
        input_names: Sequence[Hashable] | None = None,
        names: Sequence[Hashable] | None = None,
    ) -> Trajectories:
        """Build from numpy arrays: one trajectory, or lists of them (ragged lengths allowed).

        Parameters
        ----------
        t : array (n_times,) or list of such arrays
        y : array (n_times, n_states) or list of such arrays
        u : array (n_times, n_inputs), list of such arrays, or None
        state_names, input_names : names; default ``x0, x1, ...`` and ``u0, u1, ...``
        names : trajectory names; default ``0, 1, ...``

        Examples
        --------
        >>> import numpy as np
        >>> data = Trajectories.from_arrays(
        ...     [np.linspace(0, 1, 5), np.linspace(0, 2, 7)], [np.zeros((5, 1)), np.zeros((7, 1))]
        ... )
        >>> [tr.n_times for tr in data], data.state_names
        ([5, 7], ('x0',))
        """
        single = isinstance(t, np.ndarray) or (isinstance(t, Sequence) and len(t) > 0 and np.isscalar(t[0]))
        # Array-likes until Trajectories validates them (as_float_array names the trajectory at fault).
        ts: list[Any] = [t] if single else list(t)
        ys: list[Any] = [y] if single else list(y)
        if len(ys) != len(ts):
            raise DataError(f"got {len(ts)} time arrays but {len(ys)} state arrays; give one per trajectory.")
        if u is None:
            us: list[Any] = [None] * len(ts)
        else:
            us = [u] if single else list(u)
            if len(us) != len(ts):
                raise DataError(f"got {len(ts)} time arrays but {len(us)} input arrays; give one per trajectory.")
        first_y = np.asarray(ys[0], dtype=float)
        n_states = 1 if first_y.ndim == 1 else first_y.shape[-1]
        if state_names is None:
            state_names = [f"x{i}" for i in range(n_states)]
        if input_names is None:
            if us[0] is None:
                input_names = []
            else:
                first_u = np.asarray(us[0], dtype=float)
                input_names = [f"u{i}" for i in range(1 if first_u.ndim == 1 else first_u.shape[-1])]
        if names is None:
            names = list(range(len(ts)))
        if len(names) != len(ts):
            raise DataError(f"got {len(names)} names for {len(ts)} trajectories.")
        trajs = [Trajectory(ti, yi, ui, ni) for ti, yi, ui, ni in zip(ts, ys, us, names)]
        return cls(trajs, state_names=list(state_names), input_names=list(input_names))

    # --------------------------------------------------------------- sequence API
    def __len__(self) -> int:
        return len(self.trajectories)

    def __iter__(self) -> Iterator[Trajectory]:
        return iter(self.trajectories)

    @overload
    def __getitem__(self, key: int | str) -> Trajectory: ...

    @overload
    def __getitem__(self, key: slice | list[Hashable] | np.ndarray) -> Trajectories: ...

    def __getitem__(self, key: Any) -> Trajectory | Trajectories:
        """Index by position, by name, or select several (slice / list) as a new Trajectories.

        A numpy array of integer positions (or booleans) selects by position, as numpy
        does; scikit-learn's cross-validation indexes data this way (see :attr:`shape`).
        """
        if isinstance(key, tuple) and len(key) == 2 and key[1] is Ellipsis:
            key = key[0]  # sklearn.utils._safe_indexing writes data[indices, ...]
        if isinstance(key, np.ndarray):
            return self._take(key)
        if isinstance(key, slice):
            return self.subset(self.trajectories[key])
        if isinstance(key, list | tuple) and not (isinstance(key, tuple) and key in self.names):
            return self.subset([self._lookup(k) for k in key])
        return self._lookup(key)

    def _lookup(self, key: Hashable) -> Trajectory:
        if key in self.names:
            return self.trajectories[self.names.index(key)]
        if isinstance(key, int | np.integer) and not isinstance(key, bool):
            if -len(self) <= key < len(self):
                return self.trajectories[int(key)]
            raise IndexError(f"trajectory index {key} out of range for {len(self)} trajectories.")
        raise KeyError(f"no trajectory named {key!r}; names are {list(self.names)}.")

    def _take(self, positions: np.ndarray) -> Trajectories:
        if positions.dtype == bool:
            if positions.shape != (len(self),):
                raise IndexError(f"a boolean index needs {len(self)} values, got shape {positions.shape}.")
            positions = np.flatnonzero(positions)
        if positions.ndim != 1 or not (positions.size == 0 or np.issubdtype(positions.dtype, np.integer)):
            raise IndexError(
                f"an array index must be 1-D integer positions or booleans, got dtype {positions.dtype} "
                f"and shape {positions.shape}."
            )
        bad = positions[(positions < -len(self)) | (positions >= len(self))]
        if bad.size:
            raise IndexError(f"trajectory index {int(bad[0])} out of range for {len(self)} trajectories.")
        return self.subset([self.trajectories[int(i)] for i in positions])

    @property
    def shape(self) -> tuple[int]:
        """``(n_trajectories,)``: lets scikit-learn index trajectories like array rows.

        With it, ``sklearn.utils._safe_indexing`` (used by ``GridSearchCV`` and
        ``cross_validate``) selects a fold as ``data[positions]``, a Trajectories,
        instead of a plain list of Trajectory objects.
        """
        return (len(self),)

    @property
    def names(self) -> list[Hashable]:
        """The trajectory names, in order."""
        return [tr.name for tr in self.trajectories]

    @property
    def n_observations(self) -> int:
        """Total number of observed state entries."""
        return int(sum(np.count_nonzero(tr.observed) for tr in self.trajectories))

    def __repr__(self) -> str:
        lengths = [tr.n_times for tr in self.trajectories]
        return (
            f"Trajectories(n_trajectories={len(self)}, states={list(self.state_names)}, "
            f"inputs={list(self.input_names)}, n_times={lengths if len(lengths) <= 6 else sum(lengths)}, "
            f"time_kind={self.time_kind!r})"
        )

    def __str__(self) -> str:
        """What ``print(data)`` shows: experiments, rows and spans, states, inputs and missing entries.

        Examples
        --------
        >>> import numpy as np
        >>> data = Trajectories.from_arrays(
        ...     [np.arange(3.0), np.arange(2.0)],
        ...     [np.array([[1.0, np.nan], [2.0, 1.0], [3.0, 1.0]]), np.ones((2, 2))],
        ...     state_names=["prey", "predator"],
        ...     names=["a", "b"],
        ... )
        >>> print(data)
        Trajectories: 2 experiments ['a', 'b'], float times
          rows:    3 and 2 (5 in all), time spans 2 and 1
          states:  prey, predator
          inputs:  none
          missing: prey 0 of 5, predator 1 of 5 (NaN: not observed)
        """
        names = self.names
        shown = repr(names) if len(names) <= 6 else f"[{', '.join(map(repr, names[:5]))}, ...]"
        rows = [tr.n_times for tr in self]
        spans = [tr.duration for tr in self]
        if len(self) == 1:
            counts, lengths = f"{rows[0]}", f"time span {spans[0]:g}"
        elif len(self) == 2:
            counts = f"{rows[0]} and {rows[1]} ({sum(rows)} in all)"
            lengths = f"time spans {spans[0]:g} and {spans[1]:g}"
        else:
            per = f"{min(rows)}" if min(rows) == max(rows) else f"{min(rows)} to {max(rows)}"
            counts = f"{per} per experiment ({sum(rows)} in all)"
            lengths = f"time spans {min(spans):g} to {max(spans):g}"
        unit = " (seconds)" if self.time_kind != "float" else ""
        y = np.concatenate([tr.y for tr in self])
        gaps = np.isnan(y).sum(axis=0)
        text = "none"
        if gaps.any():
            text = ", ".join(f"{s} {int(n)} of {y.shape[0]}" for s, n in zip(self.state_names, gaps))
            text += " (NaN: not observed)"
        return "\n".join(
            [
                f"Trajectories: {len(self)} experiment{'s' if len(self) != 1 else ''} {shown}, {self.time_kind} times",
                f"  rows:    {counts}, {lengths}{unit}",
                f"  states:  {', '.join(map(str, self.state_names))}",
                f"  inputs:  {', '.join(map(str, self.input_names)) or 'none'}",
                f"  missing: {text}",
            ]
        )

    # ------------------------------------------------------------------ derived
    def subset(self, trajectories: Sequence[Trajectory]) -> Trajectories:
        """A Trajectories with the same names and metadata holding ``trajectories``."""
        return Trajectories(
            list(trajectories),
            self.state_names,
            self.input_names,
            self.time_kind,
            dict(self.attrs),
            {k: dict(v) for k, v in self.variable_attrs.items()},
            dict(self.source),
        )

    def with_states(self, ys: Sequence[np.ndarray], state_names: Sequence[Hashable] | None = None) -> Trajectories:
        """Same times, inputs and labels with new state values (e.g. predictions).

        Examples
        --------
        >>> import numpy as np
        >>> data = Trajectories.from_arrays(np.arange(3.0), np.zeros((3, 1)))
        >>> data.with_states([np.ones((3, 1))])[0].y.ravel().tolist()
        [1.0, 1.0, 1.0]
        """
        if len(ys) != len(self):
            raise DataError(f"got {len(ys)} state arrays for {len(self)} trajectories.")
        names = tuple(self.state_names if state_names is None else state_names)
        trajs = []
        for tr, y in zip(self.trajectories, ys):
            y = np.asarray(y, dtype=np.float64)
            if y.shape != (tr.n_times, len(names)):
                raise DataError(
                    f"trajectory {tr.name!r}: states must have shape ({tr.n_times}, {len(names)}), got {y.shape}."
                )
            trajs.append(tr.replace(y=_readonly(y)))
        # Model output, not measurements: times and inputs are already validated, and a
        # failed simulation may be all NaN (flagged by the estimator), so skip the checks.
        out = object.__new__(Trajectories)
        out.__dict__.update(
            trajectories=tuple(trajs),
            state_names=names,
            input_names=self.input_names,
            time_kind=self.time_kind,
            attrs=dict(self.attrs),
            variable_attrs={k: dict(v) for k, v in self.variable_attrs.items()},
            source=dict(self.source),
        )
        return out

    def union_grid(self) -> UnionGrid:
        """All time stamps merged, with where each trajectory's times sit in the union.

        Examples
        --------
        >>> import numpy as np
        >>> data = Trajectories.from_arrays(
        ...     [np.array([0.0, 1.0, 3.0]), np.array([0.0, 2.0])], [np.zeros((3, 1)), np.zeros((2, 1))]
        ... )
        >>> grid = data.union_grid()
        >>> grid.times.tolist(), grid.mask.astype(int).tolist()
        ([0.0, 1.0, 2.0, 3.0], [[1, 1, 0, 1], [1, 0, 1, 0]])
        """
        times = np.unique(np.concatenate([tr.t for tr in self.trajectories]))
        positions = [np.searchsorted(times, tr.t) for tr in self.trajectories]
        mask = np.zeros((len(self), times.size), dtype=bool)
        for i, pos in enumerate(positions):
            mask[i, pos] = True
        return UnionGrid(times, positions, mask)

    def split(
        self,
        test_trajectories: Sequence[Hashable] | None = None,
        time_fraction: float | None = None,
    ) -> tuple[Trajectories, Trajectories]:
        """Hold out whole experiments, or the tail of every experiment.

        Parameters
        ----------
        test_trajectories : names (or positions) of the experiments to hold out.
        time_fraction : float in (0, 1)
            Keep this fraction of each trajectory's time span in the first part; the
            rest (strictly later times) goes to the second part, for extrapolation tests.

        Returns
        -------
        (train, test) or (past, future)

        Examples
        --------
        >>> import numpy as np
        >>> data = Trajectories.from_arrays([np.arange(10.0)] * 3, [np.ones((10, 1))] * 3, names=["r1", "r2", "r3"])
        >>> train, test = data.split(test_trajectories=["r3"])
        >>> train.names, test.names
        (['r1', 'r2'], ['r3'])
        >>> past, future = data.split(time_fraction=0.8)
        >>> past[0].t.max(), future[0].t.min()
        (np.float64(7.0), np.float64(8.0))
        """
        if (test_trajectories is None) == (time_fraction is None):
            raise DataError("split needs exactly one of test_trajectories= or time_fraction=.")
        if test_trajectories is not None:
            if isinstance(test_trajectories, str | int):
                test_trajectories = [test_trajectories]
            try:
                held = [self._lookup(k) for k in test_trajectories]
            except (KeyError, IndexError) as exc:
                raise DataError(f"test_trajectories: {exc.args[0]}") from None
            held_ids = {id(tr) for tr in held}
            kept = [tr for tr in self.trajectories if id(tr) not in held_ids]
            if not held:
                raise DataError("test_trajectories is empty: name at least one trajectory to hold out.")
            if not kept:
                raise DataError(f"holding out {list(test_trajectories)} leaves no trajectory to train on.")
            return self.subset(kept), self.subset(held)
        fraction = float(time_fraction)  # type: ignore[arg-type]
        if not 0.0 < fraction < 1.0:
            raise DataError(f"time_fraction must be in (0, 1), got {time_fraction!r}.")
        past: list[Trajectory] = []
        future: list[Trajectory] = []
        for tr in self.trajectories:
            cut = tr.t[0] + fraction * (tr.t[-1] - tr.t[0])
            head = tr.t <= cut
            for part, sel in ((past, head), (future, ~head)):
                part.append(tr.replace(t=tr.t[sel], y=tr.y[sel], u=None if tr.u is None else tr.u[sel]))
        try:
            return self.subset(past), self.subset(future)
        except DataError as exc:
            raise DataError(
                f"time_fraction={fraction} leaves a part with fewer than two observed times: {exc}"
            ) from None

    # ---------------------------------------------------------------- adapters
    def to_pandas(self) -> Any:
        """This data as a long-format pandas DataFrame with the original labels.

        See :func:`sysid.adapters.to_pandas`.
        """
        return _writer("pandas")(self)

    def to_xarray(self) -> Any:
        """This data as an xarray Dataset with the original labels and attributes.

        See :func:`sysid.adapters.to_xarray`.
        """
        return _writer("xarray")(self)

    def observed_range(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-state (min, max) over every observed entry."""
        y = np.concatenate([tr.y for tr in self.trajectories])
        return np.nanmin(y, axis=0), np.nanmax(y, axis=0)
