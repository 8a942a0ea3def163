"""The batched right-hand side handed to torchdiffeq: one vector field, many elements."""

from __future__ import annotations

from typing import Protocol, cast

import torch

from sysid.integration._clock import Clock
from sysid.integration._signals import InputSignal, RecordReader


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

    def __init__(
        self,
        n_trajectories: int,
        learn_scale: bool = False,
        learn_offset: bool = False,
        dtype: torch.dtype = torch.float64,
    ) -> None:
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

    def __init__(
        self, field: torch.nn.Module, center: torch.Tensor, spread: torch.Tensor, time_parameters: TimeParameters
    ) -> None:
        super().__init__()
        self.field = field
        self.time = time_parameters
        self.register_buffer("center", center)
        self.register_buffer("spread", spread)
        # Fields that work in the same scaled coordinates (e.g. MLPField) skip the conversion.
        own_center, own_spread = getattr(field, "center", None), getattr(field, "spread", None)
        self._fused = (
            hasattr(field, "scaled_forward")
            and isinstance(own_center, torch.Tensor)
            and isinstance(own_spread, torch.Tensor)
            and torch.equal(own_center, center)
            and torch.equal(own_spread, spread)
        )
        # The batch context is a plain tuple, not submodules: it is not part of the model's state.
        self._context: tuple[Clock, torch.Tensor, InputSignal | None] | None = None
        self.lean = False
        # Set by bind: a batch of one element's clock, input reader and whether t is read; a clock rate of exactly 1.
        self._single: tuple[Clock, RecordReader | None, bool] | None = None
        self._unit_rate = False
        self.nfe = 0

    @property
    def uses_time(self) -> bool:
        """Whether the field reads t (its ``uses_time`` attribute; True when it has none)."""
        return bool(getattr(self.field, "uses_time", True))

    def bind(self, clock: Clock, traj: torch.Tensor, inputs: InputSignal | None) -> BatchedField:
        """Set the batch's clock, trajectory index (batch,) and input signal."""
        self._context = (clock, traj, inputs)
        self.lean = inputs is None and not self.uses_time
        # multiplying by a rate of exactly one changes no bit of the values or the gradients: skipped
        self._unit_rate = not self.time.learned and clock.end is None and bool((clock.rates == 1).all())
        self._single = None
        float64 = [self.center, clock.time_knots, *([] if inputs is None else [inputs.values])]
        if (
            clock.single
            and traj.numel() == 1
            and not self.time.learned
            and all(x.dtype == torch.float64 and x.device.type == "cpu" for x in float64)
        ):
            reader = None if inputs is None else inputs.record_reader(int(traj[0]))
            self._single = (clock, reader, self.uses_time)
        return self

    def forward(self, sigma: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """dz/dsigma (batch, n_dims)."""
        self.nfe += 1
        if self._context is None:
            raise RuntimeError("BatchedField.bind() must be called before solving")
        single = self._single
        if single is not None and not sigma.requires_grad:
            return self._forward_single(float(sigma), z)
        clock, traj, inputs = self._context
        if self.lean:  # neither t nor inputs are read: only the clock's rate matters
            if self._fused and self._unit_rate:
                return cast(ScaledField, self.field).scaled_forward(None, z, None)
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
        reader = None if single is None else single[1]  # one element: t's operations, not the batched search
        u = reader(t) if reader is not None else None if inputs is None else inputs(t, traj)
        if self._fused:  # checked in __init__: the field has scaled_forward
            out = cast(ScaledField, self.field).scaled_forward(t, z, u)
            return out if self._unit_rate else out * rate[:, None]
        x = self.center + self.spread * z
        return self.field(t, x, u) * (rate[:, None] / self.spread)

    def _forward_single(self, sigma: float, z: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` for one element on a float64 CPU clock, when ``sigma`` carries no gradient.

        The time, rate and input are read as Python floats (:meth:`Clock.time_and_rate`,
        :meth:`RecordReader.at`) with the double arithmetic of the tensor path, so they
        are the same numbers; what is saved is a dozen tensor operations per evaluation,
        most of the cost of a field evaluated on a batch of one (a whole long record).
        """
        clock, reader, uses_time = cast(tuple[Clock, RecordReader | None, bool], self._single)
        t, rate = clock.time_and_rate(sigma)
        u = None if reader is None else torch.tensor([reader.at(t)], dtype=z.dtype)
        time = torch.tensor([t], dtype=z.dtype) if uses_time else None
        if self._fused:
            out = cast(ScaledField, self.field).scaled_forward(time, z, u)
            return out if rate == 1.0 else out * rate
        x = self.center + self.spread * z
        return self.field(time, x, u) * (torch.tensor([[rate]], dtype=z.dtype) / self.spread)
