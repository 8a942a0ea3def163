"""HybridODE: known physics plus a neural-network correction, trained through the solver."""

from __future__ import annotations

import os

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from sysid.errors import ConfigError
from sysid.estimators._greybox import probe_function
from sysid.estimators._parametric import ParametricODE
from sysid.estimators._ode_base import Scaling
from sysid.fields import MLPField
from sysid.fields._greybox import Bound, GreyBoxFunction
from sysid.fields._hybrid import HybridField
from sysid.fields._mlp import ACTIVATIONS
from sysid.training._collocation import smooth_trajectory
from sysid.training._segments import interpolate_missing
from sysid.trajectories import Trajectories


class HybridODE(ParametricODE):
    """Known physics plus a learned correction: dx/dt = known(t, x, p, u) + NN(x, u).

    Use it when part of the dynamics is known (conservation laws, a growth term, the
    forcing) and the rest is not. The known part is written like a grey-box ``f``
    with named, optionally bounded or fixed parameters; the correction is a small
    multilayer perceptron. Both are trained together by multiple shooting through an
    adaptive solver, as :class:`~sysid.NeuralODE` is. The loss adds
    ``correction_penalty`` times the mean squared correction (scaled units) over the
    training states, so the network only explains what the physics cannot.

    Parameters
    ----------
    known : callable ``known(t, x, p, u) -> tensor``
        The known part in torch operations: t (batch,), x (batch, n_states) physical
        states, p a dict of scalar tensors, u (batch, n_inputs) or None. Returns a
        tensor of x's shape. Model files store only its name: pass it again to
        ``sysid.load(path, known=known)``.
    params : dict of str to float, optional
        The known part's parameters with initial values (fixed ones: their values).
    bounds : dict of str to (low, high), optional
    fixed : list of str, optional
        As for :class:`GreyBoxODE`. A free physical parameter that the correction can
        imitate is not identifiable: the penalty then moves it towards the smallest
        correction, not towards the truth. Fix the parameters you know.
    hidden : tuple of int, default (32, 32)
        Hidden widths of the correction network.
    activation : str, default "tanh"
    correction_penalty : float, default 1e-3
        Weight of the mean squared correction in the loss.
    solver, rtol, atol, solver_options, gradient, learn_x0, learn_time, n_augment, \
segment_length, continuity_weight, max_epochs, lr, batch_size, validation_fraction, \
patience, lbfgs_steps, collocation_steps, input_interpolation, random_state, dtype, \
device, verbose, warm_start, checkpoint_path
        As for :class:`~sysid.NeuralODE`, except ``lbfgs_steps`` (default 100): a
        full-batch L-BFGS stage after Adam, which is what brings the network from its
        collocation warm start to a good fit (Adam's first steps tend to throw the
        warm-started network off; the best validated parameters are kept either way).

    Attributes
    ----------
    params_ : dict of str to float
        Fitted values of the known part's parameters.
    x0_, time_scale_, time_offset_, history_, n_function_evals_
        As for :class:`~sysid.NeuralODE`.

    Examples
    --------
    >>> import numpy as np
    >>> def growth(t, x, p, u):
    ...     return p["r"] * x
    >>> t = np.linspace(0, 1, 12)
    >>> y = (1.0 / (1.0 + np.exp(-2.0 * t)))[:, None]      # logistic: known growth + saturation
    >>> model = HybridODE(growth, {"r": 2.0}, fixed=["r"], hidden=(8,), max_epochs=5, lbfgs_steps=10,
    ...                   gradient="backprop", verbose=False).fit(y, t=t)
    >>> model.correction([[0.9]]).shape
    (1, 1)
    """

    _required_parameters = ["known"]  # for scikit-learn's constructor checks
    _least_squares_capable = False  # a network: trained by Adam/L-BFGS

    def __init__(
        self,
        known: GreyBoxFunction,
        params: Mapping[str, float] | None = None,
        bounds: Mapping[str, Bound] | None = None,
        fixed: Sequence[str] | None = None,
        hidden: Sequence[int] = (32, 32),
        activation: str = "tanh",
        correction_penalty: float = 1e-3,
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
        max_epochs: int = 300,
        lr: float = 1e-2,
        batch_size: int | None = None,
        validation_fraction: float = 0.0,
        patience: int | None = 60,
        lbfgs_steps: int = 100,
        collocation_steps: int = 300,
        input_interpolation: str = "linear",
        random_state: int | None = 0,
        dtype: str = "float64",
        device: str = "cpu",
        verbose: bool = True,
        warm_start: bool = False,
        checkpoint_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.known = known
        self.params = params
        self.bounds = bounds
        self.fixed = fixed
        self.hidden = hidden
        self.activation = activation
        self.correction_penalty = correction_penalty
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

    def _build_field(self, n_dims: int, n_inputs: int, scaling: Scaling,
                     generator: torch.Generator, dtype: torch.dtype) -> torch.nn.Module:
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}.")
        hidden = tuple(self.hidden)
        if not hidden or not all(isinstance(h, int) and h > 0 for h in hidden):
            raise ConfigError(f"hidden must be a non-empty tuple of positive ints, got {self.hidden!r}.")
        penalty = self.correction_penalty
        if isinstance(penalty, bool) or not isinstance(penalty, int | float | np.number) or not penalty >= 0:
            raise ConfigError(f"correction_penalty must be a non-negative number, got {penalty!r}.")
        spec = self._spec()
        as_t = lambda a: torch.as_tensor(a, dtype=dtype)  # noqa: E731
        net = MLPField(n_dims, n_inputs, hidden, self.activation, False, as_t(scaling.center),
                       as_t(scaling.spread), as_t(scaling.input_center), as_t(scaling.input_spread),
                       scaling.time_unit, generator, dtype)
        field = HybridField(self.known, spec.initial, spec.bounds, spec.fixed_names, net, dtype)
        with torch.no_grad():
            probe_function(self.known, "known", self._probe_args(n_dims, n_inputs, scaling, dtype, field.params()),
                           (2, n_dims), "known(t, x, p, u)")
        return field

    # -- the correction penalty ------------------------------------------------------
    def _fit(self, data: Trajectories) -> None:
        rows = [interpolate_missing(tr.t, tr.y) for tr in data]
        x = np.concatenate(rows)
        dims = np.zeros((x.shape[0], data.n_states + self.n_augment))
        dims[:, : data.n_states] = x
        u = np.concatenate([tr.u for tr in data]) if data.n_inputs else None
        t = np.concatenate([tr.t for tr in data])
        self._penalty_points = (t, dims, u)
        try:
            super()._fit(data)
        finally:
            del self._penalty_points

    def _field_penalty(self) -> torch.Tensor | None:
        if not self.correction_penalty:
            return None
        points = getattr(self, "_penalty_points", None)
        if points is None:
            return None
        dtype = self.torch_dtype_
        device = self.rhs_.center.device  # the training device
        t, x, u = (None if a is None else torch.as_tensor(a, dtype=dtype, device=device) for a in points)
        field: HybridField = self.rhs_.field
        scale = field.network.time_unit / field.network.spread
        return float(self.correction_penalty) * (field.correction(t, x, u) * scale).pow(2).mean()

    def _collocation_warm_start(self, data: Trajectories, train_rows: list[int]) -> list[np.ndarray]:
        """Scale the correction to what the known part leaves unexplained, then the base warm start.

        The correction network's output is multiplied per state by the RMS of (smoothed
        derivative - known part) over the data, in units of the state's spread per
        characteristic time, so that a residual of, e.g., ``prey * predator`` (tens of
        units) does not need huge output weights.
        """
        field: HybridField = self.rhs_.field
        dtype = self.torch_dtype_
        n_obs = data.n_states
        residual_sq, count = np.zeros(n_obs), np.zeros(n_obs)
        lam = self._smoothing_strengths(data, train_rows)
        for tr, n in zip(data, train_rows):
            sm = smooth_trajectory(tr.t[:n], tr.y[:n], lam)
            rows = np.isfinite(sm.values).all(axis=1)
            if rows.sum() < 1:
                continue
            x = np.zeros((int(rows.sum()), self.n_dims_))
            x[:, :n_obs] = sm.values[rows]
            u = None if tr.u is None else torch.as_tensor(tr.u[:n][rows], dtype=dtype)
            with torch.no_grad():
                known = field.known_part(torch.as_tensor(tr.t[:n][rows], dtype=dtype),
                                         torch.as_tensor(x, dtype=dtype), u).numpy()[:, :n_obs]
            diff = sm.derivatives[rows] - known
            seen = np.isfinite(diff)
            residual_sq += np.where(seen, diff**2, 0.0).sum(axis=0)
            count += seen.sum(axis=0)
        rms = np.sqrt(residual_sq / np.maximum(count, 1))
        unit = self.scaling_.spread[:n_obs] / self.scaling_.time_unit
        ratio = np.where(np.isfinite(rms) & (count > 0), rms / unit, 1.0)
        with torch.no_grad():
            field.correction_scale[:n_obs] = torch.as_tensor(np.clip(ratio, 1e-3, 1e3), dtype=dtype)
        return super()._collocation_warm_start(data, train_rows)

    # -- results -----------------------------------------------------------------------
    def correction(self, x: Any, t: Any = 0.0, u: Any = None) -> np.ndarray:
        """The learned correction term (physical units) at states ``x``.

        Parameters
        ----------
        x : array (n_states,) or (n_points, n_states)
        t : float or array (n_points,)
            Unused by the (autonomous) correction; kept for symmetry with ``vector_field``.
        u : array (n_inputs,) or (n_points, n_inputs), required if fitted with inputs

        Returns
        -------
        array of the same leading shape as ``x``: what the network adds to the known part.
        """
        check_is_fitted(self)
        return self._evaluate_field(self.rhs_.field.correction, x, t, u)
