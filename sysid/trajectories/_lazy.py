"""Trajectories that stay where they are (e.g. Dask chunks) until a minibatch needs them.

:class:`LazyTrajectories` knows the names, the state and input names, how the
trajectories are grouped into blocks (the chunks they are stored in) and the summary
statistics of all of them; :meth:`LazyTrajectories.load` materialises only the
trajectories asked for, as an ordinary validated :class:`~sysid.Trajectories`. It is
built by :meth:`LazyTrajectories.scan`, which validates every block once, in one pass,
and keeps the statistics only. The adapters create it (``sysid.from_xarray(...,
lazy=True)``); this module knows nothing of xarray or Dask.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sysid.errors import DataError
from sysid.trajectories._container import TimeKind, Trajectories, Trajectory, VariableCounts
from sysid.trajectories._summary import DataSummary

Reader = Callable[[np.ndarray], list[Trajectory]]
"""Reads the trajectories at the given sorted positions (raw: validated by the caller)."""


@dataclass(eq=False)
class LazyTrajectories(VariableCounts):
    """Experiments read on demand, block by block, with their statistics known up front.

    Build with :meth:`scan` (or ``sysid.from_xarray(..., lazy=True)``), which checks
    every trajectory once; afterwards only :meth:`load` reads data.

    Attributes
    ----------
    names : list
        Trajectory names, in order.
    state_names, input_names : tuple of hashable (usually str)
    blocks : list of int arrays
        Consecutive positions stored together (e.g. one Dask chunk each): reading one
        block costs one read of its storage.
    summary : DataSummary
        Moments of the observed states and inputs, durations and lengths of all trajectories.
    time_kind, attrs, variable_attrs, source
        As for :class:`~sysid.Trajectories`; :meth:`load` passes them on.

    Examples
    --------
    >>> import numpy as np
    >>> from sysid.trajectories import LazyTrajectories, Trajectory
    >>> stored = {i: Trajectory(np.arange(4.0), np.full((4, 1), float(i)), None, f"r{i}") for i in range(6)}
    >>> data = LazyTrajectories.scan([f"r{i}" for i in range(6)], [np.arange(0, 3), np.arange(3, 6)],
    ...                              lambda rows: [stored[int(i)] for i in rows], state_names=["x"])
    >>> len(data), data.summary.states.mean.tolist()
    (6, [2.5])
    >>> [rows.tolist() for rows in data.minibatches(2)]
    [[0, 1], [2], [3, 4], [5]]
    >>> data.load([4, 1]).names
    ['r4', 'r1']
    """

    names: list[Hashable]
    state_names: tuple[Hashable, ...]
    input_names: tuple[Hashable, ...]
    blocks: list[np.ndarray]
    summary: DataSummary
    reader: Reader
    time_kind: TimeKind = "float"
    attrs: dict[str, Any] = field(default_factory=dict)
    variable_attrs: dict[Hashable, dict[str, Any]] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def scan(
        cls,
        names: Sequence[Hashable],
        blocks: Sequence[Sequence[int] | np.ndarray],
        reader: Reader,
        *,
        state_names: Sequence[Hashable],
        input_names: Sequence[Hashable] = (),
        time_kind: TimeKind = "float",
        attrs: dict[str, Any] | None = None,
        variable_attrs: dict[Hashable, dict[str, Any]] | None = None,
        source: dict[str, Any] | None = None,
    ) -> LazyTrajectories:
        """Validate every block once, keep its statistics, drop its data.

        Parameters
        ----------
        names : trajectory names, unique, one per position
        blocks : position groups covering ``0 .. len(names) - 1`` once each, in order
        reader : callable
            ``reader(positions)`` returns those trajectories as a list of
            :class:`~sysid.trajectories.Trajectory`, in position order; it is called once
            per block here and again by :meth:`load`.
        state_names, input_names, time_kind, attrs, variable_attrs, source
            As for :class:`~sysid.Trajectories`.

        Raises
        ------
        DataError
            As :class:`~sysid.Trajectories` does (naming the trajectory, column and row),
            for duplicate names, and for a state never observed in any trajectory.
        """
        names = list(names)
        if not names:
            raise DataError("no trajectories: the data is empty. Pass at least one experiment.")
        seen: set[Hashable] = set()
        for name in names:
            if name in seen:
                raise DataError(f"trajectory name {name!r} appears twice; names must be unique.")
            seen.add(name)
        arrays = [np.asarray(b, dtype=int) for b in blocks]
        covered = np.concatenate(arrays) if arrays else np.zeros(0, dtype=int)
        if not np.array_equal(covered, np.arange(len(names))):
            raise DataError(f"blocks must cover positions 0..{len(names) - 1} once each, in order.")
        lazy = cls(names, tuple(state_names), tuple(input_names), arrays,
                   DataSummary.empty(len(state_names), len(input_names)), reader, time_kind,
                   dict(attrs or {}), dict(variable_attrs or {}), dict(source or {}))
        for block in arrays:
            lazy.summary.add(lazy.load(block))  # validated here; the block is dropped after
        never = [s for s, n in zip(lazy.state_names, lazy.summary.states.count) if n == 0]
        if never:
            raise DataError(
                f"state {never[0]!r} is never observed in any trajectory (all NaN); "
                "drop it from the states, or use n_augment for an unmeasured state."
            )
        return lazy

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return (f"LazyTrajectories(n_trajectories={len(self)}, states={list(self.state_names)}, "
                f"inputs={list(self.input_names)}, n_blocks={len(self.blocks)}, time_kind={self.time_kind!r})")

    def load(self, positions: Sequence[int] | np.ndarray) -> Trajectories:
        """The trajectories at ``positions``, read now and validated, in that order.

        One call of the reader with the sorted positions: what it reads from storage is up
        to the reader (the xarray adapter's reads only the blocks holding them, one at a time).
        """
        positions = np.asarray(positions, dtype=int).reshape(-1)
        if positions.size == 0:
            raise DataError("load needs at least one trajectory position.")
        bad = positions[(positions < 0) | (positions >= len(self))]
        if bad.size:
            raise IndexError(f"trajectory position {int(bad[0])} out of range for {len(self)} trajectories.")
        order = np.unique(positions)
        found = dict(zip(order.tolist(), self.reader(order)))
        if len(found) != order.size:
            raise DataError(f"the reader returned {len(found)} trajectories for {order.size} positions.")
        return Trajectories([found[int(i)] for i in positions], self.state_names, self.input_names,
                            self.time_kind, dict(self.attrs), {k: dict(v) for k, v in self.variable_attrs.items()},
                            dict(self.source))

    def minibatches(self, size: int | None = None) -> list[np.ndarray]:
        """Groups of positions that each read one block: the blocks, cut into pieces of at most ``size``.

        ``size=None`` gives the blocks themselves.
        """
        if size is None:
            return [b.copy() for b in self.blocks]
        if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
            raise DataError(f"the minibatch size must be a positive integer or None, got {size!r}.")
        return [piece for b in self.blocks for piece in np.array_split(b, -(-b.size // int(size)))]
