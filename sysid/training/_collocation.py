"""Warm start by collocation: fit the field to smoothed derivatives before any ODE solve.

Each state of each trajectory is smoothed with a penalised cubic spline
(:func:`scipy.interpolate.make_smoothing_spline`, which handles irregular times) whose
strength is chosen once per state by generalised cross-validation on a few
representative windows (:func:`smoothing_strengths`) and reused for every trajectory
(a single record of up to 1,000 samples gets GCV on the whole of it): GCV per
trajectory cost ten times the fit itself (194 s of a 227 s fit at 1,000 trajectories,
6.9 s per state of a 10,000-sample record; benchmarks/). The field is then regressed
onto the spline's derivative at the sample times. No solver is involved, so hundreds of steps cost well under a second,
and the shooting stage starts from a field that already points the right way
(Roesch et al. 2021, "Collocation based training of neural ordinary differential
equations"). The smoothed states also initialise the segment start states.

Augmented (never observed) dimensions get a derivative embedding: the k-th one starts
as the scaled smoothed derivative of observed state k (Takens' theorem says an observed
state and its derivatives span the hidden dynamics generically), so a position-only
record starts with a velocity-like hidden state rather than a constant zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.interpolate import make_smoothing_spline
from scipy.optimize import minimize_scalar

_MIN_POINTS = 5  # make_smoothing_spline needs at least five points
_OVERSMOOTHED = 100.0  # scipy's GCV fit is replaced when its mean square residual is this many GCV minima
_GCV_WINDOW = 200  # samples of a representative window on which the smoothing strength is chosen
# Rows of the collocation regression per forward/backward pass. Each row holds about 3 KB of
# activations and gradients in flight with the default (64, 64) network, so 512 rows are
# ~1.5 MB, less than a whole 1,000-sample record: a long record's warm start then peaks no
# higher than a short one's. 2,048 rows (6 MB in flight) left 13-16 MB of resident heap
# at 10,000 samples (glibc keeps freed 1 MiB blocks), against 3-4 MB with 512; 256 rows
# cost ~30% more time per step, 512 about 5% more than 2,048 (benchmarks/memory.py).
_CHUNK_ROWS = 512
_GCV_TRAJECTORIES = 3  # representative trajectories per state (the median strength is kept)
_GCV_WHOLE = 1_000  # a single record up to this long: scipy's GCV on the whole of it


@dataclass(frozen=True)
class Smoothed:
    """Smoothed states and their first two time derivatives at every row (NaN where unavailable)."""

    values: np.ndarray
    derivatives: np.ndarray
    second_derivatives: np.ndarray


def binary_unit(y: np.ndarray) -> float:
    """A power of two that brings the largest finite magnitude of ``y`` into [0.5, 1); 1 if there is none.

    The splines and their GCV square the data: at magnitudes near 1e-300 the squares
    underflow to 0 (and near 1e300 overflow), and the smoothing fails silently. Scaling
    by a power of two first is exact in floating point, so data of ordinary magnitude
    give the same bits with or without it.

    Examples
    --------
    >>> 0.5 <= binary_unit(np.array([3e-300, np.nan])) * 3e-300 < 1.0
    True
    >>> binary_unit(np.array([0.75, -0.5]))
    1.0
    """
    finite = np.abs(np.asarray(y, dtype=float))
    finite = finite[np.isfinite(finite)]
    peak = float(finite.max()) if finite.size else 0.0
    return float(np.ldexp(1.0, -int(np.frexp(peak)[1]))) if peak > 0 else 1.0


def gcv_strength(t: np.ndarray, y: np.ndarray) -> float:
    """The smoothing strength ``lam`` of :func:`~scipy.interpolate.make_smoothing_spline` minimising GCV.

    The criterion is scipy's own (generalised cross-validation, Craven and Wahba 1979),
    ``n * |y - S y|^2 / (n - tr S)^2`` for the smoother matrix ``S`` of scipy's spline,
    evaluated through the public API (``S`` is the spline fitted to the identity's
    columns) because scipy does not return the ``lam`` its GCV picks. The search runs
    over ``lam`` in units of the mean sample spacing (so it does not depend on the time
    unit): a grid of decades, then a bounded scalar search around the best.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> t = np.sort(rng.uniform(0, 10, 60))
    >>> y = np.sin(t) + 0.05 * rng.standard_normal(60)
    >>> lam = gcv_strength(t, y)
    >>> fit = make_smoothing_spline(t, y, lam=lam)
    >>> bool(np.sqrt(np.mean((fit(t) - np.sin(t)) ** 2)) < 0.05)
    True
    """
    return _gcv_search(t, y)[0]


def _gcv_search(t: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """:func:`gcv_strength`'s ``lam`` and the GCV score there (an estimate of the mean square error
    of predicting a new sample, noise included)."""
    t = np.asarray(t, dtype=float)
    y = np.asarray(y, dtype=float)
    y = y * binary_unit(y)  # exact; the score is then in units of that power of two
    n = len(t)
    h = (t[-1] - t[0]) / (n - 1)
    u = (t - t[0]) / h  # unit mean spacing: lam on u is lam / h**3 on t
    probe = np.column_stack([y, np.eye(n)])

    def score(log_lam: float) -> float:
        fitted = make_smoothing_spline(u, probe, lam=10.0**log_lam)(u)
        residual = y - fitted[:, 0]
        return float(n * residual @ residual / max(n - np.trace(fitted[:, 1:]), 1e-12) ** 2)

    grid = np.arange(-6.0, 7.0)
    scores = [score(g) for g in grid]
    best = grid[int(np.argmin(scores))]
    found = minimize_scalar(score, bounds=(best - 1.0, best + 1.0), method="bounded", options={"xatol": 0.02})
    log_lam, least = (float(found.x), float(found.fun)) if found.fun <= min(scores) else (float(best), min(scores))
    return 10.0**log_lam * h**3, least


def smoothing_strengths(times: Sequence[np.ndarray], ys: Sequence[np.ndarray]) -> np.ndarray:
    """One smoothing strength per state, chosen by GCV on representative windows (NaN: per trajectory).

    For one record of at most ``_GCV_WHOLE`` samples an entry is NaN: :func:`smooth_trajectory`
    then lets scipy choose by GCV on the whole record (under a second per state), unless
    scipy's fit leaves residuals whose mean square is over ``_OVERSMOOTHED`` times the GCV
    score at the minimum of :func:`gcv_strength`'s grid on the whole record: then that
    grid's strength. scipy's search can stop on a straight line through a fast oscillation
    (a 5 Hz swing sampled at 50 Hz with 1% noise: residuals of the signal's size, 1,700
    times the grid's score; Silverbox's record the same), and its fit is kept otherwise
    because where GCV has no interior minimum (the curve falls all the way to interpolation,
    as on EMPS's smooth position record) scipy's choice and the grid's edge differ, and the
    grid's, measured, did worse (EMPS 0.022 -> 0.41, docs/neural_ode.md). Otherwise
    :func:`gcv_strength` runs on windows of ``_GCV_WINDOW``
    observed samples (a short trajectory is one window), up to three spread along each of
    the first ``_GCV_TRAJECTORIES`` trajectories that observe the state at least five
    times, and the median (in log) is kept for every trajectory (NaN for a state no
    trajectory observes enough). Sharing one strength assumes the trajectories share their
    sampling density and noise level, as repeated experiments do. It pools them: on 3
    Lotka-Volterra runs of 60 irregular samples at 10% noise SparseODE's coefficient error
    fell from 0.080 (GCV per run) to 0.004. And it costs one fixed-strength spline per
    trajectory and state instead of a GCV search each (194 s of a 227 s fit at 1,000
    trajectories before). A window from the start of a long record alone was measured to
    be unrepresentative: on the cascaded tanks record (one trajectory, 717 samples) the
    strength from its first 200 samples gave the augmented NeuralODE a test error of
    2.75 V, against 1.30 V with GCV on the whole record.

    Examples
    --------
    >>> import numpy as np
    >>> t = [np.linspace(0, 6, 50)] * 4
    >>> lam = smoothing_strengths(t, [np.sin(tt)[:, None] for tt in t])
    >>> lam.shape, bool(np.isfinite(lam).all())
    ((1,), True)
    >>> bool(np.isnan(smoothing_strengths(t[:1], [np.sin(t[0])[:, None]])).all())  # one record: scipy's GCV
    True
    """
    n_states = ys[0].shape[1]
    out = np.full(n_states, np.nan)
    if len(times) == 1 and len(times[0]) <= _GCV_WHOLE:
        for j in range(n_states):
            out[j] = _unless_oversmoothed(times[0], ys[0][:, j])
        return out
    for j in range(n_states):
        chosen: list[float] = []
        used = 0
        for t, y in zip(times, ys):
            seen = ~np.isnan(y[:, j])
            n_seen = int(seen.sum())
            if n_seen < _MIN_POINTS:
                continue
            tj, yj = t[seen], y[seen, j]
            n_windows = min(3, -(-n_seen // _GCV_WINDOW))
            for first in np.linspace(0, max(n_seen - _GCV_WINDOW, 0), n_windows).astype(int):
                try:
                    chosen.append(
                        np.log(gcv_strength(tj[first : first + _GCV_WINDOW], yj[first : first + _GCV_WINDOW]))
                    )
                except (ValueError, np.linalg.LinAlgError):
                    continue
            used += 1
            if used == _GCV_TRAJECTORIES:
                break
        if chosen:
            out[j] = float(np.exp(np.median(chosen)))
    return out


def _unless_oversmoothed(t: np.ndarray, y: np.ndarray) -> float:
    """NaN (scipy's own GCV) for one record's state, or the grid's strength where scipy's fit oversmooths."""
    seen = ~np.isnan(y)
    if not _MIN_POINTS <= seen.sum() <= _GCV_WHOLE:  # the grid's cost grows as the square of the samples
        return np.nan
    t, y = t[seen], y[seen]
    y = y * binary_unit(y)  # exact: residual and GCV score in the same units, no underflow
    try:
        residual = y - make_smoothing_spline(t, y)(t)
        lam, least = _gcv_search(t, y)
    except (ValueError, np.linalg.LinAlgError):
        return np.nan
    return lam if float(np.mean(residual**2)) > _OVERSMOOTHED * least else np.nan


def smooth_trajectory(t: np.ndarray, y: np.ndarray, lam: np.ndarray | None = None) -> Smoothed:
    """Smoothing-spline fit of each column of ``y`` (NaN = missing) over times ``t``.

    ``lam`` gives each column's smoothing strength (e.g. from :func:`smoothing_strengths`).
    Without it, scipy chooses each by GCV on this trajectory alone unless that fit
    oversmooths (the check of :func:`smoothing_strengths`, for up to ``_GCV_WHOLE``
    samples); where an entry of ``lam`` is NaN, scipy chooses it, unchecked.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.linspace(0, 3, 40)
    >>> s = smooth_trajectory(t, np.sin(t)[:, None])
    >>> bool(np.allclose(s.derivatives[5:-5, 0], np.cos(t[5:-5]), atol=1e-2))
    True
    """
    if lam is None:
        lam = np.array([_unless_oversmoothed(t, y[:, j]) for j in range(y.shape[1])])
    values = np.full(y.shape, np.nan)
    derivs = np.full(y.shape, np.nan)
    second = np.full(y.shape, np.nan)
    for j in range(y.shape[1]):
        seen = ~np.isnan(y[:, j])
        if seen.sum() < _MIN_POINTS:
            continue
        strength = None if lam is None or not np.isfinite(lam[j]) else float(lam[j])
        unit = binary_unit(y[seen, j])  # exact scaling: data of magnitude 1e-300 are smoothed too
        try:
            spline = make_smoothing_spline(t[seen], y[seen, j] * unit, lam=strength)
        except ValueError:
            continue
        inside = (t >= t[seen][0]) & (t <= t[seen][-1])
        values[inside, j] = spline(t[inside]) / unit
        derivs[inside, j] = spline.derivative()(t[inside]) / unit
        second[inside, j] = spline.derivative(2)(t[inside]) / unit
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
    return Smoothed(
        np.hstack([smoothed.values, hidden]),
        np.hstack([smoothed.derivatives, hidden_rate]),
        np.hstack([smoothed.second_derivatives, np.full((n, n_augment), np.nan)]),
    )


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
    chunk_rows: int = _CHUNK_ROWS,
    parameters: Sequence[torch.nn.Parameter] | None = None,
    penalty: Callable[[], torch.Tensor | None] | None = None,
) -> float:
    """Regress ``field`` onto smoothed derivatives; returns the final loss (scaled units).

    Dimensions beyond the smoothed columns are set to zero and their derivatives are
    not fitted (give hidden dimensions values with :func:`embed_derivatives`). Rows where
    a state has no smoothed derivative are
    masked. The error is measured in units of state spread per ``time_unit``. Every
    step is a full-batch Adam step; its gradient is accumulated over ``chunk_rows``
    rows at a time, so memory does not grow with the number of samples (the result is
    the single-batch one up to the order of floating-point sums). ``parameters`` are those
    trained (default: every parameter of ``field`` that requires a gradient). ``penalty``
    (the field part's, e.g. :class:`~sysid.fields.LinearMLP`'s ``network_penalty``) is added
    to every step's loss, evaluated once per step over its own points (not in chunks: its
    memory grows with the record, as the shooting's penalty does).
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
    params = [p for p in (field.parameters() if parameters is None else parameters) if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    n_seen = mask_t.sum()
    # Full-batch steps, their gradient accumulated over chunks of rows: the network's saved
    # activations never exceed one chunk, whatever the record's length (the whole record at
    # once added ~40 MB at 10,000 samples, 2,048-row chunks ~14 MB; benchmarks/memory.py).
    chunks = [slice(i, i + chunk_rows) for i in range(0, xt.shape[0], chunk_rows)]
    loss = 0.0
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = 0.0
        for rows_ in chunks:
            pred = field(tt[rows_], xt[rows_], None if ut is None else ut[rows_])[:, :n_obs] * weight
            part = ((pred - target_t[rows_]) * mask_t[rows_]).pow(2).sum() / n_seen
            part.backward()
            loss += float(part.detach())
        extra = None if penalty is None else penalty()
        if extra is not None:
            extra.backward()
            loss += float(extra.detach())
        optimizer.step()
    return float(loss)
