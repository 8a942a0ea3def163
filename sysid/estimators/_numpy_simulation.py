"""Simulation in numpy for the torch-free estimators (ClassicalODE, SINDy).

:func:`simulate_numpy` runs a :mod:`scipy.integrate` solver step by step with a budget and a
divergence guard; :func:`first_state`, :func:`data_scale` and :func:`warn_failures` are what
both estimators need around it, and :func:`vector_field_args` validates the arguments of
their ``vector_field``. No torch here.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.integrate

from sysid.errors import DataError, SolverWarning
from sysid.estimators._base import TrajectoryEstimator, as_finite_numbers
from sysid.trajectories import Trajectories, Trajectory

__all__ = ["SOLVERS", "SimulationResult", "data_scale", "first_state", "simulate_numpy", "vector_field_args",
           "warn_failures"]

SOLVERS: dict[str, type] = {
    name: getattr(scipy.integrate, name) for name in ("RK23", "RK45", "DOP853", "Radau", "BDF", "LSODA")
}
"""The :mod:`scipy.integrate` solvers accepted by name (those of ``solve_ivp``)."""

DIVERGENCE_FACTOR = 1e3
"""A simulation has diverged once a state exceeds this many times its data scale."""

SOLVER_ERRORS = (ArithmeticError, ValueError, np.linalg.LinAlgError)
DEFAULT_STEP_BUDGET = 20_000


# ----------------------------------------------------------------------- simulation
@dataclass
class SimulationResult:
    """Output of :func:`simulate_numpy`.

    Attributes
    ----------
    y : array (n_times, n_states)
        States at the requested times; NaN from the first time the solver did not reach.
    failed_at : float or None
        Time of the last accepted solver step before a failure, None on success.
    reason : str
        Why the simulation stopped early ("" on success).
    n_evals : int
        Right-hand-side evaluations.
    """

    y: np.ndarray
    failed_at: float | None
    reason: str
    n_evals: int


def linear_inputs(t: np.ndarray, u: np.ndarray | None) -> Callable[[float], np.ndarray | None]:
    """Inputs at any time: linear interpolation of the samples ``u`` at ``t`` (held at the ends).

    Examples
    --------
    >>> import numpy as np
    >>> signal = linear_inputs(np.array([0.0, 2.0]), np.array([[0.0], [4.0]]))
    >>> signal(0.5).tolist(), linear_inputs(np.array([0.0, 1.0]), None)(0.5) is None
    ([1.0], True)
    """
    if u is None or u.shape[1] == 0:
        return lambda s: None
    times = np.asarray(t, dtype=float)
    columns = [np.ascontiguousarray(u[:, k], dtype=float) for k in range(u.shape[1])]
    if len(columns) == 1:
        (only,) = columns
        return lambda s: np.array([np.interp(s, times, only)])
    return lambda s: np.array([np.interp(s, times, c) for c in columns])


def simulate_numpy(
    rhs: Callable[[float, np.ndarray], np.ndarray],
    t: np.ndarray,
    x0: np.ndarray,
    method: str = "LSODA",
    rtol: float = 1e-7,
    atol: float | np.ndarray = 1e-9,
    max_steps: int = DEFAULT_STEP_BUDGET,
    bound: np.ndarray | None = None,
) -> SimulationResult:
    """Integrate ``dx/dt = rhs(t, x)`` from ``x0`` at ``t[0]``; report failures instead of hanging.

    The loop is the one :func:`scipy.integrate.solve_ivp` runs (``solver.step()`` then
    dense output at the requested times), driven here so that it can stop early and
    keep what was computed: after ``max_steps`` accepted or rejected steps, when a
    state becomes non-finite or leaves ``|x| <= bound``, when the solver reports a
    failure, or when ``rhs`` raises an arithmetic/value error.

    Parameters
    ----------
    rhs : callable ``rhs(t, x) -> dx/dt``
    t : array (n_times,)
        Increasing output times; the simulation starts at ``t[0]``.
    x0 : array (n_states,)
    method : one of :data:`SOLVERS`
    rtol : float
    atol : float or array (n_states,)
    max_steps : int
        Step budget of the solver.
    bound : array (n_states,), optional
        Divergence threshold per state (absolute value).

    Returns
    -------
    SimulationResult

    Examples
    --------
    >>> import numpy as np
    >>> t = np.linspace(0.0, 2.0, 5)
    >>> ok = simulate_numpy(lambda s, x: -x, t, np.array([1.0]))
    >>> np.allclose(ok.y[:, 0], np.exp(-t), rtol=1e-5), ok.failed_at
    (True, None)
    >>> blow = simulate_numpy(lambda s, x: x**2, t, np.array([1.0]), bound=np.array([100.0]))
    >>> blow.reason, bool(np.isnan(blow.y[-1, 0])), blow.failed_at < 1.0
    ('a state left the bounded region |x| <= [100.0]', True, True)
    """
    times = np.asarray(t, dtype=float)
    start = np.asarray(x0, dtype=float)
    out = np.full((times.size, start.size), np.nan)
    out[0] = start
    if times.size == 1:
        return SimulationResult(out, None, "", 0)
    if not np.all(np.isfinite(start)):
        return SimulationResult(np.full_like(out, np.nan), float(times[0]), "the initial state is not finite", 0)
    reason = ""
    last = float(times[0])
    with np.errstate(all="ignore"):
        try:
            solver = SOLVERS[method](rhs, times[0], start, times[-1], rtol=rtol, atol=atol)
        except SOLVER_ERRORS as exc:
            return SimulationResult(out, last, f"the solver could not start: {exc}", 0)
        filled = 1
        steps = 0
        next_time = times[1]
        limit = np.full(start.size, np.inf) if bound is None else np.asarray(bound, dtype=float)
        while filled < times.size:
            if steps >= max_steps:
                reason = f"the step budget of {max_steps} steps was exhausted"
                break
            try:
                message = solver.step()
            except SOLVER_ERRORS as exc:
                reason = f"{type(exc).__name__}: {exc}"
                break
            steps += 1
            if solver.status == "failed":
                reason = f"the solver failed: {message}"
                break
            state = solver.y
            if not (np.abs(state) <= limit).all():  # also catches NaN and inf
                if np.all(np.isfinite(state)):
                    reason = f"a state left the bounded region |x| <= {np.round(limit, 6).tolist()}"
                else:
                    reason = "a state became non-finite"
                break
            if solver.t >= next_time:
                reached = int(np.searchsorted(times, solver.t, side="right"))
                dense = solver.dense_output()
                out[filled:reached] = np.asarray(dense(times[filled:reached])).T
                filled = reached
                next_time = times[filled] if filled < times.size else np.inf
            last = float(solver.t)
            if solver.status == "finished":
                break
    evals = int(solver.nfev)
    if filled < times.size or reason:
        out[filled:] = np.nan
        return SimulationResult(out, last, reason or "the solver stopped early", evals)
    return SimulationResult(out, None, "", evals)


def first_state(traj: Trajectory) -> np.ndarray:
    """The state at a trajectory's first time: observed values, NaN entries interpolated.

    A state not observed at the first time takes its linear interpolation in time,
    which before the state's first observation is that observation (held constant).

    Examples
    --------
    >>> import numpy as np
    >>> tr = Trajectory(np.arange(3.0), np.array([[1.0, np.nan], [2.0, 5.0], [3.0, 7.0]]), None, 0)
    >>> first_state(tr).tolist()
    [1.0, 5.0]
    """
    x0 = np.array(traj.y[0], dtype=float)
    for j in np.flatnonzero(np.isnan(x0)):
        seen = ~np.isnan(traj.y[:, j])
        if seen.any():
            x0[j] = np.interp(traj.t[0], traj.t[seen], traj.y[seen, j])
    return x0


def data_scale(data: Trajectories) -> np.ndarray:
    """Per-state scale of the data: the largest of max |y| and the observed range (never 0)."""
    low, high = data.observed_range()
    scale = np.maximum(np.maximum(np.abs(low), np.abs(high)), high - low)
    return np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)


def warn_failures(owner: str, failures: list[tuple[Any, float, str]]) -> None:
    """One SolverWarning naming every trajectory whose simulation failed."""
    if not failures:
        return
    described = "; ".join(f"{name!r} at t={when:.6g} ({why})" for name, when, why in failures)
    warnings.warn(
        f"{owner}: the simulation of {len(failures)} trajectory(ies) failed: {described}. "
        "Predictions after the failure are NaN (see simulation_failed_).",
        SolverWarning,
        stacklevel=4,
    )


def vector_field_args(
    model: TrajectoryEstimator, x: Any, t: Any, u: Any
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray | None], bool]:
    """Validated (points, times, inputs per point, single) for ``vector_field``: finite numbers only."""
    points = as_finite_numbers(x, "x")
    single = points.ndim == 1
    points = np.atleast_2d(points)
    if points.ndim != 2 or points.shape[1] != model.n_states_in_:
        raise DataError(
            f"x must have shape (n_states,) or (n_points, n_states) with n_states={model.n_states_in_} "
            f"(states {model.state_names_}), got shape {np.shape(x)}."
        )
    n = points.shape[0]
    t_arr = as_finite_numbers(t, "t")
    try:
        times = np.broadcast_to(t_arr, (n,))
    except ValueError:
        raise DataError(f"t must be a number or an array of {n} times, got shape {np.shape(t)}.") from None
    if model.n_controls_in_:
        if u is None:
            raise DataError(
                f"the model was fitted with inputs {model.input_names_}: pass u= with shape "
                f"({model.n_controls_in_},) or ({n}, {model.n_controls_in_})."
            )
        u_arr = as_finite_numbers(u, "u")
        try:
            uu = np.broadcast_to(np.atleast_2d(u_arr), (n, model.n_controls_in_))
        except ValueError:
            raise DataError(
                f"u must have shape ({model.n_controls_in_},) or ({n}, {model.n_controls_in_}) for inputs "
                f"{model.input_names_}, got shape {np.shape(u)}."
            ) from None
        inputs: list[np.ndarray | None] = list(uu)
    else:
        if u is not None:
            raise DataError("the model was fitted without inputs, but u= was given.")
        inputs = [None] * n
    return points, times, inputs, single
