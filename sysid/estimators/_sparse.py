"""SparseODE: a sparse library of terms, trained through the ODE solver, thresholded."""

from __future__ import annotations

import copy
import math
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.interpolate import make_smoothing_spline
from scipy.optimize import least_squares
from sklearn.utils.validation import check_is_fitted

from sysid.errors import ConfigError, FitError, FitWarning, ModelFileError
from sysid.estimators import _selection as selection
from sysid.estimators._equations import format_equations
from sysid.estimators._greybox import GreyBoxODE
from sysid.estimators._ode_base import Scaling, SolverTrainedODE, torch_threads
from sysid.fields._polynomial import PolynomialField
from sysid.integration import Clock, SolverFailure, simulate
from sysid.integration._solve import solve
from sysid.training import MultipleShooting, make_segments
from sysid.training._collocation import Smoothed, smooth_trajectory
from sysid.trajectories import Trajectories

_LIBRARIES = ("polynomial",)
_RIDGE = 1e-8  # relative ridge of the least-squares initialisation (conditioning only)
# threshold="auto": how candidates are screened, trained and chosen (see docs/interpretable.md).
_CRITERION = selection.DEFAULT_CRITERION  # information criterion of simulation errors (screening and final choice)
_N_CANDIDATES = 3  # points of the sparsity path trained through the solver (at least)
_MAX_CANDIDATES = 6  # ... and further down the path while the sparsest trained one is the best
_SCREEN_SEGMENTS = 2  # screening segments are this many training segments long
_SCREEN_SWEEPS = 3  # coordinate sweeps over the equations in the screening
_N_BOOTSTRAP = 200  # resamples of the screening's segments for inclusion probabilities
_FD_STEP = 1e-5  # relative central-difference step of the residual Jacobian (standard errors)
_REFINE_STEPS = 20  # Gauss-Newton evaluations polishing each trained candidate


@dataclass
class _Candidate:
    """One joint support: mask (n_terms, n_dims), scaled coefficients, screening score."""

    mask: np.ndarray
    scaled: np.ndarray
    score: float


@dataclass
class _Screen:
    """What the screening hands to the trainings and the record."""

    shortlist: list[_Candidate]
    starts: torch.Tensor
    pairs: list[tuple[str, str, float]]
    inclusion: np.ndarray
    n_screened: int
    extra: dict[str, Any] = dataclass_field(default_factory=dict)


def _segment_errors(shooting: MultipleShooting) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Errors (scaled units) of every segment simulated from its start state: squares, counts, lag-one products.

    One batched solve without gradients over all of ``shooting``'s segments; returns
    ``(sse, n, lag1)``, each (n_segments, n_states), ``lag1`` summing the products of
    consecutive errors. Raises SolverFailure if the solve fails.
    """
    with torch.no_grad():
        starts = shooting.start_states()
        clock = Clock(shooting.grid, shooting.time_knots)
        shooting.rhs.bind(clock, shooting.traj, shooting.inputs)
        z = solve(shooting.rhs, starts, shooting.grid, shooting.solver, "none", jump_t=shooting.grid[1:-1])
        z = z.transpose(0, 1)[:, 1:, : shooting.n_states]
        mask = shooting.observed[:, 1:]
        err = (z - shooting.observations[:, 1:]) * mask
    lag1 = (err[:, 1:] * err[:, :-1]).sum(dim=1)
    return err.pow(2).sum(dim=1).cpu().numpy(), mask.sum(dim=1).cpu().numpy(), lag1.cpu().numpy()


def _joint_arrays(joint: tuple[tuple[int, ...], ...], allowed: np.ndarray, full: np.ndarray,
                  values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Field mask and scaled coefficients (n_terms, n_dims) of a candidate: its supports in the
    observed equations (coefficients ``values``, n_terms x n_observed), the rest as they were."""
    mask = allowed.astype(float).copy()
    scaled = full.copy()
    for j, support in enumerate(joint):
        mask[:, j] = 0.0
        mask[list(support), j] = 1.0
        scaled[:, j] = values[:, j]
    return mask, scaled


def _rescue_oversmoothing(t: np.ndarray, y: np.ndarray, smoothed: Smoothed) -> Smoothed:
    """Redo the smoothing of a state whose spline left far more than the noise behind.

    Generalised cross-validation occasionally picks an almost straight line through a
    short noisy record (3 pendulum swings, 60 samples, 10% noise: the angle's spline
    missed 95% of its spread), and then every candidate equation drawn from its
    derivatives is wrong. Where the spline's residual RMS exceeds three times the noise
    level estimated from the scatter about local quadratics, the strength is chosen
    instead by the discrepancy principle: the residual RMS equals the noise level
    (bisection on ``log(lam)``).
    """
    from sysid.estimators._sindy import _noise_std

    values, derivs, second = smoothed.values.copy(), smoothed.derivatives.copy(), smoothed.second_derivatives.copy()
    changed = False
    for j in range(y.shape[1]):
        seen = ~np.isnan(y[:, j]) & ~np.isnan(values[:, j])
        if seen.sum() < 8:
            continue
        tj, yj = t[seen], y[seen, j]
        sigma = float(_noise_std([(tj, yj[:, None])])[0])
        if not sigma > 0 or np.sqrt(np.mean((yj - values[seen, j]) ** 2)) <= 3 * sigma:
            continue
        h3 = ((tj[-1] - tj[0]) / (len(tj) - 1)) ** 3
        low, high = -12.0, 12.0  # log10(lam / h^3)
        for _ in range(40):
            mid = 0.5 * (low + high)
            fit = make_smoothing_spline(tj, yj, lam=10.0**mid * h3)
            if np.sqrt(np.mean((yj - fit(tj)) ** 2)) > sigma:
                high = mid
            else:
                low = mid
        spline = make_smoothing_spline(tj, yj, lam=10.0**low * h3)
        inside = (t >= tj[0]) & (t <= tj[-1])
        values[inside, j] = spline(t[inside])
        derivs[inside, j] = spline.derivative()(t[inside])
        second[inside, j] = spline.derivative(2)(t[inside])
        changed = True
    return Smoothed(values, derivs, second) if changed else smoothed


