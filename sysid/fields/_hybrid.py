"""Hybrid vector field: known physics plus a neural-network correction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from sysid.errors import ConfigError
from sysid.fields._greybox import (
    Bound,
    GreyBox,
    GreyBoxFunction,
    ParameterTransform,
    check_parameter_spec,
    probe_function,
)
from sysid.fields._mlp import ACTIVATIONS, MLPField, check_widths
from sysid.fields._spec import FieldContext, Points


class HybridField(torch.nn.Module):
    """dx/dt = known(t, x, p, u) + correction(x, u), the correction an :class:`MLPField`.

    Parameters
    ----------
    known : callable ``known(t, x, p, u)``
        The known part of the dynamics in torch operations (as a grey-box ``f``).
    initial, bounds, fixed
        The known part's named parameters, as for
        :class:`~sysid.fields._greybox.ParameterTransform`.
    correction : MLPField
        The learned residual term (physical units in and out), multiplied per state by
        the buffer ``correction_scale`` (default 1).
    dtype : torch dtype

    Examples
    --------
    >>> import torch
    >>> from sysid.fields import MLPField
    >>> def growth(t, x, p, u):
    ...     return p["r"] * x
    >>> net = MLPField(1, hidden=(4,), generator=torch.Generator().manual_seed(0))
    >>> field = HybridField(growth, {"r": 0.5}, correction=net)
    >>> x = torch.tensor([[2.0]], dtype=torch.float64)
    >>> bool(torch.allclose(field(torch.zeros(1), x, None), 1.0 + field.correction(torch.zeros(1), x, None)))
    True
    """

    correction_scale: torch.Tensor  # a buffer

    def __init__(
        self,
        known: GreyBoxFunction,
        initial: Mapping[str, float] | None = None,
        bounds: Mapping[str, Bound] | None = None,
        fixed: Sequence[str] | None = None,
        correction: MLPField | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        if correction is None:
            raise ValueError("HybridField needs a correction network (an MLPField).")
        self.known = known
        self.params = ParameterTransform(dict(initial or {}), bounds, fixed, dtype)
        self.network = correction
        #: Multiplies the network's output per state: set from the size of what the known
        #: part leaves unexplained, so that the network works with outputs of order one.
        self.register_buffer("correction_scale", torch.ones(correction.n_dims, dtype=dtype))
        #: As :attr:`GreyBoxField.groups`: parameter sets per consecutive batch group (the
        #: least-squares Jacobian of the physical parameters, the correction held fixed).
        self.groups: torch.Tensor | None = None

    def correction(self, t: torch.Tensor, x: torch.Tensor, u: torch.Tensor | None) -> torch.Tensor:
        """The learned correction alone (batch, n_dims)."""
        return self.network(t, x, u) * self.correction_scale

    def known_part(self, t: torch.Tensor, x: torch.Tensor, u: torch.Tensor | None) -> torch.Tensor:
        """The known physics alone (batch, n_dims)."""
        if self.groups is not None:
            return self.params.evaluate_grouped(self.known, t, x, u, self.groups)
        return self.known(t, x, self.params(), u)

    def forward(self, t: torch.Tensor, x: torch.Tensor, u: torch.Tensor | None) -> torch.Tensor:
        """dx/dt (batch, n_dims)."""
        return self.known_part(t, x, u) + self.correction(t, x, u)


class Hybrid(GreyBox):
    """Known physics plus a learned correction: dx/dt = known(t, x, p, u) + NN(x, u).

    The known part is written like a grey-box ``f`` with named, optionally bounded or
    fixed parameters; the correction is a small :class:`MLPField`, scaled per state to
    what the known part leaves unexplained on smoothed data. The loss adds
    ``correction_penalty`` times the mean squared correction (scaled units) over the
    training states, so the network only explains what the physics cannot.

    Parameters
    ----------
    known : callable ``known(t, x, p, u) -> tensor``
        The known part, as :class:`GreyBox`'s ``f``. Model files store only its name:
        pass it again to ``sysid.load(path, known=known)``.
    params, bounds, fixed
        The known part's parameters, as for :class:`GreyBox` (``params`` may be empty).
        A free physical parameter that the correction can imitate is not identifiable:
        the penalty then moves it towards the smallest correction. Fix what you know.
    hidden : tuple of int, default (32, 32)
        Hidden widths of the correction network.
    activation : str, default "tanh"
    correction_penalty : float, default 1e-3
        Weight of the mean squared correction in the loss.

    Examples
    --------
    >>> import sysid
    >>> def growth(t, x, p, u):
    ...     return p["r"] * x
    >>> sysid.HybridODE(growth, {"r": 2.0}, hidden=(8,)).get_params()["field__hidden"]
    (8,)
    """

    flags_extrapolation = True  # the correction is a black box
    observations_per_parameter = 0.01  # mostly network weights
    streaming_unsupported = "its correction penalty uses every observation at once"
    function_name = "known"

    def __init__(
        self,
        *,
        known: GreyBoxFunction | None = None,
        params: Mapping[str, float] | None = None,
        bounds: Mapping[str, Bound] | None = None,
        fixed: Sequence[str] | None = None,
        hidden: Sequence[int] = (32, 32),
        activation: str = "tanh",
        correction_penalty: float = 1e-3,
    ) -> None:
        self.known = known
        self.params = params
        self.bounds = bounds
        self.fixed = fixed
        self.hidden = hidden
        self.activation = activation
        self.correction_penalty = correction_penalty

    @property
    def f(self) -> GreyBoxFunction | None:
        """The known part (``GreyBox``'s name for the user's function)."""
        return self.known

    @f.setter
    def f(self, value: GreyBoxFunction | None) -> None:
        self.known = value

    def _checked_known(self, owner: str = "Hybrid") -> GreyBoxFunction:
        if not callable(self.known):
            raise ConfigError(
                f"{owner}: known must be a callable known(t, x, p, u) (the known part, in torch), got "
                f"{type(self.known).__name__}: pass it first, e.g. HybridODE(known, {{'r': 1.0}})."
            )
        return self.known

    def spec(self, owner: str = "Hybrid") -> tuple[dict[str, float], dict[str, Bound], list[str]]:
        self._checked_known(owner)
        return check_parameter_spec(self.params, self.bounds, self.fixed, owner)

    def check(self) -> None:
        self.spec()
        self._choice("activation", tuple(sorted(ACTIVATIONS)))
        check_widths(self, "hidden")
        self._number("correction_penalty", low=0.0)

    def build(self, context: FieldContext) -> HybridField:
        self.check()
        known = self._checked_known()
        initial, bounds, fixed = self.spec()
        net = MLPField(
            context.n_dims,
            context.n_inputs,
            tuple(int(h) for h in self.hidden),
            self.activation,
            False,
            context.scaling,
            context.generator,
            context.dtype,
        )
        field = HybridField(known, initial, bounds, fixed, net, context.dtype)
        t, x, u = context.probe()
        with torch.no_grad():
            probe_function(known, "known", (t, x, field.params(), u), (2, context.n_dims), "known(t, x, p, u)")
        return field

    def needs_points(self) -> bool:
        return bool(self.correction_penalty)

    def penalty(self, module: HybridField, points: Points | None) -> torch.Tensor | None:
        if not self.correction_penalty or points is None:
            return None
        t, x, u = points
        scale = module.network.time_unit / module.network.spread
        return float(self.correction_penalty) * (module.correction(t, x, u) * scale).pow(2).mean()

    def warm_start(
        self, module: HybridField, t: np.ndarray, x: np.ndarray, dx: np.ndarray, u: np.ndarray | None
    ) -> bool:
        """Scale the correction to what the known part leaves unexplained; the collocation fit follows.

        The correction's output is multiplied per state by the RMS of (smoothed derivative -
        known part) over the data, in units of the state's spread per characteristic time,
        so that a residual of, e.g., ``prey * predator`` (tens of units) needs no huge weights.
        """
        n_obs = dx.shape[1]
        dtype = module.correction_scale.dtype
        as_t = lambda a: torch.as_tensor(a, dtype=dtype)  # noqa: E731
        with torch.no_grad():
            known = module.known_part(as_t(t), as_t(x), None if u is None else as_t(u)).numpy()[:, :n_obs]
        diff = dx - known
        seen = np.isfinite(diff)
        rms = np.sqrt(np.where(seen, diff**2, 0.0).sum(axis=0) / np.maximum(seen.sum(axis=0), 1))
        network = module.network
        unit = (network.spread[:n_obs] / network.time_unit).numpy()
        ratio = np.where(np.isfinite(rms) & (seen.sum(axis=0) > 0), rms / unit, 1.0)
        with torch.no_grad():
            module.correction_scale[:n_obs] = torch.as_tensor(np.clip(ratio, 1e-3, 1e3), dtype=dtype)
        return False
