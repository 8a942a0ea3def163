"""GreyBoxODE: the user's own equations with named, bounded parameters, fitted through the solver."""

from __future__ import annotations

import math
import numbers
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats
from scipy.optimize import least_squares
from sklearn.utils.validation import check_is_fitted

from sysid.errors import ConfigError, FitWarning
from sysid.estimators._ode_base import Scaling, SolverTrainedODE
from sysid.fields._greybox import Bound, GreyBoxField, GreyBoxFunction
from sysid.integration import SolverFailure, simulate
from sysid.trajectories import Trajectories

_NULL_TOL = 1e-6      # singular values of the column-normalised Jacobian below this (relative) are null
_NULL_LOADING = 0.1   # a parameter "takes part" in a null direction above this loading
_FD_STEP = 1e-5       # relative central-difference step of the residual Jacobian


def check_parameter_spec(params: Any, bounds: Any, fixed: Any, owner: str = "GreyBoxODE"
                         ) -> tuple[dict[str, float], dict[str, Bound], list[str]]:
    """Validate ``params``/``bounds``/``fixed``; return them normalised.

    Raises
    ------
    ConfigError
        Naming the parameter at fault: unknown names in ``bounds``/``fixed``, non-numeric
        values, malformed bounds, or an initial value not strictly inside its bounds.

    Examples
    --------
    >>> check_parameter_spec({"k": 1.0}, {"k": (0, None)}, None)
    ({'k': 1.0}, {'k': (0.0, None)}, [])
    >>> check_parameter_spec({"k": 1.0}, {"c": (0, 1)}, None)
    Traceback (most recent call last):
    ...
    sysid.errors.ConfigError: bounds names an unknown parameter 'c'; params are ['k'].
    """
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise ConfigError(f"{owner}: params must be a dict {{name: initial value}}, got {type(params).__name__}.")
    initial: dict[str, float] = {}
    for name, value in params.items():
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{owner}: parameter names must be non-empty strings, got {name!r}.")
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
            raise ConfigError(f"{owner}: params[{name!r}] must be a finite number, got {value!r}.")
        initial[name] = float(value)
    known = list(initial)
    if bounds is None:
        bounds = {}
    if not isinstance(bounds, Mapping):
        raise ConfigError(f"{owner}: bounds must be a dict {{name: (low, high)}}, got {type(bounds).__name__}.")
    clean_bounds: dict[str, Bound] = {}
    for name, pair in bounds.items():
        if name not in initial:
            raise ConfigError(f"bounds names an unknown parameter {name!r}; params are {known}.")
        if not isinstance(pair, Sequence) or isinstance(pair, str) or len(pair) != 2:
            raise ConfigError(f"bounds[{name!r}] must be a pair (low, high) with None for an open side, got {pair!r}.")
        lo, hi = (None if v is None else float(v) for v in pair)
        if (lo is not None and not math.isfinite(lo)) or (hi is not None and not math.isfinite(hi)):
            raise ConfigError(f"bounds[{name!r}] must be finite numbers or None, got {pair!r}.")
        if lo is not None and hi is not None and not lo < hi:
            raise ConfigError(f"bounds[{name!r}] = {pair!r}: low must be smaller than high.")
        value = initial[name]
        if (lo is not None and not value > lo) or (hi is not None and not value < hi):
            raise ConfigError(
                f"the initial value of {name!r} ({value!r}) must lie strictly inside its bounds {pair!r}; "
                "move it inside (the bounds are open)."
            )
        clean_bounds[name] = (lo, hi)
    if fixed is None:
        fixed = []
    if isinstance(fixed, str) or not isinstance(fixed, Sequence | set | frozenset):
        raise ConfigError(f"{owner}: fixed must be a list of parameter names, got {fixed!r}.")
    for name in fixed:
        if name not in initial:
            raise ConfigError(f"fixed names an unknown parameter {name!r}; params are {known}.")
    return initial, clean_bounds, [n for n in known if n in set(fixed)]


