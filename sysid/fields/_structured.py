"""A structured field: one small network per equation, each reading only the variables it may."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from sysid.errors import ConfigError
from sysid.fields._mlp import ACTIVATIONS, check_widths, make_network, scale_inputs
from sysid.fields._scaling import Scaling
from sysid.fields._spec import FieldContext, FieldSpec


class StructuredField(torch.nn.Module):
    """dz_i/dt = net_i(the scaled variables equation i reads) / time_unit, one network per state.

    Parameters
    ----------
    reads : list of lists of int
        For each state dimension, the indices it reads in ``[z_0..z_{n-1}, v_0..v_{m-1}]``
        (scaled states, then scaled inputs).
    n_inputs : int
    hidden, activation
        Each equation's network.
    scaling : Scaling
    generator : torch.Generator
    dtype : torch dtype

    Examples
    --------
    >>> import torch
    >>> from sysid.fields import Scaling
    >>> f = StructuredField([[0, 2], [0, 1]], 1, (4,), "tanh", Scaling.identity(2, 1), torch.Generator(), torch.float64)
    >>> f(torch.zeros(3), torch.zeros(3, 2, dtype=torch.float64), torch.ones(3, 1, dtype=torch.float64)).shape
    torch.Size([3, 2])
    """

    uses_time = False

    # Buffers (registered in __init__), declared for type checkers.
    center: torch.Tensor
    spread: torch.Tensor
    input_center: torch.Tensor
    input_spread: torch.Tensor
    time_unit: torch.Tensor

    def __init__(self, reads: Sequence[Sequence[int]], n_inputs: int, hidden: Sequence[int], activation: str,
                 scaling: Scaling, generator: torch.Generator | None, dtype: torch.dtype) -> None:
        super().__init__()
        self.n_dims, self.n_inputs = len(reads), n_inputs
        self.reads = [list(r) for r in reads]
        for i, r in enumerate(self.reads):
            self.register_buffer(f"reads_{i}", torch.as_tensor(r, dtype=torch.long))
        self.nets = torch.nn.ModuleList(
            [make_network([len(r), *hidden, 1], activation, generator, dtype) for r in self.reads])
        as_t = lambda a: torch.as_tensor(a, dtype=dtype)  # noqa: E731
        self.register_buffer("center", as_t(scaling.center))
        self.register_buffer("spread", as_t(scaling.spread))
        self.register_buffer("input_center", as_t(scaling.input_center))
        self.register_buffer("input_spread", as_t(scaling.input_spread))
        self.register_buffer("time_unit", torch.tensor(float(scaling.time_unit), dtype=dtype))

    def scaled_forward(self, t: torch.Tensor | None, z: torch.Tensor, u: torch.Tensor | None) -> torch.Tensor:
        """dz/dt for scaled states (the solver's own variable; see :class:`~sysid.integration.BatchedField`)."""
        variables = z
        if self.n_inputs:
            variables = torch.cat([z, scale_inputs(u, self.input_center, self.input_spread)], dim=-1)
        columns = [net(variables[:, getattr(self, f"reads_{i}")]) for i, net in enumerate(self.nets)]
        return torch.cat(columns, dim=-1) / self.time_unit

    def forward(self, t: torch.Tensor | None, x: torch.Tensor, u: torch.Tensor | None) -> torch.Tensor:
        """dx/dt (batch, n_dims), physical units."""
        return self.scaled_forward(t, (x - self.center) / self.spread, u) * self.spread


class Structured(FieldSpec[StructuredField]):
    """One small network per equation, each reading only the states and inputs you declare.

    What a practitioner knows about a system's wiring goes into the model: in the cascaded
    tanks (Forgione and Piga 2021), the upper tank's level changes with its own level and
    the pump, the lower tank's with both levels and nothing else::

        Structured(reads={"upper": ["upper", "pump"], "lower": ["upper", "lower"]})

    Unobserved (augmented) dimensions are named ``aug0``, ``aug1``...: with only the lower
    tank measured, ``n_augment=1`` and ``reads={"aug0": ["aug0", "pump"], "lower": ["aug0", "lower"]}``.

    Parameters
    ----------
    reads : dict of str to list of str
        For every state dimension (observed, then augmented), the names of the states and
        inputs its equation reads. Every dimension needs an entry.
    hidden : tuple of int, default (16, 16)
        Hidden widths of each equation's network.
    activation : str, default "tanh"

    Examples
    --------
    >>> import sysid
    >>> spec = Structured(reads={"x": ["x", "v"], "v": ["x"]})
    >>> sysid.NeuralODE(field=spec).get_params()["field__reads"]
    {'x': ['x', 'v'], 'v': ['x']}
    """

    observations_per_parameter = 0.01

    def __init__(self, *, reads: Mapping[str, Sequence[str]] | None = None, hidden: Sequence[int] = (16, 16),
                 activation: str = "tanh") -> None:
        self.reads = reads
        self.hidden = hidden
        self.activation = activation

    def check(self) -> None:
        self._checked_reads()

    def _checked_reads(self) -> Mapping[str, Sequence[str]]:
        """Check every parameter; the validated ``reads``."""
        if not isinstance(self.reads, Mapping) or not self.reads:
            raise ConfigError(
                "Structured needs reads, a dict {state: [states and inputs its equation reads]}, e.g. "
                f"{{'upper': ['upper', 'pump'], 'lower': ['upper', 'lower']}}; got {self.reads!r}."
            )
        for name, used in self.reads.items():
            if isinstance(used, str) or not isinstance(used, Sequence) or not used:
                raise ConfigError(f"Structured: reads[{name!r}] must be a non-empty list of state or input names, "
                                  f"got {used!r}.")
        self._choice("activation", tuple(sorted(ACTIVATIONS)))
        check_widths(self, "hidden")
        return self.reads

    def index(self, context: FieldContext) -> list[list[int]]:
        """Each dimension's variables as indices into (states..., inputs...), checked against the data."""
        reads = self._checked_reads()
        dims, inputs = context.dim_names, list(context.input_names)
        variables = dims + inputs
        unknown = sorted(set(reads) - set(dims))
        if unknown:
            raise ConfigError(f"Structured: reads has equations for {unknown}, which are not state dimensions of the "
                              f"model {dims} (unobserved ones are named aug0, aug1...).")
        missing = [d for d in dims if d not in reads]
        if missing:
            raise ConfigError(f"Structured: reads declares no equation for {missing}; give every state dimension "
                              f"{dims} the list of what its equation reads.")
        out = []
        for dim in dims:
            bad = [v for v in reads[dim] if v not in variables]
            if bad:
                raise ConfigError(f"Structured: the equation of {dim!r} reads {bad}, which are neither states "
                                  f"{dims} nor inputs {inputs}.")
            out.append([variables.index(v) for v in reads[dim]])
        return out

    def build(self, context: FieldContext) -> StructuredField:
        reads = self.index(context)
        return StructuredField(reads, context.n_inputs, tuple(int(h) for h in self.hidden), self.activation,
                               context.scaling, context.generator, context.dtype)
