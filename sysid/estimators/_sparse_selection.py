"""SparseODE's choice of equations (``threshold="auto"``): screen candidate supports, train the best few.

:class:`SelectionMixin` screens candidate supports from the derivative regression by
their short-horizon simulation error (no training, :mod:`sysid.selection`), trains the
best one and sparser points of the path through the solver, polishes each by
Gauss-Newton (:class:`~sysid.estimators._sparse_uncertainty.GaussNewtonMixin`) and keeps
the one with the lowest information criterion of its simulation errors. A candidate
whose training fails is rejected; the fit fails only if every candidate does.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from scipy.interpolate import make_smoothing_spline

from sysid import selection
from sysid.errors import FitError, FitWarning
from sysid.estimators._sindy_data import noise_std
from sysid.estimators._sparse_uncertainty import _REFINE_STEPS, GaussNewtonMixin, lag1
from sysid.fields import PolynomialField
from sysid.integration import Clock, SolverFailure, solve, torch_threads
from sysid.training import MultipleShooting, Smoothed, make_segments
from sysid.trajectories import Trajectories

# How candidates are screened, trained and chosen (see docs/interpretable.md).
_CRITERION = selection.DEFAULT_CRITERION  # information criterion of simulation errors (screening and final choice)
_N_CANDIDATES = 3  # points of the sparsity path trained through the solver (at least)
_MAX_CANDIDATES = 6  # ... and further down the path while the sparsest trained one is the best
_SCREEN_SEGMENTS = 2  # screening segments are this many training segments long
_SCREEN_SWEEPS = 3  # coordinate sweeps over the equations in the screening
_N_BOOTSTRAP = 200  # resamples of the screening's segments for inclusion probabilities
# Solver steps a screened candidate may take within one sample interval before it is rejected
# (_segment_errors). Without it the solver's default budget applies, 10,000 steps per interval
# (DEFAULT_MAX_NUM_STEPS in sysid/integration/_solve.py): on the Brusselator and Sel'kov at degree 3,
# 8-11 candidates that blow up inside the screening windows ran to it, about 60,000 evaluations and
# 24 s each, 55-70% of the whole fit's time. The candidates that solved took at most 3,500 steps
# over all 10 intervals; the one that took most (Sel'kov's) is rejected by the cap, and both fits
# chose the same equations as without it.
_SCREEN_MAX_STEPS = 1_000


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
    consecutive errors. Raises SolverFailure if the solve fails, or if an adaptive solver takes
    more than ``_SCREEN_MAX_STEPS`` steps within one sample interval (dynamics a thousand times
    faster than the sampling: a candidate blowing up, which the data cannot support), unless
    the user's solver options give their own ``max_num_steps`` (a stiff system they know of).
    """
    solver = shooting.solver
    if solver.options.get("max_num_steps") is None:
        solver = solver.with_step_budget(_SCREEN_MAX_STEPS)
    with torch.no_grad():
        starts = shooting.start_states()
        clock = Clock(shooting.grid, shooting.time_knots)
        shooting.rhs.bind(clock, shooting.traj, shooting.inputs)
        z = solve(shooting.rhs, starts, shooting.grid, solver, "none", jump_t=shooting.grid[1:-1])
        z = z.transpose(0, 1)[:, 1:, : shooting.n_states]
        mask = shooting.observed[:, 1:]
        err = torch.where(mask, shooting.errors_of(z, shooting.observations[:, 1:]), 0.0)
    lag1 = (err[:, 1:] * err[:, :-1]).sum(dim=1)
    return err.pow(2).sum(dim=1).cpu().numpy(), mask.sum(dim=1).cpu().numpy(), lag1.cpu().numpy()


