"""A multilayer perceptron vector field with the data's scaling built in."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import Any, ClassVar

import numpy as np
import torch

from sysid.errors import DataError
from sysid.fields._scaling import Scaling
from sysid.fields._spec import FieldContext, FieldSpec, Points

ACTIVATIONS = {
    "tanh": torch.nn.Tanh,
    "relu": torch.nn.ReLU,
    "elu": torch.nn.ELU,
    "softplus": torch.nn.Softplus,
    "silu": torch.nn.SiLU,
    "gelu": torch.nn.GELU,
}


def make_network(
    widths: Sequence[int],
    activation: str,
    generator: torch.Generator | None,
    dtype: torch.dtype,
    output_gain: float = 0.1,
) -> torch.nn.Sequential:
    """A multilayer perceptron with layer widths ``widths`` (inputs first, outputs last).

    Weights and biases start uniform in +-1/sqrt(fan-in) (PyTorch's default, drawn from
    ``generator``); the last layer's weights are multiplied by ``output_gain`` and its
    biases are zero, so a new field is slow and trajectories start almost still.

    Examples
    --------
    >>> net = make_network([3, 8, 2], "tanh", torch.Generator().manual_seed(0), torch.float64)
    >>> net(torch.zeros(5, 3, dtype=torch.float64)).shape
    torch.Size([5, 2])
    """
    layers: list[torch.nn.Module] = []
    for i, (w_in, w_out) in enumerate(pairwise(widths)):
        linear = torch.nn.Linear(w_in, w_out, dtype=dtype)
        bound = 1.0 / w_in**0.5
        with torch.no_grad():
            linear.weight.uniform_(-bound, bound, generator=generator)
            linear.bias.uniform_(-bound, bound, generator=generator)
            if i == len(widths) - 2:  # start near a slow field: trajectories begin almost still
                linear.weight.mul_(output_gain)
                linear.bias.zero_()
        layers.append(linear)
        if i < len(widths) - 2:
            layers.append(ACTIVATIONS[activation]())
    return torch.nn.Sequential(*layers)


class MLPField(torch.nn.Module):
    """dx/dt = (spread / time_unit) * net((x - center) / spread, scaled u, t / time_unit).

    The network sees states of order one and returns derivatives of order one per unit
    of the characteristic time, whatever units the user measured in.

    Parameters
    ----------
    n_dims : int
        State dimension (observed states plus augmented ones).
    n_inputs : int
        Number of exogenous inputs fed to the network.
    hidden : sequence of int
        Hidden layer widths.
    activation : str
        One of ``ACTIVATIONS``.
    time_dependent : bool
        Whether t is a network input (a non-autonomous field).
    scaling : Scaling, optional
        The data's centres and spreads (states, inputs) and time unit; none: 0, 1, 1.
    generator : torch.Generator
        Seeds the weight initialisation.

    Examples
    --------
    >>> import torch
    >>> f = MLPField(2, hidden=(8,), generator=torch.Generator().manual_seed(0))
    >>> f(torch.zeros(3), torch.zeros(3, 2), None).shape
    torch.Size([3, 2])
    """

    # Buffers (registered in __init__), declared for type checkers.
    center: torch.Tensor
    spread: torch.Tensor
    input_center: torch.Tensor
    input_spread: torch.Tensor
    input_floor: torch.Tensor
    input_ceiling: torch.Tensor
    time_unit: torch.Tensor

    #: Whether the network reads inputs clipped to their training range (:meth:`network`); the plain
    #: network has no other part to carry an input beyond it, so it reads them as they are.
    holds_inputs: ClassVar[bool] = False

    def __init__(
        self,
        n_dims: int,
        n_inputs: int = 0,
        hidden: Sequence[int] = (64, 64),
        activation: str = "tanh",
        time_dependent: bool = False,
        scaling: Scaling | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
        output_gain: float = 0.1,
    ) -> None:
        super().__init__()
        self.n_dims, self.n_inputs, self.time_dependent = n_dims, n_inputs, time_dependent
        widths = [n_dims + n_inputs + int(time_dependent), *hidden, n_dims]
        self.net = make_network(widths, activation, generator, dtype, output_gain)
        if scaling is None:
            scaling = Scaling.identity(n_dims, n_inputs)
        as_t = lambda a: torch.as_tensor(a, dtype=dtype)  # noqa: E731
        self.register_buffer("center", as_t(scaling.center))
        self.register_buffer("spread", as_t(scaling.spread))
        self.register_buffer("input_center", as_t(scaling.input_center))
        self.register_buffer("input_spread", as_t(scaling.input_spread))
        self.register_buffer("time_unit", torch.tensor(float(scaling.time_unit), dtype=dtype))
        # The scaled inputs' training range, which the network reads inputs clipped to (not saved: files
        # rebuild it from the scaling they store).
        self.register_buffer("input_floor", torch.full((n_inputs,), -math.inf, dtype=dtype), persistent=False)
        self.register_buffer("input_ceiling", torch.full((n_inputs,), math.inf, dtype=dtype), persistent=False)
        self.clip_inputs = False
        self.set_input_range(scaling)

    def set_input_range(self, scaling: Scaling) -> None:
        """Read inputs clipped to ``scaling.input_range`` (when :attr:`holds_inputs`; None or NaN: unclipped).

        Called at construction, and again when a warm start meets inputs beyond the first fit's range.
        """
        n_inputs = self.input_floor.shape[0]
        low, high = np.full((2, n_inputs), np.nan) if scaling.input_range is None else scaling.input_range
        with np.errstate(invalid="ignore"):
            floor = np.nan_to_num((low - scaling.input_center) / scaling.input_spread, nan=-np.inf)
            ceiling = np.nan_to_num((high - scaling.input_center) / scaling.input_spread, nan=np.inf)
        with torch.no_grad():
            self.input_floor.copy_(torch.as_tensor(floor))
            self.input_ceiling.copy_(torch.as_tensor(ceiling))
        self.clip_inputs = self.holds_inputs and bool(np.isfinite(floor).any() or np.isfinite(ceiling).any())

    @property
    def uses_time(self) -> bool:
        """Whether t is read (``time_dependent``); an autonomous field accepts ``t=None``."""
        return self.time_dependent

    def forward(self, t: torch.Tensor, x: torch.Tensor, u: torch.Tensor | None) -> torch.Tensor:
        """dx/dt (batch, n_dims) at times t (batch,), states x (batch, n_dims), inputs u."""
        return self.scaled_forward(t, (x - self.center) / self.spread, u) * self.spread

    def scaled_forward(self, t: torch.Tensor, z: torch.Tensor, u: torch.Tensor | None) -> torch.Tensor:
        """d z/dt for the scaled state z = (x - center) / spread (the solver's own variable).

        :class:`sysid.integration.BatchedField` calls this directly when its scaling is
        the field's, skipping a round trip through physical units on every evaluation.
        """
        return self.network(t, z, self.scaled_inputs(u) if self.n_inputs else None)

    def network(self, t: torch.Tensor, z: torch.Tensor, v: torch.Tensor | None) -> torch.Tensor:
        """The network's d z/dt at scaled states z and already scaled inputs v (None without inputs).

        With :attr:`holds_inputs` (a field with a linear part, :class:`~sysid.fields.LinearMLPField`)
        the network reads each input clipped to its range in the training data: beyond it, the
        network's share of the field is held at its value at the edge and the field follows the
        input like its linear part.
        """
        parts = [z]
        if v is not None:
            parts.append(torch.clamp(v, self.input_floor, self.input_ceiling) if self.clip_inputs else v)
        if self.time_dependent:
            parts.append((t / self.time_unit).reshape(-1, 1).expand(z.shape[0], 1))
        inputs = parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
        return self.net(inputs) / self.time_unit

    def network_output(self, t: torch.Tensor, x: torch.Tensor, u: torch.Tensor | None) -> torch.Tensor:
        """The network's own output at physical states x (batch, n_dims): d z/dt in state spreads per time unit.

        For a :class:`~sysid.fields.LinearMLPField` this is the network's share of the field
        alone, without the linear part (what ``LinearMLP(network_penalty=...)`` penalises).
        """
        z = (x - self.center) / self.spread
        return self.network(t, z, self.scaled_inputs(u) if self.n_inputs else None) * self.time_unit

    def scaled_inputs(self, u: torch.Tensor | None) -> torch.Tensor:
        """Inputs (batch, n_inputs) scaled to order one (only for a field with inputs)."""
        return scale_inputs(u, self.input_center, self.input_spread)


def scale_inputs(u: torch.Tensor | None, center: torch.Tensor, spread: torch.Tensor) -> torch.Tensor:
    """``(u - center) / spread`` for a field that reads inputs; u=None is a DataError."""
    if u is None:
        raise DataError(f"this field reads {center.shape[0]} input(s) but was called with u=None; pass the inputs.")
    return (u - center) / spread


class MLP(FieldSpec[MLPField]):
    """A multilayer perceptron field (:class:`MLPField`): the Neural ODE's black box.

    The network sees states and inputs scaled to order one and returns derivatives per
    unit of the data's characteristic time, whatever units the data were measured in.

    Parameters
    ----------
    hidden : tuple of int, default (64, 64)
        Hidden layer widths.
    activation : str, default "tanh"
        One of "tanh", "relu", "elu", "softplus", "silu", "gelu".
    time_dependent : bool, default False
        Feed time to the network (a non-autonomous field).
    weight_decay : float, default 0.0
        L2 penalty on the network's weight matrices, added to the training loss of every
        stage: ``weight_decay * sum(W**2)`` (biases are not penalised; the loss is a mean
        squared error in units of each state's spread).

    Examples
    --------
    >>> import sysid
    >>> sysid.NeuralODE(field=MLP(hidden=(32, 32))).get_params()["field__hidden"]
    (32, 32)
    """

    #: The torch module :meth:`build` makes (a subclass may build another of the same signature).
    module_class: type[MLPField] = MLPField

    #: One observed value per 100 weights: the default 64x64 network on 2 states wants 45 values
    #: (a record of 3 rows warns, 3 runs of 60 samples do not).
    observations_per_parameter = 0.01

    def __init__(
        self,
        *,
        hidden: Sequence[int] = (64, 64),
        activation: str = "tanh",
        time_dependent: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        self.hidden = hidden
        self.activation = activation
        self.time_dependent = time_dependent
        self.weight_decay = weight_decay

    def check(self) -> None:
        self._choice("activation", tuple(sorted(ACTIVATIONS)))
        check_widths(self, "hidden")
        self._flag("time_dependent")
        if not math.isfinite(self._number("weight_decay", low=0.0) or 0.0):
            raise self._fail("weight_decay", "a finite non-negative number")

    def penalty(self, module: MLPField, points: Points | None) -> torch.Tensor | None:
        if not self.weight_decay:
            return None
        weights = [layer.weight for layer in module.net if isinstance(layer, torch.nn.Linear)]
        return float(self.weight_decay) * torch.stack([w.pow(2).sum() for w in weights]).sum()

    def build(self, context: FieldContext) -> MLPField:
        self.check()
        return self.module_class(
            context.n_dims,
            context.n_inputs,
            tuple(int(h) for h in self.hidden),
            self.activation,
            self.time_dependent,
            context.scaling,
            context.generator,
            context.dtype,
        )


def check_widths(part: FieldSpec[Any], name: str) -> tuple[int, ...]:
    """``part.<name>`` as a non-empty tuple of positive layer widths, or a ConfigError."""
    value = getattr(part, name)
    try:
        widths = tuple(value)
    except TypeError:
        raise part._fail(name, "a non-empty tuple of positive ints such as (64, 64)") from None
    if not widths or not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in widths):
        raise part._fail(name, "a non-empty tuple of positive ints such as (64, 64)")
    return widths