def probe_function(f: Any, name: str, args: tuple[Any, ...], expected: tuple[int, int], signature: str) -> None:
    """Call the user's function once on a probe batch; raise ConfigError on any problem."""
    if not callable(f):
        raise ConfigError(f"{name} must be a callable {signature}, got {type(f).__name__}.")
    try:
        out = f(*args)
    except KeyError as exc:
        known = sorted(args[2]) if len(args) > 2 and isinstance(args[2], dict) else []
        raise ConfigError(
            f"{name}{signature[signature.index('('):]} looked up parameter {exc.args[0]!r}, which is not in "
            f"params {known}; add it to params (with an initial value)."
        ) from None
    except Exception as exc:  # noqa: BLE001 - reported with context
        raise ConfigError(
            f"calling {name}{signature[signature.index('('):]} on a probe batch x of shape {expected} "
            f"({expected[0]} points of {expected[1]} state(s), batch first) raised {type(exc).__name__}: {exc}"
            + (f". Does {name} expect another number of states than the data's {expected[1]}?"
               if isinstance(exc, IndexError) else "")
        ) from exc
    if not isinstance(out, torch.Tensor):
        hint = " (stack columns with torch.stack([...], dim=-1))" if isinstance(out, list | tuple) else ""
        raise ConfigError(
            f"{name} must return a torch tensor of shape (batch, n_states) = {expected}, got "
            f"{type(out).__name__}{hint}."
        )
    if tuple(out.shape) != expected:
        raise ConfigError(
            f"{name} returned shape {tuple(out.shape)} for a probe batch of x with shape {expected}; "
            f"expected {expected} (one derivative per state, batch first)."
        )
    if not torch.isfinite(out).all():
        raise ConfigError(
            f"{name} returned non-finite values at the data's mean state (probe x={args[1][0].tolist()}): "
            f"{out[0].tolist()}."
        )


class ParametricODE(SolverTrainedODE):
    """Shared by models whose field has named physical parameters (grey-box, hybrid)."""

    _streaming_unsupported = ("its parameters' least-squares refinement and uncertainties, and a hybrid "
                              "model's correction penalty, use every observation at once")

    params: Mapping[str, float] | None
    bounds: Mapping[str, Bound] | None
    fixed: Sequence[str] | None

    def _spec(self) -> tuple[dict[str, float], dict[str, Bound], list[str]]:
        return check_parameter_spec(self.params, self.bounds, self.fixed, type(self).__name__)

    def _probe_args(self, n_dims: int, n_inputs: int, scaling: Scaling, dtype: torch.dtype,
                    params: dict[str, torch.Tensor]) -> tuple[Any, ...]:
        x = torch.as_tensor(np.tile(scaling.center, (2, 1)), dtype=dtype)
        u = torch.as_tensor(np.tile(scaling.input_center, (2, 1)), dtype=dtype) if n_inputs else None
        return torch.zeros(2, dtype=dtype), x, params, u

    def _parameter_module(self) -> torch.nn.Module:
        """The ParameterTransform of the fitted field."""
        raise NotImplementedError

    def _read_params(self) -> None:
        with torch.no_grad():
            values = self._parameter_module()()
        self.params_ = {n: float(v) for n, v in values.items()}


