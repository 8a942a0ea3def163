"""ODEBlock: a continuous-depth layer for use inside any torch network (the paper's ODE-Net)."""

from __future__ import annotations

from typing import Any

import torch
from torchdiffeq import odeint, odeint_adjoint

from sysid.errors import ConfigError
from sysid.integration._solver import SolverConfig


class _Rescaled(torch.nn.Module):
    """dx/ds = t1 * f(s * t1, x) for s in [0, 1]: the integration end becomes a factor."""

    def __init__(self, block: ODEBlock) -> None:
        super().__init__()
        self.block = block

    def forward(self, s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        t1 = self.block.t1
        self.block.nfe += 1
        return t1 * self.block.field(s * t1, x)


class ODEBlock(torch.nn.Module):
    """Map h to h(t1) where dh/dt = field(t, h), h(0) = input: a residual block in the limit.

    Parameters
    ----------
    field : torch.nn.Module
        ``field(t, h)`` returning dh/dt with h's shape.
    t1 : float, default 1.0
        Integration end ("depth").
    learn_t1 : bool, default False
        Make ``t1`` a trainable parameter; its gradient reaches it because the layer
        integrates over s in [0, 1] with dh/ds = t1 * field(s t1, h).
    solver, rtol, atol, options
        As in :class:`SolverConfig`.
    gradient : {"adjoint", "backprop"}
        Adjoint sensitivities (constant memory) or backpropagation through the steps.

    Examples
    --------
    >>> import torch
    >>> class Decay(torch.nn.Module):
    ...     def forward(self, t, h):
    ...         return -h
    >>> block = ODEBlock(Decay(), t1=1.0, gradient="backprop")
    >>> round(float(block(torch.ones(1, 1))), 4)  # exp(-1)
    0.3679
    """

    def __init__(
        self,
        field: torch.nn.Module,
        t1: float = 1.0,
        learn_t1: bool = False,
        solver: str = "dopri5",
        rtol: float = 1e-6,
        atol: float = 1e-8,
        options: dict[str, Any] | None = None,
        gradient: str = "adjoint",
    ) -> None:
        super().__init__()
        if gradient not in ("adjoint", "backprop"):
            raise ConfigError(f"gradient must be 'adjoint' or 'backprop', got {gradient!r}.")
        if not float(t1) > 0:
            raise ConfigError(f"t1 must be positive, got {t1!r}.")
        self.field = field
        self.config = SolverConfig(solver, rtol, atol, dict(options or {}))
        self.gradient = gradient
        value = torch.tensor(float(t1), dtype=torch.get_default_dtype())
        if learn_t1:
            self.t1 = torch.nn.Parameter(value)
        else:
            self.register_buffer("t1", value)
        self.nfe = 0

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """h(t1) for the batch ``h``."""
        s = torch.tensor([0.0, 1.0], dtype=h.dtype, device=h.device)
        func = _Rescaled(self)
        kwargs = dict(
            rtol=self.config.rtol, atol=self.config.atol, method=self.config.method, options=dict(self.config.options)
        )
        if self.gradient == "adjoint":
            params = tuple(p for p in self.parameters() if p.requires_grad)
            return odeint_adjoint(func, h, s, adjoint_params=params, **kwargs)[-1]
        return odeint(func, h, s, **kwargs)[-1]
