"""HybridODE: known physics plus a neural-network correction, trained through the solver."""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from sysid.errors import ConfigError, FitWarning
from sysid.estimators._ode_base import SolverTrainedODE
from sysid.estimators._parametric import ParametricODE
from sysid.fields import UDE, GreyBoxFunction, Hybrid
from sysid.integration import SolverFailure, simulate
from sysid.parameters import ParameterSpec, ParametricResults, Uncertainty, warning_stacklevel
from sysid.training import Training
from sysid.trajectories import Trajectories

ABSORBED = 0.99
"""A parameter is flagged when the networks can reproduce this share of its effect (see :func:`network_overlap`)."""
TANGENT_TOLERANCE = 1e-3
"""Weight directions whose effect on the field is below this share of the strongest are not counted."""
_MAX_POINTS = 300  # states along the fitted trajectories at which the overlap is computed


class HybridODE(ParametricResults, ParametricODE):
    """Known physics plus a learned correction: dx/dt = known(t, x, p, u) + NN(x, u).

    Use it when part of the dynamics is known (conservation laws, a growth term, the
    forcing) and the rest is not. The known part is written like a grey-box ``f``
    with named, optionally bounded or fixed parameters; the correction is a small
    multilayer perceptron. Both are trained together by multiple shooting through an
    adaptive solver, as :class:`~sysid.NeuralODE` is. The loss adds
    ``correction_penalty`` times the mean squared correction (scaled units) over the
    training states, so the network only explains what the physics cannot.

    **Neural terms inside your equations.** With ``networks=`` the first argument is your
    whole right-hand side ``f(t, x, p, u, nn)``, which calls named networks where a law is
    unknown (a universal differential equation, Rackauckas et al. 2020; the field is a
    :class:`sysid.fields.UDE`)::

        def tank(t, x, p, u, nn):
            return (p["gain"] * u[:, 0] - nn["outflow"](x))[:, None]


        HybridODE(tank, {"gain": 1.0}, networks={"outflow": 1})

    The additive correction above is the special case ``f = known + nn["correction"](x, u)``.

    It is the solver-trained estimator (:class:`~sysid.estimators._ode_base.SolverTrainedODE`,
    whose parameters it takes) with a :class:`sysid.fields.Hybrid` field (``known``,
    ``params``, ``bounds``, ``fixed``, ``hidden=(32, 32)``, ``activation``,
    ``correction_penalty=1e-3``) and ``sysid.Training(max_epochs=300,
    lbfgs_steps=100)``: the full-batch L-BFGS stage after Adam is what brings the network
    from its collocation warm start to a good fit (Adam's first steps tend to throw the
    warm-started network off; the best validated parameters are kept either way).

    **Uncertainty of the physical parameters.** After training, the networks are held at
    their weights and the free parameters and initial states refined by the
    whole-trajectory least squares (at most ``refine_steps`` evaluations); standard errors,
    covariance and intervals come from that fit's Jacobian as for
    :class:`~sysid.GreyBoxODE` (:mod:`sysid.parameters`), *conditional on the networks*.
    A parameter whose effect on the equations the networks can reproduce (share above
    99% of ``df/dp`` along the fitted trajectories in the span of ``df/dw``,
    :func:`network_overlap`) is flagged not identifiable, with a FitWarning: the
    additive correction reads every state, so it can absorb any physical parameter.

    Parameters
    ----------
    known : callable ``known(t, x, p, u) -> tensor``, positional
        The known part in torch operations, as a grey-box ``f``. Model files store only
        its name: pass it again to ``sysid.load(path, known=known)``. With ``networks=``:
        your whole right-hand side ``f(t, x, p, u, nn)`` (``sysid.load(path, f=f)``).
    params : dict of str to float, positional, optional
        The known part's parameters with initial values (fixed ones: their values).
    **options
        The field's ``bounds``, ``fixed``, ``hidden``, ``activation``,
        ``correction_penalty`` (and ``networks``, the UDE's {name: number of outputs});
        any estimator parameter and any parameter of its parts, given flat.

    Attributes
    ----------
    params_ : dict of str to float
        Fitted values of the known part's parameters.
    params_stderr_, covariance_, unidentifiable_, jacobian_condition_, noise_levels_, n_residuals_, dof_
        As for :class:`~sysid.GreyBoxODE`, conditional on the networks.
    residual_variance_, refined_, refine_evaluations_
        As for :class:`~sysid.GreyBoxODE`.
    network_overlap_ : dict of str to float
        Each free parameter's share of effect that the networks can reproduce (flagged above 0.99).
    x0_, time_scale_, time_offset_, history_, n_function_evals_
        As for :class:`~sysid.NeuralODE`.

    Examples
    --------
    >>> import numpy as np
    >>> def growth(t, x, p, u):
    ...     return p["r"] * x
    >>> t = np.linspace(0, 1, 12)
    >>> y = (1.0 / (1.0 + np.exp(-2.0 * t)))[:, None]  # logistic: known growth + saturation
    >>> model = HybridODE(
    ...     growth,
    ...     {"r": 2.0},
    ...     fixed=["r"],
    ...     hidden=(8,),
    ...     max_epochs=5,
    ...     lbfgs_steps=10,
    ...     gradient="backprop",
    ...     verbose=False,
    ... ).fit(y, t=t)
    >>> model.correction([[0.9]]).shape
    (1, 1)
    """

    default_parts: ClassVar[dict[str, Any]] = {
        **SolverTrainedODE.default_parts,
        "field": Hybrid,
        "training": partial(Training, max_epochs=300, lbfgs_steps=100),
    }
    _aliases = ("known", "params")
    _poor_free_run_advice = (
        "Check the known equations, the parameters' start values and their bounds; a larger network (hidden=), a "
        "smaller correction_penalty or a longer training (max_epochs, lbfgs_steps) lets the correction learn more. "
        "See docs/interpretable.md, 'HybridODE'."
    )

    def __init__(
        self, known: GreyBoxFunction | None = None, params: Mapping[str, float] | None = None, /, **options: Any
    ) -> None:
        names = self._aliases
        if "networks" in options and options.get("field") is None:  # neural terms inside f: a UDE
            options["field"], names = UDE(), ("f", "params")
        aliases: dict[str, Any] = {k: v for k, v in zip(names, (known, params)) if v is not None}
        super().__init__(**options, **aliases)

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
        if not hasattr(self.rhs_.field, "correction"):
            raise ConfigError(
                "correction() is the additive network of HybridODE(known, params); this model's "
                "networks sit inside your equations (a UDE): evaluate them as "
                "model.field_.networks[name]."
            )
        return self._evaluate_field(self.rhs_.field.correction, x, t, u)

    # -- uncertainty of the physical parameters, conditional on the networks ---------------
    def _after_fit(self, data: Trajectories) -> None:
        super()._after_fit(data)
        if self._least_squares_capable:  # no trainable network left: handled as for GreyBoxODE
            return
        data = self._training_part(data)
        spec = self._spec()
        if not spec.free_names:
            self._clear_uncertainty(spec)
            self.network_overlap_, self.refined_, self.refine_evaluations_ = {}, False, 0
            return
        with self._networks_frozen():
            self.network_overlap_ = self._network_overlap(data, spec)
            self._single_shooting(
                data,
                self._free_values(),
                np.asarray(self.x0_, dtype=float),
                int(self.training_.refine_steps),
                [],
                keep_on_failure=True,
            )

    @contextmanager
    def _networks_frozen(self) -> Iterator[None]:
        """Every trainable tensor but the physical parameters (networks, learned sensor) held fixed."""
        raw = self._parameter_module().raw
        sensor = getattr(self, "sensor_", None)
        held = [
            p
            for p in [*self.rhs_.parameters(), *([] if sensor is None else sensor.parameters())]
            if p.requires_grad and p is not raw
        ]
        for p in held:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p in held:
                p.requires_grad_(True)

    def _network_overlap(self, data: Trajectories, spec: ParameterSpec) -> dict[str, float]:
        """Each free parameter's share of effect on the field that the networks could reproduce.

        Evaluated at states along the fitted trajectories (:func:`network_overlap`);
        NaN when the trajectories cannot be simulated.
        """
        field = self.rhs_.field
        center = self.rhs_.center.detach().cpu().numpy()
        spread = self.rhs_.spread.detach().cpu().numpy()
        z0 = torch.as_tensor((np.asarray(self.x0_, dtype=float) - center) / spread, dtype=self.torch_dtype_)
        try:
            with torch.no_grad():
                paths = simulate(
                    self.rhs_,
                    z0,
                    [tr.t for tr in data],
                    torch.arange(len(data)),
                    self._input_signal(data),
                    self.solver_,
                )
        except SolverFailure:
            return dict.fromkeys(spec.free_names, math.nan)
        states = np.concatenate([center + spread * p.cpu().numpy() for p in paths])
        times = np.concatenate([tr.t for tr in data])
        inputs = np.concatenate([tr.u for tr in data]) if data.n_inputs else None
        keep = np.isfinite(states).all(axis=1)
        if not keep.any():
            return dict.fromkeys(spec.free_names, math.nan)
        rows = np.flatnonzero(keep)
        rows = rows[np.unique(np.linspace(0, rows.size - 1, min(rows.size, _MAX_POINTS)).round().astype(int))]
        dtype = self.torch_dtype_
        weights = self.scaling_.time_unit / spread  # derivatives in scaled units, every dimension alike
        overlap = network_overlap(
            field,
            self._parameter_module(),
            torch.as_tensor(times[rows], dtype=dtype),
            torch.as_tensor(states[rows], dtype=dtype),
            None if inputs is None else torch.as_tensor(inputs[rows], dtype=dtype),
            weights,
        )
        return dict(zip(spec.free_names, overlap.tolist()))

    def _store_uncertainty(self, spec: ParameterSpec, unc: Uncertainty, noise: Mapping[Hashable, float]) -> None:
        super()._store_uncertainty(spec, unc, noise)
        overlap = getattr(self, "network_overlap_", {})
        absorbed = [n for n in spec.free_names if overlap.get(n, 0.0) > ABSORBED and n not in self.unidentifiable_]
        if not absorbed:
            return
        cov = self.covariance_.to_numpy().copy()
        for name in absorbed:
            i = spec.free_names.index(name)
            cov[i, :], cov[:, i], cov[i, i] = np.nan, np.nan, np.inf
            self.params_stderr_[name] = math.inf
        self.covariance_.loc[:, :] = cov
        self.unidentifiable_ = [n for n in spec.free_names if n in set(self.unidentifiable_) | set(absorbed)]
        shares = ", ".join(f"{n} {overlap[n]:.1%}" for n in absorbed)
        warnings.warn(
            f"{type(self).__name__}: {absorbed} are not identifiable: the networks can reproduce their effect on "
            f"the equations along the fitted trajectories ({shares}), so the data cannot tell them apart from the "
            "networks and their values are set by the correction penalty and the start values. Their standard "
            "errors are set to inf. Fix them (fixed=[...]), or keep the state that carries them out of the "
            "networks' inputs.",
            FitWarning,
            stacklevel=warning_stacklevel(),
        )

    # -- model files -------------------------------------------------------------------
    _FIT_JSON: ClassVar[tuple[str, ...]] = ("refined_", "refine_evaluations_", "network_overlap_")

    def _fitted_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        state, tensors = SolverTrainedODE._fitted_state(self)
        state.update(self._results_state())
        state.update({name: getattr(self, name, None) for name in self._FIT_JSON})
        state["network_overlap_"] = dict(getattr(self, "network_overlap_", {}))
        return state, tensors

    def _set_fitted_state(self, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        SolverTrainedODE._set_fitted_state(self, state, tensors)
        self._read_params()
        spec = self._spec()
        if "params_stderr_" not in state:  # a file written before HybridODE reported uncertainties
            self._clear_uncertainty(spec)
            self.refined_, self.refine_evaluations_, self.network_overlap_ = False, 0, {}
            return
        self._set_results_state(state, spec)
        self.refined_ = bool(state.get("refined_", False))
        self.refine_evaluations_ = int(state.get("refine_evaluations_") or 0)
        self.network_overlap_ = {k: float(v) for k, v in (state.get("network_overlap_") or {}).items()}


def network_overlap(
    field: torch.nn.Module, params: Any, t: torch.Tensor, x: torch.Tensor, u: torch.Tensor | None, weights: np.ndarray
) -> np.ndarray:
    """Share of each physical parameter's effect on the field that the networks' weights can reproduce.

    A free parameter ``p`` changes the field by ``F_p = df/dp`` at the states ``x``; the
    networks' weights ``w`` change it along the columns of ``F_w = df/dw`` (their tangent
    space). When ``F_p`` lies in the span of ``F_w`` at every state the model visits, a
    change of ``p`` can be undone by the networks to first order, everywhere along the
    trajectories, so no data can separate them: the residual Jacobian with the networks
    free would have a null direction. The share is ``|P F_p|^2 / |F_p|^2`` with ``P``
    the projection on the span of ``F_w``'s singular directions above
    :data:`TANGENT_TOLERANCE` of the largest (directions a network can follow only with
    very large weight changes are not counted); rows are weighted per dimension by
    ``weights``. Both Jacobians come from autograd, the parameters' with respect to their
    unconstrained values (a share does not depend on a column's scale).

    Returns
    -------
    array (n_free,) of shares in [0, 1] (NaN where ``F_p`` is zero).
    """
    n, n_dims = x.shape
    raw = params.raw
    named = dict(field.named_parameters())
    raw_name = next(k for k, v in named.items() if v is raw)
    others = [k for k in named if k != raw_name]
    if not others:
        return np.zeros(raw.numel())

    def outputs(*values: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(field, dict(zip([raw_name, *others], values)), (t, x, u)).reshape(-1)

    start = tuple(named[k].detach() for k in [raw_name, *others])
    try:
        jac = torch.autograd.functional.jacobian(outputs, start, vectorize=True)
    except RuntimeError:  # a user's f that vmap cannot batch: one backward pass per row
        jac = torch.autograd.functional.jacobian(outputs, start)
    row_w = np.tile(np.asarray(weights, dtype=float), n)[:, None]
    f_p = jac[0].reshape(n * n_dims, -1).detach().cpu().numpy() * row_w
    f_w = torch.cat([j.reshape(n * n_dims, -1) for j in jac[1:]], dim=1).detach().cpu().numpy() * row_w
    u_w, sing, _ = np.linalg.svd(f_w, full_matrices=False)
    basis = u_w[:, sing > TANGENT_TOLERANCE * sing[0]] if sing.size and sing[0] > 0 else u_w[:, :0]
    explained = np.linalg.norm(basis.T @ f_p, axis=0) ** 2
    total = np.linalg.norm(f_p, axis=0) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, np.clip(explained / total, 0.0, 1.0), np.nan)
