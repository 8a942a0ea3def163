"""Grey-box vector field: the user's own equations f(t, x, p, u) with named, bounded parameters.

The parameters are a :class:`~sysid.parameters._transform.ParameterTransform` (smooth
bound transforms for gradient training, several parameter sets per batch for least
squares), checked by :func:`sysid.parameters.check_parameters` (closed bounds); see
:mod:`sysid.parameters`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import torch

from sysid.errors import ConfigError
from sysid.fields._spec import FieldContext, FieldSpec
from sysid.parameters import Bound as Bound
from sysid.parameters import ParameterSpec, check_parameters
from sysid.parameters import ParameterTransform as ParameterTransform

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
            return self.call(t, x, self.params(), u)
        return self.params.evaluate_grouped(self.call, t, x, u, self.groups)

    def call(self, t: torch.Tensor, x: torch.Tensor, p: dict[str, torch.Tensor], u: torch.Tensor | None) -> Any:
        """The user's function on one group of the batch (:class:`~sysid.fields.UDEField` adds its networks)."""
        return self.f(t, x, p, u)


def check_parameter_spec(params: Any, bounds: Any, fixed: Any, owner: str = "GreyBox"
                         ) -> tuple[dict[str, float], dict[str, Bound], list[str]]:
    """``(start values, bounds, fixed names)`` as checked by :func:`sysid.parameters.check_parameters`.

    Examples
    --------
    >>> check_parameter_spec({"k": 0.0}, {"k": (0, None)}, None)
    ({'k': 0.0}, {'k': (0.0, None)}, [])
    """
    spec = check_parameters(params, bounds, fixed, owner)
    return spec.initial, spec.bounds, spec.fixed_names


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
    except Exception as exc:  # reported with context
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
        Closed bounds, ``None`` for an open side: ``{"k": (0, None)}``; a start on a
        bound is allowed (:func:`sysid.parameters.check_parameters`). The least-squares
        fit keeps them exactly; gradient training by smooth transforms, never by clipping.
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
    streaming_unsupported = ("its parameters' least-squares fit and uncertainties use every observation at once")
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
        spec = self.parameter_spec(owner)
        return spec.initial, spec.bounds, spec.fixed_names

    def parameter_spec(self, owner: str = "GreyBox") -> ParameterSpec:
        """The validated parameters (:func:`sysid.parameters.check_parameters`)."""
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
        return check_parameters(self.params, self.bounds, self.fixed, owner)

    def check(self) -> None:
        self.spec()

    def build(self, context: FieldContext) -> torch.nn.Module:
        initial, bounds, fixed = self.spec()  # raises unless f is callable
        field = GreyBoxField(cast("GreyBoxFunction", self.f), initial, bounds, fixed, context.dtype)
        t, x, u = context.probe()
        with torch.no_grad():
            probe_function(self.f, self.function_name, (t, x, field.params(), u), (2, context.n_dims),
                           f"{self.function_name}(t, x, p, u)")
        return field

    def results(self, module: torch.nn.Module, context: FieldContext) -> dict[str, Any]:
        with torch.no_grad():
            values = module.params()  # type: ignore[operator]  # GreyBoxField's (and Hybrid's HybridField's)
        return {"params_": {n: float(v) for n, v in values.items()}}
