"""What every model trained through the ODE solver shares: scaling, shooting, training.

NeuralODE, SparseODE, GreyBoxODE and HybridODE differ only in their vector field;
they subclass :class:`SolverTrainedODE` and implement ``_build_field``.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.utils.validation import check_is_fitted

from sysid.errors import ConfigError, DataError, FitError, FitWarning, SolverWarning
from sysid.estimators._base import TrajectoryEstimator, as_numbers
from sysid.integration import BatchedField, InputSignal, SolverConfig, SolverFailure, TimeParameters, simulate
from sysid.training import MultipleShooting, TrainSettings, make_segments, train
from sysid.training._collocation import (
    Smoothed,
    collocation_fit,
    embed_derivatives,
    smooth_trajectory,
    smoothing_strengths,
)
from sysid.training._loop import ADVICE
from sysid.trajectories import DataSummary, LazyTrajectories, Trajectories

_DTYPES = {"float64": torch.float64, "float32": torch.float32}
_LEARN_TIME = {None: (False, False), "scale": (True, False), "offset": (False, True), "both": (True, True)}
# Free-run validation spacing (sysid.training.validation_due): at least every 10 epochs (a third of
# the patience if smaller), at most every 5, otherwise once the training evaluations since the last
# check reach 5 times that check's own evaluations. A check (a no-grad solve of whole trajectories)
# costs about 0.4x a training evaluation, so validation stays near 8% of the Adam phase (it was
# 15%, every 5 epochs, on Lotka-Volterra; benchmarks/overhead.py). Counts, not wall time: the same
# fit validates at the same epochs, resumed or not. The 10-epoch cap keeps restore-best fine enough
# where checks are costly: on the cascaded tanks record gaps of up to 20 epochs left 5 checks and a
# test error of 1.30 V, against 1.14 V with 7 checks and 1.07 V with a check every 5 epochs.
_MAX_EVAL_EVERY = 10
_EVAL_EVERY = 5
_EVAL_COST_RATIO = 5.0


def _max_eval_every(patience: int | None) -> int:
    """Largest gap between validations: 10 epochs, or a third of the patience (at least 5)."""
    return _MAX_EVAL_EVERY if patience is None else max(_EVAL_EVERY, min(_MAX_EVAL_EVERY, int(patience) // 3))


@dataclass(frozen=True)
class Scaling:
    """x = center + spread * z for the states, likewise for inputs, and a time unit."""

    center: np.ndarray
    spread: np.ndarray
    input_center: np.ndarray
    input_spread: np.ndarray
    time_unit: float

    @classmethod
    def of(cls, data: Trajectories, n_augment: int) -> Scaling:
        """Per-state mean and standard deviation over observed entries; time unit from spans."""
        y = np.concatenate([tr.y for tr in data])
        u = np.concatenate([tr.u for tr in data]) if data.n_inputs else None
        input_center, input_spread = (np.zeros(0), np.zeros(0)) if u is None else (u.mean(axis=0), u.std(axis=0))
        return cls._from_moments(np.nanmean(y, axis=0), np.nanstd(y, axis=0), input_center, input_spread,
                                 [tr.duration for tr in data], n_augment)

    @classmethod
    def of_summary(cls, summary: DataSummary, n_augment: int) -> Scaling:
        """The same as :meth:`of`, from statistics gathered chunk by chunk (streamed data).

        Examples
        --------
        >>> from sysid.datasets import simulate
        >>> data = simulate("lotka_volterra", n_trajectories=3, n_samples=20, noise=0.05, random_state=0)
        >>> summary = DataSummary.empty(2, 0)
        >>> for k in range(3):
        ...     summary.add(data[k:k + 1])
        >>> a, b = Scaling.of(data, 0), Scaling.of_summary(summary, 0)
        >>> bool(np.allclose(a.center, b.center) and np.allclose(a.spread, b.spread)), a.time_unit == b.time_unit
        (True, True)
        """
        inputs = summary.inputs
        return cls._from_moments(summary.states.mean, summary.states.std, inputs.mean, inputs.std,
                                 summary.durations, n_augment)

    @classmethod
    def _from_moments(cls, center: np.ndarray, spread: np.ndarray, input_center: np.ndarray,
                      input_spread: np.ndarray, durations: Any, n_augment: int) -> Scaling:
        """Guard zero or undefined spreads, take the time unit from the durations, pad augmented dims."""
        spread = np.where(np.isfinite(spread) & (spread > 1e-12 * np.maximum(1.0, np.abs(center))), spread, 1.0)
        input_spread = np.where(input_spread > 0, input_spread, 1.0)
        time_unit = float(np.median(durations)) / 10.0 or 1.0
        return cls(
            np.concatenate([center, np.zeros(n_augment)]),
            np.concatenate([spread, np.ones(n_augment)]),
            input_center, input_spread, time_unit,
        )

    def scale(self, y: np.ndarray) -> np.ndarray:
        """Scaled observed states (n, n_states)."""
        n = y.shape[1]
        return (y - self.center[:n]) / self.spread[:n]

    def unscale(self, z: np.ndarray) -> np.ndarray:
        """Physical states from scaled ones (any number of leading dims)."""
        n = z.shape[-1]
        return self.center[:n] + self.spread[:n] * z

    def to_dict(self) -> dict[str, Any]:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scaling:
        return cls(**{k: (np.asarray(v, dtype=float) if isinstance(v, list) else v) for k, v in d.items()})


class SolverTrainedODE(TrajectoryEstimator):
    """Shared machinery; see :class:`sysid.NeuralODE` for the parameters."""

    # Subclasses set these in __init__ (stored unchanged, scikit-learn style).
    solver: str
    rtol: float | None
    atol: float | None
    solver_options: dict[str, Any] | None
    gradient: str
    learn_x0: bool
    learn_time: str | None
    n_augment: int
    segment_length: int
    continuity_weight: float
    max_epochs: int
    lr: float
    batch_size: int | None
    validation_fraction: float
    patience: int | None
    lbfgs_steps: int
    collocation_steps: int
    input_interpolation: str
    random_state: int | None
    dtype: str
    device: str
    verbose: bool
    warm_start: bool

    # -- subclass contract -----------------------------------------------------------
    def _build_field(self, n_dims: int, n_inputs: int, scaling: Scaling,
                     generator: torch.Generator, dtype: torch.dtype) -> torch.nn.Module:
        """Return the vector field module f(t, x, u) in physical units."""
        raise NotImplementedError

    def _field_penalty(self) -> torch.Tensor | None:
        """Optional regularisation added to the loss (e.g. L1 on coefficients)."""
        return None

    def _after_fit(self, data: Trajectories) -> None:
        """Hook for subclasses to derive readable results (equations, parameters)."""

    #: Why this model cannot fit streamed data (None: it can); see :meth:`_check_streaming`.
    _streaming_unsupported: str | None = None

    # -- configuration ---------------------------------------------------------------
    def _resolve(self) -> None:
        if self.gradient not in ("adjoint", "backprop"):
            raise ConfigError(f"gradient must be 'adjoint' or 'backprop', got {self.gradient!r}.")
        if self.learn_time not in _LEARN_TIME:
            raise ConfigError(f"learn_time must be None, 'scale', 'offset' or 'both', got {self.learn_time!r}.")
        if self.dtype not in _DTYPES:
            raise ConfigError(f"dtype must be 'float64' or 'float32', got {self.dtype!r}.")
        if not (isinstance(self.segment_length, int) and self.segment_length >= 1):
            raise ConfigError(f"segment_length must be a positive integer, got {self.segment_length!r}.")
        if not (isinstance(self.n_augment, int) and self.n_augment >= 0):
            raise ConfigError(f"n_augment must be a non-negative integer, got {self.n_augment!r}.")
        if not 0.0 <= float(self.validation_fraction) < 1.0:
            raise ConfigError(f"validation_fraction must be in [0, 1), got {self.validation_fraction!r}.")
        if not (isinstance(self.max_epochs, int) and self.max_epochs >= 1):
            raise ConfigError(f"max_epochs must be a positive integer, got {self.max_epochs!r}.")
        if not float(self.lr) > 0:
            raise ConfigError(f"lr must be positive, got {self.lr!r}.")
        if self.input_interpolation not in ("linear", "zoh"):
            raise ConfigError(f"input_interpolation must be 'linear' or 'zoh', got {self.input_interpolation!r}.")
        rtol = 1e-4 if self.rtol is None else self.rtol
        atol = 1e-6 if self.atol is None else self.atol
        self.solver_ = SolverConfig(self.solver, rtol, atol, dict(self.solver_options or {}))
        self.torch_dtype_ = _DTYPES[self.dtype]

    def _check_config(self) -> None:
        self._resolve()
        self._torch_device()

    def _torch_device(self) -> torch.device:
        """The device to train and predict on (``device``), checked to be usable here."""
        return resolve_device(self.device)

    def _generator(self) -> torch.Generator:
        seed = self.random_state if self.random_state is not None else int(np.random.SeedSequence().entropy % 2**63)
        if not isinstance(seed, int | np.integer):
            raise ConfigError(f"random_state must be None or an int, got {type(self.random_state).__name__}.")
        return torch.Generator().manual_seed(int(seed))

    # -- fitting ---------------------------------------------------------------------
    def _fit(self, data: Trajectories) -> None:
        self._resolve()
        with torch_threads(1):
            self._fit_resolved(data)

    def _fit_resolved(self, data: Trajectories) -> None:
        dtype = self.torch_dtype_
        generator = self._generator()
        reuse = self.warm_start and hasattr(self, "rhs_") and self.n_dims_ == data.n_states + self.n_augment
        if not reuse:
            self.scaling_ = Scaling.of(data, self.n_augment)
            self.n_dims_ = data.n_states + self.n_augment
            field = self._build_field(self.n_dims_, data.n_inputs, self.scaling_, generator, dtype)
            learn_scale, learn_offset = _LEARN_TIME[self.learn_time]
            self.rhs_ = BatchedField(field, torch.as_tensor(self.scaling_.center, dtype=dtype),
                                     torch.as_tensor(self.scaling_.spread, dtype=dtype),
                                     TimeParameters(len(data), learn_scale, learn_offset, dtype))
        elif len(data) != len(self.rhs_.time.offset):
            raise DataError(f"warm_start needs the same {len(self.rhs_.time.offset)} trajectories, got {len(data)}.")
        times = [tr.t for tr in data]
        scaled = [self.scaling_.scale(tr.y) for tr in data]
        train_rows, tail_from = self._validation_split(data)
        segments = make_segments([t[:n] for t, n in zip(times, train_rows)],
                                 [y[:n] for y, n in zip(scaled, train_rows)], self.segment_length)
        inputs = self._input_signal(data)
        checkpoint = self._checkpoint(data)
        resuming = checkpoint is not None and checkpoint.resumable()  # its state replaces any warm start
        initial = None
        if not reuse and self.collocation_steps and not resuming:
            initial = self._collocation_warm_start(data, train_rows)
        objective = _Objective(
            MultipleShooting(self.rhs_, segments, times, scaled, self.n_dims_, inputs, self.solver_,
                             self.gradient, self.continuity_weight, self.learn_x0, initial),
            self._field_penalty,
        )
        if reuse and hasattr(self, "shooting_state_"):
            try:
                objective.shooting.starts.data.copy_(self.shooting_state_)
            except RuntimeError:
                pass
        # Built on the CPU (data-driven initialisation is numpy), trained on the device, and
        # brought back: the fitted model is device-independent (pickles, saves and predicts
        # anywhere; predict moves a copy to ``device``).
        objective.to(self._torch_device())
        settings = self._train_settings()
        self.rhs_.nfe = 0
        try:
            try:
                result = train(objective, len(segments), lambda: objective.shooting.free_run_error(tail_from),
                               settings, generator, lambda: self.rhs_.nfe, checkpoint)
            finally:
                objective.to("cpu")
        except FitError as exc:  # the model keeps the best parameters seen (predict, warm_start), then reports
            if hasattr(exc, "result"):
                self._record_training(objective, data, exc.result)
            raise
        self._record_training(objective, data, result)
        if checkpoint is not None and result.stop_reason != "interrupted":
            checkpoint.remove()  # completed: nothing left to resume
        if result.failures and result.best_epoch < 0 and result.stop_reason != "interrupted":
            warnings.warn(
                f"{type(self).__name__}: training failed {result.failures} time(s) and never improved on its "
                f"starting point (free-run error {result.best_score:.3g}): the model holds its initial "
                f"parameters. {ADVICE}",
                FitWarning, stacklevel=4,
            )
        self._after_fit(data)

    # -- streamed data (LazyTrajectories): sysid/estimators/_streaming.py -------------------
    def _check_streaming(self) -> None:
        from sysid.estimators._streaming import check_streaming

        check_streaming(self)

    def _fit_streaming(self, data: LazyTrajectories) -> None:
        from sysid.estimators._streaming import fit_streaming

        self._resolve()
        with torch_threads(1):
            fit_streaming(self, data)

    def _train_settings(self, **overrides: Any) -> TrainSettings:
        """The training loop's settings from this estimator's parameters (``overrides`` win)."""
        settings: dict[str, Any] = dict(
            max_epochs=self.max_epochs, lr=float(self.lr), lr_final=float(self.lr) / 10,
            batch_size=self.batch_size, patience=self.patience, eval_every=_EVAL_EVERY,
            eval_cost_ratio=_EVAL_COST_RATIO, max_eval_every=_max_eval_every(self.patience),
            lbfgs_steps=self.lbfgs_steps, verbose=self.verbose, description=type(self).__name__,
        )
        return TrainSettings(**{**settings, **overrides})

    def _checkpoint(self, data: Trajectories) -> Any:
        """The :class:`~sysid.training._checkpoint.Checkpoint` of this fit, or None without checkpoint_path."""
        path = getattr(self, "checkpoint_path", None)
        if path is None:
            return None
        if not isinstance(path, str | os.PathLike):
            raise ConfigError(f"checkpoint_path must be a file path (str or os.PathLike) or None, got {path!r}.")
        from sysid.training._checkpoint import Checkpoint, fingerprint

        return Checkpoint(path, fingerprint(self, data, stage=getattr(self, "_checkpoint_stage", 0)))

    def _record_training(self, objective: _Objective, data: Trajectories, result: Any) -> None:
        """Set the fitted attributes from the trained objective (holding the best parameters)."""
        self.shooting_state_ = objective.shooting.starts.detach().clone()
        self.history_ = pd.DataFrame(result.history)
        self.n_function_evals_ = int(self.rhs_.nfe)
        self.stop_reason_ = result.stop_reason
        self.best_epoch_ = result.best_epoch
        x0 = objective.shooting.x0.detach().cpu().numpy()
        self.x0_ = self.scaling_.unscale(x0) if not self.n_augment else np.concatenate(
            [self.scaling_.unscale(x0[:, : data.n_states]), x0[:, data.n_states:]], axis=1)
        self.trajectory_names_ = list(data.names)
        self.time_scale_ = self.rhs_.time.scale.detach().cpu().numpy()
        self.time_offset_ = self.rhs_.time.offset.detach().cpu().numpy()

    def _collocation_warm_start(self, data: Trajectories, train_rows: list[int]) -> list[np.ndarray]:
        """Fit the field to smoothed derivatives; return the smoothed scaled states.

        Augmented dimensions start as a derivative embedding of the observed states.
        """
        lam = self._smoothing_strengths(data, train_rows)
        smoothed = [self._smoothed_states(tr.t[:n], tr.y[:n], lam) for tr, n in zip(data, train_rows)]
        collocation_fit(
            self.rhs_.field, [tr.t[:n] for tr, n in zip(data, train_rows)], smoothed,
            [None if tr.u is None else tr.u[:n] for tr, n in zip(data, train_rows)],
            self.n_dims_, self.scaling_.spread, self.scaling_.time_unit, self.collocation_steps,
            float(self.lr), self.torch_dtype_,
        )
        return [self._scaled_initial(tr.n_times, sm) for tr, sm in zip(data, smoothed)]

    @staticmethod
    def _smoothing_strengths(data: Trajectories, train_rows: list[int]) -> np.ndarray:
        """One spline smoothing strength per state (GCV on a few windows), reused for every trajectory."""
        return smoothing_strengths([tr.t[:n] for tr, n in zip(data, train_rows)],
                                   [tr.y[:n] for tr, n in zip(data, train_rows)])

    def _smoothed_states(self, t: np.ndarray, y: np.ndarray, lam: np.ndarray | None = None) -> Smoothed:
        """Smoothing-spline states (strength ``lam`` per state, GCV if None), with the derivative embedding."""
        smoothed = smooth_trajectory(t, y, lam)
        if not self.n_augment:
            return smoothed
        return embed_derivatives(smoothed, self.n_augment, self.scaling_.spread, self.scaling_.time_unit)

    def _scaled_initial(self, n_times: int, smoothed: Smoothed) -> np.ndarray:
        """Scaled (n_times, n_dims) start values from smoothed states; NaN where there are none."""
        values = np.full((n_times, smoothed.values.shape[1]), np.nan)
        n_states = self.n_dims_ - self.n_augment
        values[: smoothed.values.shape[0], :n_states] = self.scaling_.scale(smoothed.values[:, :n_states])
        values[: smoothed.values.shape[0], n_states:] = smoothed.values[:, n_states:]
        return values

    def _validation_split(self, data: Trajectories) -> tuple[list[int], list[float] | None]:
        """Rows used for training per trajectory, and where the held-out tails start."""
        lengths = [tr.n_times for tr in data]
        if not self.validation_fraction:
            return lengths, None
        rows, cuts = [], []
        for tr in data:
            cut = tr.t[0] + (1 - self.validation_fraction) * tr.duration
            n = int(np.searchsorted(tr.t, cut, side="right"))
            if n < 2 or n == tr.n_times:
                raise DataError(
                    f"validation_fraction={self.validation_fraction} leaves trajectory {tr.name!r} "
                    f"with {n} training rows out of {tr.n_times}; use a smaller fraction or 0."
                )
            rows.append(n)
            cuts.append(float(tr.t[n - 1]))
        return rows, cuts

    def _input_signal(self, data: Trajectories) -> InputSignal | None:
        if not data.n_inputs:
            return None
        return InputSignal([tr.t for tr in data], [tr.u for tr in data], self.input_interpolation,
                           self.torch_dtype_)

    # -- prediction --------------------------------------------------------------------
    def _predict(self, data: Trajectories, x0: np.ndarray | None) -> list[np.ndarray]:
        try:
            with torch_threads(1):  # small batched solves: a second thread costs more than it saves
                paths = self._simulate_scaled(data, x0)
        except SolverFailure as exc:
            return self._failed_prediction(data, str(exc))
        return [self.scaling_.unscale(p[:, : data.n_states]) for p in paths]

    def _simulate_scaled(self, data: Trajectories, x0: np.ndarray | None) -> list[np.ndarray]:
        """Scaled (n_times, n_dims) paths of every trajectory, augmented dimensions included."""
        dtype = self.torch_dtype_
        device = self._torch_device()
        inputs = self._input_signal(data)
        inputs = None if inputs is None else inputs.to(device)
        rhs = self._rhs_for(len(data), device)
        if x0 is None:
            z0 = self._estimate_x0(data, inputs, rhs)
        else:
            z0 = np.zeros((len(data), self.n_dims_))
            z0[:, : data.n_states] = self.scaling_.scale(x0)
            z0 = torch.as_tensor(z0, dtype=dtype, device=device)
        with torch.no_grad():
            preds = simulate(rhs, z0, [tr.t for tr in data], torch.arange(len(data), device=device), inputs,
                             self.solver_)
        return [p.cpu().numpy() for p in preds]

    def hidden_states(self, X: Any, t: Any = None, u: Any = None, **data_options: Any) -> list[np.ndarray]:
        """The augmented (never observed) dimensions along each trajectory of ``X``.

        Initial states are estimated from the observations, as in :meth:`predict`. The
        hidden coordinates have no units: the model may scale or mix them freely, so read
        them up to an invertible transformation.

        Returns
        -------
        list of arrays (n_times, n_augment), one per trajectory.

        Examples
        --------
        >>> import sysid
        >>> d = sysid.datasets.simulate("pendulum", n_trajectories=2, n_samples=20, random_state=0)
        >>> theta = sysid.Trajectories.from_arrays([tr.t for tr in d], [tr.y[:, :1] for tr in d],
        ...                                        state_names=["theta"])
        >>> m = sysid.NeuralODE(hidden=(8,), n_augment=1, max_epochs=2, lbfgs_steps=0,
        ...                     collocation_steps=20, verbose=False).fit(theta)
        >>> [h.shape for h in m.hidden_states(theta)]
        [(20, 1), (20, 1)]
        """
        check_is_fitted(self)
        data = self._data_like_fit(X, t, u, data_options)
        with torch_threads(1):
            paths = self._simulate_scaled(data, None)
        return [p[:, data.n_states:] for p in paths]

    def _failed_prediction(self, data: Trajectories, reason: str) -> list[np.ndarray]:
        """NaN predictions with a warning and a flag, never silent garbage."""
        warnings.warn(
            f"the solver could not integrate the learned field over {list(data.names)} ({reason}); "
            "returning NaN. Loosen rtol/atol, raise solver_options['max_num_steps'], or check that the "
            "initial states lie in the region the model was trained on.",
            SolverWarning, stacklevel=4,
        )
        return [np.full((tr.n_times, data.n_states), np.nan) for tr in data]

    def _rhs_for(self, n_traj: int, device: torch.device | str = "cpu") -> BatchedField:
        """The fitted field with reference clocks (scale 1, offset 0) for new trajectories.

        On a device other than the CPU the field is a copy there; the fitted one stays put.
        """
        rhs = BatchedField(self.rhs_.field, self.rhs_.center, self.rhs_.spread,
                           TimeParameters(n_traj, dtype=self.torch_dtype_))
        if torch.device(device) != self.rhs_.center.device:
            rhs = copy.deepcopy(rhs).to(device)
        return rhs

    def _estimate_x0(self, data: Trajectories, inputs: InputSignal | None,
                     rhs: BatchedField | None = None) -> torch.Tensor:
        """Scaled initial states fitted to each trajectory's first few observations (field frozen).

        ``rhs`` is :meth:`_rhs_for` ``(len(data), device)``; its device is where the fit runs.
        """
        window = 2 * self.segment_length
        times = [tr.t[: window + 1] for tr in data]
        scaled = [self.scaling_.scale(tr.y[: window + 1]) for tr in data]
        segments = make_segments(times, scaled, window)
        first = segments.first_segment
        rhs = self._rhs_for(len(data)) if rhs is None else rhs
        device = rhs.center.device
        initial = None
        if self.n_augment:  # hidden dimensions start from the derivative embedding, not zero
            initial = [self._scaled_initial(len(t), self._smoothed_states(t, tr.y[: window + 1]))
                       for t, tr in zip(times, data)]
        shooting = MultipleShooting(rhs, segments, times, scaled, self.n_dims_, inputs, self.solver_,
                                    "backprop", continuity=0.0, initial=initial).to(device)
        for p in rhs.parameters():
            p.requires_grad_(False)
        starts = shooting.starts
        # A capped evaluation budget: the adaptive solver makes the loss slightly rough in x0,
        # and an unlucky strong-Wolfe zoom could otherwise spend every evaluation on one line.
        optimizer = torch.optim.LBFGS([starts], lr=1.0, max_iter=20, max_eval=25, tolerance_change=1e-10,
                                      line_search_fn="strong_wolfe")
        batch = torch.as_tensor(first, device=device)

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss, _ = shooting(batch)
            loss.backward()
            return loss

        try:
            optimizer.step(closure)
        except Exception:  # noqa: BLE001 - a failed refinement keeps the interpolated first sample
            pass
        finally:
            for p in rhs.parameters():
                p.requires_grad_(True)
        return starts.detach()[batch]

    def vector_field(self, x: Any, t: Any = 0.0, u: Any = None) -> np.ndarray:
        """Evaluate the learned dx/dt (physical units) at states ``x``.

        Parameters
        ----------
        x : array (n_states,) or (n_points, n_states)
            With ``n_augment > 0`` the augmented dimensions may be appended; they are
            zero otherwise.
        t : float or array (n_points,)
        u : array (n_inputs,) or (n_points, n_inputs), required if fitted with inputs

        Returns
        -------
        array of the same leading shape as ``x``, derivatives of the observed states.
        """
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        return self._evaluate_field(self.rhs_.field, x, t, u)

    def _evaluate_field(self, function: Any, x: Any, t: Any, u: Any) -> np.ndarray:
        """Evaluate ``function(t, x, u)`` (a fitted field or part of one) on numpy input."""
        x_arr = as_numbers(x, "x")
        single = x_arr.ndim == 1
        x2 = np.atleast_2d(x_arr)
        if x2.ndim != 2 or x2.shape[1] not in (self.n_states_in_, self.n_dims_):
            raise DataError(f"x must have {self.n_states_in_} columns (states {self.state_names_}), "
                            f"got shape {x_arr.shape}.")
        if x2.shape[1] < self.n_dims_:
            x2 = np.concatenate([x2, np.zeros((x2.shape[0], self.n_dims_ - x2.shape[1]))], axis=1)
        dtype = self.torch_dtype_
        t_arr = as_numbers(t, "t")
        try:
            tt = torch.as_tensor(np.broadcast_to(t_arr, (x2.shape[0],)).copy(), dtype=dtype)
        except ValueError:
            raise DataError(f"t must be a number or an array of {x2.shape[0]} times, got shape {t_arr.shape}.") from None
        uu = None
        if self.n_controls_in_:
            if u is None:
                raise DataError(f"the model has inputs {self.input_names_}: pass u=.")
            u_arr = np.atleast_2d(as_numbers(u, "u"))
            try:
                uu = torch.as_tensor(np.broadcast_to(u_arr, (x2.shape[0], self.n_controls_in_)).copy(), dtype=dtype)
            except ValueError:
                raise DataError(f"u must have shape ({self.n_controls_in_},) or ({x2.shape[0]}, {self.n_controls_in_}) "
                                f"for inputs {self.input_names_}, got shape {np.shape(u)}.") from None
        with torch.no_grad():
            f = function(tt, torch.as_tensor(x2, dtype=dtype), uu).cpu().numpy()
        f = f[:, : self.n_states_in_]
        return f[0] if single else f

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "rhs_")

    # -- model files (sysid.io) ------------------------------------------------------
    _FITTED_JSON = ("state_names_", "input_names_", "n_states_in_", "n_controls_in_", "data_options_",
                    "n_dims_", "x0_", "trajectory_names_", "time_scale_", "time_offset_",
                    "n_function_evals_", "stop_reason_", "best_epoch_")

    def _fitted_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """JSON-ready fitted attributes and the tensors of the fitted field."""
        state = {name: getattr(self, name) for name in self._FITTED_JSON}
        state["scaling_"] = self.scaling_.to_dict()
        state["history_"] = self.history_.to_dict(orient="list")
        state["n_trajectories"] = int(self.rhs_.time.offset.shape[0])
        tensors = {f"rhs.{k}": v for k, v in self.rhs_.state_dict().items()}
        tensors["shooting_starts"] = self.shooting_state_
        return state, tensors

    def _set_fitted_state(self, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        """Rebuild the fitted model from :meth:`_fitted_state` output."""
        self._resolve()
        for name in self._FITTED_JSON:
            value = state[name]
            setattr(self, name, np.asarray(value, dtype=float) if name in ("x0_", "time_scale_", "time_offset_")
                    else value)
        if self.n_dims_ != self.n_states_in_ + self.n_augment:  # before anything is built from them
            raise ValueError(f"n_dims_={self.n_dims_!r} is not n_states_in_={self.n_states_in_!r} + "
                             f"n_augment={self.n_augment!r}")
        self.scaling_ = Scaling.from_dict(state["scaling_"])
        self.history_ = pd.DataFrame(state["history_"])
        dtype = self.torch_dtype_
        field = self._build_field(self.n_dims_, self.n_controls_in_, self.scaling_, torch.Generator(), dtype)
        learn_scale, learn_offset = _LEARN_TIME[self.learn_time]
        self.rhs_ = BatchedField(field, torch.as_tensor(self.scaling_.center, dtype=dtype),
                                 torch.as_tensor(self.scaling_.spread, dtype=dtype),
                                 TimeParameters(state["n_trajectories"], learn_scale, learn_offset, dtype))
        own = {k[len("rhs."):]: v for k, v in tensors.items() if k.startswith("rhs.")}
        self.rhs_.load_state_dict(own, strict=True)
        self.shooting_state_ = tensors["shooting_starts"]


def resolve_device(device: Any) -> torch.device:
    """``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or a torch.device) if usable here.

    Raises
    ------
    ConfigError
        For a name torch does not know, or a device this machine does not have.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("gpu")
    Traceback (most recent call last):
    ...
    sysid.errors.ConfigError: device='gpu' is not a torch device name; use 'cpu', 'cuda', 'cuda:<index>' or 'mps'.
    """
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(
            f"device={device!r} is not a torch device name; use 'cpu', 'cuda', 'cuda:<index>' or 'mps'."
        ) from None
    if resolved.type == "cpu":
        return resolved
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count and (resolved.index is None or resolved.index < count):
            return resolved
        found = f"only cuda:0..cuda:{count - 1} exist" if count else "torch sees no CUDA GPU on this machine"
        raise ConfigError(
            f"device={device!r} is not available: {found} (torch {torch.__version__}, built for CUDA "
            f"{torch.version.cuda or 'none'}). Use device='cpu', or install a CUDA build of torch."
        )
    if resolved.type == "mps" and torch.backends.mps.is_available():
        return resolved
    raise ConfigError(f"device={device!r} is not available on this machine; use device='cpu'.")


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` intra-op threads, then restore the previous setting.

    The tensors of a training step are small (segments x state, 64-wide layers):
    thread start-up and contention cost more than they save, measured 10-40x slower
    with two threads on a busy two-core machine (benchmarks/).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Objective(torch.nn.Module):
    """Shooting loss plus an optional field penalty."""

    def __init__(self, shooting: MultipleShooting, penalty: Any) -> None:
        super().__init__()
        self.shooting = shooting
        self.penalty = penalty

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        loss, parts = self.shooting(batch)
        extra = self.penalty()
        if extra is not None:
            loss = loss + extra
        return loss, parts
