"""ClassicalODE: the user's own equations, fitted by nonlinear least squares over simulations.

The model is single shooting: every trajectory is simulated with a scipy solver from
its initial state, and :func:`scipy.optimize.least_squares` moves the parameters (and
the initial states) to shrink simulated-minus-observed residuals over the observed
entries. Multistart from random perturbations of the initial guess is the known cure
for the local minima of single shooting: on Lotka-Volterra from 50% off, one start lands
in a wrong minimum and four find the truth (docs/baselines.md, "Multistart";
benchmarks/recovery.py runs ClassicalODE with 4 starts for this reason).

The numpy simulation it shares with :class:`sysid.SINDy` lives in
:mod:`sysid.estimators._numpy_simulation`. No torch here.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, get_args

import numpy as np
from scipy.optimize import least_squares
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from sysid.errors import ConfigError, DataError, FitError
from sysid.estimators._base import TrajectoryEstimator, warn_if_underdetermined
from sysid.estimators._numpy_simulation import (
    DEFAULT_STEP_BUDGET,
    DIVERGENCE_FACTOR,
    SOLVER_ERRORS,
    SOLVERS,
    SimulationResult,
    data_scale,
    first_state,
    linear_inputs,
    simulate_numpy,
    vector_field_args,
    warn_failures,
)
from sysid.parameters import (
    REWEIGHT,
    ParameterSpec,
    ParametricResults,
    ProfileProblem,
    check_parameters,
    linearised_uncertainty,
    noise_levels,
    relative_change,
    state_spread,
)
from sysid.trajectories import Trajectories, Trajectory

__all__ = ["ClassicalODE"]

Loss = Literal["linear", "soft_l1", "huber", "cauchy", "arctan"]
_LOSSES = get_args(Loss)
# least_squares' diff_step is "None or array_like" and a scalar applies to every variable;
# scipy-stubs accept only arrays, hence the type: ignore[arg-type] on the calls that pass one.
_FAILED_RESIDUAL = 10.0 * DIVERGENCE_FACTOR  # in units of each state's data scale
_START_SPREAD = 3.0  # multistart: log-uniform factors in [1/3, 3] of the initial guess
_SCREEN_NFEV = 10  # multistart screening: residual evaluations per start
_SCREEN_RTOL = 1e-5  # ... at this relative tolerance (or the user's, if looser)


# ----------------------------------------------------------------------- estimator
class ClassicalODE(ParametricResults, TrajectoryEstimator):
    """Fit the parameters of your own ODE model ``dx/dt = f(t, x, p, u)`` by nonlinear least squares.

    Every trajectory is simulated from its initial state with a scipy solver at its own
    times, and :func:`scipy.optimize.least_squares` minimises the simulated-minus-observed
    residuals over every observed entry (NaN entries are skipped), each state's divided
    by its noise level (first its spread; after the fit, the level estimated from its
    residuals, with one refit if the states' relative weights moved by more than 20%).
    The initial states are fitted too (``fit_x0``). ``n_starts > 1`` restarts from random
    log-uniform perturbations of the initial parameters and keeps the lowest cost.
    Uncertainties and the interval table are those of :class:`~sysid.GreyBoxODE`
    (:mod:`sysid.parameters`).

    Parameters
    ----------
    f : callable ``f(t, x, p, u) -> dx/dt``
        ``t`` a float, ``x`` an array (n_states,), ``p`` a dict name -> float, ``u``
        the inputs at ``t`` (array (n_inputs,), linearly interpolated) or None. Returns
        an array-like (n_states,).
    params : dict name -> float
        Start values of the parameters.
    bounds : dict name -> (low, high), optional
        Closed bounds enforced by ``least_squares``, ``None`` for an open side; a start
        on a bound is allowed (:func:`sysid.parameters.check_parameters`).
    fixed : sequence of names, optional
        Parameters held at their initial values.
    fit_x0 : bool, default True
        Fit each trajectory's initial state (starting at its first observation, NaN
        entries interpolated); else use that first observation.
    solver : str, default "LSODA"
        A :func:`scipy.integrate.solve_ivp` method.
    rtol, atol : float, default 1e-8, 1e-10
        Solver tolerances.
    n_starts : int, default 1
        Number of least-squares runs: the initial guess, then ``n_starts - 1`` random
        starts, each free parameter multiplied by a log-uniform factor in [1/3, 3]
        (intersected with its bounds; a zero initial value is drawn uniformly in
        [-1, 1] within its bounds).
    loss : {"linear", "soft_l1", "huber", "cauchy", "arctan"}, default "linear"
        The ``least_squares`` loss (robust losses downweight outliers).
    random_state : int or None
        Seeds the random starts.
    max_nfev : int or None
        Residual evaluations per start (``least_squares``' own default when None).

    Attributes
    ----------
    params_ : dict
        Fitted parameters (fixed ones included).
    params_stderr_ : dict
        Standard errors from the Jacobian J of the weighted residuals at the optimum:
        ``s^2 (J^T J)^-1`` restricted to the parameter block, ``s^2 = |r|^2 / (n_obs - n_free)``.
        0 for fixed parameters, inf for parameters that are not identifiable.
    covariance_ : pandas.DataFrame
        Covariance of the free parameters.
    jacobian_condition_ : float
        Condition number of the column-normalised Jacobian.
    noise_levels_ : dict
        Each state's estimated noise level (its residuals' weight is the inverse).
    residual_variance_ : float
        s^2 (close to 1 when the model fits to the noise level).
    dof_ : int
        n_obs - n_free.
    x0_ : array (n_trajectories, n_states)
        Initial states of the training trajectories.
    cost_ : float
        ``least_squares`` cost at the optimum (half the sum of squared weighted residuals).
    start_costs_ : array (n_starts,)
        Final cost of every start, the initial guess first.
    n_function_evals_ : int
        Evaluations of ``f`` during fit, all starts included.
    n_simulations_ : int
        Simulations of one trajectory during fit.
    n_observations_ : int
        Observed entries fitted.
    unidentifiable_ : list of str
        Parameters (or ``x0[trajectory].state`` entries) along near-null directions of
        the Jacobian (``not_identifiable_``, its former name, still works).
    simulation_failed_ : list
        Names of trajectories whose simulation failed in the last predict/score.

    Examples
    --------
    >>> import numpy as np
    >>> from sysid.estimators._classical import ClassicalODE
    >>> t = np.linspace(0.0, 2.0, 20)
    >>> y = 2.0 * np.exp(-0.7 * t)[:, None]
    >>> decay = lambda t, x, p, u: -p["k"] * x
    >>> model = ClassicalODE(decay, {"k": 0.3}).fit(y, t=t)
    >>> round(model.params_["k"], 6), np.round(model.x0_, 6).tolist()
    (0.7, [[2.0]])
    >>> model.confidence_intervals().columns.tolist()
    ['estimate', 'stderr', 'lower', 'upper', 'status']
    """

    _flags_extrapolation = False  # the equations are the user's: valid as far as the user says

    # Set by _resolve; declared so that mypy knows them in methods it checks first.
    param_names_: list[str]
    initial_params_: np.ndarray
    free_: np.ndarray
    lower_: np.ndarray
    upper_: np.ndarray

    def __init__(
        self,
        f: Callable[..., Any],
        params: Mapping[str, float],
        bounds: Mapping[str, tuple[float | None, float | None]] | None = None,
        fixed: Sequence[str] | None = None,
        fit_x0: bool = True,
        solver: str = "LSODA",
        rtol: float = 1e-8,
        atol: float = 1e-10,
        n_starts: int = 1,
        loss: Loss = "linear",
        random_state: int | None = None,
        max_nfev: int | None = None,
    ) -> None:
        self.f = f
        self.params = params
        self.bounds = bounds
        self.fixed = fixed
        self.fit_x0 = fit_x0
        self.solver = solver
        self.rtol = rtol
        self.atol = atol
        self.n_starts = n_starts
        self.loss = loss
        self.random_state = random_state
        self.max_nfev = max_nfev

    # -- validation ------------------------------------------------------------------
    def _resolve(self) -> None:
        """Check the settings; set ``param_names_``, ``free_``, ``lower_``, ``upper_``."""
        if not callable(self.f):
            raise ConfigError(f"f must be a callable f(t, x, p, u) -> dx/dt, got {type(self.f).__name__}.")
        spec = check_parameters(self.params, self.bounds, self.fixed, "ClassicalODE", allow_empty=False)
        if self.solver not in SOLVERS:
            raise ConfigError(f"solver must be one of {sorted(SOLVERS)}, got {self.solver!r}.")
        for label, tol in (("rtol", self.rtol), ("atol", self.atol)):
            if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not tol > 0:
                raise ConfigError(f"{label} must be a positive number, got {tol!r}.")
        if isinstance(self.n_starts, bool) or not isinstance(self.n_starts, numbers.Integral) or self.n_starts < 1:
            raise ConfigError(f"n_starts must be an integer >= 1, got {self.n_starts!r}.")
        if self.loss not in _LOSSES:
            raise ConfigError(f"loss must be one of {list(_LOSSES)}, got {self.loss!r}.")
        if self.max_nfev is not None and (
            isinstance(self.max_nfev, bool) or not isinstance(self.max_nfev, numbers.Integral) or self.max_nfev < 1
        ):
            raise ConfigError(f"max_nfev must be None or an integer >= 1, got {self.max_nfev!r}.")
        if self.random_state is not None and not isinstance(self.random_state, numbers.Integral | np.random.Generator):
            raise ConfigError(f"random_state must be None or an int, got {self.random_state!r}.")
        if not spec.free.any() and not self.fit_x0:
            raise ConfigError(
                f"ClassicalODE: nothing to fit: every parameter is fixed ({spec.fixed_names}) and fit_x0=False. "
                "Free a parameter or set fit_x0=True."
            )
        self.param_names_ = list(spec.names)
        self.initial_params_ = spec.values.copy()
        self.free_ = spec.free.copy()
        self.lower_ = spec.lower.copy()
        self.upper_ = spec.upper.copy()

    def _check_f(self, data: Trajectories) -> None:
        """Call ``f`` once at the first observation; raise a clear error if it misbehaves."""
        traj = data[0]
        x = first_state(traj)
        u = None if traj.u is None else np.array(traj.u[0])
        p = dict(zip(self.param_names_, self.initial_params_.tolist()))
        try:
            out = np.asarray(self.f(float(traj.t[0]), x, p, u), dtype=float)
        except Exception as exc:  # the user's code: report it, do not bury it in scipy
            raise ConfigError(
                f"f(t, x, p, u) raised {type(exc).__name__}: {exc} when called with t={float(traj.t[0])!r}, "
                f"x={x.tolist()} (states {list(data.state_names)}), p={p}, u={None if u is None else u.tolist()}. "
                "f must return dx/dt as an array of n_states numbers."
            ) from exc
        if out.shape != (data.n_states,):
            raise ConfigError(
                f"f must return dx/dt with shape ({data.n_states},) for states {list(data.state_names)}, "
                f"got shape {out.shape} from f(t={float(traj.t[0])!r}, x={x.tolist()}, p={p}, u=...)."
            )
        if not np.all(np.isfinite(out)):  # no simulation can start: the fit would 'succeed' at the initial guess
            raise FitError(
                f"f(t, x, p, u) returned {out.tolist()} at the first observation (t={float(traj.t[0])!r}, "
                f"x={x.tolist()}) with the initial parameters p={p}: dx/dt must be finite there, or no simulation "
                "can start and the fit cannot move. Check f for a division by zero, a log or sqrt of a negative "
                "number or a missing return value, or start from parameters where f is finite."
            )

    # -- simulation --------------------------------------------------------------------
    def _simulate(self, traj: Trajectory, x0: np.ndarray, theta: np.ndarray,
                  tolerances: tuple[float, float] | None = None) -> SimulationResult:
        p = dict(zip(self.param_names_, theta.tolist()))
        f = self.f
        inputs = linear_inputs(traj.t, traj.u)
        rtol, atol = tolerances or (float(self.rtol), float(self.atol))
        if traj.u is None:
            def rhs(s: float, x: np.ndarray) -> Any:
                return f(s, x, p, None)
        else:
            def rhs(s: float, x: np.ndarray) -> Any:
                return f(s, x, p, inputs(s))
        return simulate_numpy(rhs, traj.t, x0, self.solver, rtol, atol, DEFAULT_STEP_BUDGET,
                              DIVERGENCE_FACTOR * self.scale_)

    def _residuals(self, traj: Trajectory, x0: np.ndarray, theta: np.ndarray,
                   tolerances: tuple[float, float] | None = None) -> tuple[np.ndarray, int]:
        """Observed-entry residuals and the evaluations of f they took.

        Residuals are clipped to a large bound; entries a failed simulation did not
        reach get a larger one that grows with how early the failure came.
        """
        sim = self._simulate(traj, x0, theta, tolerances)
        seen = traj.observed
        penalty = _FAILED_RESIDUAL * np.broadcast_to(self.scale_, traj.y.shape)
        diff = sim.y - np.where(seen, traj.y, 0.0)
        diff = np.clip(diff, -penalty, penalty)
        if sim.failed_at is not None:
            # Past a failure: a large residual that grows with how early the failure came,
            # so that parameters failing later (or not at all) are downhill.
            span = max(float(traj.t[-1] - traj.t[0]), 1e-300)
            early = 1.0 + (traj.t[-1] - sim.failed_at) / span
            diff = np.where(np.isfinite(diff), diff, penalty * early)
        return diff[seen], sim.n_evals

    # -- fitting -----------------------------------------------------------------------
    def _fit(self, data: Trajectories) -> None:
        self._resolve()
        self._check_f(data)
        self.scale_ = data_scale(data)
        with threadpool_limits(1):  # small SVDs: a second BLAS thread only contends (sysid.estimators._parametric)
            self._fit_resolved(data)

    def _fit_resolved(self, data: Trajectories) -> None:
        free = self.free_
        n_theta = int(free.sum())
        starts_x0 = np.array([first_state(tr) for tr in data])
        self.n_observations_ = data.n_observations
        n_free = n_theta + (len(data) * data.n_states if self.fit_x0 else 0)
        warn_if_underdetermined("ClassicalODE", data.n_observations, n_free,
                                unknowns="free parameters (initial states included)", stacklevel=5)
        spread = state_spread(data)
        residuals = _Residuals(self, data, 1.0 / spread, starts_x0)

        def run(z0: np.ndarray, tolerances: tuple[float, float], with_x0: bool, max_nfev: int | None) -> Any:
            n_x0 = residuals.n_x0 if with_x0 else 0
            bounds = (np.concatenate([self.lower_[free], np.full(n_x0, -np.inf)]),
                      np.concatenate([self.upper_[free], np.full(n_x0, np.inf)]))
            return least_squares(residuals.objective(tolerances, with_x0), z0, bounds=bounds, loss=self.loss,
                                 max_nfev=max_nfev, x_scale="jac",
                                 diff_step=max(float(np.sqrt(tolerances[0])), 1e-7))  # type: ignore[arg-type]  # see _LOSSES

        self.diff_step_ = max(float(np.sqrt(self.rtol)), 1e-7)
        rng = np.random.default_rng(self.random_state)
        starts = [self.initial_params_[free]] + [self._perturbed(rng) for _ in range(int(self.n_starts) - 1)]
        first_x0 = starts_x0.ravel() if self.fit_x0 else np.zeros(0)
        full = (float(self.rtol), float(self.atol))
        if len(starts) == 1 or n_theta == 0:
            best = run(np.concatenate([starts[0], first_x0]), full, self.fit_x0, self.max_nfev)
            costs = [float(best.cost)]
        else:
            # Screen every start briefly (parameters only, initial states at the first
            # observations, relaxed tolerance), then refine the best one fully.
            relax = max(1.0, _SCREEN_RTOL / float(self.rtol))
            screen_tol = (float(self.rtol) * relax, float(self.atol) * relax)
            budget = _SCREEN_NFEV if self.max_nfev is None else min(_SCREEN_NFEV, int(self.max_nfev))
            screened = [run(theta0, screen_tol, False, budget) for theta0 in starts]
            costs = [float(r.cost) for r in screened]
            winner = screened[int(np.argmin(costs))].x
            best = run(np.concatenate([winner, first_x0]), full, self.fit_x0, self.max_nfev)
        # Each state's noise level from the residuals; refit once if the states' relative weights move.
        sigma = noise_levels(best.fun / residuals.row_weights, residuals.state_of, spread, best.x.size)
        if relative_change(1.0 / sigma, residuals.weights) > REWEIGHT:
            residuals.set_weights(1.0 / sigma)
            best = run(best.x, full, self.fit_x0, self.max_nfev)
        else:
            factor = (1.0 / sigma)[residuals.state_of] / residuals.row_weights
            residuals.set_weights(1.0 / sigma)
            best.fun, best.jac = best.fun * factor, np.asarray(best.jac) * factor[:, None]
            best.cost = 0.5 * float(best.fun @ best.fun)
        theta, x0 = residuals.unpack(best.x, self.fit_x0)
        self.params_ = dict(zip(self.param_names_, theta.tolist()))
        self.x0_ = np.array(x0, dtype=float)
        self.cost_ = float(best.cost)
        self.start_costs_ = np.array(costs)
        self.n_function_evals_ = int(residuals.evals)
        self.n_simulations_ = int(residuals.simulations)
        self.trajectory_names_ = list(data.names)
        labels = [n for n, keep in zip(self.param_names_, free) if keep]
        if self.fit_x0:
            labels += [f"x0[{tr}].{s}" for tr in data.names for s in data.state_names]
        unc = linearised_uncertainty(best.jac, best.fun, labels, jacobian_noise=self.diff_step_)
        self._store_uncertainty(self._spec(), unc, dict(zip(data.state_names, sigma.tolist())))
        self.simulation_failed_: list[Any] = []

    def _spec(self) -> ParameterSpec:
        return check_parameters(self.params, self.bounds, self.fixed, "ClassicalODE", allow_empty=False)

    def _profile_problem(self, data: Any) -> ProfileProblem:
        trajectories = self._data_like_fit(data, None, None, {})
        if len(trajectories) != len(self.trajectory_names_):
            raise DataError(f"data= must be the training data ({len(self.trajectory_names_)} trajectories), got "
                            f"{len(trajectories)} trajectories.")
        weights = np.array([1.0 / self.noise_levels_[s] for s in trajectories.state_names])
        residuals = _Residuals(self, trajectories, weights, self.x0_)
        objective = residuals.objective((float(self.rtol), float(self.atol)), self.fit_x0)
        free = self.free_
        theta = np.array([self.params_[n] for n in self.param_names_])[free]
        n_x0 = residuals.n_x0 if self.fit_x0 else 0
        return ProfileProblem(objective, np.concatenate([theta, self.x0_.reshape(-1)[:n_x0]]),
                              np.concatenate([self.lower_[free], np.full(n_x0, -np.inf)]),
                              np.concatenate([self.upper_[free], np.full(n_x0, np.inf)]),
                              diff_step=self.diff_step_)

    @property
    def not_identifiable_(self) -> list[str]:
        """Former name of ``unidentifiable_`` (kept so that code using it keeps working)."""
        return self.unidentifiable_

    def _perturbed(self, rng: np.random.Generator) -> np.ndarray:
        """One random start: log-uniform factors of the free initial parameters, within bounds."""
        out = []
        for value, low, high in zip(self.initial_params_[self.free_], self.lower_[self.free_], self.upper_[self.free_]):
            if value == 0.0:  # no scale to perturb: uniform in [-1, 1] within the bounds
                out.append(rng.uniform(max(low, -1.0), min(high, 1.0)))
                continue
            lo, hi = abs(value) / _START_SPREAD, abs(value) * _START_SPREAD
            if value > 0:  # intersect with the bounds, in magnitude, on the value's side of zero
                lo, hi = max(lo, low), min(hi, high)
            else:
                lo, hi = max(lo, -high), min(hi, -low)
            drawn = np.exp(rng.uniform(np.log(lo), np.log(hi))) if 0 < lo < hi else abs(value)
            out.append(float(np.sign(value) * drawn))
        return np.array(out, dtype=float)

    # -- prediction --------------------------------------------------------------------
    def _estimate_x0(self, traj: Trajectory, theta: np.ndarray) -> np.ndarray:
        """Initial state fitted to the trajectory's observations with the parameters fixed."""
        start = first_state(traj)

        def residuals(x0: np.ndarray) -> np.ndarray:
            return self._residuals(traj, x0, theta)[0]

        try:
            result = least_squares(
                residuals, start, loss=self.loss, x_scale="jac",
                diff_step=max(float(np.sqrt(self.rtol)), 1e-7),  # type: ignore[arg-type]
                max_nfev=50 * start.size,
            )
        except SOLVER_ERRORS:
            return start
        return result.x if result.cost <= 0.5 * np.sum(self._residuals(traj, start, theta)[0] ** 2) else start

    def _predict(self, data: Trajectories, x0: np.ndarray | None) -> list[np.ndarray]:
        theta = np.array([self.params_[n] for n in self.param_names_])
        out, failures = [], []
        for i, traj in enumerate(data):
            start = x0[i] if x0 is not None else self._estimate_x0(traj, theta)
            sim = self._simulate(traj, np.asarray(start, dtype=float), theta)
            if sim.failed_at is not None:
                failures.append((traj.name, sim.failed_at, sim.reason))
            out.append(sim.y)
        self.simulation_failed_ = [name for name, _, _ in failures]
        warn_failures("ClassicalODE", failures)
        return out

    def vector_field(self, x: Any, t: Any = 0.0, u: Any = None) -> np.ndarray:
        """The fitted right-hand side ``f(t, x, params_, u)``.

        Parameters
        ----------
        x : array (n_states,) or (n_points, n_states)
        t : float or array (n_points,)
        u : array (n_inputs,) or (n_points, n_inputs); required when fitted with inputs

        Returns
        -------
        array shaped like ``x``
        """
        check_is_fitted(self)
        points, times, inputs, single = vector_field_args(self, x, t, u)
        p = dict(self.params_)
        values = np.array([np.asarray(self.f(float(s), xi, p, ui), dtype=float).reshape(-1)
                           for s, xi, ui in zip(times, points, inputs)])
        return values[0] if single else values

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "params_")

    # -- model files (sysid.io) ----------------------------------------------------------
    _FITTED_JSON = ("state_names_", "input_names_", "n_states_in_", "n_controls_in_", "data_options_",
                    "cost_", "n_function_evals_", "n_observations_", "trajectory_names_", "param_names_", "diff_step_")
    _FITTED_ARRAYS = ("x0_", "start_costs_", "scale_", "initial_params_", "free_", "lower_", "upper_")

    def _fitted_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """JSON-ready fitted attributes (arrays as lists of floats); no tensors."""
        check_is_fitted(self)
        state = {name: getattr(self, name) for name in self._FITTED_JSON}
        for name in self._FITTED_ARRAYS:
            state[name] = np.asarray(getattr(self, name)).tolist()
        state.update(self._results_state())
        state["n_simulations_"] = self.n_simulations_
        return state, {}

    def _set_fitted_state(self, state: dict[str, Any], tensors: dict[str, Any]) -> None:
        """Rebuild from :meth:`_fitted_state` output (older files that stored ``not_identifiable_`` too)."""
        self._resolve()
        for name in self._FITTED_JSON:
            setattr(self, name, state[name])
        for name in self._FITTED_ARRAYS:
            setattr(self, name, np.asarray(state[name], dtype=bool if name == "free_" else float))
        if "not_identifiable_" in state:  # the name in older model files
            state = {**state, "unidentifiable_": state["not_identifiable_"]}
        self._set_results_state(state, self._spec())
        self.n_simulations_ = int(state.get("n_simulations_", 0))
        n = len(self.param_names_)  # the stored arrays must agree with each other (a file may be altered)
        if sorted(self.params_) != sorted(self.param_names_) or np.shape(self.scale_) != (self.n_states_in_,) \
                or any(np.shape(getattr(self, a)) != (n,) for a in ("initial_params_", "free_", "lower_", "upper_")):
            raise ValueError(f"its parameter names {self.param_names_!r:.80}, values {sorted(self.params_)} and "
                             f"arrays disagree with each other or with its {self.n_states_in_} states")
        self.simulation_failed_ = []