def _lag1(residuals: np.ndarray) -> np.ndarray:
    """Sum of products of consecutive errors per column of (n_rows, n_states) residuals (NaN-aware)."""
    prod = residuals[1:] * residuals[:-1]
    return np.nansum(prod, axis=0)


class SparseODE(SolverTrainedODE):
    """Learn sparse, readable equations dx/dt = Theta(x, u) Xi through the ODE solver.

    The vector field is a linear combination of library terms (polynomials up to
    ``degree`` in the states and inputs, optionally ``sin``/``cos`` of the states and
    the user's own ``functions``). Unlike SINDy, the coefficients are not regressed on
    numerical derivatives: they are trained the way :class:`~sysid.NeuralODE` is, by
    multiple shooting through an adaptive solver against the measured states, which
    copes with irregular sampling and noise.

    Which terms each equation keeps is chosen (``threshold="auto"``, the default) along
    a path over sparsity levels: candidate supports come from pysindy's FROLS and SSR
    paths on the regression of the library onto smoothing-spline derivatives, never
    holding two terms that are (nearly) collinear on the data (a :class:`~sysid.FitWarning`
    names them); the candidates are screened by their simulation error over short
    segments (no training); the best one and the best sparser ones (three points of
    the path, and further down it while the sparsest is the best, at most six) are
    trained through the solver without any penalty and polished by Gauss-Newton on the
    whole trajectories, and the one with the lowest information criterion of its
    simulation errors (the larger of the BIC and AICc penalties) is kept (with
    ``validation_fraction`` > 0: the lowest free-run error on the held-out tails). A candidate whose training fails
    is rejected; the fit fails only if every candidate does. The kept coefficients get
    Gauss-Newton standard errors and bootstrap inclusion probabilities
    (:meth:`coefficient_table`). A number as ``threshold`` instead prunes every
    coefficient below it (physical units) and retrains, ``n_threshold_rounds`` times.

    Parameters
    ----------
    library : {"polynomial"}, default "polynomial"
        Library family.
    degree : int, default 2
        Highest total degree of the polynomial terms.
    include_trig : bool, default False
        Add ``sin(state)`` and ``cos(state)`` terms.
    functions : dict of str to callable, optional
        Extra terms ``{name: g}``, ``g(x)`` taking the physical states as a torch tensor
        (batch, n_states) and returning (batch,), e.g. ``{"exp(-x)": lambda x: torch.exp(-x[:, 0])}``.
        Files store only their names: see :meth:`save`.
    threshold : "auto" or float, default "auto"
        ``"auto"``: choose the terms by simulation error, as above. A number: prune the
        coefficients with magnitude below it (physical units) after each training.
    n_threshold_rounds : int, default 3
        With a numeric ``threshold``: prune-and-retrain rounds after the first training
        (0: no thresholding). Unused with ``"auto"``.
    l1 : float, default 0.0
        Weight of an L1 penalty on the scaled coefficients (mean absolute value).
    solver, rtol, atol, solver_options, gradient, learn_x0, learn_time, n_augment, \
segment_length, continuity_weight, max_epochs, lr, batch_size, validation_fraction, \
patience, lbfgs_steps, collocation_steps, input_interpolation, random_state, dtype, \
device, verbose, warm_start, checkpoint_path
        As for :class:`~sysid.NeuralODE`, except that ``max_epochs`` (default 100)
        applies to every thresholding round and to the best screened candidate (the
        sparser candidates train half as long before their Gauss-Newton polish), and ``collocation_steps=0``
        switches the least-squares initialisation off (coefficients then start at zero;
        with ``threshold="auto"`` there are then no candidates: the whole library is
        trained, with a FitWarning).

    Attributes
    ----------
    coefficients_ : pandas.DataFrame
        Terms x states, physical units, zeros where pruned.
    term_names_ : list of str
    n_rounds_ : int
        Trainings done (candidates trained, or 1 + thresholding rounds that pruned something).
    history_ : pandas.DataFrame
        Training history of every training (column ``round``: the candidate or round).
    coefficient_stderr_ : pandas.DataFrame
        ``threshold="auto"``: standard error of every kept coefficient (terms x states,
        NaN where a term is not kept), from the Jacobian of the whole-trajectory
        residuals (as :class:`~sysid.GreyBoxODE`'s).
    inclusion_probabilities_ : pandas.DataFrame
        ``threshold="auto"``: how often each term is chosen when the screening's segments
        are resampled with replacement (200 resamples; terms x states).
    selection_ : pandas.DataFrame
        ``threshold="auto"``: the candidates trained (their terms per state, number of
        terms, screening and final criterion, whether chosen, why a training failed).
    collinear_terms_ : list of (str, str, float)
        ``threshold="auto"``: library terms collinear on the data, with their cosine.
    x0_, time_scale_, time_offset_, n_function_evals_
        As for :class:`~sysid.NeuralODE`.

    See Also
    --------
    distill : equations from any fitted model's vector field.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.linspace(0, 2, 25)
    >>> y = 2.0 * np.exp(-1.5 * t)[:, None]
    >>> model = SparseODE(degree=2, max_epochs=40, gradient="backprop", verbose=False).fit(y, t=t)
    >>> model.equations()
    ['d x0/dt = -1.50 x0']
    """

    _streaming_unsupported = ("its closed-form warm start and its thresholding rounds refit every "
                              "observation at once")

    def __init__(
        self,
        library: str = "polynomial",
        degree: int = 2,
        include_trig: bool = False,
        functions: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] | None = None,
        threshold: float | str = "auto",
        n_threshold_rounds: int = 3,
        l1: float = 0.0,
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
        max_epochs: int = 100,
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
        self.library = library
        self.degree = degree
        self.include_trig = include_trig
        self.functions = functions
        self.threshold = threshold
        self.n_threshold_rounds = n_threshold_rounds
        self.l1 = l1
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

    # -- configuration -------------------------------------------------------------------
    def _check_sparse_params(self) -> None:
        if self.library not in _LIBRARIES:
            raise ConfigError(f"library must be one of {list(_LIBRARIES)}, got {self.library!r}.")
        if isinstance(self.degree, bool) or not isinstance(self.degree, int | np.integer) or self.degree < 0:
            raise ConfigError(f"degree must be a non-negative integer, got {self.degree!r}.")
        if not isinstance(self.include_trig, bool | np.bool_):
            raise ConfigError(f"include_trig must be True or False, got {self.include_trig!r}.")
        if self.functions is not None:
            if not isinstance(self.functions, Mapping):
                raise ConfigError(
                    f"functions must be a dict {{name: callable}}, got {type(self.functions).__name__}."
                )
            for name, g in self.functions.items():
                if not isinstance(name, str) or not callable(g):
                    raise ConfigError(
                        f"functions must map term names (str) to callables g(x) -> tensor (batch,); "
                        f"got {name!r}: {type(g).__name__}."
                    )
        for name in ("threshold", "l1"):
            value = getattr(self, name)
            if name == "threshold" and isinstance(value, str):
                if value != "auto":
                    raise ConfigError(f"threshold must be 'auto' or a non-negative number, got {value!r}.")
                continue
            if isinstance(value, bool) or not isinstance(value, int | float | np.number) or not value >= 0:
                raise ConfigError(f"{name} must be a non-negative number, got {value!r}.")
        rounds = self.n_threshold_rounds
        if isinstance(rounds, bool) or not isinstance(rounds, int | np.integer) or rounds < 0:
            raise ConfigError(f"n_threshold_rounds must be a non-negative integer, got {rounds!r}.")

    def _dim_names(self) -> list[str]:
        return list(self.state_names_) + [f"aug{i}" for i in range(self.n_augment)]

    def _build_field(self, n_dims: int, n_inputs: int, scaling: Scaling,
                     generator: torch.Generator, dtype: torch.dtype) -> torch.nn.Module:
        self._check_sparse_params()
        names = self._dim_names()
        clash = sorted(set(self.functions or {}) & set(names))
        if clash:
            raise ConfigError(f"functions names {clash} clash with state names {names}; rename them.")
        as_t = lambda a: torch.as_tensor(a, dtype=dtype)  # noqa: E731
        probe = as_t(np.tile(scaling.center, (2, 1)))
        for name, g in (self.functions or {}).items():
            try:
                with torch.no_grad():
                    column = g(probe)
            except Exception as exc:  # noqa: BLE001 - reported with context
                raise ConfigError(
                    f"functions[{name!r}] raised {type(exc).__name__} on a probe batch of states with shape "
                    f"(2, {n_dims}): {exc}"
                ) from exc
            if not isinstance(column, torch.Tensor) or tuple(column.shape) not in ((2,), (2, 1)):
                got = tuple(column.shape) if isinstance(column, torch.Tensor) else type(column).__name__
                raise ConfigError(
                    f"functions[{name!r}] returned {got} for states of shape (2, {n_dims}); every function in "
                    "functions must return a tensor (batch,), one value per state row."
                )
        field = PolynomialField(
            names, list(self.input_names_), int(self.degree), bool(self.include_trig), self.functions,
            as_t(scaling.center), as_t(scaling.spread), as_t(scaling.input_center),
            as_t(scaling.input_spread), scaling.time_unit, dtype,
        )
        return field

    def _field_penalty(self) -> torch.Tensor | None:
        if not self.l1:
            return None
        field = self.rhs_.field
        return float(self.l1) * field.scaled_coefficients().abs().mean()

    # -- fitting -------------------------------------------------------------------------
    def _auto(self) -> bool:
        return isinstance(self.threshold, str) and self.threshold == "auto"

    def _fit(self, data: Trajectories) -> None:
        self._resolve()
        self._check_sparse_params()
        if self._auto():
            self._fit_selected(data)
            return
        user_warm_start = self.warm_start
        histories, nfe = [], 0
        try:
            with torch_threads(1):
                self._fit_resolved(data)
                histories.append(self.history_.assign(round=0))
                nfe += self.n_function_evals_
                self.warm_start = True  # later rounds continue from the previous one
                for round_ in range(1, int(self.n_threshold_rounds) + 1):
                    if not self.rhs_.field.prune(float(self.threshold)):
                        break
                    self._checkpoint_stage = round_  # a checkpoint resumes its own round only
                    self._fit_resolved(data)
                    histories.append(self.history_.assign(round=round_))
                    nfe += self.n_function_evals_
        finally:
            self.warm_start = user_warm_start
            self.__dict__.pop("_checkpoint_stage", None)
        if self.n_threshold_rounds:  # rounds exhausted: prune what the last one left small
            self.rhs_.field.prune(float(self.threshold))
        self.history_ = pd.concat(histories, ignore_index=True)
        self.n_function_evals_ = int(nfe)
        self.n_rounds_ = len(histories)
        self._after_fit(data)
        self._clear_selection_results()

    # -- selection (threshold="auto") -----------------------------------------------------
    def _fit_selected(self, data: Trajectories) -> None:
        """Screen candidate supports cheaply, train the best few through the solver, keep the best.

        The first :meth:`_fit_resolved` builds the field; its warm start
        (:meth:`_collocation_warm_start`) screens the candidates and loads the best one,
        which that call then trains. The others are trained in turn from their own
        least-squares coefficients and the same smoothed segment starts; a candidate
        whose training fails (diverges, underflows) is rejected, not fatal.
        """
        user_warm_start, user_epochs = self.warm_start, self.max_epochs
        continuing = self.warm_start and hasattr(self, "rhs_") and self.n_dims_ == data.n_states + self.n_augment
        self._screen = None
        trained: list[dict[str, Any]] = []
        histories: list[pd.DataFrame] = []
        nfe = 0
        last_error: FitError | None = None
        try:
            with torch_threads(1):
                rank = 0
                while True:
                    if rank:
                        candidate = self._screen.shortlist[rank]
                        previous = [t["snapshot"] for t in trained if t["snapshot"] is not None]
                        if previous:  # continue down the path from the last trained point, projected
                            self._restore(previous[-1])
                            self.rhs_.field.project_support(torch.as_tensor(candidate.mask))
                        else:
                            self.rhs_.field.set_support(torch.as_tensor(candidate.mask),
                                                        torch.as_tensor(candidate.scaled))
                            self.shooting_state_ = self._screen.starts.clone()
                        self.warm_start = True
                        self._checkpoint_stage = rank
                        # The sparser points start from the previous one and end with Gauss-Newton: half
                        # the epochs settle them (the best screened candidate gets them all).
                        self.max_epochs = max(1, int(user_epochs) // 2)
                    try:
                        self._fit_resolved(data)
                        failure = None
                    except FitError as exc:
                        if self._screen is None:  # failed before any candidate existed: nothing to reject
                            raise
                        failure, last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0]}", exc
                    if hasattr(self, "history_") and failure is None:
                        histories.append(self.history_.assign(round=rank))
                        nfe += int(self.n_function_evals_)
                    if failure is None and _REFINE_STEPS:
                        self._refine(data)
                    errors = None if failure else self._simulation_errors(data)
                    trained.append({"rank": rank, "errors": errors, "failure": failure,
                                    "k": int(self.rhs_.field.mask.sum()),
                                    "snapshot": None if failure else self._snapshot()})
                    rank += 1
                    if continuing or self._screen is None or rank >= len(self._screen.shortlist):
                        break
                    if rank >= _N_CANDIDATES:  # go further down the path only while sparser keeps winning
                        self._final_scores(trained, data)
                        if min(trained, key=lambda t: t["score"]) is not trained[-1]:
                            break
        finally:
            self.warm_start, self.max_epochs = user_warm_start, user_epochs
            self.__dict__.pop("_checkpoint_stage", None)
        self._final_scores(trained, data)
        usable = [t for t in trained if t["snapshot"] is not None and np.isfinite(t["score"])]
        if not usable:
            usable = [t for t in trained if t["snapshot"] is not None]
        if not usable:
            raise FitError(
                f"SparseODE: every candidate equation failed to train ({len(trained)} tried; last: {last_error}). "
                "Lower the degree, drop include_trig, or check the data's scaling."
            ) from last_error
        if self._screen is None and not continuing:
            warnings.warn(
                "SparseODE(threshold='auto'): collocation_steps=0 leaves no derivative regression to draw candidate "
                "equations from, so the whole library was trained without selection. Use collocation_steps > 0, or "
                "a numeric threshold to prune by magnitude.", FitWarning, stacklevel=4,
            )
        best = min(usable, key=lambda t: t["score"])
        self._restore(best["snapshot"])
        self.history_ = pd.concat(histories, ignore_index=True) if histories else self.history_
        self.n_function_evals_ = int(nfe)
        self.n_rounds_ = len(trained)
        self._after_fit(data)
        self._record_selection(data, trained, best)
        self._uncertainty(data)

    _TRAINED_ATTRS = ("shooting_state_", "history_", "n_function_evals_", "stop_reason_", "best_epoch_", "x0_",
                      "trajectory_names_", "time_scale_", "time_offset_")

    def _snapshot(self) -> dict[str, Any]:
        snap = {name: copy.deepcopy(getattr(self, name)) for name in self._TRAINED_ATTRS if hasattr(self, name)}
        snap["rhs_state"] = copy.deepcopy(self.rhs_.state_dict())
        return snap

    def _restore(self, snap: dict[str, Any]) -> None:
        self.rhs_.load_state_dict(snap["rhs_state"])
        for name in self._TRAINED_ATTRS:
            if name in snap:
                setattr(self, name, snap[name])

    def _simulation_errors(self, data: Trajectories) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(sse, n, lag1) per state of the whole trajectories simulated from the learned x0; None if that fails."""
        try:
            residuals = self._simulation_residuals(data)
        except SolverFailure:
            return None
        pieces = np.split(residuals, np.cumsum([tr.n_times for tr in data])[:-1])
        rows, _ = self._validation_split(data)
        if any(n < tr.n_times for tr, n in zip(data, rows)):  # held-out tails: score them only
            pieces = [p[n:] for p, n in zip(pieces, rows)]
            residuals = np.concatenate(pieces)
        sse = np.nansum(residuals**2, axis=0)
        counts = np.count_nonzero(~np.isnan(residuals), axis=0)
        lag1 = sum(_lag1(r) for r in pieces)
        return sse, counts, lag1

    def _final_scores(self, trained: list[dict[str, Any]], data: Trajectories) -> None:
        """Score every trained candidate by the information criterion of its simulation errors.

        The effective number of independent errors comes from the errors of the candidate
        the textbook criterion (all errors independent) prefers, and is shared by all, so
        that the scores compare the same data.
        """
        done = [t for t in trained if t["errors"] is not None]
        for t in trained:
            t["score"] = math.inf
        if not done:
            return
        if self.validation_fraction:  # held-out selection: the free-run error of the tails, no penalty
            for t in done:
                sse, counts, _ = t["errors"]
                t["score"] = float(np.log(np.sum(sse) / max(np.sum(counts), 1)))
            return
        n_x0 = int(np.size(self.x0_)) if self.learn_x0 else 0
        floor = selection.ERROR_FLOOR

        def criterion(t: dict[str, Any], eff: np.ndarray | None) -> float:
            sse, counts, _ = t["errors"]
            return float(selection.information_criterion(sse, counts, t["k"] + n_x0, _CRITERION, eff, floor))

        ref = min(done, key=lambda t: criterion(t, None))  # as in the screening: the textbook winner's errors
        eff = selection.error_efficiency(ref["errors"][0], ref["errors"][2], ref["errors"][1], floor)
        for t in done:
            t["score"] = criterion(t, eff)

    def _simulation_residuals(self, data: Trajectories, groups: torch.Tensor | None = None,
                              x0_sets: np.ndarray | None = None) -> np.ndarray:
        """Scaled residuals (simulated - observed; NaN where unobserved) of whole trajectories.

        Without ``groups``: the fitted field from the learned x0, (n_rows, n_states) over
        all trajectories stacked. With ``groups`` (G, n_terms, n_dims) scaled coefficient
        sets and ``x0_sets`` (G, n_traj, n_dims) scaled initial states: every set
        integrated in one batched solve, (G, n_rows, n_states).
        """
        dtype = self.torch_dtype_
        n_traj = len(data)
        if groups is None:
            z0 = self.scaling_.scale(np.asarray(self.x0_, dtype=float)[:, : data.n_states])
            z0 = np.concatenate([z0, np.asarray(self.x0_, dtype=float)[:, data.n_states:]], axis=1)[None]
        else:
            z0 = x0_sets
        n_sets = z0.shape[0]
        field: PolynomialField = self.rhs_.field
        field.groups = groups
        try:
            preds = simulate(self.rhs_, torch.as_tensor(z0.reshape(n_sets * n_traj, -1), dtype=dtype),
                             [tr.t for tr in data] * n_sets, torch.arange(n_traj).repeat(n_sets),
                             self._input_signal(data), self.solver_, "none")
        finally:
            field.groups = None
        out = []
        for g in range(n_sets):
            parts = [preds[g * n_traj + i][:, : data.n_states].cpu().numpy() - self.scaling_.scale(tr.y)
                     for i, tr in enumerate(data)]
            out.append(np.concatenate(parts))
        return out[0] if groups is None else np.stack(out)

    def _collocation_warm_start(self, data: Trajectories, train_rows: list[int]) -> list[np.ndarray]:
        """Ridge least squares of the library onto smoothing-spline derivatives (closed form).

        With ``threshold="auto"`` this is also where the candidate supports are screened
        (:meth:`_screen_candidates`); the field leaves with the best one loaded.
        """
        lam = self._smoothing_strengths(data, train_rows)
        smoothed = [smooth_trajectory(tr.t[:n], tr.y[:n], lam) for tr, n in zip(data, train_rows)]
        if self._auto():
            smoothed = [_rescue_oversmoothing(tr.t[:n], tr.y[:n], sm) for tr, n, sm in zip(data, train_rows, smoothed)]
        field: PolynomialField = self.rhs_.field
        dtype = self.torch_dtype_
        n_obs = data.n_states
        x = np.concatenate([s.values for s in smoothed])
        dx = np.concatenate([s.derivatives for s in smoothed])
        t = np.concatenate([tr.t[:n] for tr, n in zip(data, train_rows)])
        rows = np.isfinite(x).all(axis=1)
        theta = targets = None
        if rows.sum() >= 2:
            x_full = np.zeros((int(rows.sum()), self.n_dims_))
            x_full[:, :n_obs] = x[rows]
            u = None
            if data.n_inputs:
                u = torch.as_tensor(np.concatenate([tr.u[:n] for tr, n in zip(data, train_rows)])[rows], dtype=dtype)
            with torch.no_grad():
                theta = (field.library(torch.as_tensor(t[rows], dtype=dtype), torch.as_tensor(x_full, dtype=dtype), u)
                         / field.feature_scale).numpy()
            out_scale = field.out_scale.numpy()
            targets = dx[rows] / out_scale[:n_obs]
            mask = field.mask.numpy()
            scaled = np.zeros(mask.shape)
            for j in range(n_obs):
                seen = np.isfinite(dx[rows, j])
                active = mask[:, j] > 0
                if seen.sum() < 2 or not active.any():
                    continue
                a = theta[seen][:, active]
                b = targets[seen, j]
                gram = a.T @ a
                ridge = _RIDGE * np.trace(gram) / max(gram.shape[0], 1)
                scaled[active, j] = np.linalg.solve(gram + ridge * np.eye(gram.shape[0]), a.T @ b)
            if np.all(np.isfinite(theta)) and np.all(np.isfinite(scaled)):
                field.set_gram(torch.as_tensor(theta.T @ theta / theta.shape[0], dtype=dtype))
                field.set_scaled_coefficients(torch.as_tensor(scaled * mask, dtype=dtype))
            else:
                theta = None
        initial = []
        for tr, sm in zip(data, smoothed):
            values = np.full(tr.y.shape, np.nan)
            values[: sm.values.shape[0]] = self.scaling_.scale(sm.values)
            initial.append(values)
        if self._auto():
            self._screen = self._screen_candidates(data, train_rows, theta, targets, initial)
        return initial

    def _screen_candidates(self, data: Trajectories, train_rows: list[int], theta: np.ndarray | None,
                           targets: np.ndarray | None, initial: list[np.ndarray]) -> _Screen:
        """Candidate supports from the derivative regression, ranked by their short-horizon simulation error.

        Every equation's candidates come from pysindy's FROLS and SSR paths
        (:func:`~sysid.estimators._selection.support_paths`), never holding both terms of a
        collinear pair, each with its least-squares coefficients. A joint candidate (one
        support per equation) is scored by the information criterion of its simulation
        errors over segments of ``_SCREEN_SEGMENTS`` intervals started from the smoothed
        states (one batched solve, no training): the equations are chosen one at a time
        (the others held), sweeping until nothing changes. A candidate whose solve fails
        is rejected. The sparsity path from the best candidate down (the best of every
        smaller size, :meth:`~sysid.estimators._selection.Search.front`) goes on to training.
        """
        field: PolynomialField = self.rhs_.field
        dtype = self.torch_dtype_
        n_obs, n_terms, n_dims = data.n_states, len(field.term_names), self.n_dims_
        allowed = field.mask.numpy() > 0
        times = [tr.t[:n] for tr, n in zip(data, train_rows)]
        scaled = [self.scaling_.scale(tr.y[:n]) for tr, n in zip(data, train_rows)]
        segments = make_segments(times, scaled, int(self.segment_length) * _SCREEN_SEGMENTS)
        shooting = MultipleShooting(self.rhs_, segments, times, scaled, n_dims, self._input_signal(data),
                                    self.solver_, "backprop", 0.0, True,
                                    [v[:n] for v, n in zip(initial, train_rows)])
        train_segments = make_segments(times, scaled, int(self.segment_length))
        starts = MultipleShooting(self.rhs_, train_segments, times, scaled, n_dims, self._input_signal(data),
                                  self.solver_, "backprop", 0.0, True,
                                  [v[:n] for v, n in zip(initial, train_rows)]).starts.detach().clone()
        full = field.scaled_coefficients().detach().numpy().copy()
        if theta is None or targets is None:  # no usable derivative regression: train the full library
            only = _Candidate(allowed.astype(float), full, math.inf)
            return _Screen([only], starts, [], np.zeros((n_terms, n_obs)), 1)

        def simulate_joint(joint: selection.Joint, values: np.ndarray) -> selection.Errors | None:
            mask, scaled_values = _joint_arrays(joint, allowed, full, values)
            field.set_support(torch.as_tensor(mask, dtype=dtype), torch.as_tensor(scaled_values, dtype=dtype))
            try:
                return _segment_errors(shooting)
            except SolverFailure:
                return None

        found = selection.select_equations(theta, targets, field.term_names, simulate_joint, allowed[:, :n_obs],
                                           _CRITERION, _SCREEN_SWEEPS, "SparseODE", stacklevel=9)
        search, pairs = found.search, found.pairs
        shortlist = []
        for joint in found.front(_MAX_CANDIDATES) or found.ranked()[:1]:
            mask, values = _joint_arrays(joint, allowed, full, found.coefficients(joint))
            shortlist.append(_Candidate(mask, values, search.scores[joint]))
        rng = np.random.default_rng(self.random_state if isinstance(self.random_state, int | np.integer) else 0)
        inclusion = search.inclusion(n_terms, _N_BOOTSTRAP, rng)
        first = shortlist[0]
        field.set_support(torch.as_tensor(first.mask, dtype=dtype), torch.as_tensor(first.scaled, dtype=dtype))
        named_pairs = [(field.term_names[i], field.term_names[j], c) for i, j, c in pairs]
        return _Screen(shortlist, starts, named_pairs, inclusion, len(search.scores), {"efficiency": search.efficiency})

    def _record_selection(self, data: Trajectories, trained: list[dict[str, Any]], best: dict[str, Any]) -> None:
        """The selection's public record: candidates, collinear pairs, inclusion probabilities."""
        screen = self._screen
        names = list(self.term_names_)
        states = list(self.state_names_)
        rows = []
        for t in trained:
            cand = screen.shortlist[t["rank"]] if screen is not None else None
            if cand is not None:
                terms = {s: [names[i] for i in np.flatnonzero(cand.mask[:, j] > 0)] for j, s in enumerate(states)}
            else:
                mask = self.rhs_.field.mask.numpy()
                terms = {s: [names[i] for i in np.flatnonzero(mask[:, j] > 0)] for j, s in enumerate(states)}
            rows.append({"candidate": t["rank"], "terms": terms,
                         "n_terms": sum(len(v) for v in terms.values()),
                         "screening_score": None if cand is None else cand.score,
                         "score": t["score"], "chosen": t is best, "failure": t["failure"]})
        self.selection_ = pd.DataFrame(rows).set_index("candidate")
        self.selection_criterion_ = _CRITERION
        self.n_candidates_screened_ = 0 if screen is None else int(screen.n_screened)
        self.collinear_terms_ = [] if screen is None else list(screen.pairs)
        inclusion = np.full((len(names), len(states)), np.nan) if screen is None else screen.inclusion
        self.inclusion_probabilities_ = pd.DataFrame(inclusion, index=pd.Index(names, name="term"),
                                                     columns=pd.Index(states, name="state"))
        self._screen = None

    def _clear_selection_results(self) -> None:
        for name in ("selection_", "selection_criterion_", "n_candidates_screened_", "collinear_terms_",
                     "inclusion_probabilities_", "coefficient_stderr_", "dof_"):
            self.__dict__.pop(name, None)

    # -- Gauss-Newton polish and uncertainty ---------------------------------------------
    def _active(self, n_states: int) -> list[tuple[int, int]]:
        mask = self.rhs_.field.mask.numpy() > 0
        return [(k, j) for j in range(n_states) for k in np.flatnonzero(mask[:, j])]

    def _parameters(self, data: Trajectories) -> tuple[np.ndarray, np.ndarray]:
        """(scaled active coefficients (p,), scaled initial states (n_traj, n_dims))."""
        with torch.no_grad():
            base = self.rhs_.field.scaled_coefficients().detach().numpy()
        coefs = np.array([base[k, j] for k, j in self._active(data.n_states)])
        x0 = np.asarray(self.x0_, dtype=float)
        z0 = np.concatenate([self.scaling_.scale(x0[:, : data.n_states]), x0[:, data.n_states:]], axis=1)
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
        field: PolynomialField = self.rhs_.field
        with torch.no_grad():
            base = field.scaled_coefficients().detach().numpy()
        groups = np.repeat(base[None], coef_sets.shape[0], axis=0)
        for i, (k, j) in enumerate(self._active(data.n_states)):
            groups[:, k, j] = coef_sets[:, i]
        res = self._simulation_residuals(data, torch.as_tensor(groups, dtype=self.torch_dtype_), z0_sets)
        seen = ~np.isnan(res[0])
        return res[:, seen]

    def _jacobian(self, data: Trajectories, coefs: np.ndarray, z0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Residuals (n_res,) and their Jacobian (n_res, p + n_traj * n_dims) in the scaled coordinates.

        Central differences with every perturbed copy in one batched solve; each initial-state
        component is perturbed in all trajectories at once (a trajectory's residuals depend
        on its own initial state only), so the solve holds 1 + 2 (p + n_dims) copies.
        """
        n_p, n_traj, n_dims = coefs.size, len(data), self.n_dims_
        n_x = n_dims if self.learn_x0 else 0
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

    _state_weights = staticmethod(GreyBoxODE._state_weights)  # 1 / residual RMS of each state, per entry

    def _training_part(self, data: Trajectories) -> Trajectories:
        rows, _ = self._validation_split(data)
        if all(n == tr.n_times for tr, n in zip(data, rows)):
            return data
        return data.subset([tr.replace(t=tr.t[:n], y=tr.y[:n], u=None if tr.u is None else tr.u[:n])
                            for tr, n in zip(data, rows)])

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
        n_p = coefs.size
        theta0 = np.concatenate([coefs, z0.ravel()])
        n_traj = len(data)

        def split(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return theta[:n_p], theta[n_p:].reshape(n_traj, -1)

        try:
            r0 = self._residual_sets(data, coefs[None], z0[None])[0]
            weights = self._state_weights(data, r0)
            cache: dict[str, np.ndarray] = {}

            def fun(theta: np.ndarray) -> np.ndarray:
                c, z = split(theta)
                return self._residual_sets(data, c[None], z[None])[0] * weights

            def jac(theta: np.ndarray) -> np.ndarray:
                c, z = split(theta)
                _, j = self._jacobian(data, c, z)
                if not self.learn_x0:  # initial states held: zero columns
                    j = np.concatenate([j, np.zeros((j.shape[0], z.size))], axis=1)
                cache["theta"] = theta.copy()
                return j * weights[:, None]

            solution = least_squares(fun, theta0, jac=jac, method="trf", x_scale="jac", max_nfev=_REFINE_STEPS,
                                     ftol=1e-6, xtol=1e-6)
        except (SolverFailure, ValueError, np.linalg.LinAlgError):
            return
        if not solution.cost < 0.5 * float(np.sum((r0 * weights) ** 2)):
            return
        c, z = split(solution.x)
        if not self.learn_x0:
            z = z0
        self._set_parameters(data, c, z)

    def _uncertainty(self, data: Trajectories) -> None:
        """Standard errors of the active coefficients from the whole-trajectory residual Jacobian.

        As for :class:`~sysid.GreyBoxODE`: residuals are simulated minus observed over
        every observed entry (of the training part), each state weighted by its residual
        RMS; ``J`` is their Jacobian with respect to the active coefficients and, with
        ``learn_x0``, the initial states; ``cov = s^2 (J^T J)^-1 / e``, ``s^2 = SSR / (n - p)``,
        where ``e`` is the effective fraction of independent residuals (their lag-one
        autocorrelation, as in the selection criterion: smooth misfit carries less
        information than white noise, and ignoring it gave a real pendulum's damping a
        standard error of 0.25% where refits on halves of the record differ by more).
        Directions the data do not determine (singular values below 1e-6 of the largest)
        get infinite standard errors.
        """
        field: PolynomialField = self.rhs_.field
        names, states = list(self.term_names_), list(self.state_names_)
        stderr = np.full((len(names), len(states)), np.nan)
        self.coefficient_stderr_ = pd.DataFrame(stderr, index=pd.Index(names, name="term"),
                                                columns=pd.Index(states, name="state"))
        self.dof_ = 0
        data = self._training_part(data)
        active = self._active(data.n_states)
        if not active:
            return
        coefs, z0 = self._parameters(data)
        try:
            r, jac = self._jacobian(data, coefs, z0)
        except SolverFailure:
            return
        w = self._state_weights(data, r)
        rw, jw = r * w, jac * w[:, None]
        n, p = rw.size, jw.shape[1]
        residuals = self._simulation_residuals(data)
        pieces = np.split(residuals, np.cumsum([tr.n_times for tr in data])[:-1])
        counts = np.count_nonzero(~np.isnan(residuals), axis=0)
        eff = selection.error_efficiency(np.nansum(residuals**2, axis=0), sum(_lag1(q) for q in pieces), counts,
                                         selection.ERROR_FLOOR)
        share = float(np.sum(eff * counts) / max(np.sum(counts), 1))
        dof = max(n * share - p, 1.0)  # of the t quantile in coefficient_table
        s2 = float(rw @ rw) / max(n - p, 1) / share
        norms = np.linalg.norm(jw, axis=0)
        norms = np.where(norms > 0, norms, 1.0)
        _, sing, vt = np.linalg.svd(jw / norms, full_matrices=False)
        smax = float(sing[0]) if sing.size else 1.0
        null = sing <= 1e-6 * smax
        safe = np.where(null, 1e-6 * smax, sing)
        cov = s2 * ((vt.T / safe**2) @ vt) / np.outer(norms, norms)
        n_p = len(active)
        se_scaled = np.sqrt(np.clip(np.diag(cov)[:n_p], 0, None))
        for i in np.flatnonzero(null):
            se_scaled[np.abs(vt[i, :n_p]) > 0.1] = np.inf
        to_physical = field.out_scale.numpy()[None, :] / field.feature_scale.numpy()[:, None]
        for i, (k, j) in enumerate(active):
            stderr[k, j] = se_scaled[i] * to_physical[k, j]
        self.coefficient_stderr_ = pd.DataFrame(stderr, index=pd.Index(names, name="term"),
                                                columns=pd.Index(states, name="state"))
        self.dof_ = round(dof)

    def coefficient_table(self, level: float = 0.95) -> pd.DataFrame:
        """Every active coefficient with its standard error, interval and inclusion probability.

        Parameters
        ----------
        level : float in (0, 1), default 0.95
            Confidence level of the intervals (Student t with the residual degrees of freedom).

        Returns
        -------
        pandas.DataFrame
            Indexed by (state, term); columns ``estimate``, ``stderr``, ``lower``,
            ``upper`` and ``inclusion_probability`` (NaN where not measured: after a fit
            with a numeric ``threshold``, and for terms not selected).
        """
        check_is_fitted(self)
        return selection.coefficient_table(self.coefficients_, getattr(self, "coefficient_stderr_", None),
                                           getattr(self, "inclusion_probabilities_", None),
                                           max(int(getattr(self, "dof_", 0)), 1), level)

    def _after_fit(self, data: Trajectories | None) -> None:
        field: PolynomialField = self.rhs_.field
        self.term_names_ = list(field.term_names)
        xi = field.coefficients().detach().cpu().numpy()[:, : self.n_states_in_]
        self.coefficients_ = pd.DataFrame(xi, index=pd.Index(self.term_names_, name="term"),
                                          columns=pd.Index(list(self.state_names_), name="state"))

    # -- results -------------------------------------------------------------------------
    def equations(self, precision: int = 2) -> list[str]:
        """The learned equations, one ``"d state/dt = ..."`` line per state.

        Parameters
        ----------
        precision : int, default 2
            Decimals of each coefficient.

        Returns
        -------
        list of str
        """
        check_is_fitted(self)
        return format_equations(self.coefficients_, precision=precision)

    # -- model files ---------------------------------------------------------------------
    _TABLES = ("inclusion_probabilities_", "coefficient_stderr_")

    def _fitted_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        state, tensors = super()._fitted_state()
        state["n_rounds_"] = self.n_rounds_
        if hasattr(self, "selection_"):
            for name in self._TABLES:
                state[name] = getattr(self, name).to_numpy(dtype=float).tolist()
            selection_ = self.selection_.reset_index()
            state["selection_"] = {k: [v if not isinstance(v, float) or math.isfinite(v) else repr(v) for v in col]
                                   for k, col in selection_.to_dict(orient="list").items()}
            state["collinear_terms_"] = [list(p) for p in self.collinear_terms_]
            state["selection_criterion_"] = self.selection_criterion_
            state["n_candidates_screened_"] = self.n_candidates_screened_
            state["dof_"] = self.dof_
        return state, tensors

    def _set_fitted_state(self, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        placeholders = [k for k, g in (self.functions or {}).items() if not callable(g)]
        if placeholders:
            raise ModelFileError(
                f"this SparseODE was saved with user term functions {placeholders}; files hold no code. "
                "Rebuild it with SparseODE(functions=...) and refit (sysid.load cannot restore nested functions yet)."
            )
        super()._set_fitted_state(state, tensors)
        self.n_rounds_ = int(state.get("n_rounds_", 1))
        self._after_fit(None)
        self._clear_selection_results()
        if "selection_" in state:
            for name in self._TABLES:
                self.__dict__[name] = pd.DataFrame(np.asarray(state[name], dtype=float), index=self.coefficients_.index,
                                                   columns=self.coefficients_.columns)
            table = {k: [float(v) if isinstance(v, str) and v in ("inf", "-inf", "nan") else v for v in col]
                     for k, col in state["selection_"].items()}
            self.selection_ = pd.DataFrame(table).set_index("candidate")
            self.collinear_terms_ = [(str(a), str(b), float(c)) for a, b, c in state["collinear_terms_"]]
            self.selection_criterion_ = str(state["selection_criterion_"])
            self.n_candidates_screened_ = int(state["n_candidates_screened_"])
            self.dof_ = int(state["dof_"])
