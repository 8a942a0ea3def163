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
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from sysid.errors import ConfigError
from sysid.fields._spec import FieldContext, FieldSpec

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
            return self.call(t, x, self.params(), u)
        n_groups = self.groups.shape[0]
        size = x.shape[0] // n_groups
        outs = []
        for g in range(n_groups):
            rows = slice(g * size, (g + 1) * size)
            outs.append(self.call(t[rows], x[rows], self.params.values_from(self.groups[g]),
                                  None if u is None else u[rows]))
        return torch.cat(outs)

    def call(self, t: torch.Tensor, x: torch.Tensor, p: dict[str, torch.Tensor], u: torch.Tensor | None) -> Any:
        """The user's function on one group of the batch (:class:`~sysid.fields.UDEField` adds its networks)."""
        return self.f(t, x, p, u)


def check_parameter_spec(params: Any, bounds: Any, fixed: Any, owner: str = "GreyBoxODE"
                         ) -> tuple[dict[str, float], dict[str, Bound], list[str]]:
    """Validate ``params``/``bounds``/``fixed``; return them normalised.

    Raises
    ------
    ConfigError
        Naming the parameter at fault: unknown names in ``bounds``/``fixed``, non-numeric
        values, malformed bounds, or an initial value not strictly inside its bounds.

    Examples
    --------
    >>> check_parameter_spec({"k": 1.0}, {"k": (0, None)}, None)
    ({'k': 1.0}, {'k': (0.0, None)}, [])
    >>> check_parameter_spec({"k": 1.0}, {"c": (0, 1)}, None)
    Traceback (most recent call last):
    ...
    sysid.errors.ConfigError: bounds names an unknown parameter 'c'; params are ['k'].
    """
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise ConfigError(f"{owner}: params must be a dict {{name: initial value}}, got {type(params).__name__}.")
    initial: dict[str, float] = {}
    for name, value in params.items():
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{owner}: parameter names must be non-empty strings, got {name!r}.")
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
            raise ConfigError(f"{owner}: params[{name!r}] must be a finite number, got {value!r}.")
        initial[name] = float(value)
    known = list(initial)
    if bounds is None:
        bounds = {}
    if not isinstance(bounds, Mapping):
        raise ConfigError(f"{owner}: bounds must be a dict {{name: (low, high)}}, got {type(bounds).__name__}.")
    clean_bounds: dict[str, Bound] = {}
    for name, pair in bounds.items():
        if name not in initial:
            raise ConfigError(f"bounds names an unknown parameter {name!r}; params are {known}.")
        if not isinstance(pair, Sequence) or isinstance(pair, str) or len(pair) != 2:
            raise ConfigError(f"bounds[{name!r}] must be a pair (low, high) with None for an open side, got {pair!r}.")
        lo, hi = (None if v is None else float(v) for v in pair)
        if (lo is not None and not math.isfinite(lo)) or (hi is not None and not math.isfinite(hi)):
            raise ConfigError(f"bounds[{name!r}] must be finite numbers or None, got {pair!r}.")
        if lo is not None and hi is not None and not lo < hi:
            raise ConfigError(f"bounds[{name!r}] = {pair!r}: low must be smaller than high.")
        value = initial[name]
        if (lo is not None and not value > lo) or (hi is not None and not value < hi):
            raise ConfigError(
                f"the initial value of {name!r} ({value!r}) must lie strictly inside its bounds {pair!r}; "
                "move it inside (the bounds are open)."
            )
        clean_bounds[name] = (lo, hi)
    if fixed is None:
        fixed = []
    if isinstance(fixed, str) or not isinstance(fixed, Sequence | set | frozenset):
        raise ConfigError(f"{owner}: fixed must be a list of parameter names, got {fixed!r}.")
    for name in fixed:
        if name not in initial:
            raise ConfigError(f"fixed names an unknown parameter {name!r}; params are {known}.")
    return initial, clean_bounds, [n for n in known if n in set(fixed)]