class _Residuals:
    """Weighted residuals of every trajectory for ``z`` = (free parameters, initial states).

    Each trajectory's simulation is cached by (parameters, its initial state): a
    finite-difference Jacobian column that moves another trajectory's initial state
    reuses it.
    """

    def __init__(self, model: ClassicalODE, data: Trajectories, weights: np.ndarray, x0: np.ndarray) -> None:
        self.model, self.data = model, data
        self.fixed_x0 = np.asarray(x0, dtype=float)
        self.n_theta = int(model.free_.sum())
        self.n_x0: int = len(data) * data.n_states
        self.state_of: np.ndarray = np.concatenate([np.nonzero(tr.observed)[1] for tr in data])
        self.set_weights(weights)
        self.caches: dict[tuple[float, float], list[dict[bytes, np.ndarray]]] = {}
        self.evals: int = 0
        self.simulations: int = 0

    def set_weights(self, weights: np.ndarray) -> None:
        """Per-state multipliers (1 / noise level)."""
        self.weights: np.ndarray = np.asarray(weights, dtype=float)
        self.row_weights: np.ndarray = self.weights[self.state_of]

    def unpack(self, z: np.ndarray, with_x0: bool) -> tuple[np.ndarray, np.ndarray]:
        """(every parameter's value, initial states (n_traj, n_states)) from ``z``."""
        theta = self.model.initial_params_.copy()
        theta[self.model.free_] = z[: self.n_theta]
        x0 = z[self.n_theta:].reshape(len(self.data), self.data.n_states) if with_x0 else self.fixed_x0
        return theta, x0

    def objective(self, tolerances: tuple[float, float], with_x0: bool) -> Callable[[np.ndarray], np.ndarray]:
        """``z -> weighted residuals`` at these solver tolerances."""
        store = self.caches.setdefault(tolerances, [{} for _ in range(len(self.data))])

        def residuals(z: np.ndarray) -> np.ndarray:
            theta, x0 = self.unpack(z, with_x0)
            parts = []
            for i, traj in enumerate(self.data):
                key = theta.tobytes() + x0[i].tobytes()
                cached = store[i].get(key)
                if cached is None:
                    cached, n = self.model._residuals(traj, x0[i], theta, tolerances)
                    self.evals += n
                    self.simulations += 1
                    if len(store[i]) > 8:
                        store[i].clear()
                    store[i][key] = cached
                parts.append(cached)
            return np.concatenate(parts) * self.row_weights

        return residuals
