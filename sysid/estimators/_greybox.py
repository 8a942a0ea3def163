"""GreyBoxODE: the user's own equations with named, bounded parameters, fitted through the solver."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from sysid.errors import ConfigError
from sysid.estimators._ode_base import Scaling
from sysid.estimators._parametric import ParametricODE
from sysid.fields._greybox import Bound, GreyBoxField, GreyBoxFunction
from sysid.parameters._results import ParametricResults


def probe_function(f: Any, name: str, args: tuple[Any, ...], expected: tuple[int, int], signature: str) -> None:
    """Call the user's function once on a probe batch; raise ConfigError on any problem."""
    if not callable(f):
        raise ConfigError(f"{name} must be a callable {signature}, got {type(f).__name__}.")
    try:
        out = f(*args)
    except KeyError as exc:
        known = sorted(args[2]) if len(args) > 2 and isinstance(args[2], dict) else []
        raise ConfigError(
            f"{name}{signature[signature.index('('):]} looked up parameter {exc.args[0]!r}, which is not in "
            f"params {known}; add it to params (with an initial value)."
        ) from None
    except Exception as exc:  # noqa: BLE001 - reported with context
        raise ConfigError(
            f"calling {name}{signature[signature.index('('):]} on a probe batch x of shape {expected} "
            f"({expected[0]} points of {expected[1]} state(s), batch first) raised {type(exc).__name__}: {exc}"
            + (f". Does {name} expect another number of states than the data's {expected[1]}?"
               if isinstance(exc, IndexError) else "")
        ) from exc
    if not isinstance(out, torch.Tensor):
        hint = " (stack columns with torch.stack([...], dim=-1))" if isinstance(out, list | tuple) else ""
        raise ConfigError(
            f"{name} must return a torch tensor of shape (batch, n_states) = {expected}, got "
            f"{type(out).__name__}{hint}."
        )
    if tuple(out.shape) != expected:
        raise ConfigError(
            f"{name} returned shape {tuple(out.shape)} for a probe batch of x with shape {expected}; "
            f"expected {expected} (one derivative per state, batch first)."
        )
    if not torch.isfinite(out).all():
        raise ConfigError(
            f"{name} returned non-finite values at the data's mean state (probe x={args[1][0].tolist()}): "
            f"{out[0].tolist()}."
        )


