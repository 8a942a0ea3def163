"""SparseODE: a sparse library of terms, trained through the ODE solver, thresholded."""

from __future__ import annotations

import os

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.utils.validation import check_is_fitted

from sysid.errors import ConfigError, ModelFileError
from sysid.estimators._equations import format_equations
from sysid.estimators._ode_base import Scaling, SolverTrainedODE, torch_threads
from sysid.fields._polynomial import PolynomialField
from sysid.training._collocation import smooth_trajectory
from sysid.trajectories import Trajectories

_LIBRARIES = ("polynomial",)
_RIDGE = 1e-8  # relative ridge of the least-squares initialisation (conditioning only)


class SparseODE(SolverTrainedODE):
    """Learn sparse, readable equations dx/dt = Theta(x, u) Xi through the ODE solver.

    The vector field is a linear combination of library terms (polynomials up to
    ``degree`` in the states and inputs, optionally ``sin``/``cos`` of the states and
    the user's own ``functions``). Unlike SINDy, the coefficients are not regressed on
    numerical derivatives: they are trained the way :class:`~sysid.NeuralODE` is, by
    multiple shooting through an adaptive solver against the measured states, which
    copes with irregular sampling and noise. Sparsity comes from sequential
    thresholding: train, zero every coefficient whose magnitude (physical units) is
    below ``threshold``, retrain the rest from where they were, ``n_threshold_rounds``
    times (stopping early when nothing more is pruned); and/or from an L1 penalty.

    The coefficients start from a ridge least-squares fit of the library to the
    derivatives of smoothing splines through the data (no solver involved).

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
    threshold : float, default 0.05
        Coefficients with magnitude below this (physical units) are pruned.
    n_threshold_rounds : int, default 3
        Prune-and-retrain rounds after the first training (0: no thresholding).
    l1 : float, default 0.0
        Weight of an L1 penalty on the scaled coefficients (mean absolute value).
    solver, rtol, atol, solver_options, gradient, learn_x0, learn_time, n_augment, \
segment_length, continuity_weight, max_epochs, lr, batch_size, validation_fraction, \
patience, lbfgs_steps, collocation_steps, input_interpolation, random_state, dtype, \
device, verbose, warm_start, checkpoint_path
        As for :class:`~sysid.NeuralODE`, except that ``max_epochs`` (default 100)
        applies to every round, and ``collocation_steps=0`` switches the least-squares
        initialisation off (coefficients then start at zero).

    Attributes
    ----------
    coefficients_ : pandas.DataFrame
        Terms x states, physical units, zeros where pruned.
    term_names_ : list of str
    n_rounds_ : int
        Trainings done (1 + thresholding rounds that pruned something).
    history_ : pandas.DataFrame
        Training history of every round (column ``round``).
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
        threshold: float = 0.05,
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
    def _fit(self, data: Trajectories) -> None:
        self._resolve()
        self._check_sparse_params()
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

    def _collocation_warm_start(self, data: Trajectories, train_rows: list[int]) -> list[np.ndarray]:
        """Ridge least squares of the library onto smoothing-spline derivatives (closed form)."""
        lam = self._smoothing_strengths(data, train_rows)
        smoothed = [smooth_trajectory(tr.t[:n], tr.y[:n], lam) for tr, n in zip(data, train_rows)]
        field: PolynomialField = self.rhs_.field
        dtype = self.torch_dtype_
        n_obs = data.n_states
        x = np.concatenate([s.values for s in smoothed])
        dx = np.concatenate([s.derivatives for s in smoothed])
        t = np.concatenate([tr.t[:n] for tr, n in zip(data, train_rows)])
        rows = np.isfinite(x).all(axis=1)
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
            mask = field.mask.numpy()
            scaled = np.zeros(mask.shape)
            for j in range(n_obs):
                seen = np.isfinite(dx[rows, j])
                active = mask[:, j] > 0
                if seen.sum() < 2 or not active.any():
                    continue
                a = theta[seen][:, active]
                b = dx[rows, j][seen] / out_scale[j]
                gram = a.T @ a
                ridge = _RIDGE * np.trace(gram) / max(gram.shape[0], 1)
                scaled[active, j] = np.linalg.solve(gram + ridge * np.eye(gram.shape[0]), a.T @ b)
            if np.all(np.isfinite(theta)) and np.all(np.isfinite(scaled)):
                field.set_gram(torch.as_tensor(theta.T @ theta / theta.shape[0], dtype=dtype))
                field.set_scaled_coefficients(torch.as_tensor(scaled * mask, dtype=dtype))
        initial = []
        for tr, sm in zip(data, smoothed):
            values = np.full(tr.y.shape, np.nan)
            values[: sm.values.shape[0]] = self.scaling_.scale(sm.values)
            initial.append(values)
        return initial

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
    def _fitted_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        state, tensors = super()._fitted_state()
        state["n_rounds_"] = self.n_rounds_
        return state, tensors

    def _set_fitted_state(self, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        placeholders = [k for k, g in (self.functions or {}).items() if not callable(g)]
        if placeholders:
            raise ModelFileError(
                f"this SparseODE was saved with user term functions {placeholders}; files hold no code. "
                "Rebuild it with SparseODE(functions=...) and refit (sysid.load cannot restore nested functions yet)."
            )
        self._check_sparse_params()  # before the library is enumerated: its size must fit the stored coefficients
        n_variables, rows = int(state["n_dims_"]) + int(state["n_controls_in_"]), len(tensors["rhs.field.weight"])
        if _more_terms_than(n_variables, int(self.degree), rows):
            raise ModelFileError(f"degree={self.degree} with {n_variables} state and input variables makes more "
                                 f"polynomial terms than the {rows} rows of the stored coefficients.")
        super()._set_fitted_state(state, tensors)
        self.n_rounds_ = int(state.get("n_rounds_", 1))
        self._after_fit(None)


def _more_terms_than(n_variables: int, degree: int, rows: int) -> bool:
    """Whether a polynomial library of ``degree`` in ``n_variables`` has more than ``rows`` terms.

    Its size is C(n + d, d), computed as a running product that stops once it passes
    ``rows``: a model file claiming ``degree=10**6`` is refused at once.
    """
    if n_variables < 0 or degree < 0:
        return True
    low, high = sorted((n_variables, degree))
    terms = 1
    for i in range(1, low + 1):
        terms = terms * (high + i) // i
        if terms > rows:
            return True
    return terms > rows
