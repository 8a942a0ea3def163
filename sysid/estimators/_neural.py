"""NeuralODE: a neural network vector field trained through an adaptive ODE solver."""

from __future__ import annotations

import os

from collections.abc import Sequence
from typing import Any

import torch

from sysid.errors import ConfigError
from sysid.estimators._ode_base import Scaling, SolverTrainedODE
from sysid.fields import MLPField
from sysid.fields._mlp import ACTIVATIONS


class NeuralODE(SolverTrainedODE):
    """Learn dx/dt = f(x, u, t; theta) with a neural network, from irregular noisy trajectories.

    The field is a multilayer perceptron, integrated with a torchdiffeq solver and
    trained by multiple shooting: every trajectory is cut into short segments of
    ``segment_length`` sample intervals, all segments of all trajectories are solved
    together in one batch, each segment starts from a learned state, and a continuity
    penalty ties consecutive segments into one trajectory. The first segment's start
    is the trajectory's learned initial condition ``x0_``. Early stopping and
    restore-best use the free-run error of whole trajectories simulated from ``x0_``.

    Parameters
    ----------
    hidden : tuple of int, default (64, 64)
        Hidden layer widths of the network.
    activation : str, default "tanh"
        One of "tanh", "relu", "elu", "softplus", "silu", "gelu".
    solver : str, default "dopri5"
        torchdiffeq method.
    rtol, atol : float, default None (1e-4, 1e-6)
        Tolerances on the internally scaled state (order one): solver errors 100 times
        below a 1% measurement noise, at a third of the cost of 1e-6 / 1e-8.
    solver_options : dict, optional
        Extra torchdiffeq options (``max_num_steps``, ``step_size`` for fixed solvers...).
    gradient : {"adjoint", "backprop"}, default "adjoint"
        Adjoint sensitivities (``torchdiffeq.odeint_adjoint``) or backpropagation
        through the solver's steps.
    learn_x0 : bool, default True
        Learn each trajectory's initial state (else use its first observation).
    learn_time : {None, "scale", "offset", "both"}, default None
        Learn each trajectory's clock rate relative to the first (an unknown sampling
        interval), and/or a time offset (read inputs and explicit time shifted).
    n_augment : int, default 0
        Extra unobserved state dimensions (partial observation, Dupont et al. 2019).
    time_dependent : bool, default False
        Feed time to the network (a non-autonomous field).
    segment_length : int, default 5
        Sample intervals per shooting segment.
    continuity_weight : float, default 1.0
        Weight of the segment continuity penalty (scaled units).
    max_epochs : int, default 40
        Adam epochs (one epoch = one pass over all segments) before the L-BFGS polish.
    lr : float, default 0.01
        Adam learning rate; decays exponentially to lr/10 over ``max_epochs``.
    batch_size : int or None, default None
        Segments per step; None means all segments in one step.
    validation_fraction : float, default 0.0
        Hold out this fraction of each trajectory's time span (its tail) and stop on
        the extrapolation error there; 0 monitors the free-run error on the training data.
    patience : int or None, default 60
        Epochs without improvement of the validation score before stopping.
    lbfgs_steps : int, default 100
        Iterations of the full-batch L-BFGS polish after Adam, validated every 10
        iterations; stops after two chunks without improvement. Adam finds the basin,
        quasi-Newton steps converge in far fewer solves (see benchmarks/). 0 switches it off.
    collocation_steps : int, default 300
        Adam steps fitting the field to smoothing-spline derivatives of the data
        before any ODE solve (a warm start; 0 switches it off).
    input_interpolation : {"linear", "zoh"}, default "linear"
    random_state : int or None, default 0
        Seeds weight initialisation and batch order: the same seed gives the same fit.
    dtype : {"float64", "float32"}, default "float64"
    device : str, default "cpu"
        Where the solves and the training run: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
        An unavailable device raises ConfigError before the data is read. The fitted model
        is brought back to the CPU (it pickles and loads anywhere); ``predict`` solves on
        the current ``device``.
    verbose : bool, default True
        Show a progress bar.
    warm_start : bool, default False
        Continue from the previous fit's parameters.
    checkpoint_path : str or os.PathLike, optional
        During ``fit``, write the training state (current and best parameters, optimizer
        state, epoch) to this file after every epoch, atomically, in the safe model
        format (safetensors + JSON, no pickle). A new fit with the same path, data and
        settings resumes from it (``max_epochs``, ``patience``, ``lbfgs_steps`` and
        ``verbose`` may change); the file is removed when the fit completes. A file
        written for other data or settings is refused (:class:`~sysid.ConfigError`).

    Attributes
    ----------
    x0_ : array (n_trajectories, n_states + n_augment)
        Learned initial states of the training trajectories (physical units).
    time_scale_, time_offset_ : arrays (n_trajectories,)
    history_ : pandas.DataFrame
        epoch, loss, val_loss, nfe_forward, nfe_backward, lr, seconds.
    n_function_evals_ : int
        Vector-field evaluations during fit (forward and backward).

    Examples
    --------
    >>> import numpy as np, sysid
    >>> t = np.linspace(0, 2, 15)
    >>> y = np.exp(-t)[:, None]
    >>> model = sysid.NeuralODE(hidden=(16,), max_epochs=10, lbfgs_steps=10, verbose=False).fit(y, t=t)
    >>> model.predict(t=t, x0=[1.0]).shape
    (15, 1)
    """

    def __init__(
        self,
        hidden: Sequence[int] = (64, 64),
        activation: str = "tanh",
        solver: str = "dopri5",
        rtol: float | None = None,
        atol: float | None = None,
        solver_options: dict[str, Any] | None = None,
        gradient: str = "adjoint",
        learn_x0: bool = True,
        learn_time: str | None = None,
        n_augment: int = 0,
        time_dependent: bool = False,
        segment_length: int = 5,
        continuity_weight: float = 1.0,
        max_epochs: int = 40,
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
        self.hidden = hidden
        self.activation = activation
        self.solver = solver
        self.rtol = rtol
        self.atol = atol
        self.solver_options = solver_options
        self.gradient = gradient
        self.learn_x0 = learn_x0
        self.learn_time = learn_time
        self.n_augment = n_augment
        self.time_dependent = time_dependent
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
        as_t = lambda a: torch.as_tensor(a, dtype=dtype)  # noqa: E731
        return MLPField(
            n_dims, n_inputs, hidden, self.activation, self.time_dependent,
            as_t(scaling.center), as_t(scaling.spread), as_t(scaling.input_center),
            as_t(scaling.input_spread), scaling.time_unit, generator, dtype,
        )

    def to_equations(self, library: str = "polynomial", degree: int = 2, threshold: float = 0.05,
                     n_samples: int = 2000, random_state: int | None = 0, **options: Any) -> Any:
        """Read the learned black-box field as sparse equations; see :func:`sysid.distill`.

        The field is sampled over the region the training data covered and a sparse
        pysindy regression is fitted to it, so the result is only as trustworthy as the
        field there. Returns an object with ``coefficients_`` and ``equations()``.
        """
        from sysid.estimators._distill import distill

        return distill(self, library=library, degree=degree, threshold=threshold, n_samples=n_samples,
                       random_state=random_state, **options)
