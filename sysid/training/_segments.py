"""Cut trajectories into short segments for multiple shooting."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Segments:
    """Short windows of every trajectory, padded to one length for a batched solve.

    Segment ``s`` covers rows ``start_row[s] .. start_row[s] + length`` of trajectory
    ``traj[s]``; consecutive segments share their boundary row. In the solver's time
    ``tau`` the k-th row of a segment sits at ``tau = k``, so segments with different
    irregular sample times share the output grid ``0, 1, ..., length``. Rows past a
    trajectory's end repeat its last time (the segment is frozen there) and are masked.

    Attributes
    ----------
    traj : int array (n_seg,)
    start_row : int array (n_seg,)
    time_knots : float array (n_seg, length + 1)
        Data time at ``tau = 0..length``.
    observations : float array (n_seg, length + 1, n_states)
        Scaled observations with missing entries set to 0.
    observed : bool array (n_seg, length + 1, n_states)
    next_segment : int array (n_seg,)
        The following segment of the same trajectory, -1 for the last one.
    first_segment : int array (n_traj,)
    """

    traj: np.ndarray
    start_row: np.ndarray
    time_knots: np.ndarray
    observations: np.ndarray
    observed: np.ndarray
    next_segment: np.ndarray
    first_segment: np.ndarray

    @property
    def length(self) -> int:
        """Intervals per segment."""
        return self.time_knots.shape[1] - 1

    def __len__(self) -> int:
        return int(self.traj.shape[0])


def make_segments(times: Sequence[np.ndarray], observations: Sequence[np.ndarray], length: int) -> Segments:
    """Cut each trajectory into segments of ``length`` intervals.

    Parameters
    ----------
    times : list of arrays (n_i,)
    observations : list of arrays (n_i, n_states), NaN where missing
    length : int
        Intervals per segment; a trajectory shorter than that is one padded segment.

    Examples
    --------
    >>> import numpy as np
    >>> seg = make_segments([np.arange(7.0)], [np.zeros((7, 1))], length=3)
    >>> seg.start_row.tolist(), seg.next_segment.tolist(), seg.time_knots[-1].tolist()
    ([0, 3], [1, -1], [3.0, 4.0, 5.0, 6.0])
    >>> seg = make_segments([np.arange(6.0)], [np.zeros((6, 1))], length=3)
    >>> seg.time_knots[-1].tolist(), seg.observed[-1, :, 0].tolist()
    ([3.0, 4.0, 5.0, 5.0], [True, True, True, False])
    """
    rows = np.arange(length + 1)
    traj: list[int] = []
    start: list[int] = []
    knots: list[np.ndarray] = []
    obs: list[np.ndarray] = []
    seen: list[np.ndarray] = []
    nxt: list[int] = []
    first: list[int] = []
    for i, (t, y) in enumerate(zip(times, observations)):
        n = len(t)
        starts = list(range(0, max(n - 1, 1), length))
        first.append(len(traj))
        for j, s in enumerate(starts):
            idx = np.minimum(s + rows, n - 1)
            valid = (s + rows) <= n - 1
            traj.append(i)
            start.append(s)
            knots.append(t[idx])
            y_seg = y[idx]
            mask = ~np.isnan(y_seg) & valid[:, None]
            obs.append(np.where(mask, y_seg, 0.0))
            seen.append(mask)
            nxt.append(len(traj) if j < len(starts) - 1 else -1)
    return Segments(
        traj=np.asarray(traj), start_row=np.asarray(start), time_knots=np.asarray(knots, dtype=float),
        observations=np.asarray(obs, dtype=float), observed=np.asarray(seen), next_segment=np.asarray(nxt),
        first_segment=np.asarray(first),
    )


def interpolate_missing(t: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fill NaN entries of each column by linear interpolation in time (nearest at the ends).

    Examples
    --------
    >>> import numpy as np
    >>> interpolate_missing(np.arange(4.0), np.array([[np.nan], [1.0], [np.nan], [3.0]])).ravel().tolist()
    [1.0, 1.0, 2.0, 3.0]
    """
    out = np.array(y, dtype=float, copy=True)
    for j in range(out.shape[1]):
        seen = ~np.isnan(out[:, j])
        if seen.any() and not seen.all():
            out[~seen, j] = np.interp(t[~seen], t[seen], out[seen, j])
        elif not seen.any():
            out[:, j] = 0.0
    return out
