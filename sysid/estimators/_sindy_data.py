"""The data SINDy regresses: fully observed pieces of the trajectories, and their noise level.

pysindy needs complete rows on each piece it differentiates; :class:`PiecesMixin` makes
them from trajectories with missing values (``missing="interpolate"`` or ``"split"``) and
says what it changed. :func:`noise_std` estimates the noise that sets the smoothing of
``differentiation="spline"`` (``SparseODE``'s candidate selection uses it too).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from sysid.errors import DataError, FitWarning
from sysid.trajectories import Trajectories, Trajectory


def noise_std(pieces: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Per-state noise level from the scatter of each sample about a local quadratic.

    Works on irregular times: each sample is compared with the quadratic fitted through
    its two neighbours on either side (itself left out); the residual, divided by its
    standard deviation under pure noise (``sqrt(1 + leverage)``), is noise plus a small
    third-order curvature term. 1.4826 times the median absolute value estimates the
    standard deviation of Gaussian noise. Pieces shorter than 5 samples fall back to the
    line through the two direct neighbours.
    """
    residuals = []
    for t, y in pieces:
        n = t.size
        if n >= 5:
            for i in range(2, n - 2):
                near = np.array([i - 2, i - 1, i + 1, i + 2])
                basis = np.vander(t[near] - t[i], 3)
                gram_inv = np.linalg.inv(basis.T @ basis)
                value_at_i = gram_inv @ basis.T @ y[near]  # quadratic coefficients; constant term last
                residuals.append((y[i] - value_at_i[-1]) / np.sqrt(1.0 + gram_inv[-1, -1]))
        elif n >= 3:
            w = ((t[1:-1] - t[:-2]) / (t[2:] - t[:-2]))[:, None]
            line = (1.0 - w) * y[:-2] + w * y[2:]
            residuals.extend((y[1:-1] - line) / np.sqrt(1.0 + w**2 + (1.0 - w) ** 2))
    if not residuals:
        return np.zeros(pieces[0][1].shape[1])
    return 1.4826 * np.median(np.abs(np.array(residuals)), axis=0)


class PiecesMixin:
    """Missing-value handling of :class:`~sysid.estimators.SINDy` (its ``missing`` and ``differentiation``)."""

    if TYPE_CHECKING:  # SINDy's parameters (declared for mypy only)
        missing: str
        differentiation: Any

    def _pieces(self, data: Trajectories, min_rows: int) -> list[Trajectory]:
        """Fully observed pieces of the trajectories, per ``missing``; warns about what changed."""
        pieces: list[Trajectory] = []
        touched: dict[Any, int] = {}
        dropped: dict[Any, int] = {}
        n_pieces_cut = 0
        trimmed_rows = 0
        for tr in data:
            seen = tr.observed
            if seen.all():
                parts = [tr]
            elif self.missing == "interpolate":
                first = max(int(np.argmax(seen[:, j])) for j in range(seen.shape[1]))
                last = min(seen.shape[0] - 1 - int(np.argmax(seen[::-1, j])) for j in range(seen.shape[1]))
                if last < first:
                    parts = []
                    dropped[tr.name] = tr.n_times
                    continue
                y = np.array(tr.y)
                for j in range(y.shape[1]):
                    gap = ~seen[:, j]
                    if gap.any():
                        y[gap, j] = np.interp(tr.t[gap], tr.t[seen[:, j]], tr.y[seen[:, j], j])
                rows = slice(first, last + 1)
                touched[tr.name] = int(np.count_nonzero(~seen[rows]))
                trimmed_rows += tr.n_times - (last + 1 - first)
                parts = [tr.replace(t=tr.t[rows], y=y[rows], u=None if tr.u is None else tr.u[rows])]
            else:
                full = seen.all(axis=1)
                touched[tr.name] = int(np.count_nonzero(~seen))
                edges = np.flatnonzero(np.diff(np.concatenate([[0], full.astype(int), [0]])))
                parts = [
                    tr.replace(t=tr.t[a:b], y=tr.y[a:b], u=None if tr.u is None else tr.u[a:b], name=(tr.name, k))
                    for k, (a, b) in enumerate(zip(edges[::2], edges[1::2]))
                ]
                n_pieces_cut += len(parts)
            for part in parts:
                if part.n_times >= min_rows:
                    pieces.append(part)
                else:  # every part comes from tr (split pieces are named (tr.name, k)): count it under tr
                    dropped[tr.name] = dropped.get(tr.name, 0) + part.n_times
        if touched:
            if self.missing == "interpolate":
                what = (
                    f"filled {sum(touched.values())} missing entries by linear interpolation in time "
                    f"and trimmed {trimmed_rows} edge rows where a state was not observed"
                )
            else:
                what = (
                    f"cut them at rows with missing entries ({sum(touched.values())} missing entries) "
                    f"into {n_pieces_cut} fully observed pieces"
                )
            warnings.warn(
                f"SINDy(missing={self.missing!r}): trajectories {list(touched)} have missing values; {what}.",
                FitWarning,
                stacklevel=4,
            )
        if dropped:
            warnings.warn(
                f"SINDy: dropped {sum(dropped.values())} rows of trajectories {list(dropped)}: pieces shorter than "
                f"{min_rows} rows cannot be differentiated with differentiation={self._diff_label()}.",
                FitWarning,
                stacklevel=4,
            )
        if not pieces:
            raise DataError(
                f"SINDy: no trajectory piece has at least {min_rows} consecutive usable rows after handling missing "
                f"values with missing={self.missing!r}; got trajectories of {[tr.n_times for tr in data]} rows. "
                "Use missing='interpolate', a differentiation method needing fewer rows ('finite_difference' needs 3), "
                "or more data."
            )
        return pieces

    def _diff_label(self) -> str:
        diff = self.differentiation
        return repr(diff) if isinstance(diff, str) else type(diff).__name__
