"""HybridODE: known physics plus a neural-network correction, trained through the solver."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from functools import partial
from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from sysid.errors import ConfigError
from sysid.estimators._parametric import ParametricODE
from sysid.estimators._ode_base import SolverTrainedODE
from sysid.fields import UDE, Hybrid
from sysid.fields import GreyBoxFunction
from sysid.training import Training


class HybridODE(ParametricODE):
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

    default_parts = {**SolverTrainedODE.default_parts, "field": Hybrid,
                     "training": partial(Training, max_epochs=300, lbfgs_steps=100)}
    _aliases = ("known", "params")

    def __init__(self, known: GreyBoxFunction | None = None, params: Mapping[str, float] | None = None, /,
                 **options: Any) -> None:
        names = self._aliases
        if "networks" in options and options.get("field") is None:  # neural terms inside f: a UDE
            options["field"], names = UDE(), ("f", "params")
        aliases = {k: v for k, v in zip(names, (known, params)) if v is not None}
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
            raise ConfigError("correction() is the additive network of HybridODE(known, params); this model's "
                              "networks sit inside your equations (a UDE): evaluate them as model.field_.networks[name].")
        return self._evaluate_field(self.rhs_.field.correction, x, t, u)

    # -- model files -------------------------------------------------------------------
    def _set_fitted_state(self, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        super()._set_fitted_state(state, tensors)
        self._read_params()


# Introspection (help(), scikit-learn's checks) sees the estimator's parameters; the positional
# aliases are documented in the docstring, not parameters (get_params never lists them).
HybridODE.__init__.__signature__ = inspect.signature(SolverTrainedODE.__init__)  # type: ignore[attr-defined]
