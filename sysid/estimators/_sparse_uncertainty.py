"""SparseODE's Gauss-Newton polish and standard errors, on whole-trajectory simulation residuals.

:class:`GaussNewtonMixin` works on the active coefficients of the fitted
:class:`~sysid.fields.PolynomialField` and the learned initial states: the residuals
(simulated minus observed, scaled units) of every coefficient set are integrated in one
batched solve (the field's ``groups``), their Jacobian by central differences.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.optimize import least_squares

from sysid import selection
from sysid.fields import PolynomialField
from sysid.integration import SolverFailure, simulate
from sysid.parameters import linearised_uncertainty, noise_levels
from sysid.training import compare_errors, log_floor
from sysid.trajectories import Trajectories

_FD_STEP = 1e-5  # relative central-difference step of the residual Jacobian (standard errors)
_REFINE_STEPS = 20  # Gauss-Newton evaluations polishing each trained candidate


def lag1(residuals: np.ndarray) -> np.ndarray:
    """Sum of products of consecutive errors per column of (n_rows, n_states) residuals (NaN-aware)."""
    return np.nansum(residuals[1:] * residuals[:-1], axis=0)


class GaussNewtonMixin:
    """Polish (:meth:`_refine`) and standard errors (:meth:`_uncertainty`) of a fitted SparseODE."""

    rhs_: Any
    scaling_: Any
    training_: Any
    x0_: np.ndarray
    n_dims_: int
    torch_dtype_: torch.dtype
    solver_: Any
    term_names_: list[str]
    state_names_: Any
    _validation_split: Any
    _training_part: Any
    _input_signal: Any

    @staticmethod
    def _state_weights(data: Trajectories, r: np.ndarray, n_fitted: int = 0) -> np.ndarray:
        """1 / noise level of each state (:func:`sysid.parameters.noise_levels`, scaled units), per residual entry."""
        state_of = np.concatenate([np.nonzero(~np.isnan(tr.y))[1] for tr in data])
        return 1.0 / noise_levels(r, state_of, np.ones(data.n_states), n_fitted)[state_of]

    def _simulation_residuals(
        self, data: Trajectories, sets: tuple[torch.Tensor, np.ndarray] | None = None
    ) -> np.ndarray:
        """Scaled residuals (simulated - observed; NaN where unobserved) of whole trajectories.

        With ``Training(errors="log")`` they are ``log(simulated) - log(observed)`` instead.

        Without ``sets``: the fitted field from the learned x0, (n_rows, n_states) over
        all trajectories stacked. With ``sets = (groups, x0_sets)``, ``groups``
        (G, n_terms, n_dims) scaled coefficient sets and ``x0_sets`` (G, n_traj, n_dims)
        scaled initial states: every set integrated in one batched solve, (G, n_rows, n_states).
        """
        n_traj = len(data)
        if sets is None:
            groups = None
            x0 = np.asarray(self.x0_, dtype=float)
            z0 = np.concatenate([self.scaling_.scale(x0[:, : data.n_states]), x0[:, data.n_states :]], axis=1)[None]
        else:
            groups, z0 = sets
        n_sets = z0.shape[0]
        field: PolynomialField = self.rhs_.field
        field.groups = groups
        try:
            preds = simulate(
                self.rhs_,
                torch.as_tensor(z0.reshape(n_sets * n_traj, -1), dtype=self.torch_dtype_),
                [tr.t for tr in data] * n_sets,
                torch.arange(n_traj).repeat(n_sets),
                self._input_signal(data),
                self.solver_,
                "none",
            )
        finally:
            field.groups = None
        out = []
        n, errors = data.n_states, self.training_.errors
        center, spread = self.scaling_.center[:n], self.scaling_.spread[:n]
        floor = log_floor([tr.y for tr in data]) if errors == "log" else np.ones(n)
        for g in range(n_sets):
            parts = [
                compare_errors(
                    preds[g * n_traj + i][:, :n].cpu().numpy(), self.scaling_.scale(tr.y), errors, center, spread, floor
                )
                for i, tr in enumerate(data)
            ]
            out.append(np.concatenate(parts))
        return out[0] if groups is None else np.stack(out)

    def _active(self, n_states: int) -> list[tuple[int, int]]:
        mask = self.rhs_.field.mask.numpy() > 0
        return [(int(k), j) for j in range(n_states) for k in np.flatnonzero(mask[:, j])]

    def _parameters(self, data: Trajectories) -> tuple[np.ndarray, np.ndarray]:
        """(scaled active coefficients (p,), scaled initial states (n_traj, n_dims))."""
        with torch.no_grad():
            base = self.rhs_.field.scaled_coefficients().detach().numpy()
        coefs = np.array([base[k, j] for k, j in self._active(data.n_states)])
        x0 = np.asarray(self.x0_, dtype=float)
        z0 = np.concatenate([self.scaling_.scale(x0[:, : data.n_states]), x0[:, data.n_states :]], axis=1)
        return coefs, z0

    def _set_parameters(self, data: Trajectories, coefs: np.ndarray, z0: np.ndarray) -> None:
        field: PolynomialField = self.rhs_.field
        with torch.no_grad():
            values = field.scaled_coefficients().detach().numpy().copy()
        for (k, j), c in zip(self._active(data.n_states), coefs):
            values[k, j] = c
        field.set_scaled_coefficients(torch.as_tensor(values, dtype=self.torch_dtype_))
        x0 = np.asarray(z0, dtype=float).copy()
        x0[:, : data.n_states] = self.scaling_.unscale(x0[:, : data.n_states])
        self.x0_ = x0

    def _residual_sets(self, data: Trajectories, coef_sets: np.ndarray, z0_sets: np.ndarray) -> np.ndarray:
        """Observed residual entries (G, n_res) of G parameter sets, integrated in one batched solve."""
        with torch.no_grad():
            base = self.rhs_.field.scaled_coefficients().detach().numpy()
        groups = np.repeat(base[None], coef_sets.shape[0], axis=0)
        for i, (k, j) in enumerate(self._active(data.n_states)):
            groups[:, k, j] = coef_sets[:, i]
        res = self._simulation_residuals(data, (torch.as_tensor(groups, dtype=self.torch_dtype_), z0_sets))
        seen = ~np.isnan(res[0])
        return res[:, seen]

    def _jacobian(self, data: Trajectories, coefs: np.ndarray, z0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Residuals (n_res,) and their Jacobian (n_res, p + n_traj * n_dims) in the scaled coordinates.

        Central differences with every perturbed copy in one batched solve; each initial-state
        component is perturbed in all trajectories at once (a trajectory's residuals depend
        on its own initial state only), so the solve holds 1 + 2 (p + n_dims) copies.
        """
        n_p, n_traj, n_dims = coefs.size, len(data), self.n_dims_
        n_x = n_dims if self.training_.learn_x0 else 0
        steps = np.concatenate([_FD_STEP * np.maximum(np.abs(coefs), 1e-2), np.full(n_x, _FD_STEP)])
        n_sets = 1 + 2 * (n_p + n_x)
        coef_sets = np.repeat(coefs[None], n_sets, axis=0)
        z0_sets = np.repeat(z0[None], n_sets, axis=0)
        for i in range(n_p):
            coef_sets[1 + 2 * i, i] += steps[i]
            coef_sets[2 + 2 * i, i] -= steps[i]
        for d in range(n_x):
            z0_sets[1 + 2 * (n_p + d), :, d] += steps[n_p + d]
            z0_sets[2 + 2 * (n_p + d), :, d] -= steps[n_p + d]
        res = self._residual_sets(data, coef_sets, z0_sets)
        diff = (res[1::2] - res[2::2]) / (2 * steps)[:, None]
        jac = np.zeros((res.shape[1], n_p + n_traj * n_x))
        jac[:, :n_p] = diff[:n_p].T
        if n_x:
            traj_of = np.concatenate([np.full(int((~np.isnan(tr.y)).sum()), i) for i, tr in enumerate(data)])
            for d in range(n_x):
                for i in range(n_traj):
                    jac[traj_of == i, n_p + i * n_x + d] = diff[n_p + d, traj_of == i]
        return res[0], jac

    def _refine(self, data: Trajectories) -> None:
        """Trust-region Gauss-Newton (scipy ``least_squares``) on the whole-trajectory residuals.

        The coefficients of the active terms and the initial states move to the
        least-squares optimum near the shooting result (at most ``_REFINE_STEPS``
        evaluations); the result is kept only if it lowers the weighted residual cost.
        """
        data = self._training_part(data)
        if not self._active(data.n_states):
            return
        coefs, z0 = self._parameters(data)
        n_p, n_traj = coefs.size, len(data)
        learn_x0 = bool(self.training_.learn_x0)

        def split(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return theta[:n_p], theta[n_p:].reshape(n_traj, -1)

        try:
            r0 = self._residual_sets(data, coefs[None], z0[None])[0]
            weights = self._state_weights(data, r0)

            def fun(theta: np.ndarray) -> np.ndarray:
                c, z = split(theta)
                return self._residual_sets(data, c[None], z[None])[0] * weights

            def jac(theta: np.ndarray) -> np.ndarray:
                c, z = split(theta)
                _, j = self._jacobian(data, c, z)
                if not learn_x0:  # initial states held: zero columns
                    j = np.concatenate([j, np.zeros((j.shape[0], z.size))], axis=1)
                return j * weights[:, None]

            solution = least_squares(
                fun,
                np.concatenate([coefs, z0.ravel()]),
                jac=jac,
                method="trf",
                x_scale="jac",
                max_nfev=_REFINE_STEPS,
                ftol=1e-6,
                xtol=1e-6,
            )
        except (SolverFailure, ValueError, np.linalg.LinAlgError):
            return
        if not solution.cost < 0.5 * float(np.sum((r0 * weights) ** 2)):
            return
        c, z = split(solution.x)
        self._set_parameters(data, c, z if learn_x0 else z0)

    def _uncertainty(self, data: Trajectories) -> None:
        """Standard errors of the active coefficients from the whole-trajectory residual Jacobian.

        The one computation of :func:`sysid.parameters.linearised_uncertainty`, as for
        :class:`~sysid.GreyBoxODE`: residuals are simulated minus observed over every
        observed entry (of the training part), each state weighted by its noise level;
        ``J`` is their Jacobian with respect to the active coefficients and, with
        ``learn_x0``, the initial states (nuisance quantities); ``cov = s^2 (J^T J)^-1 / e``,
        ``s^2 = SSR / (n - p)``, where ``e`` is the effective fraction of independent residuals (their lag-one
        autocorrelation, as in the selection criterion: smooth misfit carries less
        information than white noise, and ignoring it gave a real pendulum's damping a
        standard error of 0.25% where refits on halves of the record differ by more).
        Directions the data do not determine (singular values below 1e-6 of the largest)
        get infinite standard errors. Sets ``coefficients_stderr_`` and ``dof_``.
        """
        field: PolynomialField = self.rhs_.field
        names, states = list(self.term_names_), list(self.state_names_)
        stderr = np.full((len(names), len(states)), np.nan)
        self.coefficients_stderr_ = pd.DataFrame(
            stderr, index=pd.Index(names, name="term"), columns=pd.Index(states, name="state")
        )
        self.dof_ = 0
        data = self._training_part(data)
        active = self._active(data.n_states)
        if not active:
            return
        coefs, z0 = self._parameters(data)
        try:
            r, jac = self._jacobian(data, coefs, z0)
            residuals = self._simulation_residuals(data)
        except SolverFailure:
            return
        n_p = len(active)
        w = self._state_weights(data, r, jac.shape[1])
        found = linearised_uncertainty(jac * w[:, None], r * w, [f"c{i}" for i in range(jac.shape[1])])
        pieces = np.split(residuals, np.cumsum([tr.n_times for tr in data])[:-1])
        counts = np.count_nonzero(~np.isnan(residuals), axis=0)
        lags = np.sum([lag1(q) for q in pieces], axis=0)
        eff = selection.error_efficiency(np.nansum(residuals**2, axis=0), lags, counts, selection.ERROR_FLOOR)
        share = float(np.sum(eff * counts) / max(np.sum(counts), 1))
        se_scaled = found.stderr[:n_p] / np.sqrt(share)
        to_physical = field.out_scale.numpy()[None, :] / field.feature_scale.numpy()[:, None]
        for i, (k, j) in enumerate(active):
            stderr[k, j] = se_scaled[i] * to_physical[k, j]
        self.coefficients_stderr_ = pd.DataFrame(
            stderr, index=pd.Index(names, name="term"), columns=pd.Index(states, name="state")
        )
        self.dof_ = round(max(found.n_residuals * share - jac.shape[1], 1.0))  # of coefficient_table's t quantile