class GreyBoxODE(ParametricResults, ParametricODE):
    """Fit the parameters of your own ODE, dx/dt = f(t, x, p, u), with uncertainties.

    The equations are yours; sysid integrates them with an adaptive torchdiffeq solver.
    By default (``optimizer="least_squares"``) the free parameters and each
    trajectory's initial state are fitted by trust-region Gauss-Newton
    (:func:`scipy.optimize.least_squares`, bounds kept exactly), with residuals and
    Jacobian from one batched solve per evaluation, in three stages: collocation on
    smoothing-spline derivatives (no solver), multiple shooting (segments with free
    start states, which avoids the local minima that single shooting falls into, e.g.
    on Lotka-Volterra from 50% off), then single shooting of whole trajectories,
    repeated once with each state's residuals weighted by its estimated noise level.
    ``optimizer="adam"`` trains by gradient descent instead (as :class:`~sysid.NeuralODE`
    does, bounds kept by smooth transforms), then refines by single shooting.

    After the fit, standard errors and confidence intervals come from the Gauss-Newton
    approximation at the optimum: with r the weighted residuals (simulated minus
    observed over every observed entry, divided by the state's noise level) and J their
    Jacobian with respect to the free parameters (natural units) and the initial
    states, cov = s^2 (J^T J)^-1 with s^2 = |r|^2 / (n - q). Parameters that the data
    cannot separate (J near rank-deficient) are named in a :class:`~sysid.FitWarning`
    and get infinite standard errors. ``confidence_intervals(method="profile",
    data=...)`` gives profile-likelihood intervals where the model is too nonlinear
    for the linearisation. See :mod:`sysid.parameters`.

    Parameters
    ----------
    f : callable ``f(t, x, p, u) -> tensor``
        The right-hand side in torch operations: t (batch,), x (batch, n_states)
        physical states, p a dict of scalar tensors by parameter name, u (batch,
        n_inputs) or None. Returns dx/dt of x's shape. Model files store only its
        name: pass it again to ``sysid.load(path, f=f)``.
    params : dict of str to float
        Every parameter with its start value (the value of a fixed one).
    bounds : dict of str to (low, high), optional
        Closed bounds, ``None`` for an open side: ``{"k": (0, None)}``. A start on a
        bound is allowed (see :func:`sysid.parameters.check_parameters`).
    fixed : list of str, optional
        Parameters held at their value in ``params``.
    refine_steps : int, default 20
        With ``optimizer="adam"``: at most this many residual evaluations of the
        single-shooting least squares after training (0 keeps the trained estimate).
    optimizer : {"least_squares", "adam"}, default "least_squares"
        How the parameters are fitted (above). With ``"least_squares"``,
        ``max_epochs`` caps the residual evaluations of each shooting stage and
        ``collocation_steps`` those of the collocation stage; ``gradient``, ``lr``,
        ``batch_size``, ``patience`` and ``lbfgs_steps`` are not used, and
        ``learn_time`` must be None.
    solver, rtol, atol, solver_options, gradient, learn_x0, learn_time, n_augment, \
segment_length, continuity_weight, max_epochs, lr, batch_size, validation_fraction, \
patience, lbfgs_steps, collocation_steps, input_interpolation, random_state, dtype, \
device, verbose, warm_start, checkpoint_path
        As for :class:`~sysid.NeuralODE`. With ``optimizer="adam"`` a unit step of a
        parameter's raw value is a relative change (for an unbounded parameter, of
        its start magnitude), so ``lr`` is a relative step size.

    Attributes
    ----------
    params_ : dict of str to float
        Fitted values of every parameter (fixed ones included).
    params_stderr_ : dict of str to float
        Standard errors (0 for fixed parameters, inf if not identifiable).
    covariance_ : pandas.DataFrame
        Covariance of the free parameters.
    jacobian_condition_ : float
        Condition number of the column-normalised residual Jacobian.
    unidentifiable_ : list of str
        Parameters flagged as not identifiable.
    noise_levels_ : dict of str to float
        Each state's estimated noise level (its residuals' weight is the inverse).
    n_residuals_, dof_ : int
        Observed entries used, and n - q.
    residual_variance_ : float
        s^2 (close to 1 when the model fits to the noise level).
    refined_ : bool
        Whether the single-shooting least squares ran.
    refine_evaluations_ : int
        Its residual evaluations.
    x0_, time_scale_, time_offset_, history_, n_function_evals_
        As for :class:`~sysid.NeuralODE`; with least squares ``history_`` has one
        row per stage and ``n_function_evals_`` counts batched evaluations.

    Examples
    --------
    >>> import numpy as np
    >>> def decay(t, x, p, u):
    ...     return -p["k"] * x
    >>> t = np.linspace(0, 2, 20)
    >>> y = (3.0 * np.exp(-0.8 * t))[:, None]
    >>> model = GreyBoxODE(decay, {"k": 0.3}, bounds={"k": (0, None)}, verbose=False).fit(y, t=t)
    >>> round(model.params_["k"], 3)
    0.8
    >>> model.confidence_intervals().columns.tolist()
    ['estimate', 'stderr', 'lower', 'upper', 'status']
    """

    _flags_extrapolation = False  # the equations are the user's: valid as far as the user says

    _required_parameters = ["f", "params"]  # for scikit-learn's constructor checks

    def __init__(
        self,
        f: GreyBoxFunction,
        params: Mapping[str, float],
        bounds: Mapping[str, Bound] | None = None,
        fixed: Sequence[str] | None = None,
        refine_steps: int = 20,
        optimizer: str = "least_squares",
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
        self.f = f
        self.params = params
        self.bounds = bounds
        self.fixed = fixed
        self.refine_steps = refine_steps
        self.optimizer = optimizer
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
        spec = self._spec()
        field = GreyBoxField(self.f, spec.initial, spec.bounds, spec.fixed_names, dtype)
        with torch.no_grad():
            probe_function(self.f, "f", self._probe_args(n_dims, n_inputs, scaling, dtype, field.params()),
                           (2, n_dims), "f(t, x, p, u)")
        return field

