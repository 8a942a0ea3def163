"""Grey-box vector field: the user's own equations f(t, x, p, u) with named, bounded parameters.

Bounds are imposed by smooth transforms of an unconstrained raw value ``r``, never by
clipping, so gradient descent can neither leave the bounds nor get stuck on them:

=============  ===========================================
bounds         parameter as a function of the raw value r
=============  ===========================================
(None, None)   p0 + s * r                   (identity, relative steps)
(lo, None)     lo + s * softplus(r)
(None, hi)     hi - s * softplus(r)
(lo, hi)       lo + (hi - lo) * sigmoid(r)
=============  ===========================================

``s`` is a fixed step scale taken from the initial value (its distance from the bound,
or its magnitude), so that a unit step of the raw value is a relative change whatever
the parameter's units. Fixed parameters are buffers and never trained.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

GreyBoxFunction = Callable[[torch.Tensor, torch.Tensor, dict[str, torch.Tensor], torch.Tensor | None], Any]

Bound = tuple[float | None, float | None]

# kind codes of the transform per free parameter
_IDENTITY, _LOWER, _UPPER, _BOTH = 0, 1, 2, 3


def _softplus_inverse(y: float) -> float:
    """r with softplus(r) = y > 0, stable for large and small y."""
    return y + math.log(-math.expm1(-y))


def _softplus_inverse_t(y: torch.Tensor) -> torch.Tensor:
    return y + torch.log(-torch.expm1(-y))


def _kind(bound: Bound) -> int:
    lo, hi = bound
    if lo is None and hi is None:
        return _IDENTITY
    if hi is None:
        return _LOWER
    if lo is None:
        return _UPPER
    return _BOTH


class ParameterTransform(torch.nn.Module):
    """Named physical parameters from unconstrained raw values (trained) plus fixed ones.

    Parameters
    ----------
    initial : mapping of str to float
        Every parameter's initial (or fixed) value; the order is kept.
    bounds : mapping of str to (lo, hi), optional
        ``None`` for an open side. Initial values must lie strictly inside.
    fixed : sequence of str, optional
        Names held at their initial value.
    dtype : torch dtype

    Examples
    --------
    >>> pt = ParameterTransform({"k": 2.0, "c": 0.5}, bounds={"k": (0.0, None)}, fixed=["c"])
    >>> {n: round(float(v.detach()), 6) for n, v in pt().items()}
    {'k': 2.0, 'c': 0.5}
    >>> pt.free_names, pt.fixed_names
    (['k'], ['c'])
    """

    def __init__(self, initial: Mapping[str, float], bounds: Mapping[str, Bound] | None = None,
                 fixed: Sequence[str] | None = None, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        bounds = dict(bounds or {})
        fixed_set = set(fixed or ())
        self.names = list(initial)
        self.free_names = [n for n in self.names if n not in fixed_set]
        self.fixed_names = [n for n in self.names if n in fixed_set]
        kinds, lows, highs, scales, raws = [], [], [], [], []
        for name in self.free_names:
            value = float(initial[name])
            lo, hi = bounds.get(name, (None, None))
            kind = _kind((lo, hi))
            lo_f = float(lo) if lo is not None else 0.0
            hi_f = float(hi) if hi is not None else 0.0
            if kind == _IDENTITY:
                scale, raw = max(abs(value), 1e-3) if value else 1.0, 0.0
            elif kind == _LOWER:
                scale, raw = value - lo_f, _softplus_inverse(1.0)
            elif kind == _UPPER:
                scale, raw = hi_f - value, _softplus_inverse(1.0)
            else:
                scale = hi_f - lo_f
                frac = (value - lo_f) / scale
                raw = math.log(frac / (1.0 - frac))
            kinds.append(kind)
            lows.append(lo_f)
            highs.append(hi_f)
            scales.append(scale)
            raws.append(raw)
        as_t = lambda a: torch.as_tensor(a, dtype=dtype)  # noqa: E731
        raw = as_t(raws).reshape(len(self.free_names))
        if self.free_names:
            self.raw = torch.nn.Parameter(raw)
        else:  # nothing to train: an empty Parameter would break torchdiffeq's adjoint
            self.register_buffer("raw", raw)
        self.register_buffer("kind", torch.as_tensor(kinds, dtype=torch.long).reshape(-1))
        self.register_buffer("low", as_t(lows).reshape(-1))
        self.register_buffer("high", as_t(highs).reshape(-1))
        self.register_buffer("scale", as_t(scales).reshape(-1))
        self.register_buffer("origin", as_t([float(initial[n]) for n in self.free_names]).reshape(-1))
        self.register_buffer("fixed_values", as_t([float(initial[n]) for n in self.fixed_names]).reshape(-1))
        #: When set (a tensor (n_free,)), used as the free parameters' natural values instead of
        #: the transform of ``raw``: for derivatives with respect to natural units.
        self.override: torch.Tensor | None = None

    def free_values(self) -> torch.Tensor:
        """Natural values of the free parameters (n_free,)."""
        if self.override is not None:
            return self.override
        r = self.raw
        soft = torch.nn.functional.softplus(r)
        identity = self.origin + self.scale * r
        lower = self.low + self.scale * soft
        upper = self.high - self.scale * soft
        both = self.low + (self.high - self.low) * torch.sigmoid(r)
        k = self.kind
        return torch.where(k == _IDENTITY, identity,
                           torch.where(k == _LOWER, lower, torch.where(k == _UPPER, upper, both)))

    def set_free_values(self, values: Any) -> None:
        """Set the raw values so that the free parameters take these natural ``values`` (n_free,).

        Values on or beyond a bound are moved just inside it.
        """
        v = torch.as_tensor(values, dtype=self.raw.dtype).reshape(-1)
        tiny = torch.finfo(v.dtype).eps ** 0.5
        k = self.kind
        safe_scale = torch.where(self.scale != 0, self.scale, torch.ones_like(self.scale))
        identity = (v - self.origin) / safe_scale
        lower = _softplus_inverse_t(((v - self.low) / safe_scale).clamp(min=tiny))
        upper = _softplus_inverse_t(((self.high - v) / safe_scale).clamp(min=tiny))
        width = torch.where(self.high > self.low, self.high - self.low, torch.ones_like(self.high))
        frac = ((v - self.low) / width).clamp(tiny, 1 - tiny)
        both = torch.log(frac) - torch.log1p(-frac)
        raw = torch.where(k == _IDENTITY, identity,
                          torch.where(k == _LOWER, lower, torch.where(k == _UPPER, upper, both)))
        with torch.no_grad():
            self.raw.copy_(raw)

    def values_from(self, free: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{name: scalar tensor}`` with the free parameters at the natural values ``free``."""
        values = {n: free[i] for i, n in enumerate(self.free_names)}
        values.update({n: self.fixed_values[i] for i, n in enumerate(self.fixed_names)})
        return {n: values[n] for n in self.names}

    def forward(self) -> dict[str, torch.Tensor]:
        """``{name: scalar tensor}`` for every parameter, free and fixed, in the original order."""
        free = self.free_values()
        values = {n: free[i] for i, n in enumerate(self.free_names)}
        values.update({n: self.fixed_values[i] for i, n in enumerate(self.fixed_names)})
        return {n: values[n] for n in self.names}


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
        #: (several parameter sets in one batched solve, e.g. for finite differences).
        self.groups: torch.Tensor | None = None

    def forward(self, t: torch.Tensor, x: torch.Tensor, u: torch.Tensor | None) -> torch.Tensor:
        """dx/dt (batch, n_dims)."""
        if self.groups is None:
            return self.f(t, x, self.params(), u)
        n_groups = self.groups.shape[0]
        size = x.shape[0] // n_groups
        outs = []
        for g in range(n_groups):
            rows = slice(g * size, (g + 1) * size)
            outs.append(self.f(t[rows], x[rows], self.params.values_from(self.groups[g]),
                               None if u is None else u[rows]))
        return torch.cat(outs)
