"""The batched right-hand side handed to torchdiffeq: one vector field, many elements."""

from __future__ import annotations

from typing import Protocol, cast

import torch

from sysid.integration._clock import Clock
from sysid.integration._signals import InputSignal


class TimeParameters(torch.nn.Module):
    """Per-trajectory clock rate and offset, learned or fixed.

    ``scale[i]`` multiplies the rate at which trajectory ``i``'s recorded time advances
    the dynamics (trajectory 0 is the reference, its scale is fixed at 1);
    ``offset[i]`` shifts the time at which inputs and the explicit time are read.

    Examples
    --------
    >>> tp = TimeParameters(3, learn_scale=True, learn_offset=False)
    >>> tp.scale.tolist(), tp.offset.tolist()
    ([1.0, 1.0, 1.0], [0.0, 0.0, 0.0])
    """

    # Parameters when learned, buffers otherwise.
    log_scale_rest: torch.Tensor
    offset: torch.Tensor

    def __init__(self, n_trajectories: int, learn_scale: bool = False, learn_offset: bool = False,
                 dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.learned = learn_scale or learn_offset
        log_scale = torch.zeros(max(n_trajectories - 1, 0), dtype=dtype)
        offset = torch.zeros(n_trajectories, dtype=dtype)
        if learn_scale:
            self.log_scale_rest = torch.nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale_rest", log_scale)
        if learn_offset:
            self.offset = torch.nn.Parameter(offset)
        else:
            self.register_buffer("offset", offset)

    @property
    def scale(self) -> torch.Tensor:
        """Clock rates (n_trajectories,), the first fixed at 1."""
        zero = torch.zeros(1, dtype=self.log_scale_rest.dtype, device=self.log_scale_rest.device)
        return torch.exp(torch.cat([zero, self.log_scale_rest]))


class ScaledField(Protocol):
    """A field that also gives dz/dt in the solver's scaled coordinates (as :class:`~sysid.fields.MLPField`)."""

    def scaled_forward(self, t: torch.Tensor | None, z: torch.Tensor, u: torch.Tensor | None) -> torch.Tensor: ...


class BatchedField(torch.nn.Module):
    """dz/dsigma for a batch of elements, where z is the scaled state.

    Parameters
    ----------
    field : torch.nn.Module
        ``field(t, x, u)`` returning dx/dt (batch, n_dims) in physical units, with t
        (batch,), x (batch, n_dims) and u (batch, n_inputs) or None.
    center, spread : tensor (n_dims,)
        The state scaling x = center + spread * z.
    time_parameters : TimeParameters
        Per-trajectory clock rates and offsets.

    Notes
    -----
    Call :meth:`bind` before solving to say which clock, trajectories and inputs the
    batch elements have. ``nfe`` counts evaluations (forward and adjoint backward).

    A field with ``uses_time = False`` (an autonomous :class:`~sysid.fields.MLPField`,
    a :class:`~sysid.fields.PolynomialField`) bound without inputs takes a lean path:
    the data time is never computed (the field receives ``t=None``), only the clock's
    rate. Fields without the attribute are assumed to read ``t``. Both paths give the
    same values and gradients (a learned time offset only moves ``t`` and the inputs,
    so it has no effect on such a field either way).

    Examples
    --------
    >>> import torch
    >>> from sysid.fields import MLPField
    >>> from sysid.integration import Clock
    >>> net = MLPField(2, hidden=(8,), generator=torch.Generator().manual_seed(0))
    >>> rhs = BatchedField(net, net.center, net.spread, TimeParameters(1))
    >>> clock = Clock(torch.tensor([0.0, 1.0], dtype=torch.float64), torch.tensor([[0.0, 2.0]], dtype=torch.float64))
    >>> rhs.bind(clock, torch.tensor([0]), None).lean
    True
    >>> rhs(torch.tensor(0.5, dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64)).shape
    torch.Size([1, 2])
    """

    # Buffers (registered in __init__), declared for type checkers.
    center: torch.Tensor
    spread: torch.Tensor

    def __init__(self, field: torch.nn.Module, center: torch.Tensor, spread: torch.Tensor,
                 time_parameters: TimeParameters) -> None:
        super().__init__()
        self.field = field
        self.time = time_parameters
        self.register_buffer("center", center)
        self.register_buffer("spread", spread)
        # Fields that work in the same scaled coordinates (e.g. MLPField) skip the conversion.
        own_center, own_spread = getattr(field, "center", None), getattr(field, "spread", None)
        self._fused = (hasattr(field, "scaled_forward") and isinstance(own_center, torch.Tensor)
                       and isinstance(own_spread, torch.Tensor)
                       and torch.equal(own_center, center) and torch.equal(own_spread, spread))
        # The batch context is a plain tuple, not submodules: it is not part of the model's state.
        self._context: tuple[Clock, torch.Tensor, InputSignal | None] | None = None
        self.lean = False
        self.nfe = 0

    @property
    def uses_time(self) -> bool:
        """Whether the field reads t (its ``uses_time`` attribute; True when it has none)."""
        return bool(getattr(self.field, "uses_time", True))

    def bind(self, clock: Clock, traj: torch.Tensor, inputs: InputSignal | None) -> BatchedField:
        """Set the batch's clock, trajectory index (batch,) and input signal."""
        self._context = (clock, traj, inputs)
        self.lean = inputs is None and not self.uses_time
        return self

    def forward(self, sigma: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """dz/dsigma (batch, n_dims)."""
        self.nfe += 1
        if self._context is None:
            raise RuntimeError("BatchedField.bind() must be called before solving")
        clock, traj, inputs = self._context
        if self.lean:  # neither t nor inputs are read: only the clock's rate matters
            rate = clock.rate_column(sigma)
            if self.time.learned:
                rate = rate * self.time.scale[traj][:, None]
            if self._fused:
                return cast(ScaledField, self.field).scaled_forward(None, z, None) * rate
            return self.field(None, self.center + self.spread * z, None) * (rate / self.spread)
        t, rate = clock(sigma)
        if self.time.learned:
            t = t + self.time.offset[traj]
            rate = rate * self.time.scale[traj]
        u = None if inputs is None else inputs(t, traj)
        if self._fused:  # checked in __init__: the field has scaled_forward
            return cast(ScaledField, self.field).scaled_forward(t, z, u) * rate[:, None]
        x = self.center + self.spread * z
        return self.field(t, x, u) * (rate[:, None] / self.spread)
