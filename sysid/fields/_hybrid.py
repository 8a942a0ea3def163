"""Hybrid vector field: known physics plus a neural-network correction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from sysid.fields._greybox import Bound, GreyBoxFunction
from sysid.fields._mlp import MLPField
from sysid.parameters._transform import ParameterTransform


class HybridField(torch.nn.Module):
    """dx/dt = known(t, x, p, u) + correction(x, u), the correction an :class:`MLPField`.

    Parameters
    ----------
    known : callable ``known(t, x, p, u)``
        The known part of the dynamics in torch operations (as a grey-box ``f``).
    initial, bounds, fixed
        The known part's named parameters, as for
        :class:`~sysid.parameters._transform.ParameterTransform`.
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

    def __init__(self, known: GreyBoxFunction, initial: Mapping[str, float] | None = None,
                 bounds: Mapping[str, Bound] | None = None, fixed: Sequence[str] | None = None,
                 correction: MLPField | None = None, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        if correction is None:
            raise ValueError("HybridField needs a correction network (an MLPField).")
        self.known = known
        self.params = ParameterTransform(dict(initial or {}), bounds, fixed, dtype)
        self.network = correction
        #: Multiplies the network's output per state: set from the size of what the known
        #: part leaves unexplained, so that the network works with outputs of order one.
        self.register_buffer("correction_scale", torch.ones(correction.n_dims, dtype=dtype))
        #: As :attr:`GreyBoxField.groups`: parameter sets of the known part, one per group of rows.
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
