"""Grey-box vector field: the user's own equations f(t, x, p, u) with named, bounded parameters.

The parameters are a :class:`~sysid.parameters._transform.ParameterTransform` (smooth
bound transforms for gradient training, several parameter sets per batch for least
squares); see :mod:`sysid.parameters`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from sysid.parameters._transform import Bound as Bound
from sysid.parameters._transform import ParameterTransform as ParameterTransform

GreyBoxFunction = Callable[[torch.Tensor, torch.Tensor, dict[str, torch.Tensor], torch.Tensor | None], Any]


class GreyBoxField(torch.nn.Module):
    """dx/dt = f(t, x, p, u) with the user's f and named parameters p.

    Parameters
    ----------
    f : callable ``f(t, x, p, u)``
        t (batch,), x (batch, n_dims) physical states, p a dict of scalar tensors, u
        (batch, n_inputs) or None; returns dx/dt (batch, n_dims).
    initial, bounds, fixed, dtype
        As for :class:`ParameterTransform`.

    Examples
    --------
    >>> import torch
    >>> def decay(t, x, p, u):
    ...     return -p["k"] * x
    >>> field = GreyBoxField(decay, {"k": 0.5}, bounds={"k": (0.0, None)})
    >>> field(torch.zeros(2), torch.tensor([[1.0], [4.0]], dtype=torch.float64), None).tolist()
    [[-0.5], [-2.0]]
    """

    def __init__(self, f: GreyBoxFunction, initial: Mapping[str, float], bounds: Mapping[str, Bound] | None = None,
                 fixed: Sequence[str] | None = None, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.f = f
        self.params = ParameterTransform(initial, bounds, fixed, dtype)
        #: When set, a tensor (n_groups, n_free) of natural parameter values: the batch is
        #: split into that many equal consecutive groups, each evaluated with its own values
        #: (several parameter sets in one batched solve: least-squares Jacobians, profiles).
        self.groups: torch.Tensor | None = None

    def forward(self, t: torch.Tensor, x: torch.Tensor, u: torch.Tensor | None) -> torch.Tensor:
        """dx/dt (batch, n_dims)."""
        if self.groups is None:
            return self.f(t, x, self.params(), u)
        return self.params.evaluate_grouped(self.f, t, x, u, self.groups)
