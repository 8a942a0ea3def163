"""Named parameters as a torch module: smooth bound transforms for gradient training, parameter groups.

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

``s`` is a fixed step scale taken from the start value (its distance from the bound,
or its magnitude), so that a unit step of the raw value is a relative change whatever
the parameter's units. Bounds are closed (:mod:`sysid.parameters._spec`); a start on a
bound, which these transforms cannot represent, starts 0.1% of its scale inside it.
Fixed parameters are buffers and never trained.

Least-squares fits work in natural units instead (scipy enforces the bounds) and
evaluate several parameter sets in one batched solve: :meth:`ParameterTransform.evaluate_grouped`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

Bound = tuple[float | None, float | None]
ParametricFunction = Callable[[Any, torch.Tensor, dict[str, torch.Tensor], Any], Any]

# kind codes of the transform per free parameter
_IDENTITY, _LOWER, _UPPER, _BOTH = 0, 1, 2, 3
_INSIDE = 1e-3  # a start on a bound begins this fraction of its scale inside it


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


def _magnitude(value: float) -> float:
    return max(abs(value), 1e-3) if value else 1.0


class ParameterTransform(torch.nn.Module):
    """Named physical parameters from unconstrained raw values (trained) plus fixed ones.

    Parameters
    ----------
    initial : mapping of str to float
        Every parameter's start (or fixed) value; the order is kept.
    bounds : mapping of str to (lo, hi), optional
        Closed bounds, ``None`` for an open side (as checked by
        :func:`~sysid.parameters.check_parameters`).
    fixed : sequence of str, optional
        Names held at their start value.
    dtype : torch dtype

    Examples
    --------
    >>> pt = ParameterTransform({"k": 2.0, "c": 0.5}, bounds={"k": (0.0, None)}, fixed=["c"])
    >>> {n: round(float(v.detach()), 6) for n, v in pt().items()}
    {'k': 2.0, 'c': 0.5}
    >>> pt.free_names, pt.fixed_names
    (['k'], ['c'])
    >>> round(float(ParameterTransform({"k": 0.0}, bounds={"k": (0.0, None)})()["k"]), 6)  # on its bound
    0.001
    """

    raw: torch.Tensor
    kind: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor
    scale: torch.Tensor
    origin: torch.Tensor
    fixed_values: torch.Tensor

    def __init__(self, initial: Mapping[str, float], bounds: Mapping[str, Bound] | None = None,
                 fixed: Sequence[str] | None = None, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        bounds = dict(bounds or {})
        fixed_set = set(fixed or ())
        self.names = list(initial)
        self.free_names = [n for n in self.names if n not in fixed_set]
        self.fixed_names = [n for n in self.names if n in fixed_set]
        kinds: list[int] = []
        lows: list[float] = []
        highs: list[float] = []
        scales: list[float] = []
        raws: list[float] = []
        for name in self.free_names:
            value = float(initial[name])
            lo, hi = bounds.get(name, (None, None))
            kind = _kind((lo, hi))
            lo_f = float(lo) if lo is not None else 0.0
            hi_f = float(hi) if hi is not None else 0.0
            if kind == _IDENTITY:
                scale, raw = _magnitude(value), 0.0
            elif kind in (_LOWER, _UPPER):
                gap = value - lo_f if kind == _LOWER else hi_f - value
                if gap > 0:
                    scale, raw = gap, _softplus_inverse(1.0)
                else:  # on its bound: start just inside
                    scale, raw = _magnitude(value), _softplus_inverse(_INSIDE)
            else:
                scale = hi_f - lo_f
                frac = min(max((value - lo_f) / scale, _INSIDE), 1.0 - _INSIDE)
                raw = math.log(frac / (1.0 - frac))
            kinds.append(kind)
            lows.append(lo_f)
            highs.append(hi_f)
            scales.append(scale)
            raws.append(raw)

        def as_t(a: Any) -> torch.Tensor:
            return torch.as_tensor(a, dtype=dtype)

        start = as_t(raws).reshape(len(self.free_names))
        if self.free_names:
            self.raw = torch.nn.Parameter(start)
        else:  # nothing to train: an empty Parameter would break torchdiffeq's adjoint
            self.register_buffer("raw", start)
        self.register_buffer("kind", torch.as_tensor(kinds, dtype=torch.long).reshape(-1))
        self.register_buffer("low", as_t(lows).reshape(-1))
        self.register_buffer("high", as_t(highs).reshape(-1))
        self.register_buffer("scale", as_t(scales).reshape(-1))
        self.register_buffer("origin", as_t([float(initial[n]) for n in self.free_names]).reshape(-1))
        self.register_buffer("fixed_values", as_t([float(initial[n]) for n in self.fixed_names]).reshape(-1))
        #: When set (a tensor (n_free,)), used as the free parameters' natural values instead of
        #: the transform of ``raw``: for derivatives with respect to natural units.
        self.override: torch.Tensor | None = None
        #: Whether the user's function accepts one parameter value per batch row (decided
        #: on first use by :meth:`evaluate_grouped`; None: not yet known).
        self.rowwise: bool | None = None

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

        Values on or beyond a bound are moved just inside it (the transforms cannot
        reach a bound): by ``1e-12`` of the parameter's scale in float64.
        """
        v = torch.as_tensor(values, dtype=self.raw.dtype).reshape(-1)
        tiny = max(1e-12, float(torch.finfo(v.dtype).eps) * 10)
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
        """``{name: value}`` with the free parameters at the natural values ``free`` (scalars or rows)."""
        values = {n: free[..., i] for i, n in enumerate(self.free_names)}
        values.update({n: self.fixed_values[i] for i, n in enumerate(self.fixed_names)})
        return {n: values[n] for n in self.names}

    def forward(self) -> dict[str, torch.Tensor]:
        """``{name: scalar tensor}`` for every parameter, free and fixed, in the original order."""
        return self.values_from(self.free_values())

    def evaluate_grouped(self, f: ParametricFunction, t: Any, x: torch.Tensor, u: torch.Tensor | None,
                         groups: torch.Tensor) -> torch.Tensor:
        """``f(t, x, p, u)`` with the batch split into ``len(groups)`` equal consecutive groups.

        Group ``g`` is evaluated with the free parameters at ``groups[g]`` (natural
        values): several parameter sets in one batched solve (finite-difference
        Jacobians, profiles). When ``f`` gives the same result with one parameter value
        per row (it only multiplies parameters with per-row quantities, as most
        right-hand sides do), it is called once with ``p[name]`` of shape (batch,);
        otherwise once per group with scalars. Which one is decided on the first call
        by comparing both on distinct parameter sets (:attr:`rowwise`).
        """
        n_groups = groups.shape[0]
        if self.rowwise is None and n_groups > 1:
            self.rowwise = self._rowwise_agrees(f, t, x, u, groups)
        if self.rowwise:
            size = x.shape[0] // n_groups
            return f(t, x, self.values_from(groups.repeat_interleave(size, dim=0)), u)
        return self._looped(f, t, x, u, groups)

    def _looped(self, f: ParametricFunction, t: Any, x: torch.Tensor, u: torch.Tensor | None,
                groups: torch.Tensor) -> torch.Tensor:
        size = x.shape[0] // groups.shape[0]
        outs = []
        for g in range(groups.shape[0]):
            rows = slice(g * size, (g + 1) * size)
            outs.append(f(None if t is None else t[rows], x[rows], self.values_from(groups[g]),
                          None if u is None else u[rows]))
        return torch.cat(outs)

    def _rowwise_agrees(self, f: ParametricFunction, t: Any, x: torch.Tensor, u: torch.Tensor | None,
                        groups: torch.Tensor) -> bool:
        """Whether per-row parameters give what the per-group loop gives, on two distinct probes."""
        spread = torch.arange(1, groups.shape[0] + 1, dtype=groups.dtype)[:, None] * 0.0137
        distinct = groups * (1 + spread) + spread * 1e-3
        n_rows = x.shape[-1] + 3  # a second batch size, never the number of states
        pick = torch.arange(n_rows) % x.shape[0]
        probes = [(t, x, u, distinct)]
        second = distinct[torch.arange(n_rows) % distinct.shape[0]] * (1 + 0.01 * torch.arange(n_rows))[:, None]
        probes.append((None if t is None else t[pick], x[pick], None if u is None else u[pick], second))
        try:
            with torch.no_grad():
                for tt, xx, uu, gg in probes:
                    looped = self._looped(f, tt, xx, uu, gg)
                    size = xx.shape[0] // gg.shape[0]
                    rows = f(tt, xx, self.values_from(gg.repeat_interleave(size, dim=0)), uu)
                    if not isinstance(rows, torch.Tensor) or rows.shape != looped.shape or not torch.allclose(
                            rows, looped, rtol=1e-10, atol=1e-300, equal_nan=True):
                        return False
        except Exception:  # noqa: BLE001 - any failure of the per-row form means: use the loop
            return False
        return True
