"""Warm start by collocation: fit the field to smoothed derivatives before any ODE solve.

Each state of each trajectory is smoothed with a penalised cubic spline chosen by
generalised cross-validation (:func:`scipy.interpolate.make_smoothing_spline`, which
handles irregular times); the field is then regressed onto the spline's derivative at
the sample times. No solver is involved, so hundreds of steps cost well under a second,
and the shooting stage starts from a field that already points the right way
(Roesch et al. 2021, "Collocation based training of neural ordinary differential
equations"). The smoothed states also initialise the segment start states.

Augmented (never observed) dimensions get a derivative embedding: the k-th one starts
as the scaled smoothed derivative of observed state k (Takens' theorem says an observed
state and its derivatives span the hidden dynamics generically), so a position-only
record starts with a velocity-like hidden state rather than a constant zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.interpolate import make_smoothing_spline

_MIN_POINTS = 5  # make_smoothing_spline needs at least five points


@dataclass(frozen=True)
class Smoothed:
    """Smoothed states and their first two time derivatives at every row (NaN where unavailable)."""

    values: np.ndarray
    derivatives: np.ndarray
    second_derivatives: np.ndarray


def smooth_trajectory(t: np.ndarray, y: np.ndarray) -> Smoothed:
    """Smoothing-spline fit of each column of ``y`` (NaN = missing) over times ``t``.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.linspace(0, 3, 40)
    >>> s = smooth_trajectory(t, np.sin(t)[:, None])
    >>> bool(np.allclose(s.derivatives[5:-5, 0], np.cos(t[5:-5]), atol=1e-2))
    True
    """
    values = np.full(y.shape, np.nan)
    derivs = np.full(y.shape, np.nan)
    second = np.full(y.shape, np.nan)
    for j in range(y.shape[1]):
        seen = ~np.isnan(y[:, j])
        if seen.sum() < _MIN_POINTS:
            continue
        try:
            spline = make_smoothing_spline(t[seen], y[seen, j])
        except ValueError:
            continue
        inside = (t >= t[seen][0]) & (t <= t[seen][-1])
        values[inside, j] = spline(t[inside])
        derivs[inside, j] = spline.derivative()(t[inside])
        second[inside, j] = spline.derivative(2)(t[inside])
    return Smoothed(values, derivs, second)


def embed_derivatives(smoothed: Smoothed, n_augment: int, spread: np.ndarray, time_unit: float) -> Smoothed:
    """Append ``n_augment`` hidden dimensions built from the observed states' derivatives.

    Hidden dimension k is ``time_unit / spread[j] * dx_j/dt`` with ``j = k`` (order one,
    like the scaled states); hidden dimensions beyond the number of observed states stay
    zero and are not fitted. Their derivatives come from the spline's second derivative.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.linspace(0, 6, 80)
    >>> e = embed_derivatives(smooth_trajectory(t, np.sin(t)[:, None]), 1, np.array([1.0]), 1.0)
    >>> bool(np.allclose(e.values[10:-10, 1], np.cos(t[10:-10]), atol=1e-2))
    True
    """
    n, n_obs = smoothed.values.shape
    hidden, hidden_rate = np.zeros((n, n_augment)), np.full((n, n_augment), np.nan)
    k = min(n_augment, n_obs)
    gain = time_unit / np.asarray(spread, dtype=float)[:k]
    hidden[:, :k] = smoothed.derivatives[:, :k] * gain
    hidden_rate[:, :k] = smoothed.second_derivatives[:, :k] * gain
    return Smoothed(np.hstack([smoothed.values, hidden]), np.hstack([smoothed.derivatives, hidden_rate]),
                    np.hstack([smoothed.second_derivatives, np.full((n, n_augment), np.nan)]))


def collocation_fit(
    field: torch.nn.Module,
    times: Sequence[np.ndarray],
    smoothed: Sequence[Smoothed],
    inputs: Sequence[np.ndarray | None],
    n_dims: int,
    spread: np.ndarray,
    time_unit: float,
    steps: int,
    lr: float,
    dtype: torch.dtype,
) -> float:
    """Regress ``field`` onto smoothed derivatives; returns the final loss (scaled units).

    Dimensions beyond the smoothed columns are set to zero and their derivatives are
    not fitted (give hidden dimensions values with :func:`embed_derivatives`). Rows where a state has no smoothed derivative are
    masked. The error is measured in units of state spread per ``time_unit``.
    """
    n_obs = smoothed[0].values.shape[1]
    x = np.concatenate([s.values for s in smoothed])
    dx = np.concatenate([s.derivatives for s in smoothed])
    t = np.concatenate(list(times))
    rows = ~np.isnan(x).any(axis=1)
    if rows.sum() < 2 or steps <= 0:
        return float("nan")
    x_full = np.zeros((int(rows.sum()), n_dims))
    x_full[:, :n_obs] = x[rows]
    target = dx[rows]
    mask = ~np.isnan(target)
    as_t = lambda a: torch.as_tensor(a, dtype=dtype)  # noqa: E731
    xt, tt = as_t(x_full), as_t(t[rows])
    ut = None if inputs[0] is None else as_t(np.concatenate(list(inputs))[rows])
    weight = as_t(time_unit / spread[:n_obs])
    target_t = as_t(np.where(mask, target, 0.0)) * weight
    mask_t = torch.as_tensor(mask)
    params = [p for p in field.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    loss = torch.zeros(())
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        pred = field(tt, xt, ut)[:, :n_obs] * weight
        loss = ((pred - target_t) * mask_t).pow(2).sum() / mask_t.sum()
        loss.backward()
        optimizer.step()
    return float(loss.detach())