class GreyBoxODE(ParametricODE):
    """Fit the parameters of your own ODE, dx/dt = f(t, x, p, u), with uncertainties.

    The equations are yours; sysid integrates them with an adaptive torchdiffeq solver
    and trains the parameters (and each trajectory's initial state) by multiple
    shooting, after a collocation warm start on smoothing-spline derivatives, which
    avoids the local minima that single shooting falls into (e.g. on Lotka-Volterra
    from 50% off). Bounds are kept by smooth transforms, not clipping.

    After the fit, standard errors and confidence intervals come from the
    Gauss-Newton approximation at the optimum: with r the residuals (simulated minus
    observed, every observed entry of every whole trajectory, simulated from the
    learned initial states, each state weighted by its residual standard deviation)
    and J their Jacobian with respect to the free parameters (natural units) and the
    initial states, cov = s^2 (J^T J)^-1, s^2 = SSR / (n - p). Parameters that the
    data cannot separate (J^T J near singular) are named in a :class:`~sysid.FitWarning`
    and get infinite standard errors.

    Parameters
    ----------
    f : callable ``f(t, x, p, u) -> tensor``
        The right-hand side in torch operations: t (batch,), x (batch, n_states)
        physical states, p a dict of scalar tensors by parameter name, u (batch,
        n_inputs) or None. Returns dx/dt of x's shape. Model files store only its
        name: pass it again to ``sysid.load(path, f=f)``.
    params : dict of str to float
        Every parameter with its initial value (the value of a fixed one).
    bounds : dict of str to (low, high), optional
        Open bounds, ``None`` for an unbounded side: ``{"k": (0, None)}``.
    fixed : list of str, optional
        Parameters held at their value in ``params``.
    refine_steps : int, default 20
        After multiple shooting, at most this many residual evaluations of a
        trust-region Gauss-Newton refinement (:func:`scipy.optimize.least_squares`,
        bounds respected) of the whole-trajectory least squares over the free
        parameters and initial states, from the shooting optimum. It turns the
        shooting estimate into the least-squares one that the confidence intervals
        assume; 0 keeps the shooting estimate.
    solver, rtol, atol, solver_options, gradient, learn_x0, learn_time, n_augment, \
segment_length, continuity_weight, max_epochs, lr, batch_size, validation_fraction, \
patience, lbfgs_steps, collocation_steps, input_interpolation, random_state, dtype, \
device, verbose, warm_start, checkpoint_path
        As for :class:`~sysid.NeuralODE`. A unit step of a parameter's raw value is a
        relative change (for an unbounded parameter, of its initial magnitude), so
        ``lr`` is a relative step size.

    Attributes
    ----------
    params_ : dict of str to float
        Fitted values of every parameter (fixed ones included).
    params_stderr_ : dict of str to float
        Standard errors of the free parameters (inf if not identifiable).
    covariance_ : pandas.DataFrame
        Covariance of the free parameters.
    jacobian_condition_ : float
        Condition number of the column-normalised residual Jacobian.
    unidentifiable_ : list of str
        Parameters flagged as not identifiable.
    n_residuals_, dof_ : int
        Observed entries used, and n - p.
    refined_ : bool
        Whether the Gauss-Newton refinement was accepted.
    refine_evaluations_ : int
        Residual evaluations the refinement used.
    x0_, time_scale_, time_offset_, history_, n_function_evals_
        As for :class:`~sysid.NeuralODE`.

    Examples
    --------
    >>> import numpy as np
    >>> def decay(t, x, p, u):
    ...     return -p["k"] * x
    >>> t = np.linspace(0, 2, 20)
    >>> y = (3.0 * np.exp(-0.8 * t))[:, None]
    >>> model = GreyBoxODE(decay, {"k": 0.3}, bounds={"k": (0, None)}, max_epochs=30,
    ...                    gradient="backprop", verbose=False).fit(y, t=t)
    >>> round(model.params_["k"], 3)
    0.8
    """

    _flags_extrapolation = False  # the equations are the user's: valid as far as the user says

    _required_parameters = ["f", "params"]  # for scikit-learn's constructor checks

    def __init__(
        self,
        f: GreyBoxFunction,
        params: Mapping[str, float],
        bounds: Mapping[str, Bound] | None = None,
        fixed: Sequence[str] | None = None,
        refine_steps: int = 20,
        solver: str = "dopri5",
        rtol: float | None = None,
        atol: float | None = None,
        solver_options: dict[str, Any] | None = None,
        gradient: str = "adjoint",
        learn_x0: bool = True,
        learn_time: str | None = None,
        n_augment: int = 0,
        segment_length: int = 5,
        continuity_weight: float = 1.0,
        max_epochs: int = 300,
        lr: float = 1e-2,
        batch_size: int | None = None,
        validation_fraction: float = 0.0,
        patience: int | None = 60,
        lbfgs_steps: int = 0,
        collocation_steps: int = 300,
        input_interpolation: str = "linear",
        random_state: int | None = 0,
        dtype: str = "float64",
        device: str = "cpu",
        verbose: bool = True,
        warm_start: bool = False,
        checkpoint_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.f = f
        self.params = params
        self.bounds = bounds
        self.fixed = fixed
        self.refine_steps = refine_steps
        self.solver = solver
        self.rtol = rtol
        self.atol = atol
        self.solver_options = solver_options
        self.gradient = gradient
        self.learn_x0 = learn_x0
        self.learn_time = learn_time
        self.n_augment = n_augment
        self.segment_length = segment_length
        self.continuity_weight = continuity_weight
        self.max_epochs = max_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.lbfgs_steps = lbfgs_steps
        self.collocation_steps = collocation_steps
        self.input_interpolation = input_interpolation
        self.random_state = random_state
        self.dtype = dtype
        self.device = device
        self.verbose = verbose
        self.warm_start = warm_start
        self.checkpoint_path = checkpoint_path

    def _build_field(self, n_dims: int, n_inputs: int, scaling: Scaling,
                     generator: torch.Generator, dtype: torch.dtype) -> torch.nn.Module:
        initial, bounds, fixed = self._spec()
        field = GreyBoxField(self.f, initial, bounds, fixed, dtype)
        with torch.no_grad():
            probe_function(self.f, "f", self._probe_args(n_dims, n_inputs, scaling, dtype, field.params()),
                           (2, n_dims), "f(t, x, p, u)")
        return field

    def _parameter_module(self) -> torch.nn.Module:
        return self.rhs_.field.params

    def _after_fit(self, data: Trajectories) -> None:
        if isinstance(self.refine_steps, bool) or not isinstance(self.refine_steps, int | np.integer) \
                or self.refine_steps < 0:
            raise ConfigError(f"refine_steps must be a non-negative integer, got {self.refine_steps!r}.")
        self.refined_ = False
        self.refine_evaluations_ = 0
        rows, _ = self._validation_split(data)
        if any(n < tr.n_times for tr, n in zip(data, rows)):  # held-out tails stay held out
            data = data.subset([tr.replace(t=tr.t[:n], y=tr.y[:n], u=None if tr.u is None else tr.u[:n])
                                for tr, n in zip(data, rows)])
        jac = self._refine(data) if self.refine_steps else None
        self._read_params()
        self._uncertainty(data, jac)

    # -- refinement and uncertainty ------------------------------------------------------
    def _theta(self) -> tuple[np.ndarray, list[str]]:
        """Free parameters (natural units) then, with learn_x0, every initial state (physical)."""
        module = self._parameter_module()
        with torch.no_grad():
            free = module.free_values().detach().cpu().numpy().astype(float)
        names = list(module.free_names)
        theta = [free]
        if self.learn_x0:
            dims = list(self.state_names_) + [f"aug{i}" for i in range(self.n_augment)]
            names += [f"x0[{tr}].{s}" for tr in self.trajectory_names_ for s in dims]
            theta.append(np.asarray(self.x0_, dtype=float).reshape(-1))
        return np.concatenate(theta), names

    def _residual_sets(self, data: Trajectories, free_sets: np.ndarray, x0_sets: np.ndarray) -> np.ndarray:
        """Residuals (simulated - observed, observed entries) for several parameter sets at once.

        ``free_sets`` (G, n_free) and ``x0_sets`` (G, n_traj, n_dims); all G copies of all
        trajectories are integrated in one batched solve (they share its steps, so
        differences between copies are smooth in the parameters). Returns (G, n_residuals).
        """
        dtype = self.torch_dtype_
        field = self.rhs_.field
        n_sets, n_traj = free_sets.shape[0], len(data)
        center, spread = self.scaling_.center, self.scaling_.spread
        z0 = torch.as_tensor(((x0_sets - center) / spread).reshape(n_sets * n_traj, -1), dtype=dtype)
        field.groups = torch.as_tensor(free_sets, dtype=dtype)
        try:
            preds = simulate(self.rhs_, z0, [tr.t for tr in data] * n_sets, torch.arange(n_traj).repeat(n_sets),
                             self._input_signal(data), self.solver_, "none")
        finally:
            field.groups = None
        out = []
        for g in range(n_sets):
            parts = []
            for i, tr in enumerate(data):
                x = self.scaling_.unscale(preds[g * n_traj + i][:, : data.n_states].cpu().numpy())
                seen = ~np.isnan(tr.y)
                parts.append((x - np.nan_to_num(tr.y))[seen])
            out.append(np.concatenate(parts))
        return np.stack(out)

    def _split(self, theta: np.ndarray, n_traj: int) -> tuple[np.ndarray, np.ndarray]:
        n_free = len(self._parameter_module().free_names)
        x0 = theta[n_free:].reshape(n_traj, self.n_dims_) if self.learn_x0 else np.asarray(self.x0_, dtype=float)
        return theta[:n_free], x0

    def _residuals(self, data: Trajectories, theta: np.ndarray) -> np.ndarray:
        free, x0 = self._split(theta, len(data))
        return self._residual_sets(data, free[None], x0[None])[0]

    def _jacobian(self, data: Trajectories, theta: np.ndarray) -> np.ndarray:
        """d residuals / d theta by central differences, every perturbation in one batched solve.

        Each free parameter is perturbed in its own copy; each state component of the
        initial states is perturbed in all trajectories at once (a trajectory's
        residuals depend on its own initial state only), so the solve has
        2 (n_free + n_dims) copies of the data whatever the number of trajectories.
        """
        free, x0 = self._split(theta, len(data))
        n_free, n_traj, n_dims = free.size, len(data), self.n_dims_
        steps_p = _FD_STEP * np.maximum(np.abs(free), 1e-3)
        steps_x = _FD_STEP * self.scaling_.spread[:n_dims]
        n_x = n_dims if self.learn_x0 else 0
        free_sets = np.repeat(free[None], 2 * (n_free + n_x), axis=0)
        x0_sets = np.repeat(x0[None], 2 * (n_free + n_x), axis=0)
        for k in range(n_free):
            free_sets[2 * k, k] += steps_p[k]
            free_sets[2 * k + 1, k] -= steps_p[k]
        for d in range(n_x):
            x0_sets[2 * (n_free + d), :, d] += steps_x[d]
            x0_sets[2 * (n_free + d) + 1, :, d] -= steps_x[d]
        res = self._residual_sets(data, free_sets, x0_sets)
        diff = (res[0::2] - res[1::2]) / (2 * np.concatenate([steps_p, steps_x[:n_x]]))[:, None]
        jac = np.zeros((res.shape[1], theta.size))
        jac[:, :n_free] = diff[:n_free].T
        if n_x:
            traj_of = np.concatenate([np.full(int((~np.isnan(tr.y)).sum()), i) for i, tr in enumerate(data)])
            for d in range(n_dims):
                for i in range(n_traj):
                    rows = traj_of == i
                    jac[rows, n_free + i * n_dims + d] = diff[n_free + d, rows]
        return jac

    @staticmethod
    def _state_weights(data: Trajectories, r: np.ndarray) -> np.ndarray:
        """1 / residual RMS of each state, per residual entry."""
        state_of = np.concatenate([np.nonzero(~np.isnan(tr.y))[1] for tr in data])
        sigma = np.ones(data.n_states)
        for j in range(data.n_states):
            rj = r[state_of == j]
            if rj.size and np.any(rj != 0):
                sigma[j] = np.sqrt(np.mean(rj**2))
        return 1.0 / sigma[state_of]

    def _refine(self, data: Trajectories) -> np.ndarray | None:
        """Trust-region Gauss-Newton on the whole-trajectory residuals from the shooting optimum.

        Returns the (unweighted) Jacobian at the accepted point, or None if it was not computed.
        """
        theta0, _ = self._theta()
        _, bounds, _ = self._spec()
        module = self._parameter_module()
        lower = np.full(theta0.size, -np.inf)
        upper = np.full(theta0.size, np.inf)
        for k, name in enumerate(module.free_names):
            lo, hi = bounds.get(name, (None, None))
            lower[k] = -np.inf if lo is None else lo
            upper[k] = np.inf if hi is None else hi
        margin = 1e-9 * np.maximum(1.0, np.abs(theta0))
        theta0 = np.clip(theta0, lower + margin, upper - margin)
        try:
            r0 = self._residuals(data, theta0)
            weights = self._state_weights(data, r0)
            cache: dict[str, np.ndarray] = {}

            def fun(theta: np.ndarray) -> np.ndarray:
                return self._residuals(data, theta) * weights

            def jac(theta: np.ndarray) -> np.ndarray:
                cache["theta"], cache["jac"] = theta.copy(), self._jacobian(data, theta)
                return cache["jac"] * weights[:, None]

            solution = least_squares(fun, theta0, jac=jac, bounds=(lower, upper), method="trf",
                                     x_scale="jac", max_nfev=int(self.refine_steps), ftol=1e-6, xtol=1e-6)
            self.refine_evaluations_ = int(solution.nfev)
        except (SolverFailure, AssertionError, ValueError, np.linalg.LinAlgError) as exc:
            warnings.warn(f"the Gauss-Newton refinement failed ({exc}); keeping the multiple-shooting "
                          "estimate.", FitWarning, stacklevel=4)
            return None
        if not solution.cost < 0.5 * float(np.sum((r0 * weights) ** 2)):
            return None
        free, x0 = self._split(solution.x, len(data))
        module.set_free_values(free)
        if self.learn_x0:
            self.x0_ = x0.copy()
        self.refined_ = True
        if "theta" in cache and np.array_equal(cache["theta"], solution.x):
            return cache["jac"]
        return None

    def _uncertainty(self, data: Trajectories, jac: np.ndarray | None = None) -> None:
        module = self._parameter_module()
        free = list(module.free_names)
        theta, names = self._theta()
        r = self._residuals(data, theta)
        if jac is None:
            jac = self._jacobian(data, theta)
        weights = self._state_weights(data, r)
        rw, jw = r * weights, jac * weights[:, None]
        n, p = rw.size, theta.size
        dof = max(n - p, 1)
        s2 = float(rw @ rw) / dof
        norms = np.linalg.norm(jw, axis=0)
        norms = np.where(norms > 0, norms, 1.0)
        _, sing, vt = np.linalg.svd(jw / norms, full_matrices=False)
        smax = float(sing[0]) if sing.size else 1.0
        null = sing <= _NULL_TOL * smax
        self.jacobian_condition_ = float(smax / sing[-1]) if sing.size and sing[-1] > 0 else math.inf
        flagged: list[str] = []
        for k in np.nonzero(null)[0]:
            loading = np.abs(vt[k])
            flagged += [names[i] for i in range(len(free)) if loading[i] > _NULL_LOADING and names[i] not in flagged]
        safe = np.where(null, _NULL_TOL * smax, sing)
        cov = s2 * ((vt.T / safe**2) @ vt) / np.outer(norms, norms)
        stderr = np.sqrt(np.clip(np.diag(cov), 0, None))
        for i, name in enumerate(free):
            if name in flagged:
                stderr[i] = math.inf
        self.unidentifiable_ = [n for n in free if n in flagged]
        self.n_residuals_ = int(n)
        self.dof_ = int(dof)
        self.params_stderr_ = {name: float(stderr[i]) for i, name in enumerate(free)}
        self.covariance_ = pd.DataFrame(cov[: len(free), : len(free)], index=free, columns=free)
        if flagged:
            warnings.warn(
                f"parameters {self.unidentifiable_} are not identifiable from these data: the residual "
                f"Jacobian is near singular (condition number {self.jacobian_condition_:.3g}), so only "
                "combinations of them are determined. Fix some of them (fixed=[...]), reparameterise, or add "
                "experiments that excite them. Their standard errors are set to inf.",
                FitWarning, stacklevel=4,
            )

    def confidence_intervals(self, level: float = 0.95) -> pd.DataFrame:
        """Confidence intervals of the free parameters (Gauss-Newton, Student t).

        Parameters
        ----------
        level : float in (0, 1), default 0.95

        Returns
        -------
        pandas.DataFrame
            One row per free parameter; columns ``estimate``, ``stderr``, ``lower``, ``upper``.
        """
        check_is_fitted(self)
        if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0 < float(level) < 1:
            raise ConfigError(f"level must be a number in (0, 1), got {level!r}.")
        q = float(stats.t.ppf(0.5 + float(level) / 2, self.dof_))
        names = list(self.params_stderr_)
        est = np.array([self.params_[n] for n in names])
        se = np.array([self.params_stderr_[n] for n in names])
        return pd.DataFrame({"estimate": est, "stderr": se, "lower": est - q * se, "upper": est + q * se},
                            index=pd.Index(names, name="parameter"))

    # -- model files -------------------------------------------------------------------
    _UNCERTAINTY_JSON = ("params_", "params_stderr_", "jacobian_condition_", "unidentifiable_",
                         "n_residuals_", "dof_", "refined_", "refine_evaluations_")

    def _fitted_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        state, tensors = super()._fitted_state()
        for name in self._UNCERTAINTY_JSON:
            state[name] = getattr(self, name)
        state["covariance_"] = self.covariance_.to_numpy().tolist()
        return state, tensors

    def _set_fitted_state(self, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        super()._set_fitted_state(state, tensors)
        for name in self._UNCERTAINTY_JSON:
            setattr(self, name, state[name])
        free = list(self.params_stderr_)
        self.covariance_ = pd.DataFrame(np.asarray(state["covariance_"], dtype=float).reshape(len(free), len(free)),
                                        index=free, columns=free)
