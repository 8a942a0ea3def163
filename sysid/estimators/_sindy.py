"""SINDy: sparse regression of numerical derivatives onto a term library (wraps pysindy).

pysindy differentiates, builds the library and runs the sparse regression (STLSQ by
default); this wrapper adds what a lab user needs around it: irregular times and
several trajectories, explicit handling of missing values, inputs as SINDYc controls,
the user's own state names in the coefficient table, and ``predict`` that simulates
trajectories (pysindy's ``predict`` returns dx/dt) and reports diverging simulations
instead of hanging. No torch here.
"""

from __future__ import annotations

import copy
import math
import numbers
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pysindy as ps
from pysindy.differentiation.base import BaseDifferentiation
from pysindy.feature_library.base import BaseFeatureLibrary
from pysindy.optimizers.base import BaseOptimizer
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

from sysid import selection
from sysid.equations import EquationsMixin
from sysid.errors import ConfigError, DataError, FitWarning, ModelFileError
from sysid.estimators._base import TrajectoryEstimator, warn_if_underdetermined
from sysid.estimators._numpy_simulation import (
    DIVERGENCE_FACTOR,
    SOLVERS,
    data_scale,
    first_state,
    linear_inputs,
    simulate_numpy,
    vector_field_args,
    warn_failures,
)
from sysid.estimators._sindy_data import PiecesMixin, noise_std
from sysid.selection import coefficient_table
from sysid.trajectories import Trajectories, Trajectory

__all__ = ["SINDy"]

_DIFFERENTIATION = ("finite_difference", "smoothed", "spline")
_SAVGOL_WINDOW = 11
_SIM_RTOL, _SIM_ATOL = 1e-6, 1e-8  # atol is relative to each state's data scale


DEFAULT_DEGREE = 2
DEFAULT_THRESHOLD = 0.1