def _joint_arrays(
    joint: tuple[tuple[int, ...], ...], allowed: np.ndarray, full: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Field mask and scaled coefficients (n_terms, n_dims) of a candidate: its supports in the
    observed equations (coefficients ``values``, n_terms x n_observed), the rest as they were."""
    mask = allowed.astype(float).copy()
    scaled = full.copy()
    for j, support in enumerate(joint):
        mask[:, j] = 0.0
        mask[list(support), j] = 1.0
        scaled[:, j] = values[:, j]
    return mask, scaled


def rescue_oversmoothing(t: np.ndarray, y: np.ndarray, smoothed: Smoothed) -> Smoothed:
    """Redo the smoothing of a state whose spline left far more than the noise behind.

    Generalised cross-validation occasionally picks an almost straight line through a
    short noisy record (3 pendulum swings, 60 samples, 10% noise: the angle's spline
    missed 95% of its spread), and then every candidate equation drawn from its
    derivatives is wrong. Where the spline's residual RMS exceeds three times the noise
    level estimated from the scatter about local quadratics, the strength is chosen
    instead by the discrepancy principle: the residual RMS equals the noise level
    (bisection on ``log(lam)``).
    """
    values, derivs, second = smoothed.values.copy(), smoothed.derivatives.copy(), smoothed.second_derivatives.copy()
    changed = False
    for j in range(y.shape[1]):
        seen = ~np.isnan(y[:, j]) & ~np.isnan(values[:, j])
        if seen.sum() < 8:
            continue
        tj, yj = t[seen], y[seen, j]
        sigma = float(noise_std([(tj, yj[:, None])])[0])
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


class SelectionMixin(GaussNewtonMixin):
    """SparseODE's ``threshold="auto"``: candidate supports screened, the best few trained, one kept."""

    _fit_resolved: Any
    _checkpoint_stage: int
    field_part_: Any
    random_state: Any
    warm_start: bool
    n_augment: int
    shooting_state_: Any
    history_: pd.DataFrame
    n_function_evals_: int
    n_rounds_: int
    _screened: _Screen | None  # the screening of the current fit (set by _screen), None outside fits
    collinear_terms_: list[tuple[str, str, float]]

    if TYPE_CHECKING:  # provided by the estimator this is mixed into (SolverTrainedODE)

        def _after_fit(self, data: Trajectories) -> None: ...

    def _fit_selected(self, data: Trajectories) -> None:
        """Screen candidate supports cheaply, train the best few through the solver, keep the best.

        The first :meth:`_fit_resolved` builds the field; its warm start
        (:meth:`_collocation_warm_start`) screens the candidates and loads the best one,
        which that call then trains. The others are trained in turn from their own
        least-squares coefficients and the same smoothed segment starts; a candidate
        whose training fails (diverges, underflows) is rejected, not fatal.
        """
        user_warm_start, user_epochs = self.warm_start, self.training_.max_epochs
        continuing = self.warm_start and hasattr(self, "rhs_") and self.n_dims_ == data.n_states + self.n_augment
        self._screened = None
        trained: list[dict[str, Any]] = []
        histories: list[pd.DataFrame] = []
        nfe = 0
        last_error: FitError | None = None
        screen: _Screen | None = None  # the screening, once a first training has made one
        try:
            with torch_threads(1):
                rank = 0
                while True:
                    if screen is not None:  # rank > 0: train the next screened candidate
                        candidate = screen.shortlist[rank]
                        previous = [t["snapshot"] for t in trained if t["snapshot"] is not None]
                        if previous:  # continue down the path from the last trained point, projected
                            self._restore(previous[-1])
                            self.rhs_.field.project_support(torch.as_tensor(candidate.mask))
                        else:
                            self.rhs_.field.set_support(
                                torch.as_tensor(candidate.mask), torch.as_tensor(candidate.scaled)
                            )
                            self.shooting_state_ = screen.starts.clone()
                        self.warm_start = True
                        self._checkpoint_stage = rank
                        # The sparser points start from the previous one and end with Gauss-Newton: half
                        # the epochs settle them (the best screened candidate gets them all).
                        self.training_.max_epochs = max(1, int(user_epochs) // 2)
                    try:
                        self._fit_resolved(data)
                        failure = None
                    except FitError as exc:
                        if self._screened is None:  # failed before any candidate existed: nothing to reject
                            raise
                        failure, last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0]}", exc
                    if hasattr(self, "history_") and failure is None:
                        histories.append(self.history_.assign(round=rank))
                        nfe += int(self.n_function_evals_)
                    if failure is None and _REFINE_STEPS:
                        self._refine(data)
                    errors = None if failure else self._simulation_errors(data)
                    trained.append(
                        {
                            "rank": rank,
                            "errors": errors,
                            "failure": failure,
                            "k": int(self.rhs_.field.mask.sum()),
                            "mask": self.rhs_.field.mask.numpy().copy(),
                            "origin": "path",
                            "snapshot": None if failure else self._snapshot(),
                        }
                    )
                    rank += 1
                    screen = self._screened
                    if continuing or screen is None or rank >= len(screen.shortlist):
                        break
                    if rank >= _N_CANDIDATES:  # go further down the path only while sparser keeps winning
                        self._final_scores(trained, data)
                        if min(trained, key=lambda t: t["score"]) is not trained[-1]:
                            break
                if not continuing and self._screened is not None:
                    self._offset_variants(data, trained)
        finally:
            self.warm_start, self.training_.max_epochs = user_warm_start, user_epochs
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
        if self._screened is None and not continuing:
            warnings.warn(
                "SparseODE(threshold='auto'): collocation_steps=0 leaves no derivative regression to draw candidate "
                "equations from, so the whole library was trained without selection. Use collocation_steps > 0, or "
                "a numeric threshold to prune by magnitude.",
                FitWarning,
                stacklevel=4,
            )
        complexity = self._term_complexity()
        best = usable[
            selection.simplest_within(
                [t["score"] for t in usable],
                [t["k"] for t in usable],
                [float(np.sum(complexity[:, None] * (t["mask"][:, : data.n_states] > 0))) for t in usable],
            )
        ]
        self._restore(best["snapshot"])
        self.history_ = pd.concat(histories, ignore_index=True) if histories else self.history_
        self.n_function_evals_ = int(nfe)
        self.n_rounds_ = sum(t["origin"] == "path" for t in trained)  # trainings (offset variants are polished only)
        self._after_fit(data)
        self._record_selection(data, trained, best)
        self._uncertainty(data)

    def _term_complexity(self) -> np.ndarray:
        """Complexity of every library term (n_terms,): 0 the constant, a monomial's degree, functions more.

        ``sin``, ``cos`` and the user's functions count as one more than the library's degree.
        """
        field: PolynomialField = self.rhs_.field
        n_terms = len(field.term_names)
        out = np.full(n_terms, float(field.degree) + 1.0)
        index = field.factor_index.numpy()
        out[: index.shape[0]] = (index > 0).sum(axis=1)
        return out

    def _offset_variants(self, data: Trajectories, trained: list[dict[str, Any]]) -> None:
        """Fit the chosen equations again with each offset-like term swapped for the constant, and without it.

        A term nearly constant on the data (:func:`sysid.selection.offset_terms`, e.g.
        ``cos(theta)`` on small swings) held by an equation of the best trained candidate
        acts there as an offset: the variant with the constant in its place (when that
        equation may hold the constant and does not) and the variant without it start
        from the best candidate's trained coefficients projected onto their support
        (the term's contribution handed to the terms that stay) and are polished by
        Gauss-Newton on the whole trajectories. They join the trained candidates; the
        criterion and its tie rule (:func:`sysid.selection.simplest_within`) choose.
        """
        screen = self._screened
        if screen is None:
            return
        constant, offsets = screen.extra.get("offsets", (None, []))
        if constant is None or not offsets:
            return
        self._final_scores(trained, data)
        usable = [t for t in trained if t["snapshot"] is not None and np.isfinite(t["score"])]
        if not usable:
            return
        best = min(usable, key=lambda t: t["score"])
        allowed, names = screen.extra["allowed"], self.rhs_.field.term_names
        seen = {t["mask"].tobytes() for t in trained}
        variants = []
        for j in range(data.n_states):
            state = self.rhs_.field.state_names[j]
            for term, _ in offsets:
                if best["mask"][term, j] <= 0:
                    continue
                drop = best["mask"].copy()
                drop[term, j] = 0.0
                if allowed[constant, j] and best["mask"][constant, j] <= 0:
                    swap = drop.copy()
                    swap[constant, j] = 1.0
                    variants.append((f"{names[constant]} for {names[term]} in d {state}/dt", swap))
                variants.append((f"without {names[term]} in d {state}/dt", drop))
        for origin, mask in variants:
            if mask.tobytes() in seen:
                continue
            seen.add(mask.tobytes())
            self._restore(best["snapshot"])
            self.rhs_.field.project_support(torch.as_tensor(mask, dtype=self.torch_dtype_))
            if _REFINE_STEPS:
                self._refine(data)
            errors = self._simulation_errors(data)
            trained.append(
                {
                    "rank": None,
                    "errors": errors,
                    "failure": None if errors is not None else "SolverFailure: the simulation failed",
                    "k": int(mask.sum()),
                    "mask": mask,
                    "origin": f"offset: {origin}",
                    "snapshot": None if errors is None else self._snapshot(),
                }
            )

    _TRAINED_ATTRS = (
        "shooting_state_",
        "history_",
        "n_function_evals_",
        "stop_reason_",
        "best_epoch_",
        "x0_",
        "trajectory_names_",
        "time_scale_",
        "time_offset_",
    )

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
        return sse, counts, np.sum([lag1(r) for r in pieces], axis=0)

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
        if self.training_.validation_fraction:  # held-out selection: the free-run error of the tails, no penalty
            for t in done:
                sse, counts, _ = t["errors"]
                t["score"] = float(np.log(np.sum(sse) / max(np.sum(counts), 1)))
            return
        n_x0 = int(np.size(self.x0_)) if self.training_.learn_x0 else 0
        floor = selection.ERROR_FLOOR

        def criterion(t: dict[str, Any], eff: np.ndarray | None) -> float:
            sse, counts, _ = t["errors"]
            return float(selection.information_criterion(sse, counts, t["k"] + n_x0, _CRITERION, eff, floor))

        ref = min(done, key=lambda t: criterion(t, None))  # as in the screening: the textbook winner's errors
        eff = selection.error_efficiency(ref["errors"][0], ref["errors"][2], ref["errors"][1], floor)
        for t in done:
            t["score"] = criterion(t, eff)

    def _screen(self, data: Trajectories, train_rows: list[int], initial: list[np.ndarray]) -> None:
        """Screen the candidates on the field's least-squares regression (its warm start), once per fit."""
        field: PolynomialField = self.rhs_.field
        theta, targets = field.regression if field.regression is not None else (None, None)
        field.regression = None  # read once: the arrays are as large as the data
        self._screened = self._screen_candidates(data, train_rows, theta, targets, initial)

    def _screen_candidates(
        self,
        data: Trajectories,
        train_rows: list[int],
        theta: np.ndarray | None,
        targets: np.ndarray | None,
        initial: list[np.ndarray],
    ) -> _Screen:
        """Candidate supports from the derivative regression, ranked by their short-horizon simulation error.

        Every equation's candidates come from pysindy's FROLS and SSR paths
        (:func:`sysid.selection.support_paths`), never holding both terms of a
        collinear pair, each with its least-squares coefficients. A joint candidate (one
        support per equation) is scored by the information criterion of its simulation
        errors over segments of ``_SCREEN_SEGMENTS`` intervals started from the smoothed
        states (one batched solve, no training): the equations are chosen one at a time
        (the others held), sweeping until nothing changes. A candidate whose solve fails
        is rejected. The sparsity path from the best candidate down (the best of every
        smaller size, :meth:`sysid.selection.Search.front`) goes on to training.
        """
        field: PolynomialField = self.rhs_.field
        dtype = self.torch_dtype_
        n_obs, n_terms, n_dims = data.n_states, len(field.term_names), self.n_dims_
        allowed = field.mask.numpy() > 0
        times = [tr.t[:n] for tr, n in zip(data, train_rows)]
        scaled = [self.scaling_.scale(tr.y[:n]) for tr, n in zip(data, train_rows)]
        inputs, starts_given = self._input_signal(data), [v[:n] for v, n in zip(initial, train_rows)]

        def shooting_over(length: int, errors: str = "additive") -> MultipleShooting:
            segments = make_segments(times, scaled, length)
            return MultipleShooting(
                self.rhs_, segments, times, scaled, n_dims, inputs, self.solver_, "backprop", 0.0, True, starts_given,
                errors=errors,
            )  # fmt: skip

        segment_length = int(self.training_.segment_length)
        shooting = shooting_over(segment_length * _SCREEN_SEGMENTS, self.training_.errors)
        starts = shooting_over(segment_length).starts.detach().clone()
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

        found = selection.select_equations(
            theta,
            targets,
            field.term_names,
            simulate_joint,
            allowed[:, :n_obs],
            _CRITERION,
            _SCREEN_SWEEPS,
            "SparseODE",
        )
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
        extra = {
            "efficiency": search.efficiency,
            "offsets": selection.offset_terms(theta, allowed=allowed[:, :n_obs].any(axis=1)),
            "allowed": allowed,
        }
        return _Screen(shortlist, starts, named_pairs, inclusion, len(search.scores), extra)

    def _record_selection(self, data: Trajectories, trained: list[dict[str, Any]], best: dict[str, Any]) -> None:
        """The selection's public record: candidates, collinear pairs, inclusion probabilities."""
        screen = self._screened
        names = list(self.term_names_)
        states = list(self.state_names_)
        rows = []
        for number, t in enumerate(trained):
            cand = screen.shortlist[t["rank"]] if screen is not None and t["rank"] is not None else None
            terms = {s: [names[i] for i in np.flatnonzero(t["mask"][:, j] > 0)] for j, s in enumerate(states)}
            rows.append(
                {
                    "candidate": number,
                    "origin": t["origin"],
                    "terms": terms,
                    "n_terms": sum(len(v) for v in terms.values()),
                    "screening_score": None if cand is None else cand.score,
                    "score": t["score"],
                    "chosen": t is best,
                    "failure": t["failure"],
                }
            )
        self.selection_ = pd.DataFrame(rows).set_index("candidate")
        self.selection_criterion_ = _CRITERION
        self.n_candidates_screened_ = 0 if screen is None else int(screen.n_screened)
        self.collinear_terms_ = [] if screen is None else list(screen.pairs)
        inclusion = np.full((len(names), len(states)), np.nan) if screen is None else screen.inclusion
        self.inclusion_probabilities_ = pd.DataFrame(
            inclusion, index=pd.Index(names, name="term"), columns=pd.Index(states, name="state")
        )
        self._screened = None

    def _clear_selection_results(self) -> None:
        for name in (
            "selection_",
            "selection_criterion_",
            "n_candidates_screened_",
            "collinear_terms_",
            "inclusion_probabilities_",
            "coefficients_stderr_",
            "dof_",
        ):
            self.__dict__.pop(name, None)
