"""The one estimator trained through the ODE solver, built from a field, a solver and a training part.

``NeuralODE``, ``SparseODE``, ``GreyBoxODE`` and ``HybridODE`` are this estimator with
other default parts (:attr:`~sysid.estimators._composition.PartsMixin.default_parts`).
The fit is one pipeline whatever the field and wherever the data come from: scale the
data, build the field for them, warm-start it by collocation
(:mod:`sysid.estimators._ode_warm_start`), train it by multiple shooting
(:func:`sysid.training.train`), record the best parameters. In-memory
:class:`~sysid.Trajectories` and streamed :class:`~sysid.trajectories.LazyTrajectories`
differ only in the shooting objective they feed it (:mod:`sysid.estimators._streaming`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import numpy as np
import pandas as pd
import torch

from sysid.errors import ConfigError, DataError, FitError, FitWarning
from sysid.estimators._base import TrajectoryEstimator, warn_if_underdetermined
from sysid.estimators._composition import PartsMixin
from sysid.estimators._free_run import FreeRunCheckMixin
from sysid.estimators._ode_simulation import SimulationMixin
from sysid.estimators._ode_start import FieldStart, StartMixin
from sysid.estimators._ode_warm_start import TrainingPoints, WarmStartMixin
from sysid.estimators._refit_alongside import RefitAlongside, check_n_jobs
from sysid.fields import MLP, FieldContext, FieldSpec, Scaling, Sensor
from sysid.integration import (
    BatchedField,
    InputSignal,
    Solver,
    TimeParameters,
    resolve_device,
    torch_threads,
)
from sysid.training import (
    ADVICE,
    HorizonStage,
    MultipleShooting,
    Training,
    check_positive,
    interpolate_missing,
    train_horizons,
)
from sysid.trajectories import LazyTrajectories, Trajectories

DTYPES = {"float64": torch.float64, "float32": torch.float32}
LEARN_TIME = {None: (False, False), "scale": (True, False), "offset": (False, True), "both": (True, True)}


@dataclass
class TrainingProblem:
    """What the training loop optimises, wherever the data come from.

    ``objective(batch)`` returns ``(loss, parts)`` over items ``0..n_items-1``;
    ``validate()`` the free-run score to minimise; ``x0()`` the scaled initial states
    of every trajectory (n_traj, n_dims) and ``starts()`` the tensor kept as
    ``shooting_state_``, both read after training.
    """

    objective: torch.nn.Module
    n_items: int
    validate: Callable[[], float]
    x0: Callable[[], np.ndarray]
    starts: Callable[[], torch.Tensor]


class SolverTrainedODE(PartsMixin, SimulationMixin, WarmStartMixin, StartMixin, FreeRunCheckMixin, TrajectoryEstimator):
    """A vector field integrated by a torchdiffeq solver and trained by multiple shooting.

    Parameters
    ----------
    field : field part or torch.nn.Module, optional
        What dx/dt is: :class:`sysid.fields.MLP` (the Neural ODE), :class:`~sysid.fields.Polynomial`
        (sparse equations), :class:`~sysid.fields.GreyBox` (your equations),
        :class:`~sysid.fields.Hybrid` (your equations plus a network), or any
        ``torch.nn.Module`` whose ``forward(t, x, u)`` returns dx/dt (physical units,
        batch first; ``u`` is None without inputs). None: the estimator's default.
    solver : :class:`sysid.Solver` or str, optional
        How the field is integrated (method, tolerances, gradients); a method name such
        as ``"rk4"`` is ``Solver(method="rk4")``. None: ``Solver()``.
    training : :class:`sysid.Training`, optional
        How the field is fitted (epochs, learning rate, segments, early stopping...).
        None: the estimator's default training.
    output : :class:`sysid.Sensor`, optional
        What the sensor reads of the state (saturation limits, a learned offset or gain):
        the model is fitted through it and ``predict`` returns the readings. None: the
        states are observed as they are.
    n_augment : int, default 0
        Extra unobserved state dimensions (partial observation, Dupont et al. 2019).
    learn_time : {None, "scale", "offset", "both"}, default None
        Learn each trajectory's clock rate relative to the first (an unknown sampling
        interval), and/or a time offset (read inputs and explicit time shifted).
    random_state : int or None, default 0
        Seeds weight initialisation and batch order: the same seed gives the same fit.
    dtype : {"float64", "float32"}, default "float64"
    device : str, default "cpu"
        Where the solves and the training run: ``"cpu"``, ``"cuda"``, ``"cuda:1"``,
        ``"mps"``. An unavailable device raises ConfigError before the data is read. The
        fitted model is brought back to the CPU (it pickles and loads anywhere);
        ``predict`` solves on the current ``device``.
    verbose : bool, default True
        Show a progress bar.
    warm_start : bool, default False
        Continue from the previous fit's parameters.
    checkpoint_path : str or os.PathLike, optional
        During ``fit``, write the training state (current and best parameters, optimizer
        state, epoch) to this file after every epoch, atomically, in the safe model format
        (safetensors + JSON, no pickle). A new fit with the same path, data and settings
        resumes from it (``max_epochs``, ``patience``, ``lbfgs_steps`` and ``verbose`` may
        change); the file is removed when the fit completes. A file written for other data
        or settings is refused (:class:`~sysid.ConfigError`).
    n_jobs : int, default 2
        Processes one fit may use (-1: every core; at most 2). A fit that misses its data is
        fitted once more from the start it did not take (NeuralODE's default field); with 2,
        that refit starts at once in a second process and is used only if it is needed
        (:mod:`sysid.estimators._refit_alongside`): the same bits as with 1, where it runs
        afterwards, in this process. Only with a second usable core, on the CPU, and outside
        a worker process or thread (``compare``, ``Ensemble`` or a grid search with ``n_jobs``).
    **options
        Any parameter of the default parts, given flat: ``hidden=(32, 32)`` sets the
        field's, ``rtol=1e-6`` the solver's, ``max_epochs=80`` the training's (see
        :meth:`flat_parameters`); ``solver_options`` is the solver's ``options``.

    Attributes
    ----------
    field_ : torch.nn.Module
        The fitted vector field (physical units).
    x0_ : array (n_trajectories, n_states + n_augment)
        Learned initial states of the training trajectories (physical units).
    time_scale_, time_offset_ : arrays (n_trajectories,)
    history_ : pandas.DataFrame
        epoch, stage, loss, val_loss, nfe_forward, nfe_backward, lr, seconds.
    n_function_evals_ : int
        Vector-field evaluations during fit (forward and backward).
    field_part_, solver_, training_
        The resolved parts the fit used (the field part, the torchdiffeq settings, the training).
    """

    #: Whether the fit ends with an additive least-squares refinement (GreyBoxODE, HybridODE), which
    #: ``Training(errors="log")`` cannot use.
    _additive_refinement: ClassVar[bool] = False

    default_parts: ClassVar[dict[str, Callable[[], Any]]] = {"field": MLP, "solver": Solver, "training": Training}
    _base_parameters = (
        "field",
        "solver",
        "training",
        "output",
        "n_augment",
        "learn_time",
        "random_state",
        "dtype",
        "device",
        "verbose",
        "warm_start",
        "checkpoint_path",
        "n_jobs",
    )

    def __init__(
        self,
        field: Any = None,
        *,
        solver: Solver | str | None = None,
        training: Training | None = None,
        output: Sensor | None = None,
        n_augment: int = 0,
        learn_time: str | None = None,
        random_state: int | None = 0,
        dtype: str = "float64",
        device: str = "cpu",
        verbose: bool = True,
        warm_start: bool = False,
        checkpoint_path: str | os.PathLike[str] | None = None,
        n_jobs: int = 2,
        **options: Any,
    ) -> None:
        self.field = field
        self.solver = solver
        self.training = training
        self.output = output
        self.n_augment = n_augment
        self.learn_time = learn_time
        self.random_state = random_state
        self.dtype = dtype
        self.device = device
        self.verbose = verbose
        self.warm_start = warm_start
        self.checkpoint_path = checkpoint_path
        self.n_jobs = n_jobs
        if options:
            self._route(options)

    @property
    def field_(self) -> torch.nn.Module:
        """The fitted vector field module (physical units in and out)."""
        if not hasattr(self, "rhs_"):
            raise AttributeError("field_ exists after fit")
        return self.rhs_.field

    # -- configuration -------------------------------------------------------------------------
    def _resolve(self) -> None:
        """Check the estimator's own parameters and resolve its parts (no data needed)."""
        if self.learn_time not in LEARN_TIME:
            raise ConfigError(f"learn_time must be None, 'scale', 'offset' or 'both', got {self.learn_time!r}.")
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be 'float64' or 'float32', got {self.dtype!r}.")
        if isinstance(self.n_augment, bool) or not isinstance(self.n_augment, int | np.integer) or self.n_augment < 0:
            raise ConfigError(f"n_augment must be a non-negative integer, got {self.n_augment!r}.")
        for name in ("verbose", "warm_start"):
            if not isinstance(getattr(self, name), bool | np.bool_):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}.")
        seed = self.random_state
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not -(2**63) <= int(seed) < 2**64
        ):
            raise ConfigError(f"random_state must be None or an int in [-2**63, 2**64), got {seed!r}.")
        check_n_jobs(self.n_jobs)
        self.field_part_ = self._resolved_part("field", FieldSpec)
        self.solver_part_ = self._resolved_part("solver", Solver)
        self.solver_ = self.solver_part_.config()
        self.training_ = self._resolved_part("training", Training)
        if self.output is not None and not isinstance(self.output, Sensor):
            raise ConfigError(f"output must be a sysid.Sensor(...) or None, got {self.output!r}.")
        if self.output is not None:
            self.output.check()
        self.torch_dtype_ = DTYPES[self.dtype]

    def _check_config(self) -> None:
        self._resolve()
        self._torch_device()

    def _torch_device(self) -> torch.device:
        """The device to train and predict on (``device``), checked to be usable here."""
        return resolve_device(self.device)

    def _generator(self) -> torch.Generator:
        # A fresh SeedSequence draws its entropy as one int (the stubs also allow the sequence a caller passes).
        fresh = cast(int, np.random.SeedSequence().entropy)
        seed = self.random_state if self.random_state is not None else int(fresh % 2**63)
        return torch.Generator().manual_seed(int(seed))

    @property
    def _flags_extrapolation(self) -> bool:
        return self._part("field").flags_extrapolation

    def _field_context(self, scaling: Scaling, generator: torch.Generator) -> FieldContext:
        return FieldContext(
            list(self.state_names_), list(self.input_names_), int(self.n_augment), scaling, generator, self.torch_dtype_
        )

    def _initialise(self, scaling: Scaling, n_trajectories: int, generator: torch.Generator) -> None:
        """Build the field for data of this scaling and the right-hand side around it."""
        dtype = self.torch_dtype_
        self.scaling_ = scaling
        self.n_dims_ = self.n_states_in_ + self.n_augment
        module = self.field_part_.build(self._field_context(scaling, generator))
        self.sensor_ = None if self.output is None else self.output.build(list(self.state_names_), scaling, dtype)
        learn_scale, learn_offset = LEARN_TIME[self.learn_time]
        self.rhs_ = BatchedField(
            module,
            torch.as_tensor(scaling.center, dtype=dtype),
            torch.as_tensor(scaling.spread, dtype=dtype),
            TimeParameters(n_trajectories, learn_scale, learn_offset, dtype),
        )

    # -- fitting -------------------------------------------------------------------------------
    def _fit(self, data: Trajectories) -> None:
        self._resolve()
        with torch_threads(1):
            start, other = self._choose_start(data)
            alongside = None
            try:
                alongside = RefitAlongside.start(self, data, other)  # the refit it may need, on a second core
                self._fit_resolved(data, start)
                if other is not None:
                    self._refit_if_poor(data, other, alongside)
            finally:
                if alongside is not None:
                    alongside.cancel()
        self._warn_if_free_run_is_poor(data)

    def _prepare(self, data: Trajectories, generator: torch.Generator) -> bool:
        """Scale the data and build the field for them; True when a warm start reuses the fitted field."""
        reuse = self.warm_start and hasattr(self, "rhs_") and self.n_dims_ == data.n_states + self.n_augment
        if not reuse:
            self._initialise(Scaling.of(data, self.n_augment), len(data), generator)
        elif len(data) != len(self.rhs_.time.offset):
            raise DataError(f"warm_start needs the same {len(self.rhs_.time.offset)} trajectories, got {len(data)}.")
        elif data.n_inputs and self.scaling_.input_range is not None:  # new inputs beyond the range widen it
            old, new = self.scaling_.input_range, Scaling.input_bounds(data)
            self.scaling_ = dataclasses.replace(
                self.scaling_, input_range=np.stack([np.fmin(old[0], new[0]), np.fmax(old[1], new[1])])
            )
            widen = getattr(self.rhs_.field, "set_input_range", None)  # a network that clips its inputs
            if callable(widen):
                widen(self.scaling_)
        return reuse

    def _fit_resolved(self, data: Trajectories, start: FieldStart | None = None) -> None:
        """One training of the field on in-memory data (a warm start continues from the last one).

        ``start``: where the training begins (:meth:`_start`; the choice between a field's
        two starts passes the one it picked); None starts here. With a horizon schedule
        (``Training(horizons=...)``) the training runs in stages on growing segments
        (:mod:`sysid.training._horizons`); each stage is one shooting problem.
        """
        if start is None:
            start = self._start(data)
        self._use(start)
        if not start.reuse:
            self._warn_if_underdetermined(data)
        train_rows, tail_from = self._validation_split(data)
        stages = self._stages(train_rows)
        checkpoints = [self._checkpoint(data, k) for k in range(len(stages))]
        # The penalties read the training rows' states only, never the held-out tails of validation_fraction.
        needs = self.field_part_.needs_points()
        self._penalty_points = self._training_points(self._training_part(data)) if needs else None
        inputs = self._input_signal(data)
        problems: dict[int, TrainingProblem] = {}  # by stage (a resumed fit builds its later stages only)

        def build(k: int, previous: int | None) -> tuple[torch.nn.Module, int, Callable[[], float]]:
            segments = self._segments(data, cast(int, stages[k].length))  # plan_horizons resolves None to a length
            initial = start.initial
            if previous is not None:  # the new segments start where the previous stage's model is
                before = cast(MultipleShooting, problems[previous].objective.shooting)  # the stage's objective
                before.to("cpu")
                initial = before.carried_starts(segments)
            shooting = self._shooting(data, segments, initial, inputs, realtime=k > 0)
            if k == 0 and start.reuse and hasattr(self, "shooting_state_"):
                with contextlib.suppress(RuntimeError):  # a state of another shape: start afresh
                    shooting.starts.data.copy_(self.shooting_state_)
            problems[k] = TrainingProblem(
                _Objective(shooting, self._field_penalty),
                len(segments),
                lambda: shooting.free_run_error(tail_from),
                lambda: shooting.x0.detach().cpu().numpy(),
                lambda: shooting.starts.detach().clone(),
            )
            # Built on the CPU (data-driven initialisation is numpy), trained on the device.
            problems[k].objective.to(self._torch_device())
            return problems[k].objective, len(segments), problems[k].validate

        try:
            self._train_stages(stages, build, problems, data, checkpoints, start.generator)
        finally:
            self.__dict__.pop("_penalty_points", None)

    def _check_log_errors(self, data: Trajectories) -> None:
        """``Training(errors="log")``: positive data, and no additive least-squares refinement after the training."""
        if self._additive_refinement:
            raise ConfigError(
                f"{type(self).__name__}: Training(errors='log') is not supported yet; its least-squares refinement "
                "and intervals compare additive errors. Fit the log of the data with a model of it, or use SparseODE "
                "or NeuralODE."
            )
        check_positive([tr.y for tr in data], data.state_names, type(self).__name__)

    def _warn_if_underdetermined(self, data: Trajectories, depth: int = 0) -> None:
        """Warn when the training rows hold too few observed values for the parameters trained.

        ``depth``: frames between the caller and ``_fit_resolved`` (the warning points at the user's ``fit``).
        """
        rows, _ = self._validation_split(data)
        observed = sum(int(np.isfinite(tr.y[:n]).sum()) for tr, n in zip(data, rows))
        unknowns = sum(p.numel() for p in self.rhs_.parameters() if p.requires_grad)
        if self.training_.learn_x0:
            unknowns += len(data) * self.n_dims_
        warn_if_underdetermined(
            type(self).__name__,
            observed,
            unknowns,
            unknowns="trained parameters (the field's and the initial states)",
            per_unknown=self.field_part_.observations_per_parameter,
            stacklevel=6 + depth,
        )

    def _loop_options(self) -> dict[str, Any]:
        return {"verbose": bool(self.verbose), "description": type(self).__name__}

    def _train(
        self, problem: TrainingProblem, data: Any, checkpoint: Any, settings: Any, generator: torch.Generator
    ) -> None:
        """Run the training loop on ``problem`` (one stage); record the best parameters, also when it fails."""
        stages = [HorizonStage(None, settings.max_epochs, settings.lr, settings.lbfgs_steps)]
        problem.objective.to(self._torch_device())

        def build(k: int, previous: int | None) -> tuple[torch.nn.Module, int, Callable[[], float]]:
            return problem.objective, problem.n_items, problem.validate

        self._train_stages(stages, build, {0: problem}, data, [checkpoint], generator, settings)

    def _train_stages(
        self,
        stages: list[HorizonStage],
        build: Callable[..., Any],
        problems: dict[int, TrainingProblem],
        data: Any,
        checkpoints: list[Any],
        generator: torch.Generator,
        settings: Any = None,
    ) -> None:
        """Train the stages (:func:`sysid.training._horizons.train_horizons`); record the best parameters.

        ``build(k, previous)`` makes stage ``k``'s objective and puts its problem at
        ``problems[k]``. ``generator`` orders the batches: the one that initialised the
        field, so a fit is one reproducible random stream.
        """
        # Trained on the device and brought back: the fitted model is device-independent (pickles, saves and
        # predicts anywhere; predict moves a copy to ``device``).
        settings = settings or self.training_.settings(**self._loop_options())
        self.rhs_.nfe = 0
        try:
            try:
                last, result = train_horizons(
                    stages, build, settings, generator, lambda: self.rhs_.nfe, lambda k: checkpoints[k]
                )
            finally:
                for done in problems.values():
                    done.objective.to("cpu")
        except FitError as exc:  # the model keeps the best parameters seen (predict, warm_start), then reports
            if hasattr(exc, "result") and problems:
                self._record_training(problems[max(problems)], data, exc.result)
            raise
        self._record_training(problems[last], data, result)
        checkpoint = next((c for c in checkpoints if c is not None), None)
        if checkpoint is not None and result.stop_reason != "interrupted":
            checkpoint.remove()  # completed: nothing left to resume (every stage writes the same file)
        if result.failures and result.best_epoch < 0 and result.stop_reason != "interrupted":
            warnings.warn(
                f"{type(self).__name__}: training failed {result.failures} time(s) and never improved on its "
                f"starting point (free-run error {result.best_score:.3g}): the model holds its initial "
                f"parameters. {ADVICE}",
                FitWarning,
                stacklevel=5,
            )
        if isinstance(data, Trajectories):
            self._after_fit(data)

    def _record_training(self, problem: TrainingProblem, data: Any, result: Any) -> None:
        """Set the fitted attributes from the trained problem (holding the best parameters)."""
        self.shooting_state_ = problem.starts()
        self.history_ = pd.DataFrame(result.history)
        self._kept_val_loss = float(result.best_score)  # the kept parameters' val_loss (see _kept_free_run_error)
        self.n_function_evals_ = int(self.rhs_.nfe)
        self.stop_reason_ = result.stop_reason
        self.best_epoch_ = result.best_epoch
        x0 = problem.x0()
        n = self.n_states_in_
        self.x0_ = np.concatenate([self.scaling_.unscale(x0[:, :n]), x0[:, n:]], axis=1)
        self.trajectory_names_ = list(data.names)
        self.time_scale_ = self.rhs_.time.scale.detach().cpu().numpy()
        self.time_offset_ = self.rhs_.time.offset.detach().cpu().numpy()

    def _after_fit(self, data: Trajectories) -> None:
        """Readable results of the field (coefficients, parameters); subclasses add their analyses."""
        self._field_results()

    def _field_results(self) -> None:
        """Set the field part's readable results (coefficients, parameters) as attributes; needs no data."""
        for name, value in (
            self._part("field").results(self.rhs_.field, self._field_context(self.scaling_, torch.Generator())).items()
        ):
            setattr(self, name, value)

    # -- the field's penalty --------------------------------------------------------------------
    def _training_points(self, data: Trajectories) -> TrainingPoints:
        """Every training sample (t, x with gaps interpolated and augmented dims 0, u), physical units."""
        x = np.concatenate([interpolate_missing(tr.t, tr.y) for tr in data])
        dims = np.zeros((x.shape[0], data.n_states + self.n_augment))
        dims[:, : data.n_states] = x
        u = np.concatenate([tr.u for tr in data]) if data.n_inputs else None
        return np.concatenate([tr.t for tr in data]), dims, u

    def _field_penalty(self) -> torch.Tensor | None:
        """The field part's penalty on the current field (on the training device)."""
        return self._penalty_at(getattr(self, "_penalty_points", None))

    def _penalty_at(self, points: TrainingPoints | None, collocation: bool = False) -> torch.Tensor | None:
        """The field part's penalty on the current field at training ``points`` (t, x, u; physical units).

        ``collocation``: the collocation warm start's penalty (``FieldSpec.collocation_penalty``).
        """
        tensors = None
        if points is not None:
            device = self.rhs_.center.device
            tensors = tuple(
                None if a is None else torch.as_tensor(a, dtype=self.torch_dtype_, device=device) for a in points
            )
        penalty = self.field_part_.collocation_penalty if collocation else self.field_part_.penalty
        return penalty(self.rhs_.field, tensors)

    def _training_part(self, data: Trajectories) -> Trajectories:
        """``data`` without the held-out tails of ``validation_fraction``."""
        rows, _ = self._validation_split(data)
        if all(n == tr.n_times for tr, n in zip(data, rows)):
            return data
        return data.subset(
            [tr.replace(t=tr.t[:n], y=tr.y[:n], u=None if tr.u is None else tr.u[:n]) for tr, n in zip(data, rows)]
        )

    def _validation_split(self, data: Trajectories) -> tuple[list[int], list[float] | None]:
        """Rows used for training per trajectory, and where the held-out tails start."""
        lengths = [tr.n_times for tr in data]
        fraction = float(self.training_.validation_fraction)
        if not fraction:
            return lengths, None
        rows, cuts = [], []
        for tr in data:
            cut = tr.t[0] + (1 - fraction) * tr.duration
            n = int(np.searchsorted(tr.t, cut, side="right"))
            if n < 2 or n == tr.n_times:
                raise DataError(
                    f"validation_fraction={self.training_.validation_fraction} leaves trajectory {tr.name!r} "
                    f"with {n} training rows out of {tr.n_times}; use a smaller fraction or 0."
                )
            rows.append(n)
            cuts.append(float(tr.t[n - 1]))
        return rows, cuts

    def _input_signal(self, data: Trajectories) -> InputSignal | None:
        if not data.n_inputs:
            return None
        inputs = [tr.u for tr in data if tr.u is not None]  # all of them: Trajectories checks each has its inputs
        return InputSignal([tr.t for tr in data], inputs, self.solver_part_.input_interpolation, self.torch_dtype_)

    def _checkpoint(self, data: Any, horizon_stage: int = 0) -> Any:
        """The :class:`~sysid.training._checkpoint.Checkpoint` of this fit (of one stage of its horizon
        schedule), or None without checkpoint_path."""
        path = self.checkpoint_path
        if path is None:
            return None
        if not isinstance(path, str | os.PathLike):
            raise ConfigError(f"checkpoint_path must be a file path (str or os.PathLike) or None, got {path!r}.")
        from sysid.training import Checkpoint, fingerprint

        stage = getattr(self, "_checkpoint_stage", 0)
        return Checkpoint(path, fingerprint(self, data, stage=[stage, horizon_stage] if horizon_stage else stage))

    # -- streamed data (LazyTrajectories) -------------------------------------------------------
    def _check_streaming(self) -> None:
        from sysid.estimators._streaming import check_streaming

        check_streaming(self)

    def _fit_streaming(self, data: LazyTrajectories) -> None:
        from sysid.estimators._streaming import streaming_problem

        self._resolve()
        with torch_threads(1):
            generator = self._generator()
            self._initialise(Scaling.of_summary(data.summary, 0), len(data), generator)
            checkpoint = self._checkpoint(data)
            problem = streaming_problem(self, data, warm_up=not (checkpoint is not None and checkpoint.resumable()))
            options = {**self._loop_options(), "description": f"{type(self).__name__} (streamed)"}
            settings = self.training_.settings(**options, batch_size=1, polish_pieces=1)
            self._train(problem, data, checkpoint, settings, generator)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "rhs_")


class _Objective(torch.nn.Module):
    """Shooting loss plus an optional field penalty."""

    def __init__(self, shooting: torch.nn.Module, penalty: Callable[[], torch.Tensor | None]) -> None:
        super().__init__()
        self.shooting = shooting
        self.penalty = penalty

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        loss, parts = self.shooting(batch)
        extra = self.penalty()
        if extra is not None:
            loss = loss + extra
        return loss, parts
