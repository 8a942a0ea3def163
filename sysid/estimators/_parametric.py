"""What GreyBoxODE and HybridODE share: named physical parameters, fitted by least squares, with uncertainties.

A model whose free quantities are few (the grey-box parameters and the initial states,
no network) is fitted by Gauss-Newton/trust region (:mod:`sysid.training._least_squares`):

1. **collocation**: the parameters fitted to smoothing-spline derivatives (no solver);
2. **multiple shooting**: parameters and every segment's start state, gaps between
   segments as residuals (no local minima of single shooting: Lotka-Volterra from 50% off);
3. **single shooting**: parameters and each trajectory's initial state, whole
   trajectories, from the estimate of stages 1-2 and from the given start (the lower
   cost kept: on short noisy records stages 1-2 can lead to a worse minimum); then each
   state's noise level is estimated from the residuals and the fit repeated once with
   the residuals weighted by it.

The confidence intervals describe the optimum of stage 3 (:mod:`sysid.parameters`).
With ``optimizer="adam"`` the model is trained like a NeuralODE and stage 3 refines the
result (at most ``refine_steps`` evaluations).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Hashable, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse
import torch
from threadpoolctl import threadpool_limits

from sysid.errors import ConfigError, DataError, FitError, FitWarning
from sysid.estimators._ode_base import SolverTrainedODE
from sysid.estimators._ode_start import FieldStart
from sysid.integration import BatchedField, InputSignal, SolverConfig, SolverFailure, torch_threads
from sysid.parameters import (
    REWEIGHT,
    ParameterSpec,
    ParametricResults,
    ProfileProblem,
    linearised_uncertainty,
    noise_levels,
    relative_change,
)
from sysid.training import (
    FAILED_RESIDUAL,
    CollocationResiduals,
    LeastSquaresResult,
    SegmentResiduals,
    TrajectoryResiduals,
    interpolate_missing,
    smooth_trajectory,
    solve_least_squares,
)
from sysid.trajectories import Trajectories

# Stop once within this many standard errors of the optimum (sysid.training._least_squares.gauss_newton_distance):
# the final fit closely, the earlier stages (which only lead there) loosely. scipy's own tolerances stay as backstops.
_STOP_WITHIN = {"final": 0.05, "stage": 0.1}
# An alternative start of single shooting first gets as many evaluations as the main fit took, at least this many.
_SCREEN_EVALUATIONS = 3
_OBSERVED_FOR_SEGMENTS = 0.5  # multiple shooting when every state is observed in at least this share of rows


class ParametricODE(SolverTrainedODE):
    """Shared by models whose field has named physical parameters (grey-box, hybrid).

    With ``Training(optimizer="least_squares")`` and a field whose only free quantities
    are those parameters (no network), the fit is the least-squares one above. A
    subclass that offers uncertainties (:class:`~sysid.GreyBoxODE`) also derives from
    :class:`~sysid.parameters._results.ParametricResults`, whose methods the fit calls.
    """

    _additive_refinement = True
    _changed_after_training = True  # the least-squares refinement moves the parameters after the training
    #: Scaled segment starts of the multiple-shooting stage of the running fit (None: not run).
    _segment_starts: torch.Tensor | None = None

    def _spec(self) -> ParameterSpec:
        return self.field_part_.parameter_spec(type(self).__name__)

    def _parameter_module(self) -> Any:
        """The :class:`~sysid.parameters._transform.ParameterTransform` of the fitted field."""
        return self.rhs_.field.params

    def _read_params(self) -> None:
        with torch.no_grad():
            values = self._parameter_module()()
        self.params_ = {n: float(v) for n, v in values.items()}

    @property
    def _least_squares_capable(self) -> bool:
        """Whether the fitted field's only free quantities are its named parameters (no network)."""
        rhs = getattr(self, "rhs_", None)
        module: Any = None if rhs is None else rhs.field
        params = getattr(module, "params", None)
        if module is None or params is None or not hasattr(module, "groups") or not isinstance(self, ParametricResults):
            return False
        return all(p is params.raw for p in module.parameters() if p.requires_grad)

    # -- configuration ---------------------------------------------------------------
    def _resolve(self) -> None:
        super()._resolve()
        if self.training_.optimizer != "least_squares":
            return
        if self.learn_time is not None:
            raise ConfigError(
                f"learn_time={self.learn_time!r} needs optimizer='adam': the least-squares fit "
                "does not learn trajectory clocks."
            )

    # -- fitting -----------------------------------------------------------------------
    def _fit_resolved(self, data: Trajectories, start: FieldStart | None = None) -> None:
        # One BLAS thread, as one torch thread: the trust-region SVDs are small, and OpenBLAS's second
        # thread made a 420 x 76 SVD take 350 ms instead of 6-13 ms on a busy 2-core machine.
        with threadpool_limits(1):
            if self.training_.optimizer == "least_squares":
                self._fit_least_squares(data)
            else:
                super()._fit_resolved(data, start)  # then _after_fit refines and computes the uncertainty

    def _after_fit(self, data: Trajectories) -> None:
        super()._after_fit(data)
        if not self._least_squares_capable:
            return
        data = self._training_part(data)
        self._single_shooting(
            data,
            self._free_values(),
            np.asarray(self.x0_, dtype=float),
            int(self.training_.refine_steps),
            [],
            keep_on_failure=True,
        )

    def _free_values(self) -> np.ndarray:
        with torch.no_grad():
            return self._parameter_module().free_values().detach().cpu().numpy().astype(float)

    def _first_states(self, data: Trajectories) -> np.ndarray:
        """(n_traj, n_dims) physical starts: the first observations (interpolated), augmented dims at 0."""
        out = np.zeros((len(data), self.n_dims_))
        for i, tr in enumerate(data):
            filled = interpolate_missing(tr.t, tr.y)[0]
            seen = ~np.isnan(tr.y).all(axis=0)
            out[i, : data.n_states] = np.where(seen, filled, self.scaling_.center[: data.n_states])
        return out

    def _fit_least_squares(self, data: Trajectories) -> None:
        reuse = self._prepare(data, self._generator())
        if not self._least_squares_capable:
            raise ConfigError(
                f"{type(self).__name__}: optimizer='least_squares' fits fields whose only free quantities are named "
                f"parameters (sysid.fields.GreyBox); this {type(self.field_part_).__name__} field has networks. Use "
                "optimizer='adam'."
            )
        sensor = getattr(self, "sensor_", None)
        if sensor is not None and any(p.requires_grad for p in sensor.parameters()):
            raise ConfigError(
                f"{type(self).__name__}: a sensor that learns an offset or a gain needs optimizer='adam' (the "
                "least-squares fit handles saturation limits, not learned sensor parameters)."
            )
        if not reuse:
            self._warn_if_underdetermined(data, depth=2)
        data = self._training_part(data)
        spec = self._spec()
        theta = self._free_values() if reuse else spec.values[spec.free].copy()
        x0 = self._first_states(data)
        if reuse and np.shape(getattr(self, "x0_", np.zeros(0))) == x0.shape:
            x0 = np.asarray(self.x0_, dtype=float)
        history: list[dict[str, Any]] = []
        self.rhs_.nfe = 0
        self._segment_starts = None
        given = (theta, x0)
        initial = None
        if not reuse and self.training_.collocation_steps and sensor is None:  # smoothed readings are not states
            theta, initial = self._collocation(data, theta, spec, history)
        weights = None
        if self._segments_help(data):
            try:
                theta, x0, weights = self._multiple_shooting(data, theta, initial, spec, history)
            except FitError as exc:  # e.g. a segment starting at a noisy, unphysical observation blows up
                history.append(
                    {
                        "epoch": 0,
                        "stage": "multiple_shooting",
                        "loss": np.nan,
                        "evaluations": 0,
                        "solves": 1,
                        "converged": False,
                        "message": f"skipped: {exc}",
                    }
                )
        # Single shooting from the given start too, as ClassicalODE fits: on a short noisy record
        # collocation lands far off and multiple shooting from there in another basin, which fits
        # worse than the one the given start leads to (benchmarks/parametric.py, short records).
        same = np.array_equal(theta, given[0]) and np.array_equal(x0, given[1])
        self._single_shooting(
            data, theta, x0, int(self.training_.max_epochs), history, weights, [] if same else [given]
        )

    def _segments_help(self, data: Trajectories) -> bool:
        """Whether to run the multiple-shooting stage: segments to cut, and states the data pin down.

        Each segment's start state is free, so a state observed in few rows leaves the
        segments free to drift apart and reach other minima: on the cascaded tanks
        (upper tank observed once in 717 rows) multiple shooting found a local minimum
        with a 3% higher training RMSE, where single shooting from the start found the
        one ClassicalODE finds. So it runs only when every state is observed in at least
        half of the rows (and never for augmented states or a fixed initial state).
        """
        training = self.training_
        if not training.learn_x0 or self.n_augment or not any(tr.n_times > training.segment_length + 1 for tr in data):
            return False
        seen = np.concatenate([~np.isnan(tr.y) for tr in data]).mean(axis=0)
        return bool(seen.min() >= _OBSERVED_FOR_SEGMENTS)

    def _collocation(
        self, data: Trajectories, theta: np.ndarray, spec: ParameterSpec, history: list[dict[str, Any]]
    ) -> tuple[np.ndarray, list[np.ndarray] | None]:
        """Parameters fitted to smoothed derivatives; returns them and the smoothed states (physical)."""
        lam = self._smoothing_strengths(data, [tr.n_times for tr in data])
        smoothed = [smooth_trajectory(tr.t, tr.y, lam) for tr in data]
        values = np.concatenate([s.values for s in smoothed])
        rows = np.isfinite(values).all(axis=1)
        if self.n_augment or rows.sum() <= theta.size or not theta.size:
            return theta, None  # hidden or unsmoothable states: nothing to regress on
        states = values[rows]
        derivs = np.concatenate([s.derivatives for s in smoothed])[rows]
        u = np.concatenate([tr.u for tr in data])[rows] if data.n_inputs else None
        weights = self.scaling_.time_unit / self.scaling_.spread[: data.n_states]
        lower, upper = spec.free_bounds()
        residuals = CollocationResiduals(
            self.rhs_.field,
            np.concatenate([tr.t for tr in data])[rows],
            states,
            derivs,
            u,
            weights,
            lower,
            upper,
            self.torch_dtype_,
        )
        try:
            fit = solve_least_squares(
                residuals,
                theta,
                lower,
                upper,
                max_nfev=int(self.training_.collocation_steps),
                stop_within=_STOP_WITHIN["stage"],
            )
        except (SolverFailure, ValueError, np.linalg.LinAlgError):
            return theta, None
        history.append(_history_row("collocation", fit, 0))
        return fit.x, [s.values for s in smoothed]

    def _multiple_shooting(
        self,
        data: Trajectories,
        theta: np.ndarray,
        initial: list[np.ndarray] | None,
        spec: ParameterSpec,
        history: list[dict[str, Any]],
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Parameters, initial states and per-state weights (1 / noise level) from multiple shooting."""
        lower, upper = spec.free_bounds()
        weights = 1.0 / self.scaling_.spread[: data.n_states]
        training = self.training_
        residuals = SegmentResiduals(
            *self._residual_problem(data),
            weights,
            lower,
            upper,
            training.segment_length,
            training.continuity_weight,
            training.learn_x0,
            initial,
            self._readings,
        )
        n_starts = residuals.free_segments.size * self.n_dims_
        fit = self._solve(
            residuals,
            residuals.start_vector(theta),
            np.concatenate([lower, np.full(n_starts, -np.inf)]),
            np.concatenate([upper, np.full(n_starts, np.inf)]),
            int(training.max_epochs),
            "multiple shooting",
            _STOP_WITHIN["stage"],
        )
        history.append(_history_row("multiple_shooting", fit, residuals.solves))
        n_data = residuals.values.size
        raw = fit.residuals[:n_data] / residuals.row_weights
        sigma = noise_levels(raw, residuals.state_of, self.scaling_.spread[: data.n_states], fit.x.size)
        starts = residuals.split(fit.x)[1]
        self._segment_starts = torch.as_tensor(
            (starts - self.scaling_.center) / self.scaling_.spread, dtype=self.torch_dtype_
        )
        return fit.x[: theta.size], residuals.first_states(fit.x), 1.0 / sigma

    def _residual_problem(
        self, data: Trajectories
    ) -> tuple[BatchedField, list[np.ndarray], list[np.ndarray], InputSignal | None, SolverConfig, int]:
        """The leading arguments every residual set takes: field, times, readings, inputs, solver, dimensions."""
        return (
            self.rhs_,
            [tr.t for tr in data],
            [tr.y for tr in data],
            self._input_signal(data),
            self.solver_,
            self.n_dims_,
        )

    def _solve(
        self,
        residuals: Any,
        x: np.ndarray,
        lower: np.ndarray,
        upper: np.ndarray,
        max_nfev: int,
        stage: str,
        stop_within: float = _STOP_WITHIN["final"],
    ) -> LeastSquaresResult:
        try:
            return solve_least_squares(residuals, x, lower, upper, max_nfev=max(max_nfev, 1), stop_within=stop_within)
        except SolverFailure as exc:
            raise FitError(
                f"{type(self).__name__}: the {stage} fit cannot simulate the model at its start ({exc}). Check "
                "the start values in params= and their units, loosen rtol/atol or raise solver_options"
                "['max_num_steps'] for stiff equations, or try optimizer='adam'."
            ) from None

    def _single_shooting(
        self,
        data: Trajectories,
        theta: np.ndarray,
        x0: np.ndarray,
        max_nfev: int,
        history: list[dict[str, Any]],
        weights: np.ndarray | None = None,
        alternatives: Sequence[tuple[np.ndarray, np.ndarray]] = (),
        keep_on_failure: bool = False,
    ) -> None:
        """Whole-trajectory least squares; record the results and their uncertainty.

        ``alternatives``: other starts (parameters, initial states), each fitted too
        (:meth:`_best_fit`); the fit with the smallest residuals is kept.
        ``weights`` (1 / each state's noise level) default to 1 / the state's spread.
        Afterwards the noise levels are estimated from the residuals: if the weights'
        ratios move by more than :data:`~sysid.parameters._uncertainty.REWEIGHT` the fit
        is repeated with the new weights, else the residuals and Jacobian are only
        rescaled to them.
        """
        spec = self._spec()
        lower, upper = spec.free_bounds()
        scale = self.scaling_.spread[: data.n_states]
        residuals = TrajectoryResiduals(
            *self._residual_problem(data),
            1.0 / scale if weights is None else weights,
            lower,
            upper,
            self.training_.learn_x0,
            x0,
            self._readings,
        )
        n_x0 = x0.size if self.training_.learn_x0 else 0
        x = np.concatenate([np.clip(theta, lower, upper), x0.reshape(-1)[:n_x0]])
        bounds = (np.concatenate([lower, np.full(n_x0, -np.inf)]), np.concatenate([upper, np.full(n_x0, np.inf)]))
        starts = [np.concatenate([np.clip(a, lower, upper), b.reshape(-1)[:n_x0]]) for a, b in alternatives]
        try:
            fit = self._best_fit(residuals, x, starts, bounds, max_nfev, history)
            before = residuals.solves
            raw = fit.residuals / residuals.row_weights
            sigma = noise_levels(raw, residuals.state_of, scale, fit.x.size)
            weights = 1.0 / sigma
            if max_nfev and relative_change(weights, residuals.weights) > REWEIGHT:
                residuals.set_weights(weights)
                fit = self._solve(residuals, fit.x, *bounds, max_nfev, "reweighted single shooting")
                history.append(_history_row("reweighted", fit, residuals.solves - before))
            else:
                fit = _reweighted(fit, residuals, weights)
        except FitError:
            if not keep_on_failure:
                raise
            warnings.warn(
                f"{type(self).__name__}: the least-squares refinement cannot simulate the model; keeping "
                "the multiple-shooting estimate, without uncertainties.",
                FitWarning,
                stacklevel=5,
            )
            self._read_params()
            self._clear_uncertainty(spec)
            self.refined_, self.refine_evaluations_ = False, 0
            return
        free, x0 = residuals.split(fit.x)
        self._parameter_module().set_free_values(free)
        self._read_params()
        self.x0_ = x0.copy()
        self.refined_ = bool(max_nfev)
        self.refine_evaluations_ = int(
            sum(row["evaluations"] for row in history if row["stage"] in ("single_shooting", "reweighted"))
        )
        if self.training_.optimizer == "least_squares":
            self._record_least_squares(data, history, fit)
        labels = spec.free_names + (
            [f"x0[{tr}].{s}" for tr in data.names for s in self._dim_names(data)] if self.training_.learn_x0 else []
        )
        self._store_uncertainty(
            spec,
            linearised_uncertainty(fit.jacobian, fit.residuals, labels),
            dict(zip(data.state_names, (1.0 / residuals.weights).tolist())),
        )

    def _best_fit(
        self,
        residuals: TrajectoryResiduals,
        x: np.ndarray,
        alternatives: Sequence[np.ndarray],
        bounds: tuple[np.ndarray, np.ndarray],
        max_nfev: int,
        history: list[dict[str, Any]],
    ) -> LeastSquaresResult:
        """Single shooting from ``x``, then from each alternative start; the fit with the lowest cost.

        An alternative first gets as many evaluations as the fit from ``x`` took (at
        least :data:`_SCREEN_EVALUATIONS`) and finishes only if it is below that fit's
        cost by then: from a start that leads to the same optimum, or a worse one, it
        costs a few evaluations. Where ``x`` cannot be simulated, the first alternative
        that can takes its place.
        """
        if not max_nfev:
            fit = _evaluated(residuals, x)
            history.append(_history_row("single_shooting", fit, residuals.solves))
            return fit
        best: LeastSquaresResult | None = None
        failure: FitError | None = None
        for i, start in enumerate([x, *alternatives]):
            budget = max_nfev if best is None else min(max(_SCREEN_EVALUATIONS, best.nfev), max_nfev)
            before = residuals.solves
            try:
                fit = self._solve(residuals, start, *bounds, budget, "single shooting")
                if best is not None and fit.cost < best.cost and not fit.converged and budget < max_nfev:
                    more = self._solve(residuals, fit.x, *bounds, max_nfev - budget, "single shooting")
                    fit = dataclasses.replace(more, nfev=fit.nfev + more.nfev)
            except FitError as exc:
                failure = failure or exc
                continue
            kept = best is None or fit.cost < best.cost
            row = _history_row("single_shooting", fit, residuals.solves - before)
            if i:
                row["message"] = f"from the given start, {'kept' if kept else 'not kept'}: {row['message']}"
            history.append(row)
            best = fit if kept else best
        if best is None:
            raise failure or FitError("single shooting found no start to simulate from")
        return best

    def _dim_names(self, data: Trajectories) -> list[Hashable]:
        return list(data.state_names) + [f"aug{i}" for i in range(self.n_augment)]

    def _record_least_squares(self, data: Trajectories, history: list[dict[str, Any]], fit: LeastSquaresResult) -> None:
        """The fitted attributes a training run sets (history, evaluations, clocks...)."""
        for i, row in enumerate(history):
            row["epoch"] = i
        self.history_ = pd.DataFrame(history)
        self.n_function_evals_ = int(self.rhs_.nfe)
        self.stop_reason_ = "converged" if fit.converged else "max_epochs"
        self.best_epoch_ = len(history) - 1
        self.trajectory_names_ = list(data.names)
        self.time_scale_ = self.rhs_.time.scale.detach().cpu().numpy()
        self.time_offset_ = self.rhs_.time.offset.detach().cpu().numpy()
        SolverTrainedODE._after_fit(self, data)  # the field's readable results
        # what a warm start with optimizer="adam" reads: the segment starts, else the initial states
        starts = self._segment_starts
        self.shooting_state_ = (
            starts
            if starts is not None
            else torch.as_tensor((self.x0_ - self.scaling_.center) / self.scaling_.spread, dtype=self.torch_dtype_)
        )
        self._segment_starts = None

    # -- results -----------------------------------------------------------------------
    def _profile_problem(self, data: Any) -> ProfileProblem:
        trajectories = self._training_part(self._data_like_fit(data, None, None, {}))
        if len(trajectories) != len(self.trajectory_names_):
            raise DataError(
                f"data= must be the training data ({len(self.trajectory_names_)} trajectories), got "
                f"{len(trajectories)} trajectories."
            )
        spec = self._spec()
        lower, upper = spec.free_bounds()
        weights = np.array([1.0 / self.noise_levels_[s] for s in trajectories.state_names])
        x0 = np.asarray(self.x0_, dtype=float)
        learn_x0 = self.training_.learn_x0
        residuals = TrajectoryResiduals(
            *self._residual_problem(trajectories),
            weights,
            lower,
            upper,
            learn_x0,
            x0,
            self._readings,
        )
        n_x0 = x0.size if learn_x0 else 0
        last: dict[str, Any] = {}

        def evaluate(x: np.ndarray) -> tuple[np.ndarray, Any]:
            if "x" not in last or not np.array_equal(last["x"], x):
                with torch_threads(1), threadpool_limits(1):
                    r, jac = residuals(x)
                if jac is None:
                    raise SolverFailure("the model cannot be simulated at these parameters")
                last.update(x=x.copy(), r=r, jac=jac.toarray() if scipy.sparse.issparse(jac) else jac)  # type: ignore[attr-defined]  # scipy-stubs: issparse narrows to SparseABC
            return last["r"], last["jac"]

        return ProfileProblem(
            lambda x: evaluate(x)[0],
            np.concatenate([[self.params_[n] for n in spec.free_names], x0.reshape(-1)[:n_x0]]),
            np.concatenate([lower, np.full(n_x0, -np.inf)]),
            np.concatenate([upper, np.full(n_x0, np.inf)]),
            lambda x: evaluate(x)[1],
        )

    # -- model files -------------------------------------------------------------------
    _FIT_JSON: ClassVar[tuple[str, ...]] = ("refined_", "refine_evaluations_")

    def _fitted_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        state, tensors = super()._fitted_state()
        if self._least_squares_capable:
            state.update(self._results_state())
            state.update({name: getattr(self, name) for name in self._FIT_JSON})
        return state, tensors

    def _set_fitted_state(self, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        super()._set_fitted_state(state, tensors)
        if not self._least_squares_capable:
            self._read_params()
            return
        self._set_results_state(state, self._spec())
        for name in self._FIT_JSON:
            setattr(self, name, state[name])


def _evaluated(residuals: TrajectoryResiduals, x: np.ndarray) -> LeastSquaresResult:
    """A :class:`LeastSquaresResult` at ``x`` without optimising (no refinement asked for)."""
    r, jac = residuals(x)
    if jac is None or np.all(r == FAILED_RESIDUAL):
        raise FitError("the model cannot be simulated at the trained parameters")
    return LeastSquaresResult(x, r, jac, 0.5 * float(r @ r), 1, 0, "not refined")


def _reweighted(fit: LeastSquaresResult, residuals: TrajectoryResiduals, weights: np.ndarray) -> LeastSquaresResult:
    """``fit`` with its residuals and Jacobian rows rescaled to new state weights (no refit)."""
    factor = weights[residuals.state_of] / residuals.row_weights
    residuals.set_weights(weights)
    jac = fit.jacobian
    jac = scipy.sparse.diags(factor) @ jac if scipy.sparse.issparse(jac) else jac * factor[:, None]  # type: ignore[operator]  # scipy-stubs: issparse narrows to SparseABC
    r = fit.residuals * factor
    return LeastSquaresResult(fit.x, r, jac, 0.5 * float(r @ r), fit.nfev, fit.status, fit.message)


def _history_row(stage: str, fit: LeastSquaresResult, solves: int) -> dict[str, Any]:
    n = max(fit.residuals.size, 1)
    return {
        "epoch": 0,
        "stage": stage,
        "loss": 2.0 * fit.cost / n,
        "evaluations": fit.nfev,
        "solves": solves,
        "converged": fit.converged,
        "message": fit.message,
    }
