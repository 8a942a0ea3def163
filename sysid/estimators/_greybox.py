"""GreyBoxODE: the user's own equations with named, bounded parameters, fitted through the solver."""

from __future__ import annotations

import inspect
import math
import numbers
import warnings
from collections.abc import Mapping
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats
from scipy.optimize import least_squares
from sklearn.utils.validation import check_is_fitted

from sysid.errors import ConfigError, FitWarning
from sysid.estimators._ode_base import SolverTrainedODE
from sysid.fields import GreyBox
from sysid.fields._greybox import GreyBoxFunction
from sysid.integration import SolverFailure, simulate
from sysid.training import Training
from sysid.trajectories import Trajectories

_NULL_TOL = 1e-6      # singular values of the column-normalised Jacobian below this (relative) are null
_NULL_LOADING = 0.1   # a parameter "takes part" in a null direction above this loading
_FD_STEP = 1e-5       # relative central-difference step of the residual Jacobian


class ParametricODE(SolverTrainedODE):
    """Shared by models whose field has named physical parameters (grey-box, hybrid)."""

    def _parameter_module(self) -> torch.nn.Module:
        """The ParameterTransform of the fitted field."""
        return self.rhs_.field.params

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

    It is the solver-trained estimator (:class:`~sysid.estimators._ode_base.SolverTrainedODE`,
    whose parameters it takes) with a :class:`sysid.fields.GreyBox` field built from
    ``f``, ``params``, ``bounds`` and ``fixed``, and ``sysid.Training(max_epochs=300,
    lbfgs_steps=0)``; ``training``'s ``refine_steps`` (default 20) bounds the
    Gauss-Newton refinement (0 keeps the multiple-shooting estimate). A unit step of a
    parameter's raw value is a relative change (for an unbounded parameter, of its
    initial magnitude), so ``lr`` is a relative step size.

    Parameters
    ----------
    f : callable ``f(t, x, p, u) -> tensor``, positional
        Your right-hand side (see :class:`sysid.fields.GreyBox`). Model files store only
        its name: pass it again to ``sysid.load(path, f=f)``.
    params : dict of str to float, positional
        Every parameter with its initial value (the value of a fixed one).
    **options
        ``bounds=``, ``fixed=`` (the field's), any estimator parameter and any parameter
        of its parts, given flat (``max_epochs=300``, ``rtol=1e-6``...).

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

    default_parts = {**SolverTrainedODE.default_parts, "field": GreyBox,
                     "training": partial(Training, max_epochs=300, lbfgs_steps=0)}
    _aliases = ("f", "params")

    def __init__(self, f: GreyBoxFunction | None = None, params: Mapping[str, float] | None = None, /,
                 **options: Any) -> None:
        aliases = {k: v for k, v in zip(self._aliases, (f, params)) if v is not None}
        super().__init__(**options, **aliases)

    def _after_fit(self, data: Trajectories) -> None:
        super()._after_fit(data)
        self.refined_ = False
        self.refine_evaluations_ = 0
        rows, _ = self._validation_split(data)
        if any(n < tr.n_times for tr, n in zip(data, rows)):  # held-out tails stay held out
            data = data.subset([tr.replace(t=tr.t[:n], y=tr.y[:n], u=None if tr.u is None else tr.u[:n])
                                for tr, n in zip(data, rows)])
        jac = self._refine(data) if self.training_.refine_steps else None
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
        if self.training_.learn_x0:
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
                x = self.scaling_.unscale(self._readings(preds[g * n_traj + i].cpu().numpy()))
                seen = ~np.isnan(tr.y)
                parts.append((x - np.nan_to_num(tr.y))[seen])
            out.append(np.concatenate(parts))
        return np.stack(out)

    def _split(self, theta: np.ndarray, n_traj: int) -> tuple[np.ndarray, np.ndarray]:
        n_free = len(self._parameter_module().free_names)
        x0 = theta[n_free:].reshape(n_traj, self.n_dims_) if self.training_.learn_x0 else np.asarray(self.x0_, dtype=float)
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
        n_x = n_dims if self.training_.learn_x0 else 0
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
        _, bounds, _ = self.field_part_.spec()
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
                                     x_scale="jac", max_nfev=int(self.training_.refine_steps), ftol=1e-6, xtol=1e-6)
            self.refine_evaluations_ = int(solution.nfev)
        except (SolverFailure, AssertionError, ValueError, np.linalg.LinAlgError) as exc:
            warnings.warn(f"the Gauss-Newton refinement failed ({exc}); keeping the multiple-shooting "
                          "estimate.", FitWarning, stacklevel=4)
            return None
        if not solution.cost < 0.5 * float(np.sum((r0 * weights) ** 2)):
            return None
        free, x0 = self._split(solution.x, len(data))
        module.set_free_values(free)
        if self.training_.learn_x0:
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


# Introspection (help(), scikit-learn's checks) sees the estimator's parameters; the positional
# aliases are documented in the docstring, not parameters (get_params never lists them).
GreyBoxODE.__init__.__signature__ = inspect.signature(SolverTrainedODE.__init__)  # type: ignore[attr-defined]