class SINDy(PiecesMixin, EquationsMixin, TrajectoryEstimator):
    """Sparse identification of nonlinear dynamics (SINDy), through pysindy, on trajectories.

    Derivatives of every trajectory are estimated numerically at its own (possibly
    irregular) times, a library of candidate terms (polynomials of the states and
    inputs by default) is evaluated, and a sparse regression (sequentially thresholded
    least squares by default) selects the few terms that explain the derivatives.
    Inputs enter the library as SINDYc controls.

    Parameters
    ----------
    library : pysindy feature library, optional
        Default ``pysindy.PolynomialLibrary(degree=degree)``. Cloned, never fitted in place.
    optimizer : pysindy optimizer, optional
        Default ``pysindy.STLSQ(threshold=threshold)``. Cloned, never fitted in place.
    differentiation : {"finite_difference", "smoothed", "spline"} or pysindy differentiation object
        "finite_difference": second-order differences on the actual times (pysindy
        ``FiniteDifference``); exact for clean dense data, noise-sensitive.
        "smoothed": Savitzky-Golay smoothing (window 11, cubic) then finite
        differences (``SmoothedFiniteDifference``); the smoother assumes uniform
        spacing, so irregular data get a FitWarning. "spline": a smoothing cubic
        spline per state (``SINDyDerivative(kind="spline")``) with smoothing
        ``s = n * noise_std**2``, the noise level estimated from the data (scatter
        about local quadratics); suits noisy irregular samples. An object is cloned and used as is.
    degree : int, optional
        Polynomial degree of the default library (2 when not given). Set it on your own
        library instead when you pass ``library``: giving both is an error.
    threshold : float or "auto", optional
        STLSQ threshold of the default optimizer (0.1 when not given). Set it on your own
        optimizer instead when you pass ``optimizer``: giving both is an error.
        ``"auto"``: no threshold; every equation's terms are chosen by the information
        criterion of the simulated trajectories among candidates from pysindy's
        FROLS and SSR paths, never holding two terms that are collinear on the data
        (see :mod:`sysid.selection` and ``docs/interpretable.md``); fills
        ``inclusion_probabilities_``, ``coefficients_stderr_`` and ``collinear_terms_``.
    missing : {"interpolate", "split"}, default "interpolate"
        What to do with NaN observations before differentiating. "interpolate": fill
        gaps linearly in time, and trim the rows at either end of a trajectory where
        some state is not yet (or no longer) observed. "split": cut trajectories at
        every row with a missing entry and fit the fully observed pieces. Either way a
        FitWarning says which trajectories and how many entries were affected; pieces
        too short to differentiate are dropped (with a warning).
    simulate_method : str, default "LSODA"
        scipy solver used by ``predict`` (a ``solve_ivp`` method), at ``rtol=1e-6`` and
        ``atol=1e-8`` times each state's data scale.
    max_simulation_steps : int, default 20000
        Solver step budget per trajectory in ``predict``. A simulation that exhausts it,
        becomes non-finite, leaves 1000 times the training data's scale, or fails in
        the solver stops there: the rest of that trajectory is NaN, a
        :class:`sysid.SolverWarning` names it, and it is listed in ``simulation_failed_``.
    random_state : int or None
        Passed to the optimizer when it has a ``random_state`` parameter.

    Attributes
    ----------
    coefficients_ : pandas.DataFrame
        Library terms (pysindy's names with your state and input names, e.g.
        ``"prey predator"``, ``"force"``) by states. ``predict`` and ``vector_field``
        use this table.
    model_ : pysindy.SINDy or None
        The fitted pysindy model (None after :func:`sysid.load`).
    n_pieces_ : int
        Trajectory pieces the regression saw (after missing-value handling).
    noise_std_ : array (n_states,)
        With ``differentiation="spline"``: the estimated noise level of each state.
    simulation_failed_ : list
        Names of the trajectories whose simulation failed in the last predict/score.

    Examples
    --------
    >>> from sysid.datasets import simulate
    >>> from sysid.estimators._sindy import SINDy
    >>> data = simulate("lotka_volterra", noise=0.0, irregular=False, n_samples=400)
    >>> model = SINDy(threshold=0.1).fit(data)
    >>> for line in model.equations():
    ...     print(line)
    d prey/dt = 1.50 prey - 0.999 prey predator
    d predator/dt = -3.00 predator + 0.999 prey predator
    >>> model.predict(data)[0].y.shape
    (400, 2)
    """

    def __init__(
        self,
        library: BaseFeatureLibrary | None = None,
        optimizer: BaseOptimizer | None = None,
        differentiation: str | BaseDifferentiation = "finite_difference",
        degree: int | None = None,
        threshold: float | None = None,
        missing: str = "interpolate",
        simulate_method: str = "LSODA",
        max_simulation_steps: int = 20_000,
        random_state: int | None = None,
    ) -> None:
        self.library = library
        self.optimizer = optimizer
        self.differentiation = differentiation
        self.degree = degree
        self.threshold = threshold
        self.missing = missing
        self.simulate_method = simulate_method
        self.max_simulation_steps = max_simulation_steps
        self.random_state = random_state

    # -- configuration -----------------------------------------------------------------
    def _resolve(self) -> tuple[BaseFeatureLibrary, BaseOptimizer, Any, int]:
        """Validated (library, optimizer, differentiation, minimum rows per piece)."""
        for name, part in (("degree", "library"), ("threshold", "optimizer")):
            if getattr(self, name) is not None and getattr(self, part) is not None:
                raise ConfigError(
                    f"{name}={getattr(self, name)!r} applies to the default {part}, but {part}= was given too, and "
                    f"it would be ignored; set it on your {part} (e.g. pysindy.PolynomialLibrary(degree=3), "
                    f"pysindy.STLSQ(threshold=0.05)) and leave {name} out."
                )
        degree = DEFAULT_DEGREE if self.degree is None else self.degree
        threshold = DEFAULT_THRESHOLD if self.threshold is None else self.threshold
        if isinstance(degree, bool) or not isinstance(degree, numbers.Integral) or degree < 1:
            raise ConfigError(f"degree must be an integer >= 1, got {degree!r}.")
        auto = isinstance(threshold, str) and threshold == "auto"
        if not auto and (
            isinstance(threshold, bool)
            or not isinstance(threshold, numbers.Real)
            or not np.isfinite(threshold)
            or threshold < 0
        ):
            raise ConfigError(
                f"threshold must be a finite number >= 0, got {threshold!r} "
                "(or 'auto' to choose the terms by simulation error)."
            )
        if self.missing not in ("interpolate", "split"):
            raise ConfigError(f"missing must be 'interpolate' or 'split', got {self.missing!r}.")
        if self.simulate_method not in SOLVERS:
            raise ConfigError(f"simulate_method must be one of {sorted(SOLVERS)}, got {self.simulate_method!r}.")
        steps = self.max_simulation_steps
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
            raise ConfigError(f"max_simulation_steps must be an integer >= 1, got {steps!r}.")
        if self.library is None:
            library = ps.PolynomialLibrary(degree=int(degree))
        elif isinstance(self.library, BaseFeatureLibrary):
            library = clone(self.library)
        else:
            raise ConfigError(
                f"library must be None or a pysindy feature library (e.g. pysindy.PolynomialLibrary(degree=3)), "
                f"got {type(self.library).__name__}."
            )
        if self.optimizer is None:
            optimizer = ps.STLSQ(threshold=0.0 if auto else float(threshold))
        elif isinstance(self.optimizer, BaseOptimizer):
            optimizer = clone(self.optimizer)
        else:
            raise ConfigError(
                f"optimizer must be None or a pysindy optimizer (e.g. pysindy.STLSQ(threshold=0.05)), "
                f"got {type(self.optimizer).__name__}."
            )
        if self.random_state is not None and "random_state" in optimizer.get_params(deep=False):
            optimizer.set_params(random_state=self.random_state)
        diff = self.differentiation
        if isinstance(diff, str):
            if diff == "finite_difference":
                return library, optimizer, ps.FiniteDifference(axis=-2), 3
            if diff == "smoothed":
                method = ps.SmoothedFiniteDifference(
                    smoother_kws={"window_length": _SAVGOL_WINDOW, "polyorder": 3}, axis=-2
                )
                return library, optimizer, method, _SAVGOL_WINDOW
            if diff == "spline":
                return library, optimizer, "spline", 4
        elif isinstance(diff, BaseDifferentiation):
            try:
                method = clone(diff)
            except Exception:  # noqa: BLE001 - some pysindy objects do not round-trip get_params
                method = copy.deepcopy(diff)
            return library, optimizer, method, 3
        raise ConfigError(
            f"differentiation must be one of {list(_DIFFERENTIATION)} or a pysindy differentiation object "
            f"(e.g. pysindy.SINDyDerivative(kind='kalman', alpha=0.05)), got {diff!r}."
        )

    # -- data checks (missing values: sysid.estimators._sindy_data) ----------------------------
    def _check_magnitude(self, library: BaseFeatureLibrary, pieces: list[Trajectory], names: list[str]) -> None:
        """Refuse data whose library terms (or their squares, in the regression) overflow float64.

        pysindy would fail deep inside scipy ("array must not contain infs"); data of
        magnitude 1e300 need other units first.
        """
        z = np.concatenate([np.column_stack([p.y] + ([p.u] if p.u is not None and p.u.size else [])) for p in pieces])
        with np.errstate(over="ignore", invalid="ignore"):
            features = np.asarray(clone(library).fit_transform(z), dtype=float)
            finite = bool(np.all(np.isfinite(features)) and np.all(np.isfinite(np.sum(features**2, axis=0))))
        if finite:
            return
        column = int(np.argmax(np.max(np.abs(z), axis=0)))
        largest = float(np.max(np.abs(z)))
        with np.errstate(over="ignore"):
            degree = DEFAULT_DEGREE if self.degree is None else self.degree
            lower = self.library is None and degree > 1 and np.isfinite(largest**2 * z.shape[0])
        raise DataError(
            f"SINDy: the data are too large for its library: {names[column]!r} reaches {largest:.3g}, and the "
            f"library's terms ({f'degree {degree}' if self.library is None else 'your library'}) or their "
            "squares in the regression exceed float64's largest number (1.8e308). Rescale the data first (other "
            f"units, or divide each variable by its typical size){', or lower degree' if lower else ''}."
        )

    # -- fitting -----------------------------------------------------------------------
    def _fit(self, data: Trajectories) -> None:
        library, optimizer, method, min_rows = self._resolve()
        for name in ("inclusion_probabilities_", "coefficients_stderr_", "collinear_terms_"):
            self.__dict__.pop(name, None)  # set by threshold="auto" only
        pieces = self._pieces(data, min_rows)
        names = [str(n) for n in (*data.state_names, *data.input_names)]
        self._check_magnitude(library, pieces, names)
        xs = [np.array(p.y) for p in pieces]
        ts = [np.array(p.t) for p in pieces]
        us = [np.array(p.u) for p in pieces] if data.n_inputs else None
        x_dot = None
        if isinstance(method, str):  # "spline": one smoothing level per state
            sigma = noise_std([(p.t, p.y) for p in pieces])
            derivatives, smoothed = [], []
            for t, x in zip(ts, xs):
                cols_dot, cols_x = [], []
                for j in range(x.shape[1]):
                    spline = ps.SINDyDerivative(kind="spline", s=float(t.size * sigma[j] ** 2))
                    cols_dot.append(np.asarray(spline(x[:, [j]], t))[:, 0])
                    cols_x.append(np.asarray(spline.smoothed_x_)[:, 0])
                derivatives.append(np.column_stack(cols_dot))
                smoothed.append(np.column_stack(cols_x))
            xs, x_dot = smoothed, derivatives
            self.noise_std_ = sigma
            method = ps.FiniteDifference(axis=-2)  # unused: derivatives are given
        elif self.differentiation == "smoothed":
            spacing = [np.diff(t) for t in ts]
            if any(s.max() > 1.5 * s.min() for s in spacing if s.size):
                warnings.warn(
                    "SINDy(differentiation='smoothed'): the Savitzky-Golay smoother assumes uniformly spaced "
                    "samples, but these times are irregular; derivatives will be biased. Use "
                    "differentiation='spline' for irregular samples.",
                    FitWarning,
                    stacklevel=3,
                )
        auto = isinstance(self.threshold, str)
        kept_x_dot = None  # threshold="auto": the derivatives of the regression, kept for the selection
        if auto:
            if x_dot is None:  # the derivatives pysindy would compute
                found = [
                    library.calc_trajectory(method, ps.AxesArray(x, {"ax_time": 0, "ax_coord": 1}), t)
                    for x, t in zip(xs, ts)
                ]
                xs, x_dot = [np.asarray(x) for x, _ in found], [np.asarray(d) for _, d in found]
            kept_x_dot = x_dot
        model = ps.SINDy(optimizer=optimizer, feature_library=library, differentiation_method=method)
        model.fit(xs, t=ts, x_dot=x_dot, u=us, feature_names=names)
        coef = np.asarray(model.coefficients(), dtype=float)
        terms = list(model.get_feature_names())
        warn_if_underdetermined(
            "SINDy",
            sum(p.n_times for p in pieces),
            len(terms),
            unknowns="library terms per state",
            observations="samples",
            advice="Add data (more trajectories or times), or lower degree (or pass a smaller library).",
        )
        self.model_ = model
        if kept_x_dot is not None:
            self.powers_ = np.asarray(library.powers_, dtype=int) if isinstance(library, ps.PolynomialLibrary) else None
            coef = self._select_terms(pieces, xs, kept_x_dot, us, terms, data)
        self.coefficients_ = pd.DataFrame(
            coef.T, index=pd.Index(terms, name="term"), columns=pd.Index(list(data.state_names), name="state")
        )
        self.powers_ = np.asarray(library.powers_, dtype=int) if isinstance(library, ps.PolynomialLibrary) else None
        self.scale_ = data_scale(data)
        self.n_pieces_ = len(pieces)
        self.simulation_failed_: list[Any] = []

    def _select_terms(
        self,
        pieces: list[Trajectory],
        xs: list[np.ndarray],
        x_dot: list[np.ndarray],
        us: list[np.ndarray] | None,
        terms: list[str],
        data: Trajectories,
    ) -> np.ndarray:
        """threshold="auto": choose every equation's terms by the simulation error (coefficients (n_states, n_terms)).

        Candidates come from the derivative regression (pysindy FROLS/SSR paths, no two
        collinear terms together); each candidate's least-squares coefficients are
        simulated from every piece's first (smoothed) state and scored by the criterion over the
        errors against the measurements. Inclusion probabilities: the choice repeated on
        resampled blocks of 10 rows; standard errors: the spread of the chosen equations
        refitted on bootstrap resamples (pysindy's EnsembleOptimizer, E-SINDy).
        """
        zs = xs if us is None else [np.column_stack([x, u]) for x, u in zip(xs, us)]
        theta = np.concatenate([self._features(z) for z in zs])
        targets = np.concatenate(x_dot)
        scale = np.asarray(data_scale(data), dtype=float)
        bound = DIVERGENCE_FACTOR * scale
        spread = np.nanstd(np.concatenate([p.y for p in pieces]), axis=0)
        spread = np.where(spread > 0, spread, 1.0)  # errors in standard deviations, as the selection expects

        def simulate(joint: Any, coef: np.ndarray) -> Any:
            blocks = []
            for piece, x in zip(pieces, xs):
                rhs = self._rhs(linear_inputs(piece.t, piece.u), coef.T)
                sim = simulate_numpy(
                    rhs,
                    piece.t,
                    np.asarray(x[0], dtype=float),
                    self.simulate_method,
                    _SIM_RTOL,
                    _SIM_ATOL * scale,
                    int(self.max_simulation_steps),
                    bound,
                )
                if sim.failed_at is not None:
                    return None
                blocks.append(selection.block_errors((sim.y - piece.y) / spread))
            return tuple(np.concatenate(part) for part in zip(*blocks))

        found = selection.select_equations(
            theta, targets, terms, simulate, criterion=selection.DEFAULT_CRITERION, owner="SINDy"
        )
        best = found.ranked()[0]
        seed = self.random_state if isinstance(self.random_state, numbers.Integral) else 0
        inclusion = found.search.inclusion(len(terms), 200, np.random.default_rng(seed))
        bagged = selection.bagged_coefficients(theta, targets, best, 100, seed)
        stderr = np.where(found.coefficients(best) != 0, bagged.std(axis=0), np.nan)

        def table(a: np.ndarray) -> pd.DataFrame:
            return pd.DataFrame(
                a, index=pd.Index(terms, name="term"), columns=pd.Index(list(data.state_names), name="state")
            )

        self.inclusion_probabilities_ = table(inclusion)
        self.coefficients_stderr_ = table(stderr)
        self.collinear_terms_ = [(terms[i], terms[j], c) for i, j, c in found.pairs]
        return found.coefficients(best).T

    # -- the learned right-hand side ---------------------------------------------------------
    def _features(self, z: np.ndarray) -> np.ndarray:
        """Library terms of states+inputs ``z`` (n_points, n_in) -> (n_points, n_terms)."""
        if self.powers_ is not None:
            return np.prod(z[:, None, :] ** self.powers_[None, :, :], axis=2)
        if self.model_ is None:
            raise ModelFileError("this SINDy has neither a polynomial library nor a pysindy model to evaluate.")
        return np.asarray(self.model_.feature_library.transform(z), dtype=float)

    def _rhs(self, inputs: Any, coef: np.ndarray | None = None) -> Any:
        """dx/dt(t, x) for the solver, inputs interpolated in time (``coef`` (n_states, n_terms): not the table's)."""
        coef = self.coefficients_.to_numpy(dtype=float).T if coef is None else coef  # (n_states, n_terms)
        with_inputs = bool(self.n_controls_in_)
        if self.powers_ is not None:
            # One point at a time: products of Python floats beat numpy's per-call overhead.
            factors = [tuple(i for i in range(row.size) for _ in range(int(row[i]))) for row in self.powers_]
            prod = math.prod

            def polynomial(s: float, x: np.ndarray) -> np.ndarray:
                z = x.tolist() + inputs(s).tolist() if with_inputs else x.tolist()
                return coef.dot([prod([z[i] for i in term]) for term in factors])

            return polynomial
        if with_inputs:
            return lambda s, x: coef @ self._features(np.concatenate([x, inputs(s)])[None])[0]
        return lambda s, x: coef @ self._features(np.asarray(x)[None])[0]

    def vector_field(self, x: Any, t: Any = 0.0, u: Any = None) -> np.ndarray:
        """The identified dx/dt at states ``x`` (and inputs ``u``).

        Parameters
        ----------
        x : array (n_states,) or (n_points, n_states)
        t : float or array; unused (the library is autonomous) but accepted for a common API
        u : array (n_inputs,) or (n_points, n_inputs); required when fitted with inputs

        Returns
        -------
        array shaped like ``x``

        Examples
        --------
        >>> from sysid.datasets import simulate
        >>> model = SINDy().fit(simulate("lotka_volterra", noise=0.0, irregular=False, n_samples=400))
        >>> bool(abs(model.vector_field([3.0, 1.5])).max() < 0.01)  # the equilibrium
        True
        >>> model.vector_field([[1.0, 1.0], [2.0, 1.0]]).round(1).tolist()
        [[0.5, -2.0], [1.0, -1.0]]
        """
        check_is_fitted(self)
        points, _, inputs, single = vector_field_args(self, x, t, u)
        z = points if not self.n_controls_in_ else np.column_stack([points, np.array(inputs, dtype=float)])
        values = self._features(z) @ self.coefficients_.to_numpy(dtype=float)
        return values[0] if single else values

    def coefficient_table(self, level: float = 0.95) -> pd.DataFrame:
        """Every nonzero coefficient with its standard error, interval and inclusion probability.

        Filled by ``threshold="auto"`` (bagged standard errors, normal intervals, bootstrap
        inclusion probabilities); NaN otherwise. Indexed by (state, term); columns
        ``estimate``, ``stderr``, ``lower``, ``upper``, ``inclusion_probability``.
        """
        check_is_fitted(self)
        return coefficient_table(
            self.coefficients_,
            getattr(self, "coefficients_stderr_", None),
            getattr(self, "inclusion_probabilities_", None),
            level=level,
        )

    # -- prediction ----------------------------------------------------------------------
    def _predict(self, data: Trajectories, x0: np.ndarray | None) -> list[np.ndarray]:
        out, failures = [], []
        bound = DIVERGENCE_FACTOR * np.asarray(self.scale_, dtype=float)
        for i, tr in enumerate(data):
            start = first_state(tr) if x0 is None else np.asarray(x0[i], dtype=float)
            rhs = self._rhs(linear_inputs(tr.t, tr.u))
            sim = simulate_numpy(
                rhs,
                tr.t,
                start,
                self.simulate_method,
                _SIM_RTOL,
                _SIM_ATOL * self.scale_,
                int(self.max_simulation_steps),
                bound,
            )
            if sim.failed_at is not None:
                failures.append((tr.name, sim.failed_at, sim.reason))
            out.append(sim.y)
        self.simulation_failed_ = [name for name, _, _ in failures]
        warn_failures("SINDy", failures)
        return out

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "coefficients_")

    # -- model files (sysid.io) ------------------------------------------------------------
    _FITTED_JSON = ("state_names_", "input_names_", "n_states_in_", "n_controls_in_", "data_options_", "n_pieces_")

    def _fitted_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """JSON-ready fitted state: the coefficient table, library powers and data scale; no tensors."""
        check_is_fitted(self)
        custom = [name for name in ("library", "optimizer") if getattr(self, name) is not None]
        if not isinstance(self.differentiation, str):
            custom.append("differentiation")
        if custom or self.powers_ is None:
            raise ModelFileError(
                f"this SINDy was built with pysindy object(s) for {custom}; model files hold only JSON and "
                "tensors, never code, so only SINDy with the built-in settings (library=None, optimizer=None, "
                "differentiation given by name) can be saved. Keep the coefficients instead: "
                "model.coefficients_.to_csv(...)."
            )
        state = {name: getattr(self, name) for name in self._FITTED_JSON}
        state["terms"] = [str(t) for t in self.coefficients_.index]
        state["coefficients"] = self.coefficients_.to_numpy(dtype=float).tolist()
        state["powers_"] = self.powers_.tolist()
        state["scale_"] = np.asarray(self.scale_, dtype=float).tolist()
        return state, {}

    def _stored_powers(self, stored: Any, n_terms: int) -> np.ndarray:
        """A file's library powers, checked before use: one row per term and one column per state
        and input, each a monomial of total degree at most the number of terms (a polynomial library
        of degree d holds a term of each degree up to d). Huge powers would make ``predict`` build
        huge products."""
        n_variables = int(self.n_states_in_) + int(self.n_controls_in_)
        rows = stored if isinstance(stored, list) else []
        table = [row if isinstance(row, list) else [] for row in rows]
        if len(table) != n_terms or any(len(row) != n_variables for row in table):
            raise ModelFileError(
                f"its powers_ must be a table with one row per term ({n_terms}) and one column per state and "
                f"input ({n_variables}), got {str(stored)[:80]!r}."
            )
        monomial = all(
            all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in row) and sum(row) <= n_terms
            for row in table
        )
        if not monomial:
            raise ModelFileError(
                f"its powers_ must be integer powers >= 0 of total degree at most the number of terms ({n_terms}), "
                f"got {str(stored)[:80]!r}."
            )
        return np.asarray(table, dtype=int).reshape(n_terms, n_variables)

    def _set_fitted_state(self, state: dict[str, Any], tensors: dict[str, Any]) -> None:
        """Rebuild from :meth:`_fitted_state` output."""
        self._resolve()
        for name in self._FITTED_JSON:
            setattr(self, name, state[name])
        self.coefficients_ = pd.DataFrame(
            np.asarray(state["coefficients"], dtype=float).reshape(len(state["terms"]), len(self.state_names_)),
            index=pd.Index(state["terms"], name="term"),
            columns=pd.Index(list(self.state_names_), name="state"),
        )
        self.powers_ = self._stored_powers(state["powers_"], len(state["terms"]))
        self.scale_ = np.asarray(state["scale_"], dtype=float)
        self.model_ = None
        self.simulation_failed_ = []
