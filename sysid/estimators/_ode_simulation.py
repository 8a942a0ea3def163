"""Prediction and model files of solver-trained estimators: simulate, estimate initial states, evaluate f."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from sklearn.utils.validation import check_is_fitted

from sysid.errors import DataError, SolverWarning
from sysid.estimators._base import as_finite_numbers
from sysid.fields import Scaling
from sysid.integration import BatchedField, InputSignal, SolverFailure, TimeParameters, simulate, torch_threads
from sysid.training import MultipleShooting, make_segments
from sysid.trajectories import Trajectories

#: A new autonomous trajectory's initial state is fitted to its first intervals:
#: ``2 * segment_length`` at least, else up to this many, but never more than half the
#: shortest trajectory. Ten intervals pin x0 to the first samples, where a fitted field's
#: error near the start (or noise) sends the whole prediction off; thirty average that out
#: (18 held-out simulated runs of 60 samples: 14 better, geometric mean of the errors
#: x0.73). With inputs the window stays ``2 * segment_length``: a driven plant forgets its
#: start, or (EMPS's integrating position) is so sensitive to it that the longer fit's
#: slightly different start went 0.022 -> 0.167 (tanks, forced mass-spring-damper: unchanged).
X0_WINDOW = 30

if TYPE_CHECKING:
    from sysid.integration import SolverConfig
    from sysid.training import Smoothed, Training


class SimulationMixin:
    """What a fitted solver-trained estimator does: predict, ``hidden_states``, ``vector_field``, files.

    Mixed into :class:`~sysid.estimators._ode_base.SolverTrainedODE`, which provides the
    fitted right-hand side ``rhs_``, ``scaling_``, the resolved parts and the data checks.
    """

    if TYPE_CHECKING:  # what SolverTrainedODE and TrajectoryEstimator provide (declared for mypy only)
        n_augment: int
        n_states_in_: int
        n_controls_in_: int
        n_dims_: int
        state_names_: list[Hashable]
        input_names_: list[Hashable]
        torch_dtype_: torch.dtype
        solver_: SolverConfig
        training_: Training
        rhs_: BatchedField
        sensor_: torch.nn.Module | None

        def _resolve(self) -> None: ...
        def _torch_device(self) -> torch.device: ...
        def _input_signal(self, data: Trajectories) -> InputSignal | None: ...
        def _data_like_fit(self, X: Any, t: Any, u: Any, data_options: dict[str, Any]) -> Trajectories: ...
        def _initialise(self, scaling: Scaling, n_trajectories: int, generator: torch.Generator) -> None: ...
        def _smoothed_states(self, t: np.ndarray, y: np.ndarray, lam: np.ndarray | None = None) -> Smoothed: ...
        def _scaled_initial(self, n_times: int, smoothed: Smoothed) -> np.ndarray: ...

    # -- prediction --------------------------------------------------------------------
    def to_equations(
        self,
        library: str = "polynomial",
        degree: int = 2,
        threshold: float = 0.05,
        n_samples: int = 2000,
        random_state: int | None = 0,
        **options: Any,
    ) -> Any:
        """Read the learned field as sparse equations; see :func:`sysid.distill`.

        The field is sampled over the region the training data covered and a sparse
        pysindy regression is fitted to it, so the result is only as trustworthy as the
        field there. Returns an object with ``coefficients_`` and ``equations()``.
        """
        from sysid.estimators._distill import distill

        return distill(
            self,
            library=library,
            degree=degree,
            threshold=threshold,
            n_samples=n_samples,
            random_state=random_state,
            **options,
        )

    def _predict(self, data: Trajectories, x0: np.ndarray | None) -> list[np.ndarray]:
        try:
            with torch_threads(1):  # small batched solves: a second thread costs more than it saves
                paths = self._simulate_scaled(data, x0)
        except SolverFailure as exc:
            return self._failed_prediction(data, str(exc))
        return [self.scaling_.unscale(self._readings(p)) for p in paths]

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
            start = np.zeros((len(data), self.n_dims_))
            start[:, : data.n_states] = self.scaling_.scale(x0)
            z0 = torch.as_tensor(start, dtype=dtype, device=device)
        with torch.no_grad():
            preds = simulate(
                rhs, z0, [tr.t for tr in data], torch.arange(len(data), device=device), inputs, self.solver_
            )
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
        >>> theta = sysid.Trajectories.from_arrays([tr.t for tr in d], [tr.y[:, :1] for tr in d], state_names=["theta"])
        >>> m = sysid.NeuralODE(
        ...     hidden=(8,), n_augment=1, max_epochs=2, lbfgs_steps=0, collocation_steps=20, verbose=False
        ... ).fit(theta)
        >>> [h.shape for h in m.hidden_states(theta)]
        [(20, 1), (20, 1)]
        """
        check_is_fitted(self)
        data = self._data_like_fit(X, t, u, data_options)
        with torch_threads(1):
            paths = self._simulate_scaled(data, None)
        return [p[:, data.n_states :] for p in paths]

    def _failed_prediction(self, data: Trajectories, reason: str) -> list[np.ndarray]:
        """NaN predictions with a warning and a flag, never silent garbage."""
        warnings.warn(
            f"the solver could not integrate the learned field over {list(data.names)} ({reason}); "
            "returning NaN. Loosen rtol/atol, raise solver_options['max_num_steps'], or check that the "
            "initial states lie in the region the model was trained on.",
            SolverWarning,
            stacklevel=4,
        )
        return [np.full((tr.n_times, data.n_states), np.nan) for tr in data]

    def _rhs_for(self, n_traj: int, device: torch.device | str = "cpu") -> BatchedField:
        """The fitted field with reference clocks (scale 1, offset 0) for new trajectories.

        On a device other than the CPU the field is a copy there; the fitted one stays put.
        """
        rhs = BatchedField(
            self.rhs_.field, self.rhs_.center, self.rhs_.spread, TimeParameters(n_traj, dtype=self.torch_dtype_)
        )
        if torch.device(device) != self.rhs_.center.device:
            rhs = copy.deepcopy(rhs).to(device)
        return rhs

    def _estimate_x0(
        self, data: Trajectories, inputs: InputSignal | None, rhs: BatchedField | None = None
    ) -> torch.Tensor:
        """Scaled initial states fitted to each trajectory's first few observations (field frozen).

        ``rhs`` is :meth:`_rhs_for` ``(len(data), device)``; its device is where the fit runs.
        The window is :data:`X0_WINDOW` intervals (half the shortest trajectory at most, and
        ``2 * segment_length`` at least), ``2 * segment_length`` for a field with inputs.
        """
        window = 2 * self.training_.segment_length
        if not data.n_inputs:
            window = max(window, min(X0_WINDOW, min(tr.n_times for tr in data) // 2))
        times = [tr.t[: window + 1] for tr in data]
        scaled = [self.scaling_.scale(tr.y[: window + 1]) for tr in data]
        segments = make_segments(times, scaled, window)
        first = segments.first_segment
        rhs = self._rhs_for(len(data)) if rhs is None else rhs
        device = rhs.center.device
        initial = None
        if self.n_augment:  # hidden dimensions start from the derivative embedding, not zero
            initial = [
                self._scaled_initial(len(t), self._smoothed_states(t, tr.y[: window + 1])) for t, tr in zip(times, data)
            ]
        sensor = getattr(self, "sensor_", None)
        if sensor is not None and torch.device(device) != torch.device("cpu"):
            sensor = copy.deepcopy(sensor)  # moved to the device with the objective; the fitted one stays put
        shooting = MultipleShooting(
            rhs,
            segments,
            times,
            scaled,
            self.n_dims_,
            inputs,
            self.solver_,
            "backprop",
            continuity=0.0,
            initial=initial,
            observe=sensor,
        ).to(device)
        frozen = [*rhs.parameters(), *([] if sensor is None else sensor.parameters())]
        for p in frozen:
            p.requires_grad_(False)
        starts = shooting.starts
        # A capped evaluation budget: the adaptive solver makes the loss slightly rough in x0,
        # and an unlucky strong-Wolfe zoom could otherwise spend every evaluation on one line.
        optimizer = torch.optim.LBFGS(
            [starts], lr=1.0, max_iter=20, max_eval=25, tolerance_change=1e-10, line_search_fn="strong_wolfe"
        )
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
            for p in frozen:
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
        check_is_fitted(self)
        return self._evaluate_field(self.rhs_.field, x, t, u)

    def _evaluate_field(self, function: Any, x: Any, t: Any, u: Any) -> np.ndarray:
        """Evaluate ``function(t, x, u)`` (a fitted field or part of one) on numpy input."""
        x_arr = as_finite_numbers(x, "x")
        single = x_arr.ndim == 1
        x2 = np.atleast_2d(x_arr)
        if x2.ndim != 2 or x2.shape[1] not in (self.n_states_in_, self.n_dims_):
            raise DataError(
                f"x must have {self.n_states_in_} columns (states {self.state_names_}), got shape {x_arr.shape}."
            )
        if x2.shape[1] < self.n_dims_:
            x2 = np.concatenate([x2, np.zeros((x2.shape[0], self.n_dims_ - x2.shape[1]))], axis=1)
        dtype = self.torch_dtype_
        t_arr = as_finite_numbers(t, "t")
        try:
            tt = torch.as_tensor(np.broadcast_to(t_arr, (x2.shape[0],)).copy(), dtype=dtype)
        except ValueError:
            raise DataError(
                f"t must be a number or an array of {x2.shape[0]} times, got shape {t_arr.shape}."
            ) from None
        uu = None
        if self.n_controls_in_:
            if u is None:
                raise DataError(f"the model has inputs {self.input_names_}: pass u=.")
            u_arr = np.atleast_2d(as_finite_numbers(u, "u"))
            try:
                uu = torch.as_tensor(np.broadcast_to(u_arr, (x2.shape[0], self.n_controls_in_)).copy(), dtype=dtype)
            except ValueError:
                raise DataError(
                    f"u must have shape ({self.n_controls_in_},) or ({x2.shape[0]}, {self.n_controls_in_}) "
                    f"for inputs {self.input_names_}, got shape {np.shape(u)}."
                ) from None
        with torch.no_grad():
            f = function(tt, torch.as_tensor(x2, dtype=dtype), uu).cpu().numpy()
        f = f[:, : self.n_states_in_]
        return f[0] if single else f

    # -- model files (sysid.io) ------------------------------------------------------
    _FITTED_JSON = (
        "state_names_",
        "input_names_",
        "n_states_in_",
        "n_controls_in_",
        "data_options_",
        "n_dims_",
        "x0_",
        "trajectory_names_",
        "time_scale_",
        "time_offset_",
        "n_function_evals_",
        "stop_reason_",
        "best_epoch_",
    )

    def _fitted_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """JSON-ready fitted attributes and the tensors of the fitted field."""
        state = {name: getattr(self, name) for name in self._FITTED_JSON}
        state["scaling_"] = self.scaling_.to_dict()
        state["history_"] = self.history_.to_dict(orient="list")
        state["n_trajectories"] = int(self.rhs_.time.offset.shape[0])
        tensors = {f"rhs.{k}": v for k, v in self.rhs_.state_dict().items()}
        sensor = getattr(self, "sensor_", None)
        if sensor is not None:
            tensors.update({f"sensor.{k}": v for k, v in sensor.state_dict().items()})
        tensors["shooting_starts"] = self.shooting_state_
        return state, tensors

    def _set_fitted_state(self, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        """Rebuild the fitted model from :meth:`_fitted_state` output."""
        self._resolve()
        for name in self._FITTED_JSON:
            value = state[name]
            setattr(
                self, name, np.asarray(value, dtype=float) if name in ("x0_", "time_scale_", "time_offset_") else value
            )
        if self.n_dims_ != self.n_states_in_ + self.n_augment:  # before anything is built from them
            raise ValueError(
                f"n_dims_={self.n_dims_!r} is not n_states_in_={self.n_states_in_!r} + n_augment={self.n_augment!r}"
            )
        self.scaling_ = Scaling.from_dict(state["scaling_"])
        self.history_ = pd.DataFrame(state["history_"])
        self._initialise(self.scaling_, int(state["n_trajectories"]), torch.Generator())
        own = {k[len("rhs.") :]: v for k, v in tensors.items() if k.startswith("rhs.")}
        self.rhs_.load_state_dict(own, strict=True)
        if self.sensor_ is not None:
            self.sensor_.load_state_dict(
                {k[len("sensor.") :]: v for k, v in tensors.items() if k.startswith("sensor.")}, strict=True
            )
        self.shooting_state_ = tensors["shooting_starts"]

    def _readings(self, path: torch.Tensor | np.ndarray) -> np.ndarray:
        """Scaled readings (n_times, n_states) of a scaled path (n_times, n_dims): through the sensor if any."""
        observed = torch.as_tensor(np.asarray(path)[:, : self.n_states_in_], dtype=self.torch_dtype_)
        sensor = getattr(self, "sensor_", None)
        if sensor is None:
            return observed.numpy()
        with torch.no_grad():
            return sensor(observed).numpy()