def probe_function(f: Any, name: str, args: tuple[Any, ...], expected: tuple[int, int], signature: str) -> None:
    """Call the user's function once on a probe batch; raise ConfigError on any problem."""
    if not callable(f):
        raise ConfigError(f"{name} must be a callable {signature}, got {type(f).__name__}.")
    try:
        out = f(*args)
    except KeyError as exc:
        known = sorted(args[2]) if len(args) > 2 and isinstance(args[2], dict) else []
        raise ConfigError(
            f"{name}{signature[signature.index('('):]} looked up parameter {exc.args[0]!r}, which is not in "
            f"params {known}; add it to params (with an initial value)."
        ) from None
    except Exception as exc:  # noqa: BLE001 - reported with context
        raise ConfigError(
            f"calling {name}{signature[signature.index('('):]} on a probe batch x of shape {expected} "
            f"({expected[0]} points of {expected[1]} state(s), batch first) raised {type(exc).__name__}: {exc}"
            + (f". Does {name} expect another number of states than the data's {expected[1]}?"
               if isinstance(exc, IndexError) else "")
        ) from exc
    if not isinstance(out, torch.Tensor):
        hint = " (stack columns with torch.stack([...], dim=-1))" if isinstance(out, list | tuple) else ""
        raise ConfigError(
            f"{name} must return a torch tensor of shape (batch, n_states) = {expected}, got "
            f"{type(out).__name__}{hint}."
        )
    if tuple(out.shape) != expected:
        raise ConfigError(
            f"{name} returned shape {tuple(out.shape)} for a probe batch of x with shape {expected}; "
            f"expected {expected} (one derivative per state, batch first)."
        )
    if not torch.isfinite(out).all():
        raise ConfigError(
            f"{name} returned non-finite values at the data's mean state (probe x={args[1][0].tolist()}): "
            f"{out[0].tolist()}."
        )




class GreyBox(FieldSpec):
    """Your own equations, dx/dt = f(t, x, p, u), with named, bounded, optionally fixed parameters.

    Parameters
    ----------
    f : callable ``f(t, x, p, u) -> tensor``
        The right-hand side in torch operations: t (batch,), x (batch, n_states)
        physical states, p a dict of scalar tensors by parameter name, u (batch,
        n_inputs) or None. Returns dx/dt of x's shape. Model files store only its
        name: pass it again to ``sysid.load(path, f=f)``.
    params : dict of str to float
        Every parameter with its initial value (the value of a fixed one).
    bounds : dict of str to (low, high), optional
        Open bounds, ``None`` for an unbounded side: ``{"k": (0, None)}``. Bounds are
        kept by smooth transforms, never by clipping.
    fixed : list of str, optional
        Parameters held at their value in ``params``.

    Examples
    --------
    >>> import sysid, torch
    >>> def decay(t, x, p, u):
    ...     return -p["k"] * x
    >>> sysid.GreyBoxODE(decay, {"k": 0.3}).field
    GreyBox(f=<function decay at ...>, params={'k': 0.3})
    """

    flags_extrapolation = False  # the equations are the user's: valid as far as the user says
    streaming_unsupported = ("its parameters' least-squares refinement and uncertainties use every observation "
                             "at once")
    #: Name of the user's function in messages and in ``sysid.load(path, <name>=...)``.
    function_name = "f"

    def __init__(self, *, f: GreyBoxFunction | None = None, params: Mapping[str, float] | None = None,
                 bounds: Mapping[str, Bound] | None = None, fixed: Sequence[str] | None = None) -> None:
        self.f = f
        self.params = params
        self.bounds = bounds
        self.fixed = fixed

    def spec(self, owner: str = "GreyBox") -> tuple[dict[str, float], dict[str, Bound], list[str]]:
        """The validated ``(initial values, bounds, fixed names)``."""
        if not callable(self.f):
            raise ConfigError(
                f"{owner}: {self.function_name} must be a callable {self.function_name}(t, x, p, u) (your right-hand "
                f"side in torch), got {type(self.f).__name__}: pass it first, e.g. GreyBoxODE(f, {{'k': 1.0}})."
            )
        if not self.params:
            raise ConfigError(
                f"{owner} needs params, a dict of every parameter of {self.function_name} with its initial value, "
                f"e.g. {{'k': 1.0}}; got {self.params!r}. Without free parameters use ClassicalODE's simulate or "
                "fix them all (fixed=[...])."
            )
        return check_parameter_spec(self.params, self.bounds, self.fixed, owner)

    def check(self) -> None:
        self.spec()

    def build(self, context: FieldContext) -> torch.nn.Module:
        initial, bounds, fixed = self.spec()
        field = GreyBoxField(self.f, initial, bounds, fixed, context.dtype)
        t, x, u = context.probe()
        with torch.no_grad():
            probe_function(self.f, self.function_name, (t, x, field.params(), u), (2, context.n_dims),
                           f"{self.function_name}(t, x, p, u)")
        return field

    def results(self, module: torch.nn.Module, context: FieldContext) -> dict[str, Any]:
        with torch.no_grad():
            values = module.params()
        return {"params_": {n: float(v) for n, v in values.items()}}
